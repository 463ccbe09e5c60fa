import { describe, expect, it } from 'vitest';
import { parseSlashCommands, promptSlot, startsWithSlash, type ArgSpec } from '../../src/agents/slash.js';

const known = new Map<string, ArgSpec | undefined>([
  ['summarize', undefined],
  ['translate-fr', undefined],
  ['json', undefined],
  ['parallel', { max: 1, pattern: /^[1-9][0-9]?$/ }],
  ['pair', { max: 2, pattern: /^[a-z]+$/ }],
]);

describe('slash command parser', () => {
  it.each([
    // [prompt, commands, rest]
    ['/summarize /translate-fr Here is my text', ['summarize', 'translate-fr'], 'Here is my text'],
    ['/translate-fr /summarize Here', ['translate-fr', 'summarize'], 'Here'],
    ['  \n/json\tHello', ['json'], 'Hello'],
    ['/json', ['json'], ''],
    ['/json   ', ['json'], ''],
    ['/json\n\nline one\n  line two  ', ['json'], 'line one\n  line two  '],
    // unknown first word: nothing recognized, text untouched
    ['/usr/bin/env is a path', [], '/usr/bin/env is a path'],
    ['/unknown /json hi', [], '/unknown /json hi'],
    // reading stops at the first non-command: the rest stays as written
    ['/json /unknown /summarize hi', ['json'], '/unknown /summarize hi'],
    ['/json hi /summarize', ['json'], 'hi /summarize'],
    // exact, case-sensitive tokens
    ['/json, please', [], '/json, please'],
    ['/JSON hi', [], '/JSON hi'],
    ['/jsonx hi', [], '/jsonx hi'],
    ['/ json', [], '/ json'],
    // an agent named twice runs once, at its first position; both commands are removed
    ['/json /summarize /json hi', ['json', 'summarize'], 'hi'],
    ['plain text', [], 'plain text'],
    ['', [], ''],
  ])('%j -> %j, %j', (prompt, names, rest) => {
    const parsed = parseSlashCommands(prompt, known);
    expect(parsed.commands.map((c) => c.name)).toEqual(names);
    expect(parsed.rest).toBe(rest);
  });

  it.each([
    ['/parallel 5 Why?', [['parallel', ['5']]], 'Why?'],
    ['/parallel Why?', [['parallel', []]], 'Why?'],
    // the pattern decides: 0 and 100 are not arguments, they start the prompt
    ['/parallel 0 items', [['parallel', []]], '0 items'],
    ['/parallel 100 items', [['parallel', []]], '100 items'],
    ['/parallel 3 3 reasons', [['parallel', ['3']]], '3 reasons'],
    ['/parallel 3 /json hi', [['parallel', ['3']], ['json', []]], 'hi'],
    ['/pair ab cd ef', [['pair', ['ab', 'cd']]], 'ef'],
    ['/pair ab 12', [['pair', ['ab']]], '12'],
    ['/json 5 hi', [['json', []]], '5 hi'],
    ['/parallel 7', [['parallel', ['7']]], ''],
  ])('arguments: %j', (prompt, commands, rest) => {
    const parsed = parseSlashCommands(prompt, known);
    expect(parsed.commands.map((c) => [c.name, c.args])).toEqual(commands);
    expect(parsed.rest).toBe(rest);
  });

  it('startsWithSlash is the cheap pre-check', () => {
    expect(startsWithSlash('  /x')).toBe(true);
    expect(startsWithSlash('x /y')).toBe(false);
    expect(startsWithSlash('')).toBe(false);
  });
});

describe('prompt slot', () => {
  it('reads the last user message and replaces it in a copy', () => {
    const body = {
      model: 'm',
      messages: [
        { role: 'system', content: '/json not me' },
        { role: 'user', content: '/json first turn' },
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: '/json second turn' },
        { role: 'tool', content: 'tool output' },
      ],
    };
    const slot = promptSlot('chat/completions', body)!;
    expect(slot.text).toBe('/json second turn');
    const out = slot.replace('second turn') as typeof body;
    expect(out.messages[3]!.content).toBe('second turn');
    expect(out.messages[1]!.content).toBe('/json first turn');
    expect(body.messages[3]!.content).toBe('/json second turn');
    expect(out.messages[4]).toBe(body.messages[4]);
  });

  it('uses the first text part of an array content', () => {
    const body = {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: 'data:...' } },
            { type: 'text', text: '/json describe' },
            { type: 'text', text: '/json not this one' },
          ],
        },
      ],
    };
    const slot = promptSlot('chat/completions', body)!;
    expect(slot.text).toBe('/json describe');
    const out = slot.replace('describe') as { messages: { content: { text?: string }[] }[] };
    expect(out.messages[0]!.content[1]!.text).toBe('describe');
    expect(out.messages[0]!.content[2]!.text).toBe('/json not this one');
    expect(body.messages[0]!.content[1]!.text).toBe('/json describe');
  });

  it('reads the string prompt of a completions request', () => {
    const slot = promptSlot('completions', { prompt: '/json x' })!;
    expect(slot.text).toBe('/json x');
    expect(slot.replace('x')).toEqual({ prompt: 'x' });
  });

  it.each([
    ['chat/completions', { messages: [] }],
    ['chat/completions', { messages: [{ role: 'assistant', content: '/json' }] }],
    ['chat/completions', { messages: [{ role: 'user', content: null }] }],
    ['chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }],
    ['chat/completions', { prompt: '/json' }],
    ['completions', { prompt: ['/json a', 'b'] }],
    ['completions', { prompt: [1, 2, 3] }],
  ] as const)('no prompt slot in %s %j', (endpoint, body) => {
    expect(promptSlot(endpoint, body as Record<string, unknown>)).toBeUndefined();
  });
});
