/** The Hub's settings from the config and the Hugging Face environment variables, and a ModelHub built from them. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { ModelHub, type HubLog, type ModelHubOptions } from './model-hub.js';
import { DEFAULT_HUB_ENDPOINT } from './protocol.js';
import { isAutoVariant } from '../models/quant-quality.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** HF_HUB_OFFLINE and friends: 1, true, yes, on. */
export function envFlag(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());
}

/**
 * The token: hub.token, else $HF_TOKEN (or the older $HUGGING_FACE_HUB_TOKEN), else the file `hf auth login` writes
 * ($HF_TOKEN_PATH, else $HF_HOME/token, else ~/.cache/huggingface/token).
 */
export function hubToken(configured: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const direct = configured ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (direct?.trim()) return direct.trim();
  const file = env.HF_TOKEN_PATH ?? path.join(env.HF_HOME ?? path.join(os.homedir(), '.cache', 'huggingface'), 'token');
  try {
    const t = readFileSync(file, 'utf8').trim();
    return t || undefined;
  } catch {
    return undefined;
  }
}

/** ModelHub options for `config` (the config's `hub` keys win over the environment). */
export function hubOptions(config: Config, env: NodeJS.ProcessEnv = process.env, log?: HubLog): ModelHubOptions {
  const h = config.hub;
  const token = hubToken(h.token, env);
  return {
    cacheDir: config.cacheDir,
    endpoint: h.endpoint ?? (env.HF_ENDPOINT?.trim() || DEFAULT_HUB_ENDPOINT),
    ...(token ? { token } : {}),
    offline: h.offline ?? envFlag(env.HF_HUB_OFFLINE),
    env,
    limitBytes: Math.round(h.cacheLimitGiB * GiB),
    connectTimeoutMs: h.connectTimeout * 1000,
    readTimeoutMs: h.readTimeout * 1000,
    retries: h.retries,
    headerProbeBytes: Math.round(h.headerProbeMiB * MiB),
    ...(h.defaultVariant && !isAutoVariant(h.defaultVariant) ? { defaultVariant: h.defaultVariant } : {}),
    ...(log ? { log } : {}),
  };
}

/**
 * Whether a repo named without a variant gets the quantization chosen for this machine (`:auto`): yes unless
 * `hub.defaultVariant` names a fixed one.
 */
export function autoByDefault(config: Config): boolean {
  return config.hub.defaultVariant === undefined || isAutoVariant(config.hub.defaultVariant);
}

export function createModelHub(config: Config, env: NodeJS.ProcessEnv = process.env, log?: HubLog, extra: Partial<ModelHubOptions> = {}): ModelHub {
  return new ModelHub({ ...hubOptions(config, env, log), ...extra });
}
