/**
 * Between a streamed answer and a whole one (pure): `assembleCompletion` gathers OpenAI stream chunks into the
 * `chat.completion` / `text_completion` object a non-streamed request would have got (so that an onResponse
 * hook sees the same shape either way); `completionToChunks` turns such an object back into stream chunks (one
 * content chunk per choice, then a final chunk with the finish reasons and every other top-level field, e.g.
 * usage, timings, x_agents).
 */
import type { JsonObject } from './types.js';

/** Fields every chunk of a stream repeats. */
const HEAD_FIELDS = ['id', 'created', 'model', 'system_fingerprint'] as const;

interface ChoiceAcc {
  index: number;
  role?: string;
  content?: string;
  reasoning?: string;
  text?: string;
  toolCalls: JsonObject[];
  finishReason: unknown;
  logprobs: unknown[];
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function mergeToolCall(calls: JsonObject[], delta: JsonObject): void {
  const index = typeof delta.index === 'number' ? delta.index : calls.length;
  const existing = calls[index];
  const fn = isObject(delta.function) ? delta.function : undefined;
  if (!existing) {
    const { index: _ignored, ...rest } = delta;
    calls[index] = { ...rest, ...(fn ? { function: { ...fn } } : {}) };
    return;
  }
  if (typeof delta.id === 'string') existing.id = delta.id;
  if (typeof delta.type === 'string') existing.type = delta.type;
  if (fn) {
    const target = (isObject(existing.function) ? existing.function : (existing.function = {})) as JsonObject;
    if (typeof fn.name === 'string') target.name = `${typeof target.name === 'string' ? target.name : ''}${fn.name}`;
    if (typeof fn.arguments === 'string') target.arguments = `${typeof target.arguments === 'string' ? target.arguments : ''}${fn.arguments}`;
  }
}

/** Whether the chunks are a chat stream (`chat.completion.chunk`, choices with `delta`). */
function isChatStream(chunks: readonly JsonObject[]): boolean {
  return chunks.some((c) => c.object === 'chat.completion.chunk' || (Array.isArray(c.choices) && c.choices.some((ch) => isObject(ch) && isObject(ch.delta))));
}

export function assembleCompletion(chunks: readonly JsonObject[]): JsonObject {
  const chat = isChatStream(chunks);
  const top: JsonObject = {};
  const choices = new Map<number, ChoiceAcc>();
  for (const chunk of chunks) {
    for (const [key, value] of Object.entries(chunk)) {
      if (key === 'choices' || key === 'object') continue;
      // Later chunks win, but a null (e.g. usage: null before the last chunk) does not erase a value.
      if (value !== null || !(key in top)) top[key] = value;
    }
    if (!Array.isArray(chunk.choices)) continue;
    for (const raw of chunk.choices) {
      if (!isObject(raw)) continue;
      const index = typeof raw.index === 'number' ? raw.index : 0;
      let acc = choices.get(index);
      if (!acc) choices.set(index, (acc = { index, toolCalls: [], finishReason: null, logprobs: [] }));
      const delta = isObject(raw.delta) ? raw.delta : undefined;
      if (delta) {
        if (typeof delta.role === 'string') acc.role = delta.role;
        if (typeof delta.content === 'string') acc.content = (acc.content ?? '') + delta.content;
        if (typeof delta.reasoning_content === 'string') acc.reasoning = (acc.reasoning ?? '') + delta.reasoning_content;
        if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls) if (isObject(call)) mergeToolCall(acc.toolCalls, call);
      }
      if (typeof raw.text === 'string') acc.text = (acc.text ?? '') + raw.text;
      if (raw.finish_reason !== undefined && raw.finish_reason !== null) acc.finishReason = raw.finish_reason;
      const lp = isObject(raw.logprobs) ? raw.logprobs.content : undefined;
      if (Array.isArray(lp)) acc.logprobs.push(...lp);
    }
  }
  const ordered = [...choices.values()].sort((a, b) => a.index - b.index);
  const outChoices = ordered.map((acc) => {
    const logprobs = acc.logprobs.length ? { content: acc.logprobs } : null;
    if (!chat) return { index: acc.index, text: acc.text ?? '', logprobs, finish_reason: acc.finishReason };
    const toolCalls = acc.toolCalls.filter(Boolean);
    const message: JsonObject = { role: acc.role ?? 'assistant', content: acc.content ?? (toolCalls.length ? null : '') };
    if (acc.reasoning !== undefined) message.reasoning_content = acc.reasoning;
    if (toolCalls.length) message.tool_calls = toolCalls;
    return { index: acc.index, message, logprobs, finish_reason: acc.finishReason };
  });
  const head: JsonObject = {};
  for (const key of HEAD_FIELDS) if (key in top) head[key] = top[key];
  const rest: JsonObject = {};
  for (const [key, value] of Object.entries(top)) if (!(key in head)) rest[key] = value;
  return { ...head, object: chat ? 'chat.completion' : 'text_completion', choices: outChoices, ...rest };
}

export function completionToChunks(completion: JsonObject): JsonObject[] {
  const chat = completion.object !== 'text_completion' && !(Array.isArray(completion.choices) && completion.choices.some((c) => isObject(c) && typeof c.text === 'string'));
  const head: JsonObject = {};
  const extra: JsonObject = {};
  for (const [key, value] of Object.entries(completion)) {
    if (key === 'choices' || key === 'object') continue;
    if ((HEAD_FIELDS as readonly string[]).includes(key)) head[key] = value;
    else extra[key] = value;
  }
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const choices = (Array.isArray(completion.choices) ? completion.choices : []).filter(isObject);
  const chunks: JsonObject[] = [];
  for (const [i, choice] of choices.entries()) {
    const index = typeof choice.index === 'number' ? choice.index : i;
    if (chat) {
      const message = isObject(choice.message) ? choice.message : {};
      const delta: JsonObject = { role: typeof message.role === 'string' ? message.role : 'assistant' };
      if (typeof message.content === 'string') delta.content = message.content;
      if (typeof message.reasoning_content === 'string') delta.reasoning_content = message.reasoning_content;
      if (Array.isArray(message.tool_calls)) delta.tool_calls = message.tool_calls.map((call, n) => (isObject(call) ? { index: n, ...call } : call));
      chunks.push({ ...head, object, choices: [{ index, delta, finish_reason: null }] });
    } else {
      chunks.push({ ...head, object, choices: [{ index, text: typeof choice.text === 'string' ? choice.text : '', logprobs: null, finish_reason: null }] });
    }
  }
  const finals = choices.map((choice, i) => {
    const index = typeof choice.index === 'number' ? choice.index : i;
    const finish = choice.finish_reason ?? 'stop';
    return chat ? { index, delta: {}, finish_reason: finish } : { index, text: '', logprobs: null, finish_reason: finish };
  });
  chunks.push({ ...head, object, choices: finals, ...extra });
  return chunks;
}
