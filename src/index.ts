/**
 * The package entry for code that builds on the proxy. Today: the types a plugin author needs to write an agent
 * (`plugins/<name>/config.json` + `index.mjs`, see src/agents/README.md). In a plain .mjs plugin, annotate the
 * default export with the JSDoc tag `@type {import('llama-smart-proxy').Agent}` to get them in an editor.
 */
export type {
  Agent,
  AgentContext,
  AgentEndpoint,
  AgentReply,
  AgentRequest,
  AgentResponse,
  CompleteOptions,
  HookName,
  JsonObject,
  ServingInstance,
  StreamChunk,
} from './agents/index.js';
export type { Manifest as AgentManifest } from './agents/index.js';
