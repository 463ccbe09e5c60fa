/**
 * bench:proxy — what the proxy costs. One tiny model, one llama-server instance (the proxy's own), measured
 * directly on its port and through the proxy, in alternating rounds so drift hits both sides alike:
 *   - short non-streamed completions at concurrency 1 and 16: latency p50/p99 and throughput;
 *   - time to first token when streaming.
 * The proxy runs as its own process (`serve`), as users run it. Timing is hand-rolled with process.hrtime and undici (autocannon's histogram rounds to whole milliseconds,
 * too coarse for a sub-millisecond difference).
 *
 * npm run bench:proxy [-- --requests 400 --rounds 3 --layers 2 --embd 64 --max-tokens 8]
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool as UndiciPool } from 'undici';
import { defaultCacheDir } from '../src/config/index.js';
import { writeTinyModel } from '../src/gguf/index.js';
import { ensureLlamaTools } from '../src/llamacpp/index.js';
import { instanceKey, spawnProxy } from './serve-process.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '3' },
    'max-tokens': { type: 'string', default: '8' },
    // A heavier generated model (more work per request on llama-server's side), e.g. --layers 8 --embd 512.
    layers: { type: 'string', default: '2' },
    embd: { type: 'string', default: '64' },
  },
});
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);
const MAX_TOKENS = Number(values['max-tokens']);
const SLOTS = 16;

interface Sample {
  latencies: number[];
  wallMs: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Headers each client sends: the instance's own API key for the direct side (the proxy adds it itself). */
const extraHeaders = new WeakMap<UndiciPool, Record<string, string>>();
const headersOf = (client: UndiciPool) => ({ 'content-type': 'application/json', ...extraHeaders.get(client) });

const body = (i: number, stream = false) =>
  JSON.stringify({ model: 'bench', prompt: `Request ${i % 7}:`, max_tokens: MAX_TOKENS, temperature: 0, stream, cache_prompt: true });

async function completions(client: UndiciPool, count: number, concurrency: number): Promise<Sample> {
  const latencies: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  async function worker(): Promise<void> {
    while (next < count) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      const res = await client.request({ method: 'POST', path: '/v1/completions', headers: headersOf(client), body: body(i) });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, wallMs: Number(process.hrtime.bigint() - started) / 1e6 };
}

async function firstTokens(client: UndiciPool, count: number): Promise<Sample> {
  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const res = await client.request({ method: 'POST', path: '/v1/completions', headers: headersOf(client), body: body(i, true) });
    let first = 0;
    for await (const chunk of res.body) {
      if (!first && chunk.toString().includes('data: {')) first = Number(process.hrtime.bigint() - t0) / 1e6;
    }
    latencies.push(first);
  }
  return { latencies, wallMs: Number(process.hrtime.bigint() - started) / 1e6 };
}

function merge(samples: Sample[]): { sorted: number[]; rps: number } {
  const all = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const wall = samples.reduce((a, s) => a + s.wallMs, 0);
  return { sorted: all, rps: (all.length / wall) * 1000 };
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
      log: { level: 'warn' },
      models: { bench: { path: file, ctx: 512 * SLOTS, parallel: SLOTS } },
    }),
  );
  const proxy = await spawnProxy(configFile);
  try {
    const load = await fetch(`${proxy.url}/models/load`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"bench"}' });
    const loaded = (await load.json()) as { instance: { port: number; pid: number } };
    const direct = new UndiciPool(`http://127.0.0.1:${loaded.instance.port}`, { connections: SLOTS + 1 });
    // The instance answers only its API key, which its environment holds (readable by the same user only).
    extraHeaders.set(direct, { authorization: `Bearer ${instanceKey(loaded.instance.pid)}` });
    const proxied = new UndiciPool(proxy.url, { connections: SLOTS + 1 });
    const clients = { direct, proxy: proxied } as const;

    console.log(`llama-server ${tools.server}\nmodel: tiny llama (${values.layers} layers, embd ${values.embd}), ${SLOTS} slots; ${REQUESTS} requests x ${ROUNDS} rounds per cell, max_tokens ${MAX_TOKENS}\n`);
    // Warm up both paths (connections, prompt cache).
    await completions(direct, 50, 4);
    await completions(proxied, 50, 4);

    const results: Record<string, Record<'direct' | 'proxy', Sample[]>> = {
      c1: { direct: [], proxy: [] },
      c16: { direct: [], proxy: [] },
      ttft: { direct: [], proxy: [] },
    };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (['direct', 'proxy'] as const) : (['proxy', 'direct'] as const);
      for (const side of order) results.c1![side].push(await completions(clients[side], REQUESTS, 1));
      for (const side of order) results.c16![side].push(await completions(clients[side], REQUESTS * 2, 16));
      for (const side of order) results.ttft![side].push(await firstTokens(clients[side], Math.max(50, REQUESTS / 4)));
    }

    const fmt = (n: number) => n.toFixed(3).padStart(9);
    console.log('cell                   side      p50 ms    p99 ms    req/s');
    const summary: string[] = [];
    for (const [cell, label] of [['c1', 'completions c=1'], ['c16', 'completions c=16'], ['ttft', 'first token (stream)']] as const) {
      const d = merge(results[cell]!.direct);
      const p = merge(results[cell]!.proxy);
      for (const [side, m] of [['direct', d], ['proxy', p]] as const) {
        console.log(`${label.padEnd(22)} ${side.padEnd(7)} ${fmt(percentile(m.sorted, 50))} ${fmt(percentile(m.sorted, 99))} ${m.rps.toFixed(1).padStart(8)}`);
      }
      const addedP50 = percentile(p.sorted, 50) - percentile(d.sorted, 50);
      const addedP99 = percentile(p.sorted, 99) - percentile(d.sorted, 99);
      summary.push(
        `${label}: added p50 ${addedP50.toFixed(3)} ms, added p99 ${addedP99.toFixed(3)} ms, p50 ratio ${(percentile(p.sorted, 50) / percentile(d.sorted, 50)).toFixed(3)}, throughput ratio ${(p.rps / d.rps).toFixed(3)}`,
      );
    }
    console.log(`\n${summary.join('\n')}`);
    console.log(`goal: added p50 < 1 ms; throughput at c=16 >= 0.95 of direct`);
    await direct.close();
    await proxied.close();
  } finally {
    proxy.child.kill('SIGTERM');
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
