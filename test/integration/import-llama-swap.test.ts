/**
 * `import llama-swap` end to end: each example configuration (test/fixtures/llama-swap) is imported by the CLI
 * command, pointing at tiny GGUF files written here (and, for -hf, at a fake Hub); the proxy is started with the
 * result, and every imported model (and an alias of it) answers a chat request.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { importLlamaSwapCommand } from '../../src/cli/import-llama-swap.js';
import type { ConfigInput } from '../../src/config/index.js';
import { writeTinyModel, writeTinyProjector } from '../../src/gguf/index.js';
import { FakeHub, tinyModelBytes } from '../helpers/fake-hub.js';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const CLI = ['--import', pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href, path.resolve('src/cli/main.ts')];
const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'llama-swap');

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  return {
    stream: new Writable({
      write(chunk: Buffer, _enc, done) {
        text += chunk.toString();
        done();
      },
    }),
    text: () => text,
  };
}

describe.skipIf(!tools.server)(`import llama-swap: the imported configurations serve${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let hub: FakeHub;
  let dir: string;
  let root: string;
  let t: TestProxy | undefined;

  beforeAll(async () => {
    ({ root } = await modelsFolder([]));
    dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-import-'));
    for (const seed of [1, 2, 3, 4]) await writeTinyModel(path.join(dir, `tiny-${seed}.gguf`), { seed });
    await writeTinyProjector(path.join(dir, 'tiny-mmproj.gguf'), { seed: 1, textEmbd: 64 });
    hub = await FakeHub.start();
    hub.addRepo('acme/tiny-GGUF', { files: [{ path: 'tiny-Q8_0.gguf', data: await tinyModelBytes(5) }] });
    process.env.HF_HUB_CACHE = path.join(dir, 'no-other-cache');
  });
  afterAll(async () => {
    await hub?.close();
    delete process.env.HF_HUB_CACHE;
  });
  afterEach(async () => {
    await t?.proxy.close();
    t = undefined;
  });

  /** Imports `fixture` with the CLI command; returns the written document and what went to stderr. */
  async function runImport(fixture: string): Promise<{ doc: ConfigInput & { models: Record<string, { aliases?: string[] }> }; stderr: string; out: string }> {
    const out = path.join(dir, fixture.replace(/\.yaml$/, '.imported.yaml'));
    const stderr = sink();
    await importLlamaSwapCommand(path.join(FIXTURES, fixture), { output: out, force: true }, { stdout: sink().stream, stderr: stderr.stream, env: { TINY_MODELS: dir } });
    return { doc: parseYaml(readFileSync(out, 'utf8')), stderr: stderr.text(), out };
  }

  it.each([
    ['one-at-a-time.yaml', ['chat-small', 'chat-second'], ['gpt-4o-mini']],
    ['groups-and-foreign.yaml', ['coder', 'hub-model'], ['hub-model-latest']],
    ['matrix-and-vision.yaml', ['vision', 'text-a', 'text-b'], []],
  ])('%s: serve accepts it and each model answers', async (fixture, models, aliases) => {
    const { doc, stderr, out } = await runImport(fixture);
    expect(Object.keys(doc.models).sort()).toEqual([...models].sort());
    expect(stderr).toContain(`wrote ${out}: ${models.length} models`);
    t = await startTestProxy(tools.server!, root, { ...doc, hub: { endpoint: hub.hubUrl, retries: 0 } });
    for (const name of [...models, ...aliases]) {
      const r = await postJson(`${t.url}/v1/chat/completions`, { model: name, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
      expect(r.status, `${fixture} ${name}: ${JSON.stringify(r.json)}`).toBe(200);
      expect(r.json.choices[0].message.content.length, name).toBeGreaterThan(0);
    }
  }, 180_000);

  it('reports the models it could not import, and refuses to overwrite without --force', async () => {
    const { stderr, out } = await runImport('groups-and-foreign.yaml');
    expect(stderr).toContain('note: models.vllm-model.cmd: not imported: it runs vllm');
    expect(stderr).toContain('note: models.in-docker.cmd: not imported: it runs docker');
    await expect(importLlamaSwapCommand(path.join(FIXTURES, 'groups-and-foreign.yaml'), { output: out }, { stdout: sink().stream, stderr: sink().stream, env: { TINY_MODELS: dir } })).rejects.toThrow(/exists; pass --force/);
    await expect(importLlamaSwapCommand(path.join(dir, 'missing.yaml'), {}, { stdout: sink().stream, stderr: sink().stream, env: {} })).rejects.toThrow(/cannot read the llama-swap configuration/);
  });
});

describe('import llama-swap on the command line', () => {
  it('prints the configuration on stdout and the notes on stderr; bad input is exit 1 naming the problem', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-import-cli-'));
    writeFileSync(path.join(dir, 'ok.yaml'), 'models:\n  m:\n    cmd: llama-server --port ${PORT} -m /m.gguf -ngl 99\n    cmdStop: pkill me\n');
    const ok = spawnSync(process.execPath, [...CLI, 'import', 'llama-swap', 'ok.yaml'], { cwd: dir, encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(parseYaml(ok.stdout)).toEqual({ models: { m: { path: '/m.gguf', args: [] } } });
    expect(ok.stderr).toContain('note: models.m.cmdStop: not imported');
    writeFileSync(path.join(dir, 'bad.yaml'), 'models:\n  m:\n    cmd: llama-server -m ${where}/m.gguf\n');
    const bad = spawnSync(process.execPath, [...CLI, 'import', 'llama-swap', 'bad.yaml', '-o', 'out.yaml'], { cwd: dir, encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^error: models\.m\.cmd: uses \$\{where\}, which is not a defined macro/m);
  });
});
