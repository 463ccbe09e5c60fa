/**
 * OpenAI's Responses API (what Codex CLI, the Agents SDK and @ai-sdk/openai's default model call): POST
 * /v1/responses and /v1/responses/input_tokens, served by llama-server itself, so a request without agents goes
 * out as the raw bytes received and its typed event stream comes back as it arrives. Errors are OpenAI's shape.
 * With agents, `instructions` + `input` become the OpenAI chat request agents see, and the chat answer becomes
 * a `response` object (or its events: response.created ... response.completed).
 */
import { randomBytes } from 'node:crypto';
import type { JsonObject, SseEvent } from '../agents/index.js';
import { bodyObject } from './body.js';
import type { PromptPipeline } from './prompt-pipeline.js';
import { chunkData, isObject, modelOf, namedEvent, proxyTo, servePrompt, type ChatBridge, type PromptFamily } from './serve-prompt.js';
import type { ProxyApp } from './types.js';
import { OPENAI_ERRORS } from './upstream.js';

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

/** An input item's content (a string or input parts) as OpenAI chat content. */
function chatContent(content: unknown, unsupported: Set<string>): unknown {
  if (!Array.isArray(content)) return content;
  const parts: JsonObject[] = [];
  for (const part of content) {
    if (!isObject(part)) continue;
    if (part.type === 'input_text' || part.type === 'output_text' || part.type === 'text') parts.push({ type: 'text', text: part.text });
    else if (part.type === 'input_image' && typeof part.image_url === 'string') parts.push({ type: 'image_url', image_url: { url: part.image_url } });
    else unsupported.add(`"${String(part.type)}" input parts`);
  }
  return parts;
}

/** The `response` object for a text answer (whole, or as the stream's last event says it). */
function responseObject(body: JsonObject, id: string, itemId: string, text: string, finish: string | undefined, usage: JsonObject, status: 'in_progress' | 'completed'): JsonObject {
  const done = status === 'completed';
  const incomplete = done && finish === 'length';
  const input = Number(usage.prompt_tokens ?? 0);
  const output = Number(usage.completion_tokens ?? 0);
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status: incomplete ? 'incomplete' : status,
    incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
    model: body.model,
    output: done ? [{ type: 'message', id: itemId, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] }] : [],
    usage: done ? { input_tokens: input, output_tokens: output, total_tokens: input + output } : null,
  };
}

/** An input item toChat makes a chat message of. */
const isMessageItem = (item: unknown): item is JsonObject => isObject(item) && (item.type === undefined || item.type === 'message') && typeof item.role === 'string';
const TEXT_PARTS = new Set(['input_text', 'output_text', 'text']);

export const responsesBridge: ChatBridge = {
  prompt: {
    field: 'input',
    wanted: (item) => isMessageItem(item) && item.role === 'user',
    // What promptSlot finds in toChat's messages: the input itself, or the last user message item's content as it
    // is, or its first text part with a string text.
    text(body) {
      if (typeof body.input === 'string') return body.input;
      if (!Array.isArray(body.input)) return undefined;
      for (let i = body.input.length - 1; i >= 0; i--) {
        const item: unknown = body.input[i];
        if (!isMessageItem(item) || item.role !== 'user') continue;
        if (typeof item.content === 'string') return item.content;
        if (!Array.isArray(item.content)) return undefined;
        for (const part of item.content) if (isObject(part) && TEXT_PARTS.has(String(part.type)) && typeof part.text === 'string') return part.text;
        return undefined;
      }
      return undefined;
    },
  },

  toChat(body) {
    const unsupported = new Set<string>();
    const messages: JsonObject[] = [];
    if (typeof body.instructions === 'string') messages.push({ role: 'system', content: body.instructions });
    if (typeof body.input === 'string') messages.push({ role: 'user', content: body.input });
    else if (Array.isArray(body.input)) {
      for (const item of body.input) {
        if (!isObject(item)) continue;
        if ((item.type === undefined || item.type === 'message') && typeof item.role === 'string') {
          messages.push({ role: item.role === 'developer' ? 'system' : item.role, content: chatContent(item.content, unsupported) });
        } else unsupported.add(`"${String(item.type)}" input items`);
      }
    }
    if (Array.isArray(body.tools) && body.tools.length > 0) unsupported.add('tools');
    const chat: JsonObject = { model: body.model, messages };
    if (body.max_output_tokens !== undefined) chat.max_tokens = body.max_output_tokens;
    for (const key of ['temperature', 'top_p', 'stream'] as const) if (body[key] !== undefined) chat[key] = body[key];
    if (body.stream === true) chat.stream_options = { include_usage: true };
    return unsupported.size ? { chat, unsupported: [...unsupported].join(', ') } : { chat };
  },

  fromCompletion(completion, body) {
    const choice = (Array.isArray(completion.choices) ? completion.choices[0] : undefined) as JsonObject | undefined;
    const message = isObject(choice?.message) ? choice.message : {};
    const text = typeof message.content === 'string' ? message.content : '';
    return responseObject(body, newId('resp'), newId('msg'), text, choice?.finish_reason as string | undefined, isObject(completion.usage) ? completion.usage : {}, 'completed');
  },

  async *fromChunks(batches: AsyncIterable<SseEvent[]>, body) {
    const id = newId('resp');
    const itemId = newId('msg');
    let seq = 0;
    const event = (type: string, data: JsonObject) => namedEvent(type, { type, sequence_number: seq++, ...data });
    const at = { item_id: itemId, output_index: 0, content_index: 0 };
    yield event('response.created', { response: responseObject(body, id, itemId, '', undefined, {}, 'in_progress') });
    yield event('response.output_item.added', { output_index: 0, item: { type: 'message', id: itemId, status: 'in_progress', role: 'assistant', content: [] } });
    yield event('response.content_part.added', { ...at, part: { type: 'output_text', text: '', annotations: [] } });
    let text = '';
    let finish: string | undefined;
    let usage: JsonObject = {};
    for await (const data of chunkData(batches)) {
      if (isObject(data.error)) {
        yield event('error', { code: 'server_error', message: String(data.error.message ?? 'model error'), param: null });
        return;
      }
      if (isObject(data.usage)) usage = data.usage;
      const choice = (Array.isArray(data.choices) ? data.choices[0] : undefined) as JsonObject | undefined;
      const delta = isObject(choice?.delta) ? choice.delta : {};
      if (typeof delta.content === 'string' && delta.content !== '') {
        text += delta.content;
        yield event('response.output_text.delta', { ...at, delta: delta.content });
      }
      if (typeof choice?.finish_reason === 'string') finish = choice.finish_reason;
    }
    yield event('response.output_text.done', { ...at, text });
    yield event('response.content_part.done', { ...at, part: { type: 'output_text', text, annotations: [] } });
    const final = responseObject(body, id, itemId, text, finish, usage, 'completed');
    yield event('response.output_item.done', { output_index: 0, item: (final.output as JsonObject[])[0]! });
    yield event(final.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: final });
  },
};

const RESPONSES: PromptFamily = { endpoint: 'chat/completions', path: '/v1/responses', errors: OPENAI_ERRORS, bridge: responsesBridge };

export function registerResponsesRoutes(app: ProxyApp, pipeline: PromptPipeline): void {
  for (const prefix of ['/v1', '']) {
    app.post(`${prefix}/responses`, (request, reply) => servePrompt(pipeline, request, reply, RESPONSES));
    // Counting runs no agents (a slash command is counted as the text it is).
    app.post(`${prefix}/responses/input_tokens`, async (request, reply) => {
      const route = await pipeline.route(modelOf(bodyObject(request)));
      return proxyTo(pipeline, request, reply, route, { method: 'POST', path: '/v1/responses/input_tokens' });
    });
  }
}
