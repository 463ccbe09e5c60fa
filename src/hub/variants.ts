/**
 * Which files of a repository a `repo:variant` means (pure).
 *
 * - A file matches a variant when the variant is a whole tag of its name, case-insensitively
 *   (`Q4_K_M` matches `Model-Q4_K_M.gguf` and `model.q4_k_m.gguf`, `UD-Q4_K_XL`, `IQ4_XS`, ...), or names the file
 *   (`Model-Q4_K_M.gguf`, with or without `.gguf`), or a folder holding it (`Q4_K_M/Model-00001-of-00002.gguf`).
 * - Projector files (`mmproj`) are never the model; a split set (`-00001-of-0000N`) is one model, named by its
 *   first part, and counts only when every part is present.
 * - Several matches: the file whose own quant tag equals the variant wins, then the shortest path, then
 *   alphabetical order; the others are reported in `note`.
 * - No variant given (the default, Q4_K_M) and no Q4_K_M file: the closest quantization, by bits per weight from
 *   Q4_K_M's 4.89 (the model's size, hence its memory, stays nearest to what was expected); on a tie the larger
 *   (less lossy) one; tags this table does not know come after all known ones, files without any tag last.
 * - The projector: the `mmproj` file beside the model (same folder first), preferring the model's own quant tag,
 *   then F16, BF16, F32, Q8_0, then alphabetical.
 */
import path from 'node:path';
import { matchesVariant } from './hf-cache.js';
import { bareHfId, DEFAULT_HF_VARIANT } from '../models/identifier.js';

/** Approximate bits per weight of llama.cpp's file types (llama-quantize's table; the K_L/K_XL mixes estimated). */
export const QUANT_BITS_PER_WEIGHT: Readonly<Record<string, number>> = {
  Q4_K_M: 4.89, Q4_K_S: 4.58, Q4_K_L: 5.0, Q4_K_XL: 5.0, Q4_0: 4.55, Q4_1: 5.0, IQ4_NL: 4.5, IQ4_XS: 4.25, MXFP4: 4.25,
  Q5_K_M: 5.69, Q5_K_S: 5.54, Q5_K_L: 5.8, Q5_K_XL: 5.8, Q5_0: 5.54, Q5_1: 6.0,
  Q3_K_XL: 4.4, Q3_K_L: 4.27, Q3_K_M: 3.91, Q3_K_S: 3.5, IQ3_M: 3.66, IQ3_S: 3.44, IQ3_XS: 3.3, IQ3_XXS: 3.06,
  Q6_K: 6.56, Q6_K_L: 6.7, Q6_K_XL: 6.7, Q8_0: 8.5, Q8_K_XL: 9.0,
  Q2_K_XL: 3.2, Q2_K_L: 3.0, Q2_K: 2.96, Q2_K_S: 2.8, IQ2_M: 2.7, IQ2_S: 2.5, IQ2_XS: 2.31, IQ2_XXS: 2.06,
  IQ1_M: 1.75, IQ1_S: 1.56, TQ2_0: 2.06, TQ1_0: 1.69,
  BF16: 16, F16: 16, F32: 32,
};

const TAG = /(?:^|[-._])((?:UD-)?(?:I?Q[1-8](?:_[A-Z0-9]+)*|TQ[12]_0|MXFP4|BF16|F16|F32))(?=[-._]|$)/gi;
const SPLIT = /-(\d{5})-of-(\d{5})\.gguf$/i;

/** The quantization tag in a file name (the last one; the folder's when the name has none), upper-cased. */
export function quantTag(file: string): string | undefined {
  const find = (s: string): string | undefined => {
    const stem = s.replace(SPLIT, '').replace(/\.gguf$/i, '');
    let last: string | undefined;
    for (const m of stem.matchAll(TAG)) last = m[1];
    return last?.toUpperCase();
  };
  const name = find(path.posix.basename(file));
  if (name) return name;
  const dir = path.posix.dirname(file);
  return dir === '.' ? undefined : find(path.posix.basename(dir));
}

/** Bits per weight of a tag (`UD-` mixes count as their base type), or undefined for tags the table lacks. */
export function tagBitsPerWeight(tag: string | undefined): number | undefined {
  if (!tag) return undefined;
  return QUANT_BITS_PER_WEIGHT[tag.toUpperCase().replace(/^UD-/, '')];
}

export function isProjector(file: string): boolean {
  return /mmproj/i.test(path.posix.basename(file));
}

/** The parts of a split set named by any of its parts, or undefined when `file` is not split. */
export function splitSet(file: string): string[] | undefined {
  const m = SPLIT.exec(file);
  if (!m) return undefined;
  const count = Number(m[2]);
  if (count < 1 || Number(m[1]) < 1 || Number(m[1]) > count) return undefined;
  const prefix = file.slice(0, m.index);
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i + 1).padStart(5, '0')}-of-${m[2]}.gguf`);
}

export interface VariantChoice {
  /** The model's files, in order: the one file, or every part of a split set. */
  parts: string[];
  /** The projector file for multimodal models, when the repo has one. */
  mmproj?: string;
  /** The chosen file's quantization tag, when its name has one. */
  tag?: string;
  /** When the choice needs saying: other matches, or the fallback taken for a missing default. */
  note?: string;
}

export interface VariantCandidate {
  first: string;
  parts: string[];
  tag: string | undefined;
}

/** The models among `files`: single GGUF files and complete split sets (projectors are not models). */
export function modelCandidates(files: readonly string[]): VariantCandidate[] {
  return candidates(files).complete;
}

/** Model candidates among `files`: single files and complete split sets; incomplete sets are returned apart. */
function candidates(files: readonly string[]): { complete: VariantCandidate[]; incomplete: { first: string; missing: string[] }[] } {
  const have = new Set(files);
  const complete: VariantCandidate[] = [];
  const incomplete: { first: string; missing: string[] }[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    if (!f.toLowerCase().endsWith('.gguf') || isProjector(f)) continue;
    const parts = splitSet(f) ?? [f];
    const first = parts[0]!;
    if (seen.has(first)) continue;
    seen.add(first);
    const missing = parts.filter((p) => !have.has(p));
    if (missing.length) incomplete.push({ first, missing });
    else complete.push({ first, parts, tag: quantTag(first) });
  }
  return { complete, incomplete };
}

const byName = (a: VariantCandidate, b: VariantCandidate) => a.first.length - b.first.length || (a.first < b.first ? -1 : a.first > b.first ? 1 : 0);

function matching(all: VariantCandidate[], variant: string): VariantCandidate[] {
  const v = variant.toUpperCase();
  return all
    .filter((c) => matchesVariant(c.first, variant) || c.parts.some((p) => matchesVariant(p, variant)))
    .sort((a, b) => Number(b.tag === v) - Number(a.tag === v) || byName(a, b));
}

/** Candidates ranked by closeness to the default quantization (see the module comment). */
export function rankByCloseness(all: readonly VariantCandidate[], target = DEFAULT_HF_VARIANT): VariantCandidate[] {
  const goal = tagBitsPerWeight(target) ?? 4.89;
  const key = (c: VariantCandidate): [number, number, number] => {
    if (!c.tag) return [2, 0, 0];
    const bpw = tagBitsPerWeight(c.tag);
    if (bpw === undefined) return [1, 0, 0];
    return [0, Math.abs(bpw - goal), -bpw];
  };
  return [...all].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2] || byName(a, b);
  });
}

const PROJECTOR_PREFERENCE = ['F16', 'BF16', 'F32', 'Q8_0'];

/** The projector for `model` among `files` (see the module comment), or undefined. */
export function pickProjector(files: readonly string[], model: string): string | undefined {
  const projectors = files.filter((f) => f.toLowerCase().endsWith('.gguf') && isProjector(f));
  if (projectors.length === 0) return undefined;
  const dir = path.posix.dirname(model);
  const tag = quantTag(model);
  const rank = (f: string): number[] => {
    const t = quantTag(f);
    const pref = t ? PROJECTOR_PREFERENCE.indexOf(t) : -1;
    return [path.posix.dirname(f) === dir ? 0 : 1, t !== undefined && t === tag ? 0 : 1, pref < 0 ? PROJECTOR_PREFERENCE.length : pref, f.length];
  };
  return [...projectors].sort((a, b) => {
    const ra = rank(a);
    const rb = rank(b);
    for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i]! - rb[i]!;
    return a < b ? -1 : a > b ? 1 : 0;
  })[0];
}

export type VariantOutcome =
  | { ok: true; choice: VariantChoice }
  /** Nothing matched; `incomplete` names split sets that matched but miss parts. */
  | { ok: false; incomplete: { first: string; missing: string[] }[] };

/**
 * Chooses the files for `variant` among a repo's `files` (paths relative to the repo root). `explicit` is false
 * when the client named no variant (the default applies, then the closest quantization).
 */
export function chooseVariant(files: readonly string[], variant: string, explicit: boolean): VariantOutcome {
  const { complete, incomplete } = candidates(files);
  const matches = matching(complete, variant);
  let pick: VariantCandidate | undefined = matches[0];
  let note: string | undefined;
  if (pick && matches.length > 1) note = `${variant} matches ${matches.length} models; chose ${pick.first} (others: ${matches.slice(1).map((c) => c.first).join(', ')})`;
  if (!pick && !explicit) {
    pick = rankByCloseness(complete)[0];
    if (pick) note = `no ${variant} file; chose the closest quantization, ${pick.tag ?? pick.first}`;
  }
  if (!pick) {
    const v = variant.toLowerCase();
    return { ok: false, incomplete: incomplete.filter((s) => matchesVariant(s.first, variant) || s.first.toLowerCase().includes(v)) };
  }
  const mmproj = pickProjector(files, pick.first);
  return { ok: true, choice: { parts: pick.parts, ...(mmproj ? { mmproj } : {}), ...(pick.tag ? { tag: pick.tag } : {}), ...(note ? { note } : {}) } };
}

/** The GGUF model files of a listing, for "these exist" messages: one line per model (split sets once). */
export function describeModelFiles(files: readonly string[]): string[] {
  const { complete, incomplete } = candidates(files);
  return [
    ...complete.map((c) => (c.parts.length > 1 ? `${c.first} (+${c.parts.length - 1} parts)` : c.first)),
    ...incomplete.map((s) => `${s.first} (incomplete split set)`),
  ].sort();
}

/**
 * True when an identifier string names its variant (`owner/repo:variant`), false for a bare `owner/repo` (or
 * `hf.co/owner/repo`, or Ollama's `:latest`).
 */
export function variantGiven(id: string): boolean {
  return /^[^:]+\/[^:/]+:[^:/]+$/.test(bareHfId(id));
}
