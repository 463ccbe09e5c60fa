import pino, { type Logger } from 'pino';

/** Structured logs (one JSON line per event) to stdout. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { name: 'llama-smart-proxy' } });
}
