/** Turns a resolved model and a port into an Instance of the chosen llama-server. */
import os from 'node:os';
import type { Config } from '../config/index.js';
import { cacheRamMiB, placementEnv, placementFlags, serverFlags } from '../llamacpp/flags.js';
import { defaultDeviceOrder, rpcPlacementFlags } from '../llamacpp/rpc-flags.js';
import type { InstanceRpc, ResolvedModel } from '../models/index.js';
import type { InstancePlacement } from '../placement/service.js';
import { Instance } from './instance.js';
import type { InstanceLauncher } from './pool.js';

export const INSTANCE_HOST = '127.0.0.1';

export class LlamaServerLauncher implements InstanceLauncher {
  constructor(
    private readonly binary: string,
    private readonly config: Pick<Config, 'llamaServer' | 'pool'>,
    private readonly totalMemBytes: number = os.totalmem(),
  ) {}

  launch(model: ResolvedModel, port: number, instanceId: string, placement?: InstancePlacement): Instance {
    const gpu = placement
      ? { gpuUuids: placement.gpus.map((g) => g.uuid), ngl: placement.ngl, splitMode: placement.splitMode, ...(placement.tensorSplit ? { tensorSplit: placement.tensorSplit } : {}) }
      : undefined;
    const args = serverFlags({
      file: model.file,
      alias: model.id,
      host: INSTANCE_HOST,
      port,
      ctx: model.ctx,
      parallel: model.parallel,
      logVerbosity: this.config.llamaServer.logVerbosity,
      // The placement's flags come first, so a model's own args (its pins written as flags) still win.
      extraArgs: [
        ...(model.rpc ? rpcFlags(model.rpc) : gpu ? placementFlags(gpu) : []),
        '--cache-ram', String(cacheRamMiB(this.config.llamaServer.cacheRamMiB, this.totalMemBytes, this.config.pool.size)),
        // The vision projector downloaded with the model (multimodal models).
        ...(model.mmproj ? ['--mmproj', model.mmproj] : []),
        ...this.config.llamaServer.extraArgs,
        ...model.args,
      ],
    });
    return new Instance({
      // The model's own environment over ours; the placement's GPUs over both.
      ...(gpu || model.env ? { env: { ...process.env, ...model.env, ...(gpu ? placementEnv(gpu) : {}) } } : {}),
      id: instanceId,
      modelId: model.id,
      binary: this.binary,
      host: INSTANCE_HOST,
      port,
      args,
      startTimeoutMs: this.config.llamaServer.startTimeout * 1000,
      stopTimeoutMs: this.config.llamaServer.stopTimeout * 1000,
      liveness: {
        intervalMs: this.config.llamaServer.healthInterval * 1000,
        timeoutMs: this.config.llamaServer.healthTimeout * 1000,
        failures: this.config.llamaServer.healthFailures,
      },
    });
  }
}

/** --rpc, -ts over the rpc-servers' devices and this node's GPUs (in llama.cpp's order: RPC first), -ngl all. */
function rpcFlags(rpc: InstanceRpc): string[] {
  const endpoints = rpc.endpoints.map((e) => ({ host: e.host, port: e.port }));
  return rpcPlacementFlags({ endpoints, devices: defaultDeviceOrder(endpoints, rpc.localGpus.length), tensorSplit: rpc.tensorSplit, localGpus: rpc.localGpus.length });
}
