/** A plugin's `config.json` (zod). Unknown keys are allowed (and logged) so that manifests can carry notes. */
import { z } from 'zod';
import type { ArgSpec } from './slash.js';
import { AGENT_ENDPOINTS, type AgentEndpoint } from './types.js';

/** Folder names that may be slash commands. */
export const AGENT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export const ManifestSchema = z.looseObject({
  description: z.string(),
  enabled: z.boolean(),
  /** Endpoints the agent applies to (default: both prompt endpoints). */
  endpoints: z.array(z.enum(AGENT_ENDPOINTS as [AgentEndpoint, ...AgentEndpoint[]])).min(1).optional(),
  /** The agent's own settings, given to it as `context.settings`. */
  settings: z.record(z.string(), z.unknown()).default({}),
  /** Seconds each hook may take; default: the proxy's `agents.timeout`. */
  timeout: z.number().positive().optional(),
  /** Arguments after the command: up to `max` tokens, each matching `pattern` in full. */
  args: z
    .object({ max: z.number().int().min(1).max(16), pattern: z.string().min(1) })
    .strict()
    .optional(),
  /** The module file, relative to the folder (default: index.mjs, index.js or index.cjs, the first found). */
  main: z.string().min(1).optional(),
});

export type Manifest = z.output<typeof ManifestSchema>;

export const KNOWN_MANIFEST_KEYS = new Set(['description', 'enabled', 'endpoints', 'settings', 'timeout', 'args', 'main']);

/** The manifest's `args` as a compiled spec; throws with a readable message for a bad pattern. */
export function argSpecOf(manifest: Manifest): ArgSpec | undefined {
  if (!manifest.args) return undefined;
  let pattern: RegExp;
  try {
    pattern = new RegExp(manifest.args.pattern);
  } catch (err) {
    throw new Error(`args.pattern is not a valid regular expression: ${(err as Error).message}`);
  }
  return { max: manifest.args.max, pattern };
}
