/**
 * The recent requests: a bounded ring of records (oldest dropped first) and their live subscribers. Adding is
 * O(1) plus one call per subscriber; the records are serialised once for all subscribers by the caller.
 */
import type { RequestRecord } from './record.js';

export interface RequestQuery {
  /** At most this many, newest first (default 100). */
  limit?: number;
  /** Only requests for this model (as the client named it). */
  model?: string;
}

export type RequestListener = (record: RequestRecord) => void;

export class RequestLog {
  private readonly items: (RequestRecord | undefined)[];
  private next = 0;
  private count = 0;
  private seq = 0;
  private readonly listeners = new Set<RequestListener>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`a request log holds at least 1 record, got ${capacity}`);
    this.items = new Array<RequestRecord | undefined>(capacity);
  }

  /** A new record id (increasing, never reused). */
  nextId(): string {
    return String(++this.seq);
  }

  get size(): number {
    return this.count;
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  add(record: RequestRecord): void {
    this.items[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    for (const listener of this.listeners) listener(record);
  }

  /** Newest first. */
  list(query: RequestQuery = {}): RequestRecord[] {
    const limit = query.limit ?? 100;
    const out: RequestRecord[] = [];
    for (let i = 1; i <= this.count && out.length < limit; i++) {
      const r = this.items[(this.next - i + this.capacity) % this.capacity]!;
      if (query.model === undefined || r.model === query.model) out.push(r);
    }
    return out;
  }

  get(id: string): RequestRecord | undefined {
    for (let i = 1; i <= this.count; i++) {
      const r = this.items[(this.next - i + this.capacity) % this.capacity]!;
      if (r.id === id) return r;
    }
    return undefined;
  }

  subscribe(listener: RequestListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
