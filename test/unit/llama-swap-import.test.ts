import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/index.js';
import { importLlamaSwap, LlamaSwapImportError, type LlamaSwapImport } from '../../src/config/llama-swap-import.js';
import { shellWords } from '../../src/config/shell-words.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'llama-swap');
const TINY = '/srv/tiny';
const env = { TINY_MODELS: TINY };

function fixture(name: string): LlamaSwapImport {
  return importLlamaSwap(readFileSync(path.join(FIXTURES, name), 'utf8'), { env, baseDir: FIXTURES, source: name });
}

function imported(yaml: string, extra = ''): LlamaSwapImport {
  return importLlamaSwap(`${extra}models:\n${yaml}`, { env, baseDir: '/etc/llama-swap' });
}

const messages = (r: LlamaSwapImport) => r.notes.map((n) => `${n.where}: ${n.message}`);

describe('shellWords', () => {
  it.each<[string, string[]]>([
    ['llama-server -m a.gguf', ['llama-server', '-m', 'a.gguf']],
    ['  a   b\tc\n d ', ['a', 'b', 'c', 'd']],
    [`a 'b c' "d e"`, ['a', 'b c', 'd e']],
    [`a "x \\"y\\" \\$z"`, ['a', 'x "y" $z']],
    [`a 'no \\escape'`, ['a', 'no \\escape']],
    ['a\\ b c', ['a b', 'c']],
    ['a \\\n b', ['a', 'b']],
    ['a # comment\nb', ['a', 'b']],
    ['a#not-a-comment', ['a#not-a-comment']],
    [`x=""`, ['x=']],
  ])('%j', (line, words) => {
    expect(shellWords(line)).toEqual(words);
  });

  it('refuses an unterminated quote', () => {
    expect(() => shellWords(`a 'b`)).toThrow(/unterminated ' quote/);
    expect(() => shellWords(`a "b`)).toThrow(/unterminated " quote/);
  });
});

describe('importLlamaSwap: the example configurations', () => {
  it('one-at-a-time: models, macros, ttl, aliases, env, filters, global settings', () => {
    const r = fixture('one-at-a-time.yaml');
    expect(r.config).toEqual({
      pool: { ttl: 300 },
      llamaServer: { startTimeout: 90 },
      log: { level: 'info' },
      models: {
        'chat-small': {
          path: `${TINY}/tiny-1.gguf`,
          ctx: 512,
          parallel: 2,
          args: ['-t', '2', '--no-webui', '--temp', '0.6'],
          ttl: 120,
          aliases: ['gpt-4o-mini', 'small'],
          env: { LLAMA_ARG_THREADS_HTTP: '4' },
          description: 'Small chat model',
          rules: { strip: ['top_k'], force: { top_p: 0.9 } },
        },
        'chat-second': { path: `${TINY}/tiny-2.gguf`, ctx: 512, args: ['-t', '2', '--no-webui'], ttl: 0, description: 'Second model, never unloaded' },
      },
    });
    expect(messages(r)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^models\.chat-small\.cmd: dropped -ngl 99: the proxy places each model/),
        expect.stringMatching(/^models\.chat-small\.cmd: dropped --host 127\.0\.0\.1: the proxy sets the host/),
        expect.stringMatching(/^models\.chat-small\.env: dropped CUDA_VISIBLE_DEVICES=0/),
      ]),
    );
    // --port ${PORT} goes without a word: the proxy always picks the port.
    expect(messages(r).join('\n')).not.toContain('--port');
  });

  it('groups-and-foreign: groups become pool.size, foreign commands are reported with their command lines', () => {
    const r = fixture('groups-and-foreign.yaml');
    expect(r.config).toEqual({
      pool: { size: 2 },
      models: {
        coder: { path: `${TINY}/tiny-3.gguf`, ctx: 512, parallel: 1, args: ['--jinja', '-fa', 'auto'] },
        'hub-model': { hf: 'acme/tiny-GGUF:Q8_0', ctx: 512, args: [], aliases: ['hub-model-latest'] },
      },
    });
    const all = messages(r).join('\n');
    expect(all).toContain('models.coder.cmd: ran /opt/llama.cpp/build/bin/llama-server; the proxy runs llamaServer.binary');
    expect(all).toContain('dropped --tensor-split 1,1, -mg 0');
    expect(all).toContain('dropped --port 8999');
    expect(all).toContain('models.coder.proxy: not imported');
    expect(all).toContain('models.coder.checkEndpoint: not imported');
    expect(all).toContain('models.coder.unloadTimeout: not imported');
    expect(all).toContain('models.coder.metadata: not imported');
    expect(all).toContain('models.hub-model.cmd: dropped --alias tiny-from-hub');
    expect(all).toContain('models.vllm-model.cmd: not imported: it runs vllm, not llama-server');
    expect(all).toContain('vllm serve Qwen/Qwen2.5-0.5B-Instruct --port ${PORT}');
    expect(all).toContain('models.in-docker.cmd: not imported: it runs docker');
    expect(all).toContain('models.in-docker.cmdStop: was: docker stop in-docker');
    expect(all).toMatch(/^groups: not imported: memory-aware placement/m);
    expect(all).toMatch(/^hooks: not imported/m);
    expect(all).toMatch(/^startPort: not imported/m);
    // The comments of the written file hold all of it.
    for (const n of r.notes) expect(r.yaml).toContain(n.message);
  });

  it('matrix-and-vision: model macros over global ones, the projector path, a partial -ngl kept as a pin', () => {
    const r = fixture('matrix-and-vision.yaml');
    expect(r.config).toEqual({
      pool: { size: 2 },
      models: {
        vision: { path: `${TINY}/tiny-1.gguf`, ctx: 1024, args: ['-t', '2', '--mmproj', `${TINY}/tiny-mmproj.gguf`], gpu: { ngl: 12 } },
        'text-a': { path: `${TINY}/tiny-4.gguf`, ctx: 512, args: ['-t', '2', '--reasoning-budget', '0'] },
        'text-b': { path: `${TINY}/tiny-2.gguf`, ctx: 512, args: ['-t', '2'] },
      },
    });
    const all = messages(r).join('\n');
    expect(all).toContain('models.vision.cmd: dropped -ngl 12 (kept as gpu.ngl: 12)');
    expect(all).toContain('models.vision.capabilities: not imported');
    expect(all).toContain('models.text-a.filters.setParamsByID: no equivalent');
    expect(all).toContain('models.text-b.useModelName: not imported');
    expect(all).toContain('models.text-b.unlisted: not imported');
    expect(all).toMatch(/^routing: not imported/m);
  });

  it.each(['one-at-a-time.yaml', 'groups-and-foreign.yaml', 'matrix-and-vision.yaml'])('%s: the written YAML is what serve accepts, and the same document', (name) => {
    const r = fixture(name);
    const parsed: unknown = parseYaml(r.yaml);
    expect(parsed).toEqual(r.config);
    const config = buildConfig(parsed, '/etc/lsp/imported.yaml', { env: {} });
    expect(Object.keys(config.models).sort()).toEqual(Object.keys(r.config.models as object).sort());
    expect(r.yaml.startsWith(`# Imported from ${name}`)).toBe(true);
  });
});

describe('importLlamaSwap: commands and keys', () => {
  it('reads the flags in their other spellings, and paths relative to the llama-swap file', () => {
    const r = imported('  m:\n    cmd: llama-server --port=${PORT} --model=models/a.gguf --ctx-size=2048 --parallel=3 --mmproj=p.gguf -md d.gguf --n-gpu-layers all\n');
    expect(r.config.models).toEqual({ m: { path: '/etc/llama-swap/models/a.gguf', ctx: 2048, parallel: 3, args: ['--mmproj', '/etc/llama-swap/p.gguf', '--model-draft', '/etc/llama-swap/d.gguf'].map((a) => (a === '--model-draft' ? '-md' : a)) } });
    expect(messages(r).join('\n')).toContain('the relative model path models/a.gguf is taken from the llama-swap file\'s folder: /etc/llama-swap/models/a.gguf');
  });

  it.each<[string, string, string | undefined]>([
    ['-hf owner/repo-GGUF', 'owner/repo-GGUF', 'names no quantization'],
    ['-hf owner/repo-GGUF:Q5_K_M', 'owner/repo-GGUF:Q5_K_M', undefined],
    ['--hf-repo owner/repo-GGUF:Q5_K_M --hf-file repo-IQ4_XS.gguf', 'owner/repo-GGUF:repo-IQ4_XS.gguf', undefined],
  ])('%s -> hf %s', (flags, hf, said) => {
    const r = imported(`  m:\n    cmd: llama-server ${flags}\n`);
    expect((r.config.models as Record<string, { hf: string }>).m!.hf).toBe(hf);
    if (said) expect(messages(r).join('\n')).toContain(said);
    else expect(messages(r)).toEqual([]);
  });

  it('-c 0 and -np -1 leave the context and slots to modelDefaults, and say so', () => {
    const r = imported('  m:\n    cmd: llama-server -m /m.gguf -c 0 -np -1\n');
    expect(r.config.models).toEqual({ m: { path: '/m.gguf', args: [] } });
    expect(messages(r).join('\n')).toContain('-c 0 took the model\'s training context');
    expect(messages(r).join('\n')).toContain('-np -1 let llama-server choose its slots');
  });

  it('a llama-server command without a model is reported, not imported', () => {
    const r = imported('  router:\n    cmd: llama-server --models-dir /models --port ${PORT}\n');
    expect(r.config.models).toEqual({});
    expect(messages(r).join('\n')).toContain('models.router.cmd: not imported: its command names no model');
    expect(messages(r).join('\n')).toContain('models: no model runs llama-server');
  });

  it('expands no macro in comment lines, and lets a model macro override a global one in place', () => {
    const r = importLlamaSwap(
      'macros:\n  dir: /g\n  file: "${dir}/m.gguf"\nmodels:\n  m:\n    macros:\n      dir: /own\n    cmd: |\n      # ${undefined_here} is only a comment\n      llama-server -m ${file} --alias ${MODEL_ID}\n',
      { env: {}, baseDir: '/' },
    );
    expect(r.config.models).toEqual({ m: { path: '/own/m.gguf', args: [] } });
    expect(messages(r).join('\n')).toContain('dropped --alias m');
  });

  it('keeps ${PID} for cmdStop and names a model whose name this proxy cannot take', () => {
    const r = imported('  "bad name":\n    cmd: llama-server -m /a.gguf\n    cmdStop: kill ${PID}\n');
    expect(r.config.models).toEqual({});
    expect(messages(r).join('\n')).toContain('the name "bad name" is not one this proxy accepts');
  });

  it('reports unknown keys, globally and per model', () => {
    const r = imported('  m:\n    cmd: llama-server -m /a.gguf\n    fancy: 1\n', 'somethingNew: true\n');
    expect(messages(r)).toEqual(['models.m.fancy: unknown key, not imported', 'somethingNew: unknown key, not imported']);
  });

  it('carries apiKeys (their env macros expanded) and clamps healthCheckTimeout to llama-swap\'s minimum', () => {
    const r = importLlamaSwap('apiKeys: ["sk-a", "${env.KEY_B}"]\nhealthCheckTimeout: 5\nmodels:\n  m:\n    cmd: llama-server -m /a.gguf\n', { env: { KEY_B: 'sk-b' }, baseDir: '/' });
    expect(r.config.server).toEqual({ apiKeys: ['sk-a', 'sk-b'] });
    expect(r.config.llamaServer).toEqual({ startTimeout: 15 });
  });

  it.each<[string, string, RegExp]>([
    ['not YAML', 'models: [', /not a YAML document/],
    ['no models', 'macros: {}\n', /has no models/],
    ['a list', '- a\n', /is a map with a "models" key/],
    ['undefined macro', 'models:\n  m:\n    cmd: llama-server -m ${nowhere}/a.gguf\n', /models\.m\.cmd: uses \$\{nowhere\}, which is not a defined macro/],
    ['unset env var', 'models:\n  m:\n    cmd: llama-server -m ${env.NOT_SET_ANYWHERE}/a.gguf\n', /\.models\.m\.cmd: uses \$\{env\.NOT_SET_ANYWHERE\}, but the environment variable NOT_SET_ANYWHERE is not set/],
    ['reserved macro', 'macros:\n  PORT: 1\nmodels:\n  m:\n    cmd: llama-server -m /a.gguf\n', /macros\.PORT: PORT is reserved/],
    ['macro used before it is defined', 'macros:\n  a: "${b}"\n  b: x\nmodels:\n  m:\n    cmd: llama-server -m /${a}.gguf\n', /models\.m\.cmd: uses \$\{b\} through a macro declared before it/],
    ['undefined macro in a global one', 'macros:\n  a: "${zz}"\nmodels:\n  m:\n    cmd: llama-server -m /${a}.gguf\n', /uses \$\{zz\}, which is not a defined macro \(defined: a\)/],
    ['no cmd', 'models:\n  m:\n    ttl: 5\n', /models\.m\.cmd: every model needs a command/],
    ['bad env entry', 'models:\n  m:\n    cmd: llama-server -m /a.gguf\n    env: ["JUST_A_NAME"]\n', /models\.m\.env: "JUST_A_NAME" is not NAME=value/],
    ['bad ctx', 'models:\n  m:\n    cmd: llama-server -m /a.gguf -c big\n', /models\.m\.cmd: -c takes a whole number, not "big"/],
    ['flag without its value', 'models:\n  m:\n    cmd: llama-server -m\n', /models\.m\.cmd: -m needs a value/],
    ['unterminated quote', `models:\n  m:\n    cmd: llama-server -m '/a.gguf\n`, /models\.m\.cmd: unterminated ' quote/],
    ['bad ttl', 'models:\n  m:\n    cmd: llama-server -m /a.gguf\n    ttl: soon\n', /models\.m\.ttl: a whole number of seconds/],
  ])('%s is an error naming the problem', (_name, text, message) => {
    expect(() => importLlamaSwap(text, { env: {}, baseDir: '/' })).toThrow(LlamaSwapImportError);
    expect(() => importLlamaSwap(text, { env: {}, baseDir: '/' })).toThrow(message);
  });
});
