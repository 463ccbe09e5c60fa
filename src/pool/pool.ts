/**
 * The pool: owns the instances, queues requests, and applies the plans of `planSchedule` (pure). Every
 * decision and the bookkeeping it changes happen in one synchronous block (no await in between), so Node's
 * single event loop keeps the state consistent without locks.
 */
import { EventEmitter } from 'node:events';
import type { ResolvedModel } from '../models/index.js';
import { PoolError } from './errors.js';
import { describeExit, type ExitInfo, type Instance } from './instance.js';
import { MemoryLogParser, type MemoryFootprint } from '../llamacpp/memory-log.js';
import type { InstancePlacement, Ledger, PlaceDecision } from '../placement/service.js';
import type { RunningInstance } from '../placement/types.js';
import { planSchedule, type EntryState } from './schedule.js';
import type { FairWaiter } from './fair-queue.js';

/** Creates (does not start) the process for a model on a port, with its placement when GPUs are managed. */
export interface InstanceLauncher {
  launch(model: ResolvedModel, port: number, instanceId: string, placement?: InstancePlacement): Instance;
}

/** What the pool asks of placement (src/placement/service.ts); absent: count-based pool, no memory planning. */
export interface Placer {
  readonly hasGpus: boolean;
  decide(model: ResolvedModel, ledger: () => Ledger): Promise<PlaceDecision>;
  footprint(pid: number): Promise<Map<number, number>>;
  /** A started instance's measured footprint against its logged buffers, per GPU index (learns the runtime overhead). */
  observeFootprint(model: ResolvedModel, placement: InstancePlacement, measured: ReadonlyMap<number, number>, logged: ReadonlyMap<number, number>): void;
  freeNow(): Promise<Map<number, number>>;
  waitForRecovery(pid: number | undefined, held: ReadonlyMap<number, number>, freeBefore: ReadonlyMap<number, number>): Promise<boolean>;
}

export interface PortSource {
  acquire(): Promise<number>;
  release(port: number): void;
}

export interface PoolOptions {
  capacity: number;
  maxQueue: number;
  /** Waiters one key may have at once (a key's own maxQueue wins); undefined: only maxQueue. */
  maxQueuePerKey?: number | undefined;
  /** pool.fairness: an instance takes at most its slots (--parallel) and waiters are served across keys by
   *  weighted fair queueing (fair-queue.ts). Off: a ready instance takes every request (llama-server queues). */
  fairness?: boolean;
  queueTimeoutMs: number;
  launcher: InstanceLauncher;
  ports: PortSource;
  placer?: Placer;
  /**
   * Failed loads of one model within `failureWindowMs` after which its requests get 503 instead of a new start.
   * Only loads count: a crash while serving (which a request may cause) is restarted at once.
   */
  failureLimit?: number;
  failureWindowMs?: number;
  /** How long an unload or an eviction waits for requests in flight to finish before stopping the instance. */
  drainTimeoutMs?: number;
  /** How often idle TTLs are checked. */
  sweepIntervalMs?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * How long an instance may stay idle (Ollama's keep_alive, set by each request that gives one): the model's
 * `ttl`, stop as soon as no request is in flight, never stop for idleness (evictions still may), or seconds.
 */
export type IdleTimeout = 'default' | 'unload' | 'forever' | { seconds: number };

interface Entry {
  instanceId: string;
  model: ResolvedModel;
  /** Set by the last request that gave one (Lease.keepAlive); 'default' until then. */
  idle: IdleTimeout;
  instance: Instance | undefined;
  port: number | undefined;
  state: EntryState;
  inFlight: number;
  lastUsed: number;
  startedAt: number;
  placement?: InstancePlacement;
  /** What the ledger charges it per GPU index: its measured footprint once known, else its estimate. */
  gpuBytes: Map<number, number>;
  /** Called when its last request in flight is released (a drain waits on it). */
  onIdle?: () => void;
  /** Measured per GPU (driver's per-process accounting), when known. */
  actualGpuBytes?: Map<number, number>;
  /** The instance's own memory lines (-lv 4): its buffers per GPU index and on the host. */
  logged?: { gpuBytes: Map<number, number>; hostBytes: number };
}

interface Waiter {
  model: ResolvedModel;
  /** Who waits (fair queueing across keys); undefined counts as one anonymous key. */
  key?: FairWaiter;
  enqueuedAt: number;
  resolve: (lease: Lease) => void;
  reject: (err: Error) => void;
  cleanup: () => void;
}

export interface Lease {
  readonly instance: Instance;
  readonly model: ResolvedModel;
  /**
   * Sets how long the instance may stay idle from now on (until another request sets it again); ignored for a
   * pinned model. With 'unload' it is stopped when its last request is released.
   */
  keepAlive(timeout: IdleTimeout): void;
  /** Marks the request finished; idempotent. */
  release(): void;
}

export interface InstanceInfo {
  id: string;
  modelId: string;
  file: string;
  state: EntryState;
  port: number | undefined;
  pid: number | undefined;
  url: string | undefined;
  inFlight: number;
  lastUsed: number;
  startedAt: number;
  readyAt: number | undefined;
  pinned: boolean;
  /** Idle seconds before it is stopped, as now in force (keep_alive included); 0 = never. */
  ttl: number;
  /** When it will be stopped for idleness if no request comes (ms since the epoch); null = never. */
  expiresAt: number | null;
  /** Its context size (-c). */
  ctx: number;
  /** Requests it serves at once (--parallel). */
  slots: number;
  /** The model it is a variant of (see models/variants.ts), when it is one. */
  variantOf: string | undefined;
  placement: InstancePlacement | undefined;
  /** Estimated bytes per GPU index. */
  estimatedGpuBytes: Map<number, number>;
  /** Measured bytes per GPU index (empty when not known). */
  actualGpuBytes: Map<number, number>;
  /** Buffers the instance logged (weights, KV, compute; no CUDA context), per GPU index and host. */
  logged: { gpuBytes: Map<number, number>; hostBytes: number } | undefined;
}

const RECENT_ENDED = 20;
const PORT_ATTEMPTS = 3;

/** The logged buffers by GPU index: the instance numbers its visible GPUs CUDA0, CUDA1, ... in placement order. */
function loggedFootprint(f: MemoryFootprint, placement: InstancePlacement | undefined): { gpuBytes: Map<number, number>; hostBytes: number } | undefined {
  const total = (b: { modelBytes: number; contextBytes: number; computeBytes: number; outputBytes: number }) => b.modelBytes + b.contextBytes + b.computeBytes + b.outputBytes;
  const hostBytes = total(f.host);
  if (hostBytes === 0 && f.devices.size === 0) return undefined;
  const gpuBytes = new Map<number, number>();
  for (const [name, sizes] of f.devices) {
    const ordinal = /(\d+)$/.exec(name);
    const gpu = ordinal ? placement?.gpus[Number(ordinal[1])] : undefined;
    if (gpu) gpuBytes.set(gpu.index, (gpuBytes.get(gpu.index) ?? 0) + total(sizes));
  }
  return { gpuBytes, hostBytes };
}

/** The idle timeout in force: seconds (0 = never), or 'unload' (stop once idle). */
function effectiveTtl(entry: Pick<Entry, 'idle' | 'model'>): number | 'unload' {
  if (entry.model.pinned) return 0;
  const idle = entry.idle;
  if (idle === 'default') return entry.model.ttl;
  if (idle === 'forever') return 0;
  if (idle === 'unload') return 'unload';
  return idle.seconds;
}

function idleInfo(e: Entry, now: number): { ttl: number; expiresAt: number | null } {
  const ttl = effectiveTtl(e);
  // Idle time counts from the end of the last request: one in flight now has its whole timeout ahead.
  const from = e.inFlight > 0 ? now : e.lastUsed;
  if (ttl === 'unload') return { ttl: 0, expiresAt: from };
  return { ttl, expiresAt: ttl > 0 ? from + ttl * 1000 : null };
}

interface FailureRecord {
  times: number[];
  reason: string;
}

/**
 * The instances. Events: `starting` (instanceId, modelId), `placed` (instanceId, modelId, placement), `evicting`
 * (modelId, victims' models, reason), `waiting` (modelId, reason), `ready` (instanceId, modelId, load ms),
 * `load_failed` (instanceId, modelId, reason), `crash` (instanceId, modelId, reason), `stopped` (instanceId,
 * modelId, why).
 */
export class Pool extends EventEmitter {
  private readonly entries = new Map<string, Entry>();
  private queue: Waiter[] = [];
  private readonly failures = new Map<string, FailureRecord>();
  /** Instances that ended, kept for GET /logs (most recent RECENT_ENDED). */
  private readonly ended = new Map<string, Instance>();
  private nextId = 1;
  private closed = false;
  /** Models whose memory is held by busy instances: not retried until something is released or stopped. */
  private readonly memoryBlocked = new Set<string>();
  /** Memory lent to other nodes (rpc-servers), by reservation id. */
  private readonly reservations = new Map<string, { label: string; gpuBytes: Map<number, number>; hostBytes: number }>();
  /** Loads on GPUs are planned and run one at a time, so two loads never race for the same memory. */
  private gpuLockChain: Promise<void> = Promise.resolve();
  private readonly sweeper: NodeJS.Timeout;
  private readonly log: NonNullable<PoolOptions['log']>;
  /** Keys' virtual times for fair queueing, from the last plan. */
  private vtime = new Map<string, number>();

  constructor(private readonly options: PoolOptions) {
    super();
    // Streamed requests waiting for a load listen to its events (server.loadingProgress).
    this.setMaxListeners(0);
    this.log = options.log ?? (() => {});
    this.sweeper = setInterval(() => this.sweepIdle(), options.sweepIntervalMs ?? 1000);
    this.sweeper.unref();
  }

  get capacity(): number {
    return this.options.capacity;
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * Waits until an instance serving `model` is ready and returns a lease on it; with pool.fairness, one with a
   * free slot (unless `takesSlot` is false: a request that generates nothing), in the fair queue's order.
   */
  acquire(model: ResolvedModel, signal?: AbortSignal, key?: FairWaiter, takesSlot = true): Promise<Lease> {
    if (this.closed) return Promise.reject(new PoolError(503, 'shutting_down', 'the proxy is shutting down'));
    const blocked = this.backoff(model.id);
    if (blocked) return Promise.reject(blocked);
    // Fast path: the model is ready and nobody waits ahead: no queue entry, no timer.
    if (this.queue.length === 0) {
      for (const entry of this.entries.values()) {
        // A request that generates nothing (tokenize, props, slots) never waits for a slot.
        const hasSlot = !this.options.fairness || !takesSlot || entry.inFlight < Math.max(1, entry.model.parallel);
        if (entry.state === 'ready' && entry.instance && entry.model.id === model.id && hasSlot) return Promise.resolve(this.lease(entry, entry.instance, model));
      }
    }
    // A key's own queue limit: that client's flood is refused (429) before the global limit refuses everyone.
    const keyLimit = key?.maxQueue ?? (key ? this.options.maxQueuePerKey : undefined);
    if (key && keyLimit !== undefined && this.queue.filter((w) => w.key?.key === key.key).length >= keyLimit) {
      const which = key.maxQueue !== undefined ? 'its maxQueue' : 'pool.maxQueuePerKey';
      return Promise.reject(new PoolError(429, 'key_queue_full', `key "${key.key}" has ${keyLimit} requests waiting already (${which})`, 1));
    }
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(
        new PoolError(503, 'queue_full', `too many requests waiting (${this.queue.length}, pool.maxQueue ${this.options.maxQueue})`, 1),
      );
    }
    return new Promise<Lease>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.removeWaiter(waiter);
        const secs = Math.round(this.options.queueTimeoutMs / 1000);
        reject(new PoolError(503, 'queue_timeout', `no instance for "${model.id}" became available within ${secs} s (pool.queueTimeout); all ${this.options.capacity} slots are busy`, Math.max(1, secs)));
      }, this.options.queueTimeoutMs);
      const onAbort = () => {
        this.removeWaiter(waiter);
        reject(new PoolError(499, 'client_closed', 'the client went away while waiting'));
      };
      const waiter: Waiter = {
        model,
        ...(key ? { key } : {}),
        enqueuedAt: Date.now(),
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.schedule();
    });
  }

  private removeWaiter(waiter: Waiter): void {
    waiter.cleanup();
    this.queue = this.queue.filter((w) => w !== waiter);
  }

  private backoff(modelId: string): PoolError | undefined {
    const record = this.failures.get(modelId);
    if (!record) return undefined;
    const window = this.options.failureWindowMs ?? 60_000;
    const limit = this.options.failureLimit ?? 3;
    const now = Date.now();
    record.times = record.times.filter((t) => now - t < window);
    if (record.times.length < limit) return undefined;
    const retryAfter = Math.max(1, Math.ceil((record.times[0]! + window - now) / 1000));
    return new PoolError(
      503,
      'model_failing',
      `model "${modelId}" failed ${record.times.length} times in the last ${Math.round(window / 1000)} s (last: ${record.reason}); not retrying for ${retryAfter} s`,
      retryAfter,
    );
  }

  private recordFailure(modelId: string, reason: string): void {
    const record = this.failures.get(modelId) ?? { times: [], reason };
    record.times.push(Date.now());
    record.reason = reason;
    this.failures.set(modelId, record);
  }

  /** Runs the pure planner on the current state and applies its plan. */
  private schedule(): void {
    if (this.closed) return;
    const entries = [...this.entries.values()];
    const fair = this.options.fairness === true;
    const plan = planSchedule({
      capacity: this.options.capacity,
      entries: entries.map((e) => ({
        instanceId: e.instanceId, modelId: e.model.id, state: e.state, inFlight: e.inFlight, lastUsed: e.lastUsed, pinned: e.model.pinned,
        ...(fair ? { slots: Math.max(1, e.model.parallel) } : {}),
      })),
      waiters: this.queue.map((w) => w.model.id),
      blocked: [...this.memoryBlocked],
      ...(fair ? { waiterKeys: this.queue.map((w) => w.key ?? { key: '', weight: 2 }), vtime: this.vtime } : {}),
    });
    if (plan.vtime) this.vtime = plan.vtime;
    const served = new Set<number>();
    for (const { waiter: index, instanceId } of plan.serve) {
      const waiter = this.queue[index];
      const entry = this.entries.get(instanceId);
      if (!waiter || !entry?.instance) continue;
      served.add(index);
      waiter.cleanup();
      waiter.resolve(this.lease(entry, entry.instance, waiter.model));
    }
    if (served.size > 0) this.queue = this.queue.filter((_, i) => !served.has(i));
    for (const instanceId of plan.evict) {
      const entry = this.entries.get(instanceId);
      if (entry) void this.stopEntry(entry, 'evicted to make room');
    }
    for (const modelId of plan.start) {
      const waiter = this.queue.find((w) => w.model.id === modelId);
      if (waiter) this.startEntry(waiter.model);
    }
  }

  private lease(entry: Entry, instance: Instance, model: ResolvedModel): Lease {
    entry.inFlight++;
    entry.lastUsed = Date.now();
    let released = false;
    return {
      instance,
      model,
      keepAlive: (timeout) => {
        if (entry.model.pinned) return;
        entry.idle = timeout;
      },
      release: () => {
        if (released) return;
        released = true;
        entry.inFlight--;
        entry.lastUsed = Date.now();
        if (entry.inFlight === 0) entry.onIdle?.();
        // keep_alive 0: stopped now that nothing is in flight (the state changes before anything else runs).
        if (entry.inFlight === 0 && entry.state === 'ready' && effectiveTtl(entry) === 'unload') void this.stopEntry(entry, 'keep_alive 0: unloaded after its request');
        this.memoryChanged();
        this.schedule();
      },
    };
  }

  private memoryChanged(): void {
    this.memoryBlocked.clear();
  }

  private acquireGpuLock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => (release = resolve));
    const previous = this.gpuLockChain;
    this.gpuLockChain = previous.then(() => next);
    return previous.then(() => release);
  }

  /** The ledger as placement sees it: every instance's charge (but `except`'s), and loads under way. */
  ledgerView(except?: Entry): Ledger {
    const running: RunningInstance[] = [];
    const loading = new Map<number, number>();
    let loadingHostBytes = 0;
    for (const e of this.entries.values()) {
      if (e === except) continue;
      const hostBytes = e.placement?.estimate.hostBytes ?? 0;
      if (e.state === 'starting') {
        for (const [gpu, bytes] of e.gpuBytes) loading.set(gpu, (loading.get(gpu) ?? 0) + bytes);
        loadingHostBytes += hostBytes;
        continue;
      }
      running.push({ instanceId: e.instanceId, modelId: e.model.id, gpuBytes: e.gpuBytes, hostBytes, idle: e.state === 'ready' && e.inFlight === 0, pinned: e.model.pinned, lastUsed: e.lastUsed });
    }
    for (const [id, r] of this.reservations) running.push({ instanceId: id, modelId: r.label, gpuBytes: r.gpuBytes, hostBytes: r.hostBytes, idle: false, pinned: true, lastUsed: 0 });
    return { running, loading, loadingHostBytes };
  }

  /** Where an instance runs (undefined: unknown instance, or no GPU planning). */
  placementOf(instanceId: string): InstancePlacement | undefined {
    return this.entries.get(instanceId)?.placement;
  }

  /** What each instance is charged per GPU index (its measured footprint once known, else its estimate). */
  chargedBytes(instanceId: string): ReadonlyMap<number, number> | undefined {
    return this.entries.get(instanceId)?.gpuBytes;
  }

  /** Bytes the ledger charges per GPU index, over every instance (and memory lent to other nodes). */
  charges(): Map<number, number> {
    const out = new Map<number, number>();
    for (const e of this.entries.values()) for (const [gpu, bytes] of e.gpuBytes) out.set(gpu, (out.get(gpu) ?? 0) + bytes);
    for (const r of this.reservations.values()) for (const [gpu, bytes] of r.gpuBytes) out.set(gpu, (out.get(gpu) ?? 0) + bytes);
    return out;
  }

  /**
   * Memory this node lends (an rpc-server serving another node's instance): in the ledger like a busy, pinned
   * instance, so placement never gives it away, until `release`d.
   */
  reserve(id: string, label: string, gpuBytes: ReadonlyMap<number, number>, hostBytes: number): void {
    this.reservations.set(id, { label, gpuBytes: new Map(gpuBytes), hostBytes });
  }

  release(id: string): void {
    if (this.reservations.delete(id)) {
      this.memoryChanged();
      this.schedule();
    }
  }

  /** Model files of instances that run or load (the download cache must not evict them). */
  filesInUse(): Set<string> {
    return new Set([...this.entries.values()].map((e) => e.model.file));
  }

  /** Bytes the ledger charges on one GPU (what a simulated GPU shows as used). */
  chargedOn(gpuIndex: number): number {
    return this.charges().get(gpuIndex) ?? 0;
  }


  private rejectModel(modelId: string, error: PoolError): void {
    const failed = this.queue.filter((w) => w.model.id === modelId);
    this.queue = this.queue.filter((w) => w.model.id !== modelId);
    for (const w of failed) {
      w.cleanup();
      w.reject(error);
    }
  }

  /**
   * Asks placement where the model goes. Returns the placement to launch with, or undefined when the start is
   * off (evictions first, a wait for busy instances, or a refusal); the entry is then removed.
   */
  private async place(entry: Entry, placer: Placer): Promise<InstancePlacement | undefined> {
    const { model } = entry;
    let decision: PlaceDecision;
    try {
      decision = await placer.decide(model, () => this.ledgerView(entry));
    } catch (err) {
      this.removeEntry(entry);
      const e = err as Error & { status?: number; code?: string };
      this.rejectModel(model.id, new PoolError(e.status ?? 500, e.code ?? 'placement_failed', `cannot place "${model.id}": ${e.message}`));
      return undefined;
    }
    if (entry.state !== 'starting') return undefined;
    switch (decision.kind) {
      case 'place':
        this.log('placed', { instance: entry.instanceId, model: model.id, gpus: decision.placement.gpus.map((g) => g.index), ngl: decision.placement.ngl, reason: decision.placement.reason });
        this.emit('placed', entry.instanceId, model.id, decision.placement);
        return decision.placement;
      case 'evict':
        this.log('evicting for placement', { model: model.id, victims: decision.victims, reason: decision.reason });
        this.emit('evicting', model.id, decision.victims.map((id) => this.entries.get(id)?.model.id ?? id), decision.reason);
        this.removeEntry(entry);
        for (const id of decision.victims) {
          const victim = this.entries.get(id);
          if (victim) void this.stopEntry(victim, `evicted: ${decision.reason}`);
        }
        return undefined;
      case 'wait':
        this.log('waiting for GPU memory', { model: model.id, reason: decision.reason });
        this.emit('waiting', model.id, decision.reason);
        this.memoryBlocked.add(model.id);
        this.removeEntry(entry);
        return undefined;
      case 'refuse':
        this.log('placement refused', { model: model.id, reason: decision.reason });
        this.removeEntry(entry);
        this.rejectModel(model.id, new PoolError(503, 'insufficient_memory', decision.reason, 30));
        return undefined;
    }
  }

  private startEntry(model: ResolvedModel): Entry {
    const entry: Entry = {
      instanceId: `i${this.nextId++}`,
      model,
      idle: 'default',
      instance: undefined,
      port: undefined,
      state: 'starting',
      inFlight: 0,
      lastUsed: Date.now(),
      startedAt: Date.now(),
      gpuBytes: new Map(),
    };
    this.entries.set(entry.instanceId, entry);
    void this.runStart(entry);
    return entry;
  }

  private async runStart(entry: Entry): Promise<void> {
    const { model } = entry;
    const startedAt = Date.now();
    const placer = this.options.placer;
    let unlock: (() => void) | undefined;
    try {
      if (placer) {
        // Placements are decided one at a time (each sees the loads before it in the ledger); on the CPU the lock
        // is let go once the placement is recorded, on GPUs once the load is done.
        unlock = await this.acquireGpuLock();
        if (entry.state !== 'starting') return;
        const placement = await this.place(entry, placer);
        if (!placement) {
          this.schedule();
          return;
        }
        entry.placement = placement;
        entry.gpuBytes = new Map(placement.gpus.map((g, i) => [g.index, placement.estimate.gpuBytes[i] ?? 0]));
        // Only loads that take GPU memory need to be one at a time.
        if (placement.gpus.length === 0) {
          unlock?.();
          unlock = undefined;
        }
      }
      const memoryLog = new MemoryLogParser();
      const onLine = (line: string) => memoryLog.feed(line);
      let instance: Instance;
      for (let attempt = 1; ; attempt++) {
        entry.port = await this.options.ports.acquire();
        if (entry.state !== 'starting') throw new Error('stopped while starting');
        instance = this.options.launcher.launch(model, entry.port, entry.instanceId, entry.placement);
        entry.instance = instance;
        instance.on('exit', (info) => this.onExit(entry, info));
        instance.on('line', onLine);
        this.log('starting instance', { instance: entry.instanceId, model: model.id, port: entry.port });
        this.emit('starting', entry.instanceId, model.id);
        try {
          await instance.start();
          break;
        } catch (err) {
          // Another process bound the port between our check and llama-server's start: take the next one.
          if (!instance.bindFailed || attempt >= PORT_ATTEMPTS || entry.state !== 'starting') throw err;
          this.log('port taken meanwhile, retrying on another', { instance: entry.instanceId, port: entry.port });
          this.options.ports.release(entry.port);
          entry.port = undefined;
        }
      }
      if (entry.state !== 'starting') return; // stopped while loading
      instance.off('line', onLine);
      entry.logged = loggedFootprint(memoryLog.footprint(), entry.placement);
      if (placer && entry.placement && entry.placement.gpus.length > 0 && instance.pid !== undefined) {
        const measured = await placer.footprint(instance.pid);
        if (measured.size > 0) {
          entry.actualGpuBytes = measured;
          entry.gpuBytes = measured;
          if (entry.logged) placer.observeFootprint(model, entry.placement, measured, entry.logged.gpuBytes);
        }
      }
      if (entry.state !== 'starting') return;
      entry.state = 'ready';
      entry.lastUsed = Date.now();
      this.log('instance ready', { instance: entry.instanceId, model: model.id, pid: instance.pid, loadMs: Date.now() - startedAt });
      this.emit('ready', entry.instanceId, model.id, Date.now() - startedAt);
    } catch (err) {
      if (entry.state === 'stopping') return; // unloaded while loading: stopEntry cleans up and reschedules
      const reason = (err as Error).message;
      this.log('instance failed to start', { instance: entry.instanceId, model: model.id, reason });
      this.recordFailure(model.id, reason);
      this.emit('load_failed', entry.instanceId, model.id, reason);
      this.removeEntry(entry);
      this.rejectModel(model.id, new PoolError(502, 'model_load_failed', `model "${model.id}" failed to load: ${reason}`));
    } finally {
      unlock?.();
    }
    this.schedule();
  }

  /**
   * A crash while serving (a request that killed the engine, the OOM killer, a hung process killed by its
   * liveness probe) is not a failed load: no backoff, so one client cannot lock a model for everyone. An
   * instance that was serving, or pinned, is started again at once; an idle one when next asked for.
   */
  private onExit(entry: Entry, info: ExitInfo): void {
    if (info.expected || entry.state === 'starting') return; // a stop, or a failed load handled by runStart
    const instance = entry.instance;
    const reason = instance?.hung ?? `llama-server for "${entry.model.id}" (pid ${instance?.pid}) exited unexpectedly (${describeExit(info)})`;
    // Not one being unloaded or evicted (it was draining): that stop goes on as asked.
    const wasServing = entry.state === 'ready' && (entry.inFlight > 0 || entry.model.pinned);
    this.log('instance crashed', { instance: entry.instanceId, model: entry.model.id, reason, inFlight: entry.inFlight, restart: wasServing });
    this.removeEntry(entry);
    this.emit('crash', entry.instanceId, entry.model.id, reason);
    this.memoryChanged();
    const waiting = this.queue.some((w) => w.model.id === entry.model.id);
    if (wasServing && !waiting && !this.closed && this.entries.size < this.options.capacity && ![...this.entries.values()].some((e) => e.model.id === entry.model.id)) {
      this.startEntry(entry.model);
    }
    this.schedule();
  }

  private removeEntry(entry: Entry): void {
    if (this.entries.get(entry.instanceId) === entry) {
      this.entries.delete(entry.instanceId);
      if (entry.instance) this.remember(entry.instance);
    }
    if (entry.port !== undefined) this.options.ports.release(entry.port);
    entry.port = undefined;
  }

  /**
   * Stops an instance. It takes no new request from now on; the ones in flight finish first (up to
   * pool.drainTimeout), then the process is stopped and its memory waited for.
   */
  private async stopEntry(entry: Entry, why: string): Promise<void> {
    if (entry.state === 'stopping') return;
    entry.state = 'stopping';
    this.log('stopping instance', { instance: entry.instanceId, model: entry.model.id, why, inFlight: entry.inFlight });
    const placer = this.options.placer;
    const onGpus = placer !== undefined && entry.gpuBytes.size > 0 && entry.instance !== undefined;
    try {
      await this.drain(entry);
      const freeBefore = onGpus ? await placer.freeNow() : undefined;
      const exit = await entry.instance?.stop();
      // Wait for the driver to show the memory free before anything is placed there (not after a crash).
      if (onGpus && freeBefore && exit?.expected) await placer.waitForRecovery(entry.instance?.pid, entry.gpuBytes, freeBefore);
    } finally {
      this.removeEntry(entry);
      this.emit('stopped', entry.instanceId, entry.model.id, why);
      this.memoryChanged();
      this.schedule();
    }
  }

  /** Resolves when the entry has no request in flight, or after pool.drainTimeout (or when its process exits). */
  private drain(entry: Entry): Promise<void> {
    if (entry.inFlight === 0 || !entry.instance || this.closed) return Promise.resolve();
    const timeoutMs = this.options.drainTimeoutMs ?? 60_000;
    this.log('draining instance', { instance: entry.instanceId, model: entry.model.id, inFlight: entry.inFlight, timeoutS: timeoutMs / 1000 });
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        entry.onIdle = undefined;
        entry.instance?.off('exit', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.log('drain timed out; stopping with requests in flight', { instance: entry.instanceId, inFlight: entry.inFlight });
        done();
      }, timeoutMs);
      entry.onIdle = done;
      entry.instance?.once('exit', done);
    });
  }

  private sweepIdle(): void {
    const now = Date.now();
    for (const entry of this.entries.values()) {
      if (entry.state !== 'ready' || entry.inFlight > 0) continue;
      const ttl = effectiveTtl(entry);
      if (ttl === 'unload') void this.stopEntry(entry, 'keep_alive 0');
      else if (ttl > 0 && now - entry.lastUsed >= ttl * 1000) void this.stopEntry(entry, `idle for ${ttl} s`);
    }
  }

  /** Loads `model` (if needed) and resolves when it is ready. */
  async load(model: ResolvedModel, signal?: AbortSignal): Promise<InstanceInfo> {
    const lease = await this.acquire(model, signal);
    lease.release();
    const info = this.list().find((i) => i.id === lease.instance.id);
    if (!info) throw new PoolError(502, 'model_load_failed', `instance for "${model.id}" went away right after loading`);
    return info;
  }

  /**
   * Stops the instances of `modelId` and of its variants (all instances when undefined), waiting for in-flight
   * requests to end.
   */
  async unload(modelId?: string): Promise<string[]> {
    const targets = [...this.entries.values()].filter((e) => modelId === undefined || e.model.id === modelId || e.model.variantOf === modelId);
    await Promise.all(targets.map((e) => this.stopEntry(e, 'unload requested')));
    return targets.map((e) => e.instanceId);
  }

  list(): InstanceInfo[] {
    const now = Date.now();
    return [...this.entries.values()].map((e) => ({
      id: e.instanceId,
      modelId: e.model.id,
      file: e.model.file,
      state: e.state,
      port: e.port,
      pid: e.instance?.pid,
      url: e.instance?.url,
      inFlight: e.inFlight,
      lastUsed: e.lastUsed,
      startedAt: e.startedAt,
      readyAt: e.instance?.readyAt,
      pinned: e.model.pinned,
      ...idleInfo(e, now),
      ctx: e.model.ctx,
      slots: e.model.parallel,
      variantOf: e.model.variantOf,
      placement: e.placement,
      estimatedGpuBytes: new Map(e.placement?.gpus.map((g, i) => [g.index, e.placement!.estimate.gpuBytes[i] ?? 0]) ?? []),
      actualGpuBytes: new Map(e.actualGpuBytes ?? []),
      logged: e.logged,
    }));
  }

  /** A running instance, or one that ended recently (for its logs). */
  instance(id: string): Instance | undefined {
    return this.entries.get(id)?.instance ?? this.ended.get(id);
  }

  /** Instances that ended recently, newest last (their logs are still kept). */
  endedInstances(): Instance[] {
    return [...this.ended.values()];
  }

  private remember(instance: Instance): void {
    this.ended.set(instance.id, instance);
    while (this.ended.size > RECENT_ENDED) this.ended.delete(this.ended.keys().next().value!);
  }

  /**
   * A reloaded config's queue settings, from now on: size, queue limit, fairness, queue and drain timeouts.
   * Requests already waiting keep their timers; a smaller size evicts nothing busy (idle ones go as room is needed).
   */
  tune(settings: Pick<PoolOptions, 'capacity' | 'maxQueue' | 'maxQueuePerKey' | 'fairness' | 'queueTimeoutMs' | 'drainTimeoutMs'>): void {
    Object.assign(this.options, settings);
    this.schedule();
  }

  /** From now on every acquire gets 503 shutting_down, and so does every waiter; the instances keep running. */
  refuseNew(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    for (const w of this.queue) {
      w.cleanup();
      w.reject(new PoolError(503, 'shutting_down', 'the proxy is shutting down'));
    }
    this.queue = [];
  }

  /** Rejects every waiter and stops every instance (no drain: the proxy has ended the exchanges under way). */
  async shutdown(): Promise<void> {
    this.refuseNew();
    for (const e of this.entries.values()) e.onIdle?.();
    await Promise.all([...this.entries.values()].map((e) => e.instance?.stop()));
    for (const e of this.entries.values()) this.removeEntry(e);
  }
}
