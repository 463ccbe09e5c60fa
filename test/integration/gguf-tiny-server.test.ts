import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';

const tools = llamaTools();
const server = tools.server;

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

interface RunningServer {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly log: () => string;
}

async function startServer(model: string): Promise<RunningServer> {
  const port = await freePort();
  const proc = spawn(server!, ['-m', model, '--host', '127.0.0.1', '--port', String(port), '-c', '512', '-np', '1', '-t', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const running: RunningServer = { proc, url: `http://127.0.0.1:${port}`, log: () => output };
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`llama-server exited with ${proc.exitCode}:\n${output}`);
    try {
      const res = await fetch(`${running.url}/health`);
      if (res.status === 200) return running;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stopServer(running);
  throw new Error(`llama-server not healthy within 30 s:\n${output}`);
}

async function stopServer(s: RunningServer): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => s.proc.once('exit', () => resolve()));
  s.proc.kill('SIGTERM');
  const timer = setTimeout(() => s.proc.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

async function chat(s: RunningServer, prompt: string): Promise<string> {
  const res = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: prompt }], max_tokens: 8, temperature: 0 }),
  });
  const body = (await res.json()) as { choices?: { message?: { content?: string } }[] };
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body.choices?.[0]?.message?.content ?? '';
}

describe.skipIf(!server)(`tiny model in llama-server${server ? '' : ` (skipped: ${tools.reason})`}`, () => {
  let dir: string;
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gguf-tiny-server-'));
    const models = [join(dir, 'seed-1.gguf'), join(dir, 'seed-2.gguf')];
    await writeTinyModel(models[0]!, { seed: 1 });
    await writeTinyModel(models[1]!, { seed: 2 });
    for (const model of models) servers.push(await startServer(model));
  });

  afterAll(async () => {
    await Promise.all(servers.map(stopServer));
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers chat completions, deterministically per seed and differently across seeds', async () => {
    const [a, b] = servers as [RunningServer, RunningServer];
    const first = await chat(a, 'Hello! Who are you?');
    const again = await chat(a, 'Hello! Who are you?');
    const other = await chat(b, 'Hello! Who are you?');
    console.log(`seed 1: ${JSON.stringify(first)}, seed 2: ${JSON.stringify(other)}`);
    expect(first.length, a.log()).toBeGreaterThan(0);
    expect(other.length, b.log()).toBeGreaterThan(0);
    expect(again).toBe(first);
    expect(other).not.toBe(first);
    expect(new Set(first).size).toBeGreaterThan(1); // not one token repeated
  });
});
