import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, modelInfo } from '../../src/estimate/index.js';
import { readGgufHeaderSync, writeTinyModel } from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const execFileAsync = promisify(execFile);
const MIB = 1024 * 1024;
const CTX = 1024;
const OVERHEAD_MIB = 1;

/** What llama-server was really started with: its argv and environment, read back from /proc. */
function processLaunch(pid: number): { args: string[]; env: Record<string, string> } {
  const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const env = Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  return { args, env };
}

function flag(args: string[], name: string): string | undefined {
  const i = args.lastIndexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

describe.skipIf(!tools.server)(`GPU placement on simulated GPUs with a real llama-server${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let files: Record<number, string>;
  let root: string;
  /** The tiny model's estimated bytes on one GPU with everything offloaded. */
  let needMiB: number;
  let t: TestProxy | undefined;

  beforeAll(async () => {
    ({ root, files } = await modelsFolder([21, 22]));
    const info = modelInfo(readGgufHeaderSync(files[21]!));
    const est = estimateMemory(info, { ctx: CTX, parallel: 1 }, { devices: [{ name: 'sim', kind: 'cuda', overheadBytes: OVERHEAD_MIB * MIB }] });
    needMiB = est.devices[0]!.totalBytes / MIB;
  });
  afterEach(async () => {
    await t?.proxy.close();
    t = undefined;
  });

  async function proxy(gpus: { name: string; memoryMiB: number }[], gpu: Record<string, unknown> = {}, poolSize = 4, models?: Record<string, unknown>) {
    t = await startTestProxy(tools.server!, root, {
      pool: { size: poolSize },
      gpu: { source: 'simulated', forceSimulated: true, simulated: gpus, reserveMiB: 0, overheadMiB: OVERHEAD_MIB, ...gpu },
      models: (models ?? { a: { path: files[21]!, ctx: CTX }, b: { path: files[22]!, ctx: CTX } }) as never,
    });
    return t;
  }

  const chat = (model: string) => ({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });

  it('puts a model that fits on one GPU there (the tighter fit), with the planned flags and environment', async () => {
    const { url } = await proxy([
      { name: 'Sim Big', memoryMiB: Math.ceil(needMiB * 4) },
      { name: 'Sim Small', memoryMiB: Math.ceil(needMiB * 1.5) },
    ]);
    expect((await postJson(`${url}/v1/chat/completions`, chat('a'))).status).toBe(200);
    const health = (await (await fetch(`${url}/health`)).json()) as any;
    const server = health.servers[0];
    expect(server.gpu_assignment).toMatchObject({ gpu_ids: [1], gpu_uuids: ['GPU-simulated-0001'], split_mode: 'none', n_gpu_layers: 3, tensor_split: null });
    expect(server.estimated_vram_mib).toBeCloseTo(needMiB, 0);
    // The CPU build logs its buffers as host memory (-lv 4): weights, KV and compute of the tiny model.
    expect(server.logged_host_mib).toBeGreaterThan(1);
    expect(server.logged_vram_mib).toBeNull();
    const { args, env } = processLaunch(server.pid);
    expect(flag(args, '-ngl')).toBe('3');
    expect(flag(args, '--split-mode')).toBe('none');
    expect(flag(args, '--main-gpu')).toBe('0');
    expect(flag(args, '--fit')).toBe('off');
    // the prompt cache: a quarter of this machine's RAM over the pool's 4 instances, at most llama-server's 8192
    expect(flag(args, '--cache-ram')).toBe(String(Math.min(8192, Math.floor(os.totalmem() / 4 / 4 / 1024 / 1024))));
    expect(env.CUDA_VISIBLE_DEVICES).toBe('GPU-simulated-0001');
    expect(env.CUDA_DEVICE_ORDER).toBe('PCI_BUS_ID');
    expect(health.gpu_monitoring).toBe(true);
    expect(health.allocation_strategy).toBe('single-gpu-preferred');
    expect(health.gpu_pool_status).toMatchObject({ source: 'simulated', total_gpus: 2 });
    expect(health.gpu_pool_status.gpus[1].assigned_models).toEqual(['a']);
    expect(health.gpu_pool_status.gpus[1].used_memory_mib).toBeCloseTo(needMiB, 0);
    expect(health.gpu_pool_status.gpus[0].assigned_models).toEqual([]);
    expect(health.gpu_pool_status.gpus[1].runtime_overhead_mib).toBeNull(); // a simulated GPU has no per-process memory to learn from

    // GET /status: placement, estimate, the instance's own load, per GPU.
    const status = (await (await fetch(`${url}/status`)).json()) as any;
    expect(status.gpu_source).toBe('simulated');
    expect(status.gpus[1]).toMatchObject({ name: 'Sim Small', instances: [server.id] });
    const inst = status.instances[0];
    expect(inst).toMatchObject({ id: server.id, model: 'a', state: 'ready', placement: { gpu_ids: [1] } });
    expect(inst.estimate_mib.gpus['1']).toBeCloseTo(needMiB, 0);
    expect(inst.load).toMatchObject({ slotsTotal: 1, slotsBusy: 0, requestsProcessing: 0, error: null });
    expect(typeof inst.load.predictedTokensPerSecond).toBe('number');

    // `llama-smart-proxy gpus` prints the same as tables.
    // (asynchronously: the proxy answering it runs in this process)
    const cli = await execFileAsync(process.execPath, ['--import', pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href, path.resolve('src/cli/main.ts'), 'gpus', '--url', url], { encoding: 'utf8' });
    expect(cli.stdout).toMatch(/GPU source: simulated/);
    expect(cli.stdout).toMatch(new RegExp(`1\\s+Sim Small\\s+\\d+\\s+\\d+\\s+\\S+\\s+${server.id}`));
    expect(cli.stdout).toMatch(new RegExp(`${server.id}\\s+a\\s+ready\\s+${server.pid}\\s+1\\s+3\\s+\\d+`));
  });

  it('splits over two GPUs only when neither holds the model, in proportion to their room', async () => {
    // Splitting needs layers to share out: a 16-layer model (the 2-layer one puts every layer on one side).
    const wide = path.join(root, 'models', 'wide16.gguf');
    // head size 64: a CUDA flash-attention kernel exists (without one, each GPU would hold the whole KQ)
    await writeTinyModel(wide, { seed: 23, layers: 16, embd: 256, heads: 4 });
    const info = modelInfo(readGgufHeaderSync(wide));
    const wholeMiB = estimateMemory(info, { ctx: CTX, parallel: 1 }, { devices: [{ name: 'sim', kind: 'cuda', overheadBytes: OVERHEAD_MIB * MIB }] }).devices[0]!.totalBytes / MIB;
    const { url } = await proxy(
      [
        { name: 'Sim A', memoryMiB: Math.floor(wholeMiB * 0.8) },
        { name: 'Sim B', memoryMiB: Math.floor(wholeMiB * 0.7) },
      ],
      { partialOffload: false, cpuFallback: false },
      4,
      { a: { path: wide, ctx: CTX } },
    );
    const res = await postJson(`${url}/v1/chat/completions`, chat('a'));
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    const server = ((await (await fetch(`${url}/health`)).json()) as any).servers[0];
    expect(server.gpu_assignment).toMatchObject({ gpu_ids: [0, 1], split_mode: 'layer' });
    const [a, b] = server.gpu_assignment.tensor_split as number[];
    expect(a! / b!).toBeCloseTo(0.8 / 0.7, 1);
    const { args, env } = processLaunch(server.pid);
    expect(flag(args, '--split-mode')).toBe('layer');
    expect(flag(args, '--tensor-split')).toBe(`${a},${b}`);
    expect(env.CUDA_VISIBLE_DEVICES).toBe('GPU-simulated-0000,GPU-simulated-0001');
  });

  it('evicts an idle model whose memory is needed, even with pool slots to spare', async () => {
    const { url, proxy: p } = await proxy([{ name: 'Sim', memoryMiB: Math.ceil(needMiB * 1.5) }]);
    expect((await postJson(`${url}/v1/chat/completions`, chat('a'))).status).toBe(200);
    const first = p.pool.list()[0]!;
    expect((await postJson(`${url}/v1/chat/completions`, chat('b'))).status).toBe(200);
    expect(p.pool.list().map((i) => i.modelId)).toEqual(['b']);
    expect(p.pool.instance(first.id)!.exit?.expected).toBe(true);
  });

  it('falls back to the CPU (GPUs hidden) when no GPU has room, and refuses with numbers when that is off', async () => {
    const small = [{ name: 'Sim Tiny', memoryMiB: Math.max(1, Math.floor(needMiB * 0.3)) }];
    const { url } = await proxy(small, { partialOffload: false });
    expect((await postJson(`${url}/v1/chat/completions`, chat('a'))).status).toBe(200);
    const server = ((await (await fetch(`${url}/health`)).json()) as any).servers[0];
    expect(server.gpu_assignment).toMatchObject({ gpu_ids: [], n_gpu_layers: 0 });
    const { args, env } = processLaunch(server.pid);
    expect(flag(args, '-ngl')).toBe('0');
    expect(env.CUDA_VISIBLE_DEVICES).toBe('');
    await t!.proxy.close();

    const refusing = await proxy(small, { partialOffload: false, cpuFallback: false });
    const res = await postJson(`${refusing.url}/v1/chat/completions`, chat('a'));
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('insufficient_memory');
    expect(res.json.error.message).toMatch(/"a" needs [\d.]+ MiB of GPU memory .*GPU 0 \(Sim Tiny\)/);
    expect(refusing.proxy.pool.list()).toEqual([]);
  });

  it('honours a model\'s pins over the planner', async () => {
    const { url } = await proxy(
      [
        { name: 'Sim 0', memoryMiB: Math.ceil(needMiB * 4) },
        { name: 'Sim 1', memoryMiB: Math.ceil(needMiB * 4) },
      ],
      {},
      4,
      { a: { path: files[21]!, ctx: CTX, gpu: { devices: ['GPU-simulated-0001'], ngl: 2 } } },
    );
    expect((await postJson(`${url}/v1/chat/completions`, chat('a'))).status).toBe(200);
    const server = ((await (await fetch(`${url}/health`)).json()) as any).servers[0];
    expect(server.gpu_assignment).toMatchObject({ gpu_ids: [1], n_gpu_layers: 2 });
    expect(flag(processLaunch(server.pid).args, '-ngl')).toBe('2');
  });
});
