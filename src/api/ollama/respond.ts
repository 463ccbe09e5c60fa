/**
 * llama-server's OpenAI-shaped answers -> Ollama's: the NDJSON lines of a streamed /api/chat or /api/generate
 * (`StreamTranslator`, fed one SSE data object at a time), the single object of a non-streamed one
 * (`completionToOllama`, from the assembled completion), and /api/embed's answer. Pure.
 */
import { doneFields, type FinalStats, type UpstreamStats } from './translate.js';

type Json = Record<string, unknown>;
export type OllamaKind = 'chat' | 'generate';

export interface OllamaToolCall {
  function: { name: string; arguments: Record<string, unknown> };
}

/** What the final line needs that the stream does not carry. */
export interface RequestTimes {
  /** Nanoseconds since the request arrived. */
  totalNs: number;
  /** Nanoseconds spent waiting for the instance (its load included). */
  loadNs: number;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function createdAt(now = Date.now()): string {
  return new Date(now).toISOString();
}

function parseArguments(raw: unknown): Record<string, unknown> {
  if (isObject(raw)) return raw;
  if (typeof raw !== 'string' || raw.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    return isObject(parsed) ? parsed : { value: parsed };
  } catch {
    return { _raw: raw };
  }
}

/** OpenAI tool calls (arguments as JSON text) -> Ollama's (arguments as an object). */
export function toolCallsToOllama(calls: unknown): OllamaToolCall[] {
  if (!Array.isArray(calls)) return [];
  const out: OllamaToolCall[] = [];
  for (const call of calls) {
    const fn = isObject(call) && isObject(call.function) ? call.function : undefined;
    if (fn && typeof fn.name === 'string' && fn.name) out.push({ function: { name: fn.name, arguments: parseArguments(fn.arguments) } });
  }
  return out;
}

/** The message of an error event or body: OpenAI's `{error: {message}}`, Ollama's `{error: "..."}`. */
export function errorText(data: Json): string | undefined {
  const e = data.error;
  if (e === undefined || e === null) return undefined;
  if (typeof e === 'string') return e;
  if (isObject(e) && typeof e.message === 'string') return e.message;
  return JSON.stringify(e);
}

function statsFrom(times: RequestTimes, finishReason: string | null, timings: unknown, usage: unknown): FinalStats {
  return {
    totalNs: times.totalNs,
    loadNs: times.loadNs,
    finishReason,
    ...(isObject(timings) ? { timings: timings as NonNullable<UpstreamStats['timings']> } : {}),
    ...(isObject(usage) ? { usage: usage as NonNullable<UpstreamStats['usage']> } : {}),
  };
}

/**
 * A streamed answer, one upstream event at a time: each text (and thinking) delta becomes a line at once; tool
 * calls, whose arguments llama-server streams in pieces, are gathered and sent whole in one line before the
 * last; the last line carries `done: true` and the statistics (from the `timings` and `usage` of the last events).
 */
export class StreamTranslator {
  private readonly calls: { name: string; args: string }[] = [];
  private finishReason: string | null = null;
  private timings: unknown;
  private usage: unknown;
  /** An error event ended the stream: its message. */
  error: string | undefined;

  constructor(
    private readonly kind: OllamaKind,
    private readonly model: string,
  ) {}

  private line(content: string, thinking: string | undefined, extra: Json = {}): Json {
    const head = { model: this.model, created_at: createdAt() };
    if (this.kind === 'chat') {
      return { ...head, message: { role: 'assistant', content, ...(thinking ? { thinking } : {}), ...extra }, done: false };
    }
    return { ...head, response: content, ...(thinking ? { thinking } : {}), done: false };
  }

  /** One SSE data object -> the lines to send now (none for an event with nothing to show). */
  event(data: Json): Json[] {
    const message = errorText(data);
    if (message !== undefined) {
      this.error = message;
      return [];
    }
    if (data.timings !== undefined && data.timings !== null) this.timings = data.timings;
    if (data.usage !== undefined && data.usage !== null) this.usage = data.usage;
    const choice = Array.isArray(data.choices) && isObject(data.choices[0]) ? data.choices[0] : undefined;
    if (!choice) return [];
    if (typeof choice.finish_reason === 'string') this.finishReason = choice.finish_reason;
    const delta = isObject(choice.delta) ? choice.delta : undefined;
    const text = typeof delta?.content === 'string' ? delta.content : typeof choice.text === 'string' ? choice.text : '';
    const thinking = typeof delta?.reasoning_content === 'string' ? delta.reasoning_content : undefined;
    if (Array.isArray(delta?.tool_calls)) {
      for (const raw of delta.tool_calls) {
        if (!isObject(raw)) continue;
        const index = typeof raw.index === 'number' ? raw.index : this.calls.length;
        const fn = isObject(raw.function) ? raw.function : {};
        const call = (this.calls[index] ??= { name: '', args: '' });
        if (typeof fn.name === 'string') call.name += fn.name;
        if (typeof fn.arguments === 'string') call.args += fn.arguments;
        else if (isObject(fn.arguments)) call.args = JSON.stringify(fn.arguments);
      }
    }
    if (!text && !thinking) return [];
    return [this.line(text, thinking)];
  }

  /** The closing lines: gathered tool calls (if any), then `done: true` with the statistics. */
  final(times: RequestTimes): Json[] {
    const out: Json[] = [];
    const calls = toolCallsToOllama(this.calls.filter(Boolean).map((c) => ({ function: { name: c.name, arguments: c.args } })));
    if (calls.length > 0 && this.kind === 'chat') out.push(this.line('', undefined, { tool_calls: calls }));
    const stats = doneFields(statsFrom(times, this.finishReason, this.timings, this.usage));
    const head = { model: this.model, created_at: createdAt() };
    out.push(this.kind === 'chat' ? { ...head, message: { role: 'assistant', content: '' }, ...stats } : { ...head, response: '', context: [], ...stats });
    return out;
  }
}

/** A whole `chat.completion` / `text_completion` (after any response hooks) -> Ollama's non-streamed answer. */
export function completionToOllama(completion: Json, kind: OllamaKind, model: string, times: RequestTimes): Json {
  const choice = Array.isArray(completion.choices) && isObject(completion.choices[0]) ? completion.choices[0] : {};
  const message = isObject(choice.message) ? choice.message : undefined;
  const content = typeof message?.content === 'string' ? message.content : typeof choice.text === 'string' ? choice.text : '';
  const thinking = typeof message?.reasoning_content === 'string' && message.reasoning_content ? message.reasoning_content : undefined;
  const finish = typeof choice.finish_reason === 'string' ? choice.finish_reason : null;
  const stats = doneFields(statsFrom(times, finish, completion.timings, completion.usage));
  const head = { model, created_at: createdAt() };
  // Fields agents added to the completion (x_agents, by convention) travel along.
  const extra: Json = {};
  for (const [key, value] of Object.entries(completion)) if (key.startsWith('x_')) extra[key] = value;
  if (kind === 'chat') {
    const calls = toolCallsToOllama(message?.tool_calls);
    return { ...head, message: { role: 'assistant', content, ...(thinking ? { thinking } : {}), ...(calls.length ? { tool_calls: calls } : {}) }, ...stats, ...extra };
  }
  return { ...head, response: content, ...(thinking ? { thinking } : {}), context: [], ...stats, ...extra };
}

/** Scaled to length 1 (Ollama's /api/embed answers unit vectors); a zero vector stays as it is. */
export function normalize(vector: readonly number[]): number[] {
  let sum = 0;
  for (const v of vector) sum += v * v;
  const norm = Math.sqrt(sum);
  return norm > 0 ? vector.map((v) => v / norm) : [...vector];
}

/** The vectors of an OpenAI embeddings answer, in input order. */
export function embeddingVectors(response: Json): number[][] {
  const data = Array.isArray(response.data) ? response.data.filter(isObject) : [];
  return [...data]
    .sort((a, b) => (typeof a.index === 'number' ? a.index : 0) - (typeof b.index === 'number' ? b.index : 0))
    .map((d) => (Array.isArray(d.embedding) ? (d.embedding as unknown[]).map(Number) : []));
}

/** /api/embed's answer: unit vectors, cut to `dimensions` first when asked. */
export function embedResponse(response: Json, model: string, times: RequestTimes, dimensions?: number): Json {
  const vectors = embeddingVectors(response).map((v) => normalize(dimensions !== undefined && dimensions > 0 ? v.slice(0, dimensions) : v));
  const usage = isObject(response.usage) ? response.usage : {};
  return {
    model,
    embeddings: vectors,
    total_duration: Math.round(times.totalNs),
    load_duration: Math.round(times.loadNs),
    prompt_eval_count: typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0,
  };
}
