/**
 * The agent API: what a plugin module exports and what its hooks receive. These types are exported from the
 * package entry (`import type { Agent } from 'llama-smart-proxy'`) so plugin authors get them.
 */
import type { Logger } from 'pino';

/** The endpoints that carry a prompt; only these ever run agents. */
export type AgentEndpoint = 'chat/completions' | 'completions';
export const AGENT_ENDPOINTS: readonly AgentEndpoint[] = ['chat/completions', 'completions'];

/** A JSON object as it travels (an OpenAI request or response body); agents may read and change any field. */
export type JsonObject = Record<string, unknown>;

/** An OpenAI chat or completions request body, as the client sent it (minus the slash commands). */
export type AgentRequest = JsonObject;

/** A whole (non-streamed) OpenAI response: `chat.completion` or `text_completion`. */
export type AgentResponse = JsonObject;

/** One parsed SSE event of a streamed response (`chat.completion.chunk` or a streamed `text_completion`). */
export type StreamChunk = JsonObject;

/** What the serving instance looks like: the pool's InstanceInfo entry, whatever fields it has. */
export interface ServingInstance {
  id: string;
  [field: string]: unknown;
}

/** Returned by `context.reply(...)`: the request is answered by the agent, no model is called. */
export interface AgentReply {
  readonly kind: 'agent-reply';
  /** The agent that answered. */
  readonly agent: string;
  /** HTTP status; anything but 200 is sent as is (no response hooks, not streamed). */
  readonly status: number;
  /** A `chat.completion` / `text_completion` object (status 200), or an error body. */
  readonly body: AgentResponse;
}

export interface CompleteOptions {
  /** Which endpoint to call; default: `chat/completions` when the body has `messages`, else `completions`. */
  endpoint?: AgentEndpoint;
}

/**
 * Per request, per agent. Nothing in it is shared with another request. `state` survives from onRequest to
 * onResponse / onStreamChunk of the same request.
 */
export interface AgentContext {
  /** The proxy's id for this request (the one in its log lines). */
  readonly requestId: string;
  /** This agent's name (its folder name, i.e. its slash command). */
  readonly agent: string;
  /** Arguments written after the command (`/parallel 5` -> ["5"]), as the manifest's `args` allows. */
  readonly args: readonly string[];
  /** The model the client asked for, as resolved (its alias or canonical id). Agents cannot change it. */
  readonly model: string;
  readonly endpoint: AgentEndpoint;
  /** Whether the client asked for a streamed response. */
  readonly stream: boolean;
  /** The manifest's `settings`, with `agents.settings.<name>` from the proxy config merged over them. */
  readonly settings: Readonly<JsonObject>;
  /** A pino child logger carrying the request id and the agent name. */
  readonly log: Logger;
  /** Aborts when the client goes away or when this agent's hook ran past `agents.timeout`. */
  readonly signal: AbortSignal;
  /** Scratch space for this agent in this request only. */
  readonly state: JsonObject;
  /**
   * Calls a model through the proxy (same pool, same instances; no agents run on it; never streamed) and
   * returns its JSON answer. `body.model` defaults to this request's model. Throws on a non-2xx answer.
   * Do not call it from onStreamChunk for another model when the pool has one slot: the streaming request holds
   * its instance until the stream ends.
   */
  complete(body: JsonObject, options?: CompleteOptions): Promise<AgentResponse>;
  /** Answers the request from onRequest without calling the model: `return ctx.reply(completion)`. */
  reply(body: AgentResponse, status?: number): AgentReply;
  /** The instance that served the model call (fresh from the pool), or undefined before the call / when none. */
  instance(): ServingInstance | undefined;
}

type MaybePromise<T> = T | Promise<T>;

/**
 * A plugin module's export: `export default { onRequest, onResponse, onStreamChunk }` (or the same names as named
 * exports). Every hook is optional and may be sync or async. Returning nothing (undefined) keeps the input as it
 * is now (changes made to it in place included). Which hooks run when is described in src/agents/README.md.
 */
export interface Agent {
  /** Before the model call, in chain order; returns the (possibly changed) request, or `ctx.reply(...)`. */
  onRequest?(request: AgentRequest, context: AgentContext): MaybePromise<AgentRequest | AgentReply | void>;
  /** On the whole response, in chain order (also for streamed requests when the agent has no onStreamChunk). */
  onResponse?(response: AgentResponse, context: AgentContext): MaybePromise<AgentResponse | void>;
  /** On each SSE event of a streamed response; return the chunk, a list of chunks to emit instead, or null to drop it. */
  onStreamChunk?(chunk: StreamChunk, context: AgentContext): MaybePromise<StreamChunk | StreamChunk[] | null | void>;
}

export const HOOK_NAMES = ['onRequest', 'onResponse', 'onStreamChunk'] as const;
export type HookName = (typeof HOOK_NAMES)[number];
