/**
 * Three proxies on loopback as one cluster, each with its own simulated GPUs (sizes in units of the tiny model's
 * estimate N: node a one GPU of 1.3 N, node b one of 1.5 N, node c two of 1.7 N), all serving the same tiny
 * models with real llama-server instances. Node b runs as its own process (the real CLI) so it can be killed
 * with SIGKILL. Requests go to any node; x-llama-smart-proxy-node and /health say where they were served.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, modelInfo } from '../../src/estimate/index.js';
import { readGgufHeaderSync } from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';
import { freePort } from '../helpers/llama-process.js';
import { pluginsRoot } from '../helpers/plugins.js';
import { isAlive, waitFor } from '../helpers/processes.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const MIB = 1024 * 1024;
const CTX = 1024;
const TOKEN = 'cluster-test-token-0123456789';
const KEY = 'client-key-1';
const CLI = ['--import', pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href, path.resolve('src/cli/main.ts')];
const SEEDS = [31, 32, 33, 34, 35, 36];
const MODELS = ['a', 'b', 'c', 'd', 'e'];

/** Instance ports per node, apart from other test files' (VITEST_POOL_ID) and from each other. */
function instancePorts(node: number): [number, number] {
  const base = 47_000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 10) * 150 + node * 50;
  return [base, base + 49];
}

interface Health {
  servers: { model_id: string; status: string; pid: number }[];
  cluster: { node: string; nodes: { name: string; reachable: boolean; instances: { model: string; state: string }[] }[] };
}

describe.skipIf(!tools.server)(`a cluster of three proxies${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let root: string;
  let files: Record<number, string>;
  let needMiB: number;
  const ports: Record<string, number> = {};
  const urls: Record<string, string> = {};
  const inProcess: Record<string, TestProxy> = {};
  let b: ChildProcess | undefined;
  let bLog = '';
  // An agent every node loads: it counts its runs in a file, and its answers.
  const agents = pluginsRoot('lsp-cluster-agents');
  const countFile = path.join(agents.root, 'runs.txt');
  agents.add('count', `import { appendFileSync } from 'node:fs';
export default {
  onRequest(r) { appendFileSync(${JSON.stringify(countFile)}, 'run\\n'); return r; },
  onResponse(r) { r.x_counted = (r.x_counted ?? 0) + 1; return r; },
};\n`);

  const auth = { authorization: `Bearer ${KEY}` };
  const health = async (node: string): Promise<Health> => (await (await fetch(`${urls[node]}/health`, { headers: auth })).json()) as Health;
  const chat = (node: string, model: string) => postJson(`${urls[node]}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }, auth);

  function nodeConfig(name: string, gpus: number[], index: number) {
    return {
      server: { host: '127.0.0.1', port: ports[name]!, apiKeys: [KEY] },
      pool: { size: 4, portRange: instancePorts(index) },
      gpu: { source: 'simulated' as const, forceSimulated: true, simulated: gpus.map((g, i) => ({ name: `Sim ${name}${i}`, memoryMiB: Math.ceil(needMiB * g) })), reserveMiB: 0, overheadMiB: 1 },
      models: {
        // e streams past its context (context shift) in the SIGKILL case: an answer that cannot end before its node dies.
        ...Object.fromEntries(MODELS.map((m, i) => [m, { path: files[SEEDS[i]!]!, ctx: CTX, ...(m === 'e' ? { args: ['--context-shift'] } : {}) }])),
        // A model only node c knows.
        ...(name === 'c' ? { 'only-c': { path: files[36]!, ctx: CTX } } : {}),
      },
      agents: { dir: agents.root },
      cluster: {
        node: `node-${name}`,
        peers: Object.keys(ports).filter((n) => n !== name).map((n) => `http://127.0.0.1:${ports[n]}`),
        token: TOKEN,
        pollInterval: 0.5,
        downAfter: 2,
      },
    };
  }

  async function startB(): Promise<void> {
    const config = { ...nodeConfig('b', [1.5], 1), llamaServer: { binary: tools.server, autoBuild: false }, cacheDir: path.join(root, 'cache-b'), modelsDir: path.join(root, 'models') };
    writeFileSync(path.join(root, 'b.yaml'), JSON.stringify(config));
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('LLAMA_SMART_PROXY_')) delete env[k];
    b = spawn(process.execPath, [...CLI, 'serve', '--config', path.join(root, 'b.yaml')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    bLog = '';
    b.stderr!.on('data', (c: Buffer) => (bLog = (bLog + c.toString()).slice(-20_000)));
    b.stdout!.on('data', (c: Buffer) => (bLog = (bLog + c.toString()).slice(-20_000)));
    const up = await waitFor(() => /listening on/.test(bLog) || b!.exitCode !== null, 30_000);
    expect(up && b.exitCode === null, bLog).toBe(true);
  }

  /** Every node sees every other as reachable. */
  async function allSeeEachOther(expected = 3): Promise<boolean> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const views = await Promise.all(Object.keys(urls).map((n) => health(n).catch(() => undefined)));
      if (views.every((h) => h && h.cluster.nodes.filter((n) => n.reachable).length === expected)) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  }

  beforeAll(async () => {
    ({ root, files } = await modelsFolder(SEEDS));
    const info = modelInfo(readGgufHeaderSync(files[SEEDS[0]!]!));
    needMiB = estimateMemory(info, { ctx: CTX, parallel: 1 }, { devices: [{ name: 'sim', kind: 'cuda', overheadBytes: MIB }] }).devices[0]!.totalBytes / MIB;
    for (const n of ['a', 'b', 'c']) {
      ports[n] = await freePort();
      urls[n] = `http://127.0.0.1:${ports[n]}`;
    }
    inProcess.a = await startTestProxy(tools.server!, root, nodeConfig('a', [1.3], 0) as never);
    inProcess.c = await startTestProxy(tools.server!, root, nodeConfig('c', [1.7, 1.7], 2) as never);
    await startB();
    expect(await allSeeEachOther(), bLog).toBe(true);
  }, 120_000);

  afterAll(async () => {
    b?.kill('SIGKILL');
    await Promise.all(Object.values(inProcess).map((t) => t.proxy.close()));
  });

  it('refuses node-to-node routes and forwarded requests without the cluster token', async () => {
    const state = await fetch(`${urls.a}/cluster/state`, { headers: auth });
    expect(state.status).toBe(401);
    expect(await state.text()).toContain('cluster token');
    const forged = await postJson(`${urls.a}/v1/chat/completions`, { model: 'a', messages: [] }, { ...auth, 'x-llama-smart-proxy-forwarded': 'node-x' });
    expect(forged.status).toBe(401);
    const ok = await fetch(`${urls.a}/cluster/state`, { headers: { 'x-llama-smart-proxy-cluster-token': TOKEN } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { node: string; gpus: unknown[] }).gpus).toHaveLength(1);
  });

  it('serves each model on the node the rules pick, reuses a running one, and evicts on the node of the least recently used instance', async () => {
    // a: the tightest single GPU of the cluster (node a's), whichever node the request came to.
    const a = await chat('c', 'a');
    expect(a.status, JSON.stringify(a.json)).toBe(200);
    expect(a.headers.get('x-llama-smart-proxy-node')).toBe('node-a');
    // b: node a's GPU is taken; node b's is now the tightest. c and d: node c's two GPUs.
    const placed: Record<string, string | null> = {};
    for (const [entry, model] of [['a', 'b'], ['b', 'c'], ['a', 'd']] as const) {
      const r = await chat(entry, model);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      placed[model] = r.headers.get('x-llama-smart-proxy-node');
    }
    expect(placed).toEqual({ b: 'node-b', c: 'node-c', d: 'node-c' });
    // A running model is served where it runs: still one instance of a, on node a.
    const again = await chat('b', 'a');
    expect(again.headers.get('x-llama-smart-proxy-node')).toBe('node-a');
    expect((await health('a')).servers.filter((s) => s.model_id === 'a')).toHaveLength(1);

    // Views are as fresh as the last poll (0.5 s here) or push (on a start or stop): let node c hear of that use.
    await new Promise((r) => setTimeout(r, 800));
    // e fits nowhere now: the least recently used idle instance of the cluster (b, on node b) is evicted for it.
    const e = await chat('c', 'e');
    expect(e.status, JSON.stringify(e.json)).toBe(200);
    expect(e.headers.get('x-llama-smart-proxy-node')).toBe('node-b');
    const onB = (await health('b')).servers.map((s) => s.model_id);
    expect(onB).toEqual(['e']);
    expect((await health('a')).servers.map((s) => s.model_id)).toEqual(['a']);
    expect((await health('c')).servers.map((s) => s.model_id).sort()).toEqual(['c', 'd']);
  });

  it('every view shows the whole cluster: /health, /status, /v1/models, /api/ps, /api/tags, /metrics, the gpus command', async () => {
    await new Promise((r) => setTimeout(r, 800));
    const h = await health('a');
    expect(h.cluster.node).toBe('node-a');
    expect(h.cluster.nodes.map((n) => [n.name, n.reachable])).toEqual([['node-a', true], ['node-b', true], ['node-c', true]]);
    expect(h.cluster.nodes.find((n) => n.name === 'node-c')!.instances.map((i) => i.model).sort()).toEqual(['c', 'd']);

    const models = (await (await fetch(`${urls.a}/v1/models`, { headers: auth })).json()) as { data: { id: string; status: string; node: string | null }[] };
    const where = Object.fromEntries(models.data.map((m) => [m.id, m.node]));
    expect(where).toMatchObject({ a: 'node-a', c: 'node-c', d: 'node-c', e: 'node-b' });
    expect(models.data.find((m) => m.id === 'c')!.status).toBe('ready');

    const ps = (await (await fetch(`${urls.a}/api/ps`, { headers: auth })).json()) as { models: { name: string; node: string; size_vram: number }[] };
    expect(ps.models.map((m) => `${m.name}@${m.node}`).sort()).toEqual(['a@node-a', 'c@node-c', 'd@node-c', 'e@node-b']);
    expect(ps.models.every((m) => m.size_vram > 0)).toBe(true);

    const metrics = await (await fetch(`${urls.a}/metrics`, { headers: auth })).text();
    expect(metrics).toMatch(/llama_smart_proxy_cluster_peer_up\{peer="node-b",url="http:\/\/127\.0\.0\.1:\d+",node="node-a"\} 1/);
    expect(metrics).toMatch(/llama_smart_proxy_pool_capacity\{node="node-a"\} 4/);

    // Asynchronously: nodes a and c answer from this very process.
    const { stdout: out } = await promisify(execFile)(process.execPath, [...CLI, 'gpus', '--url', urls.a!], { env: { ...process.env, LLAMA_SMART_PROXY_API_KEY: KEY }, encoding: 'utf8' });
    expect(out).toMatch(/cluster \(node node-a\)/);
    expect(out).toMatch(/node-c\s+yes\s+1\s+Sim c1\s+\d+\s+\d+\s+\S*\(ready\)/);
  });

  it('forwards every API family, streams as it arrives, and runs agents once, at the entry', async () => {
    // Streamed through node c to node a (where a runs).
    const res = await fetch(`${urls.c}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true }) });
    expect(res.headers.get('x-llama-smart-proxy-node')).toBe('node-a');
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text();
    expect(text.match(/^data: \{/gm)!.length).toBeGreaterThanOrEqual(2);
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);

    // Anthropic's Messages through node b to node c; Ollama's chat through node a to node c.
    const msg = await postJson(`${urls.b}/v1/messages`, { model: 'c', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }, { ...auth, 'anthropic-version': '2023-06-01' });
    expect(msg.status, JSON.stringify(msg.json)).toBe(200);
    expect(msg.json.type).toBe('message');
    expect(msg.headers.get('x-llama-smart-proxy-node')).toBe('node-c');
    const ollama = await postJson(`${urls.a}/api/chat`, { model: 'd', stream: false, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 2 } }, auth);
    expect(ollama.status, JSON.stringify(ollama.json)).toBe(200);
    expect(ollama.json.message.role).toBe('assistant');
    expect(ollama.headers.get('x-llama-smart-proxy-node')).toBe('node-c');

    // A slash command at node a for a model on node c: the agent runs at node a only, once each way.
    const agent = await postJson(`${urls.a}/v1/chat/completions`, { model: 'c', messages: [{ role: 'user', content: '/count hi' }], max_tokens: 2 }, auth);
    expect(agent.status, JSON.stringify(agent.json)).toBe(200);
    expect(agent.headers.get('x-llama-smart-proxy-node')).toBe('node-c');
    expect(agent.json.x_counted).toBe(1);
    expect(readFileSync(countFile, 'utf8')).toBe('run\n');
  });

  it('a model only another node holds is served there; one no node holds is a 404 at the entry', async () => {
    const r = await chat('a', 'only-c');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.headers.get('x-llama-smart-proxy-node')).toBe('node-c');
    // llama-server's own endpoints too: sent to the node that holds it, the query naming the model on a GET.
    const tokens = await postJson(`${urls.a}/tokenize`, { model: 'only-c', content: 'hello' }, auth);
    expect(tokens.status, JSON.stringify(tokens.json)).toBe(200);
    expect(tokens.json.tokens.length).toBeGreaterThan(0);
    expect(tokens.headers.get('x-llama-smart-proxy-node')).toBe('node-c');
    const props = await fetch(`${urls.a}/props?model=only-c`, { headers: auth });
    expect(props.status).toBe(200);
    expect(((await props.json()) as { default_generation_settings?: unknown }).default_generation_settings).toBeDefined();
    const none = await chat('a', 'nowhere');
    expect(none.status).toBe(404);
    expect(none.headers.get('x-llama-smart-proxy-node')).toBe('node-a');
  });

  it('a node killed with SIGKILL: the next request is served elsewhere within 5 s, nothing of it is left, and it rejoins', async () => {
    const pids = (await health('b')).servers.map((s) => s.pid);
    expect(pids.length).toBeGreaterThan(0);
    // A stream through node a from node b, under way when node b dies: 100,000 tokens, no end token, past the
    // context (a loaded machine's client can read its first chunk after a 1,000-token answer is all generated).
    const streamed = await fetch(`${urls.a}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'e', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100_000, ignore_eos: true, stream: true }) });
    expect(streamed.headers.get('x-llama-smart-proxy-node')).toBe('node-b');
    const reader = streamed.body!.getReader();
    let received = new TextDecoder().decode((await reader.read()).value);
    // Its instances held (SIGSTOP) first, so the stream cannot reach its end before node b is gone, however loaded the machine.
    for (const pid of (await health('b')).servers.map((s) => s.pid)) process.kill(pid, 'SIGSTOP');
    b!.kill('SIGKILL');
    const killedAt = Date.now();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) received += new TextDecoder().decode(chunk.value);
    // It ends with an error event naming the node, and no second answer follows.
    const events = received.split('\n\n').filter((e) => e.startsWith('data: '));
    expect(events.at(-1)).toMatch(/"error".*node node-b/);
    expect(received).not.toContain('[DONE]');
    expect(events.filter((e) => e.includes('"role":"assistant"')).length).toBeLessThanOrEqual(1);
    // Node a still takes node b for up: the forward fails before any answer and goes to another node.
    const r = await chat('a', 'e');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.headers.get('x-llama-smart-proxy-node')).not.toBe('node-b');
    expect(Date.now() - killedAt).toBeLessThan(5000);
    expect(await waitFor(() => pids.every((p) => !isAlive(p)), 5000)).toBe(true);
    // The others mark it down within a few seconds (its connection is refused: at their next poll).
    let down = false;
    for (const deadline = Date.now() + 3000; !down && Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      down = (await health('c')).cluster.nodes.find((n) => n.name === 'node-b')?.reachable === false;
    }
    expect(down).toBe(true);

    await startB();
    expect(await allSeeEachOther(), bLog).toBe(true);
  }, 90_000);

  it("Ollama's keep_alive reaches the node that serves the model: a load, a chat through another entry, an unload", async () => {
    const runsOn = async (model: string) => {
      for (const n of ['a', 'b', 'c']) if ((await health(n)).servers.some((s) => s.model_id === model && s.status === 'ready')) return n;
      return undefined;
    };
    const ollama = (node: string, body: Record<string, unknown>) => postJson(`${urls[node]}/api/generate`, { model: 'e', stream: false, ...body }, auth);
    // A load (no prompt): placed by the cluster, wherever that is.
    expect((await ollama('a', { keep_alive: '7m' })).status).toBe(200);
    const home = await runsOn('e');
    expect(home).toBeDefined();
    // A chat through an entry that does not run it: served by the running copy, with the client's keep_alive.
    const entry = ['a', 'b', 'c'].find((n) => n !== home)!;
    const answer = await ollama(entry, { prompt: 'hi', keep_alive: '9m', options: { num_predict: 2 } });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-llama-smart-proxy-node')).toBe(`node-${home}`);
    const ps = (await (await fetch(`${urls[home!]}/api/ps`, { headers: auth })).json()) as { models: { name: string; expires_at: string; node?: string }[] };
    const mine = ps.models.find((m) => m.name.startsWith('e') && (m.node === undefined || m.node === `node-${home}`))!;
    const left = Date.parse(mine.expires_at) - Date.now();
    expect(left).toBeGreaterThan(8.5 * 60_000);
    expect(left).toBeLessThan(9.5 * 60_000);
    // keep_alive 0 through that entry unloads it where it runs.
    expect((await ollama(entry, { keep_alive: 0 })).status).toBe(200);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await runsOn('e')) !== undefined) await new Promise((r) => setTimeout(r, 200));
    expect(await runsOn('e')).toBeUndefined();
  });
});
