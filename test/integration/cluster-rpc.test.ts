/**
 * One model bigger than any node, over llama.cpp RPC, through the cluster: node a (no GPU, no CPU fallback: it
 * cannot run the model itself) takes the request; nodes b and c each have one simulated GPU of 0.65 of the
 * model's single-GPU estimate, so neither holds it alone. The entry asks both for an rpc-server (bound to
 * 127.0.0.1, their cluster.rpcHost), runs llama-server with --rpc over them, and answers; greedy tokens equal
 * those of the same model run by a plain llama-server. Unloading it stops the rpc-servers and frees their booking.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, modelInfo } from '../../src/estimate/index.js';
import { readGgufHeaderSync, writeTinyModel } from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';
import { freePort, startLlamaServer } from '../helpers/llama-process.js';
import { isAlive, waitFor } from '../helpers/processes.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
// The proxy finds rpc-server beside llama-server (the managed build has both).
const rpcServer = tools.server ? ['ggml-rpc-server', 'rpc-server'].map((n) => path.join(path.dirname(tools.server!), n)).find((f) => existsSync(f)) : undefined;
const skip = !tools.server ? tools.reason : !rpcServer ? 'no ggml-rpc-server beside llama-server' : '';
const MIB = 1024 * 1024;
const CTX = 512;
const TOKEN = 'rpc-cluster-token-0123456789';

function ports(node: number): [number, number] {
  const base = 49_000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 10) * 60 + node * 20;
  return [base, base + 19];
}

interface RpcList {
  servers: { id: string; host: string; port: number; pid: number; state: string }[];
}

describe.skipIf(skip !== '')(`a model bigger than any node, over RPC${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let file: string;
  let needMiB: number;
  const urls: Record<string, string> = {};
  const nodes: Record<string, TestProxy> = {};

  beforeAll(async () => {
    const { root, modelsDir } = await modelsFolder([]);
    // Weights dominate (8 layers, 512 wide: ~130 MiB), so a split needs less per device than the whole.
    file = path.join(modelsDir, 'wide.gguf');
    await writeTinyModel(file, { seed: 41, layers: 8, embd: 512 });
    needMiB = estimateMemory(modelInfo(readGgufHeaderSync(file)), { ctx: CTX, parallel: 1 }, { devices: [{ name: 'sim', kind: 'cuda', overheadBytes: MIB }] }).devices[0]!.totalBytes / MIB;
    const port: Record<string, number> = {};
    for (const n of ['a', 'b', 'c']) port[n] = await freePort();
    const config = (name: string, index: number, gpu: Record<string, unknown>) => ({
      server: { host: '127.0.0.1', port: port[name]! },
      pool: { size: 2, portRange: [ports(index)[0], ports(index)[0] + 9] as [number, number] },
      gpu: { reserveMiB: 0, overheadMiB: 1, cpuFallback: false, ...gpu },
      models: { wide: { path: file, ctx: CTX } },
      cluster: {
        node: `node-${name}`,
        peers: Object.keys(port).filter((n) => n !== name).map((n) => `http://127.0.0.1:${port[n]}`),
        token: TOKEN,
        pollInterval: 0.5,
        rpcHost: '127.0.0.1',
        rpcPortRange: [ports(index)[0] + 10, ports(index)[1]] as [number, number],
      },
    });
    const sim = (name: string) => ({ source: 'simulated', forceSimulated: true, simulated: [{ name: `Sim ${name}`, memoryMiB: Math.ceil(needMiB * 0.65) }] });
    nodes.a = await startTestProxy(tools.server!, root, config('a', 0, { source: 'none' }) as never);
    nodes.b = await startTestProxy(tools.server!, root, config('b', 1, sim('b')) as never);
    nodes.c = await startTestProxy(tools.server!, root, config('c', 2, sim('c')) as never);
    for (const n of ['a', 'b', 'c']) urls[n] = nodes[n]!.url;
    const seen = await waitFor(() => nodes.a!.proxy.cluster!.peers.up().length === 2, 10_000);
    expect(seen).toBe(true);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(Object.values(nodes).map((t) => t.proxy.close()));
  });

  const rpcList = async (node: string): Promise<RpcList> => (await (await fetch(`${urls[node]}/cluster/rpc`, { headers: { 'x-llama-smart-proxy-cluster-token': TOKEN } })).json()) as RpcList;

  it('runs on the entry with rpc-servers on both other nodes, and answers the same greedy tokens as a plain llama-server', async () => {
    const body = { model: 'wide', prompt: 'The quick brown fox', max_tokens: 16, temperature: 0, seed: 1, cache_prompt: false };
    const res = await postJson(`${urls.a}/v1/completions`, body);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.headers.get('x-llama-smart-proxy-node')).toBe('node-a');

    // Each lender runs one rpc-server on 127.0.0.1, booked in its ledger (its simulated GPU shows it used).
    const lent = await Promise.all(['b', 'c'].map(rpcList));
    expect(lent.map((l) => l.servers.length)).toEqual([1, 1]);
    for (const l of lent) expect(l.servers[0]).toMatchObject({ host: '127.0.0.1', state: 'ready' });
    for (const n of ['b', 'c']) expect(nodes[n]!.proxy.pool.charges().get(0)).toBeGreaterThan(0);

    // llama-server on the entry was started with --rpc over exactly those two.
    const [instance] = nodes.a!.proxy.pool.list();
    const args = readFileSync(`/proc/${instance!.pid}/cmdline`, 'utf8').split('\0');
    const endpoints = args[args.indexOf('--rpc') + 1]!.split(',').sort();
    expect(endpoints).toEqual(lent.map((l) => `127.0.0.1:${l.servers[0]!.port}`).sort());
    expect(args[args.indexOf('--tensor-split') + 1]!.split(',')).toHaveLength(2);

    const local = await startLlamaServer(tools.server!, file, ['-c', String(CTX), '-ngl', '0']);
    try {
      const plain = await postJson(`${local.url}/v1/completions`, { ...body, model: 'x' });
      expect(plain.status).toBe(200);
      expect(res.json.choices[0].text).toBe(plain.json.choices[0].text);
      expect(res.json.usage.completion_tokens).toBe(16);
    } finally {
      await local.stop();
    }
  }, 90_000);

  it('stops the rpc-servers and frees their booking when the model is unloaded', async () => {
    const pids = (await Promise.all(['b', 'c'].map(rpcList))).map((l) => l.servers[0]!.pid);
    const unload = await postJson(`${urls.a}/models/unload`, { model: 'wide' });
    expect(unload.status).toBe(200);
    expect(await waitFor(() => pids.every((p) => !isAlive(p)), 10_000)).toBe(true);
    expect((await Promise.all(['b', 'c'].map(rpcList))).map((l) => l.servers.length)).toEqual([0, 0]);
    for (const n of ['b', 'c']) expect(nodes[n]!.proxy.pool.charges().get(0) ?? 0).toBe(0);
  });
});
