import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogFile } from '../../src/pool/log-file.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-logfile-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A child writing `script` (sh) to stdout and stderr, both the log file; resolves when it has exited. */
async function run(file: LogFile, script: string): Promise<void> {
  const child = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', file.fd, file.fd] });
  await once(child, 'exit');
}

describe('LogFile', () => {
  it('leaves no path behind, and hands over whole lines from both streams when drained', async () => {
    const dir = tempDir();
    const lines: string[] = [];
    const file = new LogFile((l) => lines.push(l), 1024 * 1024, dir);
    expect(readdirSync(dir)).toEqual([]);
    await run(file, 'echo one; echo two >&2; printf "\\n\\n"; printf "thr"');
    expect(lines).toEqual([]);
    file.drain();
    expect(lines).toEqual(['one', 'two']);
    await run(file, 'echo ee; echo four');
    file.drain();
    expect(lines).toEqual(['one', 'two', 'three', 'four']);
    file.close();
  });

  it('hands over a last line without its newline when closed', async () => {
    const lines: string[] = [];
    const file = new LogFile((l) => lines.push(l), 1024 * 1024, tempDir());
    await run(file, 'printf "GGML_ASSERT failed: the end"');
    file.close();
    expect(lines).toEqual(['GGML_ASSERT failed: the end']);
    file.drain();
    expect(lines).toHaveLength(1);
  });

  it('starts over once past its size, keeping every line read so far', async () => {
    const lines: string[] = [];
    const file = new LogFile((l) => lines.push(l), 4096, tempDir());
    for (let round = 0; round < 5; round++) {
      await run(file, `i=0; while [ $i -lt 100 ]; do echo "round ${round} line $i"; i=$((i+1)); done`);
      file.drain();
    }
    expect(lines).toHaveLength(500);
    expect(lines.at(-1)).toBe('round 4 line 99');
    // Truncated after each drain past 4 KiB: the file holds at most one round's lines.
    await run(file, 'echo after');
    file.drain();
    expect(lines.at(-1)).toBe('after');
    file.close();
  });

  it('keeps a multibyte character split across two reads whole', async () => {
    const lines: string[] = [];
    const file = new LogFile((l) => lines.push(l), 1024 * 1024, tempDir());
    await run(file, `printf "caf\\303"`);
    file.drain();
    await run(file, `printf "\\251 ok\\n"`);
    file.drain();
    expect(lines).toEqual(['café ok']);
    file.close();
  });
});
