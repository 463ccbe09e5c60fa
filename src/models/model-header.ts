/**
 * GGUF headers of model files on disk, read once per file version (path, size, modification time) and kept: the
 * Ollama API shows every listed model's details, and the header of a large model takes a few milliseconds to
 * read even with its long arrays (the vocabulary) skipped.
 */
import { statSync } from 'node:fs';
import { readGgufModelHeaderSync, type GgufModelHeader } from '../gguf/index.js';

/** Arrays longer than this are skipped (their length is kept): what callers need are scalars and short lists. */
const READ_OPTIONS = Object.freeze({ maxArrayItems: 4096 });
const MAX_ENTRIES = 256;

const cache = new Map<string, { key: string; header: GgufModelHeader }>();

/** The header of `file` (a split model's parts merged); throws when the file is missing or not GGUF. */
export function modelHeader(file: string): GgufModelHeader {
  const st = statSync(file);
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = cache.get(file);
  if (hit && hit.key === key) return hit.header;
  const header = readGgufModelHeaderSync(file, READ_OPTIONS);
  cache.delete(file);
  cache.set(file, { key, header });
  while (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value!);
  return header;
}

/** Whether the model names its own pooling type for embeddings (`<arch>.pooling_type`, other than none). */
export function headerHasPooling(header: Pick<GgufModelHeader, 'metadata'>): boolean {
  const arch = header.metadata['general.architecture'];
  const pooling = typeof arch === 'string' ? header.metadata[`${arch}.pooling_type`] : undefined;
  return (typeof pooling === 'number' || typeof pooling === 'bigint') && Number(pooling) > 0;
}
