import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { buildConfig, type ConfigInput } from '../../src/config/index.js';
import { writeTinyModel } from '../../src/gguf/index.js';
import { startProxy, type ProxyServer } from '../../src/server.js';

export interface TestProxy {
  proxy: ProxyServer;
  root: string;
  url: string;
}

/** A folder with tiny models (one per seed) under models/, named m<seed>.gguf. */
export async function modelsFolder(seeds: number[]): Promise<{ root: string; modelsDir: string; files: Record<number, string> }> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-it-'));
  const modelsDir = path.join(root, 'models');
  mkdirSync(modelsDir);
  const files: Record<number, string> = {};
  for (const seed of seeds) {
    files[seed] = path.join(modelsDir, `m${seed}.gguf`);
    await writeTinyModel(files[seed], { seed });
  }
  return { root, modelsDir, files };
}

function workerPortRange(): [number, number] {
  const base = 42_000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 20) * 200;
  return [base, base + 199];
}

/** Starts the proxy on a free port with the given llama-server and config (modelsDir/cacheDir in a temp folder). */
export async function startTestProxy(binary: string, root: string, input: ConfigInput, options: { logger?: Logger } = {}): Promise<TestProxy> {
  const config = buildConfig(
    {
      modelsDir: path.join(root, 'models'),
      cacheDir: path.join(root, 'cache'),
      // Hermetic: not the Ollama store or LM Studio folder of whoever runs the tests.
      ollama: { models: path.join(root, 'ollama') },
      lmstudio: { models: path.join(root, 'lmstudio') },
      ...input,
      server: { port: 0, ...input.server },
      // Test files run in parallel workers: give each its own instance ports.
      pool: { portRange: workerPortRange(), ...input.pool },
      llamaServer: { binary, autoBuild: false, startTimeout: 60, stopTimeout: 5, ...input.llamaServer },
      log: { level: 'silent' },
    },
    path.join(root, 'test-config.yaml'),
    { env: {} },
  );
  const proxy = await startProxy(config, { logger: options.logger ?? pino({ level: process.env.LSP_TEST_LOG ?? 'silent' }) });
  return { proxy, root, url: proxy.url };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}
