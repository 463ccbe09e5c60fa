/**
 * llama-server's flags for a placement over RPC devices (rpc-servers on other nodes, or this one) and local GPUs.
 * Pure.
 *
 * How llama.cpp (node-llama-cpp 3.21.1's bundle, common/arg.cpp and src/llama.cpp) numbers the devices:
 *
 * - `--rpc a:p,b:q` registers one backend per endpoint, in that order; each exposes the devices its rpc-server
 *   serves (one, the CPU, for an rpc-server without accelerators), named RPC0, RPC1, ... counted over all
 *   endpoints in order (ggml_backend_rpc_add_server). Their buffers are logged as `RPC<i>[host:port]`, where i is
 *   the device's index *within its server* (so two one-device servers log RPC0[a:p] and RPC0[b:q]).
 * - Without `--device`, the model's devices are the RPC devices first (in registration order), then the local
 *   GPUs in their backend's order (CUDA0, CUDA1, ... after CUDA_VISIBLE_DEVICES), then integrated GPUs only
 *   when there is no discrete one; never the CPU. `-ts` lists one share per device in that order, and layers
 *   are dealt out in that order: the first devices get the first layers, the last device the output layer.
 * - With `--device RPC0,CUDA0,...` the list is exactly the one given (in its order); the names must already be
 *   registered, so `--rpc` has to come before `--device` on the command line (arguments apply in order).
 * - `--main-gpu` matters only for split modes none and row, which RPC placements do not use: left out.
 *
 * rpc-server (tools/rpc) binds IPv4 only (inet_addr), and the client splits an endpoint at its first ':': no IPv6.
 */

export interface RpcEndpoint {
  readonly host: string;
  readonly port: number;
  /** Devices its rpc-server exposes (default 1: a CPU-only rpc-server, or one started with a single -d). */
  readonly devices?: number;
}

/** One device of the placement: a device of an RPC endpoint, or a local GPU (its index after CUDA_VISIBLE_DEVICES). */
export type RpcPlacementDevice = { readonly kind: 'rpc'; readonly endpoint: number; readonly device?: number } | { readonly kind: 'gpu'; readonly index: number };

export interface RpcPlacementFlagsInput {
  /** The rpc-servers, in the order --rpc lists them. */
  readonly endpoints: readonly RpcEndpoint[];
  /** The devices the model is split over, in the order layers are dealt out (see above). */
  readonly devices: readonly RpcPlacementDevice[];
  /** One share per entry of `devices`. */
  readonly tensorSplit: readonly number[];
  /** -ngl; default: every layer (n_layer + 1 covers the output layer; 999 is llama.cpp's "all"). */
  readonly ngl?: number;
  /** Local GPUs the instance sees (after CUDA_VISIBLE_DEVICES); decides whether the default order is the one wanted. */
  readonly localGpus: number;
}

/** host:port as --rpc takes it. */
export function rpcEndpointString(e: RpcEndpoint): string {
  return `${e.host}:${e.port}`;
}

/** The name llama.cpp gives a device (what --device takes). */
export function rpcDeviceName(endpoints: readonly RpcEndpoint[], d: RpcPlacementDevice): string {
  if (d.kind === 'gpu') return `CUDA${d.index}`;
  let before = 0;
  for (let i = 0; i < d.endpoint; i++) before += endpoints[i]!.devices ?? 1;
  return `RPC${before + (d.device ?? 0)}`;
}

/** The buffer name llama-server logs for a device's memory (`RPC0[host:port] model buffer size = ...`). */
export function rpcBufferName(endpoints: readonly RpcEndpoint[], d: RpcPlacementDevice): string {
  if (d.kind === 'gpu') return `CUDA${d.index}`;
  return `RPC${d.device ?? 0}[${rpcEndpointString(endpoints[d.endpoint]!)}]`;
}

/** llama.cpp's own device order for these endpoints and GPUs: every RPC device, then every local GPU. */
export function defaultDeviceOrder(endpoints: readonly RpcEndpoint[], localGpus: number): RpcPlacementDevice[] {
  const order: RpcPlacementDevice[] = [];
  endpoints.forEach((e, endpoint) => {
    for (let device = 0; device < (e.devices ?? 1); device++) order.push({ kind: 'rpc', endpoint, device });
  });
  for (let index = 0; index < localGpus; index++) order.push({ kind: 'gpu', index });
  return order;
}

function checkEndpoint(e: RpcEndpoint): void {
  if (!/^[A-Za-z0-9.-]+$/.test(e.host)) throw new RangeError(`RPC host "${e.host}" is not an IPv4 address or host name (rpc-server has no IPv6)`);
  if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) throw new RangeError(`RPC port ${e.port} is out of range`);
  if (e.devices !== undefined && (!Number.isInteger(e.devices) || e.devices < 1)) throw new RangeError(`an RPC endpoint exposes at least one device, got ${e.devices}`);
}

/**
 * `--rpc`, `--device` (only when the order differs from llama.cpp's default or leaves a device out), `-ngl`,
 * `--split-mode layer` and `--tensor-split`. Throws RangeError for an impossible input.
 */
export function rpcPlacementFlags(p: RpcPlacementFlagsInput): string[] {
  if (p.endpoints.length === 0) throw new RangeError('an RPC placement needs at least one rpc-server endpoint');
  for (const e of p.endpoints) checkEndpoint(e);
  if (p.devices.length === 0) throw new RangeError('an RPC placement needs at least one device');
  if (p.tensorSplit.length !== p.devices.length) throw new RangeError(`tensorSplit has ${p.tensorSplit.length} entries for ${p.devices.length} devices`);
  if (p.tensorSplit.some((x) => !Number.isFinite(x) || x < 0) || !p.tensorSplit.some((x) => x > 0)) {
    throw new RangeError(`tensorSplit ${p.tensorSplit.join(',')} needs non-negative shares, one of them positive`);
  }
  const names = p.devices.map((d) => {
    if (d.kind === 'rpc') {
      const e = p.endpoints[d.endpoint];
      if (!e) throw new RangeError(`device refers to RPC endpoint ${d.endpoint} of ${p.endpoints.length}`);
      const device = d.device ?? 0;
      if (!Number.isInteger(device) || device < 0 || device >= (e.devices ?? 1)) throw new RangeError(`${rpcEndpointString(e)} has no device ${device}`);
    } else if (!Number.isInteger(d.index) || d.index < 0 || d.index >= p.localGpus) {
      throw new RangeError(`local GPU ${d.index} is not among the ${p.localGpus} visible`);
    }
    return rpcDeviceName(p.endpoints, d);
  });
  if (new Set(names).size !== names.length) throw new RangeError(`a device is listed twice: ${names.join(',')}`);
  const defaults = defaultDeviceOrder(p.endpoints, p.localGpus).map((d) => rpcDeviceName(p.endpoints, d));
  const isDefault = defaults.length === names.length && defaults.every((n, i) => n === names[i]);
  return [
    '--rpc', p.endpoints.map(rpcEndpointString).join(','),
    ...(isDefault ? [] : ['--device', names.join(',')]),
    '-ngl', String(p.ngl ?? 999),
    '--split-mode', 'layer',
    '--tensor-split', p.tensorSplit.join(','),
  ];
}
