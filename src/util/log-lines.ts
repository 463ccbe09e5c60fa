/**
 * The proxy's own recent log lines (for GET /logs/proxy and the dashboard's Logs page): a pino destination that
 * keeps the last `capacity` JSON lines and tells listeners of each new one.
 */
import { EventEmitter } from 'node:events';
import { RingBuffer } from './ring-buffer.js';

export class LogLines extends EventEmitter<{ line: [string] }> {
  private readonly ring: RingBuffer<string>;

  constructor(capacity = 1000) {
    super();
    this.ring = new RingBuffer(capacity);
    this.setMaxListeners(0);
  }

  /** pino's destination interface: one or more JSON lines, each ending with a newline. */
  write(chunk: string): boolean {
    for (const line of chunk.split('\n')) {
      if (line === '') continue;
      this.ring.push(line);
      this.emit('line', line);
    }
    return true;
  }

  last(n: number): string[] {
    return this.ring.last(n);
  }
}
