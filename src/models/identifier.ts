/**
 * Model identifiers as clients write them, parsed without touching the disk:
 *   - an alias from the config ("tiny-a"),
 *   - a GGUF file path ending in .gguf, relative to (and confined to) the models directory,
 *   - a Hugging Face id "owner/repo" or "owner/repo:variant" (variant defaults to Q4_K_M), also written as Ollama
 *     and llama.cpp users write it: "hf.co/owner/repo:variant", "huggingface.co/...", and ":latest" for no variant.
 */
import path from 'node:path';
import { ClientError } from './errors.js';

export type ModelRef =
  | { kind: 'alias'; alias: string }
  | { kind: 'file'; path: string }
  | { kind: 'hf'; repo: string; variant: string };

export const DEFAULT_HF_VARIANT = 'Q4_K_M';
const MAX_ID_LENGTH = 512;
const HF_ID = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?::([\w.-]+))?$/;
const HF_HOST = /^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\//i;

/** The id without an "hf.co/" (or huggingface.co) prefix. */
export function withoutHfHost(id: string): string {
  return id.trim().replace(HF_HOST, '');
}

/** The id without an "hf.co/" (or huggingface.co) prefix and without Ollama's ":latest" tag. */
export function bareHfId(id: string): string {
  return withoutHfHost(id).replace(/:latest$/i, '');
}

/**
 * Parses `id`. `aliases` are the configured names (checked first, so an alias may look like anything);
 * `modelsDir` is the absolute folder that file identifiers must stay inside.
 */
export function parseModelId(id: unknown, aliases: ReadonlySet<string>, modelsDir: string): ModelRef {
  if (typeof id !== 'string' || id.trim() === '') {
    throw new ClientError(400, 'model_required', '"model" must be a non-empty string naming a configured model, a .gguf file or a Hugging Face repo');
  }
  if (id.length > MAX_ID_LENGTH) throw new ClientError(400, 'invalid_model', `model identifier is longer than ${MAX_ID_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(id)) throw new ClientError(400, 'invalid_model', 'model identifier contains control characters');
  if (aliases.has(id)) return { kind: 'alias', alias: id };

  if (id.toLowerCase().endsWith('.gguf')) {
    const root = path.resolve(modelsDir);
    const file = path.resolve(root, id);
    const rel = path.relative(root, file);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new ClientError(403, 'model_path_forbidden', `model path "${id}" is outside the models directory (${root})`);
    }
    return { kind: 'file', path: file };
  }

  const hf = HF_ID.exec(bareHfId(id));
  if (hf) {
    const [, owner, repo, variant] = hf;
    if (owner && repo && !repo.endsWith('.') && !id.includes('..')) {
      return { kind: 'hf', repo: `${owner}/${repo}`, variant: variant ?? DEFAULT_HF_VARIANT };
    }
  }
  if (/^[\w.:@-]+$/.test(id)) {
    const known = [...aliases].sort();
    throw new ClientError(
      404,
      'model_not_found',
      `model "${id}" is not configured${known.length ? ` (configured: ${known.join(', ')})` : ''}; name an alias, a .gguf file in the models directory, or a Hugging Face "owner/repo:variant"`,
    );
  }
  throw new ClientError(400, 'invalid_model', `"${id}" is not a model identifier: use an alias, a path ending in .gguf, or "owner/repo[:variant]"`);
}
