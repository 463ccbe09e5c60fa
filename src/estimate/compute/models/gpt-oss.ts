import { FLAG_OUTPUT, add, getRows, rope } from '../ggml.js';
import type { GraphBuilder, BuiltGraph } from '../graph-builder.js';

/** src/models/openai-moe.cpp (gpt-oss) */
export function buildGptOss(b: GraphBuilder): BuiltGraph {
  let inpL = b.buildInpEmbd();
  b.inpPos = b.buildInpPos();
  b.buildAttnInputs();
  b.inpOutIds = b.buildInpOutIds();
  const iswa = b.p.swa !== undefined;
  for (let il = 0; il < b.m.nLayer; il++) {
    const inpSA = inpL;
    let cur = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), undefined, il);
    let [q, k, v] = b.buildQkv(il, cur);
    q = rope(q, b.inpPos);
    k = rope(k, b.inpPos);
    cur = b.buildAttn(il, q, k, v, iswa);
    // embeddings_nextn_masked is off: the output rows are picked after the last layer
    const ffnInp = add(cur, inpSA);
    cur = b.buildNorm(ffnInp, b.wl(il, 'post_attention_norm.weight'), undefined, il);
    cur = b.buildMoeFfn(il, cur, 'softmax-weight', false);
    cur = add(cur, ffnInp);
    inpL = cur;
  }
  // res->t_h_nextn: the last layer's output is marked as a graph output (set_outputs)
  inpL.flags |= FLAG_OUTPUT;
  inpL = getRows(inpL, b.inpOutIds);
  return b.buildOutput(inpL, false);
}
