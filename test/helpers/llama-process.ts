import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface RunningLlamaServer {
  readonly proc: ChildProcess;
  readonly url: string;
  /** The last few thousand characters it printed. */
  output(): string;
  /** SIGTERM (so it prints its memory breakdown), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts llama-server directly (not through the proxy) on a free port with `args` after -m/--host/--port, feeds
 * every output line to `onLine`, and resolves when /health answers 200.
 */
export async function startLlamaServer(binary: string, model: string, args: readonly string[], opts: { onLine?: (line: string) => void; timeoutMs?: number } = {}): Promise<RunningLlamaServer> {
  const port = await freePort();
  const proc = spawn(binary, ['-m', model, '--host', '127.0.0.1', '--port', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  let pending = '';
  const onData = (chunk: Buffer): void => {
    const text = pending + chunk.toString();
    const lines = text.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) opts.onLine?.(line);
    tail = (tail + chunk.toString()).slice(-8000);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const running: RunningLlamaServer = {
    proc,
    url: `http://127.0.0.1:${port}`,
    output: () => tail,
    stop: async (graceMs = 5000) => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      if (pending) opts.onLine?.(pending);
      pending = '';
    },
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`llama-server exited with ${proc.exitCode}:\n${tail}`);
    try {
      if ((await fetch(`${running.url}/health`)).status === 200) return running;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await running.stop();
  throw new Error(`llama-server not healthy within ${opts.timeoutMs ?? 30_000} ms:\n${tail}`);
}
