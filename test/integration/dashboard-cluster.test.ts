/**
 * The dashboard of a cluster, in Debian's chromium (playwright-core): three in-process proxies on loopback with
 * simulated GPUs (node b two, node a one, node c none) and real llama-server instances, plus a fake peer of node a
 * whose state is full of HTML. Node a's page lists every node, up or down, each GPU's memory and the models on it
 * or on the CPU; the fake peer's strings show as text; a node stopped shows as down within a few seconds.
 */
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { freePort } from '../helpers/llama-process.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const TOKEN = 'dashboard-cluster-token-0123456789';
const KEY = 'dash-cluster-key';
const auth = { authorization: `Bearer ${KEY}` };
const EVIL = 'evil<img src=x onerror="window.__xss=1">';
const EVIL_MODEL = '<script>window.__xss=2</script>';
const EVIL_GPU = '<b onmouseover="window.__xss=3">Sim</b>';

/** Instance ports per node, apart from other test files' (VITEST_POOL_ID, cluster.test.ts's) and each other's. */
function instancePorts(node: number): [number, number] {
  const base = 48_600 + (Number(process.env.VITEST_POOL_ID ?? 0) % 10) * 150 + node * 50;
  return [base, base + 49];
}

/** A peer that answers /cluster/state with a well-formed state whose names are HTML. */
function fakePeer(port: number): Promise<Server> {
  const state = {
    node: EVIL,
    url: `http://127.0.0.1:${port}`,
    version: '0.0.0',
    at: Date.now(),
    gpus: [{ index: 0, uuid: 'GPU-fake', name: EVIL_GPU, totalBytes: 4096 * 2 ** 20, freeBytes: 1024 * 2 ** 20, utilization: 0 }],
    // No room anywhere: the planner never sends it a request.
    host: { totalBytes: 0, availableBytes: 0, loadingBytes: 0 },
    // Two instances on its GPU: their used memory is drawn in both colours.
    instances: [
      { id: 'x-1', modelId: EVIL_MODEL, state: '<i>ready</i>', inFlight: 0, slots: 1, pinned: false, lastUsed: 0, gpuBytes: [[0, 2048 * 2 ** 20]], hostBytes: 0, gpus: [0] },
      { id: 'x-2', modelId: 'fake-two', state: 'starting', inFlight: 3, slots: 1, pinned: false, lastUsed: 0, gpuBytes: [[0, 1024 * 2 ** 20]], hostBytes: 0, gpus: [0] },
    ],
    loading: [],
    queued: 0,
    capacity: 0,
    runtimeBytes: null,
    models: [],
    rpc: false,
  };
  const server = createHttpServer((req, res) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(req.method === 'GET' ? JSON.stringify({ ...state, at: Date.now() }) : '{}');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

interface Health {
  cluster: { nodes: { name: string; reachable: boolean }[] };
}

describe.skipIf(!tools.server || !CHROMIUM)(`the dashboard of a cluster${tools.reason ? ` (skipped: ${tools.reason})` : CHROMIUM ? '' : ' (skipped: no chromium)'}`, () => {
  const ports: Record<string, number> = {};
  const urls: Record<string, string> = {};
  const nodes: Record<string, TestProxy | undefined> = {};
  let fake: Server;
  let browser: Browser;

  const gpusOf: Record<string, { name: string; memoryMiB: number }[]> = {
    a: [{ name: 'Sim a0', memoryMiB: 8192 }],
    b: [{ name: 'Sim b0', memoryMiB: 2048 }, { name: 'Sim b1', memoryMiB: 6144 }],
    c: [],
  };

  beforeAll(async () => {
    const { root, files } = await modelsFolder([41, 42]);
    for (const n of ['a', 'b', 'c', 'fake']) {
      ports[n] = await freePort();
      urls[n] = `http://127.0.0.1:${ports[n]}`;
    }
    fake = await fakePeer(ports.fake!);
    for (const [i, n] of ['a', 'b', 'c'].entries()) {
      const peers = ['a', 'b', 'c'].filter((p) => p !== n).map((p) => urls[p]!);
      const gpus = gpusOf[n]!;
      nodes[n] = await startTestProxy(tools.server!, root, {
        server: { host: '127.0.0.1', port: ports[n]!, apiKeys: [KEY] },
        pool: { size: 2, portRange: instancePorts(i) },
        gpu: gpus.length ? { source: 'simulated', forceSimulated: true, simulated: gpus, reserveMiB: 0 } : { source: 'none' },
        models: { alpha: { path: files[41]!, ctx: 512 }, beta: { path: files[42]!, ctx: 512 } },
        // Only node a knows the fake peer (it does not push, so the others never hear of it).
        cluster: { node: `node-${n}`, peers: n === 'a' ? [...peers, urls.fake!] : peers, token: TOKEN, pollInterval: 0.5, downAfter: 2 },
      } as never);
    }
    // Every node answers node a, the fake one included.
    const deadline = Date.now() + 10_000;
    let h: Health | undefined;
    while (Date.now() < deadline) {
      h = (await (await fetch(`${urls.a}/health`, { headers: auth })).json()) as Health;
      if (h.cluster.nodes.filter((n) => n.reachable).length === 4) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(h!.cluster.nodes.map((n) => [n.name, n.reachable])).toEqual([['node-a', true], ['node-b', true], ['node-c', true], [EVIL, true]]);
    browser = await chromium.launch({
      executablePath: CHROMIUM!,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(Object.values(nodes).map((t) => t?.proxy.close()));
    await new Promise((r) => (fake ? fake.close(r) : r(undefined)));
  });

  /** The nodes whose card is wider inside than out (text running over its edge). */
  const overflowing = (page: Page) => page.evaluate<string[]>("[...document.querySelectorAll('.node')].filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.dataset.node)");
  const card = (page: Page, name: string) => page.locator('.node').filter({ has: page.locator('.nhead .name', { hasText: name }) });

  it('lists every node with its GPUs and the models on them, shows peers\' strings as text, and a stopped node as down', async () => {
    // alpha asked at node c (no GPU): the tightest GPU of the cluster is node b's GPU 0.
    const chat = await postJson(`${urls.c}/v1/chat/completions`, { model: 'alpha', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }, auth);
    expect(chat.status, JSON.stringify(chat.json)).toBe(200);
    expect(chat.headers.get('x-llama-smart-proxy-node')).toBe('node-b');
    // beta loaded on node c itself: its CPU.
    const load = await postJson(`${urls.c}/models/load`, { model: 'beta' }, auth);
    expect(load.status, JSON.stringify(load.json)).toBe(200);

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.addInitScript(`localStorage.setItem('lsp-key', ${JSON.stringify(KEY)})`);
    await page.goto(`${urls.a}/dashboard`);
    await page.locator('#nodes-section').waitFor({ state: 'visible' });
    await expect.poll(async () => page.locator('.node').count()).toBe(4);
    expect(await page.locator('.node .nhead .name').allInnerTexts()).toEqual(['node-a', 'node-b', 'node-c', EVIL]);
    expect(await page.locator('#node').innerText()).toBe('node-a');
    expect(await page.locator('#gpus-title').innerText()).toMatch(/GPUs of node-a \(this node\)/i);

    const a = card(page, 'node-a');
    expect(await a.locator('.tag').innerText()).toBe('this node');
    expect(await a.locator('.pill').innerText()).toBe('up');
    expect(await a.locator('.ngpu').count()).toBe(1);
    expect(await a.locator('[data-model]').count()).toBe(0);
    // alpha under node b's GPU 0, drawn in its bar; nothing on GPU 1
    const b = card(page, 'node-b');
    await b.locator('.ngpu[data-gpu="0"] [data-model="alpha"]').filter({ hasText: 'ready' }).waitFor();
    expect(await b.locator('.pill').innerText()).toBe('up');
    expect(await b.locator('.ngpu[data-gpu="0"] .gname').innerText()).toMatch(/^GPU 0 · Sim b0\s+\d+ MiB used of 2048 MiB$/);
    // (polled: the page redraws every 2 s, and a box read across a redraw finds the old element gone)
    await expect.poll(async () => (await b.locator('.ngpu[data-gpu="0"] .bar div').boundingBox())?.width ?? 0).toBeGreaterThan(10);
    expect(await b.locator('.ngpu[data-gpu="1"] [data-model]').count()).toBe(0);
    // beta on node c's CPU
    const c = card(page, 'node-c');
    expect(await c.locator('.ncpu').innerText()).toMatch(/no GPU[\s\S]*beta · ready/);
    expect(await c.locator('.ngpu').count()).toBe(0);
    // the fake peer's HTML is text: no element made of it, nothing of it ran
    const evil = card(page, EVIL);
    expect(await evil.locator('.ngpu .gname').innerText()).toContain(EVIL_GPU);
    expect(await evil.locator('[data-model]').allInnerTexts()).toEqual([`${EVIL_MODEL} · <i>ready</i>`, 'fake-two · starting · 3 in flight']);
    expect(await evil.locator('.ngpu .bar div').getAttribute('style')).toMatch(/background: repeating-linear-gradient/);
    expect(await page.locator('#nodes img, #nodes script, #nodes b b, #nodes span i:not([style]), #nodes [onerror], #nodes [onmouseover]').count()).toBe(0);
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    await page.screenshot({ path: '/tmp/dash-cluster-up.png', fullPage: true });
    // nothing overflows its card
    expect(await overflowing(page)).toEqual([]);

    // Node c stops: node a's page shows it down, with the error and when it was last heard from.
    const stopped = Date.now();
    const closing = nodes.c!.proxy.close();
    nodes.c = undefined;
    await c.locator('.pill', { hasText: 'down' }).waitFor({ timeout: 8000 });
    const tookMs = Date.now() - stopped;
    console.log(`node c shown down ${tookMs} ms after its close began`);
    expect(tookMs).toBeLessThan(6000);
    expect(await c.locator('.err').innerText()).toMatch(/ECONNREFUSED|refused|closed|socket/i);
    expect(await c.locator('.nhead .seen').innerText()).toMatch(/^last seen [\d.]+ s ago$/);
    expect(await c.getAttribute('class')).toContain('down');
    expect(await c.locator('.known').innerText()).toMatch(/last known: 1 instance[\s\S]*beta/);
    expect(await card(page, 'node-b').locator('.pill').innerText()).toBe('up');
    await closing;
    await page.screenshot({ path: '/tmp/dash-cluster-down.png', fullPage: true });

    // A narrow window: cards stack, still nothing overflows.
    await page.setViewportSize({ width: 420, height: 900 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: '/tmp/dash-cluster-narrow.png', fullPage: true });
    expect(await overflowing(page)).toEqual([]);
    await page.close();
  });
});
