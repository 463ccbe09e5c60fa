import { EventEmitter } from 'node:events';
import type { Instance } from '../../src/pool/instance.js';

/** An instance that starts and stops at once, without a process (for pool tests). */
export class FakeInstance extends EventEmitter {
  readonly createdAt = Date.now();
  readyAt: number | undefined;
  exitedAt: number | undefined;
  bindFailed = false;
  pid = 4242;
  constructor(
    readonly id: string,
    readonly spec: { modelId: string },
  ) {
    super();
  }
  get url(): string {
    return 'http://127.0.0.1:1';
  }
  async start(): Promise<void> {
    this.readyAt = Date.now();
  }
  async stop() {
    this.exitedAt = Date.now();
    const info = { code: 0, signal: null, expected: true };
    this.emit('exit', info);
    return info;
  }
}

/** A pool launcher of FakeInstances. */
export const fakeLauncher = { launch: (m: { id: string }, _port: number, id: string) => new FakeInstance(id, { modelId: m.id }) as unknown as Instance };
