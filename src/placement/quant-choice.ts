/**
 * Which quantization of a repo to run here (pure): the highest-quality variant whose estimate fits on one GPU now
 * (counting the memory of idle instances that could be evicted as room), else the best that fits split over
 * several GPUs, else the best that fits the host's RAM on the CPU, else the smallest (its placement then says
 * why it cannot run, or offloads part of it). Variants of one quality tier (F32, BF16, F16) go to the smaller.
 *
 * The estimate of each variant comes from its GGUF header (read by range before any download); the room from
 * the planner's own notion of usable memory (driver's free and the ledger, loads under way, the reserve).
 * Candidates without an estimate (not read: a better one already fits one GPU) are reported, never chosen.
 */
import { compareQuantQuality } from '../models/quant-quality.js';
import { formatGiB } from './planner.js';
import type { Candidate, Cost, EstimateFn } from './types.js';

export interface QuantCandidate {
  /** The variant's name: its quantization tag, else its file name. */
  variant: string;
  /** The quantization tag, when the file name has one. */
  tag?: string;
  /** The model file in the repo (the first part of a split set). */
  file: string;
  /** Bytes of the model's files (all parts). */
  fileBytes: number;
  /** The memory model of this variant at the model's settings; absent: not estimated. */
  estimate?: EstimateFn;
}

export interface QuantRoomGpu {
  index: number;
  name: string;
  /** Room for a new model now (the planner's usable bytes). */
  usableBytes: number;
  /** Held by idle, unpinned instances of ours: room once they are evicted. */
  evictableBytes: number;
}

export interface QuantRoom {
  gpus: readonly QuantRoomGpu[];
  /** Host RAM for a new model now; undefined: not checked. */
  hostBytes?: number;
  /** Host RAM held by idle, unpinned instances of ours. */
  hostEvictableBytes?: number;
  /** Whether a model may run on the CPU when no GPU holds it (gpu.cpuFallback, or no GPU at all). */
  cpuAllowed: boolean;
}

export type QuantTier = 'one-gpu' | 'split' | 'cpu' | 'none';

export interface QuantCandidateReport {
  variant: string;
  file: string;
  fileBytes: number;
  /** False when the header was not read (a better variant already fits one GPU). */
  estimated: boolean;
  /** Bytes on one GPU with every layer offloaded (the estimate), and on the host beside it. */
  bytes?: number;
  hostBytes?: number;
  /** Bytes on the host when run on the CPU. */
  cpuBytes?: number;
  fitsOneGpu: boolean;
  /** The GPU it fits on (the one with the most room that holds it). */
  gpu?: number;
  fitsSplit: boolean;
  /** The GPUs of the smallest split that holds it, and their bytes. */
  splitGpus?: number[];
  splitBytes?: number[];
  fitsCpu: boolean;
}

export interface QuantChoice {
  /** The variant chosen (its tag, else its file name) and its file in the repo. */
  chosen: string;
  file: string;
  tier: QuantTier;
  /** One line for logs and /plan, with the numbers behind it. */
  reason: string;
  /** Every candidate, best quality first. */
  candidates: QuantCandidateReport[];
}

function withRoom(room: QuantRoom): { index: number; bytes: number }[] {
  return room.gpus.map((g) => ({ index: g.index, bytes: g.usableBytes + g.evictableBytes })).sort((a, b) => b.bytes - a.bytes || a.index - b.index);
}

function proportional(gpus: readonly { bytes: number }[]): number[] {
  const total = gpus.reduce((s, g) => s + g.bytes, 0);
  return gpus.map((g) => (total > 0 ? Math.round((g.bytes / total) * 1000) / 1000 : 1));
}

function assess(c: QuantCandidate, room: QuantRoom): QuantCandidateReport {
  const base = { variant: c.variant, file: c.file, fileBytes: c.fileBytes };
  if (!c.estimate) return { ...base, estimated: false, fitsOneGpu: false, fitsSplit: false, fitsCpu: false };
  const estimate = c.estimate;
  const hostRoom = room.hostBytes === undefined ? Infinity : room.hostBytes + (room.hostEvictableBytes ?? 0);
  const gpus = withRoom(room);
  const report: QuantCandidateReport = { ...base, estimated: true, fitsOneGpu: false, fitsSplit: false, fitsCpu: false };

  if (gpus.length > 0) {
    const one = estimate({ gpus: [gpus[0]!.index], ngl: 'full' });
    report.bytes = one.gpuBytes[0] ?? 0;
    report.hostBytes = one.hostBytes;
    const fit = one.hostBytes <= hostRoom ? gpus.find((g) => report.bytes! <= g.bytes) : undefined;
    if (fit) {
      report.fitsOneGpu = true;
      report.gpu = fit.index;
    }
    for (let k = 2; k <= gpus.length && !report.fitsSplit; k++) {
      const set = gpus.slice(0, k).sort((a, b) => a.index - b.index);
      const candidate: Candidate = { gpus: set.map((g) => g.index), ngl: 'full', tensorSplit: proportional(set) };
      const cost: Cost = estimate(candidate);
      if (cost.hostBytes <= hostRoom && set.every((g, i) => (cost.gpuBytes[i] ?? 0) <= g.bytes)) {
        report.fitsSplit = true;
        report.splitGpus = candidate.gpus;
        report.splitBytes = cost.gpuBytes;
      }
    }
  }
  const cpu = estimate({ gpus: [], ngl: 0 });
  report.cpuBytes = cpu.hostBytes;
  report.fitsCpu = room.cpuAllowed && cpu.hostBytes <= hostRoom;
  return report;
}

/** Best quality first; within a tier, the smaller files first; then by name. */
export function rankCandidates<T extends Pick<QuantCandidate, 'tag' | 'fileBytes' | 'file'>>(candidates: readonly T[]): T[] {
  return [...candidates].sort((a, b) => compareQuantQuality(a.tag, b.tag) || a.fileBytes - b.fileBytes || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

function describeRoom(room: QuantRoom): string {
  if (room.gpus.length === 0) return 'no GPU';
  return room.gpus
    .map((g) => `GPU ${g.index} ${formatGiB(g.usableBytes)} free${g.evictableBytes > 0 ? ` + ${formatGiB(g.evictableBytes)} idle` : ''}`)
    .join(', ');
}

/** Chooses among `candidates` (see the module comment). Throws when there is none. */
export function chooseQuantization(candidates: readonly QuantCandidate[], room: QuantRoom): QuantChoice {
  if (candidates.length === 0) throw new RangeError('no quantization to choose from');
  const ranked = rankCandidates(candidates);
  const reports = ranked.map((c) => assess(c, room));
  const pick = (test: (r: QuantCandidateReport) => boolean) => reports.find(test);
  const roomText = describeRoom(room);
  const done = (r: QuantCandidateReport, tier: QuantTier, reason: string): QuantChoice => ({ chosen: r.variant, file: r.file, tier, reason, candidates: reports });
  const better = (r: QuantCandidateReport) => reports.slice(0, reports.indexOf(r)).filter((x) => x.estimated).map((x) => x.variant);
  const over = (r: QuantCandidateReport) => (better(r).length > 0 ? `; ${better(r).join(', ')} would not` : '');

  const one = pick((r) => r.fitsOneGpu);
  if (one) return done(one, 'one-gpu', `${one.variant}: the best quantization that fits one GPU (${formatGiB(one.bytes!)} on GPU ${one.gpu}; ${roomText})${over(one)}`);
  const split = pick((r) => r.fitsSplit);
  if (split) {
    const total = split.splitBytes!.reduce((a, b) => a + b, 0);
    return done(split, 'split', `${split.variant}: the best quantization that fits split over GPUs ${split.splitGpus!.join(',')} (${formatGiB(total)}; no single GPU holds one; ${roomText})${over(split)}`);
  }
  const cpu = pick((r) => r.fitsCpu);
  if (cpu) return done(cpu, 'cpu', `${cpu.variant}: the best quantization for the CPU (${formatGiB(cpu.cpuBytes!)} of host memory; no GPU holds one: ${roomText})${over(cpu)}`);
  const estimated = reports.filter((r) => r.estimated);
  const pool = estimated.length > 0 ? estimated : reports;
  // A stable sort: of two equally small, the better (ranked first) stays first.
  const smallest = [...pool].sort((a, b) => (a.cpuBytes ?? a.fileBytes) - (b.cpuBytes ?? b.fileBytes))[0]!;
  return done(smallest, 'none', `${smallest.variant}: the smallest quantization; none fits this machine now (${roomText}${room.hostBytes !== undefined ? `, host ${formatGiB(room.hostBytes)}` : ''})`);
}
