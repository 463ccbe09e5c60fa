import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../src/config/index.js';
import { resolveModel } from '../../src/models/index.js';
import { canonicalModelName } from '../../src/models/model-aliases.js';
import { LlamaServerLauncher } from '../../src/pool/launcher.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-aliases-'));
const file = path.join(dir, 'a.gguf');
writeFileSync(file, 'GGUF');

function config(models: Record<string, unknown>) {
  return buildConfig({ models }, path.join(dir, 'c.yaml'), { env: {} });
}

describe('model aliases and env', () => {
  it('resolves an alias to its model, with the model\'s env', () => {
    const c = config({ chat: { path: file, aliases: ['gpt-4o-mini', 'small'], env: { LLAMA_ARG_THREADS_HTTP: '4' } } });
    expect(canonicalModelName(c, 'small')).toBe('chat');
    expect(canonicalModelName(c, 'chat')).toBe('chat');
    expect(canonicalModelName(c, 'other/repo')).toBe('other/repo');
    const m = resolveModel(c, 'gpt-4o-mini', {});
    expect(m.id).toBe('chat');
    expect(m.file).toBe(file);
    expect(m.env).toEqual({ LLAMA_ARG_THREADS_HTTP: '4' });
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['an alias taken twice', { a: { path: file, aliases: ['x'] }, b: { path: file, aliases: ['x'] } }, /models\.b\.aliases\.0: "x" is already an alias of model "a"/],
    ['an alias that is a model\'s name', { a: { path: file, aliases: ['b'] }, b: { path: file } }, /models\.a\.aliases\.0: "b" is the name of model "b"/],
    ['a bad alias', { a: { path: file, aliases: ['has space'] } }, /models\.a\.aliases\.0: aliases use letters/],
    ['a bad env name', { a: { path: file, env: { 'NOT-OK': '1' } } }, /environment variable names use letters/],
  ])('refuses %s', (_name, models, message) => {
    expect(() => config(models)).toThrow(ConfigError);
    expect(() => config(models)).toThrow(message);
  });

  it('starts the instance with the model\'s env, the placement\'s GPUs over it', () => {
    const c = config({ chat: { path: file, env: { CUDA_VISIBLE_DEVICES: '7', EXTRA: 'yes' } } });
    const launcher = new LlamaServerLauncher('/bin/true', c, 1 << 30);
    const model = resolveModel(c, 'chat', {});
    const placed = launcher.launch(model, 41001, 'i1', { gpus: [{ index: 0, uuid: 'GPU-abc', name: 'g' }], ngl: 33, splitMode: 'none', estimate: { gpuBytes: [1], hostBytes: 0 }, reason: 'test' });
    const env = placed.spec.env!;
    expect(env.EXTRA).toBe('yes');
    expect(env.CUDA_VISIBLE_DEVICES).toBe('GPU-abc');
    const cpu = launcher.launch(model, 41002, 'i2');
    expect(cpu.spec.env!.CUDA_VISIBLE_DEVICES).toBe('7');
  });
});
