/**
 * From a request's "model" to a model on disk: configured and local models resolve at once; a Hugging Face
 * model not yet cached is looked up, its header fetched by range and checked against the machine (a model that
 * can never fit is refused before gigabytes move), then downloaded once however many requests wait for it.
 * A streamed request sees the download's progress as SSE comments while it waits.
 */
import type { ServerResponse } from 'node:http';
import type { Config } from '../config/index.js';
import { modelInfo } from '../estimate/index.js';
import { ClientError, describeProgress, resolveModel, resolveModelAsync, type DownloadProgress, type ModelHub, type ResolvedModel } from '../models/index.js';
import type { PlacementService } from '../placement/service.js';
import type { Pool } from '../pool/pool.js';

export interface ResolutionDeps {
  config: Config;
  pool: Pool;
  hub?: ModelHub | undefined;
  placer?: PlacementService | undefined;
}

export interface ResolveContext {
  signal?: AbortSignal;
  /** Where to write progress comments (a streamed request); headers are sent on the first one. */
  progressTo?: ServerResponse;
}

/** Whether progress comments were written: the response is then an SSE stream already (status 200 sent). */
export function progressStarted(res: ServerResponse): boolean {
  return res.headersSent;
}

export interface ModelResolver {
  /** Configured and local models only (ClientError 404 for a model not on disk). */
  sync(id: unknown): ResolvedModel;
  /** Downloads a Hugging Face model not on disk yet (when a hub is configured). */
  async(id: unknown, ctx?: ResolveContext): Promise<ResolvedModel>;
}

export function modelResolver(deps: ResolutionDeps): ModelResolver {
  const sync = (id: unknown) => resolveModel(deps.config, id);
  if (!deps.hub) return { sync, async: async (id) => sync(id) };
  const hub = deps.hub;
  return {
    sync,
    async: (id, ctx = {}) =>
      resolveModelAsync(deps.config, id, hub, {
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(ctx.progressTo ? { onProgress: (p: DownloadProgress) => writeProgress(ctx.progressTo!, p) } : {}),
        beforeDownload: async ({ header, model }) => {
          if (!deps.placer) return;
          const info = modelInfo({ ...header, tensors: header.tensors });
          const refusal = await deps.placer.refusalIfNeverFits(model, info, () => deps.pool.charges());
          if (refusal) throw new ClientError(503, 'insufficient_memory', `${refusal} (checked from its header; nothing was downloaded)`);
        },
      }),
  };
}

function writeProgress(res: ServerResponse, p: DownloadProgress): void {
  if (res.writableEnded || res.destroyed) return;
  if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(`: ${describeProgress(p)}\n\n`);
}
