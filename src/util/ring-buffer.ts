/**
 * Keeps the last `capacity` items. A fixed array written round and round: pushing is O(1), which matters for an
 * instance's log (llama-server at -lv 4 writes some 30 lines per request).
 */
export class RingBuffer<T> {
  private readonly items: T[] = [];
  /** Where the next item goes once the array is full (and so where the oldest one is). */
  private next = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.items.length < this.capacity) {
      this.items.push(item);
      return;
    }
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Oldest first. */
  toArray(): T[] {
    return this.next === 0 ? [...this.items] : [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }

  /** The newest `n` items, oldest first. */
  last(n: number): T[] {
    if (n <= 0) return [];
    return this.toArray().slice(-n);
  }
}
