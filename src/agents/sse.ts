/**
 * Server-Sent Events as llama-server writes them (`data: {json}\n\n`, then `data: [DONE]\n\n`), parsed one
 * event at a time so that a chunk-level agent does not delay the stream. Events agents do not touch keep their
 * exact original text.
 */
import { StringDecoder } from 'node:string_decoder';
import type { JsonObject } from './types.js';

export interface SseEvent {
  /** The event exactly as received, blank line included; absent once an agent changed it. */
  raw?: string;
  /** The parsed `data:` payload when it is a JSON object (what chunk hooks see). */
  data?: JsonObject;
  /** `data: [DONE]`. */
  done?: boolean;
}

const BOUNDARY = /\r?\n\r?\n/g;

function dataOf(block: string): string | undefined {
  let data: string | undefined;
  for (const line of block.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data;
}

/** One event from its text (without the trailing blank line) and its raw form. */
export function parseEvent(block: string, raw: string): SseEvent {
  const data = dataOf(block);
  if (data === undefined) return { raw };
  if (data === '[DONE]') return { raw, done: true };
  try {
    const json: unknown = JSON.parse(data);
    if (typeof json === 'object' && json !== null && !Array.isArray(json)) return { raw, data: json as JsonObject };
  } catch {
    // not JSON: passed through untouched
  }
  return { raw };
}

/** Incremental parser: push decoded text, get the events completed by it. */
export class SseParser {
  private buffer = '';

  push(text: string): SseEvent[] {
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    BOUNDARY.lastIndex = 0;
    for (let m = BOUNDARY.exec(this.buffer); m; m = BOUNDARY.exec(this.buffer)) {
      const end = m.index + m[0].length;
      events.push(parseEvent(this.buffer.slice(start, m.index), this.buffer.slice(start, end)));
      start = end;
    }
    if (start > 0) this.buffer = this.buffer.slice(start);
    return events;
  }

  /** Whatever is left when the stream ends (an event without its blank line). */
  end(): SseEvent[] {
    const rest = this.buffer;
    this.buffer = '';
    return rest.trim() === '' ? (rest ? [{ raw: rest }] : []) : [parseEvent(rest, rest)];
  }
}

/**
 * The events of a byte stream, in batches: the events completed by one network chunk come together (so that
 * they can be written in one piece, as a pass-through would have written that chunk).
 */
export async function* parseSseStream(body: AsyncIterable<Buffer | string>): AsyncGenerator<SseEvent[]> {
  const decoder = new StringDecoder('utf8');
  const parser = new SseParser();
  for await (const chunk of body) {
    const events = parser.push(typeof chunk === 'string' ? chunk : decoder.write(chunk));
    if (events.length) yield events;
  }
  const tail = [...parser.push(decoder.end()), ...parser.end()];
  if (tail.length) yield tail;
}

export function serializeEvent(event: SseEvent): string {
  if (event.raw !== undefined) return event.raw;
  if (event.done) return 'data: [DONE]\n\n';
  return `data: ${JSON.stringify(event.data ?? {})}\n\n`;
}

/** One string per batch. Events an agent changed are serialized here (stages make sure they can be). */
export async function* serializeSseStream(batches: AsyncIterable<SseEvent[]>): AsyncGenerator<string> {
  for await (const batch of batches) {
    let text = '';
    for (const event of batch) text += serializeEvent(event);
    if (text) yield text;
  }
}
