/**
 * One proxied request as it is kept and shown: built, pure, from what the pipeline noted while serving it (the
 * draft) and how its response ended. Fields are snake_case like the rest of the HTTP API (/health, /status).
 */
import type { AnswerFacts } from './answer.js';
import type { RecordedRoute, RequestFamily } from './family.js';

/** Where a request was served, as the pipeline noted it when it took the upstream. */
export interface UpstreamNote {
  /** The instance id, the backend's address, or `node <name>`. */
  label: string;
  instance?: string;
  node?: string;
  /** One line: `GPU 1 · ngl 33`, `GPU 0+1 split 3:1 · ngl 81`, `CPU`, `Ollama backend`. */
  placement?: string;
  /** Milliseconds it waited for the upstream (queue and load). */
  waitedMs: number;
  /** Of those, milliseconds it waited for its instance to load (undefined: the instance was ready already). */
  loadMs?: number;
}

/** What is noted about a request while it is served. */
export interface RequestDraft {
  id: string;
  startedAt: number;
  route: RecordedRoute;
  method: string;
  path: string;
  model?: string;
  stream?: boolean;
  key?: string;
  upstream?: UpstreamNote;
  /** When the first piece of the answer went out (ms since the epoch). */
  firstByteAt?: number;
  answer?: AnswerFacts;
  /** Why it failed, when the proxy answered an error. */
  error?: string;
  agents?: string[];
  /** Only with server.captureBodies. */
  bodies?: CapturedBodies;
}

export interface CapturedBodies {
  request: string;
  requestHeaders: Record<string, string>;
  response: string;
  /** True when either body was longer than the bound and cut. */
  truncated: boolean;
}

export type RequestOutcome = 'ok' | 'error' | 'client_closed';

export interface RequestRecord {
  id: string;
  /** When it arrived (ISO). */
  time: string;
  family: RequestFamily;
  endpoint: string;
  method: string;
  path: string;
  model: string | null;
  stream: boolean | null;
  /** The API key's name (never the key), or `ip:<address>` without keys. */
  key: string | null;
  /** Instance id, backend address or cluster node that served it (null: none was reached). */
  instance: string | null;
  node: string | null;
  placement: string | null;
  status: number;
  outcome: RequestOutcome;
  /** The client went away before the answer was complete. */
  aborted: boolean;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  /** Prompt tokens llama-server took from its cache. */
  cached_tokens: number | null;
  /** To the first piece of a streamed answer; for a whole answer, the wait plus llama-server's prompt time. */
  ttft_ms: number | null;
  prompt_tps: number | null;
  generation_tps: number | null;
  duration_ms: number;
  /** Waiting for a place in the queue (not for a load). */
  queued_ms: number | null;
  /** Waiting for its model to load, when it did. */
  load_ms: number | null;
  error: string | null;
  agents: string[] | null;
  bodies?: CapturedBodies;
}

/** How the response ended, as the HTTP layer saw it. */
export interface ResponseEnd {
  endedAt: number;
  /** The status sent (res.statusCode), meaningful when headers went out. */
  statusCode: number;
  headersSent: boolean;
  /** The response was written to its end (false: the client closed first). */
  finished: boolean;
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/** The record of a request from its draft and its end. */
export function buildRecord(draft: RequestDraft, end: ResponseEnd): RequestRecord {
  const aborted = !end.finished;
  const status = end.headersSent ? end.statusCode : aborted ? 499 : end.statusCode;
  const outcome: RequestOutcome = aborted ? 'client_closed' : status >= 400 ? 'error' : 'ok';
  const answer = draft.answer;
  const t = answer?.timings ?? null;
  const up = draft.upstream;
  const completion = answer?.completionTokens ?? t?.predictedN ?? null;
  const prompt = answer?.promptTokens ?? (t && t.promptN !== null ? t.promptN + (t.cacheN ?? 0) : null);
  let generationTps = t?.predictedPerSecond ?? null;
  if (generationTps === null && t?.predictedMs && completion) generationTps = (completion * 1000) / t.predictedMs;
  let ttft: number | null = null;
  if (draft.stream && draft.firstByteAt !== undefined) ttft = draft.firstByteAt - draft.startedAt;
  else if (up && t?.promptMs != null) ttft = up.waitedMs + t.promptMs;
  const load = up?.loadMs;
  return {
    id: draft.id,
    time: new Date(draft.startedAt).toISOString(),
    family: draft.route.family,
    endpoint: draft.route.endpoint,
    method: draft.method,
    path: draft.path,
    model: draft.model ?? null,
    stream: draft.stream ?? null,
    key: draft.key ?? null,
    instance: up ? (up.instance ?? up.label) : null,
    node: up?.node ?? null,
    placement: up?.placement ?? null,
    status,
    outcome,
    aborted,
    prompt_tokens: prompt,
    completion_tokens: completion,
    cached_tokens: t?.cacheN ?? null,
    ttft_ms: ttft === null ? null : round1(Math.max(0, ttft)),
    prompt_tps: t?.promptPerSecond != null ? round1(t.promptPerSecond) : null,
    generation_tps: generationTps === null ? null : round1(generationTps),
    duration_ms: Math.max(0, end.endedAt - draft.startedAt),
    queued_ms: up ? Math.max(0, up.waitedMs - (load ?? 0)) : null,
    load_ms: load ?? null,
    error: draft.error ?? null,
    agents: draft.agents && draft.agents.length > 0 ? draft.agents : null,
    ...(draft.bodies ? { bodies: draft.bodies } : {}),
  };
}

/** The placement line of an instance (see UpstreamNote.placement). */
export function placementLine(p: { gpus: readonly { index: number }[]; ngl: number; splitMode: string; tensorSplit?: readonly number[] } | undefined): string {
  if (!p || p.gpus.length === 0) return 'CPU';
  const split = p.splitMode === 'layer' && p.tensorSplit ? ` split ${p.tensorSplit.join(':')}` : '';
  return `GPU ${p.gpus.map((g) => g.index).join('+')}${split} · ngl ${p.ngl}`;
}

/**
 * How long a request waited for its instance to load: the part of the load (instance created -> ready) after the
 * request arrived; undefined when the instance was ready before it.
 */
export function loadWait(requestStart: number, instanceCreatedAt: number, readyAt: number | undefined): number | undefined {
  if (readyAt === undefined || readyAt <= requestStart) return undefined;
  return readyAt - Math.max(requestStart, instanceCreatedAt);
}

/** Request headers as kept with captured bodies: none that carries a secret. */
export function safeHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || SECRET_HEADER.test(name)) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|set-cookie)$|key|token|secret|auth/i;
