/**
 * One llama-server process serving one model: spawn (own process group, under the watchdog), readiness
 * (poll /health until 200), liveness once ready (a /health that times out `failures` times in a row means the
 * process is hung: it is killed, and its exit reads as a crash), stop (SIGTERM to the group, SIGKILL after a
 * timeout), last log lines kept. Only the proxy can talk to it: it is started with a random API key
 * (`LLAMA_API_KEY` in its environment, which other users cannot read, unlike its command line) that every
 * request of ours carries. It knows nothing of HTTP routes or of the pool's decisions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { watchdogCommand } from '../llamacpp/watchdog.js';
import { RingBuffer } from '../util/ring-buffer.js';
import { LOG_POLL_MS, LogFile } from './log-file.js';

export type InstanceState = 'starting' | 'ready' | 'stopping' | 'stopped' | 'failed';

export interface InstanceSpec {
  /** Unique id of this instance ("tiny-a#3"). */
  id: string;
  modelId: string;
  binary: string;
  host: string;
  port: number;
  /** Full argument list for llama-server (host and port included). */
  args: string[];
  startTimeoutMs: number;
  stopTimeoutMs: number;
  logLines?: number;
  env?: NodeJS.ProcessEnv;
  /** Liveness once ready; absent: none. */
  liveness?: LivenessSpec;
}

export interface LivenessSpec {
  /** Milliseconds between two /health probes. */
  intervalMs: number;
  /** Milliseconds a probe may take. */
  timeoutMs: number;
  /** Probes failed in a row after which the process is taken for hung and killed. */
  failures: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the proxy asked for it (stop), false for a crash. */
  expected: boolean;
}

export class InstanceError extends Error {
  constructor(
    message: string,
    readonly logTail: string[],
  ) {
    super(message);
    this.name = 'InstanceError';
  }
}

const HEALTH_POLL_MS = 50;

export class Instance extends EventEmitter<{ exit: [ExitInfo]; state: [InstanceState]; line: [string]; unresponsive: [string] }> {
  state: InstanceState = 'starting';
  /** The instance's API key: only requests carrying it are answered (its /health excepted). */
  readonly secret = randomBytes(24).toString('base64url');
  /** Why the proxy killed it as hung, if it did. */
  hung: string | undefined;
  readonly logs: RingBuffer<string>;
  readonly createdAt = Date.now();
  readyAt: number | undefined;
  exitedAt: number | undefined;
  exit: ExitInfo | undefined;
  failure: string | undefined;
  private child: ChildProcess | undefined;
  private exited: Promise<ExitInfo> | undefined;
  private stopRequested = false;
  private livenessTimer: NodeJS.Timeout | undefined;
  /** Its stdout and stderr (log-file.ts), read at each readiness check while it loads, then every LOG_POLL_MS. */
  private logFile: LogFile | undefined;
  private logTimer: NodeJS.Timeout | undefined;
  /** Our own process said it bound the port: a /health answer then really comes from it, not a stranger's. */
  private listening = false;
  /** It said it could not bind the port (someone took it between our check and its start). */
  bindFailed = false;

  constructor(readonly spec: InstanceSpec) {
    super();
    this.logs = new RingBuffer(spec.logLines ?? 1000);
  }

  get id(): string {
    return this.spec.id;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Headers every request of ours to it carries. */
  get authHeaders(): Record<string, string> {
    return { authorization: `Bearer ${this.secret}` };
  }

  get url(): string {
    const host = this.spec.host.includes(':') ? `[${this.spec.host}]` : this.spec.host;
    return `http://${host}:${this.spec.port}`;
  }

  private setState(state: InstanceState): void {
    this.state = state;
    this.emit('state', state);
  }

  /** Starts the process and resolves when it answers /health with 200; rejects with InstanceError otherwise. */
  async start(): Promise<void> {
    if (this.child) throw new Error(`instance ${this.id} already started`);
    const { command, args } = watchdogCommand(this.spec.binary, this.spec.args);
    const logFile = new LogFile((line) => this.onLogLine(line));
    this.logFile = logFile;
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        detached: true,
        stdio: ['pipe', logFile.fd, logFile.fd],
        env: { ...(this.spec.env ?? process.env), LLAMA_API_KEY: this.secret },
      });
    } catch (err) {
      logFile.close();
      throw err;
    }
    this.child = child;
    // The watchdog's pipe: never written, closed only when this process dies.
    child.stdin?.on('error', () => {});
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        const info: ExitInfo = { code, signal, expected: this.stopRequested };
        this.exit = info;
        // Its last lines (a crash's message) are in the log tail before anyone hears of the exit.
        this.stopLogReading();
        this.stopLiveness();
        this.exitedAt = Date.now();
        // Reap the watcher left in the group (and anything else llama-server may have forked).
        this.killGroup('SIGKILL');
        child.stdin?.destroy();
        if (!this.stopRequested && this.state !== 'failed') {
          this.failure = this.hung ?? `llama-server exited unexpectedly (${describeExit(info)})`;
          this.setState('failed');
        } else if (this.stopRequested) {
          this.setState('stopped');
        }
        this.emit('exit', info);
        resolve(info);
      });
    });
    child.once('error', (err) => {
      this.failure = `cannot start ${this.spec.binary}: ${err.message}`;
      this.logs.push(this.failure);
      if (child.pid === undefined) this.stopLogReading();
    });

    const deadline = Date.now() + this.spec.startTimeoutMs;
    while (Date.now() < deadline) {
      if (this.exit) {
        const message = `llama-server for ${this.spec.modelId} exited while loading (${describeExit(this.exit)})`;
        this.failure = this.failure ?? message;
        this.setState('failed');
        throw new InstanceError(`${message}: ${this.logs.last(8).join(' | ')}`, this.logs.last(40));
      }
      if (this.stopRequested) throw new InstanceError(`instance ${this.id} was stopped while loading`, this.logs.last(20));
      logFile.drain();
      if (this.listening && (await this.healthy())) {
        this.readyAt = Date.now();
        this.setState('ready');
        this.startLiveness();
        this.logTimer = setInterval(() => logFile.drain(), LOG_POLL_MS);
        this.logTimer.unref();
        return;
      }
      await sleep(HEALTH_POLL_MS);
    }
    this.failure = `llama-server for ${this.spec.modelId} was not ready after ${this.spec.startTimeoutMs} ms`;
    this.setState('failed');
    await this.stop();
    throw new InstanceError(this.failure, this.logs.last(40));
  }

  private async healthy(timeoutMs = 1000): Promise<boolean> {
    try {
      const res = await request(`${this.url}/health`, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  /**
   * Probes /health while the instance is ready. llama-server answers it from an HTTP thread of its own, also
   * while its slots compute, so silence means the process is stopped or wedged, not busy. After `failures`
   * silent probes in a row the group is killed: its sockets close (clients get an error at once) and the pool
   * sees a crash it restarts.
   */
  private startLiveness(): void {
    const spec = this.spec.liveness;
    if (!spec || spec.failures <= 0) return;
    let missed = 0;
    const probe = async () => {
      this.livenessTimer = undefined;
      if (this.state !== 'ready' || this.exit) return;
      const ok = await this.healthy(spec.timeoutMs);
      if (this.state !== 'ready' || this.exit) return;
      missed = ok ? 0 : missed + 1;
      if (missed >= spec.failures) {
        this.hung = `llama-server for "${this.spec.modelId}" (pid ${this.pid}) did not answer /health ${missed} times in a row (${spec.timeoutMs} ms each): killed as hung`;
        this.logs.push(this.hung);
        this.emit('unresponsive', this.hung);
        this.killGroup('SIGKILL');
        return;
      }
      this.livenessTimer = setTimeout(() => void probe(), spec.intervalMs);
      this.livenessTimer.unref();
    };
    this.livenessTimer = setTimeout(() => void probe(), spec.intervalMs);
    this.livenessTimer.unref();
  }

  private stopLiveness(): void {
    if (this.livenessTimer) clearTimeout(this.livenessTimer);
    this.livenessTimer = undefined;
  }

  private onLogLine(line: string): void {
    this.logs.push(line);
    if (!this.listening && line.includes(`listening on http://`) && line.includes(`:${this.spec.port}`)) this.listening = true;
    if (line.includes("couldn't bind")) this.bindFailed = true;
    this.emit('line', line);
  }

  private stopLogReading(): void {
    if (this.logTimer) clearInterval(this.logTimer);
    this.logTimer = undefined;
    this.logFile?.close();
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

  /** SIGTERM to the process group, SIGKILL after the stop timeout. Resolves when the process has exited. */
  async stop(): Promise<ExitInfo | undefined> {
    if (!this.child || !this.exited) {
      this.setState('stopped');
      return undefined;
    }
    if (this.exit) return this.exit;
    this.stopRequested = true;
    this.stopLiveness();
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
  waitExit(): Promise<ExitInfo> | undefined {
    return this.exited;
  }
}

export function describeExit(info: ExitInfo): string {
  return info.signal ? `killed by ${info.signal}` : `exit code ${info.code}`;
}
