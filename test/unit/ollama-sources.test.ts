import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyRequestRules } from '../../src/api/request-rules.js';
import { buildConfig } from '../../src/config/index.js';
import { ClientError, pullTarget, resolveModel } from '../../src/models/index.js';
import { listLmStudioModels, listOllamaModels, modelLayers, ollamaDisplayName, paramsSettings, parseManifest, parseOllamaName } from '../../src/sources/index.js';
import { writeStoreModel } from '../helpers/ollama-store.js';

function refusal(fn: () => unknown): ClientError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ClientError) return err;
    throw err;
  }
  throw new Error('expected a ClientError');
}

describe('Ollama names', () => {
  it.each([
    ['llama3.2', 'registry.ollama.ai', 'library', 'llama3.2', 'latest', 'bare', 'llama3.2:latest'],
    ['llama3.2:1b', 'registry.ollama.ai', 'library', 'llama3.2', '1b', 'bare', 'llama3.2:1b'],
    ['library/llama3.2:1b', 'registry.ollama.ai', 'library', 'llama3.2', '1b', 'namespaced', 'llama3.2:1b'],
    ['user/model:tag', 'registry.ollama.ai', 'user', 'model', 'tag', 'namespaced', 'user/model:tag'],
    ['registry.ollama.ai/library/llama3.2:1b', 'registry.ollama.ai', 'library', 'llama3.2', '1b', 'host', 'llama3.2:1b'],
    ['https://ollama.com/library/qwen3:0.6b', 'registry.ollama.ai', 'library', 'qwen3', '0.6b', 'host', 'qwen3:0.6b'],
    ['my.registry:5000/team/model', 'my.registry:5000', 'team', 'model', 'latest', 'host', 'my.registry:5000/team/model:latest'],
    ['localhost/team/model:q4_K_M', 'localhost', 'team', 'model', 'q4_K_M', 'host', 'localhost/team/model:q4_K_M'],
  ])('parses %s', (id, host, namespace, model, tag, form, display) => {
    const n = parseOllamaName(id);
    expect(n).toEqual({ host, namespace, model, tag, form });
    expect(ollamaDisplayName(n!)).toBe(display);
  });

  it.each(['hf.co/acme/x:Q4_K_M', 'a/b/c', 'a/b/c/d', 'x.gguf', 'bad name', 'model:', ':tag', 'a/../b', 'm:' + 'x'.repeat(200), ''])('is not an Ollama name: %j', (id) => {
    expect(parseOllamaName(id)).toBeUndefined();
  });
});

describe("Ollama manifests and params", () => {
  const d = (c: string) => `sha256:${c.repeat(64)}`;
  const manifest = (layers: { mediaType: string; digest: string; size: number }[]) => JSON.stringify({ schemaVersion: 2, layers });

  it('finds the model, projector, adapters, params, system and template layers', () => {
    const m = parseManifest(
      manifest([
        { mediaType: 'application/vnd.ollama.image.model', digest: d('a'), size: 10 },
        { mediaType: 'application/vnd.ollama.image.projector', digest: d('b'), size: 5 },
        { mediaType: 'application/vnd.ollama.image.adapter', digest: d('c'), size: 3 },
        { mediaType: 'application/vnd.ollama.image.params', digest: d('e'), size: 2 },
        { mediaType: 'application/vnd.ollama.image.system', digest: d('f'), size: 2 },
        { mediaType: 'application/vnd.ollama.image.template', digest: d('1'), size: 2 },
      ]),
      'test',
    );
    const l = modelLayers(m, 'x');
    expect([l.model.digest, l.projector?.digest, l.adapters.map((a) => a.digest), l.params?.digest, l.system?.digest, l.template?.digest]).toEqual([d('a'), d('b'), [d('c')], d('e'), d('f'), d('1')]);
  });

  it('refuses what is not a manifest, and a manifest without a model layer, naming the problem', () => {
    expect(refusal(() => parseManifest('{nope', 'the manifest of x')).message).toMatch(/the manifest of x is not JSON/);
    expect(refusal(() => parseManifest(JSON.stringify({ layers: [{ mediaType: 'm', digest: 'md5:1', size: 1 }] }), 'm')).message).toMatch(/layers\.0\.digest a digest is "sha256:"/);
    const noModel = parseManifest(manifest([{ mediaType: 'application/vnd.ollama.image.license', digest: d('a'), size: 1 }]), 'm');
    const r = refusal(() => modelLayers(noModel, 'qwen3:0.6b'));
    expect([r.status, r.message]).toEqual([422, 'Ollama model qwen3:0.6b has no model layer (application/vnd.ollama.image.model); its layers: application/vnd.ollama.image.license']);
  });

  it.each([
    [{ temperature: 0.6, stop: ['<|eot_id|>'], num_ctx: 8192 }, { ctx: 8192, defaults: { temperature: 0.6, stop: ['<|eot_id|>'] }, ignored: [] }],
    [{ num_predict: 42, top_k: 20, repeat_penalty: 1.1, num_keep: 4 }, { defaults: { max_tokens: 42, top_k: 20, repeat_penalty: 1.1, n_keep: 4 }, ignored: [] }],
    [{ num_gpu: 99, num_thread: 8, min_p: 0.05, num_ctx: 0 }, { defaults: { min_p: 0.05 }, ignored: ['num_gpu', 'num_thread'] }],
  ])('maps params %j', (params, expected) => {
    expect(paramsSettings(JSON.stringify(params), 'm')).toEqual(expected);
  });

  it('refuses params that are not an object', () => {
    expect(refusal(() => paramsSettings('[1]', 'llama3.2:1b')).message).toBe('the params layer of Ollama model llama3.2:1b is not a JSON object');
  });
});

describe('resolving from Ollama\'s store and LM Studio\'s folder', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-sources-'));
  const store = path.join(root, 'ollama');
  const lm = path.join(root, 'lmstudio');
  const config = buildConfig({ modelsDir: path.join(root, 'models'), cacheDir: path.join(root, 'cache'), ollama: { models: store }, lmstudio: { models: lm }, modelDefaults: { ctx: 4096, parallel: 2 } }, null, { env: {} });
  const env = { HF_HUB_CACHE: path.join(root, 'no-hf') };
  const gguf = Buffer.from('GGUF-not-really');
  const llama = writeStoreModel(store, { model: 'llama3.2', tag: '1b' }, { model: gguf, params: { temperature: 0.25, stop: ['<end>'], num_ctx: 1024, num_gpu: 1 }, system: 'You are terse.', template: '{{ .Prompt }}' });
  writeStoreModel(store, { model: 'llava', tag: 'latest' }, { model: Buffer.from('vision'), projector: Buffer.from('proj') });
  writeStoreModel(store, { namespace: 'acme', model: 'tool', tag: 'v2' }, { model: Buffer.from('tool') });
  mkdirSync(path.join(lm, 'lmpub', 'Tiny-GGUF'), { recursive: true });
  for (const f of ['Tiny-Q8_0.gguf', 'Tiny-Q5_K_M.gguf', 'mmproj-Tiny-F16.gguf']) writeFileSync(path.join(lm, 'lmpub', 'Tiny-GGUF', f), f);

  it('resolves Ollama names to the model blob, with params as the context and request defaults, and the system prompt', () => {
    const blob = path.join(store, 'blobs', llama.blobs.find((b) => b.mediaType.endsWith('.model'))!.digest.replace(':', '-'));
    for (const id of ['llama3.2:1b', 'library/llama3.2:1b', 'registry.ollama.ai/library/llama3.2:1b', 'LLAMA3.2:1B']) {
      const m = resolveModel(config, id, env);
      expect(m).toMatchObject({ id: 'llama3.2:1b', file: blob, source: 'ollama', ctx: 2048, parallel: 2 });
      expect(m.rules).toEqual({ defaults: { temperature: 0.25, stop: ['<end>'] }, force: {}, strip: [], system: 'You are terse.' });
      expect(m.notes).toContain('params with no llama-server equivalent, not applied: num_gpu');
    }
    const llava = resolveModel(config, 'llava', env);
    expect([llava.id, path.basename(llava.mmproj ?? '')]).toEqual(['llava:latest', expect.stringMatching(/^sha256-[0-9a-f]{64}$/)]);
    expect(resolveModel(config, 'acme/tool:v2', env)).toMatchObject({ id: 'acme/tool:v2', source: 'ollama' });
  });

  it('answers 404 for an Ollama name in no store, saying where it looked and how to pull it', () => {
    const r = refusal(() => resolveModel(config, 'qwen3:0.6b', env));
    expect(r.status).toBe(404);
    expect(r.message).toContain('model "qwen3:0.6b" is not configured');
    expect(r.message).toContain(`it is not in Ollama's store either (looked in ${store}`);
    expect(r.message).toContain('llama-smart-proxy pull qwen3:0.6b');
    expect(refusal(() => resolveModel(config, 'registry.ollama.ai/library/nope', env)).message).toContain('llama-smart-proxy pull nope:latest');
  });

  it('says which blob is missing from a broken store entry', () => {
    const broken = mkdtempSync(path.join(os.tmpdir(), 'lsp-broken-'));
    const built = writeStoreModel(broken, { model: 'gone' }, { model: Buffer.from('x') });
    rmSync(path.join(broken, 'blobs', built.blobs[1]!.digest.replace(':', '-')));
    const c = buildConfig({ cacheDir: path.join(broken, 'cache'), ollama: { models: broken } }, null, { env: {} });
    const r = refusal(() => resolveModel(c, 'gone', env));
    expect([r.status, r.code]).toEqual([404, 'model_incomplete']);
    expect(r.message).toContain(`its model blob ${built.blobs[1]!.digest} is missing`);
    const skipped: string[] = [];
    expect(listOllamaModels([broken], (m) => skipped.push(m))).toEqual([]);
    expect(skipped).toHaveLength(1);
  });

  it('resolves publisher/repo[:variant] from LM Studio\'s folder, the projector beside it', () => {
    const m = resolveModel(config, 'lmpub/Tiny-GGUF:Q8_0', env);
    expect(m).toMatchObject({ id: 'lmpub/Tiny-GGUF:Q8_0', file: path.join(lm, 'lmpub', 'Tiny-GGUF', 'Tiny-Q8_0.gguf'), source: 'lmstudio', mmproj: path.join(lm, 'lmpub', 'Tiny-GGUF', 'mmproj-Tiny-F16.gguf') });
    // no variant named: Q4_K_M is not there, the closest is taken
    expect(resolveModel(config, 'lmpub/Tiny-GGUF', env)).toMatchObject({ id: 'lmpub/Tiny-GGUF:Q5_K_M' });
    expect(refusal(() => resolveModel(config, 'lmpub/Tiny-GGUF:IQ1_S', env)).status).toBe(404);
    expect(listLmStudioModels([lm]).map((e) => e.id)).toEqual(['lmpub/Tiny-GGUF:Q5_K_M', 'lmpub/Tiny-GGUF:Q8_0']);
  });

  it('pulls Ollama-only names from Ollama\'s registry, owner/repo from Hugging Face', () => {
    const kind = (id: string) => {
      const t = pullTarget(config, id, env);
      return t.kind === 'ollama' ? `ollama ${ollamaDisplayName(t.name)}` : `hf ${t.repo}${t.variant ? `:${t.variant}` : ''}`;
    };
    expect(['llama3.2', 'qwen3:0.6b', 'library/qwen3:0.6b', 'ollama.com/x/y:z', 'acme/tool:v2', 'acme/other:v2', 'hf.co/acme/other:Q8_0'].map(kind)).toEqual([
      'ollama llama3.2:latest', 'ollama qwen3:0.6b', 'ollama qwen3:0.6b', 'ollama x/y:z', 'ollama acme/tool:v2', 'hf acme/other:v2', 'hf acme/other:Q8_0',
    ]);
  });
});

describe('request rules with a default system prompt', () => {
  const rules = { defaults: { temperature: 0.2 }, force: {}, strip: [], system: 'Be brief.' };
  it.each([
    [{ messages: [{ role: 'user', content: 'hi' }] }, { temperature: 0.2, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }] }],
    [{ messages: [{ role: 'system', content: 'mine' }, { role: 'user', content: 'hi' }], temperature: 1 }, { temperature: 1, messages: [{ role: 'system', content: 'mine' }, { role: 'user', content: 'hi' }] }],
    [{ prompt: 'hi' }, { prompt: 'hi', temperature: 0.2 }],
  ])('%j', (body, expected) => {
    expect(applyRequestRules(body, rules)).toEqual(expected);
  });
});
