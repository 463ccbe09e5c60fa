import pino, { type Logger } from 'pino';
import type { LogLines } from './log-lines.js';
import { prettyLine } from './pretty-log.js';

export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  /** auto: human-readable lines when `out` is a terminal, JSON lines otherwise. */
  format?: LogFormat;
  /** Also keep the lines here (the dashboard's view of the proxy's log). */
  lines?: LogLines;
  /** Where lines go (default stdout). */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Whether lines for `out` are written for a person. */
export function isPretty(format: LogFormat, out: { isTTY?: boolean }): boolean {
  return format === 'pretty' || (format === 'auto' && out.isTTY === true);
}

/** Structured logs (one JSON line per event) to stdout; pretty lines on a terminal (log.format). */
export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const out = options.out ?? process.stdout;
  const base = { level, base: { name: 'llama-smart-proxy' } };
  const pretty = isPretty(options.format ?? 'auto', out);
  if ((!pretty && !options.lines) || level === 'silent') return pino(base);
  const color = pretty && out.isTTY === true;
  const console = pretty ? { write: (chunk: string) => out.write(chunk.split('\n').filter(Boolean).map((l) => `${prettyLine(l, color)}\n`).join('')) } : out;
  const streams: pino.StreamEntry[] = [{ level: level as pino.Level, stream: console }];
  if (options.lines) streams.push({ level: level as pino.Level, stream: options.lines });
  return pino(base, pino.multistream(streams));
}
