import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const CODEX = path.resolve('node_modules/.bin/codex');

/** Why the codex CLI cannot run here: not installed, or no native binary for this platform (an optional package). */
function codexUnavailable(): string | undefined {
  if (!existsSync(CODEX)) return 'the codex CLI (npm @openai/codex) is not installed';
  try {
    execFileSync(CODEX, ['--version'], { timeout: 30_000, stdio: 'pipe' });
    return undefined;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return `the codex CLI cannot run on this machine: ${(e.stderr?.toString().trim() || e.message).split('\n')[0]}`;
  }
}
const skip = !tools.server ? tools.reason : codexUnavailable();

/**
 * $CODEX_HOME/config.toml: a custom provider on the Responses API. Nothing but the proxy may be called: no update
 * check, analytics or feedback, and no plugin marketplace (on by default, it runs `git ls-remote
 * https://github.com/openai/plugins.git` and looks up chatgpt.com and api.github.com). No retries, so a broken
 * route fails at once.
 */
const codexConfig = (baseUrl: string) => `model = "tiny-codex"
model_provider = "lsp"
check_for_update_on_startup = false

[model_providers.lsp]
name = "llama-smart-proxy"
base_url = "${baseUrl}"
env_key = "LSP_CODEX_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
`;

describe.skipIf(skip !== undefined)(`the real Codex CLI against the proxy${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let t: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([5]);
    // Its instructions and tools are tens of thousands of tokens, and the tiny model's vocabulary is bytes.
    t = await startTestProxy(tools.server!, root, {
      server: { apiKeys: ['sk-codex'] },
      // Random weights never stop by themselves and codex sends no max_output_tokens: llama-server caps each answer.
      models: { 'tiny-codex': { path: files[5]!, ctx: 196_608, parallel: 1, args: ['--override-kv', 'llama.context_length=int:262144', '-n', '32'] } },
    });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('codex exec completes a round trip through /v1/responses', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'lsp-codex-home-'));
    const codexHome = path.join(home, '.codex');
    mkdirSync(codexHome);
    writeFileSync(path.join(codexHome, 'config.toml'), codexConfig(`${t.url}/v1`));
    try {
      const run = promisify(execFile)(CODEX, ['exec', '--json', '--strict-config', '--skip-git-repo-check', '--ephemeral', 'Say hi'], {
        cwd: home,
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { PATH: process.env.PATH!, HOME: home, CODEX_HOME: codexHome, LSP_CODEX_API_KEY: 'sk-codex' },
      });
      // codex exec also reads a piped stdin (appended to the prompt) and waits for its end.
      run.child.stdin?.end();
      // A random-weight answer may end the run as a failed turn (exit status 1): the JSONL events on stdout still
      // say how the exchange with the proxy went.
      const { stdout } = await run.catch((err: { stdout?: string; stderr?: string; message: string }) => {
        if (err.stdout?.trim().startsWith('{')) return { stdout: err.stdout };
        throw new Error(`codex failed: ${err.message}\nstdout: ${err.stdout}\nstderr: ${err.stderr}`);
      });
      const events = stdout
        .split('\n')
        .filter((line) => line.trim().startsWith('{'))
        .map((line) => JSON.parse(line) as { type: string; item?: { type: string; text?: string }; usage?: { input_tokens?: number; output_tokens?: number } });
      const turn = events.find((e) => e.type === 'turn.completed');
      expect(turn, stdout).toBeDefined();
      // Tokens counted by the model behind the proxy: the request reached llama-server and its answer came back.
      expect(turn!.usage!.input_tokens).toBeGreaterThan(10_000);
      expect(turn!.usage!.output_tokens).toBeGreaterThan(0);
      // The streamed text became codex's answer.
      const answer = events.find((e) => e.type === 'item.completed' && e.item?.type === 'agent_message');
      expect(answer?.item?.text?.length, stdout).toBeGreaterThan(0);

      const metrics = await (await fetch(`${t.url}/metrics`, { headers: { authorization: 'Bearer sk-codex' } })).text();
      const served = /^llama_smart_proxy_http_requests_total\{method="POST",route="\/v1\/responses",status="200"\} (\d+)$/m.exec(metrics);
      expect(Number(served?.[1] ?? 0), metrics).toBeGreaterThanOrEqual(1);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }, 180_000);
});
