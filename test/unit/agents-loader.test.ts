import fc from 'fast-check';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { BUNDLED_AGENTS_DIR, loadAgents } from '../../src/agents/loader.js';
import { AgentRegistry, loadAgentRegistry } from '../../src/agents/registry.js';
import { promptSlot } from '../../src/agents/slash.js';
import { buildConfig } from '../../src/config/index.js';

const log = pino({ level: 'silent' });

function plugin(root: string, name: string, files: Record<string, string | object>): void {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) writeFileSync(path.join(dir, file), typeof content === 'string' ? content : JSON.stringify(content));
}

const manifest = (extra: object = {}) => ({ description: 'test agent', enabled: true, ...extra });
const passThrough = 'export default { onRequest: (r) => r, onResponse: (r) => r };\n';

function pluginsFolder(): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-agents-'));
  plugin(root, 'good', { 'config.json': manifest({ settings: { a: 1, b: 2 } }), 'index.mjs': passThrough });
  plugin(root, 'named', { 'config.json': manifest({ endpoints: ['completions'] }), 'index.js': 'export function onStreamChunk(c) { return c; }\n' });
  plugin(root, 'cjs', { 'config.json': manifest(), 'index.cjs': 'module.exports = { onResponse: (r) => r };\n' });
  plugin(root, 'syntax', { 'config.json': manifest(), 'index.mjs': 'export default { onRequest( };\n' });
  plugin(root, 'throws-on-import', { 'config.json': manifest(), 'index.mjs': 'throw new Error("no GPU here");\n' });
  plugin(root, 'no-config', { 'index.mjs': passThrough });
  plugin(root, 'bad-json', { 'config.json': '{ "description": ', 'index.mjs': passThrough });
  plugin(root, 'bad-manifest', { 'config.json': { description: 5 }, 'index.mjs': passThrough });
  plugin(root, 'no-module', { 'config.json': manifest() });
  plugin(root, 'ts-only', { 'config.json': manifest(), 'index.ts': 'export default {};\n' });
  plugin(root, 'no-hooks', { 'config.json': manifest(), 'index.mjs': 'export const helper = 1;\n' });
  plugin(root, 'hook-not-fn', { 'config.json': manifest(), 'index.mjs': 'export default { onRequest: 42 };\n' });
  plugin(root, 'bad-pattern', { 'config.json': manifest({ args: { max: 1, pattern: '(' } }), 'index.mjs': passThrough });
  plugin(root, 'off', { 'config.json': manifest({ enabled: false }), 'index.mjs': passThrough });
  plugin(root, 'bad name!', { 'config.json': manifest(), 'index.mjs': passThrough });
  plugin(root, '.hidden', { 'config.json': manifest(), 'index.mjs': passThrough });
  writeFileSync(path.join(root, 'README.md'), 'not a plugin');
  return root;
}

describe('plugin loading', () => {
  it('loads the good plugins and lists every broken one with its reason', async () => {
    const root = pluginsFolder();
    const { loaded, statuses } = await loadAgents({ dirs: [root], timeoutMs: 1000, log });
    expect(loaded.map((a) => a.name).sort()).toEqual(['cjs', 'good', 'named']);
    const byName = Object.fromEntries(statuses.map((s) => [s.name, s]));
    expect(byName.good).toMatchObject({ state: 'loaded', hooks: ['onRequest', 'onResponse'], endpoints: ['chat/completions', 'completions'] });
    expect(byName.named).toMatchObject({ state: 'loaded', hooks: ['onStreamChunk'], endpoints: ['completions'] });
    expect(byName.off).toMatchObject({ state: 'disabled', reason: 'config.json has "enabled": false' });
    const reasons: Record<string, RegExp> = {
      syntax: /importing index\.mjs failed/,
      'throws-on-import': /importing index\.mjs failed: no GPU here/,
      'no-config': /no config\.json/,
      'bad-json': /config\.json is not valid JSON/,
      'bad-manifest': /description: .*expected string.*enabled/,
      'no-module': /no module \(index\.mjs, index\.js, index\.cjs\)/,
      'ts-only': /index\.ts must be compiled/,
      'no-hooks': /exports no hook/,
      'hook-not-fn': /"onRequest" is a number/,
      'bad-pattern': /args\.pattern is not a valid regular expression/,
      'bad name!': /cannot be a slash command/,
    };
    for (const [name, reason] of Object.entries(reasons)) {
      expect(byName[name], name).toMatchObject({ state: 'failed' });
      expect(byName[name]!.reason, name).toMatch(reason);
    }
    expect(byName['.hidden']).toBeUndefined();
  });

  it('agents.enabled / agents.disabled, settings merged over the manifest, timeout from the manifest', async () => {
    const root = pluginsFolder();
    plugin(root, 'quick', { 'config.json': manifest({ timeout: 0.5 }), 'index.mjs': passThrough });
    const only = await loadAgents({ dirs: [root], enabled: ['good', 'quick'], disabled: ['quick'], settings: { good: { b: 3, c: 4 } }, timeoutMs: 7000, log });
    expect(only.loaded.map((a) => a.name)).toEqual(['good']);
    expect(only.loaded[0]!.settings).toEqual({ a: 1, b: 3, c: 4 });
    // shared by every request: frozen, so that none can change it for the others
    expect(Object.isFrozen(only.loaded[0]!.settings)).toBe(true);
    expect(only.loaded[0]!.timeoutMs).toBe(7000);
    expect(only.statuses.find((s) => s.name === 'cjs')).toMatchObject({ state: 'disabled', reason: 'not in agents.enabled' });
    expect(only.statuses.find((s) => s.name === 'quick')).toMatchObject({ state: 'disabled', reason: 'listed in agents.disabled' });
    const all = await loadAgents({ dirs: [root], timeoutMs: 7000, log });
    expect(all.loaded.find((a) => a.name === 'quick')!.timeoutMs).toBe(500);
  });

  it('a missing folder loads nothing; the first folder wins on a name clash', async () => {
    expect((await loadAgents({ dirs: ['/nonexistent/plugins'], timeoutMs: 1, log })).loaded).toEqual([]);
    const a = mkdtempSync(path.join(os.tmpdir(), 'lsp-agents-a-'));
    const b = mkdtempSync(path.join(os.tmpdir(), 'lsp-agents-b-'));
    plugin(a, 'same', { 'config.json': manifest({ description: 'from a' }), 'index.mjs': passThrough });
    plugin(b, 'same', { 'config.json': manifest({ description: 'from b' }), 'index.mjs': passThrough });
    const { loaded } = await loadAgents({ dirs: [a, b], timeoutMs: 1, log });
    expect(loaded.map((l) => l.description)).toEqual(['from a']);
  });

  it('loads the bundled agents (json, gpu, parallel) by default, from the config folder\'s ./plugins too', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-agents-cfg-'));
    plugin(path.join(dir, 'plugins'), 'mine', { 'config.json': manifest(), 'index.mjs': passThrough });
    const config = buildConfig({}, path.join(dir, 'c.yaml'), { env: {} });
    expect(config.agents.dir).toBe(path.join(dir, 'plugins'));
    const registry = await loadAgentRegistry(config, log);
    const health = registry.health();
    expect(health.filter((h) => h.state === 'loaded').map((h) => h.name).sort()).toEqual(['gpu', 'json', 'mine', 'parallel']);
    expect(health.find((h) => h.name === 'json')).toMatchObject({ dir: path.join(BUNDLED_AGENTS_DIR, 'json'), endpoints: ['chat/completions'], failures: 0, last_failure: null });
    const without = await loadAgentRegistry(buildConfig({ agents: { bundled: false } }, path.join(dir, 'c.yaml'), { env: {} }), log);
    expect(without.health().map((h) => h.name)).toEqual(['mine']);
  });
});

describe('registry plan', () => {
  async function registry(models: Record<string, string[]> = {}): Promise<AgentRegistry> {
    const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-agents-plan-'));
    plugin(root, 'a', { 'config.json': manifest(), 'index.mjs': passThrough });
    plugin(root, 'b', { 'config.json': manifest(), 'index.mjs': passThrough });
    plugin(root, 'chat-only', { 'config.json': manifest({ endpoints: ['chat/completions'] }), 'index.mjs': passThrough });
    plugin(root, 'n', { 'config.json': manifest({ args: { max: 1, pattern: '^[0-9]+$' } }), 'index.mjs': passThrough });
    return new AgentRegistry(await loadAgents({ dirs: [root], timeoutMs: 1000, log }), models, log);
  }
  const chat = (content: string) => ({ model: 'm', messages: [{ role: 'user', content }] });
  const names = (plan: ReturnType<AgentRegistry['plan']>) => plan?.chain.map((l) => `${l.agent.name}${l.args.length ? `(${l.args.join(',')})` : ''}`);

  it('mayPlan is true wherever plan gives a chain, false for a plain prompt on a model without agents', async () => {
    const r = await registry({ agented: ['a'] });
    const prompt = fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('/a x', ' /b', '/n 4 y', '/unknown', '/', 'hi /a', '\n/b z', '/chat-only q'));
    fc.assert(
      fc.property(prompt, fc.constantFrom('m', 'agented'), fc.constantFrom('chat/completions', 'completions') as fc.Arbitrary<'chat/completions' | 'completions'>, (text, model, endpoint) => {
        const body = endpoint === 'completions' ? { model, prompt: text } : chat(text);
        const slot = promptSlot(endpoint, body)?.text;
        if (r.plan(endpoint, body, model)) expect(r.mayPlan(model, () => slot)).toBe(true);
      }),
      { numRuns: 500 },
    );
    expect(r.mayPlan('m', () => 'hello')).toBe(false);
    expect(r.mayPlan('m', () => undefined)).toBe(false);
    expect(r.mayPlan('agented', () => undefined)).toBe(true);
  });

  it('no plan (forward as received) when the prompt names no agent', async () => {
    const r = await registry();
    const body = chat('/unknown hello');
    expect(r.plan('chat/completions', body, 'm')).toBeUndefined();
    expect(r.plan('chat/completions', chat('hello /a'), 'm')).toBeUndefined();
    expect(AgentRegistry.empty().plan('chat/completions', chat('/a x'), 'm')).toBeUndefined();
  });

  it('slash commands become the chain and leave the prompt', async () => {
    const r = await registry();
    const plan = r.plan('chat/completions', chat('/b /a /n 4 hello'), 'm')!;
    expect(names(plan)).toEqual(['b', 'a', 'n(4)']);
    expect(plan.body).toEqual(chat('hello'));
  });

  it('an agent limited to other endpoints is not a command there', async () => {
    const r = await registry();
    expect(r.plan('completions', { model: 'm', prompt: '/chat-only hi' }, 'm')).toBeUndefined();
    expect(names(r.plan('completions', { model: 'm', prompt: '/a /chat-only hi' }, 'm'))).toEqual(['a']);
  });

  it('models.<alias>.agents run first, then the slash commands, each agent once', async () => {
    const r = await registry({ m: ['b', 'n 7', 'missing'], other: ['a'] });
    expect(names(r.plan('chat/completions', chat('hello'), 'm'))).toEqual(['b', 'n(7)']);
    const plan = r.plan('chat/completions', chat('/a /b hi'), 'm')!;
    expect(names(plan)).toEqual(['b', 'n(7)', 'a']);
    expect(plan.body).toEqual(chat('hi'));
    expect(r.plan('chat/completions', chat('hi'), 'third')).toBeUndefined();
  });

  it('counts failures for /health', async () => {
    const r = await registry();
    r.recordFailure('a', 'onRequest', 'threw: x');
    r.recordFailure('a', 'onResponse', 'timed out');
    expect(r.health().find((h) => h.name === 'a')).toMatchObject({ failures: 2, last_failure: { hook: 'onResponse', reason: 'timed out' } });
  });
});
