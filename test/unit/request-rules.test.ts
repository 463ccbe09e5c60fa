import { describe, expect, it } from 'vitest';
import { applyRequestRules, rulesEmpty } from '../../src/api/request-rules.js';
import { ModelEntrySchema, RequestRulesSchema } from '../../src/config/schema.js';

const rules = (r: unknown) => RequestRulesSchema.parse(r);

describe('applyRequestRules', () => {
  const cases: Array<{ name: string; body: Record<string, unknown>; rules: unknown; want: Record<string, unknown> }> = [
    { name: 'default set when absent', body: { model: 'm' }, rules: { defaults: { temperature: 0.2 } }, want: { model: 'm', temperature: 0.2 } },
    { name: 'default kept out when present', body: { model: 'm', temperature: 1 }, rules: { defaults: { temperature: 0.2 } }, want: { model: 'm', temperature: 1 } },
    { name: 'force overrides the client', body: { model: 'm', max_tokens: 50 }, rules: { force: { max_tokens: 3 } }, want: { model: 'm', max_tokens: 3 } },
    { name: 'force sets when absent', body: { model: 'm' }, rules: { force: { max_tokens: 3 } }, want: { model: 'm', max_tokens: 3 } },
    { name: 'strip removes', body: { model: 'm', logit_bias: { 1: 2 }, top_k: 5 }, rules: { strip: ['logit_bias'] }, want: { model: 'm', top_k: 5 } },
    { name: 'strip of an absent field is a no-op', body: { model: 'm' }, rules: { strip: ['x'] }, want: { model: 'm' } },
    { name: 'strip then default re-sets', body: { model: 'm', seed: 9 }, rules: { strip: ['seed'], defaults: { seed: 1 } }, want: { model: 'm', seed: 1 } },
    { name: 'force beats default', body: { model: 'm' }, rules: { defaults: { max_tokens: 10 }, force: { max_tokens: 3 } }, want: { model: 'm', max_tokens: 3 } },
    { name: 'model never touched', body: { model: 'm' }, rules: { strip: ['model'], force: { model: 'x' }, defaults: { model: 'y' } }, want: { model: 'm' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const input = structuredClone(c.body);
      expect(applyRequestRules(input, rules(c.rules))).toEqual(c.want);
      expect(input).toEqual(c.body);
    });
  }
  it('no rules: the same object', () => {
    const body = { model: 'm' };
    expect(applyRequestRules(body, undefined)).toBe(body);
    expect(rulesEmpty(rules({}))).toBe(true);
    expect(rulesEmpty(rules({ strip: ['a'] }))).toBe(false);
  });
  it('schema refuses unknown keys', () => {
    expect(() => RequestRulesSchema.parse({ set: {} })).toThrow();
    expect(ModelEntrySchema.parse({ path: 'a.gguf', rules: { force: { max_tokens: 3 } } }).rules?.force).toEqual({ max_tokens: 3 });
  });
});
