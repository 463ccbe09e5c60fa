/**
 * Variants of a resolved model: the same GGUF run with other settings, as its own instance. Ollama's API asks
 * for them: `options.num_ctx` (another context size, hence another placement) and `/api/embed` (an instance
 * started with `--embeddings`). A variant's id is the model's id plus a suffix (`#ctx8192`, `#embed`; `#` appears
 * in no alias, Hugging Face id or path a request can name, so a variant never takes another model's instance), so
 * the pool keys, loads, evicts and times it out like any model; `variantOf` keeps the id the client asked for. Pure.
 */
import type { ResolvedModel } from './resolve.js';

const EMBEDDING_FLAGS = new Set(['--embedding', '--embeddings']);
const POOLING_FLAGS = new Set(['--pooling']);

/** Whether the model's own arguments start it as an embeddings server. */
export function servesEmbeddings(model: Pick<ResolvedModel, 'args'>): boolean {
  return model.args.some((a) => EMBEDDING_FLAGS.has(a));
}

function variant(model: ResolvedModel, suffix: string, changes: Partial<ResolvedModel>): ResolvedModel {
  return {
    ...model,
    ...changes,
    id: `${model.id}${suffix}`,
    variantOf: model.variantOf ?? model.id,
    // A variant is made on demand: never pinned (it would never go away), evicted and timed out like any model.
    pinned: false,
  };
}

/** The model with context size `ctx` (the whole instance's `-c`, as `models.<alias>.ctx`); itself when unchanged. */
export function withContext(model: ResolvedModel, ctx: number): ResolvedModel {
  if (ctx === model.ctx) return model;
  return variant(model, `#ctx${ctx}`, { ctx });
}

/**
 * The model as an embeddings server: itself when its arguments already say `--embeddings`, else a variant
 * started with `--embeddings` and, when the GGUF names no pooling type of its own (`headerPooling` false: a chat
 * model), `--pooling mean`.
 */
export function forEmbeddings(model: ResolvedModel, headerPooling: boolean): ResolvedModel {
  if (servesEmbeddings(model)) return model;
  const pooling = headerPooling || model.args.some((a) => POOLING_FLAGS.has(a)) ? [] : ['--pooling', 'mean'];
  return variant(model, '#embed', { args: [...model.args, '--embeddings', ...pooling] });
}
