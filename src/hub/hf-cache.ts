/**
 * Finding a Hugging Face "owner/repo:variant" among files already on disk, in the Hub's cache layout
 * (models--owner--repo/snapshots/<revision>/<file>). Downloading is not done here.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Hub cache folders to look in: ours first, then the Hugging Face tools' own. */
export function hubCacheDirs(cacheDir: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = [path.join(cacheDir, 'hub')];
  if (env.HF_HUB_CACHE) dirs.push(env.HF_HUB_CACHE);
  else if (env.HF_HOME) dirs.push(path.join(env.HF_HOME, 'hub'));
  else dirs.push(path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
  return [...new Set(dirs.map((d) => path.resolve(d)))];
}

function listGguf(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    const full = path.join(dir, entry.name);
    const isDir = entry.isDirectory() || (entry.isSymbolicLink() && statSync(full, { throwIfNoEntry: false })?.isDirectory());
    if (isDir) out.push(...listGguf(full, rel));
    else if (entry.name.toLowerCase().endsWith('.gguf')) out.push(rel);
  }
  return out;
}

/** True when `file` carries `variant` as a whole tag in its name (Q4_K_M matches "model-Q4_K_M.gguf", not "Q4_K_M_L"). */
export function matchesVariant(file: string, variant: string): boolean {
  const name = path.basename(file).toLowerCase();
  const v = variant.toLowerCase();
  if (name === v || name === `${v}.gguf`) return true;
  const escaped = v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[-._/])${escaped}([-._]|$)`).test(name.replace(/\.gguf$/, '')) || file.toLowerCase().includes(`${v}/`);
}

/**
 * Picks the file for `variant` among `files` (paths relative to a snapshot): projector files are skipped,
 * a split model is named by its first part, several matches are broken deterministically (shortest, then
 * alphabetical). Pure.
 */
export function pickVariantFile(files: readonly string[], variant: string): string | undefined {
  const candidates = files
    .filter((f) => !/mmproj/i.test(path.basename(f)))
    .filter((f) => matchesVariant(f, variant))
    .filter((f) => {
      const split = /-(\d{5})-of-(\d{5})\.gguf$/i.exec(f);
      return !split || split[1] === '00001';
    });
  return candidates.sort((a, b) => a.length - b.length || a.localeCompare(b))[0];
}

export interface CachedHfModel {
  file: string;
  snapshot: string;
}

/** The cached file for repo:variant, or undefined, plus the GGUF files seen (for error messages). */
export function findCachedHfModel(repo: string, variant: string, dirs: readonly string[]): { found?: CachedHfModel; seen: string[] } {
  const seen: string[] = [];
  const folder = `models--${repo.replace('/', '--')}`;
  for (const dir of dirs) {
    const snapshots = path.join(dir, folder, 'snapshots');
    if (!existsSync(snapshots)) continue;
    const revisions = readdirSync(snapshots)
      .map((rev) => ({ rev, mtime: statSync(path.join(snapshots, rev)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const { rev } of revisions) {
      const snap = path.join(snapshots, rev);
      const files = listGguf(snap);
      seen.push(...files);
      const pick = pickVariantFile(files, variant);
      if (pick) return { found: { file: path.join(snap, pick), snapshot: snap }, seen };
    }
  }
  return { seen: [...new Set(seen)].sort() };
}
