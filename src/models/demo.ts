/** The built-in demo model: a tiny generated GGUF, so `serve` works with no config and no download. */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { writeTinyModel } from '../gguf/index.js';

export const DEMO_ALIAS = 'demo';
const DEMO_SEED = 42;
const DEMO_FILE = `demo-tiny-s${DEMO_SEED}-v1.gguf`;

/** Writes the demo model into the cache once; returns its path. */
export async function ensureDemoModel(cacheDir: string): Promise<string> {
  const dir = path.join(cacheDir, 'models');
  const file = path.join(dir, DEMO_FILE);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeTinyModel(tmp, { seed: DEMO_SEED });
  renameSync(tmp, file);
  return file;
}
