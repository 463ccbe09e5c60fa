import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError, loadConfig } from '../../src/config/index.js';

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'lsp-config-'));
}

describe('configuration', () => {
  it('accepts the example file from the issue, paths taken from the file\'s folder', () => {
    const dir = tempDir();
    const file = path.join(dir, 'conf.yaml');
    writeFileSync(
      file,
      [
        'server: { host: 127.0.0.1, port: 8080 }',
        'pool: { size: 2 }',
        'models:',
        '  tiny-a: { path: ./models/a.gguf, ctx: 2048, parallel: 2 }',
        '  tiny-b: { path: ./models/b.gguf, ctx: 2048, ttl: 300 }',
        '  qwen:   { hf: "unsloth/Qwen3-0.6B-GGUF:Q4_K_M" }',
      ].join('\n'),
    );
    const config = loadConfig({ file, env: {} });
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(config.pool.size).toBe(2);
    expect(config.models['tiny-a']).toMatchObject({ path: path.join(dir, 'models/a.gguf'), ctx: 2048, parallel: 2 });
    expect(config.models['tiny-b']).toMatchObject({ ttl: 300, pinned: false });
    expect(config.models.qwen?.hf).toBe('unsloth/Qwen3-0.6B-GGUF:Q4_K_M');
    expect(config.modelsDir).toBe(path.join(dir, 'models'));
    expect(config.source).toBe(file);
  });

  it('reads JSON too', () => {
    const dir = tempDir();
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ pool: { size: 3 }, modelsDir: '/srv/models' }));
    const config = loadConfig({ file, env: {} });
    expect(config.pool.size).toBe(3);
    expect(config.modelsDir).toBe('/srv/models');
  });

  it('uses built-in defaults without a file, and the default file when present', () => {
    const dir = tempDir();
    expect(loadConfig({ cwd: dir, env: {} }).source).toBeNull();
    writeFileSync(path.join(dir, 'llama-smart-proxy.yaml'), 'server: { port: 9999 }\n');
    const config = loadConfig({ cwd: dir, env: {} });
    expect(config.server.port).toBe(9999);
    expect(config.source).toBe(path.join(dir, 'llama-smart-proxy.yaml'));
  });

  it('names the key path and the problem for an invalid file', () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'server: { port: "eighty" }\npool: { size: 0 }\nmodels:\n  m: { ctx: 10 }\nbogus: 1\n');
    let error: unknown;
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain(file);
    expect(message).toMatch(/server\.port: .*expected number/);
    expect(message).toMatch(/pool\.size: .*>0/);
    expect(message).toMatch(/models\.m: needs one of "path" or "hf"/);
    expect(message).toMatch(/\(top level\): Unrecognized key: "bogus"/);
  });

  it('reports YAML syntax errors and missing files', () => {
    const dir = tempDir();
    const file = path.join(dir, 'broken.yaml');
    writeFileSync(file, 'server: { port: 80\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/not valid YAML\/JSON/);
    expect(() => loadConfig({ file: path.join(dir, 'nope.yaml'), env: {} })).toThrow(/does not exist/);
  });

  it('lets the environment and then the command line override address and port', () => {
    const env = { LLAMA_SMART_PROXY_HOST: '0.0.0.0', LLAMA_SMART_PROXY_PORT: '9000' };
    const fromEnv = buildConfig({ server: { port: 1234 } }, null, { env });
    expect(fromEnv.server).toMatchObject({ host: '0.0.0.0', port: 9000 });
    const fromFlags = buildConfig({ server: { port: 1234 } }, null, { env, overrides: { port: 7000, host: '::1' } });
    expect(fromFlags.server).toMatchObject({ host: '::1', port: 7000 });
    expect(() => buildConfig({}, null, { env: { LLAMA_SMART_PROXY_PORT: 'x' } })).toThrow(/LLAMA_SMART_PROXY_PORT/);
  });

  it('adds API keys from LLAMA_SMART_PROXY_API_KEYS to the config\'s, and refuses an empty one', () => {
    expect(buildConfig({}, null, { env: {} }).server.apiKeys).toEqual([]);
    const merged = buildConfig({ server: { apiKeys: ['from-file'] } }, null, { env: { LLAMA_SMART_PROXY_API_KEYS: ' a-key , ,b-key' } });
    expect(merged.server.apiKeys).toEqual(['from-file', 'a-key', 'b-key']);
    expect(() => buildConfig({ server: { apiKeys: [''] } }, null, { env: {} })).toThrow(/server\.apiKeys\.0: an API key cannot be empty/);
  });

  it('defaults CORS origins to Ollama\'s, and adds LLAMA_SMART_PROXY_ORIGINS to the configured ones', () => {
    const defaults = buildConfig({}, null, { env: {} }).server.cors.origins;
    expect(defaults).toContain('http://localhost:*');
    expect(defaults).toContain('https://[::1]');
    expect(defaults).toContain('tauri://*');
    const merged = buildConfig({ server: { cors: { origins: ['https://a.example'] } } }, null, { env: { LLAMA_SMART_PROXY_ORIGINS: 'https://b.example, ,*' } });
    expect(merged.server.cors.origins).toEqual(['https://a.example', 'https://b.example', '*']);
    expect(() => buildConfig({ server: { cors: { origins: [''] } } }, null, { env: {} })).toThrow(/server\.cors\.origins\.0: an origin cannot be empty/);
  });

  it('puts the cache under LLAMA_SMART_PROXY_CACHE or XDG_CACHE_HOME', () => {
    expect(buildConfig({}, null, { env: { LLAMA_SMART_PROXY_CACHE: '/c' } }).cacheDir).toBe('/c');
    expect(buildConfig({}, null, { env: { XDG_CACHE_HOME: '/x' } }).cacheDir).toBe('/x/llama-smart-proxy');
    const dir = tempDir();
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'sub', 'c.yaml'), 'cacheDir: ../cache\n');
    expect(loadConfig({ file: path.join(dir, 'sub', 'c.yaml'), env: {} }).cacheDir).toBe(path.join(dir, 'cache'));
  });
});
