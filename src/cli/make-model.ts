import { statSync } from 'node:fs';
import path from 'node:path';
import { PRESET_IDS, REPLICA_QUANTS, writeSparseReplica, writeTinyModel, type PresetId, type ReplicaQuant } from '../gguf/index.js';

export interface MakeModelFlags {
  seed: number;
  layers?: number;
  embd?: number;
  preset?: string;
  quant: string;
  list?: boolean;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Writes a tiny runnable model, or a sparse replica of a real architecture (header real, data a hole). */
export async function makeModelCommand(out: string, flags: MakeModelFlags): Promise<void> {
  if (flags.list) {
    process.stdout.write(`presets: ${PRESET_IDS.join(', ')}\nquantizations: ${REPLICA_QUANTS.join(', ')}\n`);
    return;
  }
  const file = path.resolve(out);
  if (flags.preset !== undefined) {
    if (!(PRESET_IDS as readonly string[]).includes(flags.preset)) throw new Error(`unknown preset "${flags.preset}"; presets: ${PRESET_IDS.join(', ')}`);
    if (!(REPLICA_QUANTS as readonly string[]).includes(flags.quant)) throw new Error(`unknown quantization "${flags.quant}"; use ${REPLICA_QUANTS.join(', ')}`);
    await writeSparseReplica(file, flags.preset as PresetId, flags.quant as ReplicaQuant);
    const st = statSync(file);
    process.stdout.write(`wrote ${file}: sparse ${flags.preset} ${flags.quant}, ${mib(st.size)} apparent, ${mib(st.blocks * 512)} on disk\n`);
    return;
  }
  await writeTinyModel(file, {
    seed: flags.seed,
    ...(flags.layers !== undefined ? { layers: flags.layers } : {}),
    ...(flags.embd !== undefined ? { embd: flags.embd } : {}),
  });
  process.stdout.write(`wrote ${file}: tiny llama model, seed ${flags.seed}, ${mib(statSync(file).size)}\n`);
}
