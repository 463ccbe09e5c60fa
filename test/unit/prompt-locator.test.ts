import fc from 'fast-check';
import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { AgentRegistry, promptSlot, type JsonObject } from '../../src/agents/index.js';
import { anthropicBridge } from '../../src/api/anthropic.js';
import { jsonBodyParser, planningBody } from '../../src/api/body.js';
import { responsesBridge } from '../../src/api/responses.js';
import type { ChatBridge } from '../../src/api/serve-prompt.js';

/** What agents' planning reads of a bridged body: the prompt text of its chat translation. */
const chatPrompt = (bridge: ChatBridge, body: JsonObject) => promptSlot('chat/completions', bridge.toChat(body).chat)?.text;

const text = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('/json hi', '  /parallel 2 x', '/', 'hello /json'));
const role = fc.constantFrom('user', 'assistant', 'system', 'developer', 'tool');
const junk = fc.oneof(fc.integer(), fc.constant(null), fc.boolean(), fc.string({ maxLength: 4 }));

const anthropicBlock = fc.oneof(
  fc.record({ type: fc.constant('text'), text: fc.oneof(text, junk) }),
  fc.record({ type: fc.constant('image'), source: fc.record({ type: fc.constant('base64'), media_type: fc.constant('image/png'), data: fc.constant('AA==') }) }),
  fc.record({ type: fc.constant('tool_result'), tool_use_id: fc.constant('t1'), content: text }),
  fc.record({ type: fc.constant('tool_use'), id: fc.constant('t1'), name: fc.constant('Read'), input: fc.constant({}) }),
  junk,
);
const anthropicBody = fc.record({
  model: fc.constant('m'),
  system: fc.option(text, { nil: undefined }),
  messages: fc.array(fc.oneof(fc.record({ role, content: fc.oneof(text, fc.array(anthropicBlock, { maxLength: 3 }), junk) }), junk), { maxLength: 6 }),
});

const responsesPart = fc.oneof(
  fc.record({ type: fc.constantFrom('input_text', 'output_text', 'text', 'input_image', 'refusal'), text: fc.oneof(text, junk) }),
  fc.record({ type: fc.constant('input_image'), image_url: fc.constant('data:image/png;base64,AA==') }),
  junk,
);
const responsesItem = fc.oneof(
  fc.record({ type: fc.constantFrom(undefined, 'message', 'function_call', 'function_call_output'), role: fc.oneof(role, junk), content: fc.oneof(text, fc.array(responsesPart, { maxLength: 3 }), junk) }),
  junk,
);
const responsesBody = fc.record({
  model: fc.constant('m'),
  instructions: fc.option(text, { nil: undefined }),
  input: fc.oneof(text, fc.array(responsesItem, { maxLength: 6 }), junk),
});

describe('a bridge\'s prompt, found without translating', () => {
  it.each([
    ['Anthropic Messages', anthropicBridge, anthropicBody],
    ['OpenAI Responses', responsesBridge, responsesBody],
  ] as const)('%s: the text planning would read in the chat translation, for any body', (_name, bridge, bodies) => {
    fc.assert(
      fc.property(bodies, (body) => {
        const json = JSON.parse(JSON.stringify(body)) as JsonObject;
        expect(bridge.prompt.text(json)).toBe(chatPrompt(bridge, json));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('planningBody', () => {
  type Request = Parameters<ReturnType<typeof jsonBodyParser>>[0];
  const parsed = (body: unknown): FastifyRequest => {
    const request = {} as Request;
    let err: Error | null = null;
    jsonBodyParser()(request, Buffer.from(JSON.stringify(body)), (e) => (err = e));
    if (err) throw err;
    return request as FastifyRequest;
  };
  const history = (n: number) => Array.from({ length: n }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}: ${'x'.repeat(80)} "q" \\ é` }));

  it('gives a large body\'s prompt as the whole body does, parsing only from the end back to the last user message', () => {
    const body = { model: 'm', messages: [...history(300), { role: 'user', content: '/json list the files' }, { role: 'assistant', content: 'ok' }, { role: 'tool', content: 'x' }] };
    const request = parsed(body);
    expect(request.parsedBody?.partial).toBe(true);
    const view = planningBody(request, 'messages', (m) => typeof m === 'object' && m !== null && (m as JsonObject).role === 'user');
    const messages = view.messages as unknown[];
    expect(messages).toHaveLength(303);
    expect(Object.keys(messages)).toEqual(['300']);
    expect(promptSlot('chat/completions', view)?.text).toBe('/json list the files');
    expect(promptSlot('chat/completions', view)?.text).toBe(promptSlot('chat/completions', body as JsonObject)?.text);
    expect(view.model).toBe('m');
  });

  it('agrees with the whole body for any history (Anthropic\'s shapes, as large bodies)', () => {
    fc.assert(
      fc.property(anthropicBody, (body) => {
        const large = { ...body, padding: 'p'.repeat(17_000) };
        const request = parsed(large);
        const view = planningBody(request, anthropicBridge.prompt.field, (m) => anthropicBridge.prompt.wanted(m));
        expect(anthropicBridge.prompt.text(view)).toBe(chatPrompt(anthropicBridge, JSON.parse(JSON.stringify(large)) as JsonObject));
      }),
      { numRuns: 300 },
    );
  });

  it('is the body itself when it was parsed whole, or the field is no array', () => {
    const small = parsed({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(planningBody(small, 'messages', () => true)).toBe(small.parsedBody?.json);
    const noArray = parsed({ model: 'm', prompt: 'x'.repeat(20_000) });
    expect(planningBody(noArray, 'prompt', () => true)).toBe(noArray.parsedBody?.json);
  });
});

describe('AgentRegistry.mayPlan', () => {
  it('is false with no agent loaded, whatever the prompt, and never reads it', () => {
    let read = false;
    expect(
      AgentRegistry.empty().mayPlan('m', () => {
        read = true;
        return '/json';
      }),
    ).toBe(false);
    expect(read).toBe(false);
  });
});
