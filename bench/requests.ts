/**
 * bench:requests — what the request records cost (issue 16): proxy throughput at concurrency 16 with the ring off
 * (server.requestLog: 0) against the ring on (1000) with one live subscriber on GET /requests/stream reading every
 * record. Besides throughput, the CPU each proxy process spends per request (its own process.cpuUsage()): on a busy
 * machine (other work taking the cores) throughput swings from round to round, CPU per request much less. Two proxies run as their own processes (`serve`, as users run them), each with its own llama-server
 * instance of the same tiny model; rounds alternate between them (A B, B A, ...) so drift on the machine hits both
 * alike, and the cost is the median of the rounds' throughput ratios. The subscriber's count is checked against the
 * requests sent (every request recorded and streamed). Goal: under 5 %.
 *
 * npm run bench:requests [-- --requests 400 --rounds 6 --concurrency 16 --max-tokens 8 --json out.json]
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool as UndiciPool } from 'undici';
import { defaultCacheDir } from '../src/config/index.js';
import { writeTinyModel } from '../src/gguf/index.js';
import { ensureLlamaTools } from '../src/llamacpp/index.js';
import { spawnProxy, stopProxy } from './serve-process.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '6' },
    concurrency: { type: 'string', default: '16' },
    'max-tokens': { type: 'string', default: '8' },
    json: { type: 'string' },
  },
});
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);
const CONCURRENCY = Number(values.concurrency);
const MAX_TOKENS = Number(values['max-tokens']);
const SLOTS = 16;
const WARMUP = 600;

const body = (i: number) => JSON.stringify({ model: 'bench', prompt: `Request ${i % 7}:`, max_tokens: MAX_TOKENS, temperature: 0, cache_prompt: true });

async function send(client: UndiciPool, payload: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.request({ method: 'POST', path: '/v1/completions', headers: { 'content-type': 'application/json' }, body: payload, headersTimeout: 60_000, bodyTimeout: 60_000 });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 3 || (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET')) throw err;
    }
  }
}

/** Requests per second for `count` requests at `concurrency`. */
async function throughput(client: UndiciPool, count: number): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const res = await send(client, body(i));
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${text.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return (count / Number(process.hrtime.bigint() - started)) * 1e9;
}

/** One live subscriber of /requests/stream: counts the records it is sent. */
function subscribe(url: string): { count: () => number; close: () => void } {
  const controller = new AbortController();
  let events = 0;
  void (async () => {
    const res = await fetch(`${url}/requests/stream`, { signal: controller.signal });
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) events += (decoder.decode(chunk, { stream: true }).match(/event: request\n/g) ?? []).length;
  })().catch(() => {});
  return { count: () => events, close: () => controller.abort() };
}

/**
 * CPU milliseconds (user + system) the proxy process has used so far, from its own /metrics (process.cpuUsage(),
 * microseconds; /proc's clock ticks are 10 ms, too coarse for a round). The scrape costs both sides alike.
 */
async function cpuMsOf(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const m = /^llama_smart_proxy_process_cpu_seconds_total (\S+)$/m.exec(text);
  if (!m) throw new Error('no process_cpu_seconds_total in /metrics');
  return Number(m[1]) * 1000;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-bench-requests-'));
  const file = path.join(root, 'models', 'bench.gguf');
  mkdirSync(path.dirname(file), { recursive: true });
  await writeTinyModel(file, { seed: 11, layers: 2, embd: 64 });
  const tools = await ensureLlamaTools({ cacheDir: defaultCacheDir(), llamaServer: { backend: 'auto', autoBuild: true }, log: (l) => console.error(l) });
  const config = (requestLog: number, ports: [number, number]) => {
    const f = path.join(root, `bench-${requestLog}.yaml`);
    writeFileSync(f, JSON.stringify({ llamaServer: { binary: tools.server }, log: { level: 'warn', format: 'json' }, server: { requestLog }, pool: { portRange: ports }, models: { bench: { path: file, ctx: 512 * SLOTS, parallel: SLOTS } } }));
    return f;
  };
  const off = await spawnProxy(config(0, [44_100, 44_149]));
  const on = await spawnProxy(config(1000, [44_150, 44_199]));
  const clients: UndiciPool[] = [];
  try {
    for (const p of [off, on]) {
      const r = await fetch(`${p.url}/models/load`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"bench"}' });
      if (!r.ok) throw new Error(`load failed: ${await r.text()}`);
    }
    const cOff = new UndiciPool(off.url, { connections: CONCURRENCY + 1 });
    const cOn = new UndiciPool(on.url, { connections: CONCURRENCY + 1 });
    clients.push(cOff, cOn);
    // BENCH_NO_SUBSCRIBER=1: the ring alone, nobody on its feed (to tell the two costs apart).
    const sub = process.env.BENCH_NO_SUBSCRIBER === '1' ? { count: () => WARMUP + REQUESTS * ROUNDS, close: () => {} } : subscribe(on.url);
    // Warm-up: JIT (the side with records has more code to compile), sockets, llama-server's prompt cache.
    for (let i = 0; i < 3; i++) {
      await throughput(cOff, WARMUP / 3);
      await throughput(cOn, WARMUP / 3);
    }
    console.log(`llama-server ${tools.server}\ntiny llama (2 layers, embd 64), ${SLOTS} slots, max_tokens ${MAX_TOKENS}; ${REQUESTS} requests x ${ROUNDS} rounds at concurrency ${CONCURRENCY}`);
    console.log(`load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} cores)\n`);
    const rows: { round: number; off: number; on: number; ratio: number; cpuOff: number; cpuOn: number }[] = [];
    const urls = { off: off.url, on: on.url };
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const);
      const got: Record<'off' | 'on', number> = { off: 0, on: 0 };
      const cpu: Record<'off' | 'on', number> = { off: 0, on: 0 };
      for (const side of order) {
        const before = await cpuMsOf(urls[side]);
        got[side] = await throughput(side === 'off' ? cOff : cOn, REQUESTS);
        cpu[side] = ((await cpuMsOf(urls[side])) - before) / REQUESTS;
      }
      rows.push({ round, off: got.off, on: got.on, ratio: got.on / got.off, cpuOff: cpu.off, cpuOn: cpu.on });
      console.log(`round ${round}: ring off ${got.off.toFixed(1)} req/s (${cpu.off.toFixed(3)} CPU ms/req), ring on + 1 SSE subscriber ${got.on.toFixed(1)} req/s (${cpu.on.toFixed(3)} CPU ms/req), throughput ratio ${(got.on / got.off).toFixed(3)}`);
    }
    await new Promise((r) => setTimeout(r, 300));
    const expected = WARMUP + REQUESTS * ROUNDS;
    const streamed = sub.count();
    sub.close();
    const ratio = median(rows.map((r) => r.ratio));
    const cost = (1 - ratio) * 100;
    const totals = { off: rows.reduce((a, r) => a + r.off, 0) / rows.length, on: rows.reduce((a, r) => a + r.on, 0) / rows.length };
    console.log(`\nmean throughput: ring off ${totals.off.toFixed(1)} req/s, on ${totals.on.toFixed(1)} req/s`);
    console.log(`subscriber received ${streamed} of ${expected} records`);
    const cpuOff = rows.reduce((a, r) => a + r.cpuOff, 0) / rows.length;
    const cpuOn = rows.reduce((a, r) => a + r.cpuOn, 0) / rows.length;
    // Median of the rounds' ratios, like throughput: a round's two sides ran back to back.
    const cpuCost = (median(rows.map((r) => r.cpuOn / r.cpuOff)) - 1) * 100;
    console.log(`proxy CPU per request: ring off ${cpuOff.toFixed(3)} ms, on ${cpuOn.toFixed(3)} ms (means); median of round ratios ${cpuCost >= 0 ? '+' : ''}${cpuCost.toFixed(2)} %`);
    console.log(`cost of the ring and its SSE feed in throughput (median of round ratios): ${cost.toFixed(2)} % at concurrency ${CONCURRENCY}`);
    console.log(`goal (< 5 %): throughput ${cost < 5 ? 'met' : 'NOT met'}, proxy CPU ${cpuCost < 5 ? 'met' : 'NOT met'}${streamed === expected ? '' : ' (the subscriber missed records)'}`);
    if (values.json) writeFileSync(values.json, JSON.stringify({ rows, ratio, costPercent: cost, cpuOff, cpuOn, cpuCostPercent: cpuCost, streamed, expected, totals }, null, 2));
    if (streamed !== expected) process.exitCode = 1;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([stopProxy(off.child), stopProxy(on.child)]);
  }
}

void main();
