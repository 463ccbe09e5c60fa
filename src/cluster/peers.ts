/**
 * The other nodes as this node knows them: each configured peer URL (a name that resolves to several addresses
 * stands for each of them) polled for its state every `pollInterval`, and its pushes received when it changes.
 * A peer is down when its connection is refused or reset, or when it has not answered for `downAfter`; it
 * rejoins with its next answer. No consensus: every node decides from what it last heard.
 */
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { Pool as UndiciPool } from 'undici';
import type { ClusterConfig } from '../config/index.js';
import type { NodeState } from './types.js';

export const CLUSTER_TOKEN_HEADER = 'x-llama-smart-proxy-cluster-token';
/** On a request one node forwards to another: the entry's name (the receiver serves it itself, agents ran already). */
export const FORWARDED_HEADER = 'x-llama-smart-proxy-forwarded';
/**
 * On a forwarded request: whom the entry served it for, `<priority> <name>` (the key's name, URI-encoded, never the
 * key), so the receiving node's fair queue takes turns across the same clients. Believed only with the token.
 */
export const FORWARDED_KEY_HEADER = 'x-llama-smart-proxy-key';
/** On every answer: the node that served it. */
export const NODE_HEADER = 'x-llama-smart-proxy-node';

/** One address of a peer. */
export interface PeerRecord {
  url: string;
  /** The configured peer URL it was found from (or the URL a pushing node gave). */
  source: string;
  name: string | undefined;
  state: NodeState | undefined;
  /** When its last state arrived (poll or push), ms since the epoch, this node's clock. */
  receivedAt: number;
  lastError: string | undefined;
  /** Its connection was refused or reset since its last answer. */
  refused: boolean;
  /** It is this node (found through a name that resolves to every node). */
  self: boolean;
  dispatcher: UndiciPool;
}

export interface PeersOptions {
  config: Pick<ClusterConfig, 'peers' | 'token' | 'pollInterval' | 'pollTimeout' | 'downAfter'>;
  /** This node's name. */
  self: string;
  /** This node's state, pushed to peers when it changes. */
  localState: () => Promise<NodeState>;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** Host name lookups (tests replace it). */
  resolve?: (host: string) => Promise<string[]>;
}

const PUSH_DEBOUNCE_MS = 100;

function connectionFailed(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED';
}

async function resolveAll(host: string): Promise<string[]> {
  return (await lookup(host, { all: true })).map((a) => a.address);
}

/** The URL with its host name replaced by one of its addresses. */
function withAddress(url: URL, address: string): string {
  const u = new URL(url.href);
  u.hostname = isIP(address) === 6 ? `[${address}]` : address;
  return u.origin;
}

export class Peers extends EventEmitter {
  private readonly records = new Map<string, PeerRecord>();
  private timer: NodeJS.Timeout | undefined;
  private pushTimer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private closed = false;
  private readonly log: NonNullable<PeersOptions['log']>;
  private readonly resolve: (host: string) => Promise<string[]>;

  constructor(private readonly opts: PeersOptions) {
    super();
    this.log = opts.log ?? (() => {});
    this.resolve = opts.resolve ?? resolveAll;
  }

  get configured(): boolean {
    return this.opts.config.peers.length > 0;
  }

  private get headers(): Record<string, string> {
    return this.opts.config.token ? { [CLUSTER_TOKEN_HEADER]: this.opts.config.token } : {};
  }

  /** Polls every peer every pollInterval, the first round now (returned: the caller need not wait for it). */
  start(): Promise<void> {
    if (!this.configured) return Promise.resolve();
    this.timer = setInterval(() => void this.pollAll(), this.opts.config.pollInterval * 1000);
    this.timer.unref();
    return this.pollAll();
  }

  /** Whether the record answers now. */
  isUp(rec: PeerRecord, now = Date.now()): boolean {
    return !rec.self && rec.state !== undefined && !rec.refused && now - rec.receivedAt <= this.opts.config.downAfter * 1000;
  }

  /** Every peer address known, this node's own excluded. */
  list(): PeerRecord[] {
    return [...this.records.values()].filter((r) => !r.self);
  }

  /** The peers that answer now, one record per node (the freshest when a node has several addresses). */
  up(): PeerRecord[] {
    const now = Date.now();
    const byName = new Map<string, PeerRecord>();
    for (const r of this.records.values()) {
      if (!this.isUp(r, now) || r.state!.node === this.opts.self) continue;
      const seen = byName.get(r.state!.node);
      if (!seen || seen.receivedAt < r.receivedAt) byName.set(r.state!.node, r);
    }
    return [...byName.values()];
  }

  /** The record a node answers at, when it is up. */
  node(name: string): PeerRecord | undefined {
    return this.up().find((r) => r.state!.node === name);
  }

  private record(url: string, source: string): PeerRecord {
    let rec = this.records.get(url);
    if (!rec) {
      rec = {
        url,
        source,
        name: undefined,
        state: undefined,
        receivedAt: 0,
        lastError: undefined,
        refused: false,
        self: false,
        // Polls and forwarded requests share it; streams are long, so connections are not capped here.
        dispatcher: new UndiciPool(url, { connections: null, pipelining: 1, keepAliveTimeout: 10_000, connectTimeout: this.opts.config.pollTimeout * 1000 }),
      };
      this.records.set(url, rec);
    }
    return rec;
  }

  /** The addresses of every configured peer, looked up again each round (a headless Service's pods change). */
  private async endpoints(): Promise<{ url: string; source: string }[]> {
    const out: { url: string; source: string }[] = [];
    for (const peer of this.opts.config.peers) {
      const url = new URL(peer);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      if (isIP(host) || host === 'localhost') {
        out.push({ url: url.origin, source: peer });
        continue;
      }
      try {
        const addresses = [...new Set(await this.resolve(host))];
        if (addresses.length <= 1) out.push({ url: url.origin, source: peer });
        else for (const a of addresses) out.push({ url: withAddress(url, a), source: peer });
      } catch (err) {
        out.push({ url: url.origin, source: peer });
        this.log('cluster peer name does not resolve', { peer, reason: (err as Error).message });
      }
    }
    return out;
  }

  /** One round of polls (a round still under way is joined, not doubled). */
  pollAll(): Promise<void> {
    this.round ??= (async () => {
      try {
        const endpoints = await this.endpoints();
        const current = new Set(endpoints.map((e) => e.url));
        // Addresses a name no longer resolves to (a pod gone) are forgotten; pushed-in nodes stay while they answer.
        for (const [url, rec] of this.records) {
          if (!current.has(url) && this.opts.config.peers.includes(rec.source) && !this.isUp(rec)) this.forget(url);
        }
        await Promise.all(endpoints.map((e) => this.poll(this.record(e.url, e.source))));
        // Nodes known only from their pushes are polled too: they go down like any other when they stop answering.
        await Promise.all([...this.records.values()].filter((r) => !current.has(r.url) && !r.self).map((r) => this.poll(r)));
      } finally {
        this.round = undefined;
      }
    })();
    return this.round;
  }

  private forget(url: string): void {
    const rec = this.records.get(url);
    if (!rec) return;
    this.records.delete(url);
    void rec.dispatcher.destroy().catch(() => {});
  }

  private async poll(rec: PeerRecord): Promise<void> {
    if (rec.self || this.closed) return;
    const timeout = this.opts.config.pollTimeout * 1000;
    try {
      const res = await rec.dispatcher.request({ method: 'GET', path: '/cluster/state', headers: { ...this.headers, accept: 'application/json' }, headersTimeout: timeout, bodyTimeout: timeout });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`answered ${res.statusCode}: ${text.slice(0, 200)}`);
      this.accept(rec, JSON.parse(text) as NodeState);
    } catch (err) {
      const wasUp = this.isUp(rec);
      rec.lastError = (err as Error).message;
      if (connectionFailed(err)) rec.refused = true;
      if (wasUp && !this.isUp(rec)) this.down(rec, rec.lastError);
    }
  }

  private accept(rec: PeerRecord, state: NodeState): void {
    const wasUp = this.isUp(rec);
    // A poll's answer read before a push may arrive after it: the node's newest state wins (its own clock).
    if (!rec.state || rec.state.node !== state.node || state.at >= rec.state.at) rec.state = state;
    rec.name = state.node;
    rec.receivedAt = Date.now();
    rec.lastError = undefined;
    rec.refused = false;
    if (state.node === this.opts.self) {
      rec.self = true;
      return;
    }
    if (!wasUp) {
      this.log('cluster peer up', { node: state.node, url: rec.url, gpus: state.gpus.length, instances: state.instances.length });
      this.emit('up', state.node);
    }
  }

  private down(rec: PeerRecord, reason: string | undefined): void {
    this.log('cluster peer down', { node: rec.name, url: rec.url, reason });
    this.emit('down', rec.name);
  }

  /** A state a peer pushed (POST /cluster/state). A node not configured as a peer joins by pushing. */
  receive(state: NodeState): void {
    if (state.node === this.opts.self) return;
    const known = [...this.records.values()].filter((r) => r.name === state.node || r.url === state.url);
    if (known.length === 0) {
      this.accept(this.record(new URL(state.url).origin, state.url), state);
      return;
    }
    for (const rec of known) this.accept(rec, state);
  }

  /** A forwarded request could not reach the node: it is down until it answers again (polled now). */
  failed(name: string, reason: string): void {
    for (const rec of this.records.values()) {
      if (rec.name !== name || !this.isUp(rec)) continue;
      rec.refused = true;
      rec.lastError = reason;
      this.down(rec, reason);
      void this.poll(rec);
    }
  }

  /** Polls one node now (its answer overrides what the entry guessed). */
  async refresh(name: string): Promise<void> {
    await Promise.all([...this.records.values()].filter((r) => r.name === name).map((r) => this.poll(r)));
  }

  /** This node's state changed: sent to every peer that answers, soon (changes close together go as one). */
  changed(): void {
    if (this.closed || !this.configured || this.pushTimer) return;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      void this.push();
    }, PUSH_DEBOUNCE_MS);
    this.pushTimer.unref();
  }

  private async push(): Promise<void> {
    const targets = this.up();
    if (targets.length === 0) return;
    let body: string;
    try {
      body = JSON.stringify(await this.opts.localState());
    } catch {
      return;
    }
    const timeout = this.opts.config.pollTimeout * 1000;
    await Promise.all(
      targets.map(async (rec) => {
        try {
          const res = await rec.dispatcher.request({ method: 'POST', path: '/cluster/state', headers: { ...this.headers, 'content-type': 'application/json' }, body, headersTimeout: timeout, bodyTimeout: timeout });
          await res.body.dump();
        } catch {
          // The next poll finds out whether it is down.
        }
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.pushTimer) clearTimeout(this.pushTimer);
    await Promise.all([...this.records.values()].map((r) => r.dispatcher.destroy().catch(() => {})));
    this.records.clear();
  }
}
