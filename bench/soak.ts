/**
 * bench:soak — does the proxy keep serving through swaps, unloads, crashes and its own death? Three phases,
 * loopback only, bounded in count and time, the proxy in its own process (`serve`), as users run it:
 *   1. swap soak: pool of 1, two models, N requests alternating between them from 16 clients, half streamed,
 *      an unload of everything every 50 requests. Every answer must be whole: a 200 with choices, or a stream
 *      ending in [DONE] without an error event.
 *   2. kill faults: 16 clients stream from one model while the bench kills its llama-server (kill -9) K times.
 *      A stream that was cut must get an error event, and soon (the time from the kill to the event is
 *      printed); a request that had not begun is retried by the proxy and must succeed.
 *   3. proxy deaths: SIGKILL, SIGTERM, SIGINT, and SIGTERM then SIGKILL 2 s later with the instance stopped
 *      (SIGSTOP): no llama-server may be left behind.
 * Prints requests, failures, truncated streams, restarts, cut-stream latencies, orphans, and the proxy's RSS
 * before and after.
 *
 * npm run bench:soak [-- --requests 1000 --kills 50 --clients 16]
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { Agent, request } from 'undici';
import { defaultCacheDir } from '../src/config/index.js';
import { writeTinyModel } from '../src/gguf/index.js';
import { ensureLlamaTools } from '../src/llamacpp/index.js';
import { spawnProxy as spawn } from './serve-process.js';

/** Every proxy the bench started: ended if the bench itself fails half-way (its watchdog then ends the instances). */
const started = new Set<ChildProcess>();
async function spawnProxy(configFile: string): ReturnType<typeof spawn> {
  const p = await spawn(configFile);
  started.add(p.child);
  return p;
}

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000' },
    kills: { type: 'string', default: '50' },
    clients: { type: 'string', default: '16' },
    'unload-every': { type: 'string', default: '50' },
  },
});
const REQUESTS = Number(values.requests);
const KILLS = Number(values.kills);
const CLIENTS = Number(values.clients);
const UNLOAD_EVERY = Number(values['unload-every']);

const dispatcher = new Agent({ connections: CLIENTS * 2, headersTimeout: 120_000, bodyTimeout: 120_000 });

interface Outcome {
  ok: boolean;
  truncated: boolean;
  /** An error event in the stream (or an error status), with the time it arrived. */
  errorAt?: number;
  detail?: string;
  firstByteAt?: number;
}

const chatBody = (model: string, stream: boolean, maxTokens: number) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: maxTokens, ignore_eos: true, temperature: 0, stream });

async function chat(url: string, model: string, stream: boolean, maxTokens: number): Promise<Outcome> {
  try {
    const res = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody(model, stream, maxTokens), dispatcher });
    if (!stream) {
      const text = await res.body.text();
      if (res.statusCode !== 200) return { ok: false, truncated: false, errorAt: Date.now(), detail: `${res.statusCode} ${text.slice(0, 200)}` };
      const json = JSON.parse(text) as { choices?: unknown[] };
      return json.choices?.length ? { ok: true, truncated: false } : { ok: false, truncated: true, detail: 'no choices' };
    }
    let text = '';
    let firstByteAt: number | undefined;
    let errorAt: number | undefined;
    for await (const chunk of res.body) {
      firstByteAt ??= Date.now();
      text += chunk.toString();
      if (errorAt === undefined && text.includes('"error"')) errorAt = Date.now();
    }
    if (res.statusCode !== 200) return { ok: false, truncated: false, errorAt: errorAt ?? Date.now(), detail: `${res.statusCode} ${text.slice(0, 200)}` };
    const done = text.includes('data: [DONE]');
    if (errorAt !== undefined) return { ok: false, truncated: false, errorAt, detail: text.slice(text.indexOf('"error"') - 10, text.indexOf('"error"') + 200), ...(firstByteAt ? { firstByteAt } : {}) };
    return done ? { ok: true, truncated: false } : { ok: false, truncated: true, detail: 'stream ended without [DONE] or an error event' };
  } catch (err) {
    return { ok: false, truncated: true, detail: `client error: ${(err as Error).message}` };
  }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/** Live llama-server processes whose command line mentions `marker` (zombies excluded). */
function llamaServersWith(marker: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (cmd[0]?.endsWith('llama-server') && cmd.join(' ').includes(marker) && !/^\d+ \(.*\) Z/.test(stat)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

interface HealthServer {
  model_id: string;
  pid: number | null;
  status: string;
}

async function servers(url: string): Promise<HealthServer[]> {
  const res = await request(`${url}/health`, { dispatcher });
  return ((await res.body.json()) as { servers: HealthServer[] }).servers;
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-soak-'));
  mkdirSync(path.join(root, 'models'));
  const files = { a: path.join(root, 'models', 'a.gguf'), b: path.join(root, 'models', 'b.gguf') };
  await writeTinyModel(files.a, { seed: 1 });
  await writeTinyModel(files.b, { seed: 2 });
  const tools = await ensureLlamaTools({ cacheDir: defaultCacheDir(), llamaServer: { backend: 'auto', autoBuild: true }, log: (l) => console.error(l) });
  const configFile = path.join(root, 'soak.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      llamaServer: { binary: tools.server, stopTimeout: 5 },
      log: { level: 'warn' },
      pool: { size: 1, maxQueue: 256 },
      models: { a: { path: files.a, ctx: 4096, parallel: 8 }, b: { path: files.b, ctx: 4096, parallel: 8 } },
    }),
  );
  console.log(`llama-server ${tools.server}\n${os.cpus().length} cores; two tiny models; ${CLIENTS} clients\n`);

  // 1. Swap soak.
  const proxy = await spawnProxy(configFile);
  const proxyPid = proxy.child.pid!;
  let failures = 0;
  let truncated = 0;
  const details = new Map<string, number>();
  const note = (o: Outcome) => {
    if (o.ok) return;
    if (o.truncated) truncated++;
    else failures++;
    const key = (o.detail ?? '').slice(0, 160);
    details.set(key, (details.get(key) ?? 0) + 1);
  };
  await chat(proxy.url, 'a', false, 4);
  const rssBefore = rssMiB(proxyPid);
  const rssSamples: number[] = [];
  let next = 0;
  let unloads = 0;
  const soakStart = Date.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < REQUESTS) {
        const i = next++;
        if (i > 0 && i % UNLOAD_EVERY === 0) {
          unloads++;
          void request(`${proxy.url}/models/unload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', dispatcher }).then((r) => r.body.dump());
        }
        note(await chat(proxy.url, i % 2 === 0 ? 'a' : 'b', i % 4 < 2, 8));
        if ((i + 1) % Math.max(1, Math.floor(REQUESTS / 5)) === 0) rssSamples.push(rssMiB(proxyPid));
      }
    }),
  );
  const soakSeconds = (Date.now() - soakStart) / 1000;
  console.log('1. swap soak (pool 1, models a/b alternating, half streamed, unload every ' + UNLOAD_EVERY + ')');
  console.log(`   requests ${REQUESTS}, unloads ${unloads}, failures ${failures}, truncated ${truncated}, ${soakSeconds.toFixed(1)} s (${(REQUESTS / soakSeconds).toFixed(1)} req/s)`);
  for (const [d, n] of details) console.log(`     ${n} x ${d}`);
  console.log(`   proxy RSS MiB at each fifth of the requests: ${rssSamples.join(', ')}`);

  // 2. kill -9 faults while 16 clients stream from one model.
  let cut = 0;
  let otherFailures = 0;
  let otherOk = 0;
  const cutLatencies: number[] = [];
  const killTimes: number[] = [];
  const failedDetails = new Map<string, number>();
  let stop = false;
  await chat(proxy.url, 'a', false, 4);
  const streamers = Array.from({ length: CLIENTS }, async () => {
    while (!stop) {
      const o = await chat(proxy.url, 'a', true, 48);
      if (o.ok) {
        otherOk++;
        continue;
      }
      if (o.errorAt !== undefined && o.firstByteAt !== undefined) {
        // Cut mid-stream: the latency from the kill just before its error event.
        cut++;
        const kill = killTimes.filter((k) => k <= o.errorAt!).at(-1);
        if (kill !== undefined) cutLatencies.push(o.errorAt - kill);
        continue;
      }
      otherFailures++;
      const key = (o.detail ?? '').slice(0, 160);
      failedDetails.set(key, (failedDetails.get(key) ?? 0) + 1);
    }
  });
  const killed = new Set<number>();
  for (let k = 0; k < KILLS; k++) {
    // Wait until a new instance is ready and streaming, then kill it.
    let pid: number | null = null;
    for (let tries = 0; tries < 800 && pid === null; tries++) {
      const ready = (await servers(proxy.url)).find((s) => s.model_id === 'a' && s.status === 'ready' && s.pid !== null && !killed.has(s.pid));
      if (ready?.pid) pid = ready.pid;
      else await sleep(25);
    }
    if (pid === null) throw new Error('no ready instance to kill');
    await sleep(150 + Math.random() * 150);
    killed.add(pid);
    killTimes.push(Date.now());
    process.kill(pid, 'SIGKILL');
  }
  // Instances the proxy started after a crash.
  const restartedBy = async () => (await servers(proxy.url)).filter((s) => s.pid !== null && !killed.has(s.pid)).length;
  await sleep(1500);
  stop = true;
  await Promise.all(streamers);
  // Every instance killed after the first was a restart, and so is the one serving now.
  const restarts = killed.size - 1 + (await restartedBy());
  cutLatencies.sort((a, b) => a - b);
  const pct = (p: number) => (cutLatencies.length ? cutLatencies[Math.min(cutLatencies.length - 1, Math.ceil((p / 100) * cutLatencies.length) - 1)]! : NaN);
  console.log(`2. kill -9 faults (one model, ${CLIENTS} clients streaming 48 tokens)`);
  console.log(`   kills ${KILLS}, restarts ${restarts}, streams cut ${cut} (each with an error event), other requests ok ${otherOk}, other failures ${otherFailures}`);
  console.log(`   kill -> error event ms: p50 ${pct(50)}, p99 ${pct(99)}, max ${cutLatencies.at(-1) ?? NaN}`);
  for (const [d, n] of failedDetails) console.log(`     ${n} x ${d}`);
  const rssAfter = rssMiB(proxyPid);
  console.log(`   proxy RSS ${rssBefore} MiB before phase 1, ${rssAfter} MiB after phase 2`);
  proxy.child.kill('SIGTERM');
  await new Promise((r) => proxy.child.once('exit', r));

  // 3. Proxy deaths in several orders of signals.
  console.log('3. proxy deaths');
  const orders: { name: string; run: (proxyPid: number, instancePid: number) => Promise<void> }[] = [
    { name: 'SIGKILL', run: async (p) => void process.kill(p, 'SIGKILL') },
    { name: 'SIGTERM', run: async (p) => void process.kill(p, 'SIGTERM') },
    { name: 'SIGINT', run: async (p) => void process.kill(p, 'SIGINT') },
    {
      name: 'instance SIGSTOP, SIGTERM, SIGKILL 2 s later',
      run: async (p, i) => {
        process.kill(i, 'SIGSTOP');
        process.kill(p, 'SIGTERM');
        await sleep(2000);
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // exited already
        }
      },
    },
  ];
  let orphans = 0;
  for (const order of orders) {
    const p = await spawnProxy(configFile);
    await chat(p.url, 'a', false, 4);
    const instancePid = (await servers(p.url))[0]!.pid!;
    const exited = new Promise((r) => p.child.once('exit', r));
    await order.run(p.child.pid!, instancePid);
    await exited;
    let left: number[] = [];
    for (let t = 0; t < 100; t++) {
      left = llamaServersWith(root);
      if (left.length === 0) break;
      await sleep(50);
    }
    orphans += left.length;
    console.log(`   ${order.name}: ${left.length} llama-server left${left.length ? ` (pids ${left.join(', ')})` : ''}`);
    for (const pid of left) process.kill(pid, 'SIGKILL');
  }
  console.log(`\nsummary: requests ${REQUESTS}, failures ${failures}, truncated ${truncated}; kills ${KILLS}, cut ${cut}, other failures ${otherFailures}, cut p99 ${pct(99)} ms; orphans ${orphans}; RSS ${rssBefore} -> ${rssAfter} MiB`);
  await dispatcher.close();
}

main().catch((err: Error) => {
  console.error(err);
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  process.exit(1);
});
