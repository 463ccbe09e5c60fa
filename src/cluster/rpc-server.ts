/**
 * One llama.cpp rpc-server process (`ggml-rpc-server`, tools/rpc): it lends this node's devices (its GPUs, or its
 * CPU and RAM when it has none) to a llama-server on another node, which reaches it with `--rpc host:port`.
 * Started under the same watchdog as llama-server instances (src/llamacpp/watchdog.ts: its own process group,
 * `setpriv --pdeathsig KILL` where there is one, and a watcher on a pipe), so it never outlives the proxy.
 *
 * What this rpc-server (node-llama-cpp 3.21.1's llama.cpp) does, read from its source:
 *
 * - flags: `-H host` (IPv4 only, parsed by inet_addr: no host names, no IPv6), `-p port`, `-t threads` (CPU device;
 *   default: half the cores), `-d dev1,dev2` (devices to serve, e.g. CUDA0; default: every accelerator, else the
 *   CPU), `-c` (a local file cache of large tensors under $LLAMA_CACHE/rpc);
 * - it has no authentication at all: whoever reaches the port can allocate memory and run graphs on it;
 * - it serves one client at a time (accept, serve until it disconnects, accept the next; listen backlog 1), so
 *   one rpc-server serves one llama-server;
 * - its banner ("Devices:" then `  CPU: <description> (<total> MiB, <free> MiB free)` per device) goes to stdout,
 *   which is block-buffered in a pipe: it arrives when the first client connects ("Accepted client connection" is
 *   followed by an fflush). The readiness probe (a TCP connection, closed at once) is that first client;
 * - when it cannot bind it prints "Failed to create server socket" and exits with status 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { watchdogCommand } from '../llamacpp/watchdog.js';
import { RingBuffer } from '../util/ring-buffer.js';

export type RpcServerState = 'starting' | 'ready' | 'stopping' | 'stopped' | 'failed';

export interface RpcServerSpec {
  /** Unique id ("rpc-3"). */
  id: string;
  /** The ggml-rpc-server (or rpc-server) binary. */
  binary: string;
  /** IPv4 address it binds (checked by the caller: see checkRpcHost). */
  host: string;
  port: number;
  /** -t: threads of its CPU device. */
  threads?: number;
  /** -d: the devices it serves (default: every accelerator, else the CPU). */
  devices?: readonly string[];
  /** -c: cache large tensors on local disk. */
  cache?: boolean;
  /** Who asked for it (shown in listings). */
  lease?: string;
  startTimeoutMs: number;
  stopTimeoutMs: number;
  logLines?: number;
  env?: NodeJS.ProcessEnv;
}

/** A device the rpc-server serves, as its banner states it. */
export interface RpcDeviceInfo {
  /** Its name on the serving node (CPU, CUDA0, ...). */
  name: string;
  description: string;
  totalBytes: number;
  freeBytes: number;
}

export interface RpcExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the proxy asked for it (stop). */
  expected: boolean;
}

/** What callers (and GET /cluster/rpc) see of a running rpc-server. */
export interface RpcServerInfo {
  id: string;
  host: string;
  port: number;
  pid: number | undefined;
  lease: string | undefined;
  state: RpcServerState;
  /** The devices it offers, with their memory at its start (empty until ready). */
  devices: RpcDeviceInfo[];
  startedAt: number;
}

export class RpcServerError extends Error {
  constructor(
    message: string,
    readonly logTail: string[],
    /** It could not bind its port (taken meanwhile): another port may work. */
    readonly bindFailed: boolean = false,
  ) {
    super(message);
    this.name = 'RpcServerError';
  }
}

const MiB = 1024 * 1024;
const PROBE_INTERVAL_MS = 50;
const PROBE_TIMEOUT_MS = 500;
/** After the probe connected: how long its acceptance line may take to come through the pipe. */
const BANNER_WAIT_MS = 2000;

const DEVICE_LINE = /^\s+(\S+): (.*) \((\d+) MiB, (\d+) MiB free\)\s*$/;

/** The devices of an rpc-server banner (lines after "Devices:"). Pure. */
export function parseRpcDevices(lines: readonly string[]): RpcDeviceInfo[] {
  const devices: RpcDeviceInfo[] = [];
  let inDevices = false;
  for (const line of lines) {
    if (/^Devices:\s*$/.test(line)) {
      inDevices = true;
      continue;
    }
    if (!inDevices) continue;
    const m = DEVICE_LINE.exec(line);
    if (!m) {
      inDevices = false;
      continue;
    }
    devices.push({ name: m[1]!, description: m[2]!, totalBytes: Number(m[3]) * MiB, freeBytes: Number(m[4]) * MiB });
  }
  return devices;
}

/** rpc-server's argument list. Pure. */
export function rpcServerArgs(spec: Pick<RpcServerSpec, 'host' | 'port' | 'threads' | 'devices' | 'cache'>): string[] {
  return [
    '-H', spec.host,
    '-p', String(spec.port),
    ...(spec.threads !== undefined ? ['-t', String(spec.threads)] : []),
    ...(spec.devices && spec.devices.length > 0 ? ['-d', spec.devices.join(',')] : []),
    ...(spec.cache ? ['-c'] : []),
  ];
}

export class RpcServer extends EventEmitter<{ exit: [RpcExitInfo]; state: [RpcServerState]; line: [string] }> {
  state: RpcServerState = 'starting';
  readonly logs: RingBuffer<string>;
  readonly startedAt = Date.now();
  devices: RpcDeviceInfo[] = [];
  exit: RpcExitInfo | undefined;
  failure: string | undefined;
  private child: ChildProcess | undefined;
  private exited: Promise<RpcExitInfo> | undefined;
  private stopRequested = false;
  /** Lines since its start, until it is ready (the banner is parsed from them). */
  private startLines: string[] = [];
  private accepted = false;
  private bindFailed = false;

  constructor(readonly spec: RpcServerSpec) {
    super();
    this.logs = new RingBuffer(spec.logLines ?? 200);
  }

  get id(): string {
    return this.spec.id;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** host:port, as llama-server's --rpc takes it. */
  get endpoint(): string {
    return `${this.spec.host}:${this.spec.port}`;
  }

  info(): RpcServerInfo {
    return {
      id: this.id,
      host: this.spec.host,
      port: this.spec.port,
      pid: this.pid,
      lease: this.spec.lease,
      state: this.state,
      devices: this.devices.map((d) => ({ ...d })),
      startedAt: this.startedAt,
    };
  }

  private setState(state: RpcServerState): void {
    this.state = state;
    this.emit('state', state);
  }

  /** Starts the process; resolves once it accepts TCP connections, rejects with RpcServerError otherwise. */
  async start(): Promise<void> {
    if (this.child) throw new Error(`rpc-server ${this.id} already started`);
    const { command, args } = watchdogCommand(this.spec.binary, rpcServerArgs(this.spec));
    const child = spawn(command, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: this.spec.env ?? process.env });
    this.child = child;
    // The watchdog's pipe: never written, closed only when this process dies.
    child.stdin?.on('error', () => {});
    this.captureLogs(child);
    this.exited = new Promise<RpcExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        const info: RpcExitInfo = { code, signal, expected: this.stopRequested };
        this.exit = info;
        // Reap the watcher left in the group.
        this.killGroup('SIGKILL');
        child.stdin?.destroy();
        if (this.stopRequested) this.setState('stopped');
        else if (this.state !== 'failed') {
          this.failure = `rpc-server ${this.endpoint} exited unexpectedly (${describeRpcExit(info)})`;
          this.setState('failed');
        }
        this.emit('exit', info);
        resolve(info);
      });
    });
    child.once('error', (err) => {
      this.failure = `cannot start ${this.spec.binary}: ${err.message}`;
      this.logs.push(this.failure);
    });

    const deadline = Date.now() + this.spec.startTimeoutMs;
    while (Date.now() < deadline) {
      if (this.exit) throw this.startFailure(`rpc-server ${this.endpoint} exited while starting (${describeRpcExit(this.exit)})`);
      if (this.stopRequested) throw new RpcServerError(`rpc-server ${this.id} was stopped while starting`, this.logs.last(20));
      if (await probe(this.spec.host, this.spec.port, Math.min(PROBE_TIMEOUT_MS, Math.max(1, deadline - Date.now())))) {
        // Our own process says it accepted that connection: the port is really ours, not a stranger's.
        const bannerDeadline = Math.min(deadline, Date.now() + BANNER_WAIT_MS);
        while (!this.accepted && !this.exit && Date.now() < bannerDeadline) await sleep(10);
        if (this.accepted) {
          this.devices = parseRpcDevices(this.startLines);
          this.startLines = [];
          this.setState('ready');
          return;
        }
      }
      await sleep(PROBE_INTERVAL_MS);
    }
    const message = `rpc-server ${this.endpoint} did not accept connections within ${this.spec.startTimeoutMs} ms`;
    this.failure = message;
    this.setState('failed');
    await this.stop();
    throw new RpcServerError(message, this.logs.last(20));
  }

  private startFailure(message: string): RpcServerError {
    const why = this.bindFailed ? `${message}: cannot bind ${this.endpoint}` : message;
    this.failure = this.failure ?? why;
    this.setState('failed');
    return new RpcServerError(`${why}${this.logs.length > 0 ? `: ${this.logs.last(6).join(' | ')}` : ''}`, this.logs.last(20), this.bindFailed);
  }

  private captureLogs(child: ChildProcess): void {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (pending + chunk).split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.trim()) continue;
          this.logs.push(line);
          if (this.state === 'starting') this.startLines.push(line);
          if (line.startsWith('Accepted client connection')) this.accepted = true;
          if (line.includes('Failed to create server socket') || line.includes('Invalid host address')) this.bindFailed = true;
          this.emit('line', line);
        }
      });
    }
  }

  private killGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is already gone.
    }
  }

  /** SIGTERM to its process group, SIGKILL after the stop timeout. Resolves when it has exited. */
  async stop(): Promise<RpcExitInfo | undefined> {
    if (!this.child || !this.exited) {
      this.setState('stopped');
      return undefined;
    }
    if (this.exit) return this.exit;
    this.stopRequested = true;
    if (this.state !== 'failed') this.setState('stopping');
    this.killGroup('SIGTERM');
    // A stopped (SIGSTOP) process keeps a TERM pending until it runs again.
    this.killGroup('SIGCONT');
    const timer = setTimeout(() => this.killGroup('SIGKILL'), this.spec.stopTimeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when the process exits (for whatever reason). */
  waitExit(): Promise<RpcExitInfo> | undefined {
    return this.exited;
  }
}

export function describeRpcExit(info: RpcExitInfo): string {
  return info.signal ? `killed by ${info.signal}` : `exit code ${info.code}`;
}

/** Whether host:port accepts a TCP connection (closed at once). */
function probe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
