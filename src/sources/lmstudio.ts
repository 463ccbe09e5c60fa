/**
 * LM Studio's model folder: `<root>/<publisher>/<repo>/*.gguf` (projectors beside the model), `~/.lmstudio/models`
 * and the older `~/.cache/lm-studio/models`, or `lmstudio.models`. `publisher/repo[:variant]` is looked up there
 * (after the Hugging Face caches, before any download); the variant is chosen as for a Hub repo
 * (models/hub-variants.ts). Read-only.
 */
import { readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { chooseVariant, type VariantChoice } from '../hub/variants.js';
import { DEFAULT_HF_VARIANT } from '../models/identifier.js';

/** The folders to look in, in order. */
export function lmStudioDirs(config: Pick<Config, 'lmstudio'>): string[] {
  if (config.lmstudio.models) return [path.resolve(config.lmstudio.models)];
  return [path.join(os.homedir(), '.lmstudio', 'models'), path.join(os.homedir(), '.cache', 'lm-studio', 'models')];
}

/** GGUF files under `dir`, relative to it (`/`-separated), two levels deep at most. */
function ggufFiles(dir: string, depth = 0, prefix = ''): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    const full = path.join(dir, e.name);
    const st = e.isSymbolicLink() ? statSync(full, { throwIfNoEntry: false }) : undefined;
    if ((e.isDirectory() || st?.isDirectory()) && depth < 2) out.push(...ggufFiles(full, depth + 1, rel));
    else if ((e.isFile() || st?.isFile()) && e.name.toLowerCase().endsWith('.gguf')) out.push(rel);
  }
  return out.sort();
}

export interface LmStudioModel {
  /** `publisher/repo:TAG` (the chosen file's quantization tag, else the variant asked for). */
  id: string;
  repo: string;
  root: string;
  /** The model file (the first part of a split model). */
  file: string;
  parts: string[];
  mmproj?: string;
  choice: VariantChoice;
}

/** The folder of `publisher/repo` in `root`: the exact name, else a case-insensitive match. */
function repoDir(root: string, repo: string): string | undefined {
  const [publisher, name] = repo.split('/') as [string, string];
  const exact = path.join(root, publisher, name);
  if (statSync(exact, { throwIfNoEntry: false })?.isDirectory()) return exact;
  const match = (dir: string, want: string) => {
    try {
      return readdirSync(dir).find((n) => n.toLowerCase() === want.toLowerCase());
    } catch {
      return undefined;
    }
  };
  const p = match(root, publisher);
  const r = p ? match(path.join(root, p), name) : undefined;
  return p && r ? path.join(root, p, r) : undefined;
}

/**
 * `repo` with `variant` (undefined: none named, Q4_K_M else the closest) in the folders, or undefined; `seen`
 * lists the repo's GGUF files found (for messages).
 */
export function findLmStudioModel(dirs: readonly string[], repo: string, variant: string | undefined): { found?: LmStudioModel; seen: string[] } {
  const seen: string[] = [];
  for (const root of dirs) {
    const dir = repoDir(root, repo);
    if (!dir) continue;
    const files = ggufFiles(dir);
    seen.push(...files);
    const outcome = chooseVariant(files, variant ?? DEFAULT_HF_VARIANT, variant !== undefined);
    if (!outcome.ok) continue;
    const c = outcome.choice;
    const abs = (f: string) => path.join(dir, ...f.split('/'));
    return {
      found: {
        id: `${repo}:${c.tag ?? variant ?? DEFAULT_HF_VARIANT}`,
        repo,
        root,
        file: abs(c.parts[0]!),
        parts: c.parts.map(abs),
        ...(c.mmproj ? { mmproj: abs(c.mmproj) } : {}),
        choice: c,
      },
      seen,
    };
  }
  return { seen: [...new Set(seen)] };
}

/** One listed model file. */
export interface LmStudioEntry {
  repo: string;
  /** `publisher/repo:TAG`, or `publisher/repo:<file stem>` for a file without a quantization tag. */
  id: string;
  file: string;
  mmproj?: string;
}

/** Every model of the folders (projectors and later split parts left out). */
export function listLmStudioModels(dirs: readonly string[]): LmStudioEntry[] {
  const out = new Map<string, LmStudioEntry>();
  for (const root of dirs) {
    for (const publisher of subdirs(root)) {
      for (const name of subdirs(path.join(root, publisher))) {
        const repo = `${publisher}/${name}`;
        const dir = path.join(root, publisher, name);
        const files = ggufFiles(dir);
        for (const f of files) {
          const outcome = chooseVariant(files, path.posix.basename(f), true);
          if (!outcome.ok || outcome.choice.parts[0] !== f) continue;
          const c = outcome.choice;
          const id = `${repo}:${c.tag ?? path.posix.basename(f).replace(/\.gguf$/i, '')}`;
          if (out.has(id)) continue;
          out.set(id, { repo, id, file: path.join(dir, ...f.split('/')), ...(c.mmproj ? { mmproj: path.join(dir, ...c.mmproj.split('/')) } : {}) });
        }
      }
    }
  }
  return [...out.values()];
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() || e.isSymbolicLink()).map((e) => e.name).sort();
  } catch {
    return [];
  }
}
