/**
 * Keeps a recent reading of the devices for /health and dashboards, refreshed every interval in the background.
 * Placement never uses it: it calls `refresh()` for numbers read at decision time.
 */
import type { GpuDevice, GpuSource } from './types.js';

export interface MonitorSnapshot {
  devices: GpuDevice[];
  readAt: number;
  error: string | null;
}

export class GpuMonitor {
  private snapshot: MonitorSnapshot = { devices: [], readAt: 0, error: null };
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<GpuDevice[]> | undefined;

  constructor(
    readonly source: GpuSource,
    private readonly intervalMs: number,
    private readonly log: (msg: string, fields?: Record<string, unknown>) => void = () => {},
  ) {}

  /** Reads once now, then every interval. */
  async start(): Promise<void> {
    await this.refresh().catch(() => {});
    if (this.source.kind === 'none' || this.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.refresh().catch(() => {}), this.intervalMs);
    this.timer.unref();
  }

  /** Fresh numbers from the source (concurrent callers share one read). */
  refresh(): Promise<GpuDevice[]> {
    this.inFlight ??= this.source
      .read()
      .then((devices) => {
        this.snapshot = { devices, readAt: Date.now(), error: null };
        return devices;
      })
      .catch((err: Error) => {
        if (this.snapshot.error !== err.message) this.log('GPU reading failed', { source: this.source.kind, reason: err.message });
        this.snapshot = { ...this.snapshot, error: err.message };
        throw err;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  latest(): MonitorSnapshot {
    return this.snapshot;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.source.close();
  }
}
