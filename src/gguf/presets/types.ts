/** Shapes shared by the architecture replica presets. */

import type { GgufTypedValue } from '../value-types.js';

export type PresetId =
  | 'llama-3-8b'
  | 'qwen2.5-0.5b'
  | 'mistral-7b'
  | 'gemma-2-9b'
  | 'phi-3-mini'
  | 'mixtral-8x7b'
  | 'qwen3-30b-a3b'
  | 'gpt-oss-20b'
  | 'glm-4.5-air'
  | 'deepseek-v2-lite'
  | 'qwen3-next-80b-a3b'
  | 'granite-4.0-h-tiny'
  | 'llama-4-scout';

/** The hyperparameters a memory estimate needs, as the GGUF metadata states them. */
export interface ModelHparams {
  readonly layers: number;
  readonly embd: number;
  /** Dense FFN width (for MoE models: <arch>.feed_forward_length as the model declares it). */
  readonly ff: number;
  readonly heads: number;
  readonly headsKv: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly ctxTrain: number;
  /** 0 for dense models. */
  readonly expertCount: number;
  readonly expertUsedCount: number;
  /** Per-expert FFN width when it differs from `ff`. */
  readonly expertFf?: number;
  /** No output.weight: the output projection reuses token_embd. */
  readonly tiedEmbeddings: boolean;
  /** Sliding-window attention size, when the architecture uses it. */
  readonly slidingWindow?: number;
}

export interface TensorDims {
  readonly name: string;
  /** ggml order: dims[0] is the row length. */
  readonly dims: readonly number[];
}

/** Special tokens and layout of a synthetic vocabulary. */
export interface TokenizerSpec {
  /** tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece). */
  readonly model: 'gpt2' | 'llama';
  /** tokenizer.ggml.pre */
  readonly pre: string;
  /**
   * Id of the first of the 256 byte tokens: the byte-level alphabet (NORMAL) for gpt2,
   * <0x00>..<0xFF> (BYTE) for llama.
   */
  readonly byteTokensAt: number;
  /** Control tokens with their real texts (EOG detection in llama.cpp goes by these texts). */
  readonly specials: Readonly<Record<number, string>>;
  /** A run of further control tokens with generated names, e.g. Llama 3's reserved tokens. */
  readonly controlRange?: { readonly from: number; readonly to: number; readonly name: (id: number) => string };
  /** Ids from here on that are not specials are vocabulary padding "[PAD<id>]" of type UNUSED. */
  readonly unusedFrom?: number;
  readonly bosId?: number;
  readonly eosId?: number;
  /** Gets token type UNKNOWN. */
  readonly unkId?: number;
  readonly padId?: number;
  readonly addBos?: boolean;
  readonly addEos?: boolean;
  readonly addSpacePrefix?: boolean;
  readonly chatTemplate: string;
}

export interface GeneralInfo {
  readonly name: string;
  readonly basename: string;
  readonly finetune?: string;
  readonly sizeLabel: string;
  readonly license?: string;
}

export interface PresetSpec {
  readonly id: PresetId;
  /** The Hugging Face model whose GGUF conversion this replicates. */
  readonly source: string;
  /** general.architecture */
  readonly arch: string;
  readonly hparams: ModelHparams;
  readonly general: GeneralInfo;
  /**
   * The `<arch>.*` keys in the order convert_hf_to_gguf.py writes them. general.file_type is
   * inserted after them per quantization.
   */
  readonly archMetadata: Readonly<Record<string, GgufTypedValue>>;
  /** `<arch>.*` keys convert writes after general.file_type. */
  readonly archMetadataAfterFileType?: Readonly<Record<string, GgufTypedValue>>;
  readonly tokenizer: TokenizerSpec;
  /** Names and shapes of every tensor (replicas sort them into llama-quantize's output order). */
  readonly tensorShapes: () => TensorDims[];
}
