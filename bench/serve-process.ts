import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Runs `serve` in its own process (as users do), so the proxy does not share an event loop with the bench client. */
export async function spawnProxy(configFile: string): Promise<{ url: string; child: ChildProcess }> {
  // BENCH_CPU_PROF=<dir>: a V8 CPU profile of the proxy process, written when it exits
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  // BENCH_PROXY_ENTRY=<dist/cli/main.js>: a built proxy instead of the sources through tsx (a profile of built
  // code names lines and columns the sources have)
  const entry = process.env.BENCH_PROXY_ENTRY ? [path.resolve(process.env.BENCH_PROXY_ENTRY)] : ['--import', 'tsx', path.resolve('src/cli/main.ts')];
  const child = spawn(process.execPath, [...prof, ...entry, 'serve', '--config', configFile, '--port', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const m = /listening on (http:\S+)/.exec(stderr);
    if (m) return { url: m[1]!, child };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`the proxy did not start:\n${stderr}`);
}

/** Stops a proxy started by spawnProxy and waits for it to exit (its instances stopped, a CPU profile written). */
export async function stopProxy(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** An instance's API key, read from its environment (a bench talks to the instance directly to compare). */
export function instanceKey(pid: number): string {
  const entry = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((e) => e.startsWith('LLAMA_API_KEY='));
  if (!entry) throw new Error(`llama-server ${pid} has no LLAMA_API_KEY in its environment`);
  return entry.slice('LLAMA_API_KEY='.length);
}
