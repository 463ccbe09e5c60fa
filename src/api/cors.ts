/**
 * CORS for browser clients. `server.cors.origins` lists the allowed origins; `*` in one matches anything there
 * (`http://localhost:*`), a lone `"*"` allows every origin. The default is Ollama's: pages served from
 * localhost, 127.0.0.1, [::1] and 0.0.0.0 on any port and scheme, and desktop-app schemes. Preflights (OPTIONS
 * with Access-Control-Request-Method) are answered here, on every path, before the key check: a browser never
 * sends credentials on a preflight, and answering it grants nothing; the real request still needs its key. A
 * foreign origin gets no allow header (its browser then blocks the call). About 40 lines of our own rather than
 * @fastify/cors: these rules (wildcard ports, preflight ahead of the key check on paths with no route) would need
 * as much configuration there.
 */
import { derived } from '../util/derived.js';
import type { ProxyApp } from './types.js';

const METHODS = 'GET, POST, DELETE, OPTIONS, HEAD';
/** What our clients send: keys (both forms), Anthropic's version headers, JSON. The request's own list is added. */
const HEADERS = ['authorization', 'x-api-key', 'anthropic-version', 'anthropic-beta', 'content-type'];

/** A matcher for the configured origins. */
export function originMatcher(patterns: readonly string[]): (origin: string) => boolean {
  if (patterns.includes('*')) return () => true;
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const p of patterns) {
    const lower = p.toLowerCase();
    if (!lower.includes('*')) exact.add(lower);
    else globs.push(new RegExp(`^${lower.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}$`));
  }
  return (origin) => {
    const o = origin.toLowerCase();
    return exact.has(o) || globs.some((g) => g.test(o));
  };
}

/** `origins` is read per request (a config reload may change it); its matcher is rebuilt only when it does. */
export function registerCors(app: ProxyApp, origins: () => readonly string[]): void {
  const current = derived(origins, (list) => ({ allowed: originMatcher(list), any: list.includes('*') }));
  // A callback hook (no promise per request).
  app.addHook('onRequest', (request, reply, done) => {
    const origin = request.headers.origin;
    const { allowed, any } = current();
    const ok = typeof origin === 'string' && allowed(origin);
    // On the raw response: proxied answers are written there, past fastify's reply headers.
    if (ok) {
      reply.raw.setHeader('access-control-allow-origin', any ? '*' : origin);
      if (!any) reply.raw.setHeader('vary', 'Origin');
    }
    if (request.method !== 'OPTIONS' || request.headers['access-control-request-method'] === undefined) return done();
    if (ok) {
      const asked = String(request.headers['access-control-request-headers'] ?? '').toLowerCase().split(',').map((h) => h.trim()).filter(Boolean);
      reply.raw.setHeader('access-control-allow-methods', METHODS);
      reply.raw.setHeader('access-control-allow-headers', [...new Set([...HEADERS, ...asked])].join(', '));
      reply.raw.setHeader('access-control-max-age', '600');
    }
    void reply.code(204).send();
  });
}
