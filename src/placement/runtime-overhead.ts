/**
 * The CUDA runtime's own memory (context, loaded kernels) on each GPU, learned from the proxy's instances: what
 * the driver says an instance's process holds there at ready, minus the buffers the instance logged there. It
 * differs by GPU model and driver (about 100 MiB on small cards, near 600 MiB on an H200), so a measured figure
 * replaces the estimator's default for the next placements. The smallest observation per GPU wins (a warm-up
 * leaves a little in the pool; models that load cuBLAS are not observed at all, see
 * PlacementService.observeFootprint: the estimator adds cuBLAS on its own). Pure.
 */

const MiB = 1024 * 1024;
/** Observations outside this range are parse or accounting accidents, not a CUDA context. */
const PLAUSIBLE = { min: 32 * MiB, max: 4096 * MiB };

export class RuntimeOverhead {
  private readonly perGpu = new Map<string, number>();

  /** Records one instance's footprint on one GPU; returns whether the learned figure changed. */
  observe(gpuUuid: string, processBytes: number, loggedBytes: number): boolean {
    const runtime = processBytes - loggedBytes;
    if (loggedBytes <= 0 || runtime < PLAUSIBLE.min || runtime > PLAUSIBLE.max) return false;
    const before = this.perGpu.get(gpuUuid);
    if (before !== undefined && before <= runtime) return false;
    this.perGpu.set(gpuUuid, runtime);
    return true;
  }

  /** Learned bytes per GPU UUID. */
  byGpu(): ReadonlyMap<string, number> {
    return this.perGpu;
  }

  /**
   * The figure estimates use: the largest learned one (a model's cost is computed once for every GPU of the
   * machine, so the GPU with the biggest runtime sets it); undefined before any observation.
   */
  bytes(): number | undefined {
    return this.perGpu.size === 0 ? undefined : Math.max(...this.perGpu.values());
  }
}
