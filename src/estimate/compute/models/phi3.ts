import { add, rope, scale } from '../ggml.js';
import type { GraphBuilder, BuiltGraph } from '../graph-builder.js';

/** src/models/phi3.cpp */
export function buildPhi3(b: GraphBuilder): BuiltGraph {
  let inpL = b.buildInpEmbd();
  b.inpPos = b.buildInpPos();
  b.buildAttnInputs();
  b.inpOutIds = b.buildInpOutIds();
  const last = b.m.nLayer - 1;
  const factors = b.w('rope_factors_long.weight');
  for (let il = 0; il < b.m.nLayer; il++) {
    let residual = inpL;
    const normed = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), b.wl(il, 'attn_norm.bias'), il);
    let [q, k, v] = b.buildQkv(il, normed);
    q = rope(q, b.inpPos, factors);
    k = rope(k, b.inpPos, factors);
    q = scale(q);
    let cur = b.buildAttn(il, q, k, v, b.p.swa !== undefined);
    if (il === last) [cur, residual] = b.outputRows(cur, residual);
    cur = add(cur, residual);
    residual = cur;
    cur = b.buildNorm(cur, b.wl(il, 'ffn_norm.weight'), b.wl(il, 'ffn_norm.bias'), il);
    cur = b.wl(il, 'ffn_gate_inp.weight') ? b.buildMoeFfn(il, cur) : b.buildFfn(il, cur, 'silu');
    cur = add(residual, cur);
    inpL = cur;
  }
  return b.buildOutput(inpL, false);
}
