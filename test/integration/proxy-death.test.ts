/**
 * No llama-server outlives the proxy, in any order of signals, a stopped (SIGSTOP) instance included: the real
 * CLI (`serve --config`, from source like cli.test.ts, so it is never a stale build) with one instance running,
 * then the signals of each case. Afterwards nothing of the instance's process group is alive (llama-server nor
 * its watcher) and no llama-server with this test's marker (its model's folder) is left; after a graceful end the
 * proxy has reaped its llama-server itself (no zombie). After SIGKILL the proxy cannot reap: the orphans go to
 * PID 1 (or a subreaper), whose job that is; no zombie may be held by the proxy or by the group itself.
 * The proxy's stop sends SIGCONT after SIGTERM (instance.ts), so in the SIGTERM-then-SIGKILL cases llama-server
 * usually exits before the SIGKILL; the case that signals the group itself keeps the stuck-stop path covered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../src/gguf/index.js';
import { pdeathsigTool } from '../../src/llamacpp/watchdog.js';
import { llamaTools } from '../helpers/llama.js';
import { isAlive, llamaServersWith, waitFor } from '../helpers/processes.js';

const tools = llamaTools();
// Without util-linux's setpriv only the watcher guards an instance, and a stopped watcher cannot act.
const kernelGuard = pdeathsigTool() !== null;
const needsKernel = kernelGuard ? '' : ' (skipped: no setpriv --pdeathsig here)';
const CLI = ['--import', pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href, path.resolve('src/cli/main.ts')];

interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
}

function stat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: the fields start after the last ')'.
    const [state, ppid, pgrp] = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid, state: state!, ppid: Number(ppid), pgrp: Number(pgrp) };
  } catch {
    return undefined;
  }
}

/** Every process (zombies included) whose process group is `pgid`. */
function groupMembers(pgid: number): ProcStat[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => stat(Number(name)))
    .filter((s): s is ProcStat => s !== undefined && s.pgrp === pgid);
}

const live = (members: ProcStat[]): ProcStat[] => members.filter((m) => m.state !== 'Z');

interface Running {
  child: ChildProcess;
  url: string;
  marker: string;
  /** llama-server's pid, also its process group's id. */
  pid: number;
  stderr: () => string;
}

let current: Running | undefined;

function portRange(): [number, number] {
  const base = 46_000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 20) * 50;
  return [base, base + 49];
}

/** `serve --config` with one tiny model, and that model's instance started by a request. */
async function serveWithInstance(): Promise<Running> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-death-'));
  mkdirSync(path.join(dir, 'models'));
  const model = path.join(dir, 'models', 'm.gguf');
  await writeTinyModel(model, { seed: 61 });
  const config = {
    server: { host: '127.0.0.1', port: 0 },
    // The stop timeout outlasts the 2 s before the SIGKILL of the SIGTERM-then-SIGKILL cases.
    llamaServer: { binary: tools.server, autoBuild: false, stopTimeout: 10 },
    pool: { portRange: portRange() },
    cacheDir: path.join(dir, 'cache'),
    modelsDir: path.join(dir, 'models'),
    models: { m: { path: model, ctx: 256 } },
  };
  writeFileSync(path.join(dir, 'config.yaml'), JSON.stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LLAMA_SMART_PROXY_PORT;
  delete env.LLAMA_SMART_PROXY_HOST;
  const child = spawn(process.execPath, [...CLI, 'serve', '--config', path.join(dir, 'config.yaml')], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  // The log (JSON lines on stdout) too: the SIGHUP case reads it.
  child.stdout!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const running: Running = { child, url: '', marker: dir, pid: 0, stderr: () => stderr };
  current = running;
  expect(await waitFor(() => /listening on (http:\S+)/.test(stderr) || child.exitCode !== null, 30_000), stderr).toBe(true);
  running.url = /listening on (http:\S+)/.exec(stderr)![1]!;
  const res = await fetch(`${running.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', prompt: 'Hi', max_tokens: 2 }),
  });
  expect(res.status, await res.text()).toBe(200);
  const pids = llamaServersWith(dir);
  expect(pids).toHaveLength(1);
  running.pid = pids[0]!;
  // llama-server's parent is the proxy itself (sh exec'd it): what pdeathsig watches.
  expect(stat(running.pid)!.ppid).toBe(child.pid);
  // The watcher shares its group.
  expect(live(groupMembers(running.pid)).length).toBeGreaterThanOrEqual(2);
  return running;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Nothing of the instance is alive within a few seconds of the proxy's end. */
async function expectNothingLeft(r: Running): Promise<void> {
  const gone = await waitFor(() => live(groupMembers(r.pid)).length === 0 && llamaServersWith(r.marker).length === 0, 5000);
  const left = groupMembers(r.pid).map((m) => `${m.pid} ${m.state} parent ${m.ppid}`);
  expect(gone, `left in the instance's group: ${left.join('; ')}\n${r.stderr().slice(-3000)}`).toBe(true);
  expect(isAlive(r.pid)).toBe(false);
  // Whatever is not reaped yet is a zombie waiting for its parent: PID 1 for an orphan (this machine's PID 1 never
  // reaps), or a group member that is itself such a zombie (the watcher of a llama-server that died first). None
  // may be held by a live process: a live parent that does not reap would be a leak of ours.
  for (const m of groupMembers(r.pid)) {
    const parent = stat(m.ppid);
    expect(m.ppid === 1 || parent === undefined || parent.state === 'Z', `zombie ${m.pid} held by live ${m.ppid} (${parent?.state})`).toBe(true);
  }
}

/** A graceful end: exit code 0, and the proxy reaped its llama-server (no zombie, no /proc entry). */
async function expectGraceful(r: Running, signal: NodeJS.Signals): Promise<void> {
  const started = Date.now();
  r.child.kill(signal);
  expect(await exited(r.child)).toEqual({ code: 0, signal: null });
  expect(Date.now() - started).toBeLessThan(10_000);
  await expectNothingLeft(r);
  expect(existsSync(`/proc/${r.pid}`)).toBe(false);
}

/** SIGTERM, then SIGKILL 2 s later if the proxy is still there (it waits up to stopTimeout for the instance). */
async function termThenKill(r: Running): Promise<void> {
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 2000);
  await exited(r.child);
  clearTimeout(timer);
  await expectNothingLeft(r);
}

const watcherOf = (r: Running): number => live(groupMembers(r.pid)).find((m) => m.pid !== r.pid)!.pid;

describe.skipIf(!tools.server)(`proxy death${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  afterEach(() => {
    // A failed case must not leave its processes to the next: end them by pid.
    const r = current;
    current = undefined;
    if (!r) return;
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    const pids = new Set([...llamaServersWith(r.marker), ...(r.pid ? live(groupMembers(r.pid)).map((m) => m.pid) : [])]);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  });

  it('SIGKILL of the proxy', async () => {
    const r = await serveWithInstance();
    r.child.kill('SIGKILL');
    await exited(r.child);
    await expectNothingLeft(r);
  });

  it('SIGTERM: a clean exit, the instance stopped and reaped', async () => {
    await expectGraceful(await serveWithInstance(), 'SIGTERM');
  });

  it('SIGINT: the same', async () => {
    await expectGraceful(await serveWithInstance(), 'SIGINT');
  });

  it('SIGHUP reloads the config: the proxy and its instance keep running; SIGTERM then ends both', async () => {
    const r = await serveWithInstance();
    r.child.kill('SIGHUP');
    expect(await waitFor(() => r.stderr().includes('config reloaded'), 10_000), r.stderr().slice(-2000)).toBe(true);
    expect(r.child.exitCode).toBeNull();
    expect(isAlive(r.pid)).toBe(true);
    await expectGraceful(r, 'SIGTERM');
  });

  it('SIGTERM then SIGKILL 2 s later, llama-server stopped (kill -STOP on its pid)', async () => {
    const r = await serveWithInstance();
    process.kill(r.pid, 'SIGSTOP');
    await termThenKill(r);
  });

  it('SIGTERM then SIGKILL 2 s later, the whole instance group stopped (kill -STOP -pgid)', async () => {
    const r = await serveWithInstance();
    process.kill(-r.pid, 'SIGSTOP');
    await termThenKill(r);
  });

  it('SIGKILL with llama-server stopped', async () => {
    const r = await serveWithInstance();
    process.kill(r.pid, 'SIGSTOP');
    r.child.kill('SIGKILL');
    await exited(r.child);
    await expectNothingLeft(r);
  });

  it.skipIf(!kernelGuard)(`SIGKILL with the whole instance group stopped (its watcher too)${needsKernel}`, async () => {
    const r = await serveWithInstance();
    process.kill(-r.pid, 'SIGSTOP');
    r.child.kill('SIGKILL');
    await exited(r.child);
    await expectNothingLeft(r);
  });

  it.skipIf(!kernelGuard)(`SIGKILL with only the watcher stopped (llama-server running)${needsKernel}`, async () => {
    const r = await serveWithInstance();
    process.kill(watcherOf(r), 'SIGSTOP');
    r.child.kill('SIGKILL');
    await exited(r.child);
    await expectNothingLeft(r);
  });

  it('SIGTERM to the instance group itself (the watcher survives it), then SIGKILL of the proxy', async () => {
    const r = await serveWithInstance();
    const watcher = watcherOf(r);
    // Stopped first, so the TERM stays pending in llama-server as in a stuck stop; the watcher must not die of it.
    process.kill(r.pid, 'SIGSTOP');
    process.kill(-r.pid, 'SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(isAlive(watcher)).toBe(true);
    r.child.kill('SIGKILL');
    await exited(r.child);
    await expectNothingLeft(r);
  });
});
