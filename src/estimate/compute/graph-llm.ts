/**
 * The compute graphs of llama.cpp's decoder-only models, rebuilt tensor by tensor with the same
 * ops, shapes, and `ggml_build_forward_expand` order as llm_graph_context (src/llama-graph.cpp)
 * and the per-architecture graph constructors (src/models/<arch>.cpp): build_inp_embd,
 * build_attn_inp_kv(_iswa), build_norm, build_qkv, build_attn / build_attn_mha, build_ffn,
 * build_moe_ffn and the output head. The order matters because the allocator's peak depends on
 * which tensors are alive at the same time.
 *
 * Families: 'llama' (llama, mistral, mixtral, qwen2: optional q/k/v biases, dense or MoE FFN),
 * 'qwen3' (adds per-head q/k RMS norms), 'gemma2' (embedding scale, SWA, attention and final
 * soft-capping, post-norms, GELU), 'gemma3' (gemma2 with q/k norms and without attention
 * soft-capping), 'phi3' (fused qkv and gate/up), 'gpt-oss' (iswa attention with sinks, biased
 * MoE with softmax-after-top-k weights and swiglu_oai), 'glm4moe' (GLM-4.5: q/k/v biases, dense
 * leading layers, sigmoid-gated MoE with a selection bias plus a shared expert; the NextN layer
 * is not run), 'deepseek2' (multi-head latent attention with the absorbed k_b/v_b path over a
 * K-only cache, dense leading layers, softmax-gated MoE plus shared experts), 'qwen3next' (hybrid:
 * gated-delta-net layers over the recurrent state with the fused ggml_gated_delta_net, gated full
 * attention every 4th layer, MoE plus a sigmoid-gated shared expert), 'granitehybrid' (Granite-4.0-H:
 * Mamba2 layers over the recurrent state with ggml_ssm_scan, a few rope-less GQA layers, MoE plus a
 * shared expert, granite's scales). 'generic' uses the llama graph.
 */

import type { ExpertGating, ModelInfo, ModelTensor } from '../model-info.js';
import {
  F16, F32, I32, I64, FLAG_OUTPUT, Graph,
  add, addId, argsortTopK, clamp, concat, cont, cpyInto, div, external, flashAttnExt, gatedDeltaNet, getRows, glu, gluSplit,
  isContiguous, l2Norm, mul, mulMat, mulMatId, newTensor, pad, permute, repeat4d, reshape, rmsNorm, rope, scale, scaleInplace,
  setInput, setRows, softMax, ssmConv, ssmScan, sumRows, transpose, unary, view, type Tensor,
} from './ggml.js';

/** One KV cache (llama_kv_cache): its size and, per layer, its K/V tensors. */
export interface KvCacheGraph {
  /** Cells per stream (kv_size) = n_kv of the reserve graph (llama_kv_cache_context for a full cache). */
  readonly kvSize: number;
  readonly nStream: number;
  /** V stored transposed (no flash attention). */
  readonly vTrans: boolean;
  /** Hadamard rotation inputs (attn_rot_k / attn_rot_v): the rotation size, or 0. */
  readonly rotK: number;
  readonly rotV: number;
  /** K and V tensors by layer. */
  readonly layers: ReadonlyMap<number, { readonly k: Tensor; readonly v: Tensor }>;
  /** Width of the V rows when transposed (n_embd_v_gqa_max). */
  readonly nEmbdVGqaMax: number;
}

export interface GraphInputs {
  readonly model: ModelInfo;
  readonly nTokens: number;
  readonly nSeqs: number;
  readonly nOutputs: number;
  readonly flashAttn: boolean;
  readonly kvUnified: boolean;
  /** The non-SWA cache, and the SWA cache for models with sliding-window layers. */
  readonly base: KvCacheGraph;
  readonly swa: KvCacheGraph | undefined;
  /** Recurrent layers' conv (r) and delta-net (s) states, [n_embd_r | n_embd_s, rs size] (hybrid models). */
  readonly recurrent?: ReadonlyMap<number, { readonly r: Tensor; readonly s: Tensor }>;
  /** Device of each weight (index into the backends; the CPU is the last). */
  readonly weightDevice: (t: ModelTensor) => number;
  /** Called for tensors llama.cpp pins to a backend (cb() "norm" of a layer, attention without KV offload). */
  readonly pin?: (t: Tensor, il: number, reason: 'layer-norm' | 'kq-out') => void;
}

export interface BuiltGraph {
  readonly graph: Graph;
  readonly logits: Tensor;
}

/** Builds the graph of one reserve pass (llama_context::graph_reserve -> llama_model::build_graph). */
export function buildLlmGraph(p: GraphInputs): BuiltGraph {
  return new LlmGraphBuilder(p).build();
}

class LlmGraphBuilder {
  private readonly gf = new Graph();
  private readonly m: ModelInfo;
  private readonly weights = new Map<string, Tensor>();
  private readonly nTokens: number;

  // inputs, created by the build* methods in llama.cpp's order
  private inpPos!: Tensor;
  private inpOutIds!: Tensor;
  private attnBase!: AttnInputs;
  private attnSwa: AttnInputs | undefined;

  constructor(private readonly p: GraphInputs) {
    this.m = p.model;
    this.nTokens = p.nTokens;
  }

  /** The weight tensor `name` as a leaf on its device, or undefined when the model lacks it. */
  private w(name: string): Tensor | undefined {
    const cached = this.weights.get(name);
    if (cached) return cached;
    const mt = this.m.tensorByName.get(name);
    if (!mt) return undefined;
    const t = external(mt.type, mt.dims, this.p.weightDevice(mt), true);
    t.name = name;
    this.weights.set(name, t);
    return t;
  }

  private wl(il: number, name: string): Tensor | undefined {
    return this.w(`blk.${il}.${name}`);
  }

  private need(name: string): Tensor {
    const t = this.w(name);
    if (!t) throw new Error(`model has no tensor ${name}`);
    return t;
  }

  /** The output projection: output.weight, or token_embd duplicated onto the output device. */
  private outputWeight(): Tensor {
    const out = this.w('output.weight');
    if (out) return out;
    const te = this.m.tensorByName.get('token_embd.weight')!;
    const t = external(te.type, te.dims, this.p.weightDevice({ ...te, name: 'output.weight', layer: { kind: 'output' } }), true);
    t.name = 'output.weight (tied)';
    return t;
  }

  build(): BuiltGraph {
    const fam = this.m.family;
    if (fam === 'phi3') return this.buildPhi3();
    if (fam === 'gemma2' || fam === 'gemma3') return this.buildGemma();
    if (fam === 'gpt-oss') return this.buildGptOss();
    if (fam === 'glm4moe') return this.buildGlm4Moe();
    if (fam === 'deepseek2') return this.buildDeepseek2();
    if (fam === 'qwen3next') return this.buildQwen3Next();
    if (fam === 'granitehybrid') return this.buildGraniteHybrid();
    if (fam === 'llama4') return this.buildLlama4();
    return this.buildLlama(fam === 'qwen3');
  }

  // ---------------------------------------------------------------- inputs

  /** build_inp_embd */
  private buildInpEmbd(): Tensor {
    const tokens = setInput(newTensor(I32, [this.nTokens]));
    const embd = setInput(newTensor(F32, [this.m.nEmbd, this.nTokens]));
    const cur = getRows(this.need('token_embd.weight'), tokens);
    // ggml_build_forward_select visits both inputs (token and vector paths); the unused vector
    // input stays allocated for the whole graph.
    this.gf.expand(cur);
    this.gf.expand(embd);
    // granite's f_embedding_scale (the selected embeddings are contiguous)
    const out = this.m.scales?.embedding ? scale(cur) : cur;
    this.gf.expand(out);
    return out;
  }

  /** build_inp_pos */
  private buildInpPos(): Tensor {
    return setInput(newTensor(I32, [this.nTokens]));
  }

  /** build_inp_out_ids */
  private buildInpOutIds(): Tensor {
    return setInput(newTensor(I32, [this.p.nOutputs]));
  }

  /** build_attn_inp_kv / build_attn_inp_kv_iswa */
  private buildAttnInputs(): void {
    this.attnBase = this.kvInputs(this.p.base);
    if (this.p.swa) this.attnSwa = this.kvInputs(this.p.swa);
    // k_rot / v_rot inputs are created after the idxs and masks of both caches
    for (const [cache, inp] of [[this.p.base, this.attnBase], [this.p.swa, this.attnSwa]] as const) {
      if (!cache || !inp) continue;
      if (cache.rotK) inp.kRot = setInput(newTensor(F32, [cache.rotK, cache.rotK]));
      if (cache.rotV) inp.vRot = setInput(newTensor(F32, [cache.rotV, cache.rotV]));
    }
  }

  private kvInputs(cache: KvCacheGraph): AttnInputs {
    const kIdxs = setInput(newTensor(I64, [this.nTokens]));
    const vIdxs = setInput(newTensor(I64, [cache.vTrans ? this.nTokens * cache.nEmbdVGqaMax : this.nTokens]));
    // build_attn_inp_kq_mask: one row per token of a stream, F16 for flash attention
    const nStream = this.p.kvUnified ? 1 : this.p.nSeqs;
    const mask = setInput(newTensor(this.p.flashAttn ? F16 : F32, [cache.kvSize, this.nTokens / nStream, 1, nStream]));
    return { kIdxs, vIdxs, mask, kRot: undefined, vRot: undefined };
  }

  // ---------------------------------------------------------------- blocks

  /** build_norm (RMS) with an optional weight and bias. */
  private buildNorm(cur: Tensor, w: Tensor | undefined, b: Tensor | undefined, il: number): Tensor {
    cur = rmsNorm(cur);
    if (w || b) this.p.pin?.(cur, il, 'layer-norm');
    if (w) cur = mul(cur, w);
    if (b) cur = add(cur, b);
    return cur;
  }

  /** build_qkv */
  private buildQkv(il: number, cur: Tensor): [Tensor, Tensor, Tensor] {
    const hd = this.m.nEmbdHeadK;
    const nHead = this.m.nHead[il]!;
    const nHeadKv = this.m.nHeadKv[il]!;
    const wqkv = this.wl(il, 'attn_qkv.weight');
    if (wqkv) {
      let qkv = mulMat(wqkv, cur);
      const b = this.wl(il, 'attn_qkv.bias');
      if (b) qkv = add(qkv, b);
      // views into the fused result (their offsets do not matter for sizes)
      const row = qkv.type.typeSize * hd;
      const q = view(qkv, [hd, nHead, this.nTokens], [row, qkv.nb[1]]);
      const k = view(qkv, [hd, nHeadKv, this.nTokens], [row, qkv.nb[1]]);
      const v = view(qkv, [hd, nHeadKv, this.nTokens], [row, qkv.nb[1]]);
      return [q, k, v];
    }
    const proj = (name: 'q' | 'k' | 'v'): Tensor => {
      let t = mulMat(this.wl(il, `attn_${name}.weight`)!, cur);
      const b = this.wl(il, `attn_${name}.bias`);
      if (b) t = add(t, b);
      return t;
    };
    const q = proj('q');
    const k = proj('k');
    const v = proj('v');
    return [
      reshape(q, [hd, nHead, this.nTokens]),
      reshape(k, [hd, nHeadKv, this.nTokens]),
      reshape(v, [this.m.nEmbdHeadV, nHeadKv, this.nTokens]),
    ];
  }

  /** llama_mul_mat_hadamard */
  private hadamard(cur: Tensor, rot: Tensor): Tensor {
    const n = rot.ne[0];
    let res = isContiguous(cur) ? reshape(cur, [n, cur.nelements / n]) : cont(cur, [n, cur.nelements / n]);
    res = mulMat(rot, res);
    return reshape(res, cur.ne);
  }

  /** build_attn with a KV cache (plain or iswa), then the output projection. */
  private buildAttn(il: number, q: Tensor, k: Tensor, v: Tensor, iswa: boolean, project = true): Tensor {
    const isSwa = this.m.isSwa[il] === true && this.p.swa !== undefined;
    const cache = isSwa ? this.p.swa! : this.p.base;
    const inp = isSwa ? this.attnSwa! : this.attnBase;
    if (inp.kRot) {
      q = this.hadamard(q, inp.kRot);
      k = this.hadamard(k, inp.kRot);
    }
    if (inp.vRot) v = this.hadamard(v, inp.vRot);
    // the plain cache expands q, v, k (k last for rope fusion); the iswa one q, k, v
    this.gf.expand(q);
    if (iswa) {
      this.gf.expand(k);
      this.gf.expand(v);
    } else {
      this.gf.expand(v);
      this.gf.expand(k);
    }
    const layer = cache.layers.get(il)!;
    this.gf.expand(this.cpyK(cache, layer.k, k, inp.kIdxs));
    this.gf.expand(this.cpyV(cache, layer.v, v, inp.vIdxs));

    const sinks = this.wl(il, 'attn_sinks.weight');
    let cur = this.buildAttnMha(il, q, this.getK(cache, layer.k, il), this.getV(cache, layer.v, il), inp.mask, cache.kvSize, sinks);
    if (inp.vRot) cur = this.hadamard(cur, inp.vRot);
    if (!project) return cur;
    cur = mulMat(this.wl(il, 'attn_output.weight')!, cur);
    const bo = this.wl(il, 'attn_output.bias');
    if (bo) cur = add(cur, bo);
    return cur;
  }

  /** llama_kv_cache::get_k */
  private getK(cache: KvCacheGraph, k: Tensor, il: number): Tensor {
    const hd = this.m.nEmbdHeadK;
    const nHeadKv = this.m.nHeadKv[il]!;
    const row = (n: number): number => (n / k.type.blockSize) * k.type.typeSize;
    const gqa = k.ne[0];
    return view(k, [hd, nHeadKv, cache.kvSize, cache.nStream], [row(hd), row(gqa), row(gqa * cache.kvSize)]);
  }

  /** llama_kv_cache::get_v */
  private getV(cache: KvCacheGraph, v: Tensor, il: number): Tensor {
    const hd = this.m.nEmbdHeadV;
    const nHeadKv = this.m.nHeadKv[il]!;
    const row = (n: number): number => (n / v.type.blockSize) * v.type.typeSize;
    const gqa = v.ne[0];
    if (!cache.vTrans) {
      return view(v, [hd, nHeadKv, cache.kvSize, cache.nStream], [row(hd), row(gqa), row(gqa * cache.kvSize)]);
    }
    return view(v, [cache.kvSize, nHeadKv, hd, cache.nStream], [row(cache.kvSize * hd), row(cache.kvSize), row(cache.kvSize * gqa)]);
  }

  /** llama_kv_cache::cpy_k */
  private cpyK(cache: KvCacheGraph, k: Tensor, kCur: Tensor, idxs: Tensor): Tensor {
    const gqa = kCur.ne[0] * kCur.ne[1];
    const cur = view(kCur, [gqa, kCur.ne[2]], [kCur.nb[2]]);
    const dst = cache.nStream > 1 ? reshape(k, [gqa, cache.kvSize * cache.nStream]) : k;
    return setRows(dst, cur, idxs);
  }

  /** llama_kv_cache::cpy_v */
  private cpyV(cache: KvCacheGraph, v: Tensor, vCur: Tensor, idxs: Tensor): Tensor {
    const gqa = vCur.ne[0] * vCur.ne[1];
    const nTok = vCur.ne[2];
    if (!cache.vTrans) {
      const cur = view(vCur, [gqa, nTok], [vCur.nb[2]]);
      const dst = cache.nStream > 1 ? reshape(v, [gqa, cache.kvSize * cache.nStream]) : v;
      return setRows(dst, cur, idxs);
    }
    const rowBytes = (gqa / vCur.type.blockSize) * vCur.type.typeSize;
    let cur = rowBytes === vCur.nb[2] ? reshape(vCur, [gqa, nTok]) : cont(vCur, [gqa, nTok]);
    if (gqa < v.ne[0]) cur = pad(cur, v.ne[0] - gqa);
    const dst = reshape(v, [1, v.nelements]);
    cur = reshape(cur, [1, cur.nelements]);
    return setRows(dst, cur, idxs);
  }

  /** After the last layer's attention only the rows that give outputs go on (inp_out_ids), in the residual too. */
  private outputRows(cur: Tensor, residual: Tensor): [Tensor, Tensor] {
    return [getRows(cur, this.inpOutIds), getRows(residual, this.inpOutIds)];
  }

  /** build_attn_mha */
  private buildAttnMha(il: number, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, kvMax: number, sinks?: Tensor): Tensor {
    const nStream = k.ne[3];
    q = view(q, [q.ne[0], q.ne[1], q.ne[2] / nStream, nStream], [q.nb[1], q.nb[2], q.nb[3] / nStream]);
    q = permute(q, 0, 2, 1, 3);
    k = permute(k, 0, 2, 1, 3);
    v = permute(v, 0, 2, 1, 3);
    let cur: Tensor;
    if (this.p.flashAttn) {
      cur = flashAttnExt(q, k, v, mask, kvMax, sinks);
      cur = reshape(cur, [cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3]]);
    } else {
      let kq = mulMat(k, q);
      if (this.m.attnSoftcap) {
        kq = scale(kq);
        kq = unary(kq);
        kq = scale(kq);
      }
      kq = softMax(kq, mask, sinks);
      const kqv = mulMat(v, kq);
      cur = permute(kqv, 0, 2, 1, 3);
      cur = cont(cur, [cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3]]);
      // without KV offload, llama.cpp runs everything from the KV store to here on the CPU
      this.p.pin?.(cur, il, 'kq-out');
    }
    this.gf.expand(cur);
    return cur;
  }

  /**
   * build_ffn with a parallel gate (SiLU or GELU), or a fused gate+up when `gate` is absent;
   * `suffix` '_shexp' selects a MoE layer's shared expert.
   */
  private buildFfn(il: number, cur: Tensor, act: 'silu' | 'gelu', suffix = ''): Tensor {
    const up = this.wl(il, `ffn_up${suffix}.weight`)!;
    const gate = this.wl(il, `ffn_gate${suffix}.weight`);
    let tmp = mulMat(up, cur);
    const upB = this.wl(il, `ffn_up${suffix}.bias`);
    if (upB) tmp = add(tmp, upB);
    if (gate) {
      cur = mulMat(gate, cur);
      const gB = this.wl(il, `ffn_gate${suffix}.bias`);
      if (gB) cur = add(cur, gB);
      cur = gluSplit(cur, tmp);
    } else {
      // LLM_FFN_SWIGLU on one tensor holding gate and up (phi3)
      cur = act === 'silu' ? glu(tmp) : unary(tmp);
    }
    cur = mulMat(this.wl(il, `ffn_down${suffix}.weight`)!, cur);
    const dB = this.wl(il, `ffn_down${suffix}.bias`);
    if (dB) cur = add(cur, dB);
    return cur;
  }

  /**
   * build_moe_ffn: softmax gating with normalized weights (Mixtral, Qwen3-MoE), gpt-oss's
   * 'softmax-weight' gating (softmax over the selected experts' logits, not normalized) with a
   * router bias and per-expert biases (ggml_add_id), or sigmoid gating with an expert-selection
   * bias (exp_probs_b, GLM-4.5), optionally normalized and scaled.
   */
  private buildMoeFfn(
    il: number, cur: Tensor, gating: ExpertGating = 'softmax', normW = gating === 'softmax', wScale = 0, weightBeforeFfn = false,
  ): Tensor {
    const nEmbd = cur.ne[0];
    const nTok = cur.ne[1];
    const nExpert = this.m.nExpert;
    const nUsed = this.m.nExpertUsed;
    let logits = mulMat(this.wl(il, 'ffn_gate_inp.weight')!, cur);
    const gateInpB = this.wl(il, 'ffn_gate_inp.bias');
    if (gateInpB) logits = add(logits, gateInpB);
    let probs = gating === 'softmax' ? softMax(logits) : gating === 'sigmoid' ? unary(logits) : logits;
    // the selection bias picks the experts; the weights come from the unbiased probabilities
    const probsB = this.wl(il, 'exp_probs_b.bias');
    // llama4 selects by the raw logits (the sigmoid only weights the selected experts)
    const selectionProbs = weightBeforeFfn ? logits : probsB ? add(probs, probsB) : probs;
    const selected = argsortTopK(selectionProbs, nUsed);
    probs = reshape(probs, [1, nExpert, nTok]);
    let weights = getRows(probs, selected);
    if (gating === 'softmax-weight') {
      weights = reshape(weights, [nUsed, nTok]);
      weights = softMax(weights);
      weights = reshape(weights, [1, nUsed, nTok]);
    }
    if (normW) {
      weights = reshape(weights, [nUsed, nTok]);
      let wsum = sumRows(weights);
      wsum = clamp(wsum);
      weights = div(weights, wsum);
      weights = reshape(weights, [1, nUsed, nTok]);
    }
    if (wScale !== 0 && wScale !== 1) weights = scale(weights);
    this.gf.expand(weights);

    cur = reshape(cur, [nEmbd, 1, nTok]);
    // llama4: the input, repeated per selected expert, is weighted before the experts
    if (weightBeforeFfn) cur = mul(repeat4d(cur, [nEmbd, nUsed, nTok, 1]), weights);
    let up = mulMatId(this.wl(il, 'ffn_up_exps.weight')!, cur, selected);
    const upB = this.wl(il, 'ffn_up_exps.bias');
    if (upB) up = addId(up, upB, selected);
    const gateW = this.wl(il, 'ffn_gate_exps.weight');
    let h = gateW ? mulMatId(gateW, cur, selected) : up;
    const gateB = this.wl(il, 'ffn_gate_exps.bias');
    if (gateB) h = addId(h, gateB, selected);
    // swiglu / swiglu_oai: one GLU op on gate and up
    h = gateW ? gluSplit(h, up) : unary(h);
    let experts = mulMatId(this.wl(il, 'ffn_down_exps.weight')!, h, selected);
    const downB = this.wl(il, 'ffn_down_exps.bias');
    if (downB) experts = addId(experts, downB, selected);
    if (!weightBeforeFfn) experts = mul(experts, weights);
    this.gf.expand(experts);

    const views: Tensor[] = [];
    for (let i = 0; i < nUsed; i++) {
      const v = view(experts, [nEmbd, nTok], [experts.nb[2]]);
      views.push(v);
      this.gf.expand(v);
    }
    let out = views[0]!;
    for (let i = 1; i < nUsed; i++) {
      out = add(out, views[i]!);
      this.gf.expand(out);
    }
    if (nUsed === 1) out = cont(out);
    return out;
  }

  /** Output norm, projection (and gemma's final soft-cap); marks the outputs. */
  private buildOutput(inpL: Tensor, softcap: boolean): BuiltGraph {
    let cur = this.buildNorm(inpL, this.w('output_norm.weight'), this.w('output_norm.bias'), -1);
    const embd = cur;
    cur = mulMat(this.outputWeight(), cur);
    const ob = this.w('output.bias');
    if (ob) cur = add(cur, ob);
    if (softcap) {
      cur = scale(cur);
      cur = unary(cur);
      cur = scale(cur);
    }
    this.gf.expand(cur);
    // llm_graph_result::set_outputs: outputs are never freed nor reused in place
    embd.flags |= FLAG_OUTPUT;
    cur.flags |= FLAG_OUTPUT;
    return { graph: this.gf, logits: cur };
  }

  // ---------------------------------------------------------------- families

  /** src/models/llama.cpp, qwen2.cpp, qwen3.cpp, qwen3moe.cpp */
  private buildLlama(qkNorm: boolean): BuiltGraph {
    let inpL = this.buildInpEmbd();
    this.inpPos = this.buildInpPos();
    this.buildAttnInputs();
    this.inpOutIds = this.buildInpOutIds();
    const last = this.m.nLayer - 1;
    for (let il = 0; il < this.m.nLayer; il++) {
      let inpSA = inpL;
      let cur = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), undefined, il);
      let [q, k, v] = this.buildQkv(il, cur);
      const factors = this.w('rope_freqs.weight');
      if (qkNorm) {
        q = this.buildNorm(q, this.wl(il, 'attn_q_norm.weight'), undefined, il);
        q = rope(q, this.inpPos);
        k = this.buildNorm(k, this.wl(il, 'attn_k_norm.weight'), undefined, il);
        k = rope(k, this.inpPos);
      } else {
        q = rope(q, this.inpPos, factors);
        k = rope(k, this.inpPos, factors);
      }
      cur = this.buildAttn(il, q, k, v, false);
      if (il === last) [cur, inpSA] = this.outputRows(cur, inpSA);
      const ffnInp = add(cur, inpSA);
      cur = this.buildNorm(ffnInp, this.wl(il, 'ffn_norm.weight'), undefined, il);
      cur = this.wl(il, 'ffn_gate_inp.weight') ? this.buildMoeFfn(il, cur) : this.buildFfn(il, cur, 'silu');
      cur = add(cur, ffnInp);
      inpL = cur;
    }
    return this.buildOutput(inpL, false);
  }

  /**
   * src/models/llama4.cpp: chunked-attention layers with rope and q/k L2 (RMS) norms, every
   * n_no_rope_layer_step-th layer global without rope, its query scaled by the temperature-tuning
   * input; MoE with the sigmoid weights applied to the input before the experts, plus a shared
   * expert (layers without a router: a dense FFN).
   */
  private buildLlama4(): BuiltGraph {
    const m = this.m;
    let inpL = this.buildInpEmbd();
    this.inpPos = this.buildInpPos();
    // build_inp_attn_scale: 1 x 1 x n_tokens for broadcasting
    const attnScale = setInput(newTensor(F32, [1, 1, this.nTokens]));
    this.buildAttnInputs();
    this.inpOutIds = this.buildInpOutIds();
    const iswa = this.p.swa !== undefined;
    // without SWA (sliding_window 0, MobileLLM) every layer uses rope
    const noRopeStep = m.swaType === 'none' ? m.nLayer : 4;
    // hparams.use_kq_norm: all but the 128-expert Maverick
    const qkNorm = m.nExpert !== 128;
    const factors = this.w('rope_freqs.weight');
    const last = m.nLayer - 1;
    for (let il = 0; il < m.nLayer; il++) {
      let inpSA = inpL;
      const useRope = noRopeStep > 0 && (il + 1) % noRopeStep !== 0;
      let cur = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), undefined, il);
      let [q, k, v] = this.buildQkv(il, cur);
      if (useRope) {
        q = rope(q, this.inpPos, factors);
        k = rope(k, this.inpPos, factors);
      } else {
        q = mul(q, attnScale);
      }
      if (useRope && qkNorm) {
        q = rmsNorm(q);
        k = rmsNorm(k);
      }
      cur = this.buildAttn(il, q, k, v, iswa);
      if (il === last) [cur, inpSA] = this.outputRows(cur, inpSA);
      const ffnInp = add(cur, inpSA);
      if (this.wl(il, 'ffn_gate_inp.weight')) {
        const normed = this.buildNorm(ffnInp, this.wl(il, 'ffn_norm.weight'), undefined, il);
        const moeOut = this.buildMoeFfn(il, normed, 'sigmoid', false, m.expertWeightsScale, true);
        const shexp = this.buildFfn(il, normed, 'silu', '_shexp');
        cur = add(moeOut, shexp);
      } else {
        cur = this.buildNorm(ffnInp, this.wl(il, 'ffn_norm.weight'), undefined, il);
        cur = this.buildFfn(il, cur, 'silu');
      }
      cur = add(cur, ffnInp);
      inpL = cur;
    }
    return this.buildOutput(inpL, false);
  }

  /** src/models/gemma2.cpp and gemma3.cpp */
  private buildGemma(): BuiltGraph {
    const gemma3 = this.m.family === 'gemma3';
    let inpL = this.buildInpEmbd();
    inpL = scale(inpL);
    this.inpPos = this.buildInpPos();
    this.buildAttnInputs();
    this.inpOutIds = this.buildInpOutIds();
    const iswa = this.p.swa !== undefined;
    const last = this.m.nLayer - 1;
    for (let il = 0; il < this.m.nLayer; il++) {
      let cur = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), undefined, il);
      let [q, k, v] = this.buildQkv(il, cur);
      if (gemma3) {
        q = this.buildNorm(q, this.wl(il, 'attn_q_norm.weight'), undefined, il);
        q = rope(q, this.inpPos);
        k = this.buildNorm(k, this.wl(il, 'attn_k_norm.weight'), undefined, il);
        k = rope(k, this.inpPos);
      } else {
        q = rope(q, this.inpPos);
        k = rope(k, this.inpPos);
      }
      q = scale(q);
      cur = this.buildAttn(il, q, k, v, iswa);
      if (il === last) [cur, inpL] = this.outputRows(cur, inpL);
      cur = this.buildNorm(cur, this.wl(il, 'post_attention_norm.weight'), undefined, il);
      const saOut = add(cur, inpL);
      cur = this.buildNorm(saOut, this.wl(il, 'ffn_norm.weight'), undefined, il);
      cur = this.buildFfn(il, cur, 'gelu');
      cur = this.buildNorm(cur, this.wl(il, 'post_ffw_norm.weight'), undefined, -1);
      cur = add(cur, saOut);
      inpL = cur;
    }
    return this.buildOutput(inpL, gemma3 ? this.m.finalSoftcap : true);
  }

  /** src/models/openai-moe.cpp (gpt-oss) */
  private buildGptOss(): BuiltGraph {
    let inpL = this.buildInpEmbd();
    this.inpPos = this.buildInpPos();
    this.buildAttnInputs();
    this.inpOutIds = this.buildInpOutIds();
    const iswa = this.p.swa !== undefined;
    for (let il = 0; il < this.m.nLayer; il++) {
      const inpSA = inpL;
      let cur = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), undefined, il);
      let [q, k, v] = this.buildQkv(il, cur);
      q = rope(q, this.inpPos);
      k = rope(k, this.inpPos);
      cur = this.buildAttn(il, q, k, v, iswa);
      // embeddings_nextn_masked is off: the output rows are picked after the last layer
      const ffnInp = add(cur, inpSA);
      cur = this.buildNorm(ffnInp, this.wl(il, 'post_attention_norm.weight'), undefined, il);
      cur = this.buildMoeFfn(il, cur, 'softmax-weight', false);
      cur = add(cur, ffnInp);
      inpL = cur;
    }
    // res->t_h_nextn: the last layer's output is marked as a graph output (set_outputs)
    inpL.flags |= FLAG_OUTPUT;
    inpL = getRows(inpL, this.inpOutIds);
    return this.buildOutput(inpL, false);
  }

  /**
   * The FFN of GLM-4.5 and DeepSeek-V2/V3: dense in the first leading_dense_block_count layers, then the routed
   * experts plus the shared expert(s), added.
   */
  private buildLeadDenseOrSharedMoe(il: number, cur: Tensor): Tensor {
    const m = this.m;
    if (il < m.nLayerDenseLead) return this.buildFfn(il, cur, 'silu');
    const routed = this.buildMoeFfn(il, cur, m.expertGating, m.expertWeightsNorm, m.expertWeightsScale);
    const shared = this.buildFfn(il, cur, 'silu', '_shexp');
    return add(routed, shared);
  }

  /** src/models/glm4-moe.cpp (the main graph; the NextN/MTP layers are not run) */
  private buildGlm4Moe(): BuiltGraph {
    const m = this.m;
    let inpL = this.buildInpEmbd();
    this.inpPos = this.buildInpPos();
    this.buildAttnInputs();
    this.inpOutIds = this.buildInpOutIds();
    const nLayer = m.nLayer - m.nLayerNextn;
    for (let il = 0; il < nLayer; il++) {
      let inpSA = inpL;
      let cur = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), undefined, il);
      let [q, k, v] = this.buildQkv(il, cur);
      // q/k norms only in some variants (GLM-4.5 355B); rope on the first n_rot dims of each head
      const qNorm = this.wl(il, 'attn_q_norm.weight');
      if (qNorm) q = this.buildNorm(q, qNorm, undefined, il);
      const kNorm = this.wl(il, 'attn_k_norm.weight');
      if (kNorm) k = this.buildNorm(k, kNorm, undefined, il);
      q = rope(q, this.inpPos);
      k = rope(k, this.inpPos);
      cur = this.buildAttn(il, q, k, v, false);
      if (il === nLayer - 1) [cur, inpSA] = this.outputRows(cur, inpSA);
      const ffnInp = add(cur, inpSA);
      cur = this.buildNorm(ffnInp, this.wl(il, 'post_attention_norm.weight'), undefined, il);
      cur = this.buildLeadDenseOrSharedMoe(il, cur);
      cur = add(cur, ffnInp);
      inpL = cur;
    }
    // the normed output is t_h_nextn and t_embd at once (already an output of buildOutput)
    return this.buildOutput(inpL, false);
  }

  /**
   * src/models/deepseek2.cpp with MLA (hparams.is_mla(): split attn_k_b / attn_v_b). The query is
   * projected directly (attn_q, the Lite models) or through its low-rank compression (attn_q_a,
   * attn_q_a_norm, attn_q_b); its no-rope part is absorbed into the latent space by k_b, so
   * attention is MQA over the cached latent + rotary key, and v_b decompresses its output.
   */
  private buildDeepseek2(): BuiltGraph {
    const m = this.m;
    const mla = m.mla!;
    const nTok = this.nTokens;
    const nHeadKMla = mla.nEmbdHeadKMla;
    const nRope = mla.nRot;
    const nNope = nHeadKMla - nRope;
    const kvLora = mla.kvLoraRank;
    let inpL = this.buildInpEmbd();
    this.inpPos = this.buildInpPos();
    this.attnBase = this.kInputs(this.p.base);
    this.inpOutIds = this.buildInpOutIds();
    for (let il = 0; il < m.nLayer; il++) {
      let inpSA = inpL;
      let cur = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), undefined, il);
      const nHead = m.nHead[il]!;
      let q: Tensor;
      const wq = this.wl(il, 'attn_q.weight');
      if (wq) {
        q = mulMat(wq, cur);
      } else {
        q = mulMat(this.wl(il, 'attn_q_a.weight')!, cur);
        q = this.buildNorm(q, this.wl(il, 'attn_q_a_norm.weight'), undefined, il);
        q = mulMat(this.wl(il, 'attn_q_b.weight')!, q);
      }
      q = reshape(q, [nHeadKMla, nHead, nTok]);
      const kvCmprPe = mulMat(this.wl(il, 'attn_kv_a_mqa.weight')!, cur);
      const rowKv = kvCmprPe.nb[1];
      let kvCmpr = view(kvCmprPe, [kvLora, nTok], [rowKv]);
      let kPe = view(kvCmprPe, [nRope, 1, nTok], [rowKv, rowKv]);
      kPe = rope(kPe, this.inpPos);
      kvCmpr = this.buildNorm(kvCmpr, this.wl(il, 'attn_kv_a_norm.weight'), undefined, il);

      let qNope = view(q, [nNope, nHead, nTok], [q.nb[1], q.nb[2]]);
      let qPe = view(q, [nRope, nHead, nTok], [q.nb[1], q.nb[2]]);
      qPe = rope(qPe, this.inpPos);
      qNope = permute(qNope, 0, 2, 1, 3);
      let qAbsorbed = mulMat(this.wl(il, 'attn_k_b.weight')!, qNope);
      qAbsorbed = permute(qAbsorbed, 0, 2, 1, 3);
      const qCur = concat(qAbsorbed, qPe, 0);
      kvCmpr = reshape(kvCmpr, [kvLora, 1, nTok]);
      const kCur = concat(kvCmpr, kPe, 0);
      const vCur = kvCmpr;

      cur = this.buildAttnMla(il, qCur, kCur, vCur, this.wl(il, 'attn_v_b.weight')!);
      if (il === m.nLayer - 1) [cur, inpSA] = this.outputRows(cur, inpSA);
      const ffnInp = add(cur, inpSA);
      cur = this.buildNorm(ffnInp, this.wl(il, 'ffn_norm.weight'), undefined, il);
      cur = this.buildLeadDenseOrSharedMoe(il, cur);
      cur = add(cur, ffnInp);
      inpL = cur;
    }
    return this.buildOutput(inpL, false);
  }

  /** build_attn_inp_k: K indices and the mask, no V indices, no rotation. */
  private kInputs(cache: KvCacheGraph): AttnInputs {
    const kIdxs = setInput(newTensor(I64, [this.nTokens]));
    const nStream = this.p.kvUnified ? 1 : this.p.nSeqs;
    const mask = setInput(newTensor(this.p.flashAttn ? F16 : F32, [cache.kvSize, this.nTokens / nStream, 1, nStream]));
    return { kIdxs, vIdxs: kIdxs, mask, kRot: undefined, vRot: undefined };
  }

  /**
   * build_attn(llm_graph_input_attn_k) with build_attn_mha's v_mla: K-only cache, V as a view of
   * the first kv_lora_rank values of each cached K row, the output decompressed by v_b.
   */
  private buildAttnMla(il: number, qCur: Tensor, kCur: Tensor, vCur: Tensor, vMla: Tensor): Tensor {
    const cache = this.p.base;
    const inp = this.attnBase;
    this.gf.expand(qCur);
    this.gf.expand(vCur);
    this.gf.expand(kCur);
    const layer = cache.layers.get(il)!;
    this.gf.expand(this.cpyK(cache, layer.k, kCur, inp.kIdxs));

    let k = this.getK(cache, layer.k, il);
    let v = view(k, [vCur.ne[0], k.ne[1], k.ne[2], k.ne[3]], [k.nb[1], k.nb[2], k.nb[3]]);
    const nStream = k.ne[3];
    let q = view(qCur, [qCur.ne[0], qCur.ne[1], qCur.ne[2] / nStream, nStream], [qCur.nb[1], qCur.nb[2], qCur.nb[3] / nStream]);
    q = permute(q, 0, 2, 1, 3);
    k = permute(k, 0, 2, 1, 3);
    v = permute(v, 0, 2, 1, 3);
    let cur: Tensor;
    if (this.p.flashAttn) {
      // V is a view of K: never transposed
      cur = flashAttnExt(q, k, v, inp.mask, cache.kvSize);
      cur = permute(cur, 0, 2, 1, 3);
      cur = mulMat(vMla, cur);
      cur = permute(cur, 0, 2, 1, 3);
      cur = cont(cur);
      cur = reshape(cur, [cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3]]);
    } else {
      let kq = mulMat(k, q);
      kq = softMax(kq, inp.mask);
      // v is not transposed (nb[1] <= nb[2]): "avoid this branch" in llama.cpp, taken here
      v = cont(transpose(v));
      let kqv = mulMat(v, kq);
      kqv = mulMat(vMla, kqv);
      cur = permute(kqv, 0, 2, 1, 3);
      cur = cont(cur, [cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3]]);
      this.p.pin?.(cur, il, 'kq-out');
    }
    this.gf.expand(cur);
    return mulMat(this.wl(il, 'attn_output.weight')!, cur);
  }

  /**
   * src/models/qwen3next.cpp with the hybrid memory (build_inp_mem_hybrid): gated-delta-net layers
   * (delta-net-base.cpp: build_conv_state, build_rs, the fused ggml_gated_delta_net that
   * resolve_fused_ops keeps on the CPU) and full gated-attention layers, every layer with a
   * softmax-routed MoE plus a sigmoid-gated shared expert. The NextN/MTP layer is not run; the
   * normed last hidden state (t_h_nextn) is an output and the output rows are picked after it.
   */
  private buildQwen3Next(): BuiltGraph {
    const m = this.m;
    const nTrunk = m.nLayer - m.nLayerNextn;
    let inpL = this.buildInpEmbd();
    // build_rs_inp_impl: s_copy over the rs cells, split into this ubatch's sequences and the rest
    const nRs = this.p.recurrent?.values().next().value?.r.ne[1] ?? Math.max(1, this.p.nSeqs);
    const sCopy = setInput(newTensor(I32, [nRs]));
    const rsInp = {
      main: view(sCopy, [this.p.nSeqs], []),
      extra: view(sCopy, [nRs - this.p.nSeqs], []),
      nRs,
    };
    this.buildAttnInputs();
    this.inpPos = this.buildInpPos();
    this.inpOutIds = this.buildInpOutIds();
    for (let il = 0; il < nTrunk; il++) {
      const inpSA = inpL;
      let cur = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), undefined, il);
      this.gf.expand(cur);
      cur = m.recurrent?.isRecurrent[il] ? this.buildGdnLayer(il, cur, rsInp) : this.buildGatedAttn(il, cur);
      cur = add(cur, inpSA);
      const ffnResidual = cur;
      const post = this.buildNorm(cur, this.wl(il, 'post_attention_norm.weight'), undefined, il);
      const routed = this.buildMoeFfn(il, post, m.expertGating, true, m.expertWeightsScale);
      let shared = this.buildFfn(il, post, 'silu', '_shexp');
      let sharedGate = mulMat(this.wl(il, 'ffn_gate_inp_shexp.weight')!, post);
      sharedGate = unary(sharedGate);
      shared = mul(shared, sharedGate);
      cur = add(routed, shared);
      cur = add(cur, ffnResidual);
      inpL = cur;
    }
    let cur = this.buildNorm(inpL, this.w('output_norm.weight'), undefined, -1);
    // t_h_nextn and t_embd are graph outputs (set_outputs)
    cur.flags |= FLAG_OUTPUT;
    cur = getRows(cur, this.inpOutIds);
    cur.flags |= FLAG_OUTPUT;
    const logits = mulMat(this.outputWeight(), cur);
    this.gf.expand(logits);
    logits.flags |= FLAG_OUTPUT;
    return { graph: this.gf, logits };
  }

  /** llm_graph_context::build_rs: zero one state (in place), gather this ubatch's states, copy the rest. */
  private buildRs(
    states: Tensor, stateSize: number, rs: { main: Tensor; extra: Tensor; nRs: number },
    getStateRows: (st: Tensor, ids: Tensor) => Tensor = getRows,
  ): Tensor {
    const nSeqs = this.p.nSeqs;
    const st = reshape(states, [stateSize, states.ne[1]]);
    this.gf.expand(scaleInplace(view(st, [stateSize], [])));
    const out = getStateRows(st, rs.main);
    this.gf.expand(out);
    const extra = getRows(st, rs.extra);
    this.gf.expand(cpyInto(extra, view(states, [stateSize, rs.nRs - nSeqs], [states.nb[1]])));
    return out;
  }

  /** build_inp_mem_hybrid's recurrent part (build_rs_inp_impl): s_copy over the rs cells, split into this ubatch's sequences and the rest. */
  private buildRsInp(): { main: Tensor; extra: Tensor; nRs: number } {
    const nRs = this.p.recurrent?.values().next().value?.r.ne[1] ?? Math.max(1, this.p.nSeqs);
    const sCopy = setInput(newTensor(I32, [nRs]));
    return { main: view(sCopy, [this.p.nSeqs], []), extra: view(sCopy, [nRs - this.p.nSeqs], []), nRs };
  }

  /**
   * src/models/granite-hybrid.cpp: Mamba2 layers (build_mamba2_layer) and rope-less attention
   * layers, each followed by the MoE FFN with a shared expert; granite's residual scale around
   * both and the logit scale on the output.
   */
  private buildGraniteHybrid(): BuiltGraph {
    const m = this.m;
    const residual = m.scales?.residual ?? 0;
    let inpL = this.buildInpEmbd();
    const rs = this.buildRsInp();
    this.buildAttnInputs();
    this.inpOutIds = this.buildInpOutIds();
    // positions only with rope (Bamba-style conversions; Granite-4.0-H is position-free)
    if (!m.noRope) this.inpPos = this.buildInpPos();
    const last = m.nLayer - 1;
    for (let il = 0; il < m.nLayer; il++) {
      let inpSA = inpL;
      let cur = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), undefined, il);
      if (m.recurrent?.isRecurrent[il]) {
        cur = this.buildMamba2Layer(il, cur, rs);
      } else {
        let [q, k, v] = this.buildQkv(il, cur);
        if (!m.noRope) {
          q = rope(q, this.inpPos, this.w('rope_freqs.weight'));
          k = rope(k, this.inpPos, this.w('rope_freqs.weight'));
        }
        cur = this.buildAttn(il, q, k, v, false);
      }
      if (il === last) [cur, inpSA] = this.outputRows(cur, inpSA);
      // build_layer_ffn
      if (residual) cur = scale(cur);
      const ffnInp = add(cur, inpSA);
      cur = this.buildNorm(ffnInp, this.wl(il, 'ffn_norm.weight'), undefined, il);
      if (this.wl(il, 'ffn_gate_inp.weight')) {
        const moe = this.buildMoeFfn(il, cur, 'softmax', true, m.expertWeightsScale);
        cur = this.wl(il, 'ffn_up_shexp.weight') ? add(moe, this.buildFfn(il, cur, 'silu', '_shexp')) : moe;
      } else {
        cur = this.buildFfn(il, cur, 'silu');
      }
      if (residual) cur = scale(cur);
      cur = add(cur, ffnInp);
      inpL = cur;
    }
    const embd = this.buildNorm(inpL, this.w('output_norm.weight'), undefined, -1);
    let logits = mulMat(this.outputWeight(), embd);
    if (m.scales?.logit) logits = scale(logits);
    this.gf.expand(logits);
    embd.flags |= FLAG_OUTPUT;
    logits.flags |= FLAG_OUTPUT;
    return { graph: this.gf, logits };
  }

  /** llm_build_mamba_base::build_mamba2_layer (K = 1: no rollback snapshots). */
  private buildMamba2Layer(il: number, cur: Tensor, rs: { main: Tensor; extra: Tensor; nRs: number }): Tensor {
    const rec = this.m.recurrent!;
    const nSeqs = this.p.nSeqs;
    const nSeqTok = this.nTokens / nSeqs;
    const dConv = rec.dConv;
    const dInner = rec.dInner;
    const dState = rec.dState;
    const nHead = rec.dtRank;
    const headDim = dInner / nHead;
    const nGroup = rec.nGroup;
    const convDim = dInner + 2 * nGroup * dState;
    const { r: rAll, s: sAll } = this.p.recurrent!.get(il)!;
    const stateSlots = sAll.ne[1];

    let conv = this.buildRs(rAll, rec.nEmbdR, rs);
    conv = reshape(conv, [dConv - 1, convDim, nSeqs]);

    let zxBCdt = mulMat(this.wl(il, 'ssm_in.weight')!, cur);
    zxBCdt = reshape(zxBCdt, [zxBCdt.ne[0], nSeqTok, nSeqs]);
    const e = zxBCdt.type.typeSize;
    const z = view(zxBCdt, [headDim, nHead, nSeqTok, nSeqs], [headDim * e, zxBCdt.nb[1], zxBCdt.nb[2]]);
    let xBC = view(zxBCdt, [convDim, nSeqTok, nSeqs], [zxBCdt.nb[1], zxBCdt.nb[2]]);
    let dt = view(zxBCdt, [nHead, nSeqTok, nSeqs], [zxBCdt.nb[1], zxBCdt.nb[2]]);

    // conv
    const convX = concat(conv, transpose(xBC), 0);
    const lastConv = view(convX, [dConv - 1, convDim, nSeqs], [convX.nb[1], convX.nb[2]]);
    this.gf.expand(cpyInto(lastConv, view(rAll, [(dConv - 1) * convDim, nSeqs], [rAll.nb[1]])));
    xBC = ssmConv(convX, this.wl(il, 'ssm_conv1d.weight')!);
    const convB = this.wl(il, 'ssm_conv1d.bias');
    if (convB) xBC = add(xBC, convB);
    xBC = unary(xBC);

    // ssm
    const f = xBC.type.typeSize;
    const x = view(xBC, [headDim, nHead, nSeqTok, nSeqs], [headDim * f, xBC.nb[1], xBC.nb[2]]);
    const B = view(xBC, [dState, nGroup, nSeqTok, nSeqs], [dState * f, xBC.nb[1], xBC.nb[2]]);
    const C = view(xBC, [dState, nGroup, nSeqTok, nSeqs], [dState * f, xBC.nb[1], xBC.nb[2]]);
    dt = add(cont(dt), this.wl(il, 'ssm_dt.bias')!);
    const A = this.wl(il, 'ssm_a')!;
    const ySsm = this.buildRs(sAll, rec.nEmbdS, rs, (states, ids) => {
      const ssm = reshape(states, [dState, headDim, nHead, stateSlots]);
      return ssmScan(ssm, x, dt, A, B, C, ids);
    });
    const D = dState * dInner;
    const yRow = D * ySsm.type.typeSize;
    this.gf.expand(cpyInto(
      view(ySsm, [D, nSeqs, 1], [yRow, yRow * nSeqs]),
      view(sAll, [D, nSeqs, 1], [sAll.nb[1], sAll.nb[1] * stateSlots]),
    ));
    const xRow = x.nb[1];
    let y = view(ySsm, [headDim, nHead, nSeqTok, nSeqs], [xRow, nHead * xRow, nSeqTok * nHead * xRow]);
    y = add(y, mul(x, this.wl(il, 'ssm_d')!));
    y = gluSplit(cont(z), y);
    const ssmNorm = this.wl(il, 'ssm_norm.weight');
    if (ssmNorm) {
      y = reshape(y, [dInner / nGroup, nGroup, nSeqTok, nSeqs]);
      y = this.buildNorm(y, ssmNorm, undefined, il);
    }
    y = reshape(y, [dInner, nSeqTok * nSeqs]);
    return mulMat(this.wl(il, 'ssm_out.weight')!, y);
  }

  /** llama_model_qwen3next::graph::build_layer_attn_linear with the fused gated delta net. */
  private buildGdnLayer(il: number, input: Tensor, rs: { main: Tensor; extra: Tensor; nRs: number }): Tensor {
    const rec = this.m.recurrent!;
    const nSeqs = this.p.nSeqs;
    const nSeqTok = this.nTokens / nSeqs;
    const headK = rec.dState;
    const nK = rec.nGroup;
    const nV = rec.dtRank;
    const headV = rec.dInner / nV;
    const { r: rAll, s: sAll } = this.p.recurrent!.get(il)!;

    // build_qkvz (the optimized path: attn_qkv + attn_gate)
    let qkvMixed = mulMat(this.wl(il, 'attn_qkv.weight')!, input);
    qkvMixed = reshape(qkvMixed, [qkvMixed.ne[0], nSeqTok, nSeqs]);
    const z = mulMat(this.wl(il, 'attn_gate.weight')!, input);

    const mixedBa = mulMat(this.wl(il, 'ssm_ba.weight')!, input);
    const ba = reshape(mixedBa, [(2 * nV) / nK, nK, nSeqTok, nSeqs]);
    const half = nV / nK;
    const bView = view(ba, [half, nK, nSeqTok, nSeqs], [ba.nb[1], ba.nb[2], ba.nb[3]]);
    const aView = view(ba, [half, nK, nSeqTok, nSeqs], [ba.nb[1], ba.nb[2], ba.nb[3]]);
    let beta = unary(cont(bView));
    const alpha = cont(aView, [nV, nSeqTok, nSeqs]);
    let gate = mul(unary(add(alpha, this.wl(il, 'ssm_dt.bias')!)), this.wl(il, 'ssm_a')!);
    beta = reshape(beta, [1, nV, nSeqTok, nSeqs]);
    gate = reshape(gate, [1, nV, nSeqTok, nSeqs]);

    // build_conv_state
    const convKernel = this.wl(il, 'ssm_conv1d.weight')!;
    const kSize = convKernel.ne[0];
    const channels = rec.dInner + 2 * nK * headK;
    let convStates = this.buildRs(rAll, rec.nEmbdR, rs);
    convStates = reshape(convStates, [kSize - 1, channels, nSeqs]);
    const convInput = concat(convStates, transpose(qkvMixed), 0);
    const last = view(convInput, [kSize - 1, channels, nSeqs], [convInput.nb[1], convInput.nb[2]]);
    this.gf.expand(cpyInto(last, view(rAll, [(kSize - 1) * channels, nSeqs], [rAll.nb[1]])));

    let state = this.buildRs(sAll, rec.nEmbdS, rs);
    state = reshape(state, [headV, headV, nV, nSeqs]);

    const convOut = unary(ssmConv(convInput, convKernel));
    const row = convOut.nb[1];
    const e = convOut.type.typeSize;
    let q = view(convOut, [headK, nK, nSeqTok, nSeqs], [headK * e, row, row * nSeqTok]);
    let k = view(convOut, [headK, nK, nSeqTok, nSeqs], [headK * e, row, row * nSeqTok]);
    const v = view(convOut, [headV, nV, nSeqTok, nSeqs], [headV * e, row, row * nSeqTok]);
    q = l2Norm(q);
    k = l2Norm(k);
    if (nK !== nV) {
      const rep = nV / nK;
      q = reshape(repeat4d(reshape(q, [headK, 1, nK, nSeqTok * nSeqs]), [headK, rep, nK, nSeqTok * nSeqs]), [headK, nV, nSeqTok, nSeqs]);
      k = reshape(repeat4d(reshape(k, [headK, 1, nK, nSeqTok * nSeqs]), [headK, rep, nK, nSeqTok * nSeqs]), [headK, nV, nSeqTok, nSeqs]);
    }

    // build_recurrent_attn -> build_delta_net_fused (K = 1)
    const res = gatedDeltaNet(q, k, v, gate, beta, state);
    const f = res.type.typeSize;
    const output = view(res, [headV, nV, nSeqTok, nSeqs], [headV * f, headV * nV * f, headV * nV * nSeqTok * f]);
    const newState = view(res, [headV, headV, nV, nSeqs], [headV * f, headV * headV * f, headV * headV * nV * f]);
    this.gf.expand(cpyInto(newState, view(sAll, [rec.nEmbdS, nSeqs], [sAll.nb[1]])));

    // build_norm_gated, then the output projection
    const z2d = reshape(z, [headV, nV, nSeqTok, nSeqs]);
    const normed = this.buildNorm(output, this.wl(il, 'ssm_norm.weight'), undefined, il);
    let cur = mul(normed, unary(z2d));
    cur = reshape(cur, [headV * nV, nSeqTok, nSeqs]);
    cur = mulMat(this.wl(il, 'ssm_out.weight')!, cur);
    return reshape(cur, [this.m.nEmbd, nSeqTok * nSeqs]);
  }

  /** llama_model_qwen3next::graph::build_layer_attn: q doubled for the output gate, q/k norms, partial rope. */
  private buildGatedAttn(il: number, cur: Tensor): Tensor {
    const hd = this.m.nEmbdHeadK;
    const nHead = this.m.nHead[il]!;
    const nHeadKv = this.m.nHeadKv[il]!;
    const nTok = this.nTokens;
    let qFull = mulMat(this.wl(il, 'attn_q.weight')!, cur);
    qFull = reshape(qFull, [hd * 2, nHead, nTok, 1]);
    let q = view(qFull, [hd, nHead, nTok, 1], [qFull.nb[1], qFull.nb[2], qFull.nb[3]]);
    let gate = view(qFull, [hd, nHead, nTok, 1], [qFull.nb[1], qFull.nb[2], qFull.nb[3]]);
    let k = mulMat(this.wl(il, 'attn_k.weight')!, cur);
    let v = mulMat(this.wl(il, 'attn_v.weight')!, cur);
    k = reshape(k, [hd, nHeadKv, nTok]);
    v = reshape(v, [hd, nHeadKv, nTok]);
    q = this.buildNorm(q, this.wl(il, 'attn_q_norm.weight'), undefined, il);
    k = this.buildNorm(k, this.wl(il, 'attn_k_norm.weight'), undefined, il);
    q = rope(q, this.inpPos);
    k = rope(k, this.inpPos);
    let out = this.buildAttn(il, q, k, v, false, false);
    gate = cont(gate, [hd * nHead, nTok]);
    gate = unary(gate);
    out = mul(out, gate);
    return mulMat(this.wl(il, 'attn_output.weight')!, out);
  }

  /** src/models/phi3.cpp */
  private buildPhi3(): BuiltGraph {
    let inpL = this.buildInpEmbd();
    this.inpPos = this.buildInpPos();
    this.buildAttnInputs();
    this.inpOutIds = this.buildInpOutIds();
    const last = this.m.nLayer - 1;
    const factors = this.w('rope_factors_long.weight');
    for (let il = 0; il < this.m.nLayer; il++) {
      let residual = inpL;
      const normed = this.buildNorm(inpL, this.wl(il, 'attn_norm.weight'), this.wl(il, 'attn_norm.bias'), il);
      let [q, k, v] = this.buildQkv(il, normed);
      q = rope(q, this.inpPos, factors);
      k = rope(k, this.inpPos, factors);
      q = scale(q);
      let cur = this.buildAttn(il, q, k, v, this.p.swa !== undefined);
      if (il === last) [cur, residual] = this.outputRows(cur, residual);
      cur = add(cur, residual);
      residual = cur;
      cur = this.buildNorm(cur, this.wl(il, 'ffn_norm.weight'), this.wl(il, 'ffn_norm.bias'), il);
      cur = this.wl(il, 'ffn_gate_inp.weight') ? this.buildMoeFfn(il, cur) : this.buildFfn(il, cur, 'silu');
      cur = add(residual, cur);
      inpL = cur;
    }
    return this.buildOutput(inpL, false);
  }
}

interface AttnInputs {
  kIdxs: Tensor;
  vIdxs: Tensor;
  mask: Tensor;
  kRot: Tensor | undefined;
  vRot: Tensor | undefined;
}
