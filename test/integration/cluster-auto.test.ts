/**
 * `:auto` in a cluster: two proxies on loopback, the entry with a small simulated GPU and a peer with a big one,
 * and a fake Hub. `owner/repo` asked at the entry gets the variant that fits the peer's GPU (the entry's is too
 * small for it), the reason names the peer, and the cluster planner sends the model there; with the peer down
 * the entry chooses for itself.
 *
 * Served end to end with three runnable tiny variants (6, 10, 22 MiB), as hub-auto.test.ts serves its own; and
 * with sparse replicas of Llama-3-8B (real headers) on 8 and 48 GiB GPUs, where only the choice is checked: the
 * entry's model cache is too small for any variant, so the download is refused before a byte of weights moves.
 */
import { Writable } from 'node:stream';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, MODEL_INFO_READ_OPTIONS, modelInfo } from '../../src/estimate/index.js';
import { readGgufModelHeaderSync, writeSparseReplica, type ReplicaQuant } from '../../src/gguf/index.js';
import { compareQuantQuality } from '../../src/models/quant-quality.js';
import { estimateSettings } from '../../src/placement/model-settings.js';
import { FakeHub, sizedTinyVariants } from '../helpers/fake-hub.js';
import { llamaTools } from '../helpers/llama.js';
import { freePort } from '../helpers/llama-process.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const MIB = 1024 * 1024;
const GiB = 1024 * MIB;
const TOKEN = 'cluster-auto-token-0123456789';
const NODE_HEADER = 'x-llama-smart-proxy-node';

/** Instance ports per node, apart from other test files' (VITEST_POOL_ID) and from each other. */
function instancePorts(node: number): [number, number] {
  const base = 50_500 + (Number(process.env.VITEST_POOL_ID ?? 0) % 10) * 40 + node * 20;
  return [base, base + 19];
}

/** What one GPU needs for `file` at `ctx` with the 1 MiB overhead the nodes are configured with. */
function needs(file: string, ctx: number): number {
  const info = modelInfo(readGgufModelHeaderSync(file, MODEL_INFO_READ_OPTIONS));
  return estimateMemory(info, estimateSettings(ctx, 1, []), { devices: [{ name: 'CUDA0', kind: 'cuda', overheadBytes: MIB }] }).devices[0]!.totalBytes;
}

interface Logged {
  msg: string;
  [k: string]: unknown;
}

/** A node's log lines (pino's JSON), kept in memory. */
function capture(): { logger: pino.Logger; lines: Logged[] } {
  const lines: Logged[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Logged);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

const choices = (lines: Logged[]) => lines.filter((l) => l.msg === 'chose a quantization');

/** Two nodes, `small` (the entry) and `big`, each seeing the other; `hub` extra settings per node. */
async function startPair(opts: { hubUrl: string; ctx: number; smallMiB: number; bigMiB: number; hub?: Record<string, unknown>; offset: number }) {
  const names = ['small', 'big'] as const;
  const ports = { small: await freePort(), big: await freePort() };
  const url = (n: (typeof names)[number]) => `http://127.0.0.1:${ports[n]}`;
  const nodes = {} as Record<(typeof names)[number], { t: TestProxy; lines: Logged[] }>;
  for (const [i, name] of names.entries()) {
    const { root } = await modelsFolder([]);
    const { logger, lines } = capture();
    const t = await startTestProxy(
      tools.server!,
      root,
      {
        server: { host: '127.0.0.1', port: ports[name] },
        pool: { size: 2, portRange: instancePorts(opts.offset + i) },
        hub: { endpoint: opts.hubUrl, retries: 0, ...(name === 'small' ? opts.hub : {}) },
        modelDefaults: { ctx: opts.ctx },
        gpu: { source: 'simulated', forceSimulated: true, simulated: [{ name: `Sim ${name}`, memoryMiB: name === 'small' ? opts.smallMiB : opts.bigMiB }], reserveMiB: 0, overheadMiB: 1 },
        cluster: { node: `node-${name}`, peers: [url(name === 'small' ? 'big' : 'small')], token: TOKEN, pollInterval: 0.5, downAfter: 2 },
      },
      { logger },
    );
    nodes[name] = { t, lines };
  }
  return { nodes, url };
}

/** Whether `entry`'s /health comes to show `node` as reachable (or not) within 10 s. */
async function sees(entry: string, node: string, reachable: boolean): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const h = (await (await fetch(`${entry}/health`)).json()) as { cluster?: { nodes: { name: string; reachable: boolean }[] } };
    if (h.cluster?.nodes.some((n) => n.name === node && n.reachable === reachable)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const chat = (url: string, model: string) => postJson(`${url}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
const table: string[] = [];

describe.skipIf(!tools.server)(`:auto in a cluster${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let fake: FakeHub;
  const hfCache = process.env.HF_HUB_CACHE;

  beforeAll(async () => {
    fake = await FakeHub.start();
    // No real Hugging Face cache: every node's files come from the fake Hub into its own cache.
    process.env.HF_HUB_CACHE = path.join(os.tmpdir(), 'lsp-cluster-auto-no-cache');
  });
  afterAll(async () => {
    await fake?.close();
    if (hfCache === undefined) delete process.env.HF_HUB_CACHE;
    else process.env.HF_HUB_CACHE = hfCache;
    if (table.length) process.stdout.write(`\n:auto in a cluster\n| model | entry GPU | peer GPU | peer up: chosen (node) | peer down: chosen (node) |\n|---|---|---|---|---|\n${table.join('\n')}\n`);
  });

  describe('served end to end (tiny variants)', () => {
    const REPO = 'acme/sized-GGUF';
    const CTX = 512;
    let pair: Awaited<ReturnType<typeof startPair>>;
    let need: Record<string, number>;
    let smallMiB = 0;
    let bigMiB = 0;

    beforeAll(async () => {
      const variants = await sizedTinyVariants(61, 'sized');
      fake.addRepo(REPO, { files: variants.map((v) => ({ path: v.path, data: v.data })) });
      const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-cluster-auto-'));
      need = {};
      for (const v of variants) {
        const file = path.join(dir, v.path);
        writeFileSync(file, v.data);
        need[v.tag] = needs(file, CTX);
      }
      expect(need.Q4_K_M!).toBeLessThan(need.Q8_0!);
      expect(need.Q8_0!).toBeLessThan(need.F16!);
      // The entry's GPU holds Q4_K_M only; the peer's holds F16.
      smallMiB = Math.floor((need.Q4_K_M! + need.Q8_0!) / 2 / MIB);
      bigMiB = Math.ceil(need.F16! / MIB) + 4;
      pair = await startPair({ hubUrl: fake.hubUrl, ctx: CTX, smallMiB, bigMiB, offset: 0 });
      expect(await sees(pair.url('small'), 'node-big', true)).toBe(true);
    }, 120_000);
    afterAll(async () => {
      await pair?.nodes.small.t.proxy.close();
      await pair?.nodes.big.t.proxy.close().catch(() => {});
    });

    it("picks the variant that fits the peer's big GPU, and the peer serves it; with the peer down, the entry's", async () => {
      const { small, big } = pair.nodes;
      const r = await chat(pair.url('small'), REPO);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.json.model).toBe(`${REPO}:F16`);
      expect(r.headers.get(NODE_HEADER)).toBe('node-big');
      const [up] = choices(small.lines);
      expect(up).toMatchObject({ repo: REPO, chosen: 'F16', tier: 'one-gpu', node: 'node-big' });
      expect(String(up!.reason)).toMatch(/^F16: the best quantization that fits one GPU \(.* on GPU 0 of node node-big; node node-small: GPU 0 .* free; node node-big: GPU 0 .* free\)$/);
      // The peer ran the file chosen (named `owner/repo:F16` when forwarded): it did not choose again.
      expect(choices(big.lines)).toEqual([]);
      const health = (await (await fetch(`${pair.url('big')}/health`)).json()) as { servers: { model_id: string }[] };
      expect(health.servers.map((s) => s.model_id)).toEqual([`${REPO}:F16`]);
      // The same choice for the next request (remembered for this set of nodes): the same instance.
      const again = await chat(pair.url('small'), REPO);
      expect(again.headers.get(NODE_HEADER)).toBe('node-big');
      expect(choices(small.lines)).toHaveLength(1);

      await big.t.proxy.close();
      expect(await sees(pair.url('small'), 'node-big', false)).toBe(true);
      const alone = await chat(pair.url('small'), REPO);
      expect(alone.status, JSON.stringify(alone.json)).toBe(200);
      expect(alone.json.model).toBe(`${REPO}:Q4_K_M`);
      expect(alone.headers.get(NODE_HEADER)).toBe('node-small');
      const down = choices(small.lines)[1];
      expect(down).toMatchObject({ chosen: 'Q4_K_M', tier: 'one-gpu', node: 'node-small' });
      expect(String(down!.reason)).toContain('on GPU 0 of node node-small; node node-small: GPU 0');
      expect(String(down!.reason)).not.toContain('node-big');
      table.push(`| tiny ctx ${CTX} (Q4_K_M ${(need.Q4_K_M! / MIB).toFixed(1)}, Q8_0 ${(need.Q8_0! / MIB).toFixed(1)}, F16 ${(need.F16! / MIB).toFixed(1)} MiB) | ${smallMiB} MiB | ${bigMiB} MiB | F16 (node-big) | Q4_K_M (node-small) |`);
    }, 180_000);
  });

  describe('Llama-3-8B sparse replicas on 8 and 48 GiB GPUs (the choice only)', () => {
    const REPO = 'acme/Llama-3-8B-cluster-GGUF';
    const CTX = 8192;
    const QUANTS: ReplicaQuant[] = ['Q4_K_M', 'Q6_K', 'Q8_0', 'F16'];
    const fileName = (q: ReplicaQuant) => `Llama-3-8B-Instruct-${q}.gguf`;
    let pair: Awaited<ReturnType<typeof startPair>>;
    const need = new Map<ReplicaQuant, number>();

    beforeAll(async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-cluster-auto-8b-'));
      const files = [];
      for (const [i, q] of QUANTS.entries()) {
        const file = path.join(dir, fileName(q));
        await writeSparseReplica(file, 'llama-3-8b', q);
        need.set(q, needs(file, CTX));
        files.push({ path: fileName(q), file, sha256: String(i + 1).repeat(64) });
      }
      fake.addRepo(REPO, { files });
      // The entry's cache holds no variant: its download is refused (507) once the choice is made.
      pair = await startPair({ hubUrl: fake.hubUrl, ctx: CTX, smallMiB: 8 * 1024, bigMiB: 48 * 1024, hub: { cacheLimitGiB: 0.25 }, offset: 2 });
      expect(await sees(pair.url('small'), 'node-big', true)).toBe(true);
    }, 120_000);
    afterAll(async () => {
      await pair?.nodes.small.t.proxy.close();
      await pair?.nodes.big.t.proxy.close().catch(() => {});
    });

    it("chooses F16 for the peer's 48 GiB GPU, and for the entry's 8 GiB once the peer is down, reading headers only", async () => {
      const { small, big } = pair.nodes;
      const best = (gib: number) => [...QUANTS].sort((a, b) => compareQuantQuality(a, b)).find((q) => need.get(q)! <= gib * GiB);
      const before = fake.log.length;
      const r = await chat(pair.url('small'), REPO);
      expect(r.status, JSON.stringify(r.json)).toBe(507);
      expect(r.json.error.message).toContain(`${REPO}:${fileName(best(48)!)} needs`);
      const [up] = choices(small.lines);
      expect(up).toMatchObject({ chosen: best(48), tier: 'one-gpu', node: 'node-big' });
      expect(String(up!.reason)).toContain('on GPU 0 of node node-big');

      await big.t.proxy.close();
      expect(await sees(pair.url('small'), 'node-big', false)).toBe(true);
      const alone = await chat(pair.url('small'), REPO);
      expect(alone.status).toBe(507);
      const down = choices(small.lines)[1];
      expect(best(8)).not.toBe(best(48));
      expect(down).toMatchObject({ chosen: best(8), tier: 'one-gpu', node: 'node-small' });
      // Range reads only: no weights were downloaded.
      const cdn = fake.log.slice(before).filter((x) => x.server === 'cdn' && x.method === 'GET');
      expect(cdn.length).toBeGreaterThan(0);
      for (const x of cdn) expect(x.range, x.path).toMatch(/^bytes=\d+-\d+$/);
      const gib = (q: ReplicaQuant) => (need.get(q)! / GiB).toFixed(2);
      table.push(`| Llama-3-8B ctx ${CTX} (${QUANTS.map((q) => `${q} ${gib(q)}`).join(', ')} GiB) | 8 GiB | 48 GiB | ${String(up!.chosen)} (node-big) | ${String(down!.chosen)} (node-small) |`);
    }, 120_000);
  });
});
