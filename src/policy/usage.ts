/**
 * Accounting per key and model: requests, errors, prompt and completion tokens, in hourly buckets (the last
 * 7 days) plus totals since the proxy started. Memory is bounded: at most MAX_MODELS models per key (more are
 * counted as "other") and 168 buckets each.
 */

export interface UsageCounts {
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
}

const HOUR_MS = 3_600_000;
const KEPT_HOURS = 168;
export const MAX_MODELS = 256;
export const OTHER_MODEL = 'other';

const zero = (): UsageCounts => ({ requests: 0, errors: 0, promptTokens: 0, completionTokens: 0 });

function add(into: UsageCounts, d: Partial<UsageCounts>): void {
  into.requests += d.requests ?? 0;
  into.errors += d.errors ?? 0;
  into.promptTokens += d.promptTokens ?? 0;
  into.completionTokens += d.completionTokens ?? 0;
}

interface ModelUsage {
  total: UsageCounts;
  /** Hour number -> counts. */
  hours: Map<number, UsageCounts>;
}

export class UsageBook {
  private readonly keys = new Map<string, Map<string, ModelUsage>>();

  constructor(readonly startedAt: number = Date.now()) {}

  record(key: string, model: string, delta: Partial<UsageCounts>, now = Date.now()): void {
    let models = this.keys.get(key);
    if (!models) this.keys.set(key, (models = new Map()));
    const name = models.has(model) || models.size < MAX_MODELS ? model : OTHER_MODEL;
    let m = models.get(name);
    if (!m) models.set(name, (m = { total: zero(), hours: new Map() }));
    add(m.total, delta);
    const hour = Math.floor(now / HOUR_MS);
    let h = m.hours.get(hour);
    if (!h) {
      m.hours.set(hour, (h = zero()));
      for (const old of m.hours.keys()) if (old <= hour - KEPT_HOURS) m.hours.delete(old);
    }
    add(h, delta);
  }

  /**
   * Per key (one key, or all), per model: the counts since `since` (ms; whole hours, at most 7 days back) or,
   * without it, since the proxy started.
   */
  report(opts: { key?: string | undefined; since?: number | undefined } = {}): Record<string, Record<string, UsageCounts>> {
    const out: Record<string, Record<string, UsageCounts>> = {};
    for (const [key, models] of this.keys) {
      if (opts.key !== undefined && key !== opts.key) continue;
      const perModel: Record<string, UsageCounts> = {};
      for (const [model, m] of models) {
        if (opts.since === undefined || opts.since <= this.startedAt) perModel[model] = { ...m.total };
        else {
          const from = Math.floor(opts.since / HOUR_MS);
          const sum = zero();
          for (const [hour, c] of m.hours) if (hour >= from) add(sum, c);
          perModel[model] = sum;
        }
      }
      out[key] = perModel;
    }
    return out;
  }
}
