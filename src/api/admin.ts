/** Admin endpoints: running instances, explicit load/unload, an instance's recent log lines. */
import type { Config } from '../config/index.js';
import { ClientError, type ResolvedModel } from '../models/index.js';
import type { InstanceInfo, Pool } from '../pool/pool.js';
import type { ProxyApp } from './types.js';

export interface AdminDeps {
  config: Config;
  pool: Pool;
  resolve: (id: unknown) => ResolvedModel;
}

function describeInstance(i: InstanceInfo, now: number) {
  return {
    id: i.id,
    model: i.modelId,
    file: i.file,
    state: i.state,
    port: i.port ?? null,
    pid: i.pid ?? null,
    in_flight: i.inFlight,
    pinned: i.pinned,
    ttl_s: i.ttl,
    uptime_s: i.readyAt ? Math.round((now - i.readyAt) / 1000) : 0,
    last_used: new Date(i.lastUsed).toISOString(),
  };
}

function optionalModel(body: unknown): unknown {
  if (body === undefined || body === null) return undefined;
  if (typeof body !== 'object' || Array.isArray(body)) throw new ClientError(400, 'invalid_json', 'request body must be a JSON object');
  return (body as Record<string, unknown>).model;
}

export function registerAdminRoutes(app: ProxyApp, { pool, resolve }: AdminDeps): void {
  app.get('/running', async () => {
    const now = Date.now();
    return { running: pool.list().map((i) => describeInstance(i, now)) };
  });

  app.post('/models/load', async (request) => {
    const id = optionalModel(request.body);
    if (id === undefined) throw new ClientError(400, 'model_required', 'request body needs a "model" field');
    const started = Date.now();
    const info = await pool.load(resolve(id));
    return { status: 'ready', load_ms: Date.now() - started, instance: describeInstance(info, Date.now()) };
  });

  app.post('/models/unload', async (request) => {
    const id = optionalModel(request.body);
    const unloaded = await pool.unload(id === undefined ? undefined : resolve(id).id);
    return { unloaded };
  });

  app.get('/logs/:instance', async (request, reply) => {
    const { instance: id } = request.params as { instance: string };
    const instance = pool.instance(id);
    if (!instance) throw new ClientError(404, 'instance_not_found', `no instance "${id}" (running: ${pool.list().map((i) => i.id).join(', ') || 'none'})`);
    const lines = instance.logs.toArray();
    return reply.type('text/plain; charset=utf-8').send(`${lines.join('\n')}\n`);
  });
}
