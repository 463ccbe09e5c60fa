/**
 * What an answer says about itself, read from its end: token counts (OpenAI's `usage`, Anthropic's
 * input/output tokens) and llama-server's `timings` (prompt and generation speed). A stream carries them in its
 * last events, a whole answer anywhere in its body, which for a chat answer is short; so only the last 4 KiB of
 * what went to the client is kept and searched, once, when the answer is over: no JSON parse on the hot path.
 */

/** llama-server's `timings` object (milliseconds; rates per second). */
export interface Timings {
  cacheN: number | null;
  promptN: number | null;
  promptMs: number | null;
  promptPerSecond: number | null;
  predictedN: number | null;
  predictedMs: number | null;
  predictedPerSecond: number | null;
}

export interface AnswerFacts {
  promptTokens: number | null;
  completionTokens: number | null;
  timings: Timings | null;
}

const TAIL_CHARS = 4096;

const TIMING_FIELDS: readonly [keyof Timings, RegExp][] = (
  [
    ['cacheN', 'cache_n'],
    ['promptN', 'prompt_n'],
    ['promptMs', 'prompt_ms'],
    ['promptPerSecond', 'prompt_per_second'],
    ['predictedN', 'predicted_n'],
    ['predictedMs', 'predicted_ms'],
    ['predictedPerSecond', 'predicted_per_second'],
  ] as const
).map(([key, field]) => [key, new RegExp(`"${field}"\\s*:\\s*(-?[\\d.]+(?:e[-+]?\\d+)?)`, 'i')]);

function lastNumber(text: string, re: RegExp): number | null {
  let v: number | null = null;
  for (const m of text.matchAll(re)) v = Number(m[1]);
  return v !== null && Number.isFinite(v) ? v : null;
}

/** The last `timings` object in `text` (a flat object of numbers), or null. */
export function readTimings(text: string): Timings | null {
  const at = text.lastIndexOf('"timings"');
  if (at < 0) return null;
  const open = text.indexOf('{', at);
  const close = open < 0 ? -1 : text.indexOf('}', open);
  if (close < 0) return null;
  const body = text.slice(open, close + 1);
  const out = {} as Timings;
  let any = false;
  for (const [key, re] of TIMING_FIELDS) {
    const m = re.exec(body);
    const v = m ? Number(m[1]) : NaN;
    out[key] = Number.isFinite(v) ? v : null;
    if (out[key] !== null) any = true;
  }
  return any ? out : null;
}

/** Token counts and timings from the end of an answer (OpenAI, Anthropic or Ollama names; the last of each). */
export function readAnswer(text: string): AnswerFacts {
  const prompt = lastNumber(text, /"prompt_tokens"\s*:\s*(\d+)/g) ?? lastNumber(text, /"input_tokens"\s*:\s*(\d+)/g) ?? lastNumber(text, /"prompt_eval_count"\s*:\s*(\d+)/g);
  const completion = lastNumber(text, /"completion_tokens"\s*:\s*(\d+)/g) ?? lastNumber(text, /"output_tokens"\s*:\s*(\d+)/g) ?? lastNumber(text, /"eval_count"\s*:\s*(\d+)/g);
  return { promptTokens: prompt, completionTokens: completion, timings: readTimings(text) };
}

/** Keeps the end of an answer as it goes to the client; read once at its end. */
export class AnswerTail {
  private tail = '';
  /** When the first piece went out (ms since the epoch), 0 before. */
  firstAt = 0;

  push(chunk: Buffer | string): void {
    if (this.firstAt === 0) this.firstAt = Date.now();
    const text = typeof chunk === 'string' ? chunk : chunk.length > TAIL_CHARS ? chunk.subarray(chunk.length - TAIL_CHARS).toString('utf8') : chunk.toString('utf8');
    this.tail = this.tail.length + text.length > TAIL_CHARS ? (this.tail + text).slice(-TAIL_CHARS) : this.tail + text;
  }

  read(): AnswerFacts {
    return readAnswer(this.tail);
  }

  /** Prompt and completion tokens, 0 when the answer names none (key accounting). */
  tokens(): { prompt: number; completion: number } {
    const facts = this.read();
    return { prompt: facts.promptTokens ?? 0, completion: facts.completionTokens ?? 0 };
  }
}
