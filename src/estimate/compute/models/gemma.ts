import { add, rope, scale } from '../ggml.js';
import type { GraphBuilder, BuiltGraph } from '../graph-builder.js';

/** src/models/gemma2.cpp and gemma3.cpp */
export function buildGemma(b: GraphBuilder): BuiltGraph {
  const gemma3 = b.m.family === 'gemma3';
  let inpL = b.buildInpEmbd();
  inpL = scale(inpL);
  b.inpPos = b.buildInpPos();
  b.buildAttnInputs();
  b.inpOutIds = b.buildInpOutIds();
  const iswa = b.p.swa !== undefined;
  const last = b.m.nLayer - 1;
  for (let il = 0; il < b.m.nLayer; il++) {
    let cur = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), undefined, il);
    let [q, k, v] = b.buildQkv(il, cur);
    if (gemma3) {
      q = b.buildNorm(q, b.wl(il, 'attn_q_norm.weight'), undefined, il);
      q = rope(q, b.inpPos);
      k = b.buildNorm(k, b.wl(il, 'attn_k_norm.weight'), undefined, il);
      k = rope(k, b.inpPos);
    } else {
      q = rope(q, b.inpPos);
      k = rope(k, b.inpPos);
    }
    q = scale(q);
    cur = b.buildAttn(il, q, k, v, iswa);
    if (il === last) [cur, inpL] = b.outputRows(cur, inpL);
    cur = b.buildNorm(cur, b.wl(il, 'post_attention_norm.weight'), undefined, il);
    const saOut = add(cur, inpL);
    cur = b.buildNorm(saOut, b.wl(il, 'ffn_norm.weight'), undefined, il);
    cur = b.buildFfn(il, cur, 'gelu');
    cur = b.buildNorm(cur, b.wl(il, 'post_ffw_norm.weight'), undefined, -1);
    cur = add(cur, saOut);
    inpL = cur;
  }
  return b.buildOutput(inpL, gemma3 ? b.m.finalSoftcap : true);
}
