/**
 * bench:cluster — what the cluster costs a request.
 *
 * 1. Placement decision time of the cluster planner (`planCluster`) over 16 nodes x 8 GPUs x 32 instances
 *    (bench/cluster-scenarios.ts), with llama.cpp's memory model as the cost function (a Llama-3-8B Q4_K_M
 *    sparse replica, 8k context), built as Cluster.decide builds it: one cost function per node, with the CUDA
 *    runtime that node learned. Two ways:
 *      - fresh: a new cost function per decision, shared by every node (nothing estimated before: the first
 *        decision for a model);
 *      - cached: one kept across decisions (PlacementService.costOn keeps it, keyed by file and settings).
 *    Either way each node's learned CUDA runtime is added per GPU (runtimeAdjusted), as costOn does.
 *    One case per tier: (a) runs somewhere already, (b) fits one GPU, (c) needs an eviction, (d) needs a split,
 *    (e) fits nowhere (every tier tried on every node). p50, p99 and max of each after a warm-up.
 * 2. Added latency of a forwarded request on loopback: two proxies as their own processes (`serve`, as users run
 *    them), each with one simulated GPU, a tiny model loaded on node B. Sequential small non-streamed chat
 *    requests (max_tokens 8, temperature 0), interleaved in rotating order so machine noise hits every series:
 *      - instance: B's llama-server port directly (with the instance's API key, read from its environment);
 *      - B: node B, served there;
 *      - A -> B: node A, which forwards to B (the model runs there: the planner's `running` tier).
 *    p50/p90/p99 of each, what each hop adds, and each process's CPU per request (from /proc).
 *
 * npm run bench:cluster [-- --decisions 1000 --warmup 200 --requests 300 --max-tokens 8 --parts planner,forward]
 * BENCH_CPU_PROF=<dir>: a V8 CPU profile of node A (written when it exits). BENCH_VERBOSE=1: the slowest requests of each series.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool as UndiciPool } from 'undici';
import { planCluster, type ClusterDecision } from '../src/cluster/planner.js';
import { viewOf, type NodeView } from '../src/cluster/types.js';
import { defaultCacheDir } from '../src/config/index.js';
import { MODEL_INFO_READ_OPTIONS, modelInfo, type ModelInfo } from '../src/estimate/index.js';
import { readGgufModelHeaderSync, writeSparseReplica, writeTinyModel } from '../src/gguf/index.js';
import { ensureLlamaTools } from '../src/llamacpp/index.js';
import { estimateSettings } from '../src/placement/model-settings.js';
import { estimatorCost, runtimeAdjusted } from '../src/placement/service.js';
import type { Candidate, PlannerSettings } from '../src/placement/types.js';
import { GPUS_PER_NODE, INSTANCES, NODES, scenarios } from './cluster-scenarios.js';
import { instanceKey, stopProxy } from './serve-process.js';

const { values } = parseArgs({
  options: {
    decisions: { type: 'string', default: '1000' },
    warmup: { type: 'string', default: '200' },
    requests: { type: 'string', default: '300' },
    'max-tokens': { type: 'string', default: '8' },
    parts: { type: 'string', default: 'planner,forward' },
  },
});
const DECISIONS = Number(values.decisions);
const WARMUP = Number(values.warmup);
const REQUESTS = Number(values.requests);
const MAX_TOKENS = Number(values['max-tokens']);
const PARTS = new Set(values.parts!.split(','));
const GOAL_DECISION_MS = 5;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const fmt = (v: number, digits = 3) => (Number.isNaN(v) ? '-' : v.toFixed(digits)).padStart(9);

function describeDecision(d: ClusterDecision): string {
  return d.kind === 'node' ? `${d.node} ${d.tier}` : d.kind === 'rpc' ? `rpc ${d.choice.head}` : 'refuse';
}

const tierOf = (d: ClusterDecision) => (d.kind === 'refuse' ? 'refuse' : d.tier);

// ---------------------------------------------------------------------------------------------------------------
// 1. The planner
// ---------------------------------------------------------------------------------------------------------------

async function plannerBench(root: string): Promise<boolean> {
  const file = path.join(root, 'llama3-8b-q4km.gguf');
  await writeSparseReplica(file, 'llama-3-8b', 'Q4_K_M');
  // As PlacementService.modelInfo reads it.
  const info: ModelInfo = modelInfo(readGgufModelHeaderSync(file, MODEL_INFO_READ_OPTIONS));
  const settings = estimateSettings(8192, 1, []);
  // The gpu section's defaults (src/config/schema.ts), as PlacementService.plannerSettings() hands them over.
  const planner: PlannerSettings = { strategy: 'single-gpu-preferred', fit: 'best', reserveBytes: 512 * MiB, maxUtilization: 100, maxMemoryUsedFraction: 0.95, partialOffload: true, cpuFallback: true };
  const modelId = 'llama-3-8b';
  const need = estimatorCost(info, settings, { runtimeBytes: 300 * MiB })({ gpus: [0], ngl: 'full' }).gpuBytes[0]!;

  // One estimate's cost, for scale (what a fresh cost function pays per distinct GPU count, -ngl and split).
  const single: Candidate = { gpus: [0], ngl: 'full' };
  const estTimes: number[] = [];
  for (let i = 0; i < WARMUP + DECISIONS; i++) {
    const fn = estimatorCost(info, settings);
    const t0 = process.hrtime.bigint();
    fn(single);
    if (i >= WARMUP) estTimes.push(ms(t0));
  }
  estTimes.sort((a, b) => a - b);

  console.log(`## 1. cluster placement decision (planCluster)\n`);
  console.log(`model: llama-3-8b Q4_K_M (sparse replica), ctx 8192: ${(need / GiB).toFixed(2)} GiB on one GPU; ${NODES} nodes x ${GPUS_PER_NODE} GPUs (24/48/80 GiB), ${INSTANCES} instances of other models`);
  console.log(`planner settings: the gpu section's defaults (reserve 512 MiB, maxMemoryUsed 0.95, partial offload and CPU fallback on)`);
  console.log(`${DECISIONS} decisions per case and mode after ${WARMUP} warm-up ones (fresh: ${Math.ceil(WARMUP / 10)}, after the cached run warmed the code); one estimateMemory call: p50 ${estTimes[Math.floor(estTimes.length / 2)]!.toFixed(3)} ms, p99 ${percentile(estTimes, 99).toFixed(3)} ms\n`);

  const header = `${'case'.padEnd(30)}${'decision'.padEnd(22)}${'cost fn'.padEnd(8)}${'est/dec'.padStart(8)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'max ms'.padStart(9)}`;
  console.log(header);
  console.log('-'.repeat(header.length));
  const goals: { label: string; mode: string; p99: number }[] = [];
  let ok = true;
  for (const s of scenarios(modelId, need, planner.reserveBytes)) {
    const views = s.states.map((state, k) => viewOf(state, k === 0));
    // As PlacementService.costOn: one cost function (default runtime) shared by every node, each node's learned
    // runtime added per GPU. Cached: kept across decisions; fresh: a new one per decision (nothing estimated yet).
    const kept = estimatorCost(info, settings);
    const cached = (node: NodeView) => runtimeAdjusted(kept, node.runtimeBytes);
    let current = estimatorCost(info, settings);
    const fresh = (node: NodeView) => runtimeAdjusted(current, node.runtimeBytes);
    // Cached first: it warms the planner's code, so the (slow) fresh mode needs a short warm-up only.
    for (const [mode, estimateFor, warmup] of [['cached', cached, WARMUP], ['fresh', fresh, Math.ceil(WARMUP / 10)]] as const) {
      // Untimed: how many candidates a decision costs (after planPlacement's own per-decision memo).
      let calls = 0;
      const counted = (node: NodeView) => {
        const fn = estimateFor(node);
        return (c: Candidate) => (calls++, fn(c));
      };
      const decision = planCluster({ modelId, nLayers: info.nLayer, nodes: views, estimateFor: counted, settings: planner });
      if (mode === 'fresh') current = estimatorCost(info, settings);
      if (!s.expect.includes(tierOf(decision))) {
        console.error(`${s.label}: the planner answered ${describeDecision(decision)} (${decision.reason}), not ${s.expect.join(' or ')}: the case times something else`);
        ok = false;
      }
      const times: number[] = [];
      for (let i = 0; i < warmup + DECISIONS; i++) {
        if (mode === 'fresh') current = estimatorCost(info, settings);
        const t0 = process.hrtime.bigint();
        planCluster({ modelId, nLayers: info.nLayer, nodes: views, estimateFor, settings: planner });
        if (i >= warmup) times.push(ms(t0));
      }
      times.sort((a, b) => a - b);
      const p99 = percentile(times, 99);
      console.log(`${s.label.padEnd(30)}${describeDecision(decision).padEnd(22)}${mode.padEnd(8)}${String(calls).padStart(8)}${fmt(percentile(times, 50))}${fmt(p99)}${fmt(times.at(-1)!)}`);
      goals.push({ label: s.label, mode, p99 });
    }
  }

  // Cluster.decide also turns every peer's state into a view on each decision.
  const states = scenarios(modelId, need, planner.reserveBytes)[1]!.states;
  const viewTimes: number[] = [];
  for (let i = 0; i < WARMUP + DECISIONS; i++) {
    const t0 = process.hrtime.bigint();
    states.map((state, k) => viewOf(state, k === 0));
    if (i >= WARMUP) viewTimes.push(ms(t0));
  }
  viewTimes.sort((a, b) => a - b);
  console.log(`\nviewOf x ${NODES} (Cluster.decide's other per-decision work): p50 ${percentile(viewTimes, 50).toFixed(3)} ms, p99 ${percentile(viewTimes, 99).toFixed(3)} ms`);
  console.log('est/dec: cost function calls one decision makes (distinct candidates per node); a fresh cost function estimates each distinct GPU count, -ngl and split once');

  console.log(`\ngoals (decision p99 < ${GOAL_DECISION_MS} ms):`);
  for (const g of goals) console.log(`  ${g.p99 < GOAL_DECISION_MS ? 'met ' : 'NOT '} ${g.label}, ${g.mode} cost functions: p99 ${g.p99.toFixed(3)} ms`);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. A forwarded request
// ---------------------------------------------------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** CPU milliseconds (user + system) a process has used so far; 0 once it is gone. */
function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

interface Node {
  name: string;
  url: string;
  child: ChildProcess;
  log: () => string;
}

/** `serve` in its own process on the port its config names (peers need each other's addresses before either starts). */
async function spawnNode(name: string, configFile: string, url: string): Promise<Node> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('LLAMA_SMART_PROXY_')) delete env[k];
  // BENCH_CPU_PROF=<dir>: a V8 CPU profile of node A (the forwarding one), written when it exits.
  const prof = process.env.BENCH_CPU_PROF && name === 'node-a' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', path.resolve('src/cli/main.ts'), 'serve', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const node = { name, url, child, log: () => stderr };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (stderr.includes('listening on')) return node;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`node ${name} did not start:\n${stderr}`);
}

interface Health {
  servers: { model_id: string; status: string; port: number | null; pid: number | null }[];
  cluster?: { nodes: { name: string; reachable: boolean; instances: { model: string; state: string }[] }[] };
}

async function health(url: string): Promise<Health> {
  return (await (await fetch(`${url}/health`)).json()) as Health;
}

type Series = 'instance' | 'B' | 'A -> B';

interface Target {
  series: Series;
  client: UndiciPool;
  headers: Record<string, string>;
  /** The node that must have served it (x-llama-smart-proxy-node), when a proxy answers. */
  servedBy?: string;
}

const chatBody = JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'Say hi.' }], max_tokens: MAX_TOKENS, temperature: 0, stream: false });

async function chat(t: Target): Promise<number> {
  const t0 = process.hrtime.bigint();
  const res = await t.client.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', ...t.headers }, body: chatBody });
  const text = await res.body.text();
  const elapsed = ms(t0);
  if (res.statusCode !== 200) throw new Error(`${t.series}: status ${res.statusCode}: ${text.slice(0, 300)}`);
  const node = res.headers['x-llama-smart-proxy-node'];
  if (t.servedBy && node !== t.servedBy) throw new Error(`${t.series}: served by ${String(node)}, not ${t.servedBy}`);
  return elapsed;
}

async function forwardBench(root: string): Promise<boolean> {
  console.log(`\n## 2. a forwarded request on loopback\n`);
  let tools;
  try {
    tools = await ensureLlamaTools({ cacheDir: defaultCacheDir(), llamaServer: { backend: 'auto', autoBuild: false } });
  } catch (err) {
    console.log(`skipped: ${(err as Error).message}`);
    return true;
  }
  const file = path.join(root, 'models', 'bench.gguf');
  mkdirSync(path.dirname(file), { recursive: true });
  await writeTinyModel(file, { seed: 11 });
  const token = 'bench-cluster-token-0123456789';
  const ports = { a: await freePort(), b: await freePort() };
  const urlOf = (n: 'a' | 'b') => `http://127.0.0.1:${ports[n]}`;
  const config = (n: 'a' | 'b', other: 'a' | 'b', instancePorts: [number, number]) => ({
    server: { host: '127.0.0.1', port: ports[n] },
    pool: { size: 2, portRange: instancePorts },
    llamaServer: { binary: tools.server, autoBuild: false },
    gpu: { source: 'simulated', forceSimulated: true, simulated: [{ name: `Sim ${n}0`, memoryMiB: 8192 }] },
    // One thread: llama.cpp's default (every core, spinning between tokens) takes the cores the two proxies and
    // the client need on a small machine, and turns the tails into seconds of scheduling noise.
    models: { bench: { path: file, ctx: 512, parallel: 1, args: ['--threads', '1'] } },
    modelsDir: path.join(root, 'models'),
    cacheDir: path.join(root, `cache-${n}`),
    cluster: { node: `node-${n}`, peers: [urlOf(other)], token },
    log: { level: 'warn' },
  });
  const nodes: Node[] = [];
  const pools: UndiciPool[] = [];
  try {
    for (const [n, other, range] of [['b', 'a', [46_100, 46_149]], ['a', 'b', [46_150, 46_199]]] as const) {
      const configFile = path.join(root, `${n}.yaml`);
      writeFileSync(configFile, JSON.stringify(config(n, other, [range[0], range[1]])));
      nodes.push(await spawnNode(`node-${n}`, configFile, urlOf(n)));
    }
    const [b, a] = nodes as [Node, Node];
    const load = await fetch(`${b.url}/models/load`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"bench"}' });
    if (load.status !== 200) throw new Error(`loading on node B: ${load.status} ${await load.text()}`);
    const server = (await health(b.url)).servers.find((s) => s.model_id === 'bench' && s.status === 'ready');
    if (!server?.port || !server.pid) throw new Error('node B shows no ready instance of the model');
    // Node A must have heard of it (B pushes its state when an instance is ready; A also polls).
    const deadline = Date.now() + 10_000;
    const aSees = async () => (await health(a.url)).cluster?.nodes.some((n) => n.name === 'node-b' && n.reachable && n.instances.some((i) => i.model === 'bench' && i.state === 'ready')) ?? false;
    while (!(await aSees())) {
      if (Date.now() > deadline) throw new Error(`node A does not see the model running on node B:\n${a.log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const targets: Target[] = [];
    let instanceNote = '';
    try {
      // The instance answers only its API key, which its environment holds (readable by the same user only).
      const key = instanceKey(server.pid);
      targets.push({ series: 'instance', client: new UndiciPool(`http://127.0.0.1:${server.port}`, { connections: 1 }), headers: { authorization: `Bearer ${key}` } });
    } catch (err) {
      instanceNote = `instance series skipped: ${(err as Error).message}`;
    }
    targets.push({ series: 'B', client: new UndiciPool(b.url, { connections: 1 }), headers: {}, servedBy: 'node-b' });
    targets.push({ series: 'A -> B', client: new UndiciPool(a.url, { connections: 1 }), headers: {}, servedBy: 'node-b' });
    pools.push(...targets.map((t) => t.client));

    console.log(`llama-server ${tools.server}`);
    console.log(`tiny model (writeTinyModel), ctx 512, 1 slot, llama-server --threads 1, on node B; ${REQUESTS} sequential chat requests per series, max_tokens ${MAX_TOKENS}, temperature 0, interleaved`);
    if (instanceNote) console.log(instanceNote);
    console.log(`load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} cores)\n`);

    // Warm-up: connections, prompt cache, the proxies' JIT.
    for (let i = 0; i < 30; i++) for (const t of targets) await chat(t);

    const pids = { 'node A': a.child.pid!, 'node B': b.child.pid!, 'llama-server': server.pid };
    const cpu = new Map<Series, Record<string, number>>(targets.map((t) => [t.series, Object.fromEntries(Object.keys(pids).map((p) => [p, 0]))]));
    const times = new Map<Series, number[]>(targets.map((t) => [t.series, []]));
    for (let i = 0; i < REQUESTS; i++) {
      // Each series goes first in turn.
      for (let j = 0; j < targets.length; j++) {
        const t = targets[(i + j) % targets.length]!;
        const before = Object.values(pids).map(cpuMsOf);
        times.get(t.series)!.push(await chat(t));
        const after = Object.values(pids).map(cpuMsOf);
        const acc = cpu.get(t.series)!;
        Object.keys(pids).forEach((p, k) => (acc[p]! += after[k]! - before[k]!));
      }
    }

    const stats = new Map([...times].map(([s, v]) => {
      const sorted = [...v].sort((x, y) => x - y);
      return [s, { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.at(-1)!, mean: v.reduce((x, y) => x + y, 0) / v.length }] as const;
    }));
    const series = targets.map((t) => t.series);
    const row = (label: string, f: (s: Series) => number) => console.log(`${label.padEnd(34)}${series.map((s) => fmt(f(s))).join('')}`);
    console.log(`${''.padEnd(34)}${series.map((s) => s.padStart(9)).join('')}`);
    row('p50 ms', (s) => stats.get(s)!.p50);
    row('p90 ms', (s) => stats.get(s)!.p90);
    row('p99 ms', (s) => stats.get(s)!.p99);
    row('max ms', (s) => stats.get(s)!.max);
    row('mean ms', (s) => stats.get(s)!.mean);
    // /proc counts in 10 ms ticks: per request, over all requests of a series.
    for (const p of Object.keys(pids)) row(`CPU ms per request, ${p}`, (s) => cpu.get(s)![p]! / REQUESTS);

    const st = (s: Series) => stats.get(s)!;
    // Each round's requests ran back to back: the median of the rounds' differences is steadier than the
    // difference of two percentiles when other work on the machine comes and goes.
    const paired = (x: Series, y: Series) => {
      const a = times.get(x)!;
      const b = times.get(y)!;
      return percentile(a.map((t, i) => t - b[i]!).sort((u, v) => u - v), 50);
    };
    const diff = (x: Series, y: Series) =>
      `p50 ${(st(x).p50 - st(y).p50).toFixed(3)} ms, p90 ${(st(x).p90 - st(y).p90).toFixed(3)} ms, p99 ${(st(x).p99 - st(y).p99).toFixed(3)} ms; median of rounds ${paired(x, y).toFixed(3)} ms`;
    console.log('');
    if (stats.has('instance')) console.log(`node B over its instance (one proxy):   ${diff('B', 'instance')}`);
    console.log(`A -> B over B (the forwarding hop):     ${diff('A -> B', 'B')}`);
    if (process.env.BENCH_VERBOSE) {
      // The slowest requests and when they ran: the same rounds in every series point at the machine.
      for (const [s, v] of times) console.error(`${s} slowest: ${v.map((t, i) => [t, i] as const).sort((x, y) => y[0] - x[0]).slice(0, 6).map(([t, i]) => `#${i} ${t.toFixed(1)}`).join(', ')}`);
    }
    console.log(`\nload average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    return true;
  } finally {
    await Promise.all(pools.map((p) => p.close().catch(() => {})));
    // A first (it forwards to B), then B with its instance.
    for (const n of [...nodes].reverse()) await stopProxy(n.child);
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-bench-cluster-'));
  let ok = true;
  try {
    if (PARTS.has('planner')) ok = (await plannerBench(root)) && ok;
    if (PARTS.has('forward')) ok = (await forwardBench(root)) && ok;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  if (!ok) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
