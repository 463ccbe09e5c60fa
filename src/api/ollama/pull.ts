/**
 * /api/pull for an Ollama name: the manifest and blobs from Ollama's registry into the store (sources/ollama-pull.ts),
 * with Ollama's own progress lines (`pulling manifest`, `pulling <digest>` with digest/total/completed per blob,
 * `verifying sha256 digest`, `writing manifest`, `success`), or one `{"status":"success"}` with stream false. The
 * model layer's header is read first (range requests) and the estimate checked: a model that can never fit this
 * machine is refused before it is downloaded.
 */
import type { ServerResponse } from 'node:http';
import type { Config } from '../../config/index.js';
import type { GgufModelHeader } from '../../gguf/index.js';
import { formatBytes, type ResolvedModel } from '../../models/index.js';
import type { OllamaName, OllamaPuller, OllamaPullPlan } from '../../sources/index.js';
import { describeError } from '../errors.js';

export interface OllamaPullDeps {
  config: Config;
  puller: OllamaPuller;
  checkFits?: ((model: ResolvedModel, header: GgufModelHeader) => Promise<void>) | undefined;
}

/** The model as it would run, for the fit check (the params layer is not read before the download). */
function plannedModel(config: Config, plan: OllamaPullPlan): ResolvedModel {
  return {
    id: plan.display,
    file: plan.model.local,
    ref: { kind: 'ollama', name: plan.display },
    source: 'ollama',
    ctx: config.modelDefaults.ctx,
    parallel: config.modelDefaults.parallel,
    args: [...config.modelDefaults.args],
    ttl: config.pool.ttl,
    pinned: false,
  };
}

async function prepare(deps: OllamaPullDeps, name: OllamaName, say: (line: Record<string, unknown>) => void): Promise<OllamaPullPlan> {
  const plan = await deps.puller.plan(name);
  if (!plan.model.cached && deps.checkFits) {
    const header = await deps.puller.probeHeader(plan);
    await deps.checkFits(plannedModel(deps.config, plan), header);
    say({ status: `model layer ${formatBytes(plan.model.size)}: fits this machine (estimated from its header)` });
  }
  return plan;
}

/** Pulls `name`; `body.stream === false` answers once, else streams NDJSON lines on `res`. Errors end the stream with `{"error"}`. */
export async function pullOllamaName(deps: OllamaPullDeps, name: OllamaName, stream: boolean, res: ServerResponse, signal: AbortSignal): Promise<{ status: string } | undefined> {
  if (!stream) {
    const plan = await prepare(deps, name, () => {});
    await deps.puller.pull(plan, { signal });
    return { status: 'success' };
  }
  await streamPull(res, async (send) => {
    const plan = await prepare(deps, name, send);
    await deps.puller.pull(plan, {
      signal,
      onProgress: (p) => send({ status: `pulling ${p.digest.slice(7, 19)}`, digest: p.digest, total: p.total, completed: p.completed }),
    });
  });
  return undefined;
}

/**
 * A pull's answer as Ollama streams it (NDJSON on `res`): "pulling manifest", whatever `run` sends while it
 * downloads, then "verifying sha256 digest", "writing manifest", "success"; a failure ends it with `{"error"}`.
 */
export async function streamPull(res: ServerResponse, run: (send: (line: Record<string, unknown>) => void) => Promise<void>): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  const send = (line: Record<string, unknown>) => {
    if (!res.destroyed) res.write(`${JSON.stringify(line)}\n`);
  };
  try {
    send({ status: 'pulling manifest' });
    await run(send);
    send({ status: 'verifying sha256 digest' });
    send({ status: 'writing manifest' });
    send({ status: 'success' });
  } catch (err) {
    send({ error: describeError(err).message });
  } finally {
    res.end();
  }
}
