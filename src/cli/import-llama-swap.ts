/**
 * `llama-smart-proxy import llama-swap FILE [-o OUT]`: writes our configuration for a llama-swap one (see
 * config/llama-swap-import.ts for what carries over). What does not is listed on stderr and as comments in the
 * file; the result is validated as `serve` would before it is written. Without -o it goes to stdout.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { buildConfig } from '../config/index.js';
import { importLlamaSwap } from '../config/llama-swap-import.js';

export interface ImportFlags {
  output?: string;
  /** Overwrite OUT when it exists. */
  force?: boolean;
}

export interface ImportIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

const processIO = (): ImportIO => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

export async function importLlamaSwapCommand(file: string, flags: ImportFlags = {}, io: ImportIO = processIO()): Promise<void> {
  const input = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(input, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the llama-swap configuration ${input}: ${(err as Error).message}`);
  }
  const out = flags.output ? path.resolve(flags.output) : undefined;
  if (out && existsSync(out) && !flags.force) throw new Error(`${out} exists; pass --force to overwrite it`);

  const result = importLlamaSwap(text, { env: io.env, baseDir: path.dirname(input), source: path.basename(input) });
  // What serve would say about it (an error here is a bug of the import, not of the input).
  buildConfig(parseYaml(result.yaml), out ?? path.join(path.dirname(input), 'imported.yaml'), { env: {} });

  for (const n of result.notes) io.stderr.write(`note: ${n.where}: ${n.message}\n`);
  const models = Object.keys(result.config.models as Record<string, unknown>);
  if (out) {
    writeFileSync(out, result.yaml);
    io.stderr.write(`wrote ${out}: ${models.length} model${models.length === 1 ? '' : 's'} (${models.join(', ') || 'none'}), ${result.notes.length} note${result.notes.length === 1 ? '' : 's'}\n`);
  } else {
    io.stdout.write(result.yaml);
  }
}
