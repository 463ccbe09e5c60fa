/** models.<alias>.rules on the body llama-server receives, on the OpenAI, Anthropic and Ollama routes; a real llama-server answers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const messages = [{ role: 'user', content: 'hi' }];

describe.skipIf(!tools.server)(`request rules${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([51]);
    const path = files[51]!;
    t = await startTestProxy(tools.server!, root, {
      models: {
        // ignore_eos: the tiny model would stop early; with it the count is exactly the cap.
        forced: { path, ctx: 512, rules: { force: { max_tokens: 3, ignore_eos: true } } },
        defaulted: { path, ctx: 512, rules: { defaults: { max_tokens: 3 }, force: { ignore_eos: true } } },
        stripped: { path, ctx: 512, rules: { strip: ['max_tokens'], defaults: { max_tokens: 2 }, force: { ignore_eos: true } } },
      },
    });
  }, 60_000);
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('force caps max_tokens on OpenAI chat, Anthropic messages and Ollama chat even when the client asks 50', async () => {
    const openai = await postJson(`${t.url}/v1/chat/completions`, { model: 'forced', messages, max_tokens: 50 });
    expect(openai.status).toBe(200);
    expect(openai.json.usage.completion_tokens).toBe(3);
    const anthropic = await postJson(`${t.url}/v1/messages`, { model: 'forced', messages, max_tokens: 50 });
    expect(anthropic.status).toBe(200);
    expect(anthropic.json.usage.output_tokens).toBeLessThanOrEqual(3);
    expect(anthropic.json.usage.output_tokens).toBeGreaterThan(0);
    const ollama = await postJson(`${t.url}/api/chat`, { model: 'forced', messages, stream: false, options: { num_predict: 50 } });
    expect(ollama.status).toBe(200);
    expect(ollama.json.eval_count).toBeLessThanOrEqual(3);
    expect(ollama.json.eval_count).toBeGreaterThan(0);
  }, 60_000);

  it('defaults apply only when the field is absent', async () => {
    const absent = await postJson(`${t.url}/v1/chat/completions`, { model: 'defaulted', messages });
    expect(absent.json.usage.completion_tokens).toBe(3);
    const present = await postJson(`${t.url}/v1/chat/completions`, { model: 'defaulted', messages, max_tokens: 6 });
    expect(present.json.usage.completion_tokens).toBe(6);
  }, 60_000);

  it('strip removes the client\'s field (here re-set by a default)', async () => {
    const answer = await postJson(`${t.url}/v1/chat/completions`, { model: 'stripped', messages, max_tokens: 50 });
    expect(answer.status).toBe(200);
    expect(answer.json.usage.completion_tokens).toBe(2);
  }, 60_000);
});
