/**
 * The loaded agents and the per-request decision "which agents run, on which body" (`plan`). Built once at
 * start; the only thing it changes afterwards is the failure counters shown in /health.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { BUNDLED_AGENTS_DIR, loadAgents, type AgentStatus, type LoadedAgent, type LoadResult } from './loader.js';
import type { ChainLink } from './session.js';
import { parseSlashCommands, promptSlot, startsWithSlash, type ArgSpec, type Command } from './slash.js';
import { AGENT_ENDPOINTS, type AgentEndpoint, type HookName, type JsonObject } from './types.js';

export interface AgentPlan {
  /** The agents to run, in order: the model's configured agents, then the slash commands. */
  chain: ChainLink[];
  /** The request with the slash commands removed from its prompt. */
  body: JsonObject;
}

/** One agent as /health shows it. */
export interface AgentHealth {
  name: string;
  state: AgentStatus['state'];
  description: string | null;
  dir: string;
  hooks: HookName[];
  endpoints: readonly AgentEndpoint[];
  reason: string | null;
  /** Hook calls that threw, timed out or returned a wrong value since start. */
  failures: number;
  last_failure: { hook: HookName; reason: string; at: string } | null;
}

export class AgentRegistry {
  private readonly byName = new Map<string, LoadedAgent>();
  private readonly known = new Map<AgentEndpoint, Map<string, ArgSpec | undefined>>();
  private readonly modelChains = new Map<string, Command[]>();
  private readonly failures = new Map<string, { count: number; last: AgentHealth['last_failure'] }>();

  constructor(
    private readonly result: LoadResult,
    modelAgents: Readonly<Record<string, readonly string[] | undefined>> = {},
    log?: Logger,
  ) {
    for (const agent of result.loaded) this.byName.set(agent.name, agent);
    for (const endpoint of AGENT_ENDPOINTS) {
      this.known.set(endpoint, new Map(result.loaded.filter((a) => a.endpoints.includes(endpoint)).map((a) => [a.name, a.args])));
    }
    const all = new Map(result.loaded.map((a) => [a.name, a.args]));
    for (const [model, entries] of Object.entries(modelAgents)) {
      const commands: Command[] = [];
      for (const entry of entries ?? []) {
        // Same syntax as in a prompt, without the slash: "parallel 3".
        const parsed = parseSlashCommands(`/${entry.trim()}`, all);
        if (parsed.commands.length !== 1 || parsed.rest !== '') {
          log?.warn({ model, agent: entry }, 'models.<alias>.agents names an agent that is not loaded (or bad arguments); ignored');
          continue;
        }
        if (!commands.some((c) => c.name === parsed.commands[0]!.name)) commands.push(parsed.commands[0]!);
      }
      if (commands.length) this.modelChains.set(model, commands);
    }
  }

  static empty(): AgentRegistry {
    return new AgentRegistry({ loaded: [], statuses: [] });
  }

  /** Number of loaded (enabled) agents. */
  get size(): number {
    return this.byName.size;
  }

  get(name: string): LoadedAgent | undefined {
    return this.byName.get(name);
  }

  /**
   * Whether `plan` can return a chain for a request to `modelId` whose prompt text is `prompt()` (read only when it
   * matters; undefined: the request has none): false when no agent is loaded, the model has no agents of its own
   * and the prompt does not start with "/". Lets a caller skip translating or parsing a body that runs no agent.
   */
  mayPlan(modelId: string, prompt: () => string | undefined): boolean {
    if (this.byName.size === 0) return false;
    if (this.modelChains.has(modelId)) return true;
    const text = prompt();
    return text !== undefined && startsWithSlash(text);
  }

  /**
   * The agents a request runs and the body they start from, or undefined when it runs none: then the caller
   * forwards the request exactly as received. Cheap when the prompt does not start with "/".
   */
  plan(endpoint: AgentEndpoint, body: JsonObject, modelId: string): AgentPlan | undefined {
    if (this.byName.size === 0) return undefined;
    const configured = this.modelChains.get(modelId);
    let commands: Command[] = [];
    let planned = body;
    const slot = promptSlot(endpoint, body);
    if (slot && startsWithSlash(slot.text)) {
      const parsed = parseSlashCommands(slot.text, this.known.get(endpoint)!);
      if (parsed.commands.length) {
        commands = parsed.commands;
        planned = slot.replace(parsed.rest);
      }
    }
    if (!configured && commands.length === 0) return undefined;
    const chain: ChainLink[] = [];
    for (const command of [...(configured ?? []), ...commands]) {
      const agent = this.byName.get(command.name);
      if (!agent || !agent.endpoints.includes(endpoint) || chain.some((l) => l.agent === agent)) continue;
      chain.push({ agent, args: command.args });
    }
    return chain.length ? { chain, body: planned } : undefined;
  }

  recordFailure(name: string, hook: HookName, reason: string): void {
    const entry = this.failures.get(name) ?? { count: 0, last: null };
    entry.count++;
    entry.last = { hook, reason, at: new Date().toISOString() };
    this.failures.set(name, entry);
  }

  health(): AgentHealth[] {
    return this.result.statuses.map((s) => {
      const f = this.failures.get(s.name);
      return {
        name: s.name,
        state: s.state,
        description: s.description ?? null,
        dir: s.dir,
        hooks: s.hooks ?? [],
        endpoints: s.endpoints ?? [],
        reason: s.reason ?? null,
        failures: f?.count ?? 0,
        last_failure: f?.last ?? null,
      };
    });
  }
}

/** The folders agents are read from: `agents.dir`, then the bundled plugins (when `agents.bundled`). */
export function agentDirs(config: Pick<Config, 'agents'>): string[] {
  const dirs = [path.resolve(config.agents.dir)];
  if (config.agents.bundled) dirs.push(BUNDLED_AGENTS_DIR);
  return dirs;
}

/** Loads the plugins named by the config. Never throws: what fails is logged and listed in /health. */
export async function loadAgentRegistry(config: Pick<Config, 'agents' | 'models'>, log: Logger): Promise<AgentRegistry> {
  const agentsLog = log.child({ component: 'agents' });
  const result = await loadAgents({
    dirs: agentDirs(config),
    ...(config.agents.enabled ? { enabled: config.agents.enabled } : {}),
    disabled: config.agents.disabled,
    settings: config.agents.settings,
    timeoutMs: config.agents.timeout * 1000,
    log: agentsLog,
  });
  const modelAgents = Object.fromEntries(Object.entries(config.models).map(([alias, entry]) => [alias, entry.agents]));
  return new AgentRegistry(result, modelAgents, agentsLog);
}
