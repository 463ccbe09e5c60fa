/**
 * The shared pieces of llama.cpp's graph builders (llm_graph_context, src/llama-graph.cpp): inputs
 * (build_inp_embd, build_attn_inp_kv(_iswa), positions, output ids, recurrent state copies), blocks
 * (build_norm, build_qkv, build_attn / build_attn_mha, build_ffn, build_moe_ffn, build_rs) and the output head,
 * creating tensors in the same ops, shapes and ggml_build_forward_expand order. Each architecture's graph is
 * one file in models/ (as llama.cpp's src/models/<arch>.cpp), built from these.
 */

import type { ExpertGating, ModelInfo, ModelTensor } from '../model-info.js';
import {
  F16, F32, I32, I64, FLAG_OUTPUT, Graph, add, addId, argsortTopK, clamp, cont, cpyInto, div, external, flashAttnExt,
  getRows, glu, gluSplit, isContiguous, mul, mulMat, mulMatId, newTensor, pad, permute, repeat4d, reshape, rmsNorm,
  scale, scaleInplace, setInput, setRows, softMax, sumRows, unary, view, type Tensor,
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

const layerIndexes = new WeakMap<ModelInfo, Map<string, ModelTensor>[]>();

/** Per layer, its tensors by the name after `blk.<il>.` (made once per model, for every graph built of it). */
function layerIndex(m: ModelInfo): Map<string, ModelTensor>[] {
  let index = layerIndexes.get(m);
  if (!index) {
    index = [];
    // By the name alone, as `blk.<il>.<name>` was looked up before (whatever layer the tensor is counted in).
    for (const t of m.tensorByName.values()) {
      const match = /^blk\.(0|[1-9]\d*)\.(.+)$/.exec(t.name);
      if (match) (index[Number(match[1])] ??= new Map()).set(match[2]!, t);
    }
    layerIndexes.set(m, index);
  }
  return index;
}

/** One reserve pass's graph under construction: its weights (leaves on their devices), inputs and blocks. */
export class GraphBuilder {
  readonly gf = new Graph();
  readonly m: ModelInfo;
  /** The model's tensors made leaves of this graph so far. */
  readonly weights = new Map<ModelTensor, Tensor>();
  readonly nTokens: number;

  // inputs, created by the build* methods in llama.cpp's order
  inpPos!: Tensor;
  inpOutIds!: Tensor;
  attnBase!: AttnInputs;
  attnSwa: AttnInputs | undefined;

  constructor(readonly p: GraphInputs) {
    this.m = p.model;
    this.nTokens = p.nTokens;
  }

  /** The weight tensor `name` as a leaf on its device, or undefined when the model lacks it. */
  w(name: string): Tensor | undefined {
    const mt = this.m.tensorByName.get(name);
    return mt ? this.leaf(mt) : undefined;
  }

  /** A model tensor as a leaf on its device, made once per graph. */
  private leaf(mt: ModelTensor): Tensor {
    let t = this.weights.get(mt);
    if (!t) {
      t = external(mt.type, mt.dims, this.p.weightDevice(mt), true);
      t.name = mt.name;
      this.weights.set(mt, t);
    }
    return t;
  }

  /** Layer `il`'s weight `name` (`blk.<il>.<name>`), found by its short name: no string is built per lookup. */
  wl(il: number, name: string): Tensor | undefined {
    const mt = layerIndex(this.m)[il]?.get(name);
    return mt ? this.leaf(mt) : undefined;
  }

  need(name: string): Tensor {
    const t = this.w(name);
    if (!t) throw new Error(`model has no tensor ${name}`);
    return t;
  }

  /** The output projection: output.weight, or token_embd duplicated onto the output device. */
  outputWeight(): Tensor {
    const out = this.w('output.weight');
    if (out) return out;
    const te = this.m.tensorByName.get('token_embd.weight')!;
    const t = external(te.type, te.dims, this.p.weightDevice({ ...te, name: 'output.weight', layer: { kind: 'output' } }), true);
    t.name = 'output.weight (tied)';
    return t;
  }

  // ---------------------------------------------------------------- inputs

  /** build_inp_embd */
  buildInpEmbd(): Tensor {
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
  buildInpPos(): Tensor {
    return setInput(newTensor(I32, [this.nTokens]));
  }

  /** build_inp_out_ids */
  buildInpOutIds(): Tensor {
    return setInput(newTensor(I32, [this.p.nOutputs]));
  }

  /** build_attn_inp_kv / build_attn_inp_kv_iswa */
  buildAttnInputs(): void {
    this.attnBase = this.kvInputs(this.p.base);
    if (this.p.swa) this.attnSwa = this.kvInputs(this.p.swa);
    // k_rot / v_rot inputs are created after the idxs and masks of both caches
    for (const [cache, inp] of [[this.p.base, this.attnBase], [this.p.swa, this.attnSwa]] as const) {
      if (!cache || !inp) continue;
      if (cache.rotK) inp.kRot = setInput(newTensor(F32, [cache.rotK, cache.rotK]));
      if (cache.rotV) inp.vRot = setInput(newTensor(F32, [cache.rotV, cache.rotV]));
    }
  }

  kvInputs(cache: KvCacheGraph): AttnInputs {
    const kIdxs = setInput(newTensor(I64, [this.nTokens]));
    const vIdxs = setInput(newTensor(I64, [cache.vTrans ? this.nTokens * cache.nEmbdVGqaMax : this.nTokens]));
    // build_attn_inp_kq_mask: one row per token of a stream, F16 for flash attention
    const nStream = this.p.kvUnified ? 1 : this.p.nSeqs;
    const mask = setInput(newTensor(this.p.flashAttn ? F16 : F32, [cache.kvSize, this.nTokens / nStream, 1, nStream]));
    return { kIdxs, vIdxs, mask, kRot: undefined, vRot: undefined };
  }

  // ---------------------------------------------------------------- blocks

  /** build_norm (RMS) with an optional weight and bias. */
  buildNorm(cur: Tensor, w: Tensor | undefined, b: Tensor | undefined, il: number): Tensor {
    cur = rmsNorm(cur);
    if (w || b) this.p.pin?.(cur, il, 'layer-norm');
    if (w) cur = mul(cur, w);
    if (b) cur = add(cur, b);
    return cur;
  }

  /** build_qkv */
  buildQkv(il: number, cur: Tensor): [Tensor, Tensor, Tensor] {
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
  hadamard(cur: Tensor, rot: Tensor): Tensor {
    const n = rot.ne[0];
    let res = isContiguous(cur) ? reshape(cur, [n, cur.nelements / n]) : cont(cur, [n, cur.nelements / n]);
    res = mulMat(rot, res);
    return reshape(res, cur.ne);
  }

  /** build_attn with a KV cache (plain or iswa), then the output projection. */
  buildAttn(il: number, q: Tensor, k: Tensor, v: Tensor, iswa: boolean, project = true): Tensor {
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
  getK(cache: KvCacheGraph, k: Tensor, il: number): Tensor {
    const hd = this.m.nEmbdHeadK;
    const nHeadKv = this.m.nHeadKv[il]!;
    const row = (n: number): number => (n / k.type.blockSize) * k.type.typeSize;
    const gqa = k.ne[0];
    return view(k, [hd, nHeadKv, cache.kvSize, cache.nStream], [row(hd), row(gqa), row(gqa * cache.kvSize)]);
  }

  /** llama_kv_cache::get_v */
  getV(cache: KvCacheGraph, v: Tensor, il: number): Tensor {
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
  cpyK(cache: KvCacheGraph, k: Tensor, kCur: Tensor, idxs: Tensor): Tensor {
    const gqa = kCur.ne[0] * kCur.ne[1];
    const cur = view(kCur, [gqa, kCur.ne[2]], [kCur.nb[2]]);
    const dst = cache.nStream > 1 ? reshape(k, [gqa, cache.kvSize * cache.nStream]) : k;
    return setRows(dst, cur, idxs);
  }

  /** llama_kv_cache::cpy_v */
  cpyV(cache: KvCacheGraph, v: Tensor, vCur: Tensor, idxs: Tensor): Tensor {
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
  outputRows(cur: Tensor, residual: Tensor): [Tensor, Tensor] {
    return [getRows(cur, this.inpOutIds), getRows(residual, this.inpOutIds)];
  }

  /** build_attn_mha */
  buildAttnMha(il: number, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, kvMax: number, sinks?: Tensor): Tensor {
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
  buildFfn(il: number, cur: Tensor, act: 'silu' | 'gelu', suffix = ''): Tensor {
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
  buildMoeFfn(
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
  buildOutput(inpL: Tensor, softcap: boolean): BuiltGraph {
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

  /**
   * The FFN of GLM-4.5 and DeepSeek-V2/V3: dense in the first leading_dense_block_count layers, then the routed
   * experts plus the shared expert(s), added.
   */
  buildLeadDenseOrSharedMoe(il: number, cur: Tensor): Tensor {
    const m = this.m;
    if (il < m.nLayerDenseLead) return this.buildFfn(il, cur, 'silu');
    const routed = this.buildMoeFfn(il, cur, m.expertGating, m.expertWeightsNorm, m.expertWeightsScale);
    const shared = this.buildFfn(il, cur, 'silu', '_shexp');
    return add(routed, shared);
  }

  /** llm_graph_context::build_rs: zero one state (in place), gather this ubatch's states, copy the rest. */
  buildRs(
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
  buildRsInp(): { main: Tensor; extra: Tensor; nRs: number } {
    const nRs = this.p.recurrent?.values().next().value?.r.ne[1] ?? Math.max(1, this.p.nSeqs);
    const sCopy = setInput(newTensor(I32, [nRs]));
    return { main: view(sCopy, [this.p.nSeqs], []), extra: view(sCopy, [nRs - this.p.nSeqs], []), nRs };
  }
}

export interface AttnInputs {
  kIdxs: Tensor;
  vIdxs: Tensor;
  mask: Tensor;
  kRot: Tensor | undefined;
  vRot: Tensor | undefined;
}
