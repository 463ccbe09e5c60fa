/**
 * Which quantization of a repo to run (pure): the highest-quality variant whose estimate fits on one GPU now
 * (counting the memory of idle instances that could be evicted as room), else the best that fits split over
 * several GPUs, else the best that fits the host's RAM on the CPU, else the smallest (its placement then says
 * why it cannot run, or offloads part of it). Variants of one quality tier (F32, BF16, F16) go to the smaller.
 *
 * In a cluster the room is one QuantRoom per reachable node (this one first): a variant fits one GPU when it
 * fits one GPU of any node (that node's idle instances counted as its room); a split is over the GPUs of one
 * node, never across nodes (that is RPC, which the cluster planner decides on its own); the CPU is that of the
 * node with the most RAM for it. The node it was found on is reported; the cluster planner then places the
 * chosen file as it places any model.
 *
 * The estimate of each variant comes from its GGUF header (read by range before any download); the room from
 * the planner's own notion of usable memory (driver's free and the ledger, loads under way, the reserve).
 * Candidates without an estimate (not read: a better one already fits one GPU) are reported, never chosen.
 */
import { compareQuantQuality } from '../models/quant-quality.js';
import { eligibleGpus, formatGiB, usableBytes, usableHostBytes } from './planner.js';
import type { Candidate, Cost, EstimateFn, PlannerGpu, PlannerSettings, RunningInstance } from './types.js';

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
  /**
   * Its memory model on a node of the cluster (that node's own CUDA runtime), by the node's name; absent, or
   * undefined returned: `estimate` on every node.
   */
  estimateOn?: (node: string) => EstimateFn | undefined;
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
  /** The cluster node this room is on; absent: this machine, outside any cluster. */
  node?: string;
  gpus: readonly QuantRoomGpu[];
  /** Host RAM for a new model now; undefined: not checked. */
  hostBytes?: number;
  /** Host RAM held by idle, unpinned instances of ours. */
  hostEvictableBytes?: number;
  /** Whether a model may run on the CPU when no GPU holds it (gpu.cpuFallback, or no GPU at all). */
  cpuAllowed: boolean;
}

/** What a node's room is computed from: its planner's view (GPU readings, its instances, loads under way, RAM). */
export interface QuantRoomInput {
  node?: string;
  gpus: readonly PlannerGpu[];
  running: readonly RunningInstance[];
  loading: ReadonlyMap<number, number>;
  host?: { totalBytes: number; availableBytes: number; loadingBytes?: number };
  settings: PlannerSettings;
  cpuAllowed: boolean;
}

/**
 * A node's room as the planner counts it: usable bytes per GPU after the ledger, loads under way and the
 * reserve, on GPUs not skipped as busy; plus what idle unpinned instances hold (room once evicted); the same for
 * the host. For this machine (PlacementService.quantRoom) and for a peer's polled state alike.
 */
export function quantRoomOf(input: QuantRoomInput): QuantRoom {
  const usable = usableBytes(input);
  const idle = input.running.filter((r) => r.idle && !r.pinned);
  const hostBytes = input.host ? usableHostBytes({ host: input.host, running: input.running, settings: input.settings }) : undefined;
  return {
    ...(input.node !== undefined ? { node: input.node } : {}),
    gpus: eligibleGpus(input).map((g) => ({
      index: g.index,
      name: g.name,
      usableBytes: usable.get(g.index) ?? 0,
      evictableBytes: idle.reduce((sum, r) => sum + (r.gpuBytes.get(g.index) ?? 0), 0),
    })),
    ...(hostBytes !== undefined ? { hostBytes, hostEvictableBytes: idle.reduce((sum, r) => sum + (r.hostBytes ?? 0), 0) } : {}),
    cpuAllowed: input.cpuAllowed,
  };
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
  /** The GPU it fits on (the one with the most room that holds it), and its node in a cluster. */
  gpu?: number;
  node?: string;
  fitsSplit: boolean;
  /** The GPUs of the smallest split that holds it (all of one node: `splitNode` in a cluster), and their bytes. */
  splitGpus?: number[];
  splitBytes?: number[];
  splitNode?: string;
  fitsCpu: boolean;
  /** In a cluster, the node whose CPU it runs on (the one with the most RAM for it). */
  cpuNode?: string;
}

export interface QuantChoice {
  /** The variant chosen (its tag, else its file name) and its file in the repo. */
  chosen: string;
  file: string;
  tier: QuantTier;
  /** In a cluster, the node it was found to fit (the cluster planner still decides where it runs). */
  node?: string;
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

/** One candidate on one node's room. */
interface NodeFit {
  room: QuantRoom;
  /** Room beside a GPU placement, or for the CPU (Infinity: not checked). */
  hostRoom: number;
  bytes?: number;
  hostBytes?: number;
  one?: { gpu: number; room: number };
  split?: { gpus: number[]; bytes: number[]; room: number };
  cpuBytes: number;
  fitsCpu: boolean;
}

function assessOn(estimate: EstimateFn, room: QuantRoom): NodeFit {
  const hostRoom = room.hostBytes === undefined ? Infinity : room.hostBytes + (room.hostEvictableBytes ?? 0);
  const gpus = withRoom(room);
  const fit: NodeFit = { room, hostRoom, cpuBytes: 0, fitsCpu: false };
  if (gpus.length > 0) {
    const one = estimate({ gpus: [gpus[0]!.index], ngl: 'full' });
    const bytes = one.gpuBytes[0] ?? 0;
    fit.bytes = bytes;
    fit.hostBytes = one.hostBytes;
    const holder = one.hostBytes <= hostRoom ? gpus.find((g) => bytes <= g.bytes) : undefined;
    if (holder) fit.one = { gpu: holder.index, room: holder.bytes };
    for (let k = 2; k <= gpus.length && !fit.split; k++) {
      const set = gpus.slice(0, k).sort((a, b) => a.index - b.index);
      const candidate: Candidate = { gpus: set.map((g) => g.index), ngl: 'full', tensorSplit: proportional(set) };
      const cost: Cost = estimate(candidate);
      if (cost.hostBytes <= hostRoom && set.every((g, i) => (cost.gpuBytes[i] ?? 0) <= g.bytes)) {
        fit.split = { gpus: candidate.gpus, bytes: cost.gpuBytes, room: set.reduce((a, g) => a + g.bytes, 0) };
      }
    }
  }
  const cpu = estimate({ gpus: [], ngl: 0 });
  fit.cpuBytes = cpu.hostBytes;
  fit.fitsCpu = room.cpuAllowed && cpu.hostBytes <= hostRoom;
  return fit;
}

/** The first of `fits` that `better` never puts after another: ties go to the earlier room (this node first). */
function bestOf<T>(fits: readonly T[], better: (a: T, b: T) => number): T | undefined {
  let best: T | undefined;
  for (const f of fits) if (best === undefined || better(f, best) < 0) best = f;
  return best;
}

function assess(c: QuantCandidate, rooms: readonly QuantRoom[]): QuantCandidateReport {
  const base = { variant: c.variant, file: c.file, fileBytes: c.fileBytes };
  const local = c.estimate;
  if (!local) return { ...base, estimated: false, fitsOneGpu: false, fitsSplit: false, fitsCpu: false };
  const fits = rooms.map((room) => assessOn((room.node !== undefined ? c.estimateOn?.(room.node) : undefined) ?? local, room));
  const report: QuantCandidateReport = { ...base, estimated: true, fitsOneGpu: false, fitsSplit: false, fitsCpu: false };
  const nodeOf = (f: NodeFit) => f.room.node;

  // One GPU: the roomiest GPU of any node that holds it.
  const one = bestOf(fits.filter((f) => f.one), (a, b) => b.one!.room - a.one!.room);
  const shown = one ?? fits.find((f) => f.bytes !== undefined);
  if (shown) {
    report.bytes = shown.bytes!;
    report.hostBytes = shown.hostBytes!;
  }
  if (one) {
    report.fitsOneGpu = true;
    report.gpu = one.one!.gpu;
    if (nodeOf(one) !== undefined) report.node = nodeOf(one)!;
  }
  // A split over one node's GPUs: the fewest GPUs, then the most room.
  const split = bestOf(fits.filter((f) => f.split), (a, b) => a.split!.gpus.length - b.split!.gpus.length || b.split!.room - a.split!.room);
  if (split) {
    report.fitsSplit = true;
    report.splitGpus = split.split!.gpus;
    report.splitBytes = split.split!.bytes;
    if (nodeOf(split) !== undefined) report.splitNode = nodeOf(split)!;
  }
  // The CPU of the node with the most RAM for it.
  const cpu = bestOf(fits.filter((f) => f.fitsCpu), (a, b) => (a.hostRoom === b.hostRoom ? 0 : b.hostRoom - a.hostRoom));
  report.cpuBytes = (cpu ?? fits[0]!).cpuBytes;
  if (cpu) {
    report.fitsCpu = true;
    if (nodeOf(cpu) !== undefined) report.cpuNode = nodeOf(cpu)!;
  }
  return report;
}

/** Best quality first; within a tier, the smaller files first; then by name. */
export function rankCandidates<T extends Pick<QuantCandidate, 'tag' | 'fileBytes' | 'file'>>(candidates: readonly T[]): T[] {
  return [...candidates].sort((a, b) => compareQuantQuality(a.tag, b.tag) || a.fileBytes - b.fileBytes || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

function describeGpus(room: QuantRoom): string {
  if (room.gpus.length === 0) return 'no GPU';
  return room.gpus
    .map((g) => `GPU ${g.index} ${formatGiB(g.usableBytes)} free${g.evictableBytes > 0 ? ` + ${formatGiB(g.evictableBytes)} idle` : ''}`)
    .join(', ');
}

/** The room as a reason shows it: this machine's GPUs, or each node's (`withHost`: and its RAM). */
function describeRooms(rooms: readonly QuantRoom[], withHost: boolean): string {
  const host = (r: QuantRoom) => (withHost && r.hostBytes !== undefined ? `, host ${formatGiB(r.hostBytes)}` : '');
  if (rooms.length === 1 && rooms[0]!.node === undefined) return `${describeGpus(rooms[0]!)}${host(rooms[0]!)}`;
  return rooms.map((r) => `node ${r.node ?? '?'}: ${describeGpus(r)}${host(r)}`).join('; ');
}

const ofNode = (node: string | undefined) => (node !== undefined ? ` of node ${node}` : '');

/**
 * Chooses among `candidates` (see the module comment), on one machine's room or on one room per node of a cluster
 * (this node's first: it wins ties). Throws when there is no candidate or no room.
 */
export function chooseQuantization(candidates: readonly QuantCandidate[], room: QuantRoom | readonly QuantRoom[]): QuantChoice {
  if (candidates.length === 0) throw new RangeError('no quantization to choose from');
  const rooms: readonly QuantRoom[] = Array.isArray(room) ? room : [room as QuantRoom];
  if (rooms.length === 0) throw new RangeError('no room to choose a quantization for');
  const ranked = rankCandidates(candidates);
  const reports = ranked.map((c) => assess(c, rooms));
  const pick = (test: (r: QuantCandidateReport) => boolean) => reports.find(test);
  const roomText = describeRooms(rooms, false);
  const done = (r: QuantCandidateReport, tier: QuantTier, node: string | undefined, reason: string): QuantChoice => ({
    chosen: r.variant,
    file: r.file,
    tier,
    ...(node !== undefined ? { node } : {}),
    reason,
    candidates: reports,
  });
  const better = (r: QuantCandidateReport) => reports.slice(0, reports.indexOf(r)).filter((x) => x.estimated).map((x) => x.variant);
  const over = (r: QuantCandidateReport) => (better(r).length > 0 ? `; ${better(r).join(', ')} would not` : '');

  const one = pick((r) => r.fitsOneGpu);
  if (one) return done(one, 'one-gpu', one.node, `${one.variant}: the best quantization that fits one GPU (${formatGiB(one.bytes!)} on GPU ${one.gpu}${ofNode(one.node)}; ${roomText})${over(one)}`);
  const split = pick((r) => r.fitsSplit);
  if (split) {
    const total = split.splitBytes!.reduce((a, b) => a + b, 0);
    return done(
      split,
      'split',
      split.splitNode,
      `${split.variant}: the best quantization that fits split over GPUs ${split.splitGpus!.join(',')}${ofNode(split.splitNode)} (${formatGiB(total)}; no single GPU holds one; ${roomText})${over(split)}`,
    );
  }
  const cpu = pick((r) => r.fitsCpu);
  if (cpu) return done(cpu, 'cpu', cpu.cpuNode, `${cpu.variant}: the best quantization for the CPU${ofNode(cpu.cpuNode)} (${formatGiB(cpu.cpuBytes!)} of host memory; no GPU holds one: ${roomText})${over(cpu)}`);
  const estimated = reports.filter((r) => r.estimated);
  const pool = estimated.length > 0 ? estimated : reports;
  // A stable sort: of two equally small, the better (ranked first) stays first.
  const smallest = [...pool].sort((a, b) => (a.cpuBytes ?? a.fileBytes) - (b.cpuBytes ?? b.fileBytes))[0]!;
  const where = rooms.length === 1 && rooms[0]!.node === undefined ? 'this machine' : 'any node';
  return done(smallest, 'none', undefined, `${smallest.variant}: the smallest quantization; none fits ${where} now (${describeRooms(rooms, true)})`);
}
