/**
 * bench:proxy — what the proxy costs, next to what a plain reverse proxy costs. One tiny model, one llama-server
 * instance (the proxy's own), measured three ways in one run so drift hits every side alike: the sequential cells
 * (c=1, TTFT, the large body) send request i to each side in turn, the c=16 cell runs the sides one after another
 * in rotating rounds:
 *   - direct: the instance's own port (with its API key);
 *   - nginx: nginx on loopback in front of the same instance (keep-alive upstream, HTTP/1.1, no response
 *     buffering), started and stopped by the bench; skipped with a reason when `nginx` is not installed
 *     (Debian: apt-get install nginx-light);
 *   - node: the floor of any proxy written in Node (bench/node-floor.ts: node:http and one undici pool, nothing
 *     else), its own process; skipped with BENCH_NODE_FLOOR=none;
 *   - proxy: llama-smart-proxy, run as its own process (`serve`), as users run it.
 * Cells:
 *   - short non-streamed completions at concurrency 1 and 16: latency p50/p99 and throughput;
 *   - time to first token when streaming;
 *   - a 200 KB body at concurrency 1 (what a coding agent sends every turn). The tiny model's byte vocabulary
 *     makes 200 KB of prompt ~200k tokens, more than any context here holds and seconds of llama-server work that
 *     would bury a sub-millisecond difference; so the request is a /v1/completions call whose prompt is short but
 *     which also carries a ~200 KB chat history (messages with code, escapes, non-ASCII, tool calls: the shape
 *     Claude Code or Codex send) in a field llama-server does not read. Every side carries the same bytes, and
 *     llama-server parses them as JSON on every side alike; the proxy does all it does with any body (reads it,
 *     checks it, reads the fields routing needs, forwards the raw bytes), so the difference is the cost of carrying
 *     it. (On /v1/chat/completions planning agents also reads the last user message of `messages`.)
 * Goals printed at the end: added p50 at c=1 within 2x nginx's, c=16 throughput >= 0.97 of direct (the median of
 * the blocks' ratios: the sides run back to back in short blocks, so this is steadier than the totals when other
 * work on the machine comes and goes), the large body adding < 1 ms.
 * Besides latency, each cell's CPU per request of the proxy process, nginx, the Node floor and llama-server (from
 * /proc); at c=16 the proxy process's row in the other columns is what it does in the background.
 * Timing is hand-rolled with process.hrtime and undici (autocannon's histogram rounds to whole milliseconds, too
 * coarse for a sub-millisecond difference). The proxy logs at `warn` (--log-level info: a line per request, the
 * default of a config that sets none).
 *
 * npm run bench:proxy [-- --requests 400 --rounds 3 --warmup 10000 --layers 2 --embd 64 --max-tokens 8 --body-kb 200
 *                        --nginx-workers 1 --cells c1,c16,ttft,big --log-level warn --json results.json]
 * BENCH_CPU_PROF=<dir>: a V8 CPU profile of the proxy process (written when it exits at the end), summarised
 *   (top self time by function and by file) after the figures.
 * BENCH_PROXY_ENTRY=<dist/cli/main.js>: a built proxy instead of the sources through tsx (before/after builds).
 * BENCH_NGINX=<binary>|none: which nginx (default: the one on PATH), or no nginx column.
 * BENCH_VERBOSE=1: each sample's throughput on stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool as UndiciPool } from 'undici';
import { defaultCacheDir } from '../src/config/index.js';
import { writeTinyModel } from '../src/gguf/index.js';
import { ensureLlamaTools } from '../src/llamacpp/index.js';
import { instanceKey, spawnProxy, stopProxy } from './serve-process.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '3' },
    'max-tokens': { type: 'string', default: '8' },
    // A heavier generated model (more work per request on llama-server's side), e.g. --layers 8 --embd 512.
    layers: { type: 'string', default: '2' },
    embd: { type: 'string', default: '64' },
    'body-kb': { type: 'string', default: '200' },
    // One worker, as the proxy is one event loop.
    'nginx-workers': { type: 'string', default: '1' },
    // Also write the figures as JSON.
    json: { type: 'string' },
    // A subset of the cells, e.g. --cells c1,big (for a profile of one kind of request).
    cells: { type: 'string', default: 'c1,c16,ttft,big' },
    'log-level': { type: 'string', default: 'warn' },
    // Requests per side before measuring (short ones at c=4, then a twentieth as many large bodies and streams).
    warmup: { type: 'string', default: '10000' },
  },
});
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);
const MAX_TOKENS = Number(values['max-tokens']);
const BODY_BYTES = Number(values['body-kb']) * 1000;
const SLOTS = 16;
const CELLS = new Set(values.cells!.split(','));

type Side = 'direct' | 'nginx' | 'node' | 'proxy';
type Cell = 'c1' | 'c16' | 'ttft' | 'big';

interface Sample {
  latencies: number[];
  wallMs: number;
  /** CPU milliseconds each process used while the sample ran. */
  cpu?: Record<Proc, number>;
}

type Proc = 'proxy' | 'nginx' | 'node' | 'llama';
const CLOCK_TICKS = 100;

/** CPU milliseconds (user + system) a process has used so far; 0 once it is gone. */
function cpuMsOf(pid: number): number {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** The processes whose parent is `pid` (nginx's workers). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Headers each client sends: the instance's own API key for the direct side (nginx and the proxy add it). */
const extraHeaders = new WeakMap<UndiciPool, Record<string, string>>();
const headersOf = (client: UndiciPool) => ({ 'content-type': 'application/json', ...extraHeaders.get(client) });

/** What each client is called in errors, and the stale sockets it sent a request on again. */
const sideOf = new WeakMap<UndiciPool, string>();
const resent = new Map<string, number>();

/**
 * One request; sent again on a fresh socket when the pooled one turned out closed before any answer (llama-server
 * closes a connection after a streamed answer although it announced keep-alive), as the proxy does upstream.
 */
async function send(client: UndiciPool, payload: string | Buffer) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.request({ method: 'POST', path: '/v1/completions', headers: headersOf(client), body: payload });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 3 || (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET')) throw err;
      const side = sideOf.get(client) ?? '?';
      resent.set(side, (resent.get(side) ?? 0) + 1);
    }
  }
}

const body = (i: number, stream = false) =>
  JSON.stringify({ model: 'bench', prompt: `Request ${i % 7}:`, max_tokens: MAX_TOKENS, temperature: 0, stream, cache_prompt: true });

/**
 * A coding agent's turn: a system prompt, the user's ask, then tool calls reading source files and their results
 * (this repository's own sources: code with quotes, backslashes, newlines, non-ASCII), until the messages total
 * `bytes`. Carried in `agent_context` (llama-server reads only the fields it knows) beside a short prompt.
 */
function bigBody(bytes: number): Buffer {
  const dir = path.resolve('src/api');
  const sources = readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => ({ file: `src/api/${f}`, text: readFileSync(path.join(dir, f), 'utf8') }));
  const messages: Record<string, unknown>[] = [
    { role: 'system', content: `You are a coding agent working in a TypeScript repository. Follow the project's conventions.\n${'Use the tools to read files before editing them; keep changes small and tested. '.repeat(40)}` },
    { role: 'user', content: [{ type: 'text', text: 'Find where request bodies are parsed and explain the depth check — with examples ("deep" arrays, \\escaped\\ quotes).' }] },
  ];
  const base = { model: 'bench', prompt: 'Request 0:', max_tokens: MAX_TOKENS, temperature: 0, stream: false, cache_prompt: true };
  for (let i = 0; JSON.stringify({ ...base, agent_context: { messages } }).length < bytes; i++) {
    const src = sources[i % sources.length]!;
    const id = `call_${i.toString(16).padStart(8, '0')}`;
    messages.push({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'read_file', arguments: JSON.stringify({ path: src.file, offset: 0, limit: 2000 }) } }] });
    messages.push({ role: 'tool', tool_call_id: id, content: src.text });
  }
  // Trimmed to the size asked (the last tool result cut short).
  const whole = { ...base, agent_context: { messages } };
  let text = JSON.stringify(whole);
  const last = messages.at(-1)!;
  const content = last.content as string;
  let keep = content.length;
  // Escapes make the JSON shrink faster than the text: cut, then grow back by what fell short.
  for (let tries = 0; tries < 8 && text.length !== bytes; tries++) {
    keep = Math.max(0, Math.min(content.length, keep - (text.length - bytes)));
    last.content = content.slice(0, keep);
    text = JSON.stringify(whole);
  }
  return Buffer.from(text);
}

/** One non-streamed completion: its latency in milliseconds. */
async function oneCompletion(client: UndiciPool, i: number, payload?: Buffer): Promise<number> {
  const t0 = process.hrtime.bigint();
  const res = await send(client, payload ?? body(i));
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${sideOf.get(client)}: status ${res.statusCode}: ${text.slice(0, 300)}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** One streamed completion: milliseconds to its first data event. */
async function oneFirstToken(client: UndiciPool, i: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const res = await send(client, body(i, true));
  let first = 0;
  for await (const chunk of res.body) {
    if (!first && chunk.toString().includes('data: {')) first = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  if (res.statusCode !== 200 || !first) throw new Error(`${sideOf.get(client)}: stream: status ${res.statusCode}, no data event`);
  return first;
}

/**
 * Sequential requests to every side in turn (request i to each side, the side going first rotating), so that what
 * else the machine does at any moment hits every side alike: blocks of one side after another let a burst of
 * other work land on one side only, which at c=1 moved a side's p50 by more than the difference measured.
 */
async function interleaved(clients: UndiciPool[], count: number, one: (client: UndiciPool, i: number) => Promise<number>): Promise<Sample[]> {
  const out: Sample[] = clients.map(() => ({ latencies: [], wallMs: 0 }));
  for (let i = 0; i < count; i++) {
    for (let k = 0; k < clients.length; k++) {
      const j = (k + i) % clients.length;
      const t0 = process.hrtime.bigint();
      out[j]!.latencies.push(await one(clients[j]!, i));
      out[j]!.wallMs += Number(process.hrtime.bigint() - t0) / 1e6;
    }
  }
  return out;
}

async function completions(client: UndiciPool, count: number, concurrency: number, payload?: Buffer): Promise<Sample> {
  const latencies: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  async function worker(): Promise<void> {
    while (next < count) latencies.push(await oneCompletion(client, next++, payload));
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, wallMs: Number(process.hrtime.bigint() - started) / 1e6 };
}

function merge(samples: Sample[]): { sorted: number[]; rps: number } {
  const all = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const wall = samples.reduce((a, s) => a + s.wallMs, 0);
  return { sorted: all, rps: (all.length / wall) * 1000 };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not start:\n${log()}`);
}

interface Nginx {
  url: string;
  conf: string;
  /** Master and workers. */
  pids: number[];
  stop(): Promise<void>;
}

/** The `nginx` binary on PATH (or in /usr/sbin), or BENCH_NGINX's; undefined when none (BENCH_NGINX=none). */
function findNginx(): string | undefined {
  const given = process.env.BENCH_NGINX;
  if (given === 'none') return undefined;
  if (given) return given;
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    const file = path.join(dir, 'nginx');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not there
    }
  }
  return undefined;
}

/**
 * nginx as a reverse proxy on loopback in front of `upstreamPort`, as one would configure it for llama-server:
 * HTTP/1.1 with a keep-alive upstream pool, no response buffering (SSE goes out as it comes), the instance's key
 * set on every request, request bodies kept in memory (up to 1 MiB; larger ones would go to a temp file), no
 * access log. Its own prefix, pid, temp and log paths in a temp dir; `daemon off`, so it is the bench's child.
 */
async function startNginx(binary: string, upstreamPort: number, key: string, workers: number): Promise<Nginx> {
  // Workers run as nobody when the bench is root: they must reach their temp dirs.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-bench-nginx-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 64m;
  client_body_buffer_size 1m;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  upstream llama {
    server 127.0.0.1:${upstreamPort};
    keepalive ${SLOTS * 2};
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://llama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer ${key}";
      proxy_buffering off;
      # llama-server closes a connection after a streamed answer although it announced keep-alive: a request sent
      # on it fails before any answer (502 "upstream prematurely closed connection"). nginx sends it again on a
      # fresh connection only when a POST may be retried (the proxy retries such stale sockets itself).
      proxy_next_upstream error timeout non_idempotent;
      proxy_request_buffering on;
      proxy_read_timeout 600s;
    }
  }
}
`,
  );
  const child = spawn(binary, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const log = () => {
    let errors = '';
    try {
      errors = readFileSync(path.join(dir, 'error.log'), 'utf8');
    } catch {
      // none yet
    }
    return `${stderr}${errors}`;
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // QUIT: graceful (workers finish what they serve); KILL after a while.
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, child, log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `http://127.0.0.1:${port}`, conf, pids: [child.pid!, ...childrenOf(child.pid!)], stop };
}

interface NodeFloor {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** bench/node-floor.ts in its own process (as the proxy runs in its own), in front of the instance. */
async function startNodeFloor(upstreamPort: number, key: string): Promise<NodeFloor> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('bench/node-floor.ts'), String(port), String(upstreamPort), key], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  const deadline = Date.now() + 30_000;
  while (!output.includes('listening on') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  if (!output.includes('listening on')) {
    await stop();
    throw new Error(`the node floor did not start:\n${output}`);
  }
  return { url: `http://127.0.0.1:${port}`, child, stop };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** The top self-time functions (and files) of the newest main-thread .cpuprofile in `dir`: where the proxy's CPU went. */
function printProfile(dir: string, top = 30): void {
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (tsx's loader has its own).
  const files = readdirSync(dir).filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)).map((f) => path.join(dir, f));
  const newest = files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (!newest) {
    console.log(`\nno .cpuprofile in ${dir}`);
    return;
  }
  const prof = JSON.parse(readFileSync(newest, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  let idle = 0;
  const short = (url: string) => url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '').replace(/.*node_modules\//, 'node_modules/');
  for (let i = 0; i < prof.samples.length; i++) {
    const node = byId.get(prof.samples[i]!)!;
    const us = prof.timeDeltas[i + 1] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const name = `${functionName || '(anonymous)'} ${url ? `${short(url)}:${lineNumber + 1}` : ''}`.trim();
    self.set(name, (self.get(name) ?? 0) + us);
    const file = url ? short(url).replace(/^(node_modules\/(@[^/]+\/)?[^/]+)\/.*/, '$1') : functionName;
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  console.log(`\nproxy CPU profile ${newest}: ${(total / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle`);
  console.log('top self time, by function:');
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)} ${(us / 1000).toFixed(1).padStart(8)} ms  ${name}`);
  console.log('by file / package:');
  for (const [name, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${pct(us)} ${(us / 1000).toFixed(1).padStart(8)} ms  ${name}`);
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-bench-'));
  const file = path.join(root, 'models', 'bench.gguf');
  mkdirSync(path.dirname(file), { recursive: true });
  await writeTinyModel(file, { seed: 11, layers: Number(values.layers), embd: Number(values.embd) });
  const tools = await ensureLlamaTools({ cacheDir: defaultCacheDir(), llamaServer: { backend: 'auto', autoBuild: true }, log: (l) => console.error(l) });
  const configFile = path.join(root, 'bench.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      llamaServer: { binary: tools.server },
      log: { level: values['log-level'] },
      models: { bench: { path: file, ctx: 512 * SLOTS, parallel: SLOTS } },
    }),
  );
  const proxy = await spawnProxy(configFile);
  let nginx: Nginx | undefined;
  let floor: NodeFloor | undefined;
  const pools: UndiciPool[] = [];
  try {
    const load = await fetch(`${proxy.url}/models/load`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"bench"}' });
    const loaded = (await load.json()) as { instance: { port: number; pid: number } };
    // The instance answers only its API key, which its environment holds (readable by the same user only).
    const key = instanceKey(loaded.instance.pid);
    const direct = new UndiciPool(`http://127.0.0.1:${loaded.instance.port}`, { connections: SLOTS + 1 });
    extraHeaders.set(direct, { authorization: `Bearer ${key}` });
    const proxied = new UndiciPool(proxy.url, { connections: SLOTS + 1 });
    const clients: Partial<Record<Side, UndiciPool>> = { direct, proxy: proxied };
    pools.push(direct, proxied);

    const nginxBinary = findNginx();
    let nginxNote: string;
    if (!nginxBinary) nginxNote = `nginx: skipped (${process.env.BENCH_NGINX === 'none' ? 'BENCH_NGINX=none' : 'no `nginx` on PATH or in /usr/sbin; Debian: apt-get install nginx-light'})`;
    else {
      nginx = await startNginx(nginxBinary, loaded.instance.port, key, Number(values['nginx-workers']));
      const pool = new UndiciPool(nginx.url, { connections: SLOTS + 1 });
      clients.nginx = pool;
      pools.push(pool);
      nginxNote = `nginx: ${nginxBinary}, ${values['nginx-workers']} worker(s), keepalive upstream, proxy_buffering off (${nginx.conf})`;
    }
    // The floor of a Node proxy (bench/node-floor.ts): what node:http and undici cost alone.
    let nodeNote = 'node: skipped (BENCH_NODE_FLOOR=none)';
    if (process.env.BENCH_NODE_FLOOR !== 'none') {
      floor = await startNodeFloor(loaded.instance.port, key);
      const pool = new UndiciPool(floor.url, { connections: SLOTS + 1 });
      clients.node = pool;
      pools.push(pool);
      nodeNote = `node: bench/node-floor.ts (node:http + one undici pool, nothing else), pid ${floor.child.pid}`;
    }
    const sides = (['direct', 'nginx', 'node', 'proxy'] as const).filter((s) => clients[s]);
    for (const side of sides) sideOf.set(clients[side]!, side);
    const big = bigBody(BODY_BYTES);

    console.log(`llama-server ${tools.server}\n${nginxNote}\n${nodeNote}`);
    console.log(`model: tiny llama (${values.layers} layers, embd ${values.embd}), ${SLOTS} slots; ${REQUESTS} requests x ${ROUNDS} rounds per cell, max_tokens ${MAX_TOKENS}; large body ${big.length} bytes`);
    console.log(`load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} cores)\n`);
    // Warm up every path (connections, prompt cache) and the JIT: V8 is still compiling and deoptimizing the
    // proxy's request path after 3,000 requests (--trace-opt: 68 compilations and 28 deopts in the next 2,000; its
    // CPU per request 1.0 ms), and settled after 10,000 (9 and 1; 0.63 ms). A proxy that serves traffic runs settled.
    const warmup = Number(values.warmup);
    for (const side of sides) {
      await completions(clients[side]!, warmup, 4);
      await completions(clients[side]!, Math.max(10, Math.round(warmup / 20)), 1, big);
      for (let i = 0; i < Math.max(10, Math.round(warmup / 20)); i++) await oneFirstToken(clients[side]!, i);
    }

    const results = {} as Record<Cell, Record<Side, Sample[]>>;
    for (const cell of ['c1', 'c16', 'ttft', 'big'] as const) results[cell] = { direct: [], nginx: [], node: [], proxy: [] };
    const procs: Record<Proc, number[]> = { proxy: [proxy.child.pid!], nginx: nginx?.pids ?? [], node: floor ? [floor.child.pid!] : [], llama: [loaded.instance.pid] };
    const cpuNow = () => Object.fromEntries(Object.entries(procs).map(([k, pids]) => [k, pids.reduce((a, pid) => a + cpuMsOf(pid), 0)])) as Record<Proc, number>;
    const measure = async (cell: Cell, side: Side, run: () => Promise<Sample>) => {
      if (!CELLS.has(cell)) return;
      const before = cpuNow();
      const sample = await run();
      const after = cpuNow();
      sample.cpu = { proxy: after.proxy - before.proxy, nginx: after.nginx - before.nginx, node: after.node - before.node, llama: after.llama - before.llama };
      results[cell][side].push(sample);
      if (process.env.BENCH_VERBOSE) console.error(`${cell} ${side}: ${((sample.latencies.length / sample.wallMs) * 1000).toFixed(1)} req/s, llama-server cpu ${(sample.cpu.llama / sample.latencies.length).toFixed(2)} ms/req`);
    };
    // The sequential cells, sides interleaved request by request: each process's CPU is counted on its own side
    // (the proxy process on the proxy's, nginx on nginx's), llama-server's split evenly between the sides.
    const owner: Record<Proc, Side | undefined> = { proxy: 'proxy', nginx: 'nginx', node: 'node', llama: undefined };
    const measureInterleaved = async (cell: Cell, count: number, one: (client: UndiciPool, i: number) => Promise<number>) => {
      if (!CELLS.has(cell)) return;
      const before = cpuNow();
      const samples = await interleaved(sides.map((s) => clients[s]!), count, one);
      const after = cpuNow();
      sides.forEach((side, k) => {
        const share = (proc: Proc) => (owner[proc] === undefined ? (after[proc] - before[proc]) / sides.length : owner[proc] === side ? after[proc] - before[proc] : 0);
        const sample = samples[k]!;
        sample.cpu = { proxy: share('proxy'), nginx: share('nginx'), node: share('node'), llama: share('llama') };
        results[cell][side].push(sample);
      });
    };
    for (let round = 0; round < ROUNDS; round++) {
      await measureInterleaved('c1', REQUESTS, (client, i) => oneCompletion(client, i));
      // c=16 in four short blocks per round, the sides' order rotating each block: llama-server's own throughput
      // drifts 2-3x from one second to the next on a 2-core machine (direct alone: 390-1320 req/s in 800-request
      // blocks), so the ratio is taken block by block, of neighbours, and the median of those is the figure.
      for (let block = 0; block < 4; block++) {
        const turn = sides.map((_, i) => sides[(i + round + block) % sides.length]!);
        for (const side of turn) await measure('c16', side, () => completions(clients[side]!, REQUESTS / 2, 16));
      }
      await measureInterleaved('ttft', Math.max(50, REQUESTS / 4), oneFirstToken);
      await measureInterleaved('big', Math.max(50, REQUESTS / 2), (client, i) => oneCompletion(client, i, big));
    }
    const loadAfter = os.loadavg();

    const m = {} as Record<Cell, Partial<Record<Side, { p50: number; p99: number; rps: number }>>>;
    const cpu = {} as Record<Cell, Partial<Record<Side, Record<Proc, number>>>>;
    for (const cell of Object.keys(results) as Cell[]) {
      m[cell] = {};
      cpu[cell] = {};
      for (const side of sides) {
        const { sorted, rps } = merge(results[cell][side]);
        m[cell][side] = { p50: percentile(sorted, 50), p99: percentile(sorted, 99), rps };
        const samples = results[cell][side];
        const count = samples.reduce((a, x) => a + x.latencies.length, 0);
        const per = (k: Proc) => samples.reduce((a, x) => a + (x.cpu?.[k] ?? 0), 0) / count;
        cpu[cell][side] = { proxy: per('proxy'), nginx: per('nginx'), node: per('node'), llama: per('llama') };
      }
    }
    const col = (v: number | undefined, digits = 3) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits)).padStart(10);
    const row = (label: string, f: (side: Side) => number | undefined, digits = 3) => console.log(`${label.padEnd(30)}${sides.map((s) => col(f(s), digits)).join('')}`);
    const added = (cell: Cell, side: Side) => (side === 'direct' ? undefined : m[cell][side]!.p50 - m[cell].direct!.p50);
    console.log(`${''.padEnd(30)}${sides.map((s) => s.padStart(10)).join('')}`);
    row('c=1 p50 ms', (s) => m.c1[s]!.p50);
    row('c=1 p99 ms', (s) => m.c1[s]!.p99);
    row('c=1 added p50 ms', (s) => added('c1', s));
    row('c=1 req/s', (s) => m.c1[s]!.rps, 1);
    row('c=16 req/s', (s) => m.c16[s]!.rps, 1);
    row('c=16 throughput vs direct', (s) => m.c16[s]!.rps / m.c16.direct!.rps);
    // Each round's ratio (its sides ran back to back), the median of them: steadier than the totals when the
    // machine's other work comes and goes.
    const roundRatio = (side: Side) => {
      const rate = (x: Sample) => x.latencies.length / x.wallMs;
      const ratios = results.c16[side].map((x, r) => rate(x) / rate(results.c16.direct[r]!)).sort((a, b) => a - b);
      return ratios.length ? ratios[Math.floor((ratios.length - 1) / 2)]! : NaN;
    };
    row('  median of blocks', roundRatio);
    row('c=16 p50 ms', (s) => m.c16[s]!.p50);
    row('c=16 p99 ms', (s) => m.c16[s]!.p99);
    row('TTFT (stream) p50 ms', (s) => m.ttft[s]!.p50);
    row('TTFT added p50 ms', (s) => added('ttft', s));
    row(`${Math.round(big.length / 1000)} KB body p50 ms`, (s) => m.big[s]!.p50);
    row(`${Math.round(big.length / 1000)} KB body p99 ms`, (s) => m.big[s]!.p99);
    row(`${Math.round(big.length / 1000)} KB body added p50 ms`, (s) => added('big', s));
    // Per request, from /proc (10 ms ticks). Sequential cells ran interleaved: a process's CPU is on its own side,
    // llama-server's split evenly. At c=16 (sides one after another) the proxy column's llama-server row and the
    // direct column's proxy row show what the proxy costs the instance and what it does in the background.
    console.log(`\nCPU ms per request${''.padEnd(12)}${sides.map((s) => s.padStart(10)).join('')}`);
    for (const [cell, label] of [['c1', 'c=1'], ['c16', 'c=16'], ['ttft', 'TTFT'], ['big', `${Math.round(big.length / 1000)} KB`]] as const) {
      for (const [proc, name] of [['proxy', 'proxy process'], ['nginx', 'nginx'], ['node', 'node floor'], ['llama', 'llama-server']] as const) {
        if ((proc === 'nginx' && !clients.nginx) || (proc === 'node' && !clients.node)) continue;
        row(`${label} ${name}`, (s) => cpu[cell][s]![proc]);
      }
    }
    console.log(`\nload average after: ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
    if (resent.size) console.log(`requests sent again after a stale socket (bench client): ${[...resent].map(([s, n]) => `${s} ${n}`).join(', ')}`);

    const p = (c: Cell) => added(c, 'proxy')!;
    const goals: Array<[string, boolean | undefined, string]> = [
      ['added p50 at c=1 within 2x nginx\'s added', clients.nginx ? p('c1') <= 2 * Math.max(0, added('c1', 'nginx')!) : undefined, clients.nginx ? `proxy ${p('c1').toFixed(3)} ms vs nginx ${added('c1', 'nginx')!.toFixed(3)} ms` : 'no nginx column'],
      ['c=16 throughput >= 0.97 of direct (median of blocks)', roundRatio('proxy') >= 0.97, `${roundRatio('proxy').toFixed(3)} (nginx ${clients.nginx ? roundRatio('nginx').toFixed(3) : '-'}; totals ${(m.c16.proxy!.rps / m.c16.direct!.rps).toFixed(3)})`],
      [`${Math.round(big.length / 1000)} KB body adds < 1 ms`, p('big') < 1, `${p('big').toFixed(3)} ms`],
    ];
    console.log('\ngoals (proxy):');
    for (const [goal, met, detail] of goals) console.log(`  ${met === undefined ? 'n/a ' : met ? 'met ' : 'NOT '} ${goal}: ${detail}`);
    if (clients.node) {
      const n = (c: Cell) => added(c, 'node')!;
      console.log(`\nthe Node floor adds ${n('c1').toFixed(3)} ms at c=1 and ${n('big').toFixed(3)} ms with the large body: the proxy's own share is ${(p('c1') - n('c1')).toFixed(3)} / ${(p('big') - n('big')).toFixed(3)} ms`);
    }
    if (values.json) writeFileSync(values.json, `${JSON.stringify({ sides, bodyBytes: big.length, loadAfter, results: m, c16RoundRatio: Object.fromEntries(sides.map((s) => [s, roundRatio(s)])), cpuMsPerRequest: cpu }, null, 2)}\n`);
  } finally {
    await Promise.all(pools.map((c) => c.close().catch(() => {})));
    await nginx?.stop();
    await floor?.stop();
    await stopProxy(proxy.child);
    rmSync(root, { recursive: true, force: true });
  }
  if (process.env.BENCH_CPU_PROF) printProfile(process.env.BENCH_CPU_PROF);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
