/** What Ollama's clients show about a model (family, parameter size, quantization), from the GGUF header. Pure. */
import type { GgufHeader } from '../../gguf/index.js';

const FILE_TYPES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q8_0', 8: 'Q5_0', 9: 'Q5_1', 10: 'Q2_K', 11: 'Q3_K_S', 12: 'Q3_K_M',
  13: 'Q3_K_L', 14: 'Q4_K_S', 15: 'Q4_K_M', 16: 'Q5_K_S', 17: 'Q5_K_M', 18: 'Q6_K', 19: 'IQ2_XXS', 20: 'IQ2_XS',
  21: 'Q2_K_S', 22: 'IQ3_XS', 23: 'IQ3_XXS', 24: 'IQ1_S', 25: 'IQ4_NL', 26: 'IQ3_S', 27: 'IQ3_M', 28: 'IQ2_S',
  29: 'IQ2_M', 30: 'IQ4_XS', 31: 'IQ1_M', 32: 'BF16', 36: 'TQ1_0', 37: 'TQ2_0', 38: 'MXFP4_MOE',
};

export interface OllamaDetails {
  parent_model: string;
  format: 'gguf';
  family: string;
  families: string[];
  parameter_size: string;
  quantization_level: string;
}

/** "8.0B", "494.0M": Ollama's way of writing a parameter count. */
export function formatParameterCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function parameterCount(header: Pick<GgufHeader, 'tensors'>): number {
  let total = 0;
  for (const t of header.tensors) total += t.dims.reduce((a: number, d) => a * Number(d), 1);
  return total;
}

export function modelDetails(header: Pick<GgufHeader, 'metadata' | 'tensors'>): OllamaDetails {
  const arch = String(header.metadata['general.architecture'] ?? 'unknown');
  const fileType = header.metadata['general.file_type'];
  return {
    parent_model: '',
    format: 'gguf',
    family: arch,
    families: [arch],
    parameter_size: formatParameterCount(parameterCount(header)),
    quantization_level: typeof fileType === 'number' || typeof fileType === 'bigint' ? (FILE_TYPES[Number(fileType)] ?? `type ${fileType}`) : 'unknown',
  };
}

/**
 * The header's metadata as /api/show's model_info: long arrays (the vocabulary, merges) are left out as null,
 * the way Ollama answers without `verbose`.
 */
export function modelInfoMap(header: Pick<GgufHeader, 'metadata' | 'tensors'>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(header.metadata)) {
    if (Array.isArray(value)) out[key] = value.length > 64 ? null : value.map((v) => (typeof v === 'bigint' ? Number(v) : v));
    else out[key] = typeof value === 'bigint' ? Number(value) : value;
  }
  out['general.parameter_count'] = parameterCount(header);
  return out;
}
