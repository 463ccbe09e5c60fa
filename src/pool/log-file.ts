/**
 * Where an instance writes its log: a file, not a pipe. llama-server at `-lv 4` writes some 20-30 lines per
 * request, each its own write; read from a pipe, each is one wakeup of the proxy's event loop, on the loop that
 * is serving that very request (about a quarter of a millisecond per request, measured with `npm run bench:proxy`).
 * From a file the lines are read in batches when the owner asks (`drain`): at every readiness check while the
 * instance loads, then every `LOG_POLL_MS` once it serves.
 *
 * The file is created and unlinked at once: the process's stdout and stderr and our descriptor keep it alive, no
 * path is left behind however the proxy ends, and nobody else can open it. It is opened O_APPEND, so the process
 * always writes at its end: when it has grown past `maxBytes` and all of it is read, it is truncated to nothing
 * (lines written in the microseconds between the last read and the truncation are lost; the log's ring keeps
 * the last lines anyway).
 */
import { closeSync, constants, ftruncateSync, openSync, readSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

/** How often a serving instance's new lines are read. */
export const LOG_POLL_MS = 100;
const READ_CHUNK = 64 * 1024;
const DEFAULT_MAX_BYTES = 1024 * 1024;

export class LogFile {
  /** The descriptor to give the process as its stdout and stderr. */
  readonly fd: number;
  private position = 0;
  private pending = '';
  private readonly decoder = new StringDecoder('utf8');
  private readonly chunk = Buffer.allocUnsafe(READ_CHUNK);
  private closed = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxBytes = DEFAULT_MAX_BYTES,
    dir = os.tmpdir(),
  ) {
    const file = path.join(dir, `llama-smart-proxy-${process.pid}-${randomBytes(6).toString('hex')}.log`);
    this.fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND, 0o600);
    unlinkSync(file);
  }

  /** Reads what was written since the last call and hands over its whole lines (empty ones skipped). */
  drain(): void {
    if (this.closed) return;
    for (;;) {
      const n = readSync(this.fd, this.chunk, 0, READ_CHUNK, this.position);
      if (n === 0) break;
      this.position += n;
      this.split(this.decoder.write(this.chunk.subarray(0, n)));
    }
    if (this.position > this.maxBytes) {
      ftruncateSync(this.fd, 0);
      this.position = 0;
    }
  }

  /** Reads the rest, a last line without its newline too, and closes the file. */
  close(): void {
    if (this.closed) return;
    this.drain();
    this.split(this.decoder.end() + '\n');
    this.closed = true;
    closeSync(this.fd);
  }

  private split(text: string): void {
    if (text === '') return;
    const lines = (this.pending + text).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) this.onLine(line);
  }
}
