/**
 * The compute graphs of llama.cpp's decoder-only models, rebuilt tensor by tensor with the same
 * ops, shapes, and `ggml_build_forward_expand` order as llm_graph_context (src/llama-graph.cpp)
 * and the per-architecture graph constructors (src/models/<arch>.cpp): build_inp_embd,
 * build_attn_inp_kv(_iswa), build_norm, build_qkv, build_attn / build_attn_mha, build_ffn,
 * build_moe_ffn and the output head. The order matters because the allocator's peak depends on
 * which tensors are alive at the same time.
 *
 * Families: 'llama' (llama, mistral, mixtral, qwen2: optional q/k/v biases, dense or MoE FFN),
 * 'qwen3' (adds per-head q/k RMS norms), 'gemma2' (embedding scale, SWA, attention and final
 * soft-capping, post-norms, GELU), 'gemma3' (gemma2 with q/k norms and without attention
 * soft-capping), 'phi3' (fused qkv and gate/up), 'gpt-oss' (iswa attention with sinks, biased
 * MoE with softmax-after-top-k weights and swiglu_oai), 'glm4moe' (GLM-4.5: q/k/v biases, dense
 * leading layers, sigmoid-gated MoE with a selection bias plus a shared expert; the NextN layer
 * is not run), 'deepseek2' (multi-head latent attention with the absorbed k_b/v_b path over a
 * K-only cache, dense leading layers, softmax-gated MoE plus shared experts), 'qwen3next' (hybrid:
 * gated-delta-net layers over the recurrent state with the fused ggml_gated_delta_net, gated full
 * attention every 4th layer, MoE plus a sigmoid-gated shared expert), 'granitehybrid' (Granite-4.0-H:
 * Mamba2 layers over the recurrent state with ggml_ssm_scan, a few rope-less GQA layers, MoE plus a
 * shared expert, granite's scales). 'generic' uses the llama graph.
 */

import { GraphBuilder, type BuiltGraph, type GraphInputs } from './graph-builder.js';
import { buildDeepseek2 } from './models/deepseek2.js';
import { buildGemma } from './models/gemma.js';
import { buildGlm4Moe } from './models/glm4moe.js';
import { buildGptOss } from './models/gpt-oss.js';
import { buildGraniteHybrid } from './models/granitehybrid.js';
import { buildLlama } from './models/llama.js';
import { buildLlama4 } from './models/llama4.js';
import { buildPhi3 } from './models/phi3.js';
import { buildQwen3Next } from './models/qwen3next.js';

export type { BuiltGraph, GraphInputs, KvCacheGraph } from './graph-builder.js';

/** Builds the graph of one reserve pass (llama_context::graph_reserve -> llama_model::build_graph). */
export function buildLlmGraph(p: GraphInputs): BuiltGraph {
  const b = new GraphBuilder(p);
  switch (p.model.family) {
    case 'phi3':
      return buildPhi3(b);
    case 'gemma2':
    case 'gemma3':
      return buildGemma(b);
    case 'gpt-oss':
      return buildGptOss(b);
    case 'glm4moe':
      return buildGlm4Moe(b);
    case 'deepseek2':
      return buildDeepseek2(b);
    case 'qwen3next':
      return buildQwen3Next(b);
    case 'granitehybrid':
      return buildGraniteHybrid(b);
    case 'llama4':
      return buildLlama4(b);
    default:
      return buildLlama(b, p.model.family === 'qwen3');
  }
}
