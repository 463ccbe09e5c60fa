/**
 * API keys: when `server.apiKeys` (or $LLAMA_SMART_PROXY_API_KEYS) lists any, every request must carry one, as
 * OpenAI clients send it (`Authorization: Bearer <key>`) or as `x-api-key`. Left open: `GET /health` and
 * Ollama's `GET|HEAD /` (liveness probes), and the dashboard's page (it holds no data; it asks for a key); without a
 * key /health says only that the service is up (no ports, pids or files). A missing or wrong key is a 401 in the
 * route family's error shape.
 * Keys are compared by their SHA-256 in constant time. `server.keys` adds named keys with a role and limits
 * (policy-hook.ts enforces them); the request's key is recorded for the fair queue and accounting (request-key.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ApiKeyConfig } from '../config/index.js';
import { derived } from '../util/derived.js';
import { DASHBOARD_PATH } from './dashboard.js';
import { errorBodyFor } from './errors.js';
import { setRequestKey } from './request-key.js';
import type { ProxyApp } from './types.js';

const digest = (key: string): Buffer => createHash('sha256').update(key).digest();

/** A configured key as kept in memory: its SHA-256, never the key. */
export interface KnownKey {
  name: string;
  sha256: Buffer;
  role: 'user' | 'admin';
  policy: Omit<ApiKeyConfig, 'key' | 'keySha256'>;
}

/** `server.keys` and the plain `server.apiKeys` (admin keys named `apiKeys[i]`, no limits), hashed. */
export function knownKeys(apiKeys: readonly string[], keys: readonly ApiKeyConfig[]): KnownKey[] {
  const plain: KnownKey[] = apiKeys.map((k, i) => ({ name: `apiKeys[${i}]`, sha256: digest(k), role: 'admin', policy: { name: `apiKeys[${i}]`, priority: 'normal', role: 'admin' } }));
  const named: KnownKey[] = keys.map(({ key, keySha256, ...policy }) => ({ name: policy.name, sha256: key !== undefined ? digest(key) : Buffer.from(keySha256!, 'hex'), role: policy.role, policy }));
  return [...plain, ...named];
}

/** The known key `key` is (every one compared in constant time), if any. */
export function identifyKey(key: string | undefined, known: readonly KnownKey[]): KnownKey | undefined {
  if (key === undefined) return undefined;
  const d = digest(key);
  let found: KnownKey | undefined;
  for (const k of known) if (timingSafeEqual(d, k.sha256) && !found) found = k;
  return found;
}

const identified = new WeakMap<object, KnownKey>();

/** The configured key a request came with (undefined: no keys configured, an open route, or a cluster peer). */
export function knownKeyOf(request: FastifyRequest): KnownKey | undefined {
  return identified.get(request.raw);
}

/** The key a request carries, if any. */
export function presentedKey(headers: FastifyRequest['headers']): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m) return m[1]!.trim();
  }
  const x = headers['x-api-key'];
  return typeof x === 'string' && x.trim() !== '' ? x.trim() : undefined;
}

/** Whether `key` is one of `allowed` (each compared in constant time). */
export function keyAllowed(key: string | undefined, allowed: readonly Buffer[]): boolean {
  if (key === undefined) return false;
  const d = digest(key);
  let ok = false;
  for (const a of allowed) ok = timingSafeEqual(d, a) || ok;
  return ok;
}

function isOpen(method: string, url: string): boolean {
  const path = url.split('?')[0];
  return (method === 'GET' || method === 'HEAD') && (path === '/' || path === '/health' || path === DASHBOARD_PATH);
}

/**
 * Adds the key check; returns whether a request carries a valid key (always true when no key is configured), for
 * the open routes that say more to a client with a key (/health). The keys are read from `server()` per request
 * (a config reload changes them at once); their hashes are made again only when that section is replaced.
 */
export function registerApiKeys(app: ProxyApp, server: () => { apiKeys: readonly string[]; keys: readonly ApiKeyConfig[] }, trusted: (request: FastifyRequest) => boolean = () => false): (request: FastifyRequest) => boolean {
  const current = derived(server, (s) => knownKeys(s.apiKeys, s.keys));
  // A callback hook (no promise per request).
  app.addHook('onRequest', (request, reply, done) => {
    const known = current();
    if (known.length === 0) return done();
    // Another node of the cluster (it checked its client's key and applied its policy): the cluster token stands
    // for it, and it is not limited again here.
    if (isOpen(request.method, request.url) || trusted(request)) return done();
    const key = presentedKey(request.headers);
    const found = identifyKey(key, known);
    if (found) {
      identified.set(request.raw, found);
      setRequestKey(request, { name: found.name, priority: found.policy.priority, ...(found.policy.maxQueue !== undefined ? { maxQueue: found.policy.maxQueue } : {}) });
      return done();
    }
    const message = key === undefined ? 'an API key is required: send "Authorization: Bearer <key>" or "x-api-key: <key>"' : 'the API key is not valid';
    void reply.code(401).header('www-authenticate', 'Bearer');
    // Each family's clients read only their own error shape (Ollama's {"error"}, Anthropic's, else OpenAI's).
    void reply.send(errorBodyFor(request.url, 401, message, key === undefined ? 'missing_api_key' : 'invalid_api_key'));
  });
  return (request) => {
    const known = current();
    return known.length === 0 || trusted(request) || identifyKey(presentedKey(request.headers), known) !== undefined;
  };
}
