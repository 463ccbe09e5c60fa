/**
 * `:auto` against a local imitation of the Hub: a repo holding seven quantizations of Llama-3-8B (sparse
 * replicas: real headers, the data a hole), GPUs simulated at 8, 16 and 48 GiB. The variant chosen must be the
 * best the estimator (run here on the files themselves) says fits one GPU, and only headers may be read.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { QuantizationPicker, type QuantizationRecord } from '../../src/api/quantization-picker.js';
import { pullCommand } from '../../src/cli/pull.js';
import { buildConfig } from '../../src/config/index.js';
import { estimateMemory, MODEL_INFO_READ_OPTIONS, modelInfo } from '../../src/estimate/index.js';
import { readGgufHeaderSync, readGgufModelHeaderSync, writeSparseReplica, type ReplicaQuant } from '../../src/gguf/index.js';
import { GpuMonitor, SimulatedSource } from '../../src/gpu/index.js';
import { compareQuantQuality } from '../../src/models/quant-quality.js';
import { estimateSettings } from '../../src/placement/model-settings.js';
import { PlacementService, type Ledger } from '../../src/placement/service.js';
import type { RunningInstance } from '../../src/placement/types.js';
import { writeSplitReplica } from '../unit/estimate-gguf-writers.js';
import { FakeHub, hubClients, sizedTinyVariants, tinyModelBytes } from '../helpers/fake-hub.js';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const REPO = 'acme/Llama-3-8B-Instruct-GGUF';
const SPLIT_REPO = 'acme/Llama-3-8B-split-GGUF';
const QUANTS: ReplicaQuant[] = ['Q2_K', 'Q3_K_M', 'Q4_K_M', 'Q5_K_M', 'Q6_K', 'Q8_0', 'F16'];
const SETTINGS = { ctx: 8192, parallel: 1, args: [] as string[] };
const HOST = { total: () => 128 * GiB, available: () => 100 * GiB };

let hub: FakeHub;
const { client, closeAll } = hubClients(() => hub);
const files = new Map<ReplicaQuant, string>();
const fileName = (q: ReplicaQuant) => `Llama-3-8B-Instruct-${q}.gguf`;

beforeAll(async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-hub-auto-'));
  for (const q of QUANTS) {
    const file = path.join(dir, fileName(q));
    await writeSparseReplica(file, 'llama-3-8b', q);
    files.set(q, file);
  }
  // The same F16 as a split set in a folder (the way big repos ship it), beside a single Q8_0 file.
  const parts = await writeSplitReplica(path.join(dir, 'Llama-3-8B-Instruct-F16'), 'llama-3-8b', 'F16', 2);
  hub = await FakeHub.start({ pageSize: 50 });
  hub.addRepo(SPLIT_REPO, {
    files: [
      ...parts.map((p, i) => ({ path: `F16/${path.basename(p)}`, file: p, sha256: `a${i}`.repeat(32) })),
      { path: fileName('Q8_0'), file: path.join(dir, fileName('Q8_0')), sha256: 'c'.repeat(64) },
    ],
  });
  hub.addRepo(REPO, {
    files: [
      { path: 'README.md', data: Buffer.from('# replicas\n'), lfs: false },
      ...QUANTS.map((q, i) => ({ path: fileName(q), file: files.get(q)!, sha256: String(i + 1).repeat(64) })),
    ],
  });
});
afterAll(async () => {
  await closeAll();
  await hub?.close();
});

/** What the estimator says each variant needs on one GPU, read from the files on disk (not through the Hub). */
function needs(q: ReplicaQuant): number {
  const info = modelInfo(readGgufModelHeaderSync(files.get(q)!, MODEL_INFO_READ_OPTIONS));
  return estimateMemory(info, estimateSettings(SETTINGS.ctx, SETTINGS.parallel, SETTINGS.args), { devices: [{ name: 'CUDA0', kind: 'cuda' }] }).devices[0]!.totalBytes;
}

function placer(gpuGiB: number[], charged: (index: number) => number = () => 0): PlacementService {
  const config = buildConfig({ gpu: { source: 'simulated', simulated: gpuGiB.map((g, i) => ({ name: `sim${i}`, memoryMiB: g * 1024 })) } }, null);
  const source = new SimulatedSource(config.gpu.simulated);
  source.charged = charged;
  return new PlacementService(new GpuMonitor(source, 0), config.gpu, () => {}, HOST);
}

async function pick(gpuGiB: number[], running: RunningInstance[] = [], repo = REPO): Promise<{ record: QuantizationRecord; bytesByBlob: Map<string, number>; before: number }> {
  const before = hub.log.length;
  const charged = (index: number) => running.reduce((s, r) => s + (r.gpuBytes.get(index) ?? 0), 0);
  const ledger = (): Ledger => ({ running, loading: new Map() });
  const picker = new QuantizationPicker({ hub: client(), placer: placer(gpuGiB, charged), ledger });
  const record = await picker.pick(repo, SETTINGS);
  expect(record).toBeDefined();
  const bytesByBlob = new Map<string, number>();
  for (const r of hub.log.slice(before).filter((x) => x.server === 'cdn')) bytesByBlob.set(r.path, (bytesByBlob.get(r.path) ?? 0) + r.bytes);
  return { record: record!, bytesByBlob, before };
}

const RESERVE = 512 * MiB;
const ranked = () => [...QUANTS].sort((a, b) => compareQuantQuality(a, b));
const table: string[] = [];

describe(':auto quantization on a fake Hub repo', () => {
  it.each([8, 16, 48])('a %i GiB GPU gets the best variant the estimator says fits', async (gib) => {
    const want = ranked().find((q) => needs(q) <= gib * GiB - RESERVE);
    expect(want, `something fits ${gib} GiB`).toBeDefined();
    const { record, bytesByBlob, before } = await pick([gib]);
    expect(record.chosen).toBe(want);
    expect(record.tier).toBe('one-gpu');
    expect(record.file).toBe(fileName(want!));
    const chosen = record.candidates.find((c) => c.variant === want)!;
    expect(chosen.bytes).toBe(needs(want!));
    // Every better variant was estimated and does not fit.
    for (const c of record.candidates.slice(0, record.candidates.indexOf(chosen))) {
      expect(c.estimated, c.variant).toBe(true);
      expect(c.fitsOneGpu, c.variant).toBe(false);
      expect(c.bytes, c.variant).toBe(needs(c.variant as ReplicaQuant));
    }

    // Only headers: every CDN read is a range read, none beyond the first probe (8 MiB), no GET without a range.
    const cdn = hub.log.slice(before).filter((r) => r.server === 'cdn' && r.method === 'GET');
    expect(cdn.length).toBeGreaterThan(0);
    for (const r of cdn) expect(r.range, r.path).toMatch(/^bytes=\d+-\d+$/);
    const read = [...bytesByBlob.values()].reduce((a, b) => a + b, 0);
    for (const [blob, bytes] of bytesByBlob) expect(bytes, blob).toBeLessThanOrEqual(8 * MiB);
    // Only the variants reported as estimated were read.
    expect(bytesByBlob.size).toBe(record.candidates.filter((c) => c.estimated).length);
    const smallest = Math.min(...QUANTS.map((q) => hub.file(REPO, fileName(q)).size));
    expect(read).toBeLessThan(smallest / 50);
    table.push(`| ${gib} GiB | ${record.chosen} | ${(chosen.bytes! / GiB).toFixed(2)} GiB | ${(hub.file(REPO, record.file).size / GiB).toFixed(2)} GiB | ${bytesByBlob.size} | ${(read / MiB).toFixed(1)} MiB | ${record.candidates.map((c) => `${c.variant} ${c.bytes !== undefined ? (c.bytes / GiB).toFixed(2) : '-'}`).join(', ')} |`);
  });

  it('the three GPU sizes get three different variants (the choice follows the GPU)', () => {
    process.stdout.write(
      `\n:auto on ${REPO} (ctx ${SETTINGS.ctx}, 512 MiB reserve)\n| GPU | chosen | estimate | file | headers read | bytes read | candidates (GiB on one GPU) |\n|---|---|---|---|---|---|---|\n${table.join('\n')}\n`,
    );
    const chosen = table.map((row) => row.split('|')[2]!.trim());
    expect(new Set(chosen).size).toBe(3);
  });

  it('counts an idle instance as room, a busy one not', async () => {
    const holder = (idle: boolean): RunningInstance => ({ instanceId: 'i1', modelId: 'other', gpuBytes: new Map([[0, 10 * GiB]]), hostBytes: 0, idle, pinned: false, lastUsed: 0 });
    const alone = (await pick([16])).record.chosen;
    const withIdle = await pick([16], [holder(true)]);
    expect(withIdle.record.chosen).toBe(alone);
    expect(withIdle.record.room.gpus[0]!.evictableBytes).toBe(10 * GiB);
    const withBusy = await pick([16], [holder(false)]);
    const want = ranked().find((q) => needs(q) <= 6 * GiB - RESERVE);
    expect(withBusy.record.chosen).toBe(want);
    expect(compareQuantQuality(withBusy.record.chosen, alone)).toBeGreaterThan(0);
  });

  it('estimates a split-set variant from the headers of its parts, and counts all its bytes', async () => {
    const { record, bytesByBlob } = await pick([48], [], SPLIT_REPO);
    expect(record.chosen).toBe('F16');
    expect(record.file).toBe('F16/Llama-3-8B-Instruct-F16-00001-of-00002.gguf');
    const f16 = record.candidates[0]!;
    expect(f16.bytes).toBe(needs('F16'));
    expect(f16.fileBytes).toBe(hub.file(SPLIT_REPO, 'F16/Llama-3-8B-Instruct-F16-00001-of-00002.gguf').size + hub.file(SPLIT_REPO, 'F16/Llama-3-8B-Instruct-F16-00002-of-00002.gguf').size);
    // both parts' headers (ranges only), and the Q8_0's (read in the same batch)
    expect(bytesByBlob.size).toBe(3);
    for (const bytes of bytesByBlob.values()) expect(bytes).toBeLessThanOrEqual(8 * MiB);
  });

  it('leaves the choice to the fixed default when the repo cannot be listed (missing, or the Hub unreachable)', async () => {
    const logged: string[] = [];
    const picker = new QuantizationPicker({ hub: client(), placer: placer([16]), ledger: () => ({ running: [], loading: new Map() }), log: (msg, f) => logged.push(`${msg} ${String(f?.reason)}`) });
    await expect(picker.pick('acme/nothing-here', SETTINGS)).resolves.toBeUndefined();
    const dead = new QuantizationPicker({ hub: client({ endpoint: 'http://127.0.0.1:9', retries: 0, connectTimeoutMs: 500 }), placer: placer([16]), ledger: () => ({ running: [], loading: new Map() }) });
    await expect(dead.pick(REPO, SETTINGS)).resolves.toBeUndefined();
    expect(logged[0]).toMatch(/^could not choose a quantization; taking the default variant /);
  });

  it('splits over two GPUs when no single one holds any variant, and reads every header first', async () => {
    const { record, bytesByBlob } = await pick([3.5, 3.5]);
    expect(record.tier).toBe('split');
    expect(bytesByBlob.size).toBe(QUANTS.length);
    const split = record.candidates.find((c) => c.variant === record.chosen)!;
    expect(split.splitGpus).toEqual([0, 1]);
    expect(record.candidates.every((c) => !c.fitsOneGpu)).toBe(true);
  });
});

describe('pull without a variant', () => {
  const SIZED = 'acme/sized-pull-GGUF';
  let need: Record<string, number>;

  beforeAll(async () => {
    const variants = await sizedTinyVariants(71, 'sized');
    hub.addRepo(SIZED, { files: variants.map((v) => ({ path: v.path, data: v.data })) });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-pull-auto-'));
    need = {};
    for (const v of variants) {
      const file = path.join(dir, v.path);
      writeFileSync(file, v.data);
      const info = modelInfo(readGgufHeaderSync(file));
      need[v.tag] = estimateMemory(info, estimateSettings(512, 1, []), { devices: [{ name: 'CUDA0', kind: 'cuda', overheadBytes: MiB }] }).devices[0]!.totalBytes;
    }
  });

  /** `pull` with a config file: a simulated GPU that holds Q8_0 but not F16. */
  async function pull(model: string, extra: Record<string, unknown> = {}, models: Record<string, unknown> = {}): Promise<{ stdout: string; stderr: string }> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-pull-auto-cfg-'));
    const memoryMiB = Math.floor((need.Q8_0! + need.F16!) / 2 / MiB);
    const file = path.join(dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({
        cacheDir: path.join(dir, 'cache'),
        hub: { endpoint: hub.hubUrl, retries: 0, ...extra },
        modelDefaults: { ctx: 512 },
        gpu: { source: 'simulated', forceSimulated: true, simulated: [{ name: 'sim', memoryMiB }], reserveMiB: 0, overheadMiB: 1 },
        models,
      }),
    );
    let stdout = '';
    let stderr = '';
    const out = new PassThrough().on('data', (c: Buffer) => (stdout += c.toString()));
    const err = new PassThrough().on('data', (c: Buffer) => (stderr += c.toString()));
    await pullCommand(model, { config: file }, { stdout: out, stderr: err, env: { HF_HUB_CACHE: path.join(dir, 'no-cache'), HF_HOME: path.join(dir, 'hf') } });
    return { stdout, stderr };
  }

  it("chooses with :auto for this machine's GPUs and says why", async () => {
    const { stdout, stderr } = await pull(SIZED);
    expect(stderr).toMatch(new RegExp(`^${SIZED}:Q8_0 -> sized-Q8_0.gguf, `));
    expect(stderr).toMatch(/\n:auto chose Q8_0: the best quantization that fits one GPU \(.* on GPU 0; GPU 0 .* free\); F16 would not\n/);
    expect(stdout.trim()).toMatch(/sized-Q8_0\.gguf$/);
  });

  it('an alias with hf and no variant chooses at its own settings (a smaller context: F16 fits)', async () => {
    const { stderr } = await pull('small-ctx', {}, { 'small-ctx': { hf: SIZED, ctx: 256 } });
    // At 256 tokens the compute buffer is smaller: F16 fits the GPU sized for Q8_0 at 512.
    expect(stderr).toMatch(new RegExp(`^${SIZED}:F16 -> sized-F16.gguf, `));
    expect(stderr).toMatch(/:auto chose F16: the best quantization that fits one GPU/);
  });

  it('hub.defaultVariant keeps the fixed variant, with no choice made', async () => {
    const { stderr } = await pull(SIZED, { defaultVariant: 'Q4_K_M' });
    expect(stderr).toMatch(new RegExp(`^${SIZED}:Q4_K_M -> sized-Q4_K_M.gguf, `));
    expect(stderr).not.toContain(':auto chose');
  });
});

describe.skipIf(!tools.server)(`:auto served end to end${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let fake: FakeHub;
  let root: string;
  let t: TestProxy | undefined;

  beforeAll(async () => {
    ({ root } = await modelsFolder([]));
    fake = await FakeHub.start();
    fake.addRepo('acme/auto-GGUF', {
      files: [
        { path: 'tiny-Q4_K_M.gguf', data: await tinyModelBytes(41) },
        { path: 'tiny-Q8_0.gguf', data: await tinyModelBytes(42) },
        { path: 'tiny-F16.gguf', data: await tinyModelBytes(43) },
      ],
    });
    process.env.HF_HUB_CACHE = path.join(root, 'no-other-cache');
  });
  afterAll(async () => {
    await fake?.close();
    delete process.env.HF_HUB_CACHE;
  });
  afterEach(async () => {
    await t?.proxy.close();
    t = undefined;
  });

  const chat = (model: string) => postJson(`${t!.url}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  const downloads = () => fake.requests({ server: 'cdn', method: 'GET' }).filter((r) => !r.range).map((r) => r.path);

  it('a repo named without a variant gets the best that fits (all fit the CPU here: F16), :auto the same instance', async () => {
    const before = downloads().length;
    t = await startTestProxy(tools.server!, root, { hub: { endpoint: fake.hubUrl, retries: 0 }, modelDefaults: { ctx: 512 } });
    // /plan shows the choice (and each candidate's numbers) before anything is downloaded.
    const plan = (await (await fetch(`${t.url}/plan?model=acme/auto-GGUF`)).json()) as { on_disk: boolean; quantization: { chosen: string; tier: string; reason: string; candidates: { variant: string; estimated: boolean }[] } | null };
    expect(plan.quantization).toMatchObject({ chosen: 'F16', tier: 'cpu' });
    expect(plan.quantization!.reason).toContain('the best quantization for the CPU');
    expect(plan.quantization!.candidates.map((c) => c.variant)).toEqual(['F16', 'Q8_0', 'Q4_K_M']);
    expect(plan.on_disk).toBe(false);
    expect(downloads().slice(before)).toEqual([]);
    const first = await chat('acme/auto-GGUF');
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json.model).toBe('acme/auto-GGUF:F16');
    const again = await chat('acme/auto-GGUF:auto');
    expect(again.status).toBe(200);
    expect(downloads().slice(before)).toEqual([`/blobs/${fake.sha('acme/auto-GGUF', 'tiny-F16.gguf')}`]);
    const health = (await (await fetch(`${t.url}/health`)).json()) as { servers: { model_id: string; gpu_assignment: { reason: string } | null }[] };
    expect(health.servers.map((s) => s.model_id)).toEqual(['acme/auto-GGUF:F16']);
    expect(health.servers[0]!.gpu_assignment?.reason).toMatch(/; :auto chose F16: the best quantization for the CPU/);
  }, 120_000);

  it('a pinned alias with hf and no variant loads the :auto choice at start; its requests take that instance', async () => {
    t = await startTestProxy(tools.server!, root, { hub: { endpoint: fake.hubUrl, retries: 0 }, modelDefaults: { ctx: 512 }, models: { resident: { hf: 'acme/auto-GGUF', pinned: true } } });
    type Servers = { servers: { model_id: string; model_file: string; status: string; gpu_assignment: { reason: string } | null }[] };
    const servers = async () => ((await (await fetch(`${t!.url}/health`)).json()) as Servers).servers;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !(await servers()).some((s) => s.status === 'ready')) await new Promise((r) => setTimeout(r, 100));
    const [loaded] = await servers();
    expect(loaded).toMatchObject({ model_id: 'resident', status: 'ready' });
    // The fixed default would be Q4_K_M; everything fits the CPU here, so :auto takes F16.
    expect(loaded!.model_file).toMatch(/tiny-F16\.gguf$/);
    expect(loaded!.gpu_assignment?.reason).toMatch(/; :auto chose F16: /);
    const r = await chat('resident');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect((await servers()).map((s) => s.model_id)).toEqual(['resident']);
  }, 120_000);

  it('hub.defaultVariant keeps the fixed choice', async () => {
    t = await startTestProxy(tools.server!, root, { hub: { endpoint: fake.hubUrl, retries: 0, defaultVariant: 'Q4_K_M' }, modelDefaults: { ctx: 512 } });
    const r = await chat('acme/auto-GGUF');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.model).toBe('acme/auto-GGUF:Q4_K_M');
    // :auto still asks for the choice
    const auto = await chat('acme/auto-GGUF:auto');
    expect(auto.json.model).toBe('acme/auto-GGUF:F16');
  }, 120_000);
});
