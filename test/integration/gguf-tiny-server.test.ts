import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';
import { startLlamaServer, type RunningLlamaServer } from '../helpers/llama-process.js';

const tools = llamaTools();
const server = tools.server;

type RunningServer = RunningLlamaServer;

const startServer = (model: string): Promise<RunningServer> => startLlamaServer(server!, model, ['-c', '512', '-np', '1', '-t', '2']);
const stopServer = (s: RunningServer): Promise<void> => s.stop();

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
    expect(first.length, a.output()).toBeGreaterThan(0);
    expect(other.length, b.output()).toBeGreaterThan(0);
    expect(again).toBe(first);
    expect(other).not.toBe(first);
    expect(new Set(first).size).toBeGreaterThan(1); // not one token repeated
  });
});
