import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { isAlive, waitFor } from '../helpers/processes.js';

const tools = llamaTools();
// The CLI from source, through tsx's loader (absolute, since the tests run it from other folders).
const CLI = ['--import', pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href, path.resolve('src/cli/main.ts')];

function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.LLAMA_SMART_PROXY_PORT;
  delete env.LLAMA_SMART_PROXY_HOST;
  return env;
}

describe('command line', () => {
  it('refuses a broken config file with exit code 2 and the key path', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-cli-'));
    writeFileSync(path.join(dir, 'bad.yaml'), 'pool: { size: -1 }\nmodels: { a: { path: x.gguf, hf: a/b } }\n');
    const r = spawnSync(process.execPath, [...CLI, 'serve', '--config', 'bad.yaml'], { cwd: dir, env: cliEnv({}), encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/pool\.size: /);
    expect(r.stderr).toMatch(/models\.a: has both "path" and "hf"/);
  });

  it('refuses a bad --port with a message', () => {
    const r = spawnSync(process.execPath, [...CLI, 'serve', '--port', 'http'], { env: cliEnv({}), encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/port must be an integer/);
  });

  it('writes tiny models and sparse replicas', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-cli-'));
    const tiny = spawnSync(process.execPath, [...CLI, 'make-model', path.join(dir, 't.gguf'), '--seed', '7'], { encoding: 'utf8' });
    expect(tiny.status).toBe(0);
    expect(tiny.stdout).toMatch(/tiny llama model, seed 7/);
    const sparse = spawnSync(process.execPath, [...CLI, 'make-model', path.join(dir, 'l.gguf'), '--preset', 'llama-3-8b', '--quant', 'Q4_K_M'], { encoding: 'utf8' });
    expect(sparse.status).toBe(0);
    expect(sparse.stdout).toMatch(/sparse llama-3-8b Q4_K_M/);
    const bad = spawnSync(process.execPath, [...CLI, 'make-model', path.join(dir, 'x.gguf'), '--preset', 'gpt-5'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/unknown preset "gpt-5"/);
  });

  describe.skipIf(!tools.server)(`serve with no config${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
    let child: ChildProcess | undefined;
    afterEach(() => {
      if (child && child.exitCode === null) child.kill('SIGKILL');
    });

    /** `serve --port 0` in an empty folder (so: no config, the demo model); resolves with the URL it prints. */
    async function serveDemo(): Promise<{ url: string; stderr: () => string }> {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-cli-'));
      child = spawn(process.execPath, [...CLI, 'serve', '--port', '0'], {
        cwd: dir,
        env: cliEnv({ LLAMA_SERVER: tools.server!, LLAMA_SMART_PROXY_CACHE: path.join(dir, 'cache') }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout!.resume();
      expect(await waitFor(() => /listening on (http:\S+)/.test(stderr), 30_000)).toBe(true);
      return { url: /listening on (http:\S+)/.exec(stderr)![1]!, stderr: () => stderr };
    }

    async function instancePid(url: string): Promise<number> {
      return ((await (await fetch(`${url}/health`)).json()) as any).servers[0].pid as number;
    }

    it('serves the built-in demo model, answers a chat request, and leaves no llama-server after SIGTERM', async () => {
      const { url, stderr: output } = await serveDemo();
      const stderr = output();
      expect(stderr).toContain('built-in demo model as "demo"');
      expect(stderr).toContain(`curl ${url}/v1/chat/completions`);

      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(200);
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8 }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as any;
      expect(body.choices[0].message).toHaveProperty('content');
      const pid = await instancePid(url);
      expect(isAlive(pid)).toBe(true);

      const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
      child!.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(isAlive(pid)).toBe(false);
    });

    it('leaves no llama-server when the proxy is killed with SIGKILL', async () => {
      const { url } = await serveDemo();
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'demo', prompt: 'Hi', max_tokens: 4 }),
      });
      expect(res.status).toBe(200);
      const pid = await instancePid(url);
      expect(isAlive(pid)).toBe(true);
      child!.kill('SIGKILL');
      expect(await waitFor(() => !isAlive(pid), 5_000)).toBe(true);
    });
  });
});
