/**
 * Per-key policy decisions (issue 15), pure: whether a key may use a model (globs), whether a new request of a
 * key is within its limits (in flight, per minute, tokens per UTC day), and which routes are admin-only. The
 * state (counters) lives in KeyLimiter (limiter.ts); these functions only decide from it.
 */

export type KeyRole = 'user' | 'admin';

export interface KeyLimits {
  maxConcurrent?: number | undefined;
  requestsPerMinute?: number | undefined;
  tokensPerDay?: number | undefined;
}

/** A glob over model ids: `*` any run of characters, `?` one character; case-insensitive. */
export function globMatches(glob: string, name: string): boolean {
  const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

/** Whether a key whose allow-list is `globs` (undefined: every model) may use a model known by any of `names`. */
export function modelAllowed(globs: readonly string[] | undefined, names: readonly string[]): boolean {
  if (globs === undefined) return true;
  return names.some((n) => globs.some((g) => globMatches(g, n)));
}

/** A key's counters at the moment a request arrives. */
export interface KeyUsageNow {
  inFlight: number;
  /** Start times (ms) of its requests in the last minute, oldest first. */
  recentStarts: readonly number[];
  tokensToday: number;
}

export type Admission = { ok: true } | { ok: false; limit: 'maxConcurrent' | 'requestsPerMinute' | 'tokensPerDay'; message: string; retryAfterS: number };

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** Whether a new request of key `name` is within `limits`; else which limit, a message and when to try again. */
export function admit(name: string, limits: KeyLimits, usage: KeyUsageNow, now: number): Admission {
  if (limits.tokensPerDay !== undefined && usage.tokensToday >= limits.tokensPerDay) {
    const nextDay = Math.floor(now / DAY_MS) * DAY_MS + DAY_MS;
    return { ok: false, limit: 'tokensPerDay', message: `key "${name}" used ${usage.tokensToday} tokens today, over its tokensPerDay of ${limits.tokensPerDay}; the budget renews at 00:00 UTC`, retryAfterS: Math.max(1, Math.ceil((nextDay - now) / 1000)) };
  }
  if (limits.maxConcurrent !== undefined && usage.inFlight >= limits.maxConcurrent) {
    return { ok: false, limit: 'maxConcurrent', message: `key "${name}" has ${usage.inFlight} requests in flight, its maxConcurrent is ${limits.maxConcurrent}`, retryAfterS: 1 };
  }
  if (limits.requestsPerMinute !== undefined) {
    const recent = usage.recentStarts.filter((t) => t > now - MINUTE_MS);
    if (recent.length >= limits.requestsPerMinute) {
      // Sliding window: a place frees when the oldest of the last minute's requests is a minute old.
      const oldest = recent[recent.length - limits.requestsPerMinute]!;
      return { ok: false, limit: 'requestsPerMinute', message: `key "${name}" sent ${recent.length} requests in the last minute, its requestsPerMinute is ${limits.requestsPerMinute}`, retryAfterS: Math.max(1, Math.ceil((oldest + MINUTE_MS - now) / 1000)) };
    }
  }
  return { ok: true };
}

/** The UTC day a time falls on (tokensPerDay renews when it changes). */
export function utcDay(now: number): number {
  return Math.floor(now / DAY_MS);
}

/**
 * Routes only an admin key may use: loading and unloading models, downloads (Ollama's pull, delete), instance
 * logs, the per-key usage, the request records, a config reload, and the other admin endpoints. Everything else (inference and
 * read-only views: /v1/models, /api/tags, /api/ps, /api/show, /health, /status, /running, /metrics, the
 * dashboard) is open to user keys.
 */
export function adminOnly(method: string, url: string): boolean {
  const path = url.split('?')[0]!;
  if (path === '/models/load' || path === '/models/unload') return true;
  if (path.startsWith('/logs/') || path === '/logs') return true;
  if (path === '/usage') return true;
  // Everyone's requests (models, key names, bodies when captured).
  if (path === '/requests' || path.startsWith('/requests/')) return true;
  if (path.startsWith('/admin/') || path === '/admin') return true;
  if (method !== 'GET' && method !== 'HEAD' && (path === '/api/pull' || path === '/api/delete' || path === '/api/push' || path === '/api/create' || path === '/api/copy')) return true;
  return false;
}
