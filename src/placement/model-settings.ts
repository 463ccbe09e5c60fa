/**
 * The memory-relevant llama-server settings of an instance, read from what the proxy will pass it: context and
 * slots from the model entry, the rest from its extra arguments (the same flags llama-server reads). Pure.
 */
import { KV_CACHE_TYPES, type EstimateSettings, type FlashAttn, type KvCacheType } from '../estimate/index.js';

function flagValue(args: readonly string[], names: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    for (const name of names) {
      if (a === name && i + 1 < args.length) value = args[i + 1];
      else if (a.startsWith(`${name}=`)) value = a.slice(name.length + 1);
    }
  }
  return value;
}

function intFlag(args: readonly string[], names: readonly string[]): number | undefined {
  const v = flagValue(args, names);
  const n = v === undefined ? NaN : Number(v);
  return Number.isInteger(n) ? n : undefined;
}

function cacheType(v: string | undefined): KvCacheType | undefined {
  return v && (KV_CACHE_TYPES as readonly string[]).includes(v) ? (v as KvCacheType) : undefined;
}

export function estimateSettings(ctx: number, parallel: number, args: readonly string[]): EstimateSettings {
  const fa = flagValue(args, ['-fa', '--flash-attn']);
  const settings: { -readonly [K in keyof EstimateSettings]: EstimateSettings[K] } = { ctx, parallel };
  const batch = intFlag(args, ['-b', '--batch-size']);
  const ubatch = intFlag(args, ['-ub', '--ubatch-size']);
  const ctk = cacheType(flagValue(args, ['-ctk', '--cache-type-k']));
  const ctv = cacheType(flagValue(args, ['-ctv', '--cache-type-v']));
  const cpuMoe = intFlag(args, ['-ncmoe', '--n-cpu-moe']);
  if (batch !== undefined) settings.batch = batch;
  if (ubatch !== undefined) settings.ubatch = ubatch;
  if (ctk) settings.cacheTypeK = ctk;
  if (ctv) settings.cacheTypeV = ctv;
  if (fa === 'on' || fa === 'off' || fa === 'auto') settings.flashAttn = fa as FlashAttn;
  if (args.includes('--swa-full')) settings.swaFull = true;
  if (args.includes('-nkvo') || args.includes('--no-kv-offload')) settings.kvOffload = false;
  if (args.includes('-kvu') || args.includes('--kv-unified')) settings.kvUnified = true;
  if (args.includes('-cmoe') || args.includes('--cpu-moe')) settings.cpuMoeLayers = Number.MAX_SAFE_INTEGER;
  else if (cpuMoe !== undefined) settings.cpuMoeLayers = cpuMoe;
  return settings;
}
