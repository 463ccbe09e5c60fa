/** GET /metrics against a real llama-server behind the proxy, on simulated GPUs. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { readStream } from '../helpers/sse.js';

const tools = llamaTools();
const P = 'llama_smart_proxy_';

/** The value of one sample, by metric name and exact labels (in the order prom-client prints them). */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${P}${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe.skipIf(!tools.server)(`GET /metrics${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  const metrics = async () => {
    const res = await fetch(`${t.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    return res.text();
  };

  beforeAll(async () => {
    const { root, files } = await modelsFolder([41]);
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 2 },
      gpu: { source: 'simulated', forceSimulated: true, simulated: [{ name: 'Sim', memoryMiB: 8192 }], reserveMiB: 0 },
      models: { a: { path: files[41]!, ctx: 512 } },
    });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('counts requests, instance starts and stops, and reads the pool and GPUs at scrape time', async () => {
    const before = await metrics();
    expect(sample(before, 'instances', 'state="ready"')).toBe(0);
    expect(sample(before, 'pool_capacity')).toBe(2);
    expect(sample(before, 'gpu_memory_total_bytes', 'gpu="0",uuid="GPU-simulated-0000",name="Sim"')).toBe(8192 * 1024 * 1024);

    const chat = { model: 'a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };
    expect((await postJson(`${t.url}/v1/chat/completions`, chat)).status).toBe(200);
    const stream = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...chat, stream: true }) });
    expect((await readStream(stream)).done).toBe(true);
    expect((await fetch(`${t.url}/nowhere`)).status).toBe(404);

    const after = await metrics();
    // the streamed answer (a hijacked reply) counts too, once
    expect(sample(after, 'http_requests_total', 'method="POST",route="/v1/chat/completions",status="200"')).toBe(2);
    expect(sample(after, 'http_requests_total', 'method="GET",route="unmatched",status="404"')).toBe(1);
    expect(sample(after, 'http_request_duration_seconds_count', 'method="POST",route="/v1/chat/completions"')).toBe(2);
    expect(sample(after, 'instance_starts_total', 'model="a"')).toBe(1);
    expect(sample(after, 'instance_load_seconds_count', 'model="a"')).toBe(1);
    expect(sample(after, 'instances', 'state="ready"')).toBe(1);
    const instanceId = ((await (await fetch(`${t.url}/running`)).json()) as { running: { id: string }[] }).running[0]?.id;
    expect(instanceId).toBeDefined();
    const estimated = sample(after, 'instance_gpu_memory_bytes', `instance="${instanceId}",model="a",gpu="0",kind="estimated"`);
    expect(estimated).toBeGreaterThan(0);
    // the simulated GPU is charged what the instance is
    expect(sample(after, 'gpu_memory_used_bytes', 'gpu="0",uuid="GPU-simulated-0000",name="Sim"')).toBeCloseTo(estimated!, -3);
    expect(after).toMatch(new RegExp(`^${P}process_cpu_seconds_total `, 'm'));

    expect((await postJson(`${t.url}/models/unload`, { model: 'a' })).status).toBe(200);
    const unloaded = await metrics();
    expect(sample(unloaded, 'instance_stops_total', 'model="a",reason="unload"')).toBe(1);
    expect(sample(unloaded, 'instances', 'state="ready"')).toBe(0);
  });
});
