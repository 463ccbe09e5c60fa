/** GGUF files for the estimator's tests: split models and synthetic architectures. */
import { kv, replicaMetadata, replicaTensors, writeGguf, type GgufTypedValue, type PresetId, type ReplicaQuant } from '../../src/gguf/index.js';

/**
 * Writes a sparse replica as a split model the way llama-gguf-split lays one out: all metadata in
 * the first part, split.no / split.count (u16) and split.tensors.count (i32) in every part, the
 * tensors in order, spread evenly.
 */
export async function writeSplitReplica(prefix: string, id: PresetId, quant: ReplicaQuant, count: number): Promise<string[]> {
  const tensors = replicaTensors(id, quant);
  const per = Math.ceil(tensors.length / count);
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = `${prefix}-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.gguf`;
    const split = { 'split.no': kv.u16(i), 'split.count': kv.u16(count), 'split.tensors.count': kv.i32(tensors.length) };
    await writeGguf(file, {
      metadata: i === 0 ? { ...replicaMetadata(id, quant), ...split } : split,
      tensors: tensors.slice(i * per, (i + 1) * per),
    });
    paths.push(file);
  }
  return paths;
}

/** A dense architecture llama.cpp can load, built on a preset's tokenizer (synthetic shapes, no data). */
export interface SyntheticModel {
  readonly arch: string;
  /** Preset whose tokenizer metadata is reused; the vocabulary size must match it. */
  readonly tokenizerOf: PresetId;
  readonly layers: number;
  readonly embd: number;
  readonly heads: number;
  readonly headsKv: number;
  readonly headDim: number;
  readonly ff: number;
  readonly vocab: number;
  readonly qkNorm: boolean;
  readonly postNorms: boolean;
  readonly extra?: Readonly<Record<string, GgufTypedValue>>;
}

/** Qwen3-0.6B's shape (LLM_ARCH_QWEN3: q/k norms, tied embeddings). */
export const QWEN3_06B: SyntheticModel = {
  arch: 'qwen3', tokenizerOf: 'qwen3-30b-a3b', layers: 28, embd: 1024, heads: 16, headsKv: 8, headDim: 128, ff: 3072, vocab: 151936,
  qkNorm: true, postNorms: false,
};

/** Gemma-3-1B's shape (LLM_ARCH_GEMMA3: 1 KV head of 256, window 512 every 5 of 6 layers), on Gemma 2's vocabulary. */
export const GEMMA3_1B: SyntheticModel = {
  arch: 'gemma3', tokenizerOf: 'gemma-2-9b', layers: 26, embd: 1152, heads: 4, headsKv: 1, headDim: 256, ff: 6912, vocab: 256000,
  qkNorm: true, postNorms: true, extra: { 'gemma3.attention.sliding_window': kv.u32(512) },
};

export async function writeSyntheticModel(file: string, m: SyntheticModel): Promise<void> {
  const base = replicaMetadata(m.tokenizerOf, 'F16');
  const metadata: Record<string, GgufTypedValue> = {};
  for (const [k, v] of Object.entries(base)) if (!k.includes('.') || k.startsWith('general.') || k.startsWith('tokenizer.')) metadata[k] = v;
  const a = m.arch;
  Object.assign(metadata, {
    'general.architecture': kv.str(a),
    [`${a}.block_count`]: kv.u32(m.layers),
    [`${a}.context_length`]: kv.u32(32768),
    [`${a}.embedding_length`]: kv.u32(m.embd),
    [`${a}.feed_forward_length`]: kv.u32(m.ff),
    [`${a}.attention.head_count`]: kv.u32(m.heads),
    [`${a}.attention.head_count_kv`]: kv.u32(m.headsKv),
    [`${a}.attention.key_length`]: kv.u32(m.headDim),
    [`${a}.attention.value_length`]: kv.u32(m.headDim),
    [`${a}.attention.layer_norm_rms_epsilon`]: kv.f32(1e-6),
    ...m.extra,
  });
  const t: { name: string; dims: number[]; type: 'F16' | 'F32' }[] = [
    { name: 'token_embd.weight', dims: [m.embd, m.vocab], type: 'F16' },
    { name: 'output_norm.weight', dims: [m.embd], type: 'F32' },
  ];
  const q = m.headDim * m.heads;
  const kvw = m.headDim * m.headsKv;
  for (let i = 0; i < m.layers; i++) {
    const b = `blk.${i}.`;
    t.push(
      { name: `${b}attn_norm.weight`, dims: [m.embd], type: 'F32' },
      { name: `${b}attn_q.weight`, dims: [m.embd, q], type: 'F16' },
      { name: `${b}attn_k.weight`, dims: [m.embd, kvw], type: 'F16' },
      { name: `${b}attn_v.weight`, dims: [m.embd, kvw], type: 'F16' },
      { name: `${b}attn_output.weight`, dims: [q, m.embd], type: 'F16' },
      { name: `${b}ffn_norm.weight`, dims: [m.embd], type: 'F32' },
      { name: `${b}ffn_gate.weight`, dims: [m.embd, m.ff], type: 'F16' },
      { name: `${b}ffn_up.weight`, dims: [m.embd, m.ff], type: 'F16' },
      { name: `${b}ffn_down.weight`, dims: [m.ff, m.embd], type: 'F16' },
    );
    if (m.qkNorm) t.push({ name: `${b}attn_q_norm.weight`, dims: [m.headDim], type: 'F32' }, { name: `${b}attn_k_norm.weight`, dims: [m.headDim], type: 'F32' });
    if (m.postNorms) t.push({ name: `${b}post_attention_norm.weight`, dims: [m.embd], type: 'F32' }, { name: `${b}post_ffw_norm.weight`, dims: [m.embd], type: 'F32' });
  }
  await writeGguf(file, { metadata, tensors: t });
}
