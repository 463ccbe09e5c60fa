import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Ollama } from 'ollama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsCommand } from '../../src/cli/models.js';
import { pullCommand } from '../../src/cli/pull.js';
import { writeTinyModel, writeTinyProjector } from '../../src/gguf/index.js';
import { FakeOllamaRegistry } from '../helpers/fake-ollama-registry.js';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama.js';
import { llamaTools } from '../helpers/llama.js';
import { writeStoreModel } from '../helpers/ollama-store.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const RED = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

async function bytes(write: (file: string) => Promise<unknown>): Promise<Buffer> {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'lsp-blob-')), 'f.gguf');
  await write(file);
  return readFileSync(file);
}

describe.skipIf(!tools.server)(`Ollama's store and registry as model sources${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let registry: FakeOllamaRegistry;
  let ollamaBackend: FakeOllama;
  let store: string;
  let root: string;
  const digests: Record<string, string> = {};

  beforeAll(async () => {
    ({ root } = await modelsFolder([]));
    store = path.join(root, 'ollama-store');
    const tiny = (seed: number) => bytes((f) => writeTinyModel(f, { seed }));
    writeStoreModel(store, { model: 'llama3.2', tag: '1b' }, {
      model: await tiny(41),
      params: { temperature: 0.25, stop: ['zzz'], num_predict: 3, num_ctx: 768, num_gpu: 99, seed: 7 },
      system: 'You are terse.',
      template: '{{ .System }} {{ .Prompt }}',
    });
    const llava = writeStoreModel(store, { model: 'llava', tag: '7b' }, { model: await tiny(1), projector: await bytes((f) => writeTinyProjector(f, { seed: 1, textEmbd: 64 })) });
    digests.projector = llava.blobs.find((b) => b.mediaType.endsWith('.projector'))!.digest;
    registry = await FakeOllamaRegistry.start();
    const model = (blobs: { mediaType: string; digest: string }[]) => blobs.find((b) => b.mediaType.endsWith('.model'))!.digest;
    digests.pulled = model(registry.add('pulled:tiny', { model: await tiny(42), params: { num_predict: 2 } }));
    digests.resume = model(registry.add('acme/resume:tiny', { model: await tiny(43) }));
    digests.corrupt = model(registry.add('corrupt:tiny', { model: await tiny(44) }));
    digests.many = model(registry.add('many:tiny', { model: await tiny(45) }));
    digests.cli = model(registry.add('cli:tiny', { model: await tiny(46) }));
    ollamaBackend = await startFakeOllama();
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 3 },
      ollama: { models: store, registry: registry.url },
      lmstudio: { models: path.join(root, 'no-lmstudio') },
      hub: { offline: true, retries: 0 },
      backends: { ollama: { url: ollamaBackend.url, listModels: false } },
      models: { 'remote-llama': { backend: 'ollama', name: 'llama3.2:1b' } },
      modelDefaults: { ctx: 512 },
    });
  });
  afterAll(async () => {
    await t?.proxy.close();
    await registry?.close();
    await ollamaBackend?.close();
  });

  const instance = (model: string) => t.proxy.pool.list().find((i) => i.modelId === model);

  it('answers /api/chat and /v1/chat/completions with llama3.2:1b from the store, Ollama not running, with its params as defaults', async () => {
    const chat = await postJson(`${t.url}/api/chat`, { model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hi' }], stream: false });
    expect(chat.status, JSON.stringify(chat.json)).toBe(200);
    expect(chat.json.done).toBe(true);
    // num_predict 3 from the params layer (the request names no limit; the context holds 768)
    expect(chat.json.eval_count).toBeLessThanOrEqual(3);
    // num_ctx is the instance's context
    expect(instance('llama3.2:1b')!.ctx).toBe(768);

    const openai = await postJson(`${t.url}/v1/chat/completions`, { model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hi' }] });
    expect(openai.status, JSON.stringify(openai.json)).toBe(200);
    expect(openai.json.usage.completion_tokens).toBeLessThanOrEqual(3);
    // what the request says wins over the defaults (the params' seed makes the sampling repeatable)
    const own = await postJson(`${t.url}/v1/chat/completions`, { model: 'library/llama3.2:1b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 12 });
    expect(own.status).toBe(200);
    expect(own.json.usage.completion_tokens).toBeGreaterThan(3);
    // the default system prompt takes tokens when the request has none of its own
    const bare = await postJson(`${t.url}/v1/chat/completions`, { model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
    const withSystem = await postJson(`${t.url}/v1/chat/completions`, { model: 'llama3.2:1b', messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'hi' }], max_tokens: 1 });
    expect(bare.json.usage.prompt_tokens).toBeGreaterThan(withSystem.json.usage.prompt_tokens);
    expect(t.proxy.pool.list().filter((i) => i.modelId === 'llama3.2:1b')).toHaveLength(1);
    const show = await postJson(`${t.url}/api/show`, { model: 'llama3.2:1b' });
    expect(show.json).toMatchObject({ system: 'You are terse.', parameters: expect.stringContaining('temperature 0.25') });
  });

  it('passes a vision model\'s projector layer to llama-server', async () => {
    const chat = await postJson(`${t.url}/api/chat`, { model: 'llava:7b', messages: [{ role: 'user', content: 'what is this?', images: [RED] }], stream: false, options: { num_predict: 2 } });
    expect(chat.status, JSON.stringify(chat.json)).toBe(200);
    // llama-server was started with the projector blob as --mmproj
    const args = readFileSync(`/proc/${instance('llava:7b')!.pid}/cmdline`, 'utf8').split('\0');
    const mmproj = args[args.indexOf('--mmproj') + 1];
    expect(args).toContain('--mmproj');
    expect(mmproj).toBe(path.join(store, 'blobs', digests.projector!.replace(':', '-')));
    const show = await postJson(`${t.url}/api/show`, { model: 'llava:7b' });
    expect(show.json.capabilities).toContain('vision');
  });

  it('lists the store\'s models in /api/tags and /v1/models with their source, size and estimate', async () => {
    const tags = (await (await fetch(`${t.url}/api/tags`)).json()) as { models: { name: string; size: number; source: string; digest: string; estimate: { bytes: number; fits: string } | null }[] };
    const llama = tags.models.find((m) => m.name === 'llama3.2:1b')!;
    const manifest = readFileSync(path.join(store, 'manifests', 'registry.ollama.ai', 'library', 'llama3.2', '1b'), 'utf8');
    const layers = (JSON.parse(manifest) as { layers: { size: number }[] }).layers;
    expect(llama).toMatchObject({ source: 'ollama', size: layers.reduce((s, l) => s + l.size, 0) });
    expect(llama.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(llama.estimate?.bytes).toBeGreaterThan(0);
    expect(llama.estimate?.fits).toMatch(/^(cpu|gpu \d+|\d+ gpus)$/);
    expect(tags.models.map((m) => m.name)).toContain('llava:7b');
    const v1 = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string; source: Record<string, string> }[] };
    expect(v1.data.find((m) => m.id === 'llava:7b')?.source.ollama).toMatch(/sha256-[0-9a-f]{64}$/);
  });

  it('sends a store model\'s name to the Ollama backend only when the config says so', async () => {
    const before = ollamaBackend.requests.length;
    const local = await postJson(`${t.url}/api/chat`, { model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 1 } });
    expect(local.status).toBe(200);
    expect(ollamaBackend.requests.length).toBe(before);
    for (const model of ['remote-llama', 'ollama/llama3.2:1b']) {
      const remote = await postJson(`${t.url}/api/chat`, { model, messages: [{ role: 'user', content: 'hi' }], stream: false });
      expect(remote.status).toBe(200);
      expect(ollamaBackend.requests.at(-1)).toMatchObject({ path: '/api/chat', body: expect.objectContaining({ model: 'llama3.2:1b' }) });
    }
  });

  it('pulls from Ollama\'s registry with the official client showing progress, then serves the model', async () => {
    const ollama = new Ollama({ host: t.url });
    const lines: { status: string; digest?: string; total?: number; completed?: number }[] = [];
    for await (const p of await ollama.pull({ model: 'pulled:tiny', stream: true })) lines.push(p);
    expect(lines[0]!.status).toBe('pulling manifest');
    const layer = lines.filter((l) => l.digest === digests.pulled);
    expect(layer.length).toBeGreaterThan(0);
    expect(layer.at(-1)).toMatchObject({ status: `pulling ${digests.pulled!.slice(7, 19)}`, completed: layer.at(-1)!.total });
    expect(lines.map((l) => l.status).slice(-3)).toEqual(['verifying sha256 digest', 'writing manifest', 'success']);
    expect(existsSync(path.join(store, 'manifests', 'registry.ollama.ai', 'library', 'pulled', 'tiny'))).toBe(true);
    // the header was read by a range request before the download
    const cdn = registry.requests({ server: 'cdn', pathIncludes: digests.pulled });
    expect(cdn[0]!.range).toMatch(/^bytes=0-\d+$/);
    expect(cdn.filter((r) => r.range === undefined)).toHaveLength(1);
    const answer = await ollama.generate({ model: 'pulled:tiny', prompt: 'hi' });
    expect(answer.done).toBe(true);
    expect(answer.eval_count).toBeLessThanOrEqual(2);
    const again = await postJson(`${t.url}/api/pull`, { model: 'pulled:tiny', stream: false });
    expect(again.json).toEqual({ status: 'success' });
    expect(registry.requests({ server: 'cdn', pathIncludes: digests.pulled }).length).toBe(cdn.length);
  });

  it('resumes a pull interrupted mid-blob from where it broke off', async () => {
    registry.cutAfter(digests.resume!, 100_000);
    const first = await postJson(`${t.url}/api/pull`, { model: 'registry.ollama.ai/acme/resume:tiny', stream: false });
    expect(first.status).toBe(502);
    expect(first.json.error).toMatch(/broke off after .* the partial file is kept/);
    const partial = path.join(store, 'blobs', `${digests.resume!.replace(':', '-')}.incomplete`);
    const kept = readFileSync(partial).length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(100_000);
    // `namespace/model:tag` not yet in the store would be a Hugging Face repo: the registry is named
    const second = await postJson(`${t.url}/api/pull`, { model: 'ollama.com/acme/resume:tiny', stream: false });
    expect(second.status, JSON.stringify(second.json)).toBe(200);
    const gets = registry.requests({ server: 'cdn', pathIncludes: digests.resume }).filter((r) => !/^bytes=0-\d+$/.test(r.range ?? ''));
    expect(gets.map((r) => r.range)).toEqual([undefined, `bytes=${kept}-`]);
    expect(existsSync(partial)).toBe(false);
    const chat = await postJson(`${t.url}/v1/chat/completions`, { model: 'acme/resume:tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(chat.status).toBe(200);
  });

  it('refuses a corrupted blob: nothing is kept, no manifest written', async () => {
    registry.corruptBlob(digests.corrupt!);
    const r = await postJson(`${t.url}/api/pull`, { model: 'corrupt:tiny', stream: false });
    expect(r.status).toBe(502);
    expect(r.json.error).toMatch(/is corrupt: sha256 mismatch \(expected [0-9a-f]{64}, got [0-9a-f]{64}\)/);
    const blob = path.join(store, 'blobs', digests.corrupt!.replace(':', '-'));
    expect(existsSync(blob) || existsSync(`${blob}.incomplete`)).toBe(false);
    expect(existsSync(path.join(store, 'manifests', 'registry.ollama.ai', 'library', 'corrupt'))).toBe(false);
    const chat = await postJson(`${t.url}/api/chat`, { model: 'corrupt:tiny', messages: [{ role: 'user', content: 'hi' }], stream: false });
    expect(chat.status).toBe(404);
  });

  it('downloads each blob once for 8 concurrent pulls', async () => {
    registry.cdnDelayMs = 300;
    try {
      const answers = await Promise.all(Array.from({ length: 8 }, () => postJson(`${t.url}/api/pull`, { model: 'many:tiny', stream: false })));
      expect(answers.map((a) => a.status)).toEqual(new Array(8).fill(200));
    } finally {
      registry.cdnDelayMs = 0;
    }
    const full = registry.requests({ server: 'cdn', pathIncludes: digests.many }).filter((r) => r.range === undefined);
    expect(full).toHaveLength(1);
    expect(registry.requests({ server: 'registry', pathIncludes: '/v2/library/many/manifests/tiny' }).length).toBeGreaterThanOrEqual(1);
  });

  it('refuses an unknown name with the registry\'s 404, naming the model', async () => {
    const r = await postJson(`${t.url}/api/pull`, { model: 'nosuch:7b', stream: false });
    expect(r.status).toBe(404);
    expect(r.json.error).toBe(`nosuch:7b was not found on the Ollama registry ${registry.url}: no such model or tag (the registry said: MANIFEST_UNKNOWN: manifest unknown)`);
  });

  it('`llama-smart-proxy pull` fetches an Ollama name into the store with its estimate and progress', async () => {
    const cliStore = path.join(root, 'cli-store');
    const file = path.join(root, 'cli.yaml');
    writeFileSync(file, `cacheDir: ${path.join(root, 'cli-cache')}\nollama:\n  models: ${cliStore}\n  registry: ${registry.url}\ngpu:\n  source: none\n`);
    let out = '';
    let err = '';
    const stdout = new PassThrough().on('data', (c: Buffer) => (out += c.toString()));
    const stderr = new PassThrough().on('data', (c: Buffer) => (err += c.toString()));
    await pullCommand('cli:tiny', { config: file }, { stdout, stderr, env: {} });
    expect(out.trim()).toBe(path.join(cliStore, 'blobs', digests.cli!.replace(':', '-')));
    expect(err).toMatch(/^cli:tiny from http:\/\/127\.0\.0\.1:\d+: 1 layers, /);
    expect(err).toMatch(/estimate \(from the model layer's header\): .* on cpu at 4096 ctx/);
    expect(err).toMatch(/download(ed|ing) cli:tiny\/.*: 100%/);
    expect(existsSync(path.join(cliStore, 'manifests', 'registry.ollama.ai', 'library', 'cli', 'tiny'))).toBe(true);

    // `models` lists it with its source, size and estimate
    let listed = '';
    const listOut = new PassThrough().on('data', (c: Buffer) => (listed += c.toString()));
    await modelsCommand({ config: file, json: true }, { stdout: listOut, stderr, env: {} });
    const rows = JSON.parse(listed) as { name: string; source: string; size_bytes: number; estimate: { bytes: number; fits: string } | null }[];
    const row = rows.find((r) => r.name === 'cli:tiny');
    expect(row).toMatchObject({ source: 'ollama', size_bytes: readFileSync(out.trim()).length, estimate: { fits: 'cpu' } });
    expect(row!.estimate!.bytes).toBeGreaterThan(0);
    let tableText = '';
    await modelsCommand({ config: file }, { stdout: new PassThrough().on('data', (c: Buffer) => (tableText += c.toString())), stderr, env: {} });
    expect(tableText).toMatch(/^NAME\s+SOURCE\s+SIZE\s+ESTIMATE/);
    expect(tableText).toMatch(/cli:tiny\s+Ollama store\s+\S+ \S+\s+\S+ \S+ on cpu at 4096 ctx/);
  });

  it('refuses before downloading a model whose header says it can never fit this machine', async () => {
    const small = await startTestProxy(tools.server!, root, {
      ollama: { models: path.join(root, 'small-store'), registry: registry.url },
      gpu: { source: 'simulated', simulated: [{ name: 'tiny', memoryMiB: 1 }], cpuFallback: false, partialOffload: false },
    });
    try {
      const before = registry.requests({ server: 'cdn', pathIncludes: digests.many }).filter((r) => r.range === undefined).length;
      const r = await postJson(`${small.url}/api/pull`, { model: 'many:tiny', stream: false });
      expect(r.status, JSON.stringify(r.json)).toBe(503);
      expect(r.json.error).toMatch(/checked from its header; nothing was downloaded/);
      expect(registry.requests({ server: 'cdn', pathIncludes: digests.many }).filter((x) => x.range === undefined).length).toBe(before);
    } finally {
      await small.proxy.close();
    }
  });
});
