import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

const preflight = (url: string, origin: string, headers = 'authorization, content-type') =>
  fetch(url, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': headers } });

describe.skipIf(!tools.server)(`CORS for browser clients${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let open: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([5]);
    t = await startTestProxy(tools.server!, root, { server: { apiKeys: ['sk-test'] }, models: { chat: { path: files[5]!, ctx: 512 } } });
    open = await startTestProxy(tools.server!, root, { server: { cors: { origins: ['*'] } }, models: { chat: { path: files[5]!, ctx: 512 } } });
  });
  afterAll(async () => {
    await t?.proxy.close();
    await open?.proxy.close();
  });

  it('lets a page on localhost call the proxy: preflight without a key, then the real request with one', async () => {
    const pre = await preflight(`${t.url}/v1/chat/completions`, 'http://localhost:3000', 'authorization, content-type, x-stainless-os');
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
    const allowedHeaders = pre.headers.get('access-control-allow-headers')!;
    for (const h of ['authorization', 'x-api-key', 'anthropic-version', 'anthropic-beta', 'content-type', 'x-stainless-os']) expect(allowedHeaders).toContain(h);
    // Every path, also one with no route, and the other local forms Ollama allows by default.
    for (const [path, origin] of [['/v1/messages', 'http://127.0.0.1:5173'], ['/api/chat', 'https://[::1]'], ['/no/such/route', 'tauri://localhost'], ['/v1/models', 'app://obsidian.md']] as const) {
      const res = await preflight(`${t.url}${path}`, origin);
      expect(res.status, path).toBe(204);
      expect(res.headers.get('access-control-allow-origin'), path).toBe(origin);
    }
    const real = await fetch(`${t.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { origin: 'http://localhost:3000', authorization: 'Bearer sk-test', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 }),
    });
    expect(real.status).toBe(200);
    expect(real.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    // The key still applies to the real request (its 401 is readable by the page).
    const noKey = await fetch(`${t.url}/v1/models`, { headers: { origin: 'http://localhost:3000' } });
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
  });

  it('gives a foreign origin no allow header', async () => {
    for (const origin of ['https://evil.example', 'http://localhost.evil.example', 'http://127.0.0.1.nip.io:8080']) {
      const pre = await preflight(`${t.url}/v1/chat/completions`, origin);
      expect(pre.headers.get('access-control-allow-origin'), origin).toBeNull();
      expect(pre.headers.get('access-control-allow-headers'), origin).toBeNull();
      const real = await fetch(`${t.url}/v1/models`, { headers: { origin, authorization: 'Bearer sk-test' } });
      expect(real.headers.get('access-control-allow-origin'), origin).toBeNull();
    }
  });

  it('allows every origin with "*" when configured', async () => {
    const pre = await preflight(`${open.url}/v1/responses`, 'https://app.example.com');
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    const real = await fetch(`${open.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { origin: 'https://app.example.com', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, stream: true }),
    });
    expect(real.status).toBe(200);
    expect(real.headers.get('access-control-allow-origin')).toBe('*');
    await real.text();
  });
});
