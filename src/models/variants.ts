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
 * The model for a request asking for `ctx` tokens (Ollama's num_ctx): the smallest running instance of it (the
 * model itself or one of its `#ctx` variants) whose context holds `ctx`, else the `#ctx<ctx>` variant.
 */
export function withRunningContext(model: ResolvedModel, ctx: number, running: readonly { modelId: string; ctx: number }[]): ResolvedModel {
  let best: { modelId: string; ctx: number } | undefined;
  for (const r of running) {
    const ours = r.modelId === model.id || r.modelId === `${model.id}#ctx${r.ctx}`;
    if (ours && r.ctx >= ctx && (!best || r.ctx < best.ctx)) best = r;
  }
  return withContext(model, best ? best.ctx : ctx);
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

/**
 * A model whose own arguments say `--embeddings` but name no pooling, for a GGUF that names none either (a chat
 * model): `--pooling mean`, as its `#embed` variant would get (llama-server's default, none, refuses
 * /v1/embeddings). Otherwise the model as it is.
 */
export function withEmbeddingPooling(model: ResolvedModel, headerPooling: boolean): ResolvedModel {
  if (!servesEmbeddings(model) || headerPooling || model.args.some((a) => POOLING_FLAGS.has(a))) return model;
  return { ...model, args: [...model.args, '--pooling', 'mean'] };
}

/** One suffix of a variant id: `#ctx<N>` or `#embed`. */
export type VariantStep = { kind: 'ctx'; ctx: number } | { kind: 'embed' };

/**
 * A variant id as the pool lists it (`tiny-a#ctx1024`, `chat#embed#ctx512`): the model's id and the steps that
 * make the variant; undefined when `id` has no `#`. Throws (with the reason) on a suffix that names no variant.
 */
export function parseVariantId(id: string): { base: string; steps: VariantStep[] } | undefined {
  const hash = id.indexOf('#');
  if (hash <= 0) return undefined;
  const steps: VariantStep[] = [];
  for (const part of id.slice(hash + 1).split('#')) {
    const ctx = /^ctx([1-9][0-9]{0,7})$/.exec(part);
    if (ctx) steps.push({ kind: 'ctx', ctx: Number(ctx[1]) });
    else if (part === 'embed') steps.push({ kind: 'embed' });
    else throw new Error(`"#${part}" names no variant (they are #ctx<tokens> and #embed)`);
  }
  return { base: id.slice(0, hash), steps };
}
