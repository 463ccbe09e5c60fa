/**
 * `llama-smart-proxy models`: what the Hugging Face caches hold (ours, `<cacheDir>/hub`, and other Hub tools'):
 * repo, file, size, last used, and partial downloads. Reads the disk only.
 */
import { loadConfig } from '../config/index.js';
import { createModelHub, formatBytes, type CacheEntry } from '../models/index.js';
import type { CliIO } from './pull.js';

export interface ModelsFlags {
  config?: string;
  json?: boolean;
  /** Also list files that are not GGUF (README, config.json, ...). */
  all?: boolean;
}

/** "just now", "5 min ago", "3 h ago", "12 days ago". */
export function ago(date: Date, now = Date.now()): string {
  const s = Math.max(0, (now - date.getTime()) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} days ago`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

function state(e: CacheEntry): string {
  if (!e.partial) return e.kind === 'mmproj' ? 'projector' : e.kind === 'part' ? 'split part' : e.kind === 'other' ? 'other' : 'complete';
  return e.expectedBytes ? `partial ${Math.floor((e.sizeBytes / e.expectedBytes) * 100)}%` : 'partial';
}

export function modelsCommand(flags: ModelsFlags = {}, io: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env }): void {
  const config = loadConfig({ ...(flags.config ? { file: flags.config } : {}), env: io.env });
  const hub = createModelHub(config, io.env);
  const entries = hub.list().filter((e) => flags.all || e.partial || e.kind !== 'other');
  void hub.close();
  if (flags.json) {
    io.stdout.write(
      `${JSON.stringify(
        entries.map((e) => ({
          repo: e.repo,
          file: e.file,
          revision: e.revision ?? null,
          path: e.path,
          size_bytes: e.sizeBytes,
          expected_bytes: e.expectedBytes ?? null,
          last_used: e.lastUsed.toISOString(),
          partial: e.partial,
          kind: e.kind,
          ours: e.ours,
          cache: e.cacheRoot,
        })),
        null,
        2,
      )}\n`,
    );
    return;
  }
  if (entries.length === 0) {
    io.stdout.write(`no models in the caches (${hub.store.searchDirs.join(', ')})\n`);
    return;
  }
  const now = Date.now();
  io.stdout.write(
    `${table([
      ['REPO', 'FILE', 'SIZE', 'LAST USED', 'STATE', 'CACHE'],
      ...entries.map((e) => [e.repo, e.file, formatBytes(e.sizeBytes), ago(e.lastUsed, now), state(e), e.ours ? 'ours' : e.cacheRoot]),
    ])}\n`,
  );
  const ours = hub.store.totalBytes();
  const limit = config.hub.cacheLimitGiB;
  io.stdout.write(`\nour cache (${hub.store.root}): ${formatBytes(ours)}${limit > 0 ? ` of ${limit} GiB (hub.cacheLimitGiB)` : ', no size limit'}\n`);
}
