/**
 * The HTTP half of the pipeline, shared by every API family that llama-server speaks itself (OpenAI chat and
 * completions, OpenAI Responses, Anthropic Messages): resolve the model, plan agents, take the upstream, forward
 * the raw bytes (or the agents' body), stream the answer back, write errors in the family's shape. An adapter
 * (openai.ts, responses.ts, anthropic.ts) only says which path and error shape it has and, for agents, how its
 * body maps to the OpenAI chat request agents see (a ChatBridge). See README.md in this folder.
 */
import { once } from 'node:events';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { completionEvents, parseSseStream, promptSlot, type AgentEndpoint, type AgentPlan, type AgentReply, type AgentSession, type JsonObject, type SseEvent } from '../agents/index.js';
import { forwardedFrom, forwardedKeepAlive } from '../cluster/forwarded.js';
import { ClientError } from '../models/index.js';
import { agentResponseTransform, whenDone, writeAgentReply } from './agent-exchange.js';
import { bodyObject, clientGone, planningBody } from './body.js';
import { requestKey } from './request-key.js';
import { describeError } from './errors.js';
import { countTokens, modelRefusal } from './policy-hook.js';
import { AnswerTail } from '../requests/index.js';
import { noteAgents, noteAnswer, noteError } from './request-records.js';
import { progressStarted } from './model-resolution.js';
import { ReasoningProgress, watchLoad } from './loading-progress.js';
import { applyRequestRules } from './request-rules.js';
import { keepModelAndStream, routeId, routeRules, type ModelRoute, type PromptPipeline, type Upstream } from './prompt-pipeline.js';
import { errorMessageOf, forward, OPENAI_ERRORS, writeRawError, type BodyTransform, type ErrorFormat } from './upstream.js';

/** Where a request goes on its instance. */
export interface Target {
  method: 'GET' | 'POST';
  /** Path (and query) upstream. */
  path: string;
}

/** How proxyTo may differ from a plain pass-through. */
export interface ProxyOptions {
  /** The body to send instead of the raw bytes received (made for the upstream that serves the request). */
  body?: (upstream: Upstream) => string;
  /** Already listening for the client going away. */
  signal?: AbortSignal;
  /** Told which upstream serves the request. */
  onUpstream?: (upstream: Upstream) => void;
  /** Response rewriting; `upstreamDone` releases the instance early. */
  transform?: (upstreamDone: () => void) => (status: number, contentType: string | undefined) => BodyTransform | undefined;
  /** Extra fields for the request's log line. */
  logFields?: () => Record<string, unknown>;
  /** The body's content type upstream (default application/json): a multipart form keeps its own. */
  contentType?: string;
  /** The family's error shape for errors written after the reply was taken over (default OpenAI's). */
  errors?: ErrorFormat;
  /** False for a request that generates nothing: it never waits for a free slot (pool.fairness). */
  takesSlot?: boolean;
}

/**
 * Where a family's prompt is, for deciding whether agents may run before anything is translated or parsed whole:
 * the array `field` and which of its items can hold the prompt (the last such item is the only one parsed, see
 * body.ts planningBody), and the prompt's text in that body: what planning reads (promptSlot) in its chat form.
 */
export interface PromptLocator {
  field: string;
  wanted(item: unknown): boolean;
  text(body: JsonObject): string | undefined;
}

/** A JSON object (not an array, not null). */
export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A chat's last user message: OpenAI's own shape, and Anthropic's (its bridge keeps roles and text blocks in order). */
export const CHAT_PROMPT: PromptLocator = { field: 'messages', wanted: (m) => isObject(m) && m.role === 'user', text: (body) => promptSlot('chat/completions', body)?.text };

/** OpenAI's own shapes: a chat's last user message, a completion's prompt. */
const OPENAI_PROMPTS: Record<AgentEndpoint, PromptLocator> = {
  'chat/completions': CHAT_PROMPT,
  completions: { field: 'prompt', wanted: () => false, text: (body) => promptSlot('completions', body)?.text },
};

/**
 * A family whose body is not OpenAI chat: how agents see it (toChat: the OpenAI chat request; `unsupported` names
 * content the translation cannot carry, refused only when agents run), where its prompt is without translating,
 * and how their chat answers go back to it.
 */
export interface ChatBridge {
  toChat(body: JsonObject): { chat: JsonObject; unsupported?: string };
  /** Its prompt: `text` is what promptSlot finds in toChat's translation. */
  prompt: PromptLocator;
  /** A whole chat.completion as the family's answer to `body`. */
  fromCompletion(completion: JsonObject, body: JsonObject): JsonObject;
  /** A chat.completion.chunk stream as the family's SSE text. */
  fromChunks(batches: AsyncIterable<SseEvent[]>, body: JsonObject): AsyncIterable<string>;
}

/** A prompt-carrying route of one family. */
export interface PromptFamily {
  /** The agent endpoint its prompts are planned on. */
  endpoint: AgentEndpoint;
  /** llama-server's path for the request as the client sent it. */
  path: string;
  errors: ErrorFormat;
  /** Absent: the family is OpenAI's own chat/completions (agents see its body as it is). */
  bridge?: ChatBridge;
}

/** The body's "model" (400 naming it when absent). */
export function modelOf(body: JsonObject): unknown {
  if (body.model === undefined) throw new ClientError(400, 'model_required', 'request body needs a "model" field');
  return body.model;
}

/** The client's body asks for a streamed answer (a bridge's translated body keeps the flag). */
function asksStream(request: FastifyRequest): boolean {
  const json = request.parsedBody?.json;
  return isObject(json) && json.stream === true;
}

/** Takes the model's upstream (loading its instance if needed) and forwards the request to it. */
export async function proxyTo(pipeline: PromptPipeline, request: FastifyRequest, reply: FastifyReply, route: ModelRoute, target: Target, options: ProxyOptions = {}): Promise<void> {
  const signal = options.signal ?? clientGone(reply);
  const errors = options.errors ?? OPENAI_ERRORS;
  const started = Date.now();
  let hijacked = false;
  try {
    await pipeline.exchange(
      route,
      signal,
      async (upstream, retryable) => {
        options.onUpstream?.(upstream);
        // An Ollama request translated by the entry node: its keep_alive, for this node's instance.
        const keepAlive = forwardedKeepAlive(request);
        if (keepAlive) upstream.lease?.keepAlive(keepAlive);
        reply.hijack();
        hijacked = true;
        let body: string | Buffer | undefined;
        if (target.method === 'POST') {
          // The backend knows the model by its own name, or the model has request rules: the only cases where a plain
          // request is re-serialized (no rules and no rename: the raw bytes, untouched).
          const rules = routeRules(route);
          if (options.body) body = rules ? JSON.stringify(applyRequestRules(JSON.parse(options.body(upstream)) as JsonObject, rules)) : options.body(upstream);
          else if (rules || upstream.upstreamModel !== undefined) {
            const sent = upstream.upstreamModel !== undefined ? { ...bodyObject(request), model: upstream.upstreamModel } : bodyObject(request);
            body = JSON.stringify(applyRequestRules(sent, rules));
          } else body = request.parsedBody?.raw;
        }
        const tail = new AnswerTail();
        const result = await forward(
          upstream.target,
          {
            method: target.method,
            // Another node's proxy needs the model named: a GET names it in its query (?model=).
            path: upstream.node !== undefined && target.method === 'GET' ? request.url : target.path,
            ...(body ? { body, contentType: options.contentType ?? 'application/json' } : {}),
            headers: request.headers,
            stream: asksStream(request),
            retryable,
            errors,
            tap: (chunk) => tail.push(chunk),
            ...(body === request.parsedBody?.raw && request.parsedBody?.partial ? { rewriteError: (status: number, text: string) => unparsedBodyError(status, text, errors) } : {}),
            ...(options.transform ? { transform: options.transform(() => upstream.release()) } : {}),
          },
          reply.raw,
        );
        const facts = tail.read();
        countTokens(request, facts.promptTokens ?? 0, facts.completionTokens ?? 0);
        noteAnswer(reply.raw, facts, tail.firstAt);
        request.log.info(
          { model: routeId(route), ...upstream.logFields(), path: target.path, status: result.status, outcome: result.outcome, waitedMs: upstream.waitedMs, ms: Date.now() - started, ...options.logFields?.() },
          'proxied',
        );
      },
      request.log as Logger,
      { stay: forwardedFrom(request) !== undefined, res: reply.raw, key: requestKey(request), ...(options.takesSlot === false ? { takesSlot: false } : {}) },
    );
  } catch (err) {
    // Before the reply was taken over (the first acquire): fastify's error handler answers.
    if (!hijacked) throw err;
    // A retry's acquire failed after the reply was taken over: answer here, in this family's shape.
    noteError(reply.raw, (err as Error).message);
    writeRawError(reply.raw, errors, err);
    request.log.info({ url: request.url, reason: (err as Error).message }, 'request failed on its second try');
  }
}

/**
 * llama-server's answer to a body that is not valid JSON (a 500 naming nlohmann's parse error) as the 400 the proxy
 * gives such a body itself, in the family's shape: for a large body sent on before all of it was parsed (body.ts).
 */
function unparsedBodyError(status: number, text: string, errors: ErrorFormat): { status: number; body: string } | undefined {
  if (status !== 500 || !text.includes('json.exception.parse_error')) return undefined;
  return { status: 400, body: errors.body(400, `request body is not valid JSON: ${errorMessageOf(text)}`, 'invalid_json') };
}

/** A prompt: straight through when it names no agent, else through its agent chain. */
export async function servePrompt(pipeline: PromptPipeline, request: FastifyRequest, reply: FastifyReply, family: PromptFamily): Promise<void> {
  const body = bodyObject(request);
  const signal = clientGone(reply);
  // server.loadingProgress: reasoning: a streamed chat that waits for a download or a load is told as it goes.
  const progress = pipeline.loadingProgress === 'reasoning' && family.endpoint === 'chat/completions' && body.stream === true && !forwardedFrom(request) ? new ReasoningProgress(reply.raw, String(body.model)) : undefined;
  let stopWatching = () => {};
  try {
    // The model is resolved before any agent runs: agents never decide which model serves the request. A model
    // being downloaded shows its progress to a streamed request as SSE comments (or reasoning lines).
    const line = progress ? (text: string) => {
      if (!reply.sent) reply.hijack();
      progress.line(text);
    } : undefined;
    const route = await pipeline.route(modelOf(body), { signal, ...(body.stream === true ? { progressTo: reply.raw, ...(line ? { progressLine: line } : {}) } : {}) });
    if (progressStarted(reply.raw) && !reply.sent) reply.hijack();
    // Just before the upstream is taken (after agents' request hooks, which may answer by themselves).
    const watch = () => {
      if (!progress || route.kind !== 'local' || pipeline.modelReady(route.model.id)) return;
      if (!reply.sent) reply.hijack();
      stopWatching = watchLoad(pipeline.pool, route.model.id, progress);
    };
    // Planned only when an agent may run (the model has agents of its own, or its prompt starts with "/"), found
    // on the last user message alone: otherwise a coding agent's turn is neither translated nor parsed whole (with
    // the bundled agents loaded, 0.8 ms for a 200 KB Anthropic body). A request another node forwarded had its
    // agents run there.
    const forwarded = forwardedFrom(request) !== undefined;
    const locator = family.bridge?.prompt ?? OPENAI_PROMPTS[family.endpoint];
    const mayPlan = !forwarded && pipeline.agents.mayPlan(routeId(route), () => locator.text(planningBody(request, locator.field, (item) => locator.wanted(item))));
    const view = mayPlan && family.bridge ? family.bridge.toChat(body) : undefined;
    const plan = mayPlan ? pipeline.agents.plan(family.endpoint, view?.chat ?? body, routeId(route)) : undefined;
    // No agent: the raw bytes go out exactly as received.
    if (!plan) {
      watch();
      return await proxyTo(pipeline, request, reply, route, { method: 'POST', path: family.path }, { signal, errors: family.errors, onUpstream: () => stopWatching() });
    }
    if (view?.unsupported) throw new ClientError(400, 'unsupported', `agents run on text and images; this request has ${view.unsupported}`);
    return await serveWithAgents(pipeline, request, reply, route, family, body, plan, signal, { watch, acquired: () => stopWatching() });
  } catch (err) {
    if (!progressStarted(reply.raw)) throw err;
    if (!reply.sent) reply.hijack();
    const { status, message, code } = describeError(err);
    noteError(reply.raw, message);
    if (!reply.raw.writableEnded) reply.raw.end(family.errors.streamEvent(status, message, code));
    request.log.info({ url: request.url, reason: (err as Error).message }, 'request failed after download progress');
  } finally {
    stopWatching();
  }
}

async function serveWithAgents(pipeline: PromptPipeline, request: FastifyRequest, reply: FastifyReply, route: ModelRoute, family: PromptFamily, body: JsonObject, plan: AgentPlan, signal: AbortSignal, progress: { watch: () => void; acquired: () => void }): Promise<void> {
  const stream = body.stream === true;
  const bridge = family.bridge;
  // The app's logger is pino (loggerInstance), so the request's child is one too.
  const log = request.log as Logger;
  const refusal = modelRefusal(request);
  const caller = { key: requestKey(request), ...(refusal ? { refusal } : {}) };
  const { session, served } = pipeline.session({ requestId: String(request.id), route, modelField: body.model, endpoint: family.endpoint, plan, stream, log, signal, caller });
  noteAgents(reply.raw, session.names);
  // What agents started from (for a bridged family: its chat translation), to restore model and stream against.
  const original = bridge ? bridge.toChat(body).chat : body;
  try {
    const outcome = await session.runRequest(plan.body);
    if (outcome.reply) {
      reply.hijack();
      const write = bridge ? writeBridgedReply(reply, session, outcome.reply, bridge, body, signal) : writeAgentReply(reply.raw, session, outcome.reply, stream, signal);
      const status = await write.catch((err: Error) => {
        log.error({ err, agents: session.names }, 'writing an agent reply failed');
        if (!reply.raw.headersSent) {
          const text = family.errors.body(500, `agent reply failed: ${err.message}`);
          reply.raw.writeHead(500, { 'content-type': 'application/json' }).end(text);
        } else reply.raw.destroy();
        return 500;
      });
      log.info({ model: routeId(route), path: family.path, agents: session.names, answeredBy: outcome.reply.agent, status, agentsFailed: session.failed }, 'answered by agent');
      return;
    }
    const sent = keepModelAndStream(outcome.body, original, log);
    progress.watch();
    // A bridged family's agents worked on a chat request: it goes to chat/completions, its answer comes back translated.
    await proxyTo(pipeline, request, reply, route, { method: 'POST', path: bridge ? '/v1/chat/completions' : family.path }, {
      signal,
      errors: family.errors,
      body: (upstream) => JSON.stringify(upstream.upstreamModel === undefined ? sent : { ...sent, model: upstream.upstreamModel }),
      onUpstream: (upstream) => {
        progress.acquired();
        served(upstream);
      },
      transform: (upstreamDone) => (bridge ? bridgedTransform(session, bridge, body, upstreamDone) : agentResponseTransform(session, upstreamDone)),
      logFields: () => ({ agents: session.names, agentsFailed: session.failed }),
    });
  } finally {
    session.finish();
  }
}

async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** The model's chat answer through the response hooks and into the family's shape (errors pass as they are). */
function bridgedTransform(session: AgentSession, bridge: ChatBridge, body: JsonObject, upstreamDone: () => void) {
  return (status: number, contentType: string | undefined): BodyTransform | undefined => {
    if (status < 200 || status >= 300 || !contentType) return undefined;
    if (contentType.includes('text/event-stream')) return (chunks) => bridge.fromChunks(session.streamStages(parseSseStream(whenDone(chunks, upstreamDone))), body);
    return async function* (chunks) {
      const parts: Buffer[] = [];
      for await (const chunk of chunks) parts.push(chunk);
      // The instance is free before the hooks run: a hook calling another model must not wait on this lease.
      upstreamDone();
      const completion = JSON.parse(Buffer.concat(parts).toString('utf8')) as JsonObject;
      yield JSON.stringify(bridge.fromCompletion(await session.runResponse(completion), body));
    };
  };
}

/** An agent's own answer (a chat.completion) in the family's shape, streamed when the client asked. */
async function writeBridgedReply(reply: FastifyReply, session: AgentSession, answer: AgentReply, bridge: ChatBridge, body: JsonObject, signal: AbortSignal): Promise<number> {
  const res = reply.raw;
  if (answer.status !== 200) {
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    return answer.status;
  }
  if (body.stream !== true) {
    const text = JSON.stringify(bridge.fromCompletion(await session.runResponse(answer.body), body));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    return 200;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  for await (const text of bridge.fromChunks(session.streamStages(fromArray([completionEvents(answer.body)])), body)) {
    if (res.destroyed) break;
    if (!res.write(text)) await once(res, 'drain', { signal });
  }
  res.end();
  return 200;
}

/** The OpenAI chat.completion.chunk data of a stream, in order (non-JSON events and [DONE] skipped). */
export async function* chunkData(batches: AsyncIterable<SseEvent[]>): AsyncGenerator<JsonObject> {
  for await (const batch of batches) for (const event of batch) if (event.data) yield event.data;
}

/** One SSE event with a name (Anthropic's and the Responses API's framing). */
export function namedEvent(name: string, data: JsonObject): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}
