/**
 * Config reload over HTTP (issue 15 item 4): `POST /admin/reload` (admin role when keys are set) re-reads the
 * config file and answers what changed, or 422 naming what is wrong with the file (the running config is kept).
 * /health shows the file, when it was loaded and the last reload's outcome (`configReport`).
 */
import type { ConfigHolder, ReloadOutcome } from '../config/holder.js';
import type { ReloadPlan } from '../config/reload-plan.js';
import { errorBodyFor } from './errors.js';
import type { ProxyApp } from './types.js';

function planReport(plan: ReloadPlan) {
  return { added: plan.added, removed: plan.removed, changed: plan.changed, needs_restart: plan.needsRestart };
}

function outcomeReport(outcome: ReloadOutcome) {
  return { at: outcome.at, ok: outcome.ok, ...(outcome.error ? { error: outcome.error } : {}), ...(outcome.plan ? planReport(outcome.plan) : {}) };
}

/** The `config` section of /health. */
export function configReport(holder: ConfigHolder) {
  return {
    file: holder.current.source,
    loaded_at: holder.loadedAt,
    last_reload: holder.lastReload ? outcomeReport(holder.lastReload) : null,
  };
}

export function registerReloadRoute(app: ProxyApp, holder: ConfigHolder): void {
  app.post('/admin/reload', async (request, reply) => {
    const outcome = await holder.reload();
    if (!outcome.ok) {
      request.log.warn({ reason: outcome.error }, 'config reload refused: the running config is kept');
      return reply.code(422).send(errorBodyFor(request.url, 422, `the config was not reloaded (the running one is kept): ${outcome.error}`, 'invalid_config'));
    }
    return { reloaded: true, ...outcomeReport(outcome) };
  });
}
