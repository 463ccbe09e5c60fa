/**
 * Node-to-node routes for rpc-servers (llama.cpp RPC): another node asks this one to lend its devices for one of
 * its instances, and stops the rpc-server when that instance stops.
 *
 *   POST   /cluster/rpc      {"lease": "<instance id>", "devices"?: ["CUDA0"], "threads"?: 8}
 *                            -> 200 {"id", "host", "port", "pid", "lease", "state", "devices": [...], "startedAt"}
 *                               (the same lease again returns the rpc-server it already has)
 *   GET    /cluster/rpc      -> 200 {"servers": [...]}
 *   DELETE /cluster/rpc/:id  -> 200 {"id", "stopped": true}, 404 when there is no such rpc-server
 *
 * The cluster token is checked by a hook on every /cluster/* route (not here). Errors are OpenAI-shaped:
 * 400 bad body, 404 unknown id, 503 when this node lends nothing (no cluster.rpcHost, no rpc-server binary) or
 * has no free port, 500 when the rpc-server does not start (its last log lines in the message). Every rpc-server
 * is stopped when the app closes.
 */
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { openaiError } from '../api/errors.js';
import type { ProxyApp } from '../api/types.js';
import { RpcServerError } from './rpc-server.js';
import { RpcConfigError, RpcPortsExhaustedError, type RpcServers } from './rpc-servers.js';

export interface RpcRoutesOptions {
  /** Why this node lends no devices, when `servers` is undefined (e.g. "cluster.rpcHost is not set"). */
  disabledReason?: string;
  /** The environment of an rpc-server lending `gpu` (which GPU it may see); absent: the servers' own. */
  envFor?: (gpu: number | undefined) => NodeJS.ProcessEnv | undefined;
  /** An rpc-server started for a lease that will hold `bytes` on `gpu` (its RAM when undefined): keep it booked. */
  onStart?: (id: string, lease: string, gpu: number | undefined, bytes: number) => void;
  /** It stopped (asked to, or on its own). */
  onStop?: (id: string) => void;
}

const StartBody = z
  .object({
    lease: z.string().min(1).max(200),
    devices: z.array(z.string().regex(/^[A-Za-z0-9_]+$/, 'a device name is letters, digits and _ (CPU, CUDA0)')).min(1).max(64).optional(),
    threads: z.number().int().min(1).max(1024).optional(),
    /** The GPU to lend (the node's own index); absent: the node's choice (its CPU without GPUs). */
    gpu: z.number().int().nonnegative().optional(),
    /** Bytes the asking node's instance will put on it: booked in this node's ledger while it runs. */
    bytes: z.number().nonnegative().optional(),
  })
  .strict();

const IdParams = z.object({ id: z.string().min(1).max(100) });

function refuse(reply: FastifyReply, status: number, message: string, code: string): FastifyReply {
  return reply.code(status).send(openaiError(status, message, code));
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'body'}: ${i.message}`).join('; ');
}

export type RpcRoutesApp = ProxyApp;

export function registerRpcRoutes(app: RpcRoutesApp, servers: RpcServers | undefined, opts: RpcRoutesOptions = {}): void {
  const disabled = (reply: FastifyReply): FastifyReply =>
    refuse(reply, 503, `this node lends no devices over RPC: ${opts.disabledReason ?? 'cluster.rpcHost is not set'}`, 'rpc_unavailable');

  app.post('/cluster/rpc', async (request, reply) => {
    const body = StartBody.safeParse(request.body ?? {});
    if (!body.success) return refuse(reply, 400, `bad rpc-server request: ${describeIssues(body.error)}`, 'invalid_rpc_request');
    if (!servers) return disabled(reply);
    try {
      const env = opts.envFor?.(body.data.gpu);
      const info = await servers.start({
        lease: body.data.lease,
        ...(body.data.devices ? { devices: body.data.devices } : {}),
        ...(body.data.threads !== undefined ? { threads: body.data.threads } : {}),
        ...(env ? { env } : {}),
      });
      if (opts.onStart) {
        opts.onStart(info.id, body.data.lease, body.data.gpu, body.data.bytes ?? 0);
        servers.get(info.id)?.once('exit', () => opts.onStop?.(info.id));
      }
      return reply.send(info);
    } catch (err) {
      if (err instanceof RpcPortsExhaustedError || err instanceof RpcConfigError) return refuse(reply, 503, err.message, 'rpc_unavailable');
      if (err instanceof RpcServerError) return refuse(reply, 500, err.message, 'rpc_start_failed');
      throw err;
    }
  });

  app.get('/cluster/rpc', async (_request, reply) => reply.send({ servers: servers?.list() ?? [] }));

  app.delete('/cluster/rpc/:id', async (request, reply) => {
    const params = IdParams.safeParse(request.params);
    if (!params.success) return refuse(reply, 400, `bad rpc-server id: ${describeIssues(params.error)}`, 'invalid_rpc_request');
    if (!servers || !(await servers.stop(params.data.id))) {
      return refuse(reply, 404, `no rpc-server "${params.data.id}" (running: ${servers?.list().map((s) => s.id).join(', ') || 'none'})`, 'rpc_not_found');
    }
    return reply.send({ id: params.data.id, stopped: true });
  });

  if (servers) app.addHook('onClose', async () => servers.stopAll());
}
