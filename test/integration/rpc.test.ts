/**
 * llama.cpp RPC on loopback (issue 14 item 5): two real rpc-servers (ggml-rpc-server, the CPU behind each),
 * started through RpcServers, and a tiny model split over both by llama-server --rpc (tensor split 1,1, every
 * layer offloaded): greedy tokens equal those of the same model run locally. Also: the estimate per RPC device
 * equals what that llama-server logs; stopping leaves no rpc-server process; one never outlives its proxy
 * (SIGKILLed); a bind to every interface is refused; the /cluster/rpc routes over real HTTP.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { registerRpcRoutes } from '../../src/cluster/rpc-routes.js';
import { parseRpcDevices } from '../../src/cluster/rpc-server.js';
import { checkRpcHost, RpcConfigError, RpcServers } from '../../src/cluster/rpc-servers.js';
import { loadConfig } from '../../src/config/index.js';
import { estimateMemory, modelInfo, type Device } from '../../src/estimate/index.js';
import { readGgufHeaderSync, writeTinyModel } from '../../src/gguf/index.js';
import { locateLlamaTools, supportsRpc } from '../../src/llamacpp/index.js';
import { MemoryLogParser } from '../../src/llamacpp/memory-log.js';
import { defaultDeviceOrder, rpcBufferName, rpcPlacementFlags } from '../../src/llamacpp/rpc-flags.js';
import { llamaTools } from '../helpers/llama.js';
import { startLlamaServer } from '../helpers/llama-process.js';
import { isAlive, waitFor } from '../helpers/processes.js';

const MiB = 1024 * 1024;
const base = llamaTools();
// The global setup built (or found) the tools; the RPC server is looked up the way `serve` does, building nothing.
const config = loadConfig({ cwd: process.cwd() });
const located = base.server ? locateLlamaTools({ cacheDir: config.cacheDir, llamaServer: { ...config.llamaServer, autoBuild: false } }) : undefined;
const rpcBinary = located?.rpcServer;
const server = base.server;
const reason = !server ? base.reason : !rpcBinary ? 'no ggml-rpc-server / rpc-server found' : '';

/** Ports no other test uses; RpcServers skips any that are taken anyway. */
// Below Linux's ephemeral ports (32768-60999): a client socket elsewhere in the suite cannot be holding one of them
// (a TIME_WAIT on 51352 once failed the exact-port test below).
const RANGE: [number, number] = [29300, 29399];

/** Pids of live rpc-server processes (either name) whose command line has `-p <port>`. */
function rpcServersOnPort(port: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (/(^|\/)(ggml-)?rpc-server$/.test(cmd[0] ?? '') && cmd.includes('-p') && cmd[cmd.indexOf('-p') + 1] === String(port) && isAlive(Number(name))) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

interface Completion {
  content: string;
  tokens: number[];
  tokens_predicted: number;
}

async function complete(url: string, prompt: string): Promise<Completion> {
  const res = await fetch(`${url}/completion`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, n_predict: 16, temperature: 0, seed: 42, cache_prompt: false, return_tokens: true }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Completion;
}

describe.skipIf(reason !== '')(`llama.cpp RPC on loopback${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let dir: string;
  let model: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rpc-test-'));
    model = join(dir, 'tiny-rpc.gguf');
    // 4 layers of random weights: with -ts 1,1 over 5 "layers" (4 + output) the first server gets 3, the second 2
    await writeTinyModel(model, { seed: 11, layers: 4, embd: 128 });
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the managed llama-server takes --rpc', async () => {
    expect(await supportsRpc(server!)).toBe(true);
  });

  it('a tiny model split over two rpc-servers answers greedily with the same tokens as run locally', async () => {
    const servers = new RpcServers({ binary: rpcBinary!, host: '127.0.0.1', portRange: RANGE, threads: 1 });
    try {
      const a = await servers.start({ lease: 'test#a' });
      const b = await servers.start({ lease: 'test#b' });
      expect(a.port).not.toBe(b.port);
      for (const s of [a, b]) {
        expect(s.state).toBe('ready');
        expect(s.pid).toBeGreaterThan(0);
        // a CPU-only rpc-server offers its CPU, with the machine's memory
        expect(s.devices).toHaveLength(1);
        expect(s.devices[0]).toMatchObject({ name: 'CPU' });
        expect(s.devices[0]!.totalBytes).toBeGreaterThan(64 * MiB);
      }
      expect(servers.list().map((s) => s.lease)).toEqual(['test#a', 'test#b']);

      const endpoints = [a, b].map((s) => ({ host: s.host, port: s.port }));
      const devices = defaultDeviceOrder(endpoints, 0);
      const rpcArgs = rpcPlacementFlags({ endpoints, devices, tensorSplit: [1, 1], localGpus: 0 });
      const common = ['-c', '1024', '-np', '1', '-t', '1', '--fit', 'off', '-lv', '4', '--log-colors', 'off', '--no-webui'];
      const log = new MemoryLogParser();
      const remote = await startLlamaServer(server!, model, [...common, ...rpcArgs], { onLine: (l) => log.feed(l), timeoutMs: 30_000 });
      let viaRpc: Completion[];
      try {
        viaRpc = [await complete(remote.url, 'The quick brown fox'), await complete(remote.url, 'Hello, world')];
      } finally {
        await remote.stop();
      }
      const local = await startLlamaServer(server!, model, [...common, '-ngl', '0'], { timeoutMs: 30_000 });
      let onCpu: Completion[];
      try {
        onCpu = [await complete(local.url, 'The quick brown fox'), await complete(local.url, 'Hello, world')];
      } finally {
        await local.stop();
      }
      for (let i = 0; i < 2; i++) {
        expect(viaRpc[i]!.tokens_predicted).toBe(16);
        expect(viaRpc[i]!.tokens).toHaveLength(16);
        expect(viaRpc[i]!.tokens).toEqual(onCpu[i]!.tokens);
        expect(viaRpc[i]!.content).toBe(onCpu[i]!.content);
      }

      // It really ran over both: each rpc-server holds layers, KV and a compute buffer; the estimate per RPC
      // device equals what llama-server logged (MiB with 2 decimals)
      const footprint = log.footprint();
      const names = devices.map((d) => rpcBufferName(endpoints, d));
      expect([...footprint.devices.keys()].sort()).toEqual([...names].sort());
      const placement: Device[] = names.map((name) => ({ name, kind: 'rpc' }));
      const e = estimateMemory(modelInfo(readGgufHeaderSync(model)), { ctx: 1024, parallel: 1 }, { devices: placement, tensorSplit: [1, 1] });
      for (const d of e.devices) {
        const logged = footprint.devices.get(d.name)!;
        expect(logged.modelBytes).toBeGreaterThan(0);
        expect(logged.contextBytes).toBeGreaterThan(0);
        expect(Math.abs(d.modelBytes - logged.modelBytes) / MiB).toBeLessThan(0.006);
        expect(Math.abs(d.contextBytes - logged.contextBytes) / MiB).toBeLessThan(0.006);
        expect(Math.abs(d.computeBytes - logged.computeBytes) / MiB).toBeLessThan(0.006);
      }
      expect(Math.abs(e.host.computeBytes - footprint.host.computeBytes) / MiB).toBeLessThan(0.006);

      const pids = [a.pid!, b.pid!];
      await servers.stopAll();
      expect(servers.list()).toEqual([]);
      expect(pids.filter(isAlive)).toEqual([]);
      expect([...rpcServersOnPort(a.port), ...rpcServersOnPort(b.port)]).toEqual([]);
      await expect(servers.start({ lease: 'late' })).rejects.toThrow(/shutting down/);
    } finally {
      await servers.stopAll();
    }
  }, 60_000);

  it('skips a port someone else holds, and gives a retried lease the rpc-server it has', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((ok) => blocker.listen(RANGE[0] + 50, '127.0.0.1', ok));
    const servers = new RpcServers({ binary: rpcBinary!, host: '127.0.0.1', portRange: [RANGE[0] + 50, RANGE[0] + 52], threads: 1 });
    try {
      const first = await servers.start({ lease: 'x' });
      expect(first.port).toBe(RANGE[0] + 51);
      const again = await servers.start({ lease: 'x' });
      expect(again.id).toBe(first.id);
      const other = await servers.start({ lease: 'y' });
      expect(other.port).toBe(RANGE[0] + 52);
      await expect(servers.start({ lease: 'z' })).rejects.toThrow(new RegExp(`no free port .* ${RANGE[0] + 50}-${RANGE[0] + 52}`));
      expect(await servers.stop(first.id)).toBe(true);
      expect(await servers.stop(first.id)).toBe(false);
      expect(isAlive(first.pid!)).toBe(false);
    } finally {
      await servers.stopAll();
      await new Promise<void>((ok) => blocker.close(() => ok()));
    }
  }, 60_000);

  it('refuses to bind every interface (no authentication), host names and IPv6', () => {
    for (const host of ['0.0.0.0', '::', '[::]']) {
      expect(checkRpcHost(host)).toMatch(/no authentication.*never to every interface/);
      expect(() => new RpcServers({ binary: rpcBinary!, host, portRange: RANGE })).toThrow(RpcConfigError);
    }
    expect(checkRpcHost('localhost')).toMatch(/one IPv4 address/);
    expect(checkRpcHost('fd00::2')).toMatch(/no IPv6/);
    expect(checkRpcHost('10.0.0.2')).toBeUndefined();
    expect(() => new RpcServers({ binary: rpcBinary!, host: '127.0.0.1', portRange: [50100, 50000] })).toThrow(/not a range of ports/);
  });

  it('reads the devices of an rpc-server banner', () => {
    const banner = ['Starting RPC server v6.0.0', '  endpoint       : 10.0.0.2:50052', '  local cache    : n/a', 'Devices:',
      '  CUDA0: NVIDIA GeForce RTX 5090 (32109 MiB, 31588 MiB free)', '  CPU: AMD EPYC (24105 MiB, 24000 MiB free)', '  transport      : TCP'];
    expect(parseRpcDevices(banner)).toEqual([
      { name: 'CUDA0', description: 'NVIDIA GeForce RTX 5090', totalBytes: 32109 * MiB, freeBytes: 31588 * MiB },
      { name: 'CPU', description: 'AMD EPYC', totalBytes: 24105 * MiB, freeBytes: 24000 * MiB },
    ]);
  });

  it('never outlives its proxy: a SIGKILLed parent takes its rpc-server with it', async () => {
    // .mts: an ES module wherever it lies (top-level await)
    const script = join(dir, 'holder.mts');
    writeFileSync(
      script,
      `import { RpcServers } from ${JSON.stringify(pathToFileURL(resolve('src/cluster/rpc-servers.ts')).href)};\n` +
        `const servers = new RpcServers({ binary: ${JSON.stringify(rpcBinary)}, host: '127.0.0.1', portRange: [${RANGE[0] + 60}, ${RANGE[0] + 69}], threads: 1 });\n` +
        `const info = await servers.start({ lease: 'holder' });\n` +
        `process.stdout.write(JSON.stringify(info) + '\\n');\n` +
        `setInterval(() => {}, 1000);\n`,
    );
    const child = spawn(process.execPath, ['--import', pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href, script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    expect(await waitFor(() => out.includes('\n') || child.exitCode !== null, 30_000)).toBe(true);
    expect(out, `the holder said nothing: ${err}`).toContain('\n');
    const info = JSON.parse(out.split('\n')[0]!) as { pid: number; port: number };
    expect(isAlive(info.pid)).toBe(true);
    child.kill('SIGKILL');
    expect(await waitFor(() => !isAlive(info.pid), 10_000)).toBe(true);
    expect(rpcServersOnPort(info.port)).toEqual([]);
  }, 60_000);

  it('POST, GET and DELETE /cluster/rpc over HTTP; closing the app stops what is left', async () => {
    const servers = new RpcServers({ binary: rpcBinary!, host: '127.0.0.1', portRange: [RANGE[0] + 70, RANGE[0] + 79], threads: 1 });
    const app = Fastify({ loggerInstance: pino({ level: 'silent' }) });
    registerRpcRoutes(app, servers);
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${url}${path}`, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    try {
      const bad = await call('POST', '/cluster/rpc', { lease: '', threads: 0 });
      expect(bad.status).toBe(400);
      expect((bad.body.error as { message: string }).message).toMatch(/bad rpc-server request: lease: .*; threads: /);
      expect((await call('POST', '/cluster/rpc', { lease: 'a', host: '0.0.0.0' })).status).toBe(400);
      expect((await call('POST', '/cluster/rpc', { lease: 'a', devices: ['CPU; rm -rf /'] })).status).toBe(400);

      const started = await call('POST', '/cluster/rpc', { lease: 'node-b/tiny#1', threads: 1 });
      expect(started.status).toBe(200);
      expect(started.body).toMatchObject({ host: '127.0.0.1', lease: 'node-b/tiny#1', state: 'ready' });
      const { id, port, pid } = started.body as { id: string; port: number; pid: number };
      expect(port).toBeGreaterThanOrEqual(RANGE[0] + 70);
      expect((await call('POST', '/cluster/rpc', { lease: 'node-b/tiny#1' })).body.id).toBe(id);

      const listed = await call('GET', '/cluster/rpc');
      expect((listed.body.servers as { id: string }[]).map((s) => s.id)).toEqual([id]);

      expect(await call('DELETE', `/cluster/rpc/${id}`)).toEqual({ status: 200, body: { id, stopped: true } });
      expect(isAlive(pid)).toBe(false);
      const gone = await call('DELETE', `/cluster/rpc/${id}`);
      expect(gone.status).toBe(404);
      expect((gone.body.error as { code: string }).code).toBe('rpc_not_found');

      const left = await call('POST', '/cluster/rpc', { lease: 'node-b/tiny#2' });
      expect(left.status).toBe(200);
      await app.close();
      expect(isAlive((left.body as { pid: number }).pid)).toBe(false);
    } finally {
      await app.close();
      await servers.stopAll();
    }

    // A node without cluster.rpcHost answers 503 saying so.
    const off = Fastify({ loggerInstance: pino({ level: 'silent' }) });
    registerRpcRoutes(off, undefined, { disabledReason: 'cluster.rpcHost is not set' });
    const res = await off.inject({ method: 'POST', url: '/cluster/rpc', payload: { lease: 'a' } });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ error: { code: 'rpc_unavailable', message: expect.stringMatching(/lends no devices over RPC: cluster.rpcHost is not set/) } });
    await off.close();
  }, 60_000);
});
