/**
 * bench:agents — what a chain of agents costs a request.
 *
 * 1. In process, exactly the work the proxy adds (no HTTP, no model), p50 over many iterations:
 *    - every request, with agents loaded but none named: the slash check (`registry.plan` -> undefined);
 *    - a chain of 3 no-op agents (onRequest + onResponse), sync and async: parse commands, run the request
 *      hooks, serialize the body, parse the model's JSON answer, run the response hooks, serialize it;
 *    - a stream through 3 no-op chunk agents: SSE parsing, 3 stages, serialization, per event.
 * 2. End to end against `serve` (own process) and a tiny model: the same prompt with and without
 *    "/noop1 /noop2 /noop3 " (not streamed), and with and without "/chunk1 /chunk2 /chunk3 " (streamed), the
 *    two cells of each pair interleaved request by request; p50 of each and the difference.
 * Goal: added p50 of the 3-agent chain < 0.2 ms.
 *
 * npm run bench:agents [-- --iterations 20000 --requests 300 --rounds 3 --skip-e2e]
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Pool as UndiciPool } from 'undici';
import { AgentRegistry, AgentSession, loadAgents, parseSseStream, serializeSseStream, type JsonObject } from '../src/agents/index.js';
import { defaultCacheDir } from '../src/config/index.js';
import { writeTinyModel } from '../src/gguf/index.js';
import { ensureLlamaTools } from '../src/llamacpp/index.js';
import { spawnProxy } from './serve-process.js';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '20000' },
    requests: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '3' },
    'skip-e2e': { type: 'boolean', default: false },
  },
});
const ITERATIONS = Number(values.iterations);
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);

/** A small seeded PRNG (reproducible shuffles). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function stats(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

function writePlugins(): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-bench-agents-'));
  const plugin = (name: string, code: string) => {
    mkdirSync(path.join(root, name));
    writeFileSync(path.join(root, name, 'config.json'), JSON.stringify({ description: `no-op ${name}`, enabled: true }));
    writeFileSync(path.join(root, name, 'index.mjs'), code);
  };
  for (const i of [1, 2, 3]) {
    plugin(`noop${i}`, 'export default { onRequest: (r) => r, onResponse: (r) => r };\n');
    plugin(`async${i}`, 'export default { onRequest: async (r) => r, onResponse: async (r) => r };\n');
    plugin(`chunk${i}`, 'export default { onStreamChunk: (c) => c };\n');
  }
  return root;
}

const history = [
  { role: 'system', content: 'You are a helpful assistant. Answer briefly and precisely.' },
  { role: 'user', content: 'What is the capital of France?' },
  { role: 'assistant', content: 'Paris.' },
];
const request = (prefix: string): JsonObject => ({
  model: 'bench',
  messages: [...history, { role: 'user', content: `${prefix}And of Italy? Explain how you know, in two sentences.` }],
  max_tokens: 64,
  temperature: 0,
});
const upstreamAnswer = JSON.stringify({
  choices: [{ finish_reason: 'stop', index: 0, message: { role: 'assistant', content: 'Rome. It has been the capital since 1871 and is the seat of the government.' } }],
  created: 1735689600,
  model: 'bench',
  system_fingerprint: 'b1-80fb11a',
  object: 'chat.completion',
  usage: { completion_tokens: 21, prompt_tokens: 58, total_tokens: 79 },
  id: 'chatcmpl-0123456789abcdef',
  timings: { prompt_n: 58, prompt_ms: 1.2, predicted_n: 21, predicted_ms: 3.4 },
});
const sseBody = (events: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let i = 0; i < events; i++) {
    out.push(Buffer.from(`data: ${JSON.stringify({ choices: [{ finish_reason: null, index: 0, delta: { content: 'tok' } }], created: 1735689600, id: 'chatcmpl-x', model: 'bench', system_fingerprint: 'b1', object: 'chat.completion.chunk' })}\n\n`));
  }
  out.push(Buffer.from('data: [DONE]\n\n'));
  return out;
};

async function inProcess(root: string): Promise<void> {
  const log = pino({ level: 'silent' });
  const registry = new AgentRegistry(await loadAgents({ dirs: [root], timeoutMs: 60_000, log }), {}, log);
  const client = new AbortController();
  const sessionFor = (chain: ReturnType<AgentRegistry['plan']>) =>
    new AgentSession(chain!.chain, {
      requestId: 'bench',
      model: 'bench',
      endpoint: 'chat/completions',
      stream: false,
      log,
      signal: client.signal,
      complete: async () => ({}),
      instance: () => undefined,
    });

  // What the proxy does on the agents path, minus the network.
  async function chain(prefix: string): Promise<void> {
    const body = request(prefix);
    const plan = registry.plan('chat/completions', body, 'bench');
    const session = sessionFor(plan);
    const outcome = await session.runRequest(plan!.body);
    JSON.stringify(outcome.body);
    const response = await session.runResponse(JSON.parse(upstreamAnswer) as JsonObject);
    JSON.stringify(response);
    session.finish();
  }

  async function measure(name: string, op: () => unknown | Promise<unknown>, per = 1): Promise<{ p50: number; p99: number }> {
    for (let i = 0; i < Math.min(2000, ITERATIONS / 10); i++) await op();
    const samples: number[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      const t0 = process.hrtime.bigint();
      await op();
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6 / per);
    }
    const s = stats(samples);
    console.log(`${name.padEnd(58)} p50 ${(s.p50 * 1000).toFixed(2).padStart(8)} µs   p99 ${(s.p99 * 1000).toFixed(2).padStart(8)} µs`);
    return s;
  }

  console.log(`in process, ${ITERATIONS} iterations each (the request body is built in every iteration, also for the baseline)`);
  const plain = await measure('build body only (reference)', () => request(''));
  const check = await measure('no agent named: build body + slash check (every request)', () => registry.plan('chat/completions', request(''), 'bench'));
  const sync = await measure('chain of 3 no-op agents (sync hooks), whole path', () => chain('/noop1 /noop2 /noop3 '));
  const asyncChain = await measure('chain of 3 no-op agents (async hooks), whole path', () => chain('/async1 /async2 /async3 '));

  const events = 100;
  const parts = sseBody(events);
  const streamSession = () => {
    const plan = registry.plan('chat/completions', request('/chunk1 /chunk2 /chunk3 '), 'bench');
    return new AgentSession(plan!.chain, { ...sessionOptions(log, client.signal), stream: true });
  };
  const streamed = await measure(`stream through 3 no-op chunk agents, per event (${events} events)`, async () => {
    const session = streamSession();
    await session.runRequest({});
    async function* source() {
      yield* parts;
    }
    for await (const _ of serializeSseStream(session.streamStages(parseSseStream(source())))) {
      // drain
    }
    session.finish();
  }, events);

  console.log(
    `\nadded by the slash check on a request naming no agent: p50 ${((check.p50 - plain.p50) * 1000).toFixed(2)} µs` +
      `\nadded by a chain of 3 no-op agents: p50 ${((sync.p50 - plain.p50) * 1000).toFixed(2)} µs sync, ${((asyncChain.p50 - plain.p50) * 1000).toFixed(2)} µs async (goal < 200 µs)` +
      `\nper streamed event through 3 chunk agents: p50 ${(streamed.p50 * 1000).toFixed(2)} µs`,
  );
}

function sessionOptions(log: pino.Logger, signal: AbortSignal) {
  return { requestId: 'bench', model: 'bench', endpoint: 'chat/completions' as const, stream: false, log, signal, complete: async () => ({}), instance: () => undefined };
}

async function endToEnd(root: string): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-bench-agents-e2e-'));
  const file = path.join(dir, 'bench.gguf');
  await writeTinyModel(file, { seed: 11 });
  const tools = await ensureLlamaTools({ cacheDir: defaultCacheDir(), llamaServer: { backend: 'auto', autoBuild: true }, log: (l) => console.error(l) });
  const configFile = path.join(dir, 'bench.yaml');
  writeFileSync(configFile, JSON.stringify({ llamaServer: { binary: tools.server }, log: { level: 'warn' }, models: { bench: { path: file, ctx: 4096, parallel: 2 } }, agents: { dir: root, bundled: false } }));
  const proxy = await spawnProxy(configFile);
  const client = new UndiciPool(proxy.url, { connections: 2 });
  // Should a request still meet a closed llama-server connection (502 "other side closed"; forward() retries
  // those once), it is sent again, its time left out, and the count printed.
  const upstreamClosed: Record<string, number> = {};
  const send = async (prefix: string, stream: boolean): Promise<number> => {
    const body = JSON.stringify({ ...request(prefix), max_tokens: 8, cache_prompt: true, stream });
    for (;;) {
      const t0 = process.hrtime.bigint();
      const res = await client.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body });
      const text = await res.body.text();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (res.statusCode === 200 && !text.includes('"upstream_error"')) return ms;
      if (!text.includes('other side closed')) throw new Error(`status ${res.statusCode}: ${text}`);
      const key = `${prefix ? 'agents' : 'plain'}${stream ? ', streamed' : ''}`;
      upstreamClosed[key] = (upstreamClosed[key] ?? 0) + 1;
    }
  };
  try {
    for (let i = 0; i < 50; i++) {
      await send('', false);
      await send('/noop1 /noop2 /noop3 ', false);
      await send('/chunk1 /chunk2 /chunk3 ', true);
    }
    const cells = {
      'plain, not streamed': { prefix: '', stream: false },
      '3 no-op agents, not streamed': { prefix: '/noop1 /noop2 /noop3 ', stream: false },
      'plain, streamed (8 tokens)': { prefix: '', stream: true },
      '3 no-op chunk agents, streamed (8 tokens)': { prefix: '/chunk1 /chunk2 /chunk3 ', stream: true },
    } as const;
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cells).map((k) => [k, []]));
    // Two phases, not streamed then streamed, each interleaving its two cells request by request in a shuffled
    // order, so that load from elsewhere hits both alike. Kept apart because llama-server closes its connection
    // after a streamed answer: whatever follows a stream pays for a new connection, which must not fall on one
    // cell more than on the other.
    const names = Object.keys(cells) as (keyof typeof cells)[];
    const random = mulberry32(7);
    for (const phase of [names.slice(0, 2), names.slice(2)]) {
      for (let i = 0; i < REQUESTS * ROUNDS; i++) {
        const order = random() < 0.5 ? phase : [...phase].reverse();
        for (const name of order) samples[name]!.push(await send(cells[name].prefix, cells[name].stream));
      }
    }
    console.log(`\nend to end through \`serve\` (tiny model, max_tokens 8, ${REQUESTS * ROUNDS} requests per cell, interleaved, c=1)`);
    const p50: Record<string, number> = {};
    for (const [name, s] of Object.entries(samples)) {
      const st = stats(s);
      p50[name] = st.p50;
      console.log(`${name.padEnd(44)} p50 ${st.p50.toFixed(3).padStart(8)} ms   p99 ${st.p99.toFixed(3).padStart(8)} ms`);
    }
    console.log(
      `added p50, 3 no-op agents: ${(p50['3 no-op agents, not streamed']! - p50['plain, not streamed']!).toFixed(3)} ms not streamed, ` +
        `${(p50['3 no-op chunk agents, streamed (8 tokens)']! - p50['plain, streamed (8 tokens)']!).toFixed(3)} ms streamed (goal < 0.2 ms)`,
    );
    if (Object.keys(upstreamClosed).length) console.log(`requests that met a closed upstream connection (sent again, not timed): ${JSON.stringify(upstreamClosed)}`);
  } finally {
    await client.close();
    proxy.child.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const root = writePlugins();
  await inProcess(root);
  if (!values['skip-e2e']) await endToEnd(root);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
