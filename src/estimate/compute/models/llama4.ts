import { F32, add, mul, newTensor, rmsNorm, rope, setInput } from '../ggml.js';
import type { GraphBuilder, BuiltGraph } from '../graph-builder.js';

/**
 * src/models/llama4.cpp: chunked-attention layers with rope and q/k L2 (RMS) norms, every
 * n_no_rope_layer_step-th layer global without rope, its query scaled by the temperature-tuning
 * input; MoE with the sigmoid weights applied to the input before the experts, plus a shared
 * expert (layers without a router: a dense FFN).
 */
export function buildLlama4(b: GraphBuilder): BuiltGraph {
  const m = b.m;
  let inpL = b.buildInpEmbd();
  b.inpPos = b.buildInpPos();
  // build_inp_attn_scale: 1 x 1 x n_tokens for broadcasting
  const attnScale = setInput(newTensor(F32, [1, 1, b.nTokens]));
  b.buildAttnInputs();
  b.inpOutIds = b.buildInpOutIds();
  const iswa = b.p.swa !== undefined;
  // without SWA (sliding_window 0, MobileLLM) every layer uses rope
  const noRopeStep = m.swaType === 'none' ? m.nLayer : 4;
  // hparams.use_kq_norm: all but the 128-expert Maverick
  const qkNorm = m.nExpert !== 128;
  const factors = b.w('rope_freqs.weight');
  const last = m.nLayer - 1;
  for (let il = 0; il < m.nLayer; il++) {
    let inpSA = inpL;
    const useRope = noRopeStep > 0 && (il + 1) % noRopeStep !== 0;
    let cur = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), undefined, il);
    let [q, k, v] = b.buildQkv(il, cur);
    if (useRope) {
      q = rope(q, b.inpPos, factors);
      k = rope(k, b.inpPos, factors);
    } else {
      q = mul(q, attnScale);
    }
    if (useRope && qkNorm) {
      q = rmsNorm(q);
      k = rmsNorm(k);
    }
    cur = b.buildAttn(il, q, k, v, iswa);
    if (il === last) [cur, inpSA] = b.outputRows(cur, inpSA);
    const ffnInp = add(cur, inpSA);
    if (b.wl(il, 'ffn_gate_inp.weight')) {
      const normed = b.buildNorm(ffnInp, b.wl(il, 'ffn_norm.weight'), undefined, il);
      const moeOut = b.buildMoeFfn(il, normed, 'sigmoid', false, m.expertWeightsScale, true);
      const shexp = b.buildFfn(il, normed, 'silu', '_shexp');
      cur = add(moeOut, shexp);
    } else {
      cur = b.buildNorm(ffnInp, b.wl(il, 'ffn_norm.weight'), undefined, il);
      cur = b.buildFfn(il, cur, 'silu');
    }
    cur = add(cur, ffnInp);
    inpL = cur;
  }
  return b.buildOutput(inpL, false);
}
