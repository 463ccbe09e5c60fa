import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const CLAUDE = path.resolve('node_modules/.bin/claude');
const skip = !tools.server ? tools.reason : !existsSync(CLAUDE) ? 'the claude CLI (npm @anthropic-ai/claude-code) is not installed' : undefined;

describe.skipIf(skip !== undefined)(`the real Claude Code CLI against the proxy${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let t: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([5]);
    // Its system prompt and tools are tens of thousands of tokens, and the tiny model's vocabulary is bytes.
    t = await startTestProxy(tools.server!, root, {
      server: { apiKeys: ['sk-claude'] },
      // Named as Claude models: Claude Code refuses model names it does not know ("unrecognized_model").
      models: Object.fromEntries(['claude-sonnet-4-5', 'claude-haiku-4-5'].map((alias) => [alias, { path: files[5]!, ctx: 196_608, parallel: 1, args: ['--override-kv', 'llama.context_length=int:262144'] }])),
    });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('claude -p completes a round trip through /v1/messages', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'lsp-claude-home-'));
    const run = promisify(execFile)(CLAUDE, ['-p', 'Say hi', '--output-format', 'json', '--model', 'claude-sonnet-4-5'], {
      cwd: home,
      timeout: 240_000,
      env: {
        PATH: process.env.PATH!,
        HOME: home,
        ANTHROPIC_BASE_URL: t.url,
        ANTHROPIC_API_KEY: 'sk-claude',
        // Random weights never stop by themselves; nothing but the proxy may be called.
        CLAUDE_CODE_MAX_OUTPUT_TOKENS: '16',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        DISABLE_TELEMETRY: '1',
        DISABLE_AUTOUPDATER: '1',
        ANTHROPIC_SMALL_FAST_MODEL: 'claude-haiku-4-5',
      },
    });
    run.child.stdin?.end();
    // A random-weight answer may end the run as an error result (exit status 1, e.g. a malformed tool call):
    // the JSON result on stdout still says the exchange with the proxy completed.
    const { stdout } = await run.catch((err: { stdout?: string; stderr?: string; message: string }) => {
      if (err.stdout?.trim().startsWith('{')) return { stdout: err.stdout };
      throw new Error(`claude failed: ${err.message}\nstdout: ${err.stdout}\nstderr: ${err.stderr}`);
    });
    const result = JSON.parse(stdout) as { type: string; subtype?: string; is_error: boolean; num_turns?: number; usage?: { input_tokens?: number; output_tokens?: number } };
    expect(result.type, stdout).toBe('result');
    // Tokens counted by the model behind the proxy: the request reached llama-server and its answer came back.
    expect(result.usage!.input_tokens).toBeGreaterThan(10_000);
    expect(result.usage!.output_tokens).toBeGreaterThan(0);
  }, 300_000);
});
