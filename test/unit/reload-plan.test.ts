import { describe, expect, it } from 'vitest';
import { buildConfig, type ConfigInput } from '../../src/config/index.js';
import { keepRestartOnly, reloadPlan } from '../../src/config/reload-plan.js';

const base: ConfigInput = { models: { a: { path: '/m/a.gguf', ctx: 512 }, b: { path: '/m/b.gguf' }, c: { path: '/m/c.gguf' } } };
const cfg = (input: ConfigInput) => buildConfig(input, null, { env: {} });

describe('reloadPlan', () => {
  const cases: Array<{ name: string; after: ConfigInput; want: ReturnType<typeof reloadPlan> }> = [
    { name: 'nothing changed', after: base, want: { added: [], removed: [], changed: [], needsRestart: [] } },
    {
      name: 'adds one, changes one ctx, removes one',
      after: { models: { a: { path: '/m/a.gguf', ctx: 1024 }, b: { path: '/m/b.gguf' }, d: { path: '/m/d.gguf' } } },
      want: { added: ['d'], removed: ['c'], changed: ['a'], needsRestart: [] },
    },
    { name: 'args change counts', after: { models: { ...base.models, b: { path: '/m/b.gguf', args: ['--threads', '1'] } } }, want: { added: [], removed: [], changed: ['b'], needsRestart: [] } },
    { name: 'port and binary need a restart', after: { ...base, server: { port: 9999 }, llamaServer: { binary: '/x/llama-server' } }, want: { added: [], removed: [], changed: [], needsRestart: ['server.port', 'llamaServer.binary'] } },
    { name: 'keys change live', after: { ...base, server: { apiKeys: ['sk-1234567890abcdef'] } }, want: { added: [], removed: [], changed: [], needsRestart: [] } },
  ];
  for (const c of cases) it(c.name, () => expect(reloadPlan(cfg(base), cfg(c.after))).toEqual(c.want));
});

describe('keepRestartOnly', () => {
  it('puts back the running socket, cluster and GPU settings, takes everything else from the new file', () => {
    const before = cfg({ ...base, server: { port: 8080, host: '127.0.0.1' }, pool: { maxQueue: 10, portRange: [41000, 41010] }, gpu: { strategy: 'single-gpu-preferred' } });
    const after = cfg({ models: {}, server: { port: 9000, host: '0.0.0.0', apiKeys: ['k-1234567890abcdef'] }, pool: { maxQueue: 2, portRange: [50000, 50010] }, gpu: { strategy: 'distribute' } });
    const merged = keepRestartOnly(before, after);
    expect(merged.server).toMatchObject({ port: 8080, host: '127.0.0.1', apiKeys: ['k-1234567890abcdef'] });
    expect(merged.pool).toMatchObject({ maxQueue: 2, portRange: [41000, 41010] });
    expect(merged.gpu).toEqual(before.gpu);
    expect(merged.models).toEqual({});
    expect(after.server.port).toBe(9000);
  });
});
