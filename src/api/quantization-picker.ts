/**
 * `:auto` at the IO edge: lists a Hub repo's variants, reads the GGUF header of each candidate by range (a few
 * MiB each, never the weights; a cached file's header from disk), estimates each at the model's settings, reads
 * the GPUs and the ledger now, and lets the pure choice (placement/quant-choice.ts) decide. Headers are read best
 * quality first, a few at a time, and no further once one fits a single GPU (nothing below it could win).
 *
 * In a cluster the room is every reachable node's (this node's read now, the peers' as last polled): the variant
 * may be one that only a peer's GPU holds; the cluster planner then sends the model there like any other.
 *
 * A repo's choice is made once per process for a given set of settings and of reachable nodes (single flight,
 * then remembered): later requests take the same file, hence the same instance, even when the GPUs have filled
 * up meanwhile; a node going down or coming back is a new decision (a variant chosen for a node that is gone
 * would no longer fit). The last choices, with their numbers, are kept for `/plan` and the logs.
 */
import path from 'node:path';
import { modelInfo } from '../estimate/index.js';
import type { ModelHub, ResolvedModel } from '../models/index.js';
import type { NodeView } from '../cluster/types.js';
import type { Ledger, PlacementService } from '../placement/service.js';
import { chooseQuantization, rankCandidates, type QuantCandidate, type QuantChoice, type QuantRoom } from '../placement/quant-choice.js';

/** How many headers are read at once. */
const BATCH = 4;
const KEEP = 32;

/** One `:auto` decision as /plan shows it. */
export interface QuantizationRecord extends QuantChoice {
  repo: string;
  /** The settings it was chosen at. */
  ctx: number;
  parallel: number;
  /** When it was decided (ms since the epoch). */
  at: number;
  /** The room it was decided on: this node's. */
  room: QuantRoom;
  /** Every node's room, this node's first (one entry outside a cluster). */
  rooms: QuantRoom[];
  /** Candidates whose header could not be read or estimated, with the reason. */
  unreadable: { file: string; reason: string }[];
}

export interface QuantizationPickerDeps {
  hub: ModelHub;
  placer: PlacementService;
  /** The proxy's instances and loads under way (the pool's ledger). */
  ledger: () => Ledger;
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /** In a cluster: this node's name and the peers that answer now, as the cluster planner sees them. */
  cluster?: { name: string; peerViews(): NodeView[] };
}

export interface PickOptions {
  /** Choose for this node alone (a pinned model: it is loaded here), not for the cluster. */
  here?: boolean;
}

export class QuantizationPicker {
  private readonly decided = new Map<string, Promise<QuantizationRecord | undefined>>();
  private readonly records: QuantizationRecord[] = [];

  constructor(private readonly deps: QuantizationPickerDeps) {}

  /** The latest decisions, newest first (for /plan and the dashboard). */
  recent(): readonly QuantizationRecord[] {
    return [...this.records].reverse();
  }

  /** The decision for `repo` at `model`'s settings; undefined when there is none to make (see decide). */
  pick(repo: string, model: Pick<ResolvedModel, 'ctx' | 'parallel' | 'args'>, options: PickOptions = {}): Promise<QuantizationRecord | undefined> {
    const cluster = this.deps.cluster;
    const peers = cluster && !options.here ? cluster.peerViews() : [];
    const nodes = cluster ? [cluster.name, ...peers.map((p) => p.name).sort()].join(',') : '';
    const key = `${repo}|${model.ctx}|${model.parallel}|${model.args.join('\u0000')}|${nodes}`;
    let p = this.decided.get(key);
    if (!p) {
      // A failure (the Hub unreachable, the repo missing) leaves the choice to the fixed default, which finds a
      // cached variant or names the problem itself; it is not remembered: the next request asks again.
      p = this.decide(repo, model, peers).catch((err: Error) => {
        this.decided.delete(key);
        this.deps.log?.('could not choose a quantization; taking the default variant', { repo, reason: err.message });
        return undefined;
      });
      this.decided.set(key, p);
    }
    return p;
  }

  private async decide(repo: string, model: Pick<ResolvedModel, 'ctx' | 'parallel' | 'args'>, peers: readonly NodeView[]): Promise<QuantizationRecord | undefined> {
    const { hub, placer, cluster } = this.deps;
    const variants = await hub.variants(repo);
    if (variants.length === 0) throw new Error(`${repo} lists no GGUF model`);
    const ranked = rankCandidates(variants.map((v) => ({ ...v, file: v.first, fileBytes: v.bytes })));
    const room = await placer.quantRoom(this.deps.ledger, cluster?.name);
    const rooms = [room, ...peers.map((view) => placer.quantRoomOfView(view))];
    const runtimeOf = new Map(peers.map((view) => [view.name, view.runtimeBytes]));
    const candidates: QuantCandidate[] = ranked.map((v) => ({ variant: v.tag ?? path.posix.basename(v.first), ...(v.tag ? { tag: v.tag } : {}), file: v.first, fileBytes: v.fileBytes }));
    const unreadable: { file: string; reason: string }[] = [];
    let choice: QuantChoice | undefined;
    for (let i = 0; i < candidates.length; i += BATCH) {
      await Promise.all(
        candidates.slice(i, i + BATCH).map(async (c) => {
          try {
            const res = await hub.resolve(repo, path.posix.basename(c.file));
            const header = await hub.probeHeader(res);
            c.fileBytes = res.parts.reduce((sum, part) => sum + part.size, 0);
            const key = `hub:${repo}@${res.commit}/${c.file}`;
            const info = modelInfo(header);
            c.estimate = placer.costOfHeader(model, key, info);
            // A peer's GPUs with the CUDA runtime it learned (this node's own estimate for this node).
            if (runtimeOf.size > 0) c.estimateOn = (node) => (runtimeOf.has(node) ? placer.costOfHeaderOn(model, key, info, runtimeOf.get(node)!) : undefined);
          } catch (err) {
            unreadable.push({ file: c.file, reason: (err as Error).message });
          }
        }),
      );
      choice = chooseQuantization(candidates, rooms);
      if (choice.tier === 'one-gpu') break;
    }
    if (!choice || !candidates.some((c) => c.estimate)) throw new Error(`no variant's header could be read (${unreadable.map((u) => `${u.file}: ${u.reason}`).join('; ')})`);
    const record: QuantizationRecord = { ...choice, repo, ctx: model.ctx, parallel: model.parallel, at: Date.now(), room, rooms, unreadable };
    this.records.push(record);
    while (this.records.length > KEEP) this.records.shift();
    this.deps.log?.('chose a quantization', {
      repo,
      chosen: choice.chosen,
      file: choice.file,
      tier: choice.tier,
      ...(choice.node !== undefined ? { node: choice.node } : {}),
      reason: choice.reason,
      candidates: choice.candidates.map((c) => ({
        variant: c.variant,
        ...(c.bytes !== undefined ? { gpuMiB: Math.round(c.bytes / 2 ** 20) } : {}),
        ...(c.cpuBytes !== undefined ? { cpuMiB: Math.round(c.cpuBytes / 2 ** 20) } : {}),
        fitsOneGpu: c.fitsOneGpu,
        ...(c.node !== undefined ? { node: c.node } : {}),
        fitsSplit: c.fitsSplit,
        ...(c.splitNode !== undefined ? { splitNode: c.splitNode } : {}),
        fitsCpu: c.fitsCpu,
        ...(c.cpuNode !== undefined ? { cpuNode: c.cpuNode } : {}),
        ...(c.estimated ? {} : { estimated: false }),
      })),
      ...(unreadable.length ? { unreadable } : {}),
    });
    return record;
  }
}
