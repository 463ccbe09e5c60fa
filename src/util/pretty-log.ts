/**
 * pino's JSON lines as a person reads them on a terminal: time, level, message, then the fields as key=value
 * (`12:04:31.207 INFO  proxied  model=qwen instance=i1 status=200 ms=412`). Pure; a line that is not JSON is
 * passed as it is.
 */

const LEVELS: Readonly<Record<number, [string, string]>> = {
  10: ['TRACE', '\x1b[90m'],
  20: ['DEBUG', '\x1b[36m'],
  30: ['INFO ', '\x1b[32m'],
  40: ['WARN ', '\x1b[33m'],
  50: ['ERROR', '\x1b[31m'],
  60: ['FATAL', '\x1b[35m'],
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
/** Fields every line has (shown in the prefix) or that say nothing to a person. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'v']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s="]/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (typeof v === 'object' && v !== null) {
    const err = v as { message?: unknown; stack?: unknown; type?: unknown };
    if (typeof err.message === 'string' && typeof err.stack === 'string') return JSON.stringify(err.message);
    return JSON.stringify(v);
  }
  return String(v);
}

function clock(t: number): string {
  const d = new Date(t);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** One human line from one JSON log line (no newline at the end). */
export function prettyLine(line: string, color = false): string {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line;
    entry = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  const [label, tint] = LEVELS[Number(entry.level)] ?? [String(entry.level ?? '').toUpperCase().padEnd(5), ''];
  const time = typeof entry.time === 'number' ? clock(entry.time) : '';
  const fields = Object.entries(entry)
    .filter(([k, v]) => !HIDDEN.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  const stack = typeof (entry.err as { stack?: unknown } | undefined)?.stack === 'string' ? `\n${(entry.err as { stack: string }).stack}` : '';
  if (!color) return `${time} ${label} ${msg}${fields ? `  ${fields}` : ''}${stack}`;
  return `${DIM}${time}${RESET} ${tint}${label}${RESET} ${msg}${fields ? `  ${DIM}${fields}${RESET}` : ''}${stack}`;
}
