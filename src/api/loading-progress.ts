/**
 * server.loadingProgress: reasoning. A streamed OpenAI chat request that must wait for its model (a download, a
 * load, evictions first) is told what happens as `reasoning_content` deltas of chat.completion.chunk events,
 * which chat UIs (Open WebUI, LibreChat, ...) show as a thinking block, where SSE comments show nothing. The
 * stream opens with status 200 at the first line; the model's own answer then follows in the same stream (or an
 * error event, as after download progress today). Off by default: a client that reads `reasoning_content` as
 * the model's would otherwise see it too.
 */
import type { ServerResponse } from 'node:http';
import type { InstancePlacement } from '../placement/service.js';
import type { Pool } from '../pool/pool.js';
import { placementLine } from '../requests/index.js';

const TICK_MS = 3000;

/** One chat.completion.chunk whose delta is `text` as reasoning (pure). */
export function reasoningChunk(model: string, text: string, created = Math.floor(Date.now() / 1000)): string {
  const chunk = { id: 'chatcmpl-loading', object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { reasoning_content: text }, finish_reason: null }] };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** Writes reasoning lines to a response, opening its event stream on the first one. */
export class ReasoningProgress {
  constructor(
    private readonly res: ServerResponse,
    private readonly model: string,
  ) {}

  line(text: string): void {
    const res = this.res;
    if (res.writableEnded || res.destroyed) return;
    if (!res.headersSent) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
    }
    res.write(reasoningChunk(this.model, `${text}\n`));
  }
}

/**
 * Tells `progress` about the pool's work on `modelId` until the returned function is called (the request got its
 * instance): placement, evictions, a wait for memory, the instance ready, and every few seconds that it still loads.
 */
export function watchLoad(pool: Pool, modelId: string, progress: ReasoningProgress): () => void {
  const started = Date.now();
  const secs = () => ((Date.now() - started) / 1000).toFixed(1);
  progress.line(`Loading ${modelId}…`);
  const placed = (_id: string, model: string, p: InstancePlacement) => {
    if (model === modelId) progress.line(`Placed on ${placementLine(p)}${p.reason ? ` (${p.reason})` : ''}.`);
  };
  const evicting = (model: string, victims: string[]) => {
    if (model === modelId) progress.line(`Stopping ${victims.join(', ')} to make room.`);
  };
  const waiting = (model: string, reason: string) => {
    if (model === modelId) progress.line(`Waiting for GPU memory: ${reason}`);
  };
  const ready = (_id: string, model: string, ms: number) => {
    if (model === modelId) progress.line(`Ready after ${(ms / 1000).toFixed(1)} s of loading.\n`);
  };
  const tick = setInterval(() => progress.line(`Still loading (${secs()} s)…`), TICK_MS);
  tick.unref();
  pool.on('placed', placed);
  pool.on('evicting', evicting);
  pool.on('waiting', waiting);
  pool.on('ready', ready);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    clearInterval(tick);
    pool.off('placed', placed);
    pool.off('evicting', evicting);
    pool.off('waiting', waiting);
    pool.off('ready', ready);
  };
}
