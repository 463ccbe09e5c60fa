/**
 * The running config, reloadable (issue 15 item 4). Everything the proxy runs holds the one live Config object and
 * reads it as it goes; a reload re-reads the file through the given loader and, when it is valid, replaces the live
 * object's sections in place (restart-only settings keep their running values, see reload-plan.ts), then emits
 * `change` with the plan (the server drains changed models). An invalid file keeps the running config; the error is
 * kept in `lastReload` for /health, the log and the reload's answer. Reloads run one at a time.
 */
import { EventEmitter } from 'node:events';
import type { Config } from './load.js';
import { keepRestartOnly, reloadPlan, type ReloadPlan } from './reload-plan.js';

export interface ReloadOutcome {
  at: string;
  ok: boolean;
  error?: string;
  plan?: ReloadPlan;
}

export class ConfigHolder extends EventEmitter<{ change: [live: Config, previous: Config, plan: ReloadPlan] }> {
  readonly #live: Config;
  loadedAt: string;
  lastReload: ReloadOutcome | undefined;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(
    live: Config,
    private readonly load: () => Config | Promise<Config>,
    private readonly now: () => Date = () => new Date(),
  ) {
    super();
    this.#live = live;
    this.loadedAt = now().toISOString();
  }

  /** The live config (always the same object; its sections change on a reload). */
  get current(): Config {
    return this.#live;
  }

  /** Re-reads the config; on success applies it in place and emits `change` with the plan. */
  reload(): Promise<ReloadOutcome> {
    const run = this.#chain.then(() => this.#reload());
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #reload(): Promise<ReloadOutcome> {
    const at = this.now().toISOString();
    let next: Config;
    try {
      next = await this.load();
    } catch (err) {
      this.lastReload = { at, ok: false, error: (err as Error).message };
      return this.lastReload;
    }
    const live = this.#live;
    const previous = { ...live };
    const plan = reloadPlan(previous, next);
    const applied = keepRestartOnly(previous, next);
    const target = live as unknown as Record<string, unknown>;
    for (const key of Object.keys(target)) if (!(key in applied)) delete target[key];
    Object.assign(target, applied);
    this.loadedAt = at;
    this.lastReload = { at, ok: true, plan };
    this.emit('change', live, previous, plan);
    return this.lastReload;
  }
}
