/**
 * Ollama's request and response shapes, translated to and from llama-server's OpenAI-compatible ones. Pure.
 * /api/chat and /api/generate become /v1/chat/completions (or /v1/completions for `raw` prompts), always
 * streamed from llama-server so the final Ollama chunk can carry its timings.
 */
import { ClientError } from '../../models/errors.js';
import { samplingFromOptions } from '../../sources/ollama-manifest.js';
import { JSON_OBJECT_GRAMMAR } from './json-grammar.js';

export interface OllamaMessage {
  role: string;
  content?: string;
  images?: string[];
  tool_calls?: { function: { name: string; arguments: Record<string, unknown> } }[];
  tool_name?: string;
}

export type OllamaOptions = Record<string, unknown>;

/** keep_alive: a duration ("5m", "1h30m", "90s", "300"), a number of seconds, 0 (unload now) or negative (forever). */
export type KeepAlive = { kind: 'default' } | { kind: 'unload' } | { kind: 'forever' } | { kind: 'seconds'; seconds: number };

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

export function parseKeepAlive(value: unknown): KeepAlive {
  if (value === undefined || value === null || value === '') return { kind: 'default' };
  let seconds: number;
  if (typeof value === 'number') {
    seconds = value;
  } else if (typeof value === 'string') {
    const v = value.trim();
    if (/^-?\d+(\.\d+)?$/.test(v)) {
      seconds = Number(v);
    } else {
      const parts = [...v.matchAll(/(-?\d+(?:\.\d+)?)(ms|s|m|h)/g)];
      if (parts.length === 0 || parts.map((p) => p[0]).join('') !== v) {
        throw new ClientError(400, 'invalid_keep_alive', `keep_alive "${value}" is not a duration (examples: "5m", "1h", "30s", 0, -1)`);
      }
      seconds = parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_SECONDS[p[2]!]!, 0);
    }
  } else {
    throw new ClientError(400, 'invalid_keep_alive', 'keep_alive must be a duration string or a number of seconds');
  }
  if (seconds < 0) return { kind: 'forever' };
  if (seconds === 0) return { kind: 'unload' };
  return { kind: 'seconds', seconds };
}

/** Ollama's options -> llama-server's sampling parameters (shared with the params layer of Ollama's store). */
export { samplingFromOptions };

/** `options.num_ctx`: the context size the request wants (undefined: the model's own). */
export function contextSize(options: unknown): number | undefined {
  if (typeof options !== 'object' || options === null) return undefined;
  const n = (options as OllamaOptions).num_ctx;
  if (n === undefined || n === null) return undefined;
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0 || n > 16_777_216) {
    throw new ClientError(400, 'invalid_num_ctx', `options.num_ctx must be a whole number of tokens between 1 and 16777216, not ${JSON.stringify(n)}`);
  }
  return n;
}

/**
 * `format: "json"` or a JSON schema -> the fields that make llama-server enforce it: "json" as a grammar for any
 * JSON object (json-grammar.ts says why not response_format), a schema as response_format json_schema.
 */
export function formatFields(format: unknown): Record<string, unknown> {
  if (format === undefined || format === null || format === '') return {};
  if (format === 'json') return { grammar: JSON_OBJECT_GRAMMAR };
  if (typeof format === 'object') return { response_format: { type: 'json_schema', json_schema: { name: 'response', schema: format } } };
  throw new ClientError(400, 'invalid_format', `format must be "json" or a JSON schema object, not ${JSON.stringify(format)}`);
}

function toOpenAIMessage(m: OllamaMessage): Record<string, unknown> {
  if (typeof m !== 'object' || m === null || typeof m.role !== 'string') throw new ClientError(400, 'invalid_messages', 'every message needs a "role"');
  if (m.images !== undefined && (!Array.isArray(m.images) || m.images.some((i) => typeof i !== 'string'))) {
    throw new ClientError(400, 'invalid_images', '"images" must be a list of base64-encoded strings');
  }
  const msg: Record<string, unknown> = { role: m.role };
  if (m.images && m.images.length > 0) {
    msg.content = [
      ...(m.content ? [{ type: 'text', text: m.content }] : []),
      ...m.images.map((img) => ({ type: 'image_url', image_url: { url: img.startsWith('data:') ? img : `data:image/png;base64,${img}` } })),
    ];
  } else {
    msg.content = m.content ?? '';
  }
  if (m.tool_calls) {
    // A wrong shape here would otherwise be a TypeError: a 500 for the client's mistake.
    if (!Array.isArray(m.tool_calls) || m.tool_calls.some((c) => typeof c?.function !== 'object' || c.function === null || typeof c.function.name !== 'string')) {
      throw new ClientError(400, 'invalid_tool_calls', '"tool_calls" must be a list of {"function": {"name": "...", "arguments": {...}}}');
    }
    msg.tool_calls = m.tool_calls.map((c, i) => ({ id: `call_${i}`, type: 'function', function: { name: c.function.name, arguments: JSON.stringify(c.function.arguments ?? {}) } }));
  }
  if (m.role === 'tool' && m.tool_name) msg.name = m.tool_name;
  return msg;
}

export function hasImages(messages: readonly OllamaMessage[] | undefined, images?: unknown): boolean {
  return (Array.isArray(images) && images.length > 0) || (messages ?? []).some((m) => (m?.images?.length ?? 0) > 0);
}

/** /api/chat body -> llama-server /v1/chat/completions body (streamed). */
export function chatRequest(body: Record<string, unknown>): Record<string, unknown> {
  const messages = body.messages ?? [];
  if (!Array.isArray(messages)) throw new ClientError(400, 'invalid_messages', '"messages" must be an array');
  const out: Record<string, unknown> = {
    model: body.model,
    messages: (messages as OllamaMessage[]).map(toOpenAIMessage),
    stream: true,
    ...samplingFromOptions(body.options as OllamaOptions | undefined),
    ...formatFields(body.format),
  };
  if (Array.isArray(body.tools) && body.tools.length > 0) out.tools = body.tools;
  // think: false turns a thinking model's reasoning off (chat templates read enable_thinking); a level means on.
  if (body.think !== undefined && body.think !== null) out.chat_template_kwargs = { enable_thinking: body.think !== false };
  return out;
}

/** /api/generate body -> llama-server body, path and endpoint: raw prompts skip the chat template. */
export function generateRequest(body: Record<string, unknown>): { path: string; endpoint: 'chat/completions' | 'completions'; body: Record<string, unknown> } {
  const prompt = body.prompt;
  if (typeof prompt !== 'string') throw new ClientError(400, 'invalid_prompt', '"prompt" must be a string');
  if (body.suffix !== undefined && body.suffix !== '') throw new ClientError(400, 'unsupported', '"suffix" (fill-in-the-middle) is not supported on /api/generate; use /infill');
  const sampling = samplingFromOptions(body.options as OllamaOptions | undefined);
  const format = formatFields(body.format);
  if (body.raw === true) {
    return { path: '/v1/completions', endpoint: 'completions', body: { model: body.model, prompt, stream: true, ...sampling, ...format } };
  }
  const messages: OllamaMessage[] = [];
  if (typeof body.system === 'string' && body.system) messages.push({ role: 'system', content: body.system });
  messages.push({ role: 'user', content: prompt, ...(Array.isArray(body.images) ? { images: body.images as string[] } : {}) });
  return { path: '/v1/chat/completions', endpoint: 'chat/completions', body: chatRequest({ ...body, messages, format: body.format }) };
}

/** The statistics llama-server reports with the end of an answer. */
export interface UpstreamStats {
  timings?: { prompt_n?: number; prompt_ms?: number; predicted_n?: number; predicted_ms?: number; cache_n?: number };
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

export interface FinalStats {
  totalNs: number;
  loadNs: number;
  timings?: UpstreamStats['timings'];
  usage?: UpstreamStats['usage'];
  finishReason: string | null;
}

/** The statistics fields of Ollama's last chunk (durations in nanoseconds). */
export function doneFields(s: FinalStats): Record<string, unknown> {
  const t = s.timings ?? {};
  return {
    done: true,
    done_reason: s.finishReason === 'length' ? 'length' : 'stop',
    total_duration: Math.round(s.totalNs),
    load_duration: Math.round(s.loadNs),
    // The whole prompt: llama-server's prompt_n leaves out the tokens it took from its cache.
    prompt_eval_count: s.usage?.prompt_tokens ?? (t.prompt_n !== undefined ? t.prompt_n + (t.cache_n ?? 0) : 0),
    prompt_eval_duration: Math.round((t.prompt_ms ?? 0) * 1e6),
    eval_count: t.predicted_n ?? s.usage?.completion_tokens ?? 0,
    eval_duration: Math.round((t.predicted_ms ?? 0) * 1e6),
  };
}
