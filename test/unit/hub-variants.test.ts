import { describe, expect, it } from 'vitest';
import { chooseVariant, describeModelFiles, pickProjector, quantTag, splitSet, variantGiven } from '../../src/hub/variants.js';

const pick = (files: string[], variant: string, explicit = true) => {
  const r = chooseVariant(files, variant, explicit);
  return r.ok ? r.choice : undefined;
};

describe('quantization tags', () => {
  it.each([
    ['Qwen3-0.6B-Q4_K_M.gguf', 'Q4_K_M'],
    ['Qwen3-0.6B-UD-Q4_K_XL.gguf', 'UD-Q4_K_XL'],
    ['Meta-Llama-3-8B-Instruct.Q8_0.gguf', 'Q8_0'],
    ['gemma-3-4b-it-q4_0.gguf', 'Q4_0'],
    ['Qwen2-7B-Instruct-IQ4_XS.gguf', 'IQ4_XS'],
    ['model-bf16.gguf', 'BF16'],
    ['Q5_K_M/Big-Model-Q5_K_M-00001-of-00003.gguf', 'Q5_K_M'],
    ['UD-Q2_K_XL/Big-Model-00001-of-00003.gguf', 'UD-Q2_K_XL'],
    ['Qwen3-0.6B.gguf', undefined],
    ['Qwen3-30B-A3B-Q3_K_S.gguf', 'Q3_K_S'],
  ])('%s -> %s', (file, tag) => {
    expect(quantTag(file)).toBe(tag);
  });
});

describe('variant choice', () => {
  const repo = [
    'README.md',
    'Qwen3-0.6B-Q8_0.gguf',
    'Qwen3-0.6B-Q4_K_M.gguf',
    'Qwen3-0.6B-UD-Q4_K_XL.gguf',
    'Qwen3-0.6B-IQ4_XS.gguf',
    'mmproj-F16.gguf',
    'mmproj-Q8_0.gguf',
  ];

  it('matches a quant tag case-insensitively and takes the projector beside it', () => {
    expect(pick(repo, 'q8_0')).toEqual({ parts: ['Qwen3-0.6B-Q8_0.gguf'], mmproj: 'mmproj-Q8_0.gguf', tag: 'Q8_0' });
    expect(pick(repo, 'iq4_xs')).toMatchObject({ parts: ['Qwen3-0.6B-IQ4_XS.gguf'], mmproj: 'mmproj-F16.gguf' });
    expect(pick(repo, 'UD-Q4_K_XL')?.parts).toEqual(['Qwen3-0.6B-UD-Q4_K_XL.gguf']);
  });

  it('accepts a file name with or without .gguf', () => {
    expect(pick(repo, 'Qwen3-0.6B-Q8_0.gguf')?.parts).toEqual(['Qwen3-0.6B-Q8_0.gguf']);
    expect(pick(repo, 'Qwen3-0.6B-Q8_0')?.parts).toEqual(['Qwen3-0.6B-Q8_0.gguf']);
  });

  it('never picks a projector as the model', () => {
    expect(pick(['mmproj-Q8_0.gguf'], 'Q8_0')).toBeUndefined();
  });

  it('breaks ties deterministically (own tag, then shortest, then alphabetical) and says so', () => {
    const files = ['b/Model-Q4_K_M.gguf', 'a/Model-Q4_K_M.gguf', 'Model-UD-Q4_K_M.gguf', 'Model-Q4_K_M_L.gguf'];
    const c = pick(files, 'Q4_K_M')!;
    expect(c.parts).toEqual(['a/Model-Q4_K_M.gguf']);
    expect(c.note).toMatch(/Q4_K_M matches 4 models; chose a\/Model-Q4_K_M.gguf \(others: b\/Model-Q4_K_M.gguf, /);
    expect(pick([...files].reverse(), 'Q4_K_M')!.parts).toEqual(c.parts);
  });

  it('treats a split set as one model named by its first part, in order', () => {
    const files = [
      'Q4_K_M/Big-Q4_K_M-00003-of-00003.gguf',
      'Q4_K_M/Big-Q4_K_M-00001-of-00003.gguf',
      'Q4_K_M/Big-Q4_K_M-00002-of-00003.gguf',
      'Big-Q8_0.gguf',
    ];
    expect(pick(files, 'Q4_K_M')).toMatchObject({
      parts: ['Q4_K_M/Big-Q4_K_M-00001-of-00003.gguf', 'Q4_K_M/Big-Q4_K_M-00002-of-00003.gguf', 'Q4_K_M/Big-Q4_K_M-00003-of-00003.gguf'],
      tag: 'Q4_K_M',
    });
    expect(splitSet('x/M-00002-of-00002.gguf')).toEqual(['x/M-00001-of-00002.gguf', 'x/M-00002-of-00002.gguf']);
    expect(splitSet('M.gguf')).toBeUndefined();
  });

  it('refuses a split set with a missing part and names it', () => {
    const files = ['Big-Q4_K_M-00001-of-00003.gguf', 'Big-Q4_K_M-00003-of-00003.gguf'];
    const r = chooseVariant(files, 'Q4_K_M', true);
    expect(r).toEqual({ ok: false, incomplete: [{ first: 'Big-Q4_K_M-00001-of-00003.gguf', missing: ['Big-Q4_K_M-00002-of-00003.gguf'] }] });
    expect(describeModelFiles(files)).toEqual(['Big-Q4_K_M-00001-of-00003.gguf (incomplete split set)']);
  });

  it('an explicit variant that is missing is not replaced by another', () => {
    expect(pick(repo, 'Q5_K_M')).toBeUndefined();
  });

  it('without a variant: Q4_K_M, else the closest by bits per weight (ties: the larger), unknown tags and untagged files last', () => {
    expect(pick(repo, 'Q4_K_M', false)?.parts).toEqual(['Qwen3-0.6B-Q4_K_M.gguf']);
    const noDefault = ['M-Q8_0.gguf', 'M-Q3_K_M.gguf', 'M-Q5_K_M.gguf', 'M-Q6_K.gguf', 'M-F16.gguf'];
    const c = pick(noDefault, 'Q4_K_M', false)!;
    expect(c.parts).toEqual(['M-Q5_K_M.gguf']);
    expect(c.note).toBe('no Q4_K_M file; chose the closest quantization, Q5_K_M');
    expect(pick(['M-Q8_0.gguf', 'M-Q3_K_S.gguf', 'M-Q6_K.gguf'], 'Q4_K_M', false)?.parts).toEqual(['M-Q3_K_S.gguf']);
    // Q4_K_S (4.58) is nearer than IQ4_XS (4.25); Q4_K_XL and Q4_1 (5.0) nearer still
    expect(pick(['M-IQ4_XS.gguf', 'M-Q4_K_S.gguf'], 'Q4_K_M', false)?.parts).toEqual(['M-Q4_K_S.gguf']);
    expect(pick(['M-Q4_K_S.gguf', 'M-UD-Q4_K_XL.gguf'], 'Q4_K_M', false)?.parts).toEqual(['M-UD-Q4_K_XL.gguf']);
    expect(pick(['M-Q4_WEIRD.gguf', 'M-F32.gguf', 'model.gguf'], 'Q4_K_M', false)?.parts).toEqual(['M-F32.gguf']);
    expect(pick(['M-Q4_WEIRD.gguf', 'model.gguf'], 'Q4_K_M', false)?.parts).toEqual(['M-Q4_WEIRD.gguf']);
    expect(pick(['model.gguf'], 'Q4_K_M', false)?.parts).toEqual(['model.gguf']);
  });

  it('prefers the projector in the model folder, then its own tag, then F16', () => {
    expect(pickProjector(['a/mmproj-F16.gguf', 'b/mmproj-F32.gguf'], 'b/M-Q4_K_M.gguf')).toBe('b/mmproj-F32.gguf');
    expect(pickProjector(['mmproj-F16.gguf', 'mmproj-Q4_K_M.gguf'], 'M-Q4_K_M.gguf')).toBe('mmproj-Q4_K_M.gguf');
    expect(pickProjector(['mmproj-F32.gguf', 'mmproj-BF16.gguf', 'mmproj-F16.gguf'], 'M-Q8_0.gguf')).toBe('mmproj-F16.gguf');
    expect(pickProjector(['M-Q8_0.gguf'], 'M-Q8_0.gguf')).toBeUndefined();
  });

  it('tells whether an identifier names its variant', () => {
    expect(variantGiven('unsloth/Qwen3-0.6B-GGUF:Q4_K_M')).toBe(true);
    expect(variantGiven('unsloth/Qwen3-0.6B-GGUF')).toBe(false);
    expect(variantGiven('hf.co/unsloth/Qwen3-0.6B-GGUF:Q8_0')).toBe(true);
    expect(variantGiven('hf.co/unsloth/Qwen3-0.6B-GGUF')).toBe(false);
    expect(variantGiven('unsloth/Qwen3-0.6B-GGUF:latest')).toBe(false);
  });
});
