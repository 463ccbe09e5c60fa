/**
 * A real llama-server instance against the estimate: its memory log lines at -lv 4 (parsed by
 * src/llamacpp/memory-log.ts) must show exactly the estimated model, KV, compute and output
 * buffers. llama-server reserves logits for one token per slot, not for a whole micro-batch as
 * llama-fit-params does, so this checks the estimator's default ('slots') outputs.
 * The model is a sparse replica (zeros): it loads and reserves, and --no-warmup skips computing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CPU_ONLY, estimateMemory, modelInfo, type EstimateSettings } from '../../src/estimate/index.js';
import { readGgufHeaderSync, writeSparseReplica } from '../../src/gguf/index.js';
import { settingsArgs } from '../../src/llamacpp/fit-params.js';
import { MemoryLogParser, type MemoryFootprint } from '../../src/llamacpp/memory-log.js';
import { llamaTools } from '../helpers/llama.js';

const tools = llamaTools();
const server = tools.server;
const MiB = 1024 * 1024;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts llama-server, waits for /health, stops it (SIGTERM, for the breakdown table) and returns its footprint. */
async function footprint(model: string, settings: EstimateSettings): Promise<MemoryFootprint> {
  const port = await freePort();
  const args = [
    '-m', model, '--host', '127.0.0.1', '--port', String(port), '-t', '2', '-lv', '4',
    // --no-repack: this machine's AMX repack path crashes on quantized weights; --fit off: run what was asked
    '--no-repack', '--no-warmup', '--fit', 'off', ...settingsArgs(settings),
  ];
  const proc: ChildProcess = spawn(server!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const parser = new MemoryLogParser();
  let pending = '';
  let tail = '';
  const onData = (chunk: Buffer): void => {
    const text = pending + chunk.toString();
    const lines = text.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) parser.feed(line);
    tail = (tail + chunk.toString()).slice(-4000);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`llama-server exited with ${proc.exitCode}:\n${tail}`);
      if (Date.now() > deadline) throw new Error(`llama-server not healthy within 60 s:\n${tail}`);
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (pending) parser.feed(pending);
  return parser.footprint();
}

describe.skipIf(!server)(`llama-server memory log vs estimate${server ? '' : ` (skipped: ${tools.reason})`}`, () => {
  let dir: string;
  let model: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'estimate-server-'));
    model = join(dir, 'qwen2.5-0.5b-Q8_0.gguf');
    await writeSparseReplica(model, 'qwen2.5-0.5b', 'Q8_0');
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, EstimateSettings][] = [
    ['-c 4096 -np 2', { ctx: 4096, parallel: 2 }],
    ['-c 8192 (4 unified slots), -fa off, q8_0 K, -ub 1024', { ctx: 8192, flashAttn: 'off', cacheTypeK: 'q8_0', ubatch: 1024 }],
  ];

  it.each(cases)('%s', async (_label, settings) => {
    const f = await footprint(model, settings);
    const e = estimateMemory(modelInfo(readGgufHeaderSync(model)), settings, CPU_ONLY);
    // the log prints MiB with 2 decimals
    const near = (bytes: number, logged: number): void => {
      expect(Math.abs(bytes - logged) / MiB).toBeLessThan(0.006);
    };
    near(e.host.modelBytes, f.host.modelBytes);
    near(e.host.contextBytes, f.host.contextBytes);
    near(e.host.computeBytes, f.host.computeBytes);
    near(e.host.overheadBytes, f.host.outputBytes);
    expect(f.devices.size).toBe(0);
    // the breakdown table printed at exit agrees (whole MiB, rounded down)
    const host = f.breakdown.find((r) => r.name === 'Host');
    expect(host).toBeDefined();
    expect(host!.computeMiB).toBe(Math.floor(e.host.computeBytes / MiB));
    expect(host!.contextMiB).toBe(Math.floor(e.host.contextBytes / MiB));
  }, 90_000);
});
