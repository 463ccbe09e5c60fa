/**
 * Config reload without downtime (issue 15 item 4), against a real llama-server: a stream under way on a model whose
 * ctx changes goes on to its end on the old instance while a reload adds a model, changes that one and removes a
 * third; the added model answers at once, the changed one from a new instance with the new ctx, the removed one is
 * a 404; keys added by a reload apply to the next request; a broken file is refused and the old config keeps serving.
 * Also `serve --watch` and SIGHUP on the command line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { stringify } from 'yaml';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type ConfigInput } from '../../src/config/index.js';
import { startProxy, type ProxyServer } from '../../src/server.js';
import { llamaTools } from '../helpers/llama.js';
import { waitFor } from '../helpers/processes.js';
import { modelsFolder, postJson } from '../helpers/proxy.js';
import { readStream } from '../helpers/sse.js';

const tools = llamaTools();
const messages = [{ role: 'user', content: 'hi' }];
/** How long the stream under way lasts: the reload and every check happen inside it. */
const STREAM_MS = 30_000;

function portRange(offset: number): [number, number] {
  const base = 46_000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 20) * 100 + offset;
  return [base, base + 49];
}

describe.skipIf(!tools.server)(`config reload${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let proxy: ProxyServer | undefined;
  afterAll(async () => {
    await proxy?.close();
  });

  it('keeps a 30-second stream going through a reload that adds, changes and removes models; refuses a broken file', async () => {
    const { root, files } = await modelsFolder([61, 62, 63]);
    const file = path.join(root, 'llama-smart-proxy.yaml');
    const base = (models: ConfigInput['models'], extra: Partial<ConfigInput> = {}): string =>
      stringify({
        server: { port: 0 },
        modelsDir: path.join(root, 'models'),
        cacheDir: path.join(root, 'cache'),
        // Liveness probes off: the stream's instance is held stopped (SIGSTOP) for most of the 30 s.
        llamaServer: { binary: tools.server, autoBuild: false, startTimeout: 60, stopTimeout: 5, healthFailures: 0 },
        // A drain longer than any loaded machine takes for the checks below: the stream must end by itself.
        pool: { size: 4, portRange: portRange(0), drainTimeout: 300 },
        log: { level: 'silent' },
        models,
        ...extra,
      });
    writeFileSync(file, base({ changing: { path: files[61], ctx: 4096 }, removed: { path: files[62], ctx: 512 } }));
    proxy = await startProxy(loadConfig({ file, env: {} }), { logger: pino({ level: process.env.LSP_TEST_LOG ?? 'silent' }) });
    const url = proxy.url;
    const pool = proxy.pool;

    expect((await postJson(`${url}/v1/chat/completions`, { model: 'removed', messages, max_tokens: 2 })).status).toBe(200);
    const startedAt = Date.now();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'changing', messages, max_tokens: 2000, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
    });
    expect(res.status).toBe(200);
    const oldInstance = pool.list().find((i) => i.modelId === 'changing')!;
    expect(oldInstance.ctx).toBe(4096);
    let held = false;
    const stream = readStream(res, () => {
      // Held for sure once it streams: the instance is stopped until the reload's checks are done.
      if (!held) {
        held = true;
        process.kill(oldInstance.pid!, 'SIGSTOP');
      }
    });
    expect(await waitFor(() => held, 10_000)).toBe(true);

    // The reload: one model added, one's ctx changed, one removed.
    writeFileSync(file, base({ changing: { path: files[61], ctx: 2048 }, added: { path: files[63], ctx: 512 } }));
    const reload = await postJson(`${url}/admin/reload`, {});
    expect(reload.status).toBe(200);
    expect(reload.json).toMatchObject({ reloaded: true, added: ['added'], changed: ['changing'], removed: ['removed'], needs_restart: [] });

    // The added model answers right after; the removed one is unknown; the changed one gets a new instance.
    const added = await postJson(`${url}/v1/chat/completions`, { model: 'added', messages, max_tokens: 2 });
    expect(added.status).toBe(200);
    expect(added.json.usage.completion_tokens).toBe(2);
    const gone = await postJson(`${url}/v1/chat/completions`, { model: 'removed', messages, max_tokens: 2 });
    expect(gone.status).toBe(404);
    expect(JSON.stringify(gone.json)).toContain('removed');
    const changed = await postJson(`${url}/v1/chat/completions`, { model: 'changing', messages, max_tokens: 2 });
    expect(changed.status).toBe(200);
    const instances = pool.list().filter((i) => i.modelId === 'changing');
    expect(instances.find((i) => i.id === oldInstance.id)?.state).toBe('stopping');
    expect(instances.find((i) => i.id !== oldInstance.id)).toMatchObject({ state: 'ready', ctx: 2048 });
    expect(pool.list().some((i) => i.modelId === 'removed')).toBe(false);

    // A broken file: refused with what is wrong, the running config kept and shown in /health.
    writeFileSync(file, base({ changing: { path: files[61], ctx: -5 } }));
    const broken = await postJson(`${url}/admin/reload`, {});
    expect(broken.status).toBe(422);
    expect(broken.json.error.message).toContain('models.changing.ctx');
    expect((await postJson(`${url}/v1/chat/completions`, { model: 'added', messages, max_tokens: 2 })).status).toBe(200);
    const health = (await (await fetch(`${url}/health`)).json()) as { config: { file: string; last_reload: { ok: boolean; error: string } } };
    expect(health.config.file).toBe(file);
    expect(health.config.last_reload.ok).toBe(false);
    expect(health.config.last_reload.error).toContain('models.changing.ctx');

    // Keys change at once: a reload that adds one makes the next request without it a 401.
    writeFileSync(file, base({ changing: { path: files[61], ctx: 2048 }, added: { path: files[63], ctx: 512 } }, { server: { port: 0, apiKeys: ['sk-reload-test-0001'] } }));
    expect((await postJson(`${url}/admin/reload`, {})).status).toBe(200);
    expect((await postJson(`${url}/v1/chat/completions`, { model: 'added', messages, max_tokens: 2 })).status).toBe(401);
    expect((await postJson(`${url}/v1/chat/completions`, { model: 'added', messages, max_tokens: 2 }, { authorization: 'Bearer sk-reload-test-0001' })).status).toBe(200);

    // The old instance goes on once let go, and its stream ends whole: every token asked for, then [DONE].
    const checksTookMs = Date.now() - startedAt;
    await new Promise((r) => setTimeout(r, Math.max(0, STREAM_MS - checksTookMs)));
    process.kill(oldInstance.pid!, 'SIGCONT');
    const record = await stream;
    const lasted = record.endedAt - startedAt;
    console.log(`stream under the reload lasted ${(lasted / 1000).toFixed(1)} s (held ${(checksTookMs / 1000).toFixed(1)} s while the reload's checks ran), ${record.chunks.length} chunks`);
    expect(record.error).toBeUndefined();
    expect(record.done).toBe(true);
    expect(record.text).not.toContain('"error"');
    expect(record.text).toMatch(/"completion_tokens":2000/);
    expect(lasted).toBeGreaterThanOrEqual(STREAM_MS);
    // Drained: the old instance stops once its stream has ended.
    expect(await waitFor(() => !pool.list().some((i) => i.id === oldInstance.id), 15_000)).toBe(true);
  }, 300_000);
});

describe.skipIf(!tools.server)(`serve --watch and SIGHUP${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  const CLI = ['--import', pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href, path.resolve('src/cli/main.ts')];
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  });

  it('reloads on a saved file with --watch and on SIGHUP, and keeps serving on a broken one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-reload-'));
    const { files } = await modelsFolder([64]);
    const file = path.join(dir, 'llama-smart-proxy.yaml');
    const write = (models: Record<string, unknown>) =>
      writeFileSync(file, stringify({ server: { port: 0 }, cacheDir: path.join(dir, 'cache'), llamaServer: { binary: tools.server, autoBuild: false }, pool: { portRange: portRange(50) }, models }));
    write({ first: { path: files[64], ctx: 512 } });
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.LLAMA_SMART_PROXY_PORT;
    child = spawn(process.execPath, [...CLI, 'serve', '--config', file, '--watch'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    expect(await waitFor(() => /listening on (http:\S+)/.test(out), 30_000)).toBe(true);
    const url = /listening on (http:\S+)/.exec(out)![1]!;
    const models = async () => ((await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }).data.map((m) => m.id).sort();
    expect(await models()).toEqual(['first']);

    write({ first: { path: files[64], ctx: 512 }, second: { path: files[64], ctx: 1024 } });
    expect(await waitForAsync(async () => (await models()).includes('second'), 10_000)).toBe(true);

    // SIGHUP re-reads (the watch would too: both paths end in the same reload).
    writeFileSync(file, 'models: [this is not a map');
    child.kill('SIGHUP');
    expect(await waitFor(() => out.includes('config reload refused'), 10_000)).toBe(true);
    expect(child.exitCode).toBeNull();
    expect(await models()).toEqual(['first', 'second']);
    const answer = await postJson(`${url}/v1/chat/completions`, { model: 'second', messages, max_tokens: 2 });
    expect(answer.status).toBe(200);
  }, 90_000);
});

async function waitForAsync(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
