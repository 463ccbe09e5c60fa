/**
 * The dashboard's pages in Debian's chromium (playwright-core) against a real llama-server on simulated GPUs:
 * the Playground streams an answer and the Requests page shows that request with its token counts within 2 s;
 * Load then Unload on the Models page changes /health; the Plan page shows the GPU a sparse Llama-3-8B replica
 * would go to (the big one: it does not fit the small one); the Logs page shows an instance's lines as they come.
 * A screenshot of each page goes to .tmp/ (CI's output folder).
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSparseReplica } from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';
import { FakeHub } from '../helpers/fake-hub.js';
import { modelsFolder, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const KEY = 'dash-pages-key-123';
const auth = { authorization: `Bearer ${KEY}` };
const SHOTS = '.tmp';

interface Health {
  servers: { model_id: string; status: string }[];
}

describe.skipIf(!tools.server || !CHROMIUM)(`dashboard pages in a browser${!tools.server ? ` (skipped: ${tools.reason})` : !CHROMIUM ? ' (skipped: no chromium; apt-get install chromium)' : ''}`, () => {
  let t: TestProxy;
  let browser: Browser;
  let page: Page;
  let hub: FakeHub;
  const health = async () => (await (await fetch(`${t.url}/health`, { headers: auth })).json()) as Health;
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `dashboard-${name}.png`), fullPage: false });

  beforeAll(async () => {
    const { root, files, modelsDir } = await modelsFolder([61, 62]);
    const llama = path.join(modelsDir, 'llama-3-8b-Q4_K_M.gguf');
    await writeSparseReplica(llama, 'llama-3-8b', 'Q4_K_M');
    // A Hub repo of three quantizations (sparse replicas: real headers only) for the Plan page's :auto case.
    hub = await FakeHub.start({ pageSize: 50 });
    const quants = ['F16', 'Q8_0', 'Q4_K_M'] as const;
    const replicas = await Promise.all(quants.map(async (q, i) => {
      const file = path.join(root, `Llama-3-8B-${q}.gguf`);
      await writeSparseReplica(file, 'llama-3-8b', q);
      return { path: `Llama-3-8B-${q}.gguf`, file, sha256: String(i + 1).repeat(64) };
    }));
    hub.addRepo('acme/Llama-3-8B-GGUF', { files: replicas });
    process.env.HF_HUB_CACHE = path.join(root, 'no-other-cache');
    t = await startTestProxy(tools.server!, root, {
      hub: { endpoint: hub.hubUrl, retries: 0 },
      server: { apiKeys: [KEY], captureBodies: true },
      gpu: { source: 'simulated', forceSimulated: true, simulated: [{ name: 'Sim Big', memoryMiB: 12288 }, { name: 'Sim Small', memoryMiB: 2048 }], reserveMiB: 256 },
      pool: { size: 2 },
      models: {
        chat: { path: files[61]!, ctx: 1024, description: 'tiny test model (random weights)' },
        helper: { path: files[62]!, ctx: 512 },
        'llama-3-8b': { path: llama, ctx: 8192, description: 'sparse replica: real header, no weights' },
      },
    });
    mkdirSync(SHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM!,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
    await page.goto(`${t.url}/dashboard`);
    await page.locator('#keyform').waitFor({ state: 'visible' });
    await page.fill('#key', KEY);
    await page.click('#keyform button');
    await page.locator('#keyform').waitFor({ state: 'hidden' });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.proxy.close();
    await hub?.close();
    delete process.env.HF_HUB_CACHE;
  });

  it('Playground streams an answer; the Requests page shows that request with its tokens within 2 s', async () => {
    await page.goto(`${t.url}/dashboard#playground`);
    await expect.poll(async () => page.locator('#pg-model option').count()).toBeGreaterThan(0);
    await page.selectOption('#pg-model', 'chat');
    await page.fill('#pg-max', '24');
    await page.fill('#pg-input', 'Tell me about GPUs');
    await page.click('#pg-send');
    const answer = page.locator('.msg.assistant').last();
    // streamed: text shows while the caret is still there, then the stats line with the speed and the instance
    await answer.locator('.stats').filter({ hasText: 'tok/s' }).waitFor({ timeout: 30_000 });
    await answer.locator('.stats').filter({ hasText: /ran on i\d+/ }).waitFor({ timeout: 5000 });
    expect((await answer.innerText()).length).toBeGreaterThan(10);
    const stats = await answer.locator('.stats').innerText();
    expect(stats).toMatch(/\d+ in · 24 out/);
    const id = await answer.getAttribute('data-request');
    await shot('playground');

    const started = Date.now();
    await page.goto(`${t.url}/dashboard#requests`);
    const row = page.locator(`tr[data-request="${id}"]`);
    await row.waitFor({ timeout: 2000 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await row.locator('[data-field="completion_tokens"]').innerText()).toBe('24');
    expect(Number(await row.locator('[data-field="prompt_tokens"]').innerText())).toBeGreaterThan(0);
    // a request sent now arrives through the live feed while the page is open
    await page.locator('#rq-state').filter({ hasText: 'live' }).waitFor();
    const sent = Date.now();
    const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'live?' }], max_tokens: 5 }) });
    const liveId = res.headers.get('x-llama-smart-proxy-request');
    await res.text();
    await page.locator(`tr[data-request="${liveId}"]`).waitFor({ timeout: 2000 });
    expect(Date.now() - sent).toBeLessThan(2000);
    await row.click();
    await page.locator('#rq-detail h3').filter({ hasText: `Request #${id}` }).waitFor();
    expect(await page.locator('#rq-detail').innerText()).toContain('Tell me about GPUs');
    await shot('requests');
  });

  it('Load then Unload on the Models page change /health', async () => {
    await page.goto(`${t.url}/dashboard#models`);
    const row = page.locator('tr[data-model="helper"]');
    await row.waitFor();
    expect(await row.innerText()).toMatch(/GPU \d · ngl \d+/); // its estimate for this machine, before loading
    expect((await health()).servers.some((s) => s.model_id === 'helper')).toBe(false);
    await row.locator('button[data-action="load"]').click();
    await row.locator('button[data-action="unload"]').waitFor({ timeout: 30_000 });
    expect((await health()).servers.find((s) => s.model_id === 'helper')?.status).toBe('ready');
    await shot('models');
    await row.locator('button[data-action="unload"]').click();
    await row.locator('button[data-action="load"]').waitFor({ timeout: 30_000 });
    expect((await health()).servers.some((s) => s.model_id === 'helper')).toBe(false);
  });

  it('Plan shows the GPU a sparse Llama-3-8B replica would go to, without loading it', async () => {
    await page.goto(`${t.url}/dashboard#plan`);
    await page.fill('#plan-model', 'llama-3-8b');
    await page.fill('#plan-ctx', '8192');
    await page.click('#plan-go');
    const verdict = page.locator('#plan-verdict');
    await verdict.waitFor();
    expect(await verdict.innerText()).toMatch(/Would run on GPU 0 · ngl 33 \(Sim Big\)/);
    expect(await page.locator('#page-plan .gpu.chosen').getAttribute('data-gpu')).toBe('0');
    expect(await page.locator('#page-plan .gpu[data-gpu="1"]').getAttribute('class')).not.toContain('chosen');
    expect((await health()).servers.some((s) => s.model_id === 'llama-3-8b')).toBe(false);
    await shot('plan');
  });

  it('Plan of a Hub repo named without a variant shows the quantization :auto picks and every candidate, downloading nothing', async () => {
    await page.goto(`${t.url}/dashboard#plan`);
    await page.fill('#plan-model', 'acme/Llama-3-8B-GGUF');
    await page.fill('#plan-ctx', '8192');
    await page.click('#plan-go');
    const quant = page.locator('#plan-quant');
    await quant.waitFor();
    // 12 GiB less the 256 MiB reserve: F16 (15.8 GiB at 8k) does not fit, Q8_0 (9.1 GiB) does.
    expect(await quant.innerText()).toMatch(/^Q8_0: the best quantization that fits one GPU/);
    expect(await page.locator('#page-plan tr.chosen').innerText()).toContain('Q8_0');
    expect(await page.locator('#plan-verdict').innerText()).toMatch(/Would run on GPU 0/);
    expect(hub.log.filter((r) => r.server === 'cdn' && r.method === 'GET' && !r.range)).toEqual([]);
    await shot('plan-auto');
  });

  it("Logs shows an instance's lines as they come", async () => {
    await page.goto(`${t.url}/dashboard#logs`);
    await expect.poll(async () => page.locator('#lg-source option').count()).toBeGreaterThan(1);
    const instance = (await health()).servers.find((s) => s.model_id === 'chat');
    expect(instance).toBeDefined();
    await page.locator('#lg-state').filter({ hasText: 'live' }).waitFor();
    expect(await page.locator('#lg-source').inputValue()).toMatch(/^i\d+$/);
    await expect.poll(async () => page.locator('#lg-view div').count()).toBeGreaterThan(5);
    const before = await page.locator('#lg-view div').count();
    // a request makes llama-server log: its lines arrive live, flashing as new
    await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'log me' }], max_tokens: 3 }) }).then((r) => r.text());
    await expect.poll(async () => page.locator('#lg-view div').count(), { timeout: 5000 }).toBeGreaterThan(before);
    expect(await page.locator('#lg-view div.new').count()).toBeGreaterThan(0);
    await shot('logs');
    // and the proxy's own lines
    await page.selectOption('#lg-source', 'proxy');
    await page.locator('#lg-state').filter({ hasText: 'live' }).waitFor();
  });

  it('Overview keeps the GPU bars and instances', async () => {
    await page.goto(`${t.url}/dashboard#overview`);
    await page.locator('tr[data-instance]').filter({ hasText: 'ready' }).first().waitFor();
    expect(await page.locator('#page-overview .gpu').count()).toBe(2);
    await shot('overview');
  });
});
