/** Free ports for instances, from a configured range; a port someone else holds is skipped. */
import net from 'node:net';

export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export class PortAllocator {
  private readonly taken = new Set<number>();
  private next: number;

  constructor(
    private readonly first: number,
    private readonly last: number,
    private readonly host = '127.0.0.1',
  ) {
    if (first < 1 || last < first) throw new Error(`invalid port range ${first}-${last}`);
    this.next = first;
  }

  /** Reserves a port that is neither ours nor bound by anyone on `host`. */
  async acquire(): Promise<number> {
    const size = this.last - this.first + 1;
    for (let i = 0; i < size; i++) {
      const port = this.next;
      this.next = port >= this.last ? this.first : port + 1;
      if (this.taken.has(port)) continue;
      this.taken.add(port); // before the await, so two concurrent callers never get the same port
      if (await isPortFree(port, this.host)) return port;
      this.taken.delete(port);
    }
    throw new Error(`no free port in ${this.first}-${this.last}`);
  }

  release(port: number): void {
    this.taken.delete(port);
  }
}
