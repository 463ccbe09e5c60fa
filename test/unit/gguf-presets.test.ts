import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PRESETS, PRESET_IDS, REPLICA_QUANTS, compareLikeLlamaLoader, quantizedTypes, readGgufHeader,
  replicaBitsPerWeight, replicaLayout, replicaMetadata, replicaTensors, writeSparseReplica,
  type PresetId, type ReplicaQuant,
} from '../../src/gguf/index.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gguf-presets-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Tensor counts of the real conversions (as llama-quantize lists them). */
const TENSOR_COUNTS: Record<PresetId, number> = {
  'llama-3-8b': 291,
  'qwen2.5-0.5b': 290,
  'mistral-7b': 291,
  'gemma-2-9b': 464,
  'phi-3-mini': 195,
  'mixtral-8x7b': 323,
  'qwen3-30b-a3b': 579,
  'gpt-oss-20b': 459,
  'glm-4.5-air': 803,
  'deepseek-v2-lite': 404,
  'qwen3-next-80b-a3b': 863,
  'granite-4.0-h-tiny': 666,
  'llama-4-scout': 628,
};

function typesOf(id: PresetId, quant: ReplicaQuant): Map<string, string> {
  return new Map(replicaTensors(id, quant).map((t) => [t.name, t.type]));
}

describe('replica presets', () => {
  it.each(PRESET_IDS)('%s: tensor table and metadata are consistent', (id) => {
    const spec = PRESETS[id];
    const h = spec.hparams;
    for (const quant of REPLICA_QUANTS) {
      const tensors = replicaTensors(id, quant);
      expect(tensors).toHaveLength(TENSOR_COUNTS[id]);
      expect(new Set(tensors.map((t) => t.name)).size).toBe(tensors.length);
      const names = tensors.map((t) => t.name);
      expect([...names].sort(compareLikeLlamaLoader)).toEqual(names);
      const byName = new Map(tensors.map((t) => [t.name, t]));
      expect(byName.get('token_embd.weight')!.dims).toEqual([h.embd, h.vocabSize]);
      expect(byName.has('output.weight')).toBe(!h.tiedEmbeddings);
      expect(byName.get(`blk.${h.layers - 1}.attn_norm.weight`)!.type).toBe('F32');
      expect(byName.has(`blk.${h.layers}.attn_norm.weight`)).toBe(false);

      const md = replicaMetadata(id, quant);
      expect(md['general.architecture']!.value).toBe(spec.arch);
      expect(md[`${spec.arch}.block_count`]!.value).toBe(h.layers);
      expect(md[`${spec.arch}.embedding_length`]!.value).toBe(h.embd);
      expect(md['general.file_type']!.value).toBe({ F16: 1, Q8_0: 7, Q2_K: 10, Q3_K_M: 12, Q4_K_M: 15, Q5_K_M: 17, Q6_K: 18 }[quant]);
      expect((md['tokenizer.ggml.tokens']!.value as string[]).length).toBe(h.vocabSize);
      expect(new Set(md['tokenizer.ggml.tokens']!.value as string[]).size).toBe(h.vocabSize);
      expect((md['tokenizer.ggml.token_type']!.value as number[]).length).toBe(h.vocabSize);
      expect(md['tokenizer.chat_template']!.type).toBe('string');
      if (h.expertCount > 0) expect(md[`${spec.arch}.expert_count`]!.value).toBe(h.expertCount);
    }
    expect(replicaBitsPerWeight(id, 'F16')).toBeCloseTo(16, 1);
    expect(replicaBitsPerWeight(id, 'Q8_0')).toBeCloseTo(8.5, 1);
  });

  it('Q4_K_M follows llama-quantize: Q6_K output, use_more_bits layers, fallbacks', () => {
    const llama = typesOf('llama-3-8b', 'Q4_K_M');
    expect(llama.get('output.weight')).toBe('Q6_K');
    expect(llama.get('token_embd.weight')).toBe('Q4_K');
    // use_more_bits(i, 32): i < 4, i >= 28, or (i - 4) % 3 == 2
    const bumped = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
    for (let i = 0; i < 32; i++) {
      const want = bumped.includes(i) ? 'Q6_K' : 'Q4_K';
      expect(llama.get(`blk.${i}.attn_v.weight`), `attn_v ${i}`).toBe(want);
      expect(llama.get(`blk.${i}.ffn_down.weight`), `ffn_down ${i}`).toBe(want);
      expect(llama.get(`blk.${i}.attn_q.weight`)).toBe('Q4_K');
    }

    // 896 columns are not a multiple of 256: Q4_K -> Q5_0, Q6_K -> Q8_0; tied embeddings
    // are quantized like the output (Q6_K -> Q8_0).
    const qwen = typesOf('qwen2.5-0.5b', 'Q4_K_M');
    expect(qwen.get('token_embd.weight')).toBe('Q8_0');
    expect(qwen.get('blk.5.attn_q.weight')).toBe('Q5_0');
    expect(qwen.get('blk.0.attn_v.weight')).toBe('Q8_0');
    expect(qwen.get('blk.0.ffn_down.weight')).toBe('Q6_K'); // 4864 = 19 * 256
    expect(qwen.get('blk.0.attn_q.bias')).toBe('F32');

    expect(typesOf('gemma-2-9b', 'Q4_K_M').get('token_embd.weight')).toBe('Q6_K');

    const phi = typesOf('phi-3-mini', 'Q4_K_M');
    expect(phi.get('blk.0.attn_qkv.weight')).toBe('Q6_K'); // treated as attn_v
    expect(phi.get('blk.4.attn_qkv.weight')).toBe('Q4_K');

    // Exactly 8 experts: attn_v/attn_k Q8_0, attn_output Q5_K; the router stays F32.
    const mixtral = typesOf('mixtral-8x7b', 'Q4_K_M');
    expect(mixtral.get('blk.10.attn_v.weight')).toBe('Q8_0');
    expect(mixtral.get('blk.10.attn_k.weight')).toBe('Q8_0');
    expect(mixtral.get('blk.10.attn_output.weight')).toBe('Q5_K');
    expect(mixtral.get('blk.10.ffn_gate_inp.weight')).toBe('F32');
    expect(mixtral.get('blk.0.ffn_down_exps.weight')).toBe('Q6_K');
    expect(mixtral.get('blk.4.ffn_down_exps.weight')).toBe('Q4_K');

    const qwen3 = typesOf('qwen3-30b-a3b', 'Q4_K_M');
    expect(qwen3.get('blk.0.attn_k.weight')).toBe('Q4_K'); // 128 experts: no 8-expert bump
    expect(qwen3.get('blk.0.attn_v.weight')).toBe('Q6_K');
    expect(qwen3.get('blk.0.attn_q_norm.weight')).toBe('F32');
    expect(qwen3.get('blk.47.ffn_down_exps.weight')).toBe('Q6_K');

    // gpt-oss: rows of 2880 fall back (Q4_K -> Q5_0, Q6_K -> Q8_0); sinks, biases and router stay F32.
    const gptOss = typesOf('gpt-oss-20b', 'Q4_K_M');
    expect(gptOss.get('output.weight')).toBe('Q8_0');
    expect(gptOss.get('token_embd.weight')).toBe('Q5_0');
    expect(gptOss.get('blk.0.ffn_down_exps.weight')).toBe('Q8_0');
    expect(gptOss.get('blk.4.ffn_down_exps.weight')).toBe('Q5_0');
    expect(gptOss.get('blk.4.ffn_up_exps.weight')).toBe('Q5_0');
    expect(gptOss.get('blk.4.attn_output.weight')).toBe('Q4_K'); // 4096 columns
    expect(gptOss.get('blk.4.attn_sinks.weight')).toBe('F32');
    expect(gptOss.get('blk.4.ffn_gate_exps.bias')).toBe('F32');
    expect(gptOss.get('blk.4.ffn_gate_inp.weight')).toBe('F32');

    // GLM-4.5-Air: rows of 1408 (expert ffn_down) and 10944 (dense ffn_down) fall back; the NextN
    // layer (blk.46) is quantized like the others; router and selection bias stay F32.
    const glm = typesOf('glm-4.5-air', 'Q4_K_M');
    expect(glm.get('token_embd.weight')).toBe('Q4_K');
    expect(glm.get('output.weight')).toBe('Q6_K');
    expect(glm.get('blk.0.ffn_down.weight')).toBe('Q8_0');
    expect(glm.get('blk.1.ffn_down_exps.weight')).toBe('Q8_0');
    expect(glm.get('blk.5.ffn_down_exps.weight')).toBe('Q5_0');
    expect(glm.get('blk.5.ffn_down_shexp.weight')).toBe('Q5_0');
    expect(glm.get('blk.5.ffn_up_exps.weight')).toBe('Q4_K');
    expect(glm.get('blk.5.exp_probs_b.bias')).toBe('F32');
    expect(glm.get('blk.5.ffn_gate_inp.weight')).toBe('F32');
    expect(glm.get('blk.46.nextn.eh_proj.weight')).toBe('Q4_K');
    expect(glm.get('blk.46.nextn.shared_head_head.weight')).toBe('Q4_K');
    expect(glm.get('blk.46.nextn.enorm.weight')).toBe('F32');

    // DeepSeek-V2-Lite: the MLA tensors are not attn_k/attn_v to llama-quantize (no attn_v
    // counter); attn_k_b's rows of 128 fall back to Q5_0, ffn_down rows of 1408 and 10944 to Q5_0 / Q8_0.
    const ds = typesOf('deepseek-v2-lite', 'Q4_K_M');
    expect(ds.get('output.weight')).toBe('Q6_K');
    expect(ds.get('blk.3.attn_q.weight')).toBe('Q4_K');
    expect(ds.get('blk.3.attn_kv_a_mqa.weight')).toBe('Q4_K');
    expect(ds.get('blk.3.attn_kv_a_norm.weight')).toBe('F32');
    expect(ds.get('blk.3.attn_k_b.weight')).toBe('Q5_0');
    expect(ds.get('blk.3.attn_v_b.weight')).toBe('Q4_K');
    expect(ds.get('blk.0.ffn_down.weight')).toBe('Q8_0');
    expect(ds.get('blk.3.ffn_down_exps.weight')).toBe('Q5_0');
    expect(ds.get('blk.3.ffn_down_shexp.weight')).toBe('Q4_K');
    expect(ds.get('blk.5.ffn_down_exps.weight')).toBe('Q8_0');
    expect(ds.get('blk.5.ffn_down_shexp.weight')).toBe('Q6_K');
    expect(ds.get('blk.3.ffn_gate_inp.weight')).toBe('F32');

    // Qwen3-Next: the linear-attention layers' fused attn_qkv counts as attn_v (48 with the 12
    // attn_v); the conv kernel, A, dt bias and the shared-expert gate ({2048, 1}) stay F32.
    const q3n = typesOf('qwen3-next-80b-a3b', 'Q4_K_M');
    expect(q3n.get('output.weight')).toBe('Q6_K');
    expect(q3n.get('blk.0.attn_qkv.weight')).toBe('Q6_K');
    expect(q3n.get('blk.0.attn_gate.weight')).toBe('Q4_K');
    expect(q3n.get('blk.0.ssm_ba.weight')).toBe('Q4_K');
    expect(q3n.get('blk.0.ssm_out.weight')).toBe('Q4_K');
    expect(q3n.get('blk.0.ssm_conv1d.weight')).toBe('F32');
    expect(q3n.get('blk.0.ssm_a')).toBe('F32');
    expect(q3n.get('blk.0.ssm_dt.bias')).toBe('F32');
    expect(q3n.get('blk.0.ffn_gate_inp_shexp.weight')).toBe('F32');
    expect(q3n.get('blk.3.attn_v.weight')).toBe('Q6_K');
    expect(q3n.get('blk.3.attn_q.weight')).toBe('Q4_K');
    expect(q3n.get('blk.10.ffn_down_exps.weight')).toBe('Q4_K');
    expect(q3n.get('blk.48.nextn.eh_proj.weight')).toBe('Q4_K');
    expect(replicaTensors('qwen3-next-80b-a3b', 'F16').find((t) => t.name === 'blk.0.ssm_conv1d.weight')?.type).toBe('F32');

    // Granite-4.0-H: tied embeddings (token_embd as the output: Q6_K); the Mamba2 conv kernel and
    // bias, A, D ({1, 48}, no .weight suffix), dt bias and the grouped norm ({3072, 1}) stay F32;
    // 4 attn_v of which the last two get Q6_K
    const gr = typesOf('granite-4.0-h-tiny', 'Q4_K_M');
    expect(gr.get('token_embd.weight')).toBe('Q6_K');
    expect(gr.has('output.weight')).toBe(false);
    expect(gr.get('blk.0.ssm_in.weight')).toBe('Q4_K');
    expect(gr.get('blk.0.ssm_out.weight')).toBe('Q4_K');
    for (const n of ['ssm_conv1d.weight', 'ssm_conv1d.bias', 'ssm_a', 'ssm_d', 'ssm_dt.bias', 'ssm_norm.weight', 'ffn_gate_inp.weight']) {
      expect(gr.get(`blk.0.${n}`), n).toBe('F32');
    }
    expect([5, 15, 25, 35].map((il) => gr.get(`blk.${il}.attn_v.weight`))).toEqual(['Q4_K', 'Q4_K', 'Q6_K', 'Q6_K']);
    expect(gr.get('blk.0.ffn_down_exps.weight')).toBe('Q6_K');
    expect(gr.get('blk.0.ffn_down_shexp.weight')).toBe('Q6_K');
    expect(replicaTensors('granite-4.0-h-tiny', 'F16').find((t) => t.name === 'blk.0.ssm_a')?.type).toBe('F32');

    // Llama 4 Scout: 16 experts (no 8-expert bump), half the attn_v and ffn_down get Q6_K; the
    // llama3-style rope factors and the routers stay F32; no dense FFN (MoE in every layer)
    const l4 = typesOf('llama-4-scout', 'Q4_K_M');
    expect(l4.get('output.weight')).toBe('Q6_K');
    expect(l4.get('rope_freqs.weight')).toBe('F32');
    expect(l4.get('blk.0.ffn_gate_inp.weight')).toBe('F32');
    expect(l4.get('blk.0.ffn_down_exps.weight')).toBe('Q6_K');
    expect(l4.get('blk.0.ffn_down_shexp.weight')).toBe('Q6_K');
    expect(l4.get('blk.0.attn_v.weight')).toBe('Q6_K');
    expect(l4.get('blk.0.attn_k.weight')).toBe('Q4_K');
    expect([...l4.keys()].filter((n) => /\.ffn_(gate|up|down)\.weight$/.test(n))).toEqual([]);
    expect([...l4.values()].filter((t) => t === 'Q6_K')).toHaveLength(1 + 24 * 3);
  });

  it('the other K-quant mixes follow llama-quantize (Q6_K, Q5_K_M, Q3_K_M, Q2_K)', () => {
    const q6 = typesOf('llama-3-8b', 'Q6_K');
    expect(new Set(q6.values())).toEqual(new Set(['Q6_K', 'F32']));
    const q5 = typesOf('llama-3-8b', 'Q5_K_M');
    // use_more_bits(i, 32) as for Q4_K_M, bumping to Q6_K from Q5_K
    for (const [i, want] of [[0, 'Q6_K'], [4, 'Q5_K'], [6, 'Q6_K'], [31, 'Q6_K']] as const) {
      expect(q5.get(`blk.${i}.attn_v.weight`), `attn_v ${i}`).toBe(want);
      expect(q5.get(`blk.${i}.ffn_down.weight`), `ffn_down ${i}`).toBe(want);
    }
    expect(q5.get('output.weight')).toBe('Q6_K');
    expect(q5.get('blk.4.attn_q.weight')).toBe('Q5_K');
    const q3 = typesOf('llama-3-8b', 'Q3_K_M');
    expect(q3.get('blk.0.attn_v.weight')).toBe('Q5_K'); // the first two attn_v
    expect(q3.get('blk.1.attn_v.weight')).toBe('Q5_K');
    expect(q3.get('blk.2.attn_v.weight')).toBe('Q4_K');
    expect(q3.get('blk.1.ffn_down.weight')).toBe('Q5_K'); // layers < 32/16
    expect(q3.get('blk.2.ffn_down.weight')).toBe('Q4_K');
    expect(q3.get('blk.2.attn_output.weight')).toBe('Q4_K');
    expect(q3.get('blk.2.ffn_up.weight')).toBe('Q3_K');
    const q2 = typesOf('llama-3-8b', 'Q2_K');
    expect(q2.get('blk.9.attn_v.weight')).toBe('Q4_K'); // 32 heads over 8 KV heads: n_gqa 4
    expect(q2.get('blk.9.ffn_down.weight')).toBe('Q3_K');
    expect(q2.get('blk.9.attn_output.weight')).toBe('Q3_K');
    expect(q2.get('blk.9.ffn_gate.weight')).toBe('Q2_K');
    expect(q2.get('output.weight')).toBe('Q6_K');
    // Phi-3-mini has one KV head per query head: Q2_K's attn_qkv (as attn_v) gets Q3_K
    expect(typesOf('phi-3-mini', 'Q2_K').get('blk.4.attn_qkv.weight')).toBe('Q3_K');
    // Qwen2.5-0.5B's 896 columns fall back from Q2_K/Q3_K to IQ4_NL
    expect(typesOf('qwen2.5-0.5b', 'Q2_K').get('blk.3.ffn_gate.weight')).toBe('IQ4_NL');
    // Mixtral's 8 experts: attn_output Q5_K for Q2_K and Q3_K_M too
    expect(typesOf('mixtral-8x7b', 'Q2_K').get('blk.3.attn_output.weight')).toBe('Q5_K');
    expect(typesOf('mixtral-8x7b', 'Q3_K_M').get('blk.3.attn_v.weight')).toBe('Q8_0');
  });

  it('falls back to F16 when not even 32 divides the rows', () => {
    const types = quantizedTypes(
      { arch: 'llama', layerCount: 1, expertCount: 0 },
      [{ name: 'blk.0.attn_q.weight', dims: [100, 64], type: 'F16' }, { name: 'blk.0.ffn_up.weight', dims: [64, 100], type: 'F16' }],
      'Q8_0',
    );
    expect(types).toEqual(['F16', 'Q8_0']);
  });

  it('sizes match the real files within a few percent', () => {
    // Weight sizes of the real GGUF files (GiB) as published for these models.
    const gib = (id: PresetId, q: ReplicaQuant) => replicaLayout(id, q).dataSize / 2 ** 30;
    expect(gib('llama-3-8b', 'Q4_K_M')).toBeCloseTo(4.58, 1);
    expect(gib('llama-3-8b', 'F16')).toBeCloseTo(14.96, 1);
    expect(gib('mixtral-8x7b', 'Q4_K_M')).toBeCloseTo(26.49, 0);
    // Meta-Llama-3-8B-Instruct's published files (GB, header included): Q8_0 8.54, Q6_K 6.60, Q5_K_M 5.73,
    // Q3_K_M 4.02, Q2_K 3.18.
    const gb = (q: ReplicaQuant) => replicaLayout('llama-3-8b', q).dataSize / 1e9;
    for (const [q, want] of [['Q8_0', 8.54], ['Q6_K', 6.6], ['Q5_K_M', 5.73], ['Q3_K_M', 4.02], ['Q2_K', 3.18]] as const) {
      expect(Math.abs(gb(q) - want) / want, q).toBeLessThan(0.01);
    }
    for (const id of PRESET_IDS) {
      const bpw = replicaBitsPerWeight(id, 'Q4_K_M');
      expect(bpw).toBeGreaterThan(4.8);
      // 896 (Qwen2.5), 2880 (gpt-oss) and 1408 (GLM-4.5 and DeepSeek-V2 experts) columns are not
      // multiples of 256: Q5_0/Q8_0 fallbacks
      const fallbacks = ['qwen2.5-0.5b', 'gpt-oss-20b', 'glm-4.5-air', 'deepseek-v2-lite'];
      expect(bpw).toBeLessThan(fallbacks.includes(id) ? 6.5 : 5.1);
    }
  });

  it('writes sparse replicas whose headers read back as specified', async () => {
    for (const [id, quant] of [['qwen2.5-0.5b', 'Q4_K_M'], ['mixtral-8x7b', 'F16']] as const) {
      const path = join(dir, `${id}-${quant}.gguf`);
      const size = await writeSparseReplica(path, id, quant);
      const st = statSync(path);
      const h = await readGgufHeader(path);
      const layout = replicaLayout(id, quant);
      expect(size).toBe(st.size);
      expect(st.size).toBe(h.dataOffset + layout.dataSize);
      console.log(`${id} ${quant}: ${(st.size / 2 ** 30).toFixed(2)} GiB apparent, ${(st.blocks * 512 / 2 ** 20).toFixed(2)} MiB allocated, header ${(h.dataOffset / 2 ** 20).toFixed(2)} MiB`);
      expect(st.blocks * 512).toBeLessThan(h.dataOffset + (1 << 20));
      expect(h.tensors).toEqual(layout.tensors.map(({ name, dims, type, offset }) => ({ name, dims, type, offset })));
      const md = replicaMetadata(id, quant);
      expect(Object.keys(h.metadata)).toEqual(Object.keys(md));
      for (const [key, v] of Object.entries(md)) {
        expect(h.metadataTypes[key], key).toEqual(v.type);
        // float32 values come back rounded to float32
        const stored = v.type === 'float32' ? Math.fround(v.value as number) : v.value;
        expect(h.metadata[key], key).toEqual(stored);
      }
      const hf = await gguf(path, { allowLocalFile: true });
      expect(Number(hf.tensorDataOffset)).toBe(h.dataOffset);
      expect(hf.tensorInfos.map((t) => [t.name, Number(t.dtype)])).toEqual(h.tensors.map((t) => [t.name, t.type]));
    }
  });
});
