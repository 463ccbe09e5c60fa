/**
 * Ollama's request and response shapes, translated to and from llama-server's OpenAI-compatible ones. Pure.
 * /api/chat and /api/generate become /v1/chat/completions (or /v1/completions for `raw` prompts), always
 * streamed from llama-server so the final Ollama chunk can carry its timings.
 */
import { ClientError } from '../../models/errors.js';

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

/** Ollama's options -> llama-server's sampling parameters (OpenAI names where it has them, its own otherwise). */
export function samplingFromOptions(options: OllamaOptions | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!options) return out;
  const copy: [string, string][] = [
    ['temperature', 'temperature'],
    ['top_p', 'top_p'],
    ['top_k', 'top_k'],
    ['min_p', 'min_p'],
    ['typical_p', 'typical_p'],
    ['seed', 'seed'],
    ['stop', 'stop'],
    ['repeat_penalty', 'repeat_penalty'],
    ['repeat_last_n', 'repeat_last_n'],
    ['presence_penalty', 'presence_penalty'],
    ['frequency_penalty', 'frequency_penalty'],
    ['mirostat', 'mirostat'],
    ['mirostat_tau', 'mirostat_tau'],
    ['mirostat_eta', 'mirostat_eta'],
    ['num_keep', 'n_keep'],
  ];
  for (const [from, to] of copy) if (options[from] !== undefined) out[to] = options[from];
  const predict = options.num_predict;
  if (typeof predict === 'number' && predict >= 0) out.max_tokens = predict;
  return out;
}

/** `format: "json"` or a JSON schema -> llama-server's response_format. */
export function responseFormat(format: unknown): Record<string, unknown> | undefined {
  if (format === undefined || format === null || format === '') return undefined;
  if (format === 'json') return { type: 'json_object' };
  if (typeof format === 'object') return { type: 'json_schema', json_schema: { name: 'response', schema: format } };
  throw new ClientError(400, 'invalid_format', `format must be "json" or a JSON schema object, not ${JSON.stringify(format)}`);
}

function toOpenAIMessage(m: OllamaMessage): Record<string, unknown> {
  if (typeof m.role !== 'string') throw new ClientError(400, 'invalid_messages', 'every message needs a "role"');
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
    msg.tool_calls = m.tool_calls.map((c, i) => ({ id: `call_${i}`, type: 'function', function: { name: c.function.name, arguments: JSON.stringify(c.function.arguments ?? {}) } }));
  }
  if (m.role === 'tool' && m.tool_name) msg.name = m.tool_name;
  return msg;
}

export function hasImages(messages: readonly OllamaMessage[] | undefined, images?: unknown): boolean {
  return (Array.isArray(images) && images.length > 0) || (messages ?? []).some((m) => (m.images?.length ?? 0) > 0);
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
  };
  const format = responseFormat(body.format);
  if (format) out.response_format = format;
  if (Array.isArray(body.tools) && body.tools.length > 0) out.tools = body.tools;
  return out;
}

/** /api/generate body -> llama-server body and path: raw prompts skip the chat template. */
export function generateRequest(body: Record<string, unknown>): { path: string; body: Record<string, unknown> } {
  const prompt = body.prompt;
  if (typeof prompt !== 'string') throw new ClientError(400, 'invalid_prompt', '"prompt" must be a string');
  if (body.suffix !== undefined && body.suffix !== '') throw new ClientError(400, 'unsupported', '"suffix" (fill-in-the-middle) is not supported on /api/generate; use /infill');
  const sampling = samplingFromOptions(body.options as OllamaOptions | undefined);
  const format = responseFormat(body.format);
  if (body.raw === true) {
    return { path: '/v1/completions', body: { model: body.model, prompt, stream: true, ...sampling, ...(format ? { response_format: format } : {}) } };
  }
  const messages: OllamaMessage[] = [];
  if (typeof body.system === 'string' && body.system) messages.push({ role: 'system', content: body.system });
  messages.push({ role: 'user', content: prompt, ...(Array.isArray(body.images) ? { images: body.images as string[] } : {}) });
  return { path: '/v1/chat/completions', body: chatRequest({ ...body, messages, format: body.format }) };
}

/** What one llama-server SSE event carries for Ollama. */
export interface UpstreamEvent {
  text: string;
  toolCalls: { function: { name: string; arguments: Record<string, unknown> } }[];
  finishReason: string | null;
  timings?: { prompt_n?: number; prompt_ms?: number; predicted_n?: number; predicted_ms?: number };
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

function parseArguments(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'string') return (raw as Record<string, unknown>) ?? {};
  try {
    return JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return { _raw: raw };
  }
}

/** One parsed SSE data object (chat or text completion chunk) -> the parts Ollama cares about. */
export function upstreamEvent(data: Record<string, unknown>): UpstreamEvent {
  const choice = (data.choices as Record<string, unknown>[] | undefined)?.[0] ?? {};
  const delta = (choice.delta as Record<string, unknown> | undefined) ?? {};
  const text = (typeof delta.content === 'string' ? delta.content : '') || (typeof choice.text === 'string' ? choice.text : '');
  const calls = (delta.tool_calls as { function?: { name?: string; arguments?: unknown } }[] | undefined) ?? [];
  return {
    text,
    toolCalls: calls.filter((c) => c.function?.name).map((c) => ({ function: { name: c.function!.name!, arguments: parseArguments(c.function!.arguments) } })),
    finishReason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
    ...(data.timings ? { timings: data.timings as UpstreamEvent['timings'] } : {}),
    ...(data.usage ? { usage: data.usage as UpstreamEvent['usage'] } : {}),
  };
}

export interface FinalStats {
  totalNs: number;
  loadNs: number;
  timings?: UpstreamEvent['timings'];
  usage?: UpstreamEvent['usage'];
  finishReason: string | null;
}

/** The statistics fields of Ollama's last chunk (durations in nanoseconds). */
export function doneFields(s: FinalStats): Record<string, unknown> {
  const t = s.timings ?? {};
  return {
    done: true,
    done_reason: s.finishReason === 'length' ? 'length' : s.finishReason === 'tool_calls' ? 'stop' : 'stop',
    total_duration: Math.round(s.totalNs),
    load_duration: Math.round(s.loadNs),
    prompt_eval_count: t.prompt_n ?? s.usage?.prompt_tokens ?? 0,
    prompt_eval_duration: Math.round((t.prompt_ms ?? 0) * 1e6),
    eval_count: t.predicted_n ?? s.usage?.completion_tokens ?? 0,
    eval_duration: Math.round((t.predicted_ms ?? 0) * 1e6),
  };
}
