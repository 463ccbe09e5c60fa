/** The /health document (PRODUCT.md): pool capacity, each server, and the GPU part (null until GPUs are managed). */
import type { Config } from '../config/index.js';
import type { LlamaTools } from '../llamacpp/index.js';
import type { Pool } from '../pool/pool.js';
import { INSTANCE_HOST } from '../pool/launcher.js';

export interface HealthInput {
  config: Config;
  pool: Pool;
  tools: LlamaTools;
  version: string;
  startedAt: number;
}

export function healthReport({ config, pool, tools, version, startedAt }: HealthInput) {
  const now = Date.now();
  const servers = pool.list().map((s) => ({
    id: s.id,
    host: INSTANCE_HOST,
    port: s.port ?? null,
    model_id: s.modelId,
    model_file: s.file,
    status: s.state,
    pid: s.pid ?? null,
    in_flight: s.inFlight,
    pinned: s.pinned,
    ttl_s: s.ttl,
    uptime_s: s.readyAt ? Math.round((now - s.readyAt) / 1000) : 0,
    idle_s: Math.round((now - s.lastUsed) / 1000),
    gpu_assignment: null,
  }));
  return {
    status: 'ok',
    version,
    uptime_s: Math.round((now - startedAt) / 1000),
    llama_server: { path: tools.server, source: tools.source },
    pool: {
      capacity: pool.capacity,
      running: servers.length,
      available: Math.max(0, pool.capacity - servers.length),
      queued: pool.queued,
    },
    servers,
    models_configured: Object.keys(config.models).length,
    gpu_monitoring: false,
    allocation_strategy: 'cpu-only',
    gpu_pool_status: null,
  };
}
