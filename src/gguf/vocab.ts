/**
 * Building blocks of synthetic tokenizer vocabularies (tokenizer.ggml.* metadata).
 */

/** Values of tokenizer.ggml.token_type (llama_token_type in llama.cpp). */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** SentencePiece byte-fallback tokens "<0x00>".."<0xFF>", in byte order. */
export function spmByteTokens(): string[] {
  return Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
}

/**
 * The 256 single-character tokens of a GPT-2 style byte-level BPE vocabulary, in the order
 * byte-level BPE vocabularies list them (printable bytes first, then the remapped ones).
 * Mirrors `bytes_to_unicode()` of the GPT-2 tokenizer.
 */
export function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = printable.map((b) => String.fromCharCode(b));
  const isPrintable = new Set(printable);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!isPrintable.has(b)) chars.push(String.fromCharCode(256 + n++));
  }
  return chars;
}
