import {
  FLAG_OUTPUT, add, concat, cont, cpyInto, gatedDeltaNet, getRows, l2Norm, mul, mulMat, repeat4d, reshape, rope,
  ssmConv, transpose, unary, view, type Tensor,
} from '../ggml.js';
import type { GraphBuilder, BuiltGraph } from '../graph-builder.js';

/**
 * src/models/qwen3next.cpp with the hybrid memory (build_inp_mem_hybrid): gated-delta-net layers
 * (delta-net-base.cpp: build_conv_state, build_rs, the fused ggml_gated_delta_net that
 * resolve_fused_ops keeps on the CPU) and full gated-attention layers, every layer with a
 * softmax-routed MoE plus a sigmoid-gated shared expert. The NextN/MTP layer is not run; the
 * normed last hidden state (t_h_nextn) is an output and the output rows are picked after it.
 */
export function buildQwen3Next(b: GraphBuilder): BuiltGraph {
  const m = b.m;
  const nTrunk = m.nLayer - m.nLayerNextn;
  let inpL = b.buildInpEmbd();
  const rsInp = b.buildRsInp();
  b.buildAttnInputs();
  b.inpPos = b.buildInpPos();
  b.inpOutIds = b.buildInpOutIds();
  for (let il = 0; il < nTrunk; il++) {
    const inpSA = inpL;
    let cur = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), undefined, il);
    b.gf.expand(cur);
    cur = m.recurrent?.isRecurrent[il] ? buildGdnLayer(b, il, cur, rsInp) : buildGatedAttn(b, il, cur);
    cur = add(cur, inpSA);
    const ffnResidual = cur;
    const post = b.buildNorm(cur, b.wl(il, 'post_attention_norm.weight'), undefined, il);
    const routed = b.buildMoeFfn(il, post, m.expertGating, true, m.expertWeightsScale);
    let shared = b.buildFfn(il, post, 'silu', '_shexp');
    let sharedGate = mulMat(b.wl(il, 'ffn_gate_inp_shexp.weight')!, post);
    sharedGate = unary(sharedGate);
    shared = mul(shared, sharedGate);
    cur = add(routed, shared);
    cur = add(cur, ffnResidual);
    inpL = cur;
  }
  let cur = b.buildNorm(inpL, b.w('output_norm.weight'), undefined, -1);
  // t_h_nextn and t_embd are graph outputs (set_outputs)
  cur.flags |= FLAG_OUTPUT;
  cur = getRows(cur, b.inpOutIds);
  cur.flags |= FLAG_OUTPUT;
  const logits = mulMat(b.outputWeight(), cur);
  b.gf.expand(logits);
  logits.flags |= FLAG_OUTPUT;
  return { graph: b.gf, logits };
}

/** llama_model_qwen3next::graph::build_layer_attn_linear with the fused gated delta net. */
function buildGdnLayer(b: GraphBuilder, il: number, input: Tensor, rs: { main: Tensor; extra: Tensor; nRs: number }): Tensor {
  const rec = b.m.recurrent!;
  const nSeqs = b.p.nSeqs;
  const nSeqTok = b.nTokens / nSeqs;
  const headK = rec.dState;
  const nK = rec.nGroup;
  const nV = rec.dtRank;
  const headV = rec.dInner / nV;
  const { r: rAll, s: sAll } = b.p.recurrent!.get(il)!;

  // build_qkvz (the optimized path: attn_qkv + attn_gate)
  let qkvMixed = mulMat(b.wl(il, 'attn_qkv.weight')!, input);
  qkvMixed = reshape(qkvMixed, [qkvMixed.ne[0], nSeqTok, nSeqs]);
  const z = mulMat(b.wl(il, 'attn_gate.weight')!, input);

  const mixedBa = mulMat(b.wl(il, 'ssm_ba.weight')!, input);
  const ba = reshape(mixedBa, [(2 * nV) / nK, nK, nSeqTok, nSeqs]);
  const half = nV / nK;
  const bView = view(ba, [half, nK, nSeqTok, nSeqs], [ba.nb[1], ba.nb[2], ba.nb[3]]);
  const aView = view(ba, [half, nK, nSeqTok, nSeqs], [ba.nb[1], ba.nb[2], ba.nb[3]]);
  let beta = unary(cont(bView));
  const alpha = cont(aView, [nV, nSeqTok, nSeqs]);
  let gate = mul(unary(add(alpha, b.wl(il, 'ssm_dt.bias')!)), b.wl(il, 'ssm_a')!);
  beta = reshape(beta, [1, nV, nSeqTok, nSeqs]);
  gate = reshape(gate, [1, nV, nSeqTok, nSeqs]);

  // build_conv_state
  const convKernel = b.wl(il, 'ssm_conv1d.weight')!;
  const kSize = convKernel.ne[0];
  const channels = rec.dInner + 2 * nK * headK;
  let convStates = b.buildRs(rAll, rec.nEmbdR, rs);
  convStates = reshape(convStates, [kSize - 1, channels, nSeqs]);
  const convInput = concat(convStates, transpose(qkvMixed), 0);
  const last = view(convInput, [kSize - 1, channels, nSeqs], [convInput.nb[1], convInput.nb[2]]);
  b.gf.expand(cpyInto(last, view(rAll, [(kSize - 1) * channels, nSeqs], [rAll.nb[1]])));

  let state = b.buildRs(sAll, rec.nEmbdS, rs);
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
  b.gf.expand(cpyInto(newState, view(sAll, [rec.nEmbdS, nSeqs], [sAll.nb[1]])));

  // build_norm_gated, then the output projection
  const z2d = reshape(z, [headV, nV, nSeqTok, nSeqs]);
  const normed = b.buildNorm(output, b.wl(il, 'ssm_norm.weight'), undefined, il);
  let cur = mul(normed, unary(z2d));
  cur = reshape(cur, [headV * nV, nSeqTok, nSeqs]);
  cur = mulMat(b.wl(il, 'ssm_out.weight')!, cur);
  return reshape(cur, [b.m.nEmbd, nSeqTok * nSeqs]);
}

/** llama_model_qwen3next::graph::build_layer_attn: q doubled for the output gate, q/k norms, partial rope. */
function buildGatedAttn(b: GraphBuilder, il: number, cur: Tensor): Tensor {
  const hd = b.m.nEmbdHeadK;
  const nHead = b.m.nHead[il]!;
  const nHeadKv = b.m.nHeadKv[il]!;
  const nTok = b.nTokens;
  let qFull = mulMat(b.wl(il, 'attn_q.weight')!, cur);
  qFull = reshape(qFull, [hd * 2, nHead, nTok, 1]);
  let q = view(qFull, [hd, nHead, nTok, 1], [qFull.nb[1], qFull.nb[2], qFull.nb[3]]);
  let gate = view(qFull, [hd, nHead, nTok, 1], [qFull.nb[1], qFull.nb[2], qFull.nb[3]]);
  let k = mulMat(b.wl(il, 'attn_k.weight')!, cur);
  let v = mulMat(b.wl(il, 'attn_v.weight')!, cur);
  k = reshape(k, [hd, nHeadKv, nTok]);
  v = reshape(v, [hd, nHeadKv, nTok]);
  q = b.buildNorm(q, b.wl(il, 'attn_q_norm.weight'), undefined, il);
  k = b.buildNorm(k, b.wl(il, 'attn_k_norm.weight'), undefined, il);
  q = rope(q, b.inpPos);
  k = rope(k, b.inpPos);
  let out = b.buildAttn(il, q, k, v, false, false);
  gate = cont(gate, [hd * nHead, nTok]);
  gate = unary(gate);
  out = mul(out, gate);
  return mulMat(b.wl(il, 'attn_output.weight')!, out);
}
