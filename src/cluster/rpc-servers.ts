/**
 * The rpc-servers this node runs for other nodes' instances (llama.cpp RPC: one model spread over machines).
 * Each is bound to `cluster.rpcHost` on a free port of `cluster.rpcPortRange`, lives as long as the lease of the
 * instance that asked for it (the caller stops it when its instance stops) and at most as long as the proxy (the
 * watchdog; `stopAll` at shutdown). rpc-server has no authentication, so it is never bound to every interface.
 */
import { createServer, isIPv4 } from 'node:net';
import { RpcServer, RpcServerError, type RpcServerInfo } from './rpc-server.js';

export interface RpcServersOptions {
  /** The ggml-rpc-server (or rpc-server) binary (LlamaTools.rpcServer). */
  binary: string;
  /** cluster.rpcHost: the one IPv4 address rpc-servers bind. */
  host: string;
  /** cluster.rpcPortRange, inclusive. */
  portRange: readonly [number, number];
  /** -t of each rpc-server's CPU device (default: rpc-server's own, half the cores). */
  threads?: number;
  /** Default 15000. */
  startTimeoutMs?: number;
  /** Default 5000. */
  stopTimeoutMs?: number;
  /** Log lines kept per rpc-server (default 200). */
  logLines?: number;
  env?: NodeJS.ProcessEnv;
}

export interface RpcStartRequest {
  /** Who it is for (an instance id on the asking node). Starting again with a lease already running returns that one. */
  lease: string;
  /** -d: the devices to serve (default: every accelerator, else the CPU). */
  devices?: readonly string[];
  /** -t for this one. */
  threads?: number;
  /** Its environment (e.g. CUDA_VISIBLE_DEVICES: the GPU it lends); default the servers' own. */
  env?: NodeJS.ProcessEnv;
}

/** Why rpc-servers cannot run here (host, range or binary): the node lends no devices. */
export class RpcConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RpcConfigError';
  }
}

/** No port of the range could be had. */
export class RpcPortsExhaustedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RpcPortsExhaustedError';
  }
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0', '*', '']);

/**
 * Why `host` cannot be an rpc-server's address, or undefined when it can. Pure. rpc-server has no authentication,
 * so an address for every interface is refused; it binds IPv4 only (inet_addr: no host names, no IPv6).
 */
export function checkRpcHost(host: string): string | undefined {
  if (WILDCARDS.has(host.trim())) {
    return `rpc-server has no authentication: bind it to one private address (cluster.rpcHost), never to every interface ("${host}")`;
  }
  if (!isIPv4(host)) return `rpc-server binds one IPv4 address (no host names, no IPv6): cluster.rpcHost is "${host}"`;
  if (host === '255.255.255.255') return `"${host}" is the broadcast address, not an address to bind`;
  return undefined;
}

export class RpcServers {
  private readonly servers = new Map<string, RpcServer>();
  /** Ports held by servers or by starts under way. */
  private readonly taken = new Set<number>();
  private readonly starting = new Map<string, Promise<RpcServer>>();
  private nextPort: number;
  private seq = 0;
  private closed = false;

  constructor(private readonly options: RpcServersOptions) {
    const refused = checkRpcHost(options.host);
    if (refused) throw new RpcConfigError(refused);
    const [lo, hi] = options.portRange;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
      throw new RpcConfigError(`cluster.rpcPortRange [${lo}, ${hi}] is not a range of ports`);
    }
    this.nextPort = lo;
  }

  get host(): string {
    return this.options.host;
  }

  /** The running (and starting) rpc-servers. */
  list(): RpcServerInfo[] {
    return [...this.servers.values()].map((s) => s.info());
  }

  get(id: string): RpcServer | undefined {
    return this.servers.get(id);
  }

  byLease(lease: string): RpcServer | undefined {
    for (const s of this.servers.values()) if (s.spec.lease === lease) return s;
    return undefined;
  }

  /**
   * Starts an rpc-server for `lease` on a free port and resolves once it accepts connections; the same lease
   * again (a retried request) gets the one it already has. Throws RpcPortsExhaustedError when no port of the
   * range is free, RpcServerError when it does not start.
   */
  async start(request: RpcStartRequest): Promise<RpcServerInfo> {
    if (this.closed) throw new RpcConfigError('the proxy is shutting down: no new rpc-server');
    const existing = this.byLease(request.lease);
    if (existing && (existing.state === 'ready' || existing.state === 'starting')) {
      const pending = this.starting.get(existing.id);
      if (pending) await pending;
      return existing.info();
    }
    const server = await this.startOnFreePort(request);
    return server.info();
  }

  private async startOnFreePort(request: RpcStartRequest): Promise<RpcServer> {
    const [lo, hi] = this.options.portRange;
    const size = hi - lo + 1;
    let bindFailures = 0;
    for (let tried = 0; tried < size && bindFailures < 10; tried++) {
      const port = this.nextPort;
      this.nextPort = port >= hi ? lo : port + 1;
      if (this.taken.has(port)) continue;
      this.taken.add(port);
      let free: boolean;
      try {
        free = await portFree(this.options.host, port);
      } catch (err) {
        this.taken.delete(port);
        throw new RpcConfigError(`cannot bind ${this.options.host}:${port}: ${(err as Error).message} (is cluster.rpcHost an address of this machine?)`);
      }
      if (!free || this.closed) {
        this.taken.delete(port);
        if (this.closed) throw new RpcConfigError('the proxy is shutting down: no new rpc-server');
        continue;
      }
      const server = this.create(request, port);
      const started = server.start().then(() => server);
      this.starting.set(server.id, started);
      try {
        await started;
        if (this.closed) {
          await server.stop();
          throw new RpcConfigError('the proxy is shutting down: no new rpc-server');
        }
        return server;
      } catch (err) {
        this.forget(server);
        if (err instanceof RpcServerError && err.bindFailed) {
          bindFailures++;
          continue;
        }
        throw err;
      } finally {
        this.starting.delete(server.id);
      }
    }
    throw new RpcPortsExhaustedError(`no free port for an rpc-server on ${this.options.host} in ${lo}-${hi} (${this.servers.size} running)`);
  }

  private create(request: RpcStartRequest, port: number): RpcServer {
    const threads = request.threads ?? this.options.threads;
    const server = new RpcServer({
      id: `rpc-${++this.seq}`,
      binary: this.options.binary,
      host: this.options.host,
      port,
      lease: request.lease,
      ...(threads !== undefined ? { threads } : {}),
      ...(request.devices ? { devices: request.devices } : {}),
      startTimeoutMs: this.options.startTimeoutMs ?? 15_000,
      stopTimeoutMs: this.options.stopTimeoutMs ?? 5_000,
      ...(this.options.logLines !== undefined ? { logLines: this.options.logLines } : {}),
      ...(request.env ?? this.options.env ? { env: request.env ?? this.options.env } : {}),
    });
    this.servers.set(server.id, server);
    // One that dies on its own (or is stopped) leaves the set and frees its port.
    server.once('exit', () => this.forget(server));
    return server;
  }

  private forget(server: RpcServer): void {
    if (this.servers.get(server.id) === server) {
      this.servers.delete(server.id);
      this.taken.delete(server.spec.port);
    }
  }

  /** Stops one; false when there is no such rpc-server. */
  async stop(id: string): Promise<boolean> {
    const server = this.servers.get(id);
    if (!server) return false;
    await server.stop();
    this.forget(server);
    return true;
  }

  /** Stops every rpc-server (proxy shutdown); later starts are refused. */
  async stopAll(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
    for (const s of [...this.servers.values()]) this.forget(s);
  }
}

/** Whether host:port can be bound now; throws when the address itself cannot be (not this machine's). */
function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    });
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
