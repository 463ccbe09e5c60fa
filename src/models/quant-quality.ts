/**
 * How good a quantization is, for choosing among a repo's variants (pure). Tags of one tier are equal in quality
 * (F32, BF16 and F16 all keep the weights as trained, for inference); a lower tier number is better. The order
 * follows llama.cpp's measured perplexity of its file types: more bits per weight first, and among mixes of one
 * size the K-quants (and the importance-matrix IQ types) before the legacy 32-block types of similar size.
 * unsloth's `UD-` mixes rank as their base type; tags the table does not know rank after every known one.
 */

/** Tiers from best to worst; each a list of tags of equal quality. */
export const QUANT_QUALITY_TIERS: readonly (readonly string[])[] = [
  ['F32', 'BF16', 'F16'],
  ['Q8_K_XL'],
  ['Q8_0'],
  ['Q6_K_XL', 'Q6_K_L'],
  ['Q6_K'],
  ['Q5_K_XL', 'Q5_K_L'],
  ['Q5_K_M'],
  ['Q5_1'],
  ['Q5_K_S'],
  ['Q5_0'],
  ['Q4_K_XL', 'Q4_K_L'],
  ['Q4_K_M'],
  ['Q4_1'],
  ['Q4_K_S'],
  ['IQ4_NL'],
  ['Q4_0'],
  ['IQ4_XS', 'MXFP4'],
  ['Q3_K_XL'],
  ['Q3_K_L'],
  ['Q3_K_M'],
  ['IQ3_M'],
  ['IQ3_S'],
  ['Q3_K_S'],
  ['IQ3_XS'],
  ['IQ3_XXS'],
  ['Q2_K_XL', 'Q2_K_L'],
  ['Q2_K'],
  ['Q2_K_S'],
  ['IQ2_M'],
  ['IQ2_S'],
  ['IQ2_XS'],
  ['IQ2_XXS', 'TQ2_0'],
  ['IQ1_M'],
  ['TQ1_0'],
  ['IQ1_S'],
];

const TIER_OF: ReadonlyMap<string, number> = new Map(QUANT_QUALITY_TIERS.flatMap((tags, tier) => tags.map((t) => [t, tier] as const)));

/** Tier of a tag the table does not know (after all known ones), and of a file without a tag (after those). */
export const UNKNOWN_TAG_TIER = QUANT_QUALITY_TIERS.length;
export const NO_TAG_TIER = QUANT_QUALITY_TIERS.length + 1;

/** The tag's quality tier: 0 is the best (see QUANT_QUALITY_TIERS); case and a `UD-` prefix are ignored. */
export function quantTier(tag: string | undefined): number {
  if (!tag) return NO_TAG_TIER;
  return TIER_OF.get(tag.toUpperCase().replace(/^UD-/, '')) ?? UNKNOWN_TAG_TIER;
}

/** Orders tags best first: negative when `a` is better than `b`, 0 when of one tier. */
export function compareQuantQuality(a: string | undefined, b: string | undefined): number {
  return quantTier(a) - quantTier(b);
}

/** The variant that asks for the quantization chosen for this machine: `auto`, in any case. */
export function isAutoVariant(variant: string | undefined): boolean {
  return variant !== undefined && variant.toLowerCase() === 'auto';
}
