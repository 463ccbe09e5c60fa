import { add, rope } from '../ggml.js';
import type { GraphBuilder, BuiltGraph } from '../graph-builder.js';

/** src/models/glm4-moe.cpp (the main graph; the NextN/MTP layers are not run) */
export function buildGlm4Moe(b: GraphBuilder): BuiltGraph {
  const m = b.m;
  let inpL = b.buildInpEmbd();
  b.inpPos = b.buildInpPos();
  b.buildAttnInputs();
  b.inpOutIds = b.buildInpOutIds();
  const nLayer = m.nLayer - m.nLayerNextn;
  for (let il = 0; il < nLayer; il++) {
    let inpSA = inpL;
    let cur = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), undefined, il);
    let [q, k, v] = b.buildQkv(il, cur);
    // q/k norms only in some variants (GLM-4.5 355B); rope on the first n_rot dims of each head
    const qNorm = b.wl(il, 'attn_q_norm.weight');
    if (qNorm) q = b.buildNorm(q, qNorm, undefined, il);
    const kNorm = b.wl(il, 'attn_k_norm.weight');
    if (kNorm) k = b.buildNorm(k, kNorm, undefined, il);
    q = rope(q, b.inpPos);
    k = rope(k, b.inpPos);
    cur = b.buildAttn(il, q, k, v, false);
    if (il === nLayer - 1) [cur, inpSA] = b.outputRows(cur, inpSA);
    const ffnInp = add(cur, inpSA);
    cur = b.buildNorm(ffnInp, b.wl(il, 'post_attention_norm.weight'), undefined, il);
    cur = b.buildLeadDenseOrSharedMoe(il, cur);
    cur = add(cur, ffnInp);
    inpL = cur;
  }
  // the normed output is t_h_nextn and t_embd at once (already an output of buildOutput)
  return b.buildOutput(inpL, false);
}
