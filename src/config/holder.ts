/**
 * The running config, swappable (issue 15 item 4): parts that must see a reload read `holder.current` per request
 * instead of capturing the config at start. `reload` re-reads through the given loader; an invalid file keeps the
 * running config and the error is kept in `lastReload` (for /health, the log and the reload's answer).
 */
import { EventEmitter } from 'node:events';
import type { Config } from './load.js';
import { reloadPlan, type ReloadPlan } from './reload-plan.js';

export interface ReloadOutcome {
  at: string;
  ok: boolean;
  error?: string;
  plan?: ReloadPlan;
}

export class ConfigHolder extends EventEmitter<{ change: [next: Config, previous: Config, plan: ReloadPlan] }> {
  #current: Config;
  loadedAt: string;
  lastReload: ReloadOutcome | undefined;

  constructor(
    initial: Config,
    private readonly load: () => Config | Promise<Config>,
    private readonly now: () => Date = () => new Date(),
  ) {
    super();
    this.#current = initial;
    this.loadedAt = now().toISOString();
  }

  get current(): Config {
    return this.#current;
  }

  /** Re-reads the config; on success swaps it and emits `change` with the plan (listeners apply drains). */
  async reload(): Promise<ReloadOutcome> {
    const at = this.now().toISOString();
    let next: Config;
    try {
      next = await this.load();
    } catch (err) {
      this.lastReload = { at, ok: false, error: (err as Error).message };
      return this.lastReload;
    }
    const previous = this.#current;
    const plan = reloadPlan(previous, next);
    this.#current = next;
    this.loadedAt = at;
    this.lastReload = { at, ok: true, plan };
    this.emit('change', next, previous, plan);
    return this.lastReload;
  }
}
