/**
 * Log lines, for an operator (admin routes when keys are set): an instance's (running or recently ended; its
 * llama-server's own output) and the proxy's own (its pino lines, shown as a person reads them).
 *   GET /logs                     which logs there are
 *   GET /logs/proxy               the proxy's recent lines, text
 *   GET /logs/:instance           an instance's recent lines, text
 *   GET /logs/:id/stream          SSE: the last lines (?tail=, default 200) as `line` events, a `live` event,
 *                                 then each new line as it comes (an instance's end: an `exit` event)
 */
import type { FastifyReply } from 'fastify';
import { ClientError } from '../models/index.js';
import type { Instance } from '../pool/instance.js';
import type { Pool } from '../pool/pool.js';
import type { LogLines } from '../util/log-lines.js';
import { prettyLine } from '../util/pretty-log.js';
import type { SseFeeds } from './sse-feed.js';
import type { ProxyApp } from './types.js';

export interface LogRoutesDeps {
  pool: Pool;
  feeds: SseFeeds;
  /** The proxy's own lines (absent: the logger given to the proxy keeps them elsewhere). */
  proxyLines?: LogLines | undefined;
}

const PROXY = 'proxy';
const DEFAULT_TAIL = 200;

function tailOf(query: unknown): number {
  const raw = (query as Record<string, unknown>).tail;
  if (raw === undefined) return DEFAULT_TAIL;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 10_000) throw new ClientError(400, 'invalid_tail', `tail must be a whole number from 0 to 10000, got "${String(raw)}"`);
  return n;
}

export function registerLogRoutes(app: ProxyApp, { pool, feeds, proxyLines }: LogRoutesDeps): void {
  const instanceOf = (id: string): Instance => {
    const instance = pool.instance(id);
    if (!instance) throw new ClientError(404, 'instance_not_found', `no instance "${id}" (running: ${pool.list().map((i) => i.id).join(', ') || 'none'}; the proxy's own: "${PROXY}")`);
    return instance;
  };
  const proxyText = (n: number) => (proxyLines ? proxyLines.last(n).map((l) => prettyLine(l)) : ['(this proxy was given a logger of its own: its lines are not kept here)']);
  const text = (reply: FastifyReply, lines: string[]) => reply.type('text/plain; charset=utf-8').send(lines.length ? `${lines.join('\n')}\n` : '');

  app.get('/logs', async () => {
    const running = pool.list();
    const ended = pool.endedInstances().filter((i) => !running.some((r) => r.id === i.id));
    return {
      logs: [
        { id: PROXY, kind: 'proxy', label: 'the proxy', state: 'running' },
        ...running.map((i) => ({ id: i.id, kind: 'instance', label: `${i.modelId} (${i.id})`, model: i.modelId, state: i.state })),
        ...ended.reverse().map((i) => ({ id: i.id, kind: 'instance', label: `${i.spec.modelId} (${i.id}, ended)`, model: i.spec.modelId, state: i.state })),
      ],
    };
  });

  app.get('/logs/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    if (id === PROXY) return text(reply, proxyText(tailOf({ tail: (request.query as Record<string, unknown>).tail ?? 1000 })));
    return text(reply, instanceOf(id).logs.toArray());
  });

  app.get('/logs/:id/stream', async (request, reply) => {
    const { id } = request.params as { id: string };
    const tail = tailOf(request.query);
    if (id === PROXY) {
      const feed = feeds.start(reply);
      for (const line of proxyText(tail)) feed.send(JSON.stringify(line), 'line');
      feed.send('{}', 'live');
      if (!proxyLines) return;
      const onLine = (line: string) => feed.send(JSON.stringify(prettyLine(line)), 'line');
      proxyLines.on('line', onLine);
      feed.onClose(() => proxyLines.off('line', onLine));
      return;
    }
    const instance = instanceOf(id);
    const feed = feeds.start(reply);
    for (const line of instance.logs.last(tail)) feed.send(JSON.stringify(line), 'line');
    feed.send('{}', 'live');
    instance.setMaxListeners(Math.max(instance.getMaxListeners(), feeds.max + 10));
    const onLine = (line: string) => feed.send(JSON.stringify(line), 'line');
    const onExit = () => feed.send(JSON.stringify({ exited: true }), 'exit');
    instance.on('line', onLine);
    instance.once('exit', onExit);
    feed.onClose(() => {
      instance.off('line', onLine);
      instance.off('exit', onExit);
    });
  });
}
