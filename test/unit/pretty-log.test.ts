import { describe, expect, it } from 'vitest';
import { isPretty } from '../../src/util/logger.js';
import { prettyLine } from '../../src/util/pretty-log.js';

describe('prettyLine', () => {
  const time = new Date(2025, 0, 2, 13, 4, 5, 67).getTime();
  it('time, level, message, then the fields (name, pid, hostname left out)', () => {
    const line = JSON.stringify({ level: 30, time, pid: 1, hostname: 'h', name: 'llama-smart-proxy', msg: 'proxied', model: 'a', status: 200, path: '/v1/chat/completions', reason: 'two words' });
    expect(prettyLine(line)).toBe('13:04:05.067 INFO  proxied  model=a status=200 path=/v1/chat/completions reason="two words"');
  });
  it('objects as JSON, an error by its message with its stack after', () => {
    const line = JSON.stringify({ level: 50, time, msg: 'failed', gpus: [0, 1], err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' } });
    expect(prettyLine(line)).toBe('13:04:05.067 ERROR failed  gpus=[0,1] err="boom"\nError: boom\n    at x');
  });
  it('colours only when asked; a line that is not JSON passes as it is', () => {
    expect(prettyLine(JSON.stringify({ level: 40, time, msg: 'w' }), true)).toContain('\x1b[33mWARN ');
    expect(prettyLine('plain text')).toBe('plain text');
  });
  it.each([
    ['auto', true, true],
    ['auto', false, false],
    ['json', true, false],
    ['pretty', false, true],
  ] as const)('format %s on a terminal: %s -> pretty %s', (format, tty, want) => expect(isPretty(format, { isTTY: tty })).toBe(want));
});
