import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { isAlive } from '../helpers/processes.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

describe.skipIf(!tools.server)(`admin and llama-server endpoints${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let blocker: net.Server;
  let firstPort = 0;

  beforeAll(async () => {
    // Someone else holds the first port of the range: instances must skip it. (Any free port will do: the range
    // starts there.)
    blocker = net.createServer();
    await new Promise<void>((resolve, reject) => {
      blocker.once('error', reject);
      blocker.listen(0, '127.0.0.1', () => resolve());
    });
    firstPort = (blocker.address() as net.AddressInfo).port;
    const { root, files } = await modelsFolder([3, 4]);
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 2, portRange: [firstPort, firstPort + 5] },
      models: { a: { path: files[3]!, ctx: 512 }, b: { path: files[4]!, ctx: 512 } },
    });
  });
  afterAll(async () => {
    await t?.proxy.close();
    blocker?.close();
  });

  it('loads a model on request, answering when it is ready, on a port nobody else holds', async () => {
    const res = await postJson(`${t.url}/models/load`, { model: 'a' });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('ready');
    expect(res.json.instance).toMatchObject({ model: 'a', state: 'ready' });
    expect(res.json.instance.port).not.toBe(firstPort);
    expect(isAlive(res.json.instance.pid)).toBe(true);
  });

  it('lists running instances', async () => {
    await postJson(`${t.url}/models/load`, { model: 'b' });
    const running = (await (await fetch(`${t.url}/running`)).json()) as any;
    expect(running.running.map((r: { model: string }) => r.model).sort()).toEqual(['a', 'b']);
    for (const r of running.running) expect(r).toMatchObject({ state: 'ready', in_flight: 0 });
  });

  it('forwards llama-server endpoints to the named model', async () => {
    const tok = await postJson(`${t.url}/tokenize`, { model: 'a', content: 'hi' });
    expect(tok.status).toBe(200);
    expect(Array.isArray(tok.json.tokens)).toBe(true);
    expect(tok.json.tokens.length).toBeGreaterThan(0);
    const detok = await postJson(`${t.url}/detokenize`, { model: 'a', tokens: tok.json.tokens });
    expect(detok.json.content).toContain('hi');
    const props = (await (await fetch(`${t.url}/props?model=b`)).json()) as any;
    expect(props.model_alias ?? props.model_path).toBeTruthy();
    const noModel = await fetch(`${t.url}/props`);
    expect(noModel.status).toBe(400);
  });

  it('shows an instance\'s log lines, and 404 for an unknown instance', async () => {
    const id = t.proxy.pool.list()[0]!.id;
    const res = await fetch(`${t.url}/logs/${id}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/listening|model loaded|load_model/);
    const missing = await fetch(`${t.url}/logs/nope`);
    expect(missing.status).toBe(404);
  });

  it('unloads one model, then all', async () => {
    const pidA = t.proxy.pool.list().find((i) => i.modelId === 'a')!.pid!;
    const one = await postJson(`${t.url}/models/unload`, { model: 'a' });
    expect(one.status).toBe(200);
    expect(one.json.unloaded).toHaveLength(1);
    expect(isAlive(pidA)).toBe(false);
    expect(t.proxy.pool.list().map((i) => i.modelId)).toEqual(['b']);
    const unknown = await postJson(`${t.url}/models/unload`, { model: 'zzz' });
    expect(unknown.status).toBe(404);
    const all = await fetch(`${t.url}/models/unload`, { method: 'POST' });
    expect(all.status).toBe(200);
    expect(t.proxy.pool.list()).toEqual([]);
  });
});
