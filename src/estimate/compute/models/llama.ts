import { add, rope } from '../ggml.js';
import type { GraphBuilder, BuiltGraph } from '../graph-builder.js';

/** src/models/llama.cpp, qwen2.cpp, qwen3.cpp, qwen3moe.cpp */
export function buildLlama(b: GraphBuilder, qkNorm: boolean): BuiltGraph {
  let inpL = b.buildInpEmbd();
  b.inpPos = b.buildInpPos();
  b.buildAttnInputs();
  b.inpOutIds = b.buildInpOutIds();
  const last = b.m.nLayer - 1;
  for (let il = 0; il < b.m.nLayer; il++) {
    let inpSA = inpL;
    let cur = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), undefined, il);
    let [q, k, v] = b.buildQkv(il, cur);
    const factors = b.w('rope_freqs.weight');
    if (qkNorm) {
      q = b.buildNorm(q, b.wl(il, 'attn_q_norm.weight'), undefined, il);
      q = rope(q, b.inpPos);
      k = b.buildNorm(k, b.wl(il, 'attn_k_norm.weight'), undefined, il);
      k = rope(k, b.inpPos);
    } else {
      q = rope(q, b.inpPos, factors);
      k = rope(k, b.inpPos, factors);
    }
    cur = b.buildAttn(il, q, k, v, false);
    if (il === last) [cur, inpSA] = b.outputRows(cur, inpSA);
    const ffnInp = add(cur, inpSA);
    cur = b.buildNorm(ffnInp, b.wl(il, 'ffn_norm.weight'), undefined, il);
    cur = b.wl(il, 'ffn_gate_inp.weight') ? b.buildMoeFfn(il, cur) : b.buildFfn(il, cur, 'silu');
    cur = add(cur, ffnInp);
    inpL = cur;
  }
  return b.buildOutput(inpL, false);
}
