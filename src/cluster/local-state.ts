/**
 * This node's state as its peers see it (GET /cluster/state): GPU readings taken now, the pool's instances and
 * what the ledger charges them, RAM, the runtime overhead learned, the models on this disk.
 */
import type { GpuMonitor } from '../gpu/index.js';
import type { HostMemory, PlacementService } from '../placement/service.js';
import type { Pool } from '../pool/pool.js';
import type { NodeInstance, NodeState } from './types.js';

export interface LocalStateDeps {
  node: string;
  url: string;
  version: string;
  pool: Pool;
  monitor?: GpuMonitor | undefined;
  placer?: PlacementService | undefined;
  hostMemory: HostMemory;
  /** Model ids served from this disk without a download. */
  models: () => string[];
  rpc: boolean;
  /** Read the GPUs now (false: the monitor's last reading, for decisions made per request). */
  fresh?: boolean;
}

export async function readLocalState(deps: LocalStateDeps): Promise<NodeState> {
  const { pool, placer } = deps;
  const hasGpus = deps.monitor !== undefined && deps.monitor.source.kind !== 'none';
  const monitor = deps.monitor!;
  const devices = !hasGpus ? [] : deps.fresh === false ? monitor.latest().devices : await monitor.refresh().catch(() => monitor.latest().devices);
  const ledger = pool.ledgerView();
  const instances: NodeInstance[] = pool.list().map((i) => ({
    id: i.id,
    modelId: i.modelId,
    state: i.state,
    inFlight: i.inFlight,
    slots: i.slots,
    pinned: i.pinned,
    lastUsed: i.lastUsed,
    gpuBytes: [...(pool.chargedBytes(i.id) ?? i.estimatedGpuBytes)],
    hostBytes: i.placement?.estimate.hostBytes ?? 0,
    gpus: i.placement?.gpus.map((g) => g.index) ?? [],
  }));
  return {
    node: deps.node,
    url: deps.url,
    version: deps.version,
    at: Date.now(),
    gpus: devices.map((d) => ({ index: d.index, uuid: d.uuid, name: d.name, totalBytes: d.totalBytes, freeBytes: d.freeBytes, utilization: d.utilizationGpu })),
    host: { totalBytes: deps.hostMemory.total(), availableBytes: deps.hostMemory.available(), loadingBytes: ledger.loadingHostBytes ?? 0 },
    instances,
    loading: [...ledger.loading],
    queued: pool.queued,
    capacity: pool.capacity,
    runtimeBytes: placer?.runtime.bytes() ?? null,
    models: deps.models(),
    rpc: deps.rpc,
  };
}
