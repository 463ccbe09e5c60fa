import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { modelResolver } from '../../src/api/model-resolution.js';
import { buildConfig } from '../../src/config/index.js';
import type { ModelHub } from '../../src/models/index.js';
import type { Pool } from '../../src/pool/pool.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-recent-'));
  dirs.push(dir);
  for (const f of ['a.gguf', 'b.gguf']) writeFileSync(path.join(dir, f), 'GGUF');
  const config = buildConfig({ cacheDir: path.join(dir, 'cache'), models: { chat: { path: path.join(dir, 'a.gguf'), ctx: 4096 } } }, null, { env: {} });
  // A configured path never reaches the hub or the pool: neither is called here.
  const resolver = modelResolver({ config, pool: {} as unknown as Pool, hub: {} as unknown as ModelHub });
  return { dir, config, resolver };
}

describe('request ids resolved again within a second', () => {
  it('give the same resolution without resolving again', async () => {
    const { resolver } = setup();
    const first = await resolver.async('chat');
    expect(first).toMatchObject({ id: 'chat', ctx: 4096 });
    expect(await resolver.async('chat')).toBe(first);
    // A variant id is its own entry.
    expect(await resolver.async('chat#ctx1024')).toMatchObject({ ctx: 1024 });
    expect(await resolver.async('chat')).toBe(first);
  });

  it('are reused without a hub too', async () => {
    const { config } = setup();
    const resolver = modelResolver({ config, pool: {} as unknown as Pool });
    const first = await resolver.async('chat');
    expect(await resolver.async('chat')).toBe(first);
  });

  it('are resolved again once a reload replaced the models', async () => {
    const { dir, config, resolver } = setup();
    const first = await resolver.async('chat');
    config.models = { ...config.models, chat: { ...config.models.chat!, path: path.join(dir, 'b.gguf') } };
    const again = await resolver.async('chat');
    expect(again).not.toBe(first);
    expect(again.file).toBe(path.join(dir, 'b.gguf'));
  });

  it('never keep a refusal', async () => {
    const { dir, config, resolver } = setup();
    await expect(resolver.async('other')).rejects.toMatchObject({ status: 404 });
    config.models = { ...config.models, other: { ...config.models.chat!, path: path.join(dir, 'b.gguf') } };
    expect(await resolver.async('other')).toMatchObject({ id: 'other' });
  });
});
