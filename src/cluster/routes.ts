/**
 * The node-to-node routes: GET /cluster/state (a peer polls this node's state), POST /cluster/state (a peer
 * pushes its own), and the cluster token's check on them and on requests another node forwards here. With a
 * token set, every /cluster/ route needs it (x-llama-smart-proxy-cluster-token), and a request marked as
 * forwarded without it is refused. Without one, the routes are open like the rest of an open proxy.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { errorBodyFor } from '../api/errors.js';
import type { ProxyApp } from '../api/types.js';
import type { Cluster } from './cluster.js';
import { setRequestKey } from '../api/request-key.js';
import { markForwarded, parseForwardedKey } from './forwarded.js';
import { CLUSTER_TOKEN_HEADER, FORWARDED_HEADER, FORWARDED_KEY_HEADER, NODE_HEADER } from './peers.js';
import type { NodeState } from './types.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Whether the request carries the cluster token (false when none is configured). */
export function carriesClusterToken(request: FastifyRequest, token: string | undefined): boolean {
  if (!token) return false;
  const presented = request.headers[CLUSTER_TOKEN_HEADER];
  return typeof presented === 'string' && timingSafeEqual(digest(presented), digest(token));
}

const pairs = z.array(z.tuple([z.number().int().nonnegative(), z.number().nonnegative()]));
/** What a pushed state must hold for the planner to use it (more fields pass through). */
const NodeStateSchema = z.looseObject({
  node: z.string().min(1),
  url: z.url({ protocol: /^https?$/ }),
  version: z.string(),
  at: z.number(),
  gpus: z.array(z.looseObject({ index: z.number().int().nonnegative(), uuid: z.string(), name: z.string(), totalBytes: z.number().nonnegative(), freeBytes: z.number(), utilization: z.number().nullable() })),
  host: z.object({ totalBytes: z.number().nonnegative(), availableBytes: z.number(), loadingBytes: z.number() }),
  instances: z.array(
    z.looseObject({
      id: z.string(),
      modelId: z.string(),
      state: z.string(),
      inFlight: z.number().int().nonnegative(),
      slots: z.number().int().positive(),
      pinned: z.boolean(),
      lastUsed: z.number(),
      gpuBytes: pairs,
      hostBytes: z.number().nonnegative(),
      gpus: z.array(z.number().int().nonnegative()),
    }),
  ),
  loading: pairs,
  queued: z.number().int().nonnegative(),
  capacity: z.number().int().nonnegative(),
  runtimeBytes: z.number().nullable(),
  models: z.array(z.string()),
  rpc: z.boolean(),
});

/**
 * Adds the node header on every answer, the token check, and the state routes. Returns whether a request
 * carries the cluster token (the API key check lets such requests through: the entry checked the client's key).
 */
export function registerClusterRoutes(app: ProxyApp, cluster: Cluster, token: string | undefined): (request: FastifyRequest) => boolean {
  app.addHook('onRequest', async (request, reply) => {
    // Every answer names the node that served it; a forwarded answer carries the serving node's own.
    reply.raw.setHeader(NODE_HEADER, cluster.name);
    const path = request.url.split('?')[0]!;
    const from = request.headers[FORWARDED_HEADER];
    const isClusterRoute = path.startsWith('/cluster/');
    if (!isClusterRoute && from === undefined) return;
    if (token && !carriesClusterToken(request, token)) {
      void reply.code(401);
      return reply.send(errorBodyFor(request.url, 401, `${isClusterRoute ? path : 'a forwarded request'} needs the cluster token (header ${CLUSTER_TOKEN_HEADER})`, 'invalid_cluster_token'));
    }
    if (typeof from === 'string') {
      markForwarded(request, from);
      // Served for the entry's client: its turn in this node's fair queue is that client's.
      const key = parseForwardedKey(request.headers[FORWARDED_KEY_HEADER]);
      if (key) setRequestKey(request, key);
    }
  });

  app.get('/cluster/state', async () => cluster.localState(true));
  app.post('/cluster/state', async (request, reply) => {
    const parsed = NodeStateSchema.safeParse(request.parsedBody?.json);
    if (!parsed.success) {
      return reply.code(400).send(errorBodyFor(request.url, 400, `not a node state: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`, 'invalid_state'));
    }
    cluster.peers.receive(parsed.data as NodeState);
    return reply.code(204).send();
  });
  app.get('/cluster/nodes', async () => ({ node: cluster.name, nodes: await cluster.report() }));
  return (request) => carriesClusterToken(request, token);
}
