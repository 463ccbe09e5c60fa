/**
 * Tensor tables of the replicated architectures: names and shapes exactly as the matching
 * llama.cpp loader (src/models/<arch>.cpp, load_arch_tensors) expects them. Optional tensors
 * appear only where the real conversions contain them (e.g. Qwen2's q/k/v biases).
 */

import type { ModelHparams, TensorDims } from './types.js';

const blk = (i: number, name: string): string => `blk.${i}.${name}`;

/** token_embd, output_norm and, unless tied, output. */
function embeddings(h: ModelHparams): TensorDims[] {
  const out: TensorDims[] = [
    { name: 'token_embd.weight', dims: [h.embd, h.vocabSize] },
    { name: 'output_norm.weight', dims: [h.embd] },
  ];
  if (!h.tiedEmbeddings) out.push({ name: 'output.weight', dims: [h.embd, h.vocabSize] });
  return out;
}

/** Separate q/k/v projections and the output projection. */
function attention(h: ModelHparams, i: number, withBias = false): TensorDims[] {
  const q = h.heads * h.headDim;
  const kv = h.headsKv * h.headDim;
  const out: TensorDims[] = [
    { name: blk(i, 'attn_q.weight'), dims: [h.embd, q] },
    { name: blk(i, 'attn_k.weight'), dims: [h.embd, kv] },
    { name: blk(i, 'attn_v.weight'), dims: [h.embd, kv] },
  ];
  if (withBias) {
    out.push(
      { name: blk(i, 'attn_q.bias'), dims: [q] },
      { name: blk(i, 'attn_k.bias'), dims: [kv] },
      { name: blk(i, 'attn_v.bias'), dims: [kv] },
    );
  }
  out.push({ name: blk(i, 'attn_output.weight'), dims: [q, h.embd] });
  return out;
}

function denseFfn(h: ModelHparams, i: number): TensorDims[] {
  return [
    { name: blk(i, 'ffn_gate.weight'), dims: [h.embd, h.ff] },
    { name: blk(i, 'ffn_up.weight'), dims: [h.embd, h.ff] },
    { name: blk(i, 'ffn_down.weight'), dims: [h.ff, h.embd] },
  ];
}

/** Router plus the experts merged into one 3-D tensor per projection. */
function moeFfn(h: ModelHparams, i: number): TensorDims[] {
  const ff = h.expertFf ?? h.ff;
  const n = h.expertCount;
  return [
    { name: blk(i, 'ffn_gate_inp.weight'), dims: [h.embd, n] },
    { name: blk(i, 'ffn_gate_exps.weight'), dims: [h.embd, ff, n] },
    { name: blk(i, 'ffn_up_exps.weight'), dims: [h.embd, ff, n] },
    { name: blk(i, 'ffn_down_exps.weight'), dims: [ff, h.embd, n] },
  ];
}

const norm = (i: number, name: string, h: ModelHparams): TensorDims => ({ name: blk(i, `${name}.weight`), dims: [h.embd] });

function layers(h: ModelHparams, layer: (i: number) => TensorDims[]): TensorDims[] {
  const out = embeddings(h);
  for (let i = 0; i < h.layers; i++) out.push(...layer(i));
  return out;
}

/** LLM_ARCH_LLAMA: Llama, Mistral, and Mixtral when expertCount > 0. */
export function llamaTensors(h: ModelHparams): TensorDims[] {
  return layers(h, (i) => [
    norm(i, 'attn_norm', h),
    ...attention(h, i),
    norm(i, 'ffn_norm', h),
    ...(h.expertCount > 0 ? moeFfn(h, i) : denseFfn(h, i)),
  ]);
}

/** LLM_ARCH_QWEN2: q/k/v carry biases. */
export function qwen2Tensors(h: ModelHparams): TensorDims[] {
  return layers(h, (i) => [
    norm(i, 'attn_norm', h),
    ...attention(h, i, true),
    norm(i, 'ffn_norm', h),
    ...denseFfn(h, i),
  ]);
}

/** LLM_ARCH_QWEN3MOE: per-head q/k RMS norms, 128 merged experts, no shared expert. */
export function qwen3moeTensors(h: ModelHparams): TensorDims[] {
  return layers(h, (i) => [
    norm(i, 'attn_norm', h),
    ...attention(h, i),
    { name: blk(i, 'attn_k_norm.weight'), dims: [h.headDim] },
    { name: blk(i, 'attn_q_norm.weight'), dims: [h.headDim] },
    norm(i, 'ffn_norm', h),
    ...moeFfn(h, i),
  ]);
}

/** LLM_ARCH_GEMMA2: norms after attention and FFN as well; output tied to token_embd. */
export function gemma2Tensors(h: ModelHparams): TensorDims[] {
  return layers(h, (i) => [
    norm(i, 'attn_norm', h),
    ...attention(h, i),
    norm(i, 'post_attention_norm', h),
    norm(i, 'ffn_norm', h),
    ...denseFfn(h, i),
    norm(i, 'post_ffw_norm', h),
  ]);
}

/** LLM_ARCH_PHI3: fused attn_qkv and a fused gate+up projection of width 2*ff. */
export function phi3Tensors(h: ModelHparams): TensorDims[] {
  const q = h.heads * h.headDim;
  const kv = h.headsKv * h.headDim;
  return layers(h, (i) => [
    norm(i, 'attn_norm', h),
    { name: blk(i, 'attn_qkv.weight'), dims: [h.embd, q + 2 * kv] },
    { name: blk(i, 'attn_output.weight'), dims: [q, h.embd] },
    norm(i, 'ffn_norm', h),
    { name: blk(i, 'ffn_up.weight'), dims: [h.embd, 2 * h.ff] },
    { name: blk(i, 'ffn_down.weight'), dims: [h.ff, h.embd] },
  ]);
}

/**
 * LLM_ARCH_OPENAI_MOE (gpt-oss): biased q/k/v/o, per-head attention sinks, a post-attention norm
 * in place of ffn_norm, a biased router and biased experts (llama_model_openai_moe::load_arch_tensors).
 */
export function gptOssTensors(h: ModelHparams): TensorDims[] {
  const ff = h.expertFf ?? h.ff;
  const n = h.expertCount;
  return layers(h, (i) => [
    norm(i, 'attn_norm', h),
    norm(i, 'post_attention_norm', h),
    ...attention(h, i, true),
    { name: blk(i, 'attn_output.bias'), dims: [h.embd] },
    { name: blk(i, 'attn_sinks.weight'), dims: [h.heads] },
    { name: blk(i, 'ffn_gate_inp.weight'), dims: [h.embd, n] },
    { name: blk(i, 'ffn_gate_inp.bias'), dims: [n] },
    { name: blk(i, 'ffn_gate_exps.weight'), dims: [h.embd, ff, n] },
    { name: blk(i, 'ffn_gate_exps.bias'), dims: [ff, n] },
    { name: blk(i, 'ffn_up_exps.weight'), dims: [h.embd, ff, n] },
    { name: blk(i, 'ffn_up_exps.bias'), dims: [ff, n] },
    { name: blk(i, 'ffn_down_exps.weight'), dims: [ff, h.embd, n] },
    { name: blk(i, 'ffn_down_exps.bias'), dims: [h.embd, n] },
  ]);
}

/**
 * LLM_ARCH_GLM4_MOE (GLM-4.5): biased q/k/v, a post-attention norm in place of ffn_norm, dense
 * FFN in the first `denseLead` layers, then a sigmoid router with an expert-selection bias
 * (exp_probs_b), merged experts and `shared` shared experts of the expert width. The last
 * `nextn` of the `h.layers` blocks are the NextN/MTP layers: a full MoE block plus the nextn.*
 * projection, norms, embedding and head (llama_model_glm4_moe::load_arch_tensors).
 */
export function glm4moeTensors(h: ModelHparams, denseLead: number, shared: number, nextn: number): TensorDims[] {
  const ff = h.expertFf ?? h.ff;
  const n = h.expertCount;
  const ffSh = ff * shared;
  return layers(h, (i) => {
    const out: TensorDims[] = [norm(i, 'attn_norm', h), ...attention(h, i, true), norm(i, 'post_attention_norm', h)];
    if (i < denseLead) {
      out.push(...denseFfn(h, i));
    } else {
      out.push(
        { name: blk(i, 'ffn_gate_inp.weight'), dims: [h.embd, n] },
        { name: blk(i, 'exp_probs_b.bias'), dims: [n] },
        { name: blk(i, 'ffn_gate_exps.weight'), dims: [h.embd, ff, n] },
        { name: blk(i, 'ffn_down_exps.weight'), dims: [ff, h.embd, n] },
        { name: blk(i, 'ffn_up_exps.weight'), dims: [h.embd, ff, n] },
      );
      if (shared > 0) {
        out.push(
          { name: blk(i, 'ffn_gate_shexp.weight'), dims: [h.embd, ffSh] },
          { name: blk(i, 'ffn_down_shexp.weight'), dims: [ffSh, h.embd] },
          { name: blk(i, 'ffn_up_shexp.weight'), dims: [h.embd, ffSh] },
        );
      }
    }
    if (i >= h.layers - nextn) {
      out.push(
        { name: blk(i, 'nextn.eh_proj.weight'), dims: [2 * h.embd, h.embd] },
        { name: blk(i, 'nextn.embed_tokens.weight'), dims: [h.embd, h.vocabSize] },
        norm(i, 'nextn.enorm', h),
        norm(i, 'nextn.hnorm', h),
        { name: blk(i, 'nextn.shared_head_head.weight'), dims: [h.embd, h.vocabSize] },
        norm(i, 'nextn.shared_head_norm', h),
      );
    }
    return out;
  });
}

/**
 * LLM_ARCH_DEEPSEEK2 with multi-head latent attention (llama_model_deepseek2::load_arch_tensors):
 * per layer a query projection (attn_q without q compression, as in the Lite models), the joint
 * KV compression plus the rotary key (attn_kv_a_mqa: kvLora + rope wide) and its norm, and the
 * decompression split the way current conversions write it (DeepseekV2Model.modify_tensors):
 * attn_k_b {nope, kvLora, heads} (transposed for the absorbed query) and attn_v_b {kvLora,
 * vHead, heads}; dense FFN in the first `denseLead` layers, then a softmax router, merged experts
 * and `shared` shared experts of the expert width.
 */
export function deepseek2Tensors(
  h: ModelHparams,
  mla: { readonly kvLora: number; readonly nope: number; readonly rope: number; readonly vHead: number },
  denseLead: number,
  shared: number,
): TensorDims[] {
  const ff = h.expertFf ?? h.ff;
  const n = h.expertCount;
  const ffSh = ff * shared;
  return layers(h, (i) => {
    const out: TensorDims[] = [
      norm(i, 'attn_norm', h),
      { name: blk(i, 'attn_q.weight'), dims: [h.embd, h.heads * (mla.nope + mla.rope)] },
      { name: blk(i, 'attn_kv_a_mqa.weight'), dims: [h.embd, mla.kvLora + mla.rope] },
      { name: blk(i, 'attn_kv_a_norm.weight'), dims: [mla.kvLora] },
      { name: blk(i, 'attn_k_b.weight'), dims: [mla.nope, mla.kvLora, h.heads] },
      { name: blk(i, 'attn_v_b.weight'), dims: [mla.kvLora, mla.vHead, h.heads] },
      { name: blk(i, 'attn_output.weight'), dims: [h.heads * mla.vHead, h.embd] },
      norm(i, 'ffn_norm', h),
    ];
    if (i < denseLead) {
      out.push(...denseFfn(h, i));
    } else {
      out.push(
        { name: blk(i, 'ffn_gate_inp.weight'), dims: [h.embd, n] },
        { name: blk(i, 'ffn_gate_exps.weight'), dims: [h.embd, ff, n] },
        { name: blk(i, 'ffn_down_exps.weight'), dims: [ff, h.embd, n] },
        { name: blk(i, 'ffn_up_exps.weight'), dims: [h.embd, ff, n] },
        { name: blk(i, 'ffn_gate_shexp.weight'), dims: [h.embd, ffSh] },
        { name: blk(i, 'ffn_down_shexp.weight'), dims: [ffSh, h.embd] },
        { name: blk(i, 'ffn_up_shexp.weight'), dims: [h.embd, ffSh] },
      );
    }
    return out;
  });
}

/**
 * LLM_ARCH_QWEN3NEXT (llama_model_qwen3next::load_arch_tensors): every layer has attn_norm and a
 * post-attention norm, a softmax router over merged experts and one shared expert behind a
 * sigmoid gate (ffn_gate_inp_shexp, {embd, 1} as the converter writes it). Layers `il` with
 * (il + 1) % `interval` != 0 are linear-attention (gated delta net) layers: the fused q/k/v
 * projection (attn_qkv), the output gate z (attn_gate), the depthwise conv kernel, dt bias, A,
 * beta/alpha projection, gated norm and output projection; the others are full attention with
 * the query doubled for its output gate and per-head q/k norms. The last `nextn` blocks are
 * MTP layers (full attention + MoE) with nextn.eh_proj and their norms (no own embedding or head).
 */
export function qwen3nextTensors(
  h: ModelHparams,
  ssm: { readonly convKernel: number; readonly stateSize: number; readonly kHeads: number; readonly vHeads: number },
  interval: number,
  ffShexp: number,
  nextn: number,
): TensorDims[] {
  const ff = h.expertFf ?? h.ff;
  const n = h.expertCount;
  const keyDim = ssm.stateSize * ssm.kHeads;
  const valueDim = ssm.stateSize * ssm.vHeads;
  const nTrunk = h.layers - nextn;
  return layers(h, (i) => {
    const out: TensorDims[] = [norm(i, 'attn_norm', h), norm(i, 'post_attention_norm', h)];
    const recurrent = i < nTrunk && (i + 1) % interval !== 0;
    if (recurrent) {
      out.push(
        { name: blk(i, 'attn_qkv.weight'), dims: [h.embd, 2 * keyDim + valueDim] },
        { name: blk(i, 'attn_gate.weight'), dims: [h.embd, valueDim] },
        { name: blk(i, 'ssm_conv1d.weight'), dims: [ssm.convKernel, 2 * keyDim + valueDim] },
        { name: blk(i, 'ssm_dt.bias'), dims: [ssm.vHeads] },
        { name: blk(i, 'ssm_a'), dims: [ssm.vHeads] },
        { name: blk(i, 'ssm_ba.weight'), dims: [h.embd, 2 * ssm.vHeads] },
        { name: blk(i, 'ssm_norm.weight'), dims: [ssm.stateSize] },
        { name: blk(i, 'ssm_out.weight'), dims: [valueDim, h.embd] },
      );
    } else {
      const q = h.heads * h.headDim;
      const kv = h.headsKv * h.headDim;
      out.push(
        { name: blk(i, 'attn_q.weight'), dims: [h.embd, 2 * q] },
        { name: blk(i, 'attn_k.weight'), dims: [h.embd, kv] },
        { name: blk(i, 'attn_v.weight'), dims: [h.embd, kv] },
        { name: blk(i, 'attn_output.weight'), dims: [q, h.embd] },
        { name: blk(i, 'attn_q_norm.weight'), dims: [h.headDim] },
        { name: blk(i, 'attn_k_norm.weight'), dims: [h.headDim] },
      );
    }
    out.push(
      { name: blk(i, 'ffn_gate_inp.weight'), dims: [h.embd, n] },
      { name: blk(i, 'ffn_gate_exps.weight'), dims: [h.embd, ff, n] },
      { name: blk(i, 'ffn_up_exps.weight'), dims: [h.embd, ff, n] },
      { name: blk(i, 'ffn_down_exps.weight'), dims: [ff, h.embd, n] },
      { name: blk(i, 'ffn_gate_inp_shexp.weight'), dims: [h.embd, 1] },
      { name: blk(i, 'ffn_gate_shexp.weight'), dims: [h.embd, ffShexp] },
      { name: blk(i, 'ffn_up_shexp.weight'), dims: [h.embd, ffShexp] },
      { name: blk(i, 'ffn_down_shexp.weight'), dims: [ffShexp, h.embd] },
    );
    if (i >= nTrunk) {
      out.push(
        { name: blk(i, 'nextn.eh_proj.weight'), dims: [2 * h.embd, h.embd] },
        norm(i, 'nextn.enorm', h),
        norm(i, 'nextn.hnorm', h),
        norm(i, 'nextn.shared_head_norm', h),
      );
    }
    return out;
  });
}

/**
 * LLM_ARCH_GRANITE_HYBRID (llama_model_granite_hybrid::load_arch_tensors): layers in `attn` are
 * plain GQA attention (no biases, no rope tensors); the others are Mamba2 mixers: the joint input
 * projection ssm_in {embd, 2 d_inner + 2 n_group d_state + n_head}, the depthwise conv kernel and
 * its bias (mamba_conv_bias), dt bias, A and D ({1, n_head}: the converter unsqueezes them), the
 * grouped norm {d_inner / n_group, n_group} and ssm_out. Every layer has ffn_norm, a softmax router,
 * merged experts and one shared expert.
 */
export function graniteHybridTensors(
  h: ModelHparams,
  ssm: { readonly dConv: number; readonly dState: number; readonly nGroup: number; readonly nHead: number; readonly dInner: number },
  attn: readonly number[],
  ffShexp: number,
): TensorDims[] {
  const convDim = ssm.dInner + 2 * ssm.nGroup * ssm.dState;
  return layers(h, (i) => {
    const out: TensorDims[] = [norm(i, 'attn_norm', h)];
    if (attn.includes(i)) {
      out.push(...attention(h, i));
    } else {
      out.push(
        { name: blk(i, 'ssm_in.weight'), dims: [h.embd, 2 * ssm.dInner + 2 * ssm.nGroup * ssm.dState + ssm.nHead] },
        { name: blk(i, 'ssm_conv1d.weight'), dims: [ssm.dConv, convDim] },
        { name: blk(i, 'ssm_conv1d.bias'), dims: [convDim] },
        { name: blk(i, 'ssm_dt.bias'), dims: [ssm.nHead] },
        { name: blk(i, 'ssm_a'), dims: [1, ssm.nHead] },
        { name: blk(i, 'ssm_d'), dims: [1, ssm.nHead] },
        { name: blk(i, 'ssm_norm.weight'), dims: [ssm.dInner / ssm.nGroup, ssm.nGroup] },
        { name: blk(i, 'ssm_out.weight'), dims: [ssm.dInner, h.embd] },
      );
    }
    out.push(
      norm(i, 'ffn_norm', h),
      ...moeFfn(h, i),
      { name: blk(i, 'ffn_gate_shexp.weight'), dims: [h.embd, ffShexp] },
      { name: blk(i, 'ffn_up_shexp.weight'), dims: [h.embd, ffShexp] },
      { name: blk(i, 'ffn_down_shexp.weight'), dims: [ffShexp, h.embd] },
    );
    return out;
  });
}

/**
 * LLM_ARCH_LLAMA4 (text model): the llama3-style rope_freqs factors (one global tensor, loaded
 * in layer 0 and duplicated for the others), then per layer q/k/v/o without biases and, on each
 * interleave_moe_layer_step-th layer, a router, the routed experts and one shared expert as wide
 * as a routed one; the other layers have a dense FFN of `ff`.
 */
export function llama4Tensors(h: ModelHparams, moeStep: number): TensorDims[] {
  const out = embeddings(h);
  out.push({ name: 'rope_freqs.weight', dims: [h.headDim / 2] });
  const ff = h.expertFf ?? h.ff;
  for (let i = 0; i < h.layers; i++) {
    const isMoe = moeStep > 0 && (i + 1) % moeStep === 0;
    out.push(
      norm(i, 'attn_norm', h),
      ...attention(h, i),
      norm(i, 'ffn_norm', h),
      ...(isMoe
        ? [
          ...moeFfn(h, i),
          { name: blk(i, 'ffn_gate_shexp.weight'), dims: [h.embd, ff] },
          { name: blk(i, 'ffn_up_shexp.weight'), dims: [h.embd, ff] },
          { name: blk(i, 'ffn_down_shexp.weight'), dims: [ff, h.embd] },
        ]
        : denseFfn(h, i)),
    );
  }
  return out;
}
