/**
 * GET /dashboard: served open (it holds no data), and in Debian's chromium (playwright-core) it shows the GPUs and
 * the instance a real llama-server runs, then notices the instance going away.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const KEY = 'dash-key-123';

describe.skipIf(!tools.server)(`GET /dashboard${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([61]);
    t = await startTestProxy(tools.server!, root, {
      server: { apiKeys: [KEY] },
      gpu: { source: 'simulated', forceSimulated: true, simulated: [{ name: 'Sim Big', memoryMiB: 8192 }, { name: 'Sim Small', memoryMiB: 2048 }], reserveMiB: 0 },
      models: { a: { path: files[61]!, ctx: 512 } },
    });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('is a page of its own, open even with API keys', async () => {
    const res = await fetch(`${t.url}/dashboard`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain("fetch('/health', { headers: headers() })");
    expect(html).toContain("fetch('/status'");
    // the data behind it is not open
    expect((await fetch(`${t.url}/status`)).status).toBe(401);
  });

  describe.skipIf(!CHROMIUM)(`in a browser${CHROMIUM ? '' : ' (skipped: no chromium; apt-get install chromium)'}`, () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await chromium.launch({
        executablePath: CHROMIUM!,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
    });
    afterAll(async () => {
      await browser?.close();
    });

    it('shows the GPUs and the running instance with its memory, asks for the key, and sees the instance go', async () => {
      const load = await postJson(`${t.url}/models/load`, { model: 'a' }, { authorization: `Bearer ${KEY}` });
      expect(load.status, JSON.stringify(load.json)).toBe(200);
      const page = await browser.newPage();
      await page.goto(`${t.url}/dashboard`);
      // /status wants the key: the page asks for it, then uses it
      await page.locator('#keyform').waitFor({ state: 'visible' });
      await page.fill('#key', KEY);
      await page.click('#keyform button');

      const row = page.locator('tr[data-instance]');
      await row.filter({ hasText: 'ready' }).waitFor();
      const text = await row.innerText();
      expect(text).toContain('a');
      expect(text).toMatch(/GPU 1 · ngl \d+/); // the tighter fit: the small GPU
      await expect.poll(async () => page.locator('#keyform').isVisible()).toBe(false);
      await expect.poll(async () => page.locator('#pool').innerText()).toBe('1 / 1');
      expect(await page.locator('.gpu').count()).toBe(2);
      // no cluster: no Nodes section, the headings as they were
      expect(await page.locator('#nodes-section').isVisible()).toBe(false);
      expect(await page.locator('#gpus-title').innerText()).toMatch(/^GPUs$/i);
      expect(await page.locator('.gpu[data-gpu="1"] .name').innerText()).toBe('GPU 1 · Sim Small');
      // the instance's share of the small GPU's bar is drawn, and none on the big one (polled: the page redraws
      // every 2 s, and a box read across a redraw finds the old element gone)
      const segment = page.locator('.gpu[data-gpu="1"] .bar div[data-instance]');
      await expect.poll(async () => (await segment.boundingBox())?.width ?? 0).toBeGreaterThan(1);
      expect(await page.locator('.gpu[data-gpu="0"] .bar div[data-instance]').count()).toBe(0);
      mkdirSync('.tmp', { recursive: true });
      await page.screenshot({ path: path.join('.tmp', 'dashboard.png'), fullPage: true });

      expect((await postJson(`${t.url}/models/unload`, { model: 'a' }, { authorization: `Bearer ${KEY}` })).status).toBe(200);
      await page.getByText('No instance running').waitFor({ timeout: 10_000 });
      await page.close();
    });
  });
});
