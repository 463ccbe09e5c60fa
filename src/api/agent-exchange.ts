/**
 * The HTTP side of agents: turning a request's AgentSession into a body transform for `forward()` (response
 * hooks on the way back) and writing an agent's own answer (short-circuit) in the format the client asked for.
 * Kept apart from app.ts so that other front ends (the Ollama API) can reuse it.
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { completionEvents, parseSseStream, serializeSseStream, type AgentReply, type AgentSession, type JsonObject } from '../agents/index.js';
import type { BodyTransform } from './upstream.js';

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Yields the body and calls `done` once it is over (read to its end, failed or abandoned). */
export async function* whenDone<T>(body: AsyncIterable<T>, done: () => void): AsyncGenerator<T> {
  try {
    yield* body;
  } finally {
    done();
  }
}

async function* jsonThroughHooks(body: AsyncIterable<Buffer>, session: AgentSession, upstreamDone: () => void): AsyncGenerator<Buffer | string> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(chunk);
  // The instance is free before the hooks run: a hook calling another model must not wait on this lease.
  upstreamDone();
  const raw = Buffer.concat(parts);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    yield raw;
    return;
  }
  if (!isObject(json)) {
    yield raw;
    return;
  }
  const out = await session.runResponse(json);
  let text: string;
  try {
    text = JSON.stringify(out);
  } catch (err) {
    // A hook returned something JSON cannot hold (a cycle, a BigInt): the model's own answer goes out.
    session.log.warn({ agents: session.names, reason: (err as Error).message }, 'response changed by agents cannot be serialized; sending the model\'s own answer');
    text = raw.toString('utf8');
  }
  yield text;
}

/**
 * The transform `forward()` applies to the model's answer: none for errors (non-2xx) or when no response hook
 * will run; SSE through the session's stream stages; a JSON body through the response hooks. `upstreamDone` is
 * called as soon as the model's answer has been read (to release the instance early).
 */
export function agentResponseTransform(session: AgentSession, upstreamDone: () => void) {
  return (status: number, contentType: string | undefined): BodyTransform | undefined => {
    if (status < 200 || status >= 300 || !contentType) return undefined;
    if (contentType.includes('text/event-stream')) {
      if (!session.hasResponseHooks(true)) return undefined;
      return (body) => serializeSseStream(session.streamStages(parseSseStream(whenDone(body, upstreamDone))));
    }
    if (contentType.includes('application/json') && session.hasResponseHooks(false)) {
      return (body) => jsonThroughHooks(body, session, upstreamDone);
    }
    return undefined;
  };
}

async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/**
 * Writes an agent's answer: status other than 200 as is; otherwise through the response hooks, as JSON or (for
 * a streaming client) as an SSE stream in the model's format, ending with `data: [DONE]`.
 */
export async function writeAgentReply(res: ServerResponse, session: AgentSession, reply: AgentReply, stream: boolean, signal: AbortSignal): Promise<number> {
  if (reply.status !== 200) {
    const text = JSON.stringify(reply.body);
    res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    return reply.status;
  }
  if (!stream) {
    const out = await session.runResponse(reply.body);
    let text: string;
    try {
      text = JSON.stringify(out);
    } catch {
      text = JSON.stringify(reply.body);
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    return 200;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  for await (const text of serializeSseStream(session.streamStages(fromArray([completionEvents(reply.body)])))) {
    if (res.destroyed) break;
    if (!res.write(text)) await once(res, 'drain', { signal });
  }
  res.end();
  return 200;
}
