/**
 * Enforces each key's policy (src/policy) on every route family in one place: a preHandler (the body is parsed,
 * the route not run yet). Admin-only routes are 403 for a user key; a request naming a model outside the key's
 * globs is 403 naming the key; a request over a limit is 429 with Retry-After; each in the route family's error
 * shape. Requests are counted per key (requests, errors) in /metrics and /usage as they end.
 * Requests without a configured key (no keys, open routes, a cluster peer's forwarded request) are not limited.
 */
import type { FastifyRequest } from 'fastify';
import client from 'prom-client';
import type { Config } from '../config/index.js';
import { withoutHfHost } from '../models/index.js';
import { adminOnly, modelAllowed } from '../policy/key-policy.js';
import { KeyLimiter } from '../policy/limiter.js';
import { UsageBook } from '../policy/usage.js';
import { knownKeyOf, type KnownKey } from './auth.js';
import { errorBodyFor } from './errors.js';
import { boundaryOf, formField } from './transcriptions.js';
import type { ProxyApp } from './types.js';

/** The model a request names: the JSON body's `model` (Ollama: or `name`), a multipart form's, else `?model=`. */
export function requestedModel(request: FastifyRequest): string | undefined {
  const json = request.parsedBody?.json;
  if (json && typeof json === 'object' && !Array.isArray(json)) {
    const b = json as Record<string, unknown>;
    const m = b.model ?? (request.url.startsWith('/api/') ? b.name : undefined);
    if (typeof m === 'string' && m !== '') return m;
  }
  // A transcription's multipart form: its "model" field, read from the part headers only.
  const boundary = boundaryOf(request.headers['content-type']);
  const raw = request.parsedBody?.raw;
  if (boundary && raw && json === undefined) {
    const m = formField(raw, boundary, 'model')?.trim();
    if (m) return m;
  }
  const q = request.query as Record<string, unknown> | undefined;
  return typeof q?.model === 'string' ? q.model : undefined;
}

/** The names a model field is known by without any IO: as written, Ollama's spelling undone, an alias's target. */
export function modelNames(field: string, config: Config): string[] {
  const names = new Set<string>([field]);
  let n = withoutHfHost(field);
  names.add(n);
  if (n.endsWith(':latest')) names.add((n = n.slice(0, -':latest'.length)));
  const base = n.split('#')[0]!;
  names.add(base);
  const entry = config.models[base];
  if (entry) {
    if (entry.hf) names.add(entry.hf);
    if (entry.name) names.add(entry.name);
  }
  return [...names];
}

export interface PolicyHandle {
  usage: UsageBook;
  limiter: KeyLimiter;
}

export function registerKeyPolicy(app: ProxyApp, config: Config, registry: client.Registry, prefix: string): PolicyHandle {
  const usage = new UsageBook();
  const limiter = new KeyLimiter();
  const requests = new client.Counter({ name: `${prefix}key_requests_total`, help: 'Requests per API key (name) and model', labelNames: ['key', 'model'], registers: [registry] });
  const errors = new client.Counter({ name: `${prefix}key_errors_total`, help: 'Requests per API key answered with an error status (4xx, 5xx)', labelNames: ['key', 'model'], registers: [registry] });
  const tokens = new client.Counter({ name: `${prefix}key_tokens_total`, help: 'Tokens per API key, model and direction (prompt: in, completion: out)', labelNames: ['key', 'model', 'direction'], registers: [registry] });

  const countRefused = (key: string, model: string) => {
    usage.record(key, model, { requests: 1, errors: 1 });
    requests.inc({ key, model });
    errors.inc({ key, model });
  };

  /** Why `key` may not use `model` (outside its globs), or undefined when it may. */
  const disallowed = (key: KnownKey, model: string): string | undefined =>
    modelAllowed(key.policy.models, modelNames(model, config)) ? undefined : `key "${key.name}" may not use model "${model}" (its models: ${(key.policy.models ?? []).join(', ')})`;

  // A callback hook (no promise per request).
  app.addHook('preHandler', (request, reply, done) => {
    const key = knownKeyOf(request);
    if (!key) return done();
    const refuse = (status: number, message: string, code: string, retryAfterS?: number): void => {
      if (retryAfterS !== undefined) void reply.header('retry-after', String(retryAfterS));
      void reply.code(status).send(errorBodyFor(request.url, status, message, code));
    };
    if (key.role !== 'admin' && adminOnly(request.method, request.url)) {
      return refuse(403, `key "${key.name}" is a user key: ${request.method} ${request.url.split('?')[0]} needs an admin key`, 'admin_required');
    }
    const field = requestedModel(request);
    if (field === undefined || adminOnly(request.method, request.url)) return done();
    const refused = disallowed(key, field);
    if (refused) {
      countRefused(key.name, field);
      return refuse(403, refused, 'model_not_allowed');
    }
    // The models its agents call (context.complete) obey the same list.
    refusals.set(request.raw, (model) => {
      const why = disallowed(key, model);
      return why && `${why}, called by an agent`;
    });
    const decision = limiter.tryStart(key.name, key.policy);
    if (!decision.ok) {
      countRefused(key.name, field);
      return refuse(429, decision.message, `${decision.limit}_exceeded`, decision.retryAfterS);
    }
    reply.raw.once('close', () => {
      limiter.finish(key.name);
      const failed = reply.raw.statusCode >= 400;
      usage.record(key.name, field, { requests: 1, errors: failed ? 1 : 0 });
      requests.inc({ key: key.name, model: field });
      if (failed) errors.inc({ key: key.name, model: field });
    });
    accounted.set(request.raw, (prompt, completion) => {
      limiter.addTokens(key.name, prompt + completion);
      usage.record(key.name, field, { promptTokens: prompt, completionTokens: completion });
      if (prompt > 0) tokens.inc({ key: key.name, model: field, direction: 'prompt' }, prompt);
      if (completion > 0) tokens.inc({ key: key.name, model: field, direction: 'completion' }, completion);
    });
    done();
  });

  app.get('/usage', async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    const key = typeof q.key === 'string' && q.key !== '' ? q.key : undefined;
    let since: number | undefined;
    if (typeof q.since === 'string' && q.since !== '') {
      since = /^\d+$/.test(q.since) ? Number(q.since) * 1000 : Date.parse(q.since);
      if (!Number.isFinite(since)) return reply.code(400).send(errorBodyFor(request.url, 400, `since "${q.since}" is neither an ISO date nor Unix seconds`, 'invalid_since'));
    }
    return { started_at: new Date(usage.startedAt).toISOString(), since: new Date(since ?? usage.startedAt).toISOString(), keys: usage.report({ key, since }) };
  });
  return { usage, limiter };
}

const accounted = new WeakMap<object, (prompt: number, completion: number) => void>();
const refusals = new WeakMap<object, (model: string) => string | undefined>();

/** Why the request's key may not use `model` (for a model an agent calls), or undefined when it may or has no key. */
export function modelRefusal(request: FastifyRequest): ((model: string) => string | undefined) | undefined {
  return refusals.get(request.raw);
}

/** Counts an answer's tokens against the request's key (no-op for a request without a configured key). */
export function countTokens(request: FastifyRequest, prompt: number, completion: number): void {
  accounted.get(request.raw)?.(prompt, completion);
}

/** Keeps the end of an answer's body (where usage is) and reads its token counts; cheap: no parse of the body. */
export class UsageTail {
  private tail = '';
  push(chunk: Buffer | string): void {
    this.tail = (this.tail + (typeof chunk === 'string' ? chunk : chunk.toString('utf8'))).slice(-4096);
  }
  /** OpenAI's prompt_tokens/completion_tokens, or Anthropic's input_tokens/output_tokens: the last of each. */
  tokens(): { prompt: number; completion: number } {
    const last = (re: RegExp) => {
      let v = 0;
      for (const m of this.tail.matchAll(re)) v = Number(m[1]);
      return v;
    };
    const prompt = last(/"prompt_tokens"\s*:\s*(\d+)/g) || last(/"input_tokens"\s*:\s*(\d+)/g);
    const completion = last(/"completion_tokens"\s*:\s*(\d+)/g) || last(/"output_tokens"\s*:\s*(\d+)/g);
    return { prompt, completion };
  }
}
