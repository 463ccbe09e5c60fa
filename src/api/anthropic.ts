/**
 * Anthropic's Messages API (what Claude Code and @anthropic-ai/sdk speak): POST /v1/messages and
 * /v1/messages/count_tokens, `?beta=true` and the anthropic-version / anthropic-beta headers accepted (llama-server
 * needs neither). llama-server serves both itself, so a request without agents goes out as the raw bytes received
 * and its event stream (message_start ... message_stop) comes back as it arrives. Errors are Anthropic's shape
 * (errors.ts picks it by path, for fastify's handler and the key check too). With agents, the body is translated
 * to the OpenAI chat request agents see and the chat answer back (the bridge below).
 */
import type { JsonObject, SseEvent } from '../agents/index.js';
import { bodyObject } from './body.js';
import { anthropicError } from './errors.js';
import type { PromptPipeline } from './prompt-pipeline.js';
import { CHAT_PROMPT, chunkData, isObject, modelOf, namedEvent, proxyTo, servePrompt, type ChatBridge, type PromptFamily } from './serve-prompt.js';
import type { ProxyApp } from './types.js';
import type { ErrorFormat } from './upstream.js';

export const ANTHROPIC_ERRORS: ErrorFormat = {
  body: (status, message) => JSON.stringify(anthropicError(status, message)),
  streamEvent: (status, message) => namedEvent('error', { ...anthropicError(status, message) }),
};

/** A system prompt or message content (a string or content blocks) as OpenAI chat content. */
function chatContent(content: unknown, unsupported: Set<string>): unknown {
  if (!Array.isArray(content)) return content;
  const parts: JsonObject[] = [];
  for (const block of content) {
    if (!isObject(block)) continue;
    if (block.type === 'text') parts.push({ type: 'text', text: block.text });
    else if (block.type === 'image' && isObject(block.source) && block.source.type === 'base64') {
      parts.push({ type: 'image_url', image_url: { url: `data:${String(block.source.media_type)};base64,${String(block.source.data)}` } });
    } else unsupported.add(`"${String(block.type)}" content blocks`);
  }
  return parts;
}

function systemText(system: unknown): string | undefined {
  if (typeof system === 'string') return system;
  if (Array.isArray(system)) return system.map((b) => (isObject(b) && typeof b.text === 'string' ? b.text : '')).join('\n');
  return undefined;
}

const STOP_REASONS: Record<string, string> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use' };

function messageId(id: unknown): string {
  return `msg_${typeof id === 'string' ? id.replace(/^chatcmpl-/, '') : Date.now().toString(36)}`;
}

export const anthropicBridge: ChatBridge = {
  // toChat keeps every message's role and its text blocks in order: the last user message is the same one, and
  // its first text block the chat's first text part.
  prompt: CHAT_PROMPT,

  toChat(body) {
    const unsupported = new Set<string>();
    const messages: JsonObject[] = [];
    const system = systemText(body.system);
    if (system !== undefined) messages.push({ role: 'system', content: system });
    for (const m of Array.isArray(body.messages) ? body.messages : []) {
      if (isObject(m)) messages.push({ role: m.role, content: chatContent(m.content, unsupported) });
    }
    if (Array.isArray(body.tools) && body.tools.length > 0) unsupported.add('tools');
    const chat: JsonObject = { model: body.model, messages };
    if (body.max_tokens !== undefined) chat.max_tokens = body.max_tokens;
    for (const key of ['temperature', 'top_p', 'top_k', 'stream'] as const) if (body[key] !== undefined) chat[key] = body[key];
    if (body.stop_sequences !== undefined) chat.stop = body.stop_sequences;
    // Anthropic's message_delta carries the output token count: ask for the usage chunk.
    if (body.stream === true) chat.stream_options = { include_usage: true };
    return unsupported.size ? { chat, unsupported: [...unsupported].join(', ') } : { chat };
  },

  fromCompletion(completion, body) {
    const choice = (Array.isArray(completion.choices) ? completion.choices[0] : undefined) as JsonObject | undefined;
    const message = isObject(choice?.message) ? choice.message : {};
    const usage = isObject(completion.usage) ? completion.usage : {};
    return {
      id: messageId(completion.id),
      type: 'message',
      role: 'assistant',
      model: body.model,
      content: [{ type: 'text', text: typeof message.content === 'string' ? message.content : '' }],
      stop_reason: STOP_REASONS[String(choice?.finish_reason)] ?? 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: usage.prompt_tokens ?? 0, output_tokens: usage.completion_tokens ?? 0 },
    };
  },

  async *fromChunks(batches: AsyncIterable<SseEvent[]>, body) {
    let started = false;
    let open = false;
    let stopReason = 'end_turn';
    let usage: JsonObject = {};
    const start = (id: unknown) => namedEvent('message_start', { type: 'message_start', message: { id: messageId(id), type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } } });
    for await (const data of chunkData(batches)) {
      if (isObject(data.error)) {
        yield namedEvent('error', { type: 'error', error: { type: 'api_error', message: String(data.error.message ?? 'model error') } });
        return;
      }
      if (!started) {
        yield start(data.id);
        started = true;
      }
      if (isObject(data.usage)) usage = data.usage;
      const choice = (Array.isArray(data.choices) ? data.choices[0] : undefined) as JsonObject | undefined;
      if (!choice) continue;
      const delta = isObject(choice.delta) ? choice.delta : {};
      if (typeof delta.content === 'string' && delta.content !== '') {
        if (!open) yield namedEvent('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
        open = true;
        yield namedEvent('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: delta.content } });
      }
      if (typeof choice.finish_reason === 'string') stopReason = STOP_REASONS[choice.finish_reason] ?? 'end_turn';
    }
    if (!started) yield start(undefined);
    if (open) yield namedEvent('content_block_stop', { type: 'content_block_stop', index: 0 });
    yield namedEvent('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: usage.completion_tokens ?? 0 } });
    yield namedEvent('message_stop', { type: 'message_stop' });
  },
};

const MESSAGES: PromptFamily = { endpoint: 'chat/completions', path: '/v1/messages', errors: ANTHROPIC_ERRORS, bridge: anthropicBridge };

export function registerAnthropicRoutes(app: ProxyApp, pipeline: PromptPipeline): void {
  app.post('/v1/messages', (request, reply) => servePrompt(pipeline, request, reply, MESSAGES));
  // Counting runs no agents (a slash command is counted as the text it is).
  app.post('/v1/messages/count_tokens', async (request, reply) => {
    const route = await pipeline.route(modelOf(bodyObject(request)));
    return proxyTo(pipeline, request, reply, route, { method: 'POST', path: '/v1/messages/count_tokens' }, { errors: ANTHROPIC_ERRORS });
  });
}
