/** Synthetic GGUF headers and replica files for the estimator's tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GGML_TYPES, readGgufHeaderSync, writeSparseReplica,
  type GgmlTypeName, type GgufHeader, type GgufValue, type PresetId, type ReplicaQuant,
} from '../../src/gguf/index.js';
import { modelInfo, type ModelInfo } from '../../src/estimate/index.js';

export interface FakeModel {
  arch?: string;
  layers: number;
  embd: number;
  heads: number;
  /** A number, or one value per layer. */
  headsKv: number | number[];
  headDim?: number;
  ff?: number;
  vocab?: number;
  ctxTrain?: number;
  experts?: number;
  expertsUsed?: number;
  expertFf?: number;
  tied?: boolean;
  slidingWindow?: number;
  weightType?: GgmlTypeName;
  extra?: Record<string, GgufValue>;
}

/** A header with llama-style tensors (no data), enough for modelInfo. */
export function fakeHeader(f: FakeModel): Pick<GgufHeader, 'metadata' | 'tensors'> {
  const arch = f.arch ?? 'llama';
  const hd = f.headDim ?? f.embd / f.heads;
  const vocab = f.vocab ?? 32000;
  const ff = f.ff ?? f.embd * 4;
  const wt = GGML_TYPES[f.weightType ?? 'F16'].id;
  const f32 = GGML_TYPES.F32.id;
  const kvHeads = (il: number): number => (Array.isArray(f.headsKv) ? f.headsKv[il]! : f.headsKv);
  const tensors: GgufHeader['tensors'] = [];
  const add = (name: string, dims: number[], type = wt): void => {
    tensors.push({ name, dims, type, offset: 0 });
  };
  add('token_embd.weight', [f.embd, vocab]);
  add('output_norm.weight', [f.embd], f32);
  if (!f.tied) add('output.weight', [f.embd, vocab]);
  for (let il = 0; il < f.layers; il++) {
    add(`blk.${il}.attn_norm.weight`, [f.embd], f32);
    add(`blk.${il}.attn_q.weight`, [f.embd, hd * f.heads]);
    add(`blk.${il}.attn_k.weight`, [f.embd, hd * kvHeads(il)]);
    add(`blk.${il}.attn_v.weight`, [f.embd, hd * kvHeads(il)]);
    add(`blk.${il}.attn_output.weight`, [hd * f.heads, f.embd]);
    add(`blk.${il}.ffn_norm.weight`, [f.embd], f32);
    if (f.experts) {
      const eff = f.expertFf ?? ff;
      add(`blk.${il}.ffn_gate_inp.weight`, [f.embd, f.experts], f32);
      add(`blk.${il}.ffn_gate_exps.weight`, [f.embd, eff, f.experts]);
      add(`blk.${il}.ffn_up_exps.weight`, [f.embd, eff, f.experts]);
      add(`blk.${il}.ffn_down_exps.weight`, [eff, f.embd, f.experts]);
    } else {
      add(`blk.${il}.ffn_gate.weight`, [f.embd, ff]);
      add(`blk.${il}.ffn_up.weight`, [f.embd, ff]);
      add(`blk.${il}.ffn_down.weight`, [ff, f.embd]);
    }
  }
  const metadata: Record<string, GgufValue> = {
    'general.architecture': arch,
    [`${arch}.block_count`]: f.layers,
    [`${arch}.context_length`]: f.ctxTrain ?? 4096,
    [`${arch}.embedding_length`]: f.embd,
    [`${arch}.feed_forward_length`]: ff,
    [`${arch}.attention.head_count`]: f.heads,
    [`${arch}.attention.head_count_kv`]: f.headsKv,
    [`${arch}.attention.key_length`]: hd,
    [`${arch}.attention.value_length`]: hd,
    [`${arch}.vocab_size`]: vocab,
    ...(f.experts ? { [`${arch}.expert_count`]: f.experts, [`${arch}.expert_used_count`]: f.expertsUsed ?? 2 } : {}),
    ...(f.slidingWindow ? { [`${arch}.attention.sliding_window`]: f.slidingWindow } : {}),
    ...f.extra,
  };
  return { metadata, tensors };
}

export function fakeModel(f: FakeModel): ModelInfo {
  return modelInfo(fakeHeader(f));
}

/** Sparse replicas written once into a temporary folder. */
export class Replicas {
  private dir: string | undefined;
  private readonly infos = new Map<string, ModelInfo>();

  path(id: PresetId, quant: ReplicaQuant): string {
    this.dir ??= mkdtempSync(join(tmpdir(), 'estimate-replicas-'));
    return join(this.dir, `${id}-${quant}.gguf`);
  }

  async write(id: PresetId, quant: ReplicaQuant): Promise<string> {
    const file = this.path(id, quant);
    await writeSparseReplica(file, id, quant);
    return file;
  }

  async info(id: PresetId, quant: ReplicaQuant): Promise<ModelInfo> {
    const key = `${id}-${quant}`;
    let info = this.infos.get(key);
    if (!info) {
      info = modelInfo(readGgufHeaderSync(await this.write(id, quant)));
      this.infos.set(key, info);
    }
    return info;
  }

  cleanup(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
