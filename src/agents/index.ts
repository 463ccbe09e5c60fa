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
} from './types.js';
export { AGENT_ENDPOINTS, HOOK_NAMES } from './types.js';
export { parseSlashCommands, promptSlot, startsWithSlash, type ArgSpec, type Command, type ParsedCommands, type PromptSlot } from './slash.js';
export { loadAgents, BUNDLED_AGENTS_DIR, type LoadedAgent, type AgentStatus, type AgentState, type LoadOptions as AgentLoadOptions } from './loader.js';
export { AgentRegistry, loadAgentRegistry, agentDirs, type AgentPlan, type AgentHealth } from './registry.js';
export { AgentSession, completionEvents, isAgentReply, type ChainLink, type SessionOptions, type RequestOutcome } from './session.js';
export { SseParser, parseSseStream, serializeEvent, serializeSseStream, type SseEvent } from './sse.js';
export { assembleCompletion, completionToChunks } from './completion-stream.js';
export { ManifestSchema, type Manifest } from './manifest.js';
export { toJsonSafe } from './json-safe.js';
