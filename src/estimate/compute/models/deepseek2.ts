import {
  F16, F32, I64, add, concat, cont, flashAttnExt, mulMat, newTensor, permute, reshape, rope, setInput, softMax,
  transpose, view, type Tensor,
} from '../ggml.js';
import type { GraphBuilder, BuiltGraph, KvCacheGraph, AttnInputs } from '../graph-builder.js';

/**
 * src/models/deepseek2.cpp with MLA (hparams.is_mla(): split attn_k_b / attn_v_b). The query is
 * projected directly (attn_q, the Lite models) or through its low-rank compression (attn_q_a,
 * attn_q_a_norm, attn_q_b); its no-rope part is absorbed into the latent space by k_b, so
 * attention is MQA over the cached latent + rotary key, and v_b decompresses its output.
 */
export function buildDeepseek2(b: GraphBuilder): BuiltGraph {
  const m = b.m;
  const mla = m.mla!;
  const nTok = b.nTokens;
  const nHeadKMla = mla.nEmbdHeadKMla;
  const nRope = mla.nRot;
  const nNope = nHeadKMla - nRope;
  const kvLora = mla.kvLoraRank;
  let inpL = b.buildInpEmbd();
  b.inpPos = b.buildInpPos();
  b.attnBase = kInputs(b, b.p.base);
  b.inpOutIds = b.buildInpOutIds();
  for (let il = 0; il < m.nLayer; il++) {
    let inpSA = inpL;
    let cur = b.buildNorm(inpL, b.wl(il, 'attn_norm.weight'), undefined, il);
    const nHead = m.nHead[il]!;
    let q: Tensor;
    const wq = b.wl(il, 'attn_q.weight');
    if (wq) {
      q = mulMat(wq, cur);
    } else {
      q = mulMat(b.wl(il, 'attn_q_a.weight')!, cur);
      q = b.buildNorm(q, b.wl(il, 'attn_q_a_norm.weight'), undefined, il);
      q = mulMat(b.wl(il, 'attn_q_b.weight')!, q);
    }
    q = reshape(q, [nHeadKMla, nHead, nTok]);
    const kvCmprPe = mulMat(b.wl(il, 'attn_kv_a_mqa.weight')!, cur);
    const rowKv = kvCmprPe.nb[1];
    let kvCmpr = view(kvCmprPe, [kvLora, nTok], [rowKv]);
    let kPe = view(kvCmprPe, [nRope, 1, nTok], [rowKv, rowKv]);
    kPe = rope(kPe, b.inpPos);
    kvCmpr = b.buildNorm(kvCmpr, b.wl(il, 'attn_kv_a_norm.weight'), undefined, il);

    let qNope = view(q, [nNope, nHead, nTok], [q.nb[1], q.nb[2]]);
    let qPe = view(q, [nRope, nHead, nTok], [q.nb[1], q.nb[2]]);
    qPe = rope(qPe, b.inpPos);
    qNope = permute(qNope, 0, 2, 1, 3);
    let qAbsorbed = mulMat(b.wl(il, 'attn_k_b.weight')!, qNope);
    qAbsorbed = permute(qAbsorbed, 0, 2, 1, 3);
    const qCur = concat(qAbsorbed, qPe, 0);
    kvCmpr = reshape(kvCmpr, [kvLora, 1, nTok]);
    const kCur = concat(kvCmpr, kPe, 0);
    const vCur = kvCmpr;

    cur = buildAttnMla(b, il, qCur, kCur, vCur, b.wl(il, 'attn_v_b.weight')!);
    if (il === m.nLayer - 1) [cur, inpSA] = b.outputRows(cur, inpSA);
    const ffnInp = add(cur, inpSA);
    cur = b.buildNorm(ffnInp, b.wl(il, 'ffn_norm.weight'), undefined, il);
    cur = b.buildLeadDenseOrSharedMoe(il, cur);
    cur = add(cur, ffnInp);
    inpL = cur;
  }
  return b.buildOutput(inpL, false);
}

/** build_attn_inp_k: K indices and the mask, no V indices, no rotation. */
function kInputs(b: GraphBuilder, cache: KvCacheGraph): AttnInputs {
  const kIdxs = setInput(newTensor(I64, [b.nTokens]));
  const nStream = b.p.kvUnified ? 1 : b.p.nSeqs;
  const mask = setInput(newTensor(b.p.flashAttn ? F16 : F32, [cache.kvSize, b.nTokens / nStream, 1, nStream]));
  return { kIdxs, vIdxs: kIdxs, mask, kRot: undefined, vRot: undefined };
}

/**
 * build_attn(llm_graph_input_attn_k) with build_attn_mha's v_mla: K-only cache, V as a view of
 * the first kv_lora_rank values of each cached K row, the output decompressed by v_b.
 */
function buildAttnMla(b: GraphBuilder, il: number, qCur: Tensor, kCur: Tensor, vCur: Tensor, vMla: Tensor): Tensor {
  const cache = b.p.base;
  const inp = b.attnBase;
  b.gf.expand(qCur);
  b.gf.expand(vCur);
  b.gf.expand(kCur);
  const layer = cache.layers.get(il)!;
  b.gf.expand(b.cpyK(cache, layer.k, kCur, inp.kIdxs));

  let k = b.getK(cache, layer.k, il);
  let v = view(k, [vCur.ne[0], k.ne[1], k.ne[2], k.ne[3]], [k.nb[1], k.nb[2], k.nb[3]]);
  const nStream = k.ne[3];
  let q = view(qCur, [qCur.ne[0], qCur.ne[1], qCur.ne[2] / nStream, nStream], [qCur.nb[1], qCur.nb[2], qCur.nb[3] / nStream]);
  q = permute(q, 0, 2, 1, 3);
  k = permute(k, 0, 2, 1, 3);
  v = permute(v, 0, 2, 1, 3);
  let cur: Tensor;
  if (b.p.flashAttn) {
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
    b.p.pin?.(cur, il, 'kq-out');
  }
  b.gf.expand(cur);
  return mulMat(b.wl(il, 'attn_output.weight')!, cur);
}
