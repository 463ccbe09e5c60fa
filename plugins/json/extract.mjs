/**
 * Finding the JSON in a model's answer (pure). Accepted: an object or an array, either the whole answer, inside a
 * ``` fence, or the first balanced {...} / [...] span that parses. A bare number or string is not accepted (the
 * user asked for structured output).
 */

/** @param {unknown} v */
const structured = (v) => typeof v === 'object' && v !== null;

/** @param {string} text @returns {{ ok: true, value: unknown } | { ok: false, error: string }} */
function tryParse(text) {
  try {
    const value = JSON.parse(text);
    return structured(value) ? { ok: true, value } : { ok: false, error: `expected an object or array, got a ${value === null ? 'null' : typeof value}` };
  } catch (err) {
    return { ok: false, error: /** @type {Error} */ (err).message };
  }
}

/** End index (exclusive) of the balanced span starting at `start`, or -1. Strings and escapes are respected. */
function balancedEnd(text, start) {
  const stack = [];
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') stack.push(c === '{' ? '}' : ']');
    else if (c === '}' || c === ']') {
      if (stack.pop() !== c) return -1;
      if (stack.length === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * @param {unknown} answer the model's text
 * @returns {{ ok: true, value: unknown, json: string } | { ok: false, error: string }}
 *   json: the JSON text found, re-serialized compactly
 */
export function extractJson(answer) {
  if (typeof answer !== 'string') return { ok: false, error: 'the answer has no text content' };
  const text = answer.trim();
  if (text === '') return { ok: false, error: 'the answer is empty' };
  const whole = tryParse(text);
  if (whole.ok) return { ok: true, value: whole.value, json: JSON.stringify(whole.value) };
  const fence = /```[a-zA-Z]*\s*\n?([\s\S]*?)```/.exec(text);
  if (fence) {
    const fenced = tryParse(fence[1].trim());
    if (fenced.ok) return { ok: true, value: fenced.value, json: JSON.stringify(fenced.value) };
  }
  // The first balanced span that parses, trying at most 20 starting points.
  let tries = 0;
  for (let i = 0; i < text.length && tries < 20; i++) {
    if (text[i] !== '{' && text[i] !== '[') continue;
    tries++;
    const end = balancedEnd(text, i);
    if (end < 0) continue;
    const span = tryParse(text.slice(i, end));
    if (span.ok) return { ok: true, value: span.value, json: JSON.stringify(span.value) };
  }
  return { ok: false, error: `not valid JSON: ${whole.error}` };
}
