/**
 * One request's agent chain (the runner). Request hooks run in chain order, each on the previous one's output;
 * response hooks run in the same order on the agents whose request phase was reached. A hook that throws, returns
 * something that is not an object, or runs past its timeout is logged and its agent is skipped for the rest of
 * the request; the request goes on with the last good value. Nothing here outlives the request.
 */
import type { Logger } from 'pino';
import { assembleCompletion, completionToChunks } from './completion-stream.js';
import type { LoadedAgent } from './loader.js';
import type { SseEvent } from './sse.js';
import type {
  AgentContext,
  AgentEndpoint,
  AgentReply,
  AgentRequest,
  AgentResponse,
  CompleteOptions,
  HookName,
  JsonObject,
  ServingInstance,
  StreamChunk,
} from './types.js';

export interface ChainLink {
  agent: LoadedAgent;
  args: string[];
}

export interface SessionOptions {
  requestId: string;
  /** The resolved model id (alias or canonical). */
  model: string;
  /** The `model` field as the client wrote it (what context.complete puts in bodies by default). */
  modelField?: unknown;
  endpoint: AgentEndpoint;
  stream: boolean;
  /** The request's logger; each agent gets a child of it. */
  log: Logger;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  /** Calls a model through the proxy, no agents, not streamed. */
  complete(endpoint: AgentEndpoint, body: JsonObject, signal: AbortSignal): Promise<JsonObject>;
  /** The instance serving this request, once there is one. */
  instance(): ServingInstance | undefined;
  /** Told about every failure (for /health counters). */
  onFailure?(agent: string, hook: HookName, reason: string): void;
}

export type RequestOutcome = { body: AgentRequest; reply?: undefined } | { reply: AgentReply; body?: undefined };

type Outcome<T> = { ok: true; value: T } | { ok: false };
const FAILED: Outcome<never> = { ok: false };
const TIMED_OUT = Symbol('timed out');
const ABORTED = Symbol('aborted');

/** Replies made by `context.reply`; a plain object from a hook cannot pass for one. */
const replies = new WeakSet<object>();

export function isAgentReply(value: unknown): value is AgentReply {
  return typeof value === 'object' && value !== null && replies.has(value);
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

class AgentRun {
  readonly controller = new AbortController();
  failed = false;
  /** Its request phase was reached (agents after a short-circuit are not). */
  reached = false;
  readonly ctx: AgentContext;

  constructor(
    readonly agent: LoadedAgent,
    args: string[],
    options: SessionOptions,
  ) {
    const name = agent.name;
    const signal = this.controller.signal;
    let log: Logger | undefined;
    this.ctx = {
      requestId: options.requestId,
      agent: name,
      args,
      model: options.model,
      endpoint: options.endpoint,
      stream: options.stream,
      settings: agent.settings,
      // A child logger costs a few microseconds: made on first use only.
      get log() {
        return (log ??= options.log.child({ agent: name }));
      },
      signal,
      state: {},
      complete: (body: JsonObject, opts?: CompleteOptions) => {
        const endpoint = opts?.endpoint ?? (Array.isArray(body.messages) ? 'chat/completions' : 'completions');
        const full = body.model === undefined ? { ...body, model: options.modelField ?? options.model } : body;
        return options.complete(endpoint, full, signal);
      },
      reply: (body: AgentResponse, status = 200): AgentReply => {
        const made: AgentReply = { kind: 'agent-reply', agent: name, status, body };
        replies.add(made);
        return made;
      },
      instance: () => options.instance(),
    };
  }
}

export class AgentSession {
  private readonly runs: AgentRun[];
  private readonly onClientGone: () => void;

  constructor(
    chain: readonly ChainLink[],
    private readonly options: SessionOptions,
  ) {
    this.runs = chain.map((link) => new AgentRun(link.agent, link.args, options));
    this.onClientGone = () => {
      for (const run of this.runs) run.controller.abort(new Error('the client went away'));
    };
    if (options.signal.aborted) this.onClientGone();
    else options.signal.addEventListener('abort', this.onClientGone, { once: true });
  }

  /** The chain's names, in order. */
  get names(): string[] {
    return this.runs.map((r) => r.agent.name);
  }

  /** The request's logger. */
  get log(): Logger {
    return this.options.log;
  }

  /** Names of the agents skipped after a failure. */
  get failed(): string[] {
    return this.runs.filter((r) => r.failed).map((r) => r.agent.name);
  }

  /** Removes the listener on the client's signal; call when the request is over. */
  finish(): void {
    this.options.signal.removeEventListener('abort', this.onClientGone);
  }

  private live(): AgentRun[] {
    return this.runs.filter((r) => r.reached && !r.failed);
  }

  private fail(run: AgentRun, hook: HookName, reason: string): void {
    run.failed = true;
    run.controller.abort(new Error(reason));
    this.options.log.warn({ agent: run.agent.name, hook, reason }, 'agent failed; skipped for the rest of this request');
    this.options.onFailure?.(run.agent.name, hook, reason);
  }

  /**
   * Calls one hook: errors and timeouts become a failure of the agent, never of the request. A hook that answers
   * synchronously gets a synchronous outcome (no timer, no extra turn of the event loop).
   */
  private invoke<T>(run: AgentRun, hook: HookName, call: () => T | PromiseLike<T>): Outcome<T> | Promise<Outcome<T>> {
    let pending: T | PromiseLike<T>;
    try {
      pending = call();
    } catch (err) {
      this.fail(run, hook, `threw: ${reasonOf(err)}`);
      return FAILED;
    }
    if (!isThenable(pending)) return { ok: true, value: pending };
    return this.settle(run, hook, Promise.resolve(pending));
  }

  private async settle<T>(run: AgentRun, hook: HookName, promise: Promise<T>): Promise<Outcome<T>> {
    const signal = run.controller.signal;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    // Ends at the timeout, or at once when the client goes away: nobody would read the result.
    const cutoff = new Promise<typeof TIMED_OUT | typeof ABORTED>((resolve) => {
      timer = setTimeout(resolve, run.agent.timeoutMs, TIMED_OUT);
      onAbort = () => resolve(ABORTED);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const value = signal.aborted ? ABORTED : await Promise.race([promise, cutoff]);
      if (value === TIMED_OUT || value === ABORTED) {
        promise.then(undefined, () => {}); // it may still settle; nobody listens any more
        if (value === TIMED_OUT) this.fail(run, hook, `timed out after ${run.agent.timeoutMs / 1000} s (agents.timeout)`);
        else run.failed = true; // the client left: not the agent's fault, not counted
        return FAILED;
      }
      return { ok: true, value };
    } catch (err) {
      // A hook that gives up because its signal fired when the client left is not a failure either.
      if (signal.aborted && !run.failed) run.failed = true;
      else this.fail(run, hook, `threw: ${reasonOf(err)}`);
      return FAILED;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /** Request hooks in chain order. Ends early when an agent answers with `context.reply`. */
  async runRequest(body: AgentRequest): Promise<RequestOutcome> {
    let current = body;
    for (const run of this.runs) {
      run.reached = true;
      const hook = run.agent.agent.onRequest;
      if (!hook) continue;
      const out = await this.invoke(run, 'onRequest', () => hook(current, run.ctx));
      if (!out.ok || out.value === undefined) continue;
      if (isAgentReply(out.value)) return { reply: out.value };
      if (!isObject(out.value)) {
        this.fail(run, 'onRequest', `returned ${describeValue(out.value)}; expected the request object or context.reply(...)`);
        continue;
      }
      current = out.value;
    }
    return { body: current };
  }

  /** Whether any response hook will run: decides whether the response must be parsed at all. */
  hasResponseHooks(stream: boolean): boolean {
    return this.live().some((r) => r.agent.agent.onResponse || (stream && r.agent.agent.onStreamChunk));
  }

  /** Response hooks on a whole response, in chain order. */
  async runResponse(response: AgentResponse): Promise<AgentResponse> {
    let current = response;
    for (const run of this.live()) {
      const hook = run.agent.agent.onResponse;
      if (!hook) continue;
      const out = await this.invoke(run, 'onResponse', () => hook(current, run.ctx));
      if (!out.ok || out.value === undefined) continue;
      if (!isObject(out.value)) {
        this.fail(run, 'onResponse', `returned ${describeValue(out.value)}; expected the response object`);
        continue;
      }
      current = out.value;
    }
    return current;
  }

  /**
   * The streamed response through the chain, in batches of events (one batch per network chunk), one stage per
   * run of agents in chain order: agents with onStreamChunk see each event as it passes (consecutive ones share
   * a stage); an agent with only onResponse gathers the stream, sees the assembled completion, and re-emits it
   * (the original events when it changed nothing).
   */
  streamStages(batches: AsyncIterable<SseEvent[]>): AsyncIterable<SseEvent[]> {
    let out = batches;
    let group: AgentRun[] = [];
    const flush = () => {
      if (group.length) out = this.chunkStage(group, out);
      group = [];
    };
    for (const run of this.live()) {
      const { onStreamChunk, onResponse } = run.agent.agent;
      if (onStreamChunk) group.push(run);
      else if (onResponse) {
        flush();
        out = this.wholeStage(run, onResponse, out);
      }
    }
    flush();
    return out;
  }

  /** One event through one chunk hook: the events it becomes (none when dropped). */
  private chunkThrough(run: AgentRun, event: SseEvent): SseEvent[] | Promise<SseEvent[]> {
    const data = event.data;
    const hook = run.agent.agent.onStreamChunk;
    if (run.failed || !data || !hook) return [event];
    const outcome = this.invoke(run, 'onStreamChunk', () => hook(data, run.ctx));
    const use = (out: Outcome<StreamChunk | StreamChunk[] | null | void>): SseEvent[] => {
      if (!out.ok) return [event];
      const value = out.value;
      if (value === null) return [];
      // The hook may have changed the chunk in place: it is re-serialized rather than its raw text trusted.
      const items = value === undefined ? [data] : Array.isArray(value) ? (value as unknown[]) : [value];
      if (!items.every(isObject)) {
        this.fail(run, 'onStreamChunk', `returned ${describeValue(value)}; expected a chunk, a list of chunks or null`);
        return [event];
      }
      // `original` stays the event as received, the fallback should the chunk turn out not serializable.
      const original = (event as StagedEvent).original ?? event;
      return items.map((item): StagedEvent => ({ data: item, changedBy: run, original }));
    };
    return outcome instanceof Promise ? outcome.then(use) : use(outcome);
  }

  private async *chunkStage(group: readonly AgentRun[], batches: AsyncIterable<SseEvent[]>): AsyncGenerator<SseEvent[]> {
    for await (const batch of batches) {
      let ready: SseEvent[] = [];
      for (const event of batch) {
        // Each event through the whole group before the next one, so that it can leave before later ones.
        let items: SseEvent[] = [event];
        for (const run of group) {
          const next: SseEvent[] = [];
          for (const item of items) {
            let out = this.chunkThrough(run, item);
            if (out instanceof Promise) {
              // About to wait on an async hook: what is done goes out first (chunk by chunk, not batch by batch).
              if (ready.length) {
                yield ready;
                ready = [];
              }
              out = await out;
            }
            next.push(...out);
          }
          items = next;
        }
        for (const item of items) ready.push(this.serialized(item as StagedEvent));
      }
      if (ready.length) yield ready;
    }
  }

  /** A changed event with its text; one JSON cannot hold fails the agent that returned it, and the original goes. */
  private serialized(event: StagedEvent): SseEvent {
    if (event.raw !== undefined || !event.changedBy) return event;
    try {
      return { data: event.data!, raw: `data: ${JSON.stringify(event.data)}\n\n` };
    } catch (err) {
      this.fail(event.changedBy, 'onStreamChunk', `returned a chunk that is not serializable: ${reasonOf(err)}`);
      return event.original!;
    }
  }

  private async *wholeStage(run: AgentRun, hook: NonNullable<LoadedAgent['agent']['onResponse']>, batches: AsyncIterable<SseEvent[]>): AsyncGenerator<SseEvent[]> {
    const buffered: SseEvent[] = [];
    for await (const batch of batches) buffered.push(...batch);
    const chunks = buffered.flatMap((e) => (e.data ? [e.data] : []));
    // Nothing to assemble, or the stream carries an error: pass it on as it is.
    const usable = chunks.some((c) => Array.isArray(c.choices)) && !chunks.some((c) => c.error !== undefined);
    if (run.failed || !usable) {
      if (buffered.length) yield buffered;
      return;
    }
    const assembled = assembleCompletion(chunks);
    const before = JSON.stringify(assembled);
    const outcome = this.invoke(run, 'onResponse', () => hook(assembled, run.ctx));
    const out = outcome instanceof Promise ? await outcome : outcome;
    let result: AgentResponse = assembled;
    if (out.ok && out.value !== undefined) {
      if (isObject(out.value)) result = out.value;
      else this.fail(run, 'onResponse', `returned ${describeValue(out.value)}; expected the response object`);
    }
    let replacement: SseEvent[] | undefined;
    if (out.ok) {
      try {
        if (JSON.stringify(result) !== before) replacement = completionToChunks(result).map((data) => ({ data, raw: `data: ${JSON.stringify(data)}\n\n` }));
      } catch (err) {
        this.fail(run, 'onResponse', `returned a response that is not serializable: ${reasonOf(err)}`);
      }
    }
    if (!replacement) {
      if (buffered.length) yield buffered;
      return;
    }
    yield [...replacement, ...buffered.filter((e) => !e.data)];
  }
}

/** An event inside a chunk stage: which agent last changed it, and what it was before (for a fallback). */
interface StagedEvent extends SseEvent {
  changedBy?: AgentRun;
  original?: SseEvent;
}

/** A completion as the events of a stream (what a short-circuit answer looks like to a streaming client). */
export function completionEvents(completion: AgentResponse): SseEvent[] {
  return [...completionToChunks(completion).map((data: StreamChunk) => ({ data })), { done: true }];
}
