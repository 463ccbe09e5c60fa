import {
  FLAG_OUTPUT, add, concat, cont, cpyInto, gluSplit, mul, mulMat, reshape, rope, scale, ssmConv, ssmScan, transpose,
  unary, view, type Tensor,
} from '../ggml.js';
import type { GraphBuilder, BuiltGraph } from '../graph-builder.js';

/**
 * src/models/granite-hybrid.cpp: Mamba2 layers (build_mamba2_layer) and rope-less attention
 * layers, each followed by the MoE FFN with a shared expert; granite's residual scale around
 * both and the logit scale on the output.
 */
export function buildGraniteHybrid(b: GraphBuilder): BuiltGraph {
  const m = b.m;
  const residual = m.scales?.residual ?? 0;
  let inpL = b.buildInpEmbd();
  const rs = b.buildRsInp();
  b.buildAttnInputs();
  b.inpOutIds = b.buildInpOutIds();
  // positions only with rope (Bamba-style conversions; Granite-4.0-H is position-free)
  if (!m.noRope) b.inpPos = b.buildInpPos();
  const last = m.nLayer - 1;
  for (let il = 0; il < m.nLayer; il++) {
    let inpSA = inpL;
    let cur = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), undefined, il);
    if (m.recurrent?.isRecurrent[il]) {
      cur = buildMamba2Layer(b, il, cur, rs);
    } else {
      let [q, k, v] = b.buildQkv(il, cur);
      if (!m.noRope) {
        q = rope(q, b.inpPos, b.w('rope_freqs.weight'));
        k = rope(k, b.inpPos, b.w('rope_freqs.weight'));
      }
      cur = b.buildAttn(il, q, k, v, false);
    }
    if (il === last) [cur, inpSA] = b.outputRows(cur, inpSA);
    // build_layer_ffn
    if (residual) cur = scale(cur);
    const ffnInp = add(cur, inpSA);
    cur = b.buildNorm(ffnInp, b.wl(il, 'ffn_norm.weight'), undefined, il);
    if (b.wl(il, 'ffn_gate_inp.weight')) {
      const moe = b.buildMoeFfn(il, cur, 'softmax', true, m.expertWeightsScale);
      cur = b.wl(il, 'ffn_up_shexp.weight') ? add(moe, b.buildFfn(il, cur, 'silu', '_shexp')) : moe;
    } else {
      cur = b.buildFfn(il, cur, 'silu');
    }
    if (residual) cur = scale(cur);
    cur = add(cur, ffnInp);
    inpL = cur;
  }
  const embd = b.buildNorm(inpL, b.w('output_norm.weight'), undefined, -1);
  let logits = mulMat(b.outputWeight(), embd);
  if (m.scales?.logit) logits = scale(logits);
  b.gf.expand(logits);
  embd.flags |= FLAG_OUTPUT;
  logits.flags |= FLAG_OUTPUT;
  return { graph: b.gf, logits };
}

/** llm_build_mamba_base::build_mamba2_layer (K = 1: no rollback snapshots). */
function buildMamba2Layer(b: GraphBuilder, il: number, cur: Tensor, rs: { main: Tensor; extra: Tensor; nRs: number }): Tensor {
  const rec = b.m.recurrent!;
  const nSeqs = b.p.nSeqs;
  const nSeqTok = b.nTokens / nSeqs;
  const dConv = rec.dConv;
  const dInner = rec.dInner;
  const dState = rec.dState;
  const nHead = rec.dtRank;
  const headDim = dInner / nHead;
  const nGroup = rec.nGroup;
  const convDim = dInner + 2 * nGroup * dState;
  const { r: rAll, s: sAll } = b.p.recurrent!.get(il)!;
  const stateSlots = sAll.ne[1];

  let conv = b.buildRs(rAll, rec.nEmbdR, rs);
  conv = reshape(conv, [dConv - 1, convDim, nSeqs]);

  let zxBCdt = mulMat(b.wl(il, 'ssm_in.weight')!, cur);
  zxBCdt = reshape(zxBCdt, [zxBCdt.ne[0], nSeqTok, nSeqs]);
  const e = zxBCdt.type.typeSize;
  const z = view(zxBCdt, [headDim, nHead, nSeqTok, nSeqs], [headDim * e, zxBCdt.nb[1], zxBCdt.nb[2]]);
  let xBC = view(zxBCdt, [convDim, nSeqTok, nSeqs], [zxBCdt.nb[1], zxBCdt.nb[2]]);
  let dt = view(zxBCdt, [nHead, nSeqTok, nSeqs], [zxBCdt.nb[1], zxBCdt.nb[2]]);

  // conv
  const convX = concat(conv, transpose(xBC), 0);
  const lastConv = view(convX, [dConv - 1, convDim, nSeqs], [convX.nb[1], convX.nb[2]]);
  b.gf.expand(cpyInto(lastConv, view(rAll, [(dConv - 1) * convDim, nSeqs], [rAll.nb[1]])));
  xBC = ssmConv(convX, b.wl(il, 'ssm_conv1d.weight')!);
  const convB = b.wl(il, 'ssm_conv1d.bias');
  if (convB) xBC = add(xBC, convB);
  xBC = unary(xBC);

  // ssm
  const f = xBC.type.typeSize;
  const x = view(xBC, [headDim, nHead, nSeqTok, nSeqs], [headDim * f, xBC.nb[1], xBC.nb[2]]);
  const B = view(xBC, [dState, nGroup, nSeqTok, nSeqs], [dState * f, xBC.nb[1], xBC.nb[2]]);
  const C = view(xBC, [dState, nGroup, nSeqTok, nSeqs], [dState * f, xBC.nb[1], xBC.nb[2]]);
  dt = add(cont(dt), b.wl(il, 'ssm_dt.bias')!);
  const A = b.wl(il, 'ssm_a')!;
  const ySsm = b.buildRs(sAll, rec.nEmbdS, rs, (states, ids) => {
    const ssm = reshape(states, [dState, headDim, nHead, stateSlots]);
    return ssmScan(ssm, x, dt, A, B, C, ids);
  });
  const D = dState * dInner;
  const yRow = D * ySsm.type.typeSize;
  b.gf.expand(cpyInto(
    view(ySsm, [D, nSeqs, 1], [yRow, yRow * nSeqs]),
    view(sAll, [D, nSeqs, 1], [sAll.nb[1], sAll.nb[1] * stateSlots]),
  ));
  const xRow = x.nb[1];
  let y = view(ySsm, [headDim, nHead, nSeqTok, nSeqs], [xRow, nHead * xRow, nSeqTok * nHead * xRow]);
  y = add(y, mul(x, b.wl(il, 'ssm_d')!));
  y = gluSplit(cont(z), y);
  const ssmNorm = b.wl(il, 'ssm_norm.weight');
  if (ssmNorm) {
    y = reshape(y, [dInner / nGroup, nGroup, nSeqTok, nSeqs]);
    y = b.buildNorm(y, ssmNorm, undefined, il);
  }
  y = reshape(y, [dInner, nSeqTok * nSeqs]);
  return mulMat(b.wl(il, 'ssm_out.weight')!, y);
}
