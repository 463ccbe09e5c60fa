/**
 * /json: asks for JSON output, validates it, retries once.
 *  - onRequest: adds the instruction as a system message (or to the existing first system message) and, with
 *    settings.constrain, asks llama-server for `response_format: {type: "json_object"}` (grammar-constrained
 *    sampling) unless the client set a response_format itself;
 *  - onResponse: finds the JSON in the answer (extract.mjs); when there is none and settings.retry is on, asks the
 *    model once more (context.complete) with the invalid answer and the parse error. The answer's content becomes
 *    the JSON text found; `x_agents.json` says { valid, attempts, error? }. Usage covers both calls.
 * Streamed requests: the proxy gathers the stream for this agent (it has no onStreamChunk) and re-emits it.
 */
import { extractJson } from './extract.mjs';

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

function withInstruction(messages, instruction) {
  const first = messages[0];
  if (isObject(first) && first.role === 'system' && typeof first.content === 'string') {
    return [{ ...first, content: `${first.content}\n\n${instruction}` }, ...messages.slice(1)];
  }
  return [{ role: 'system', content: instruction }, ...messages];
}

const contentOf = (response) => response?.choices?.[0]?.message?.content;

function addUsage(a, b) {
  if (!isObject(a) || !isObject(b)) return a ?? b;
  const out = { ...a };
  for (const key of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    if (typeof a[key] === 'number' && typeof b[key] === 'number') out[key] = a[key] + b[key];
  }
  return out;
}

function annotate(response, report) {
  return { ...response, x_agents: { ...(isObject(response.x_agents) ? response.x_agents : {}), json: report } };
}

function withContent(response, content) {
  const [first, ...rest] = response.choices;
  return { ...response, choices: [{ ...first, message: { ...first.message, content } }, ...rest] };
}

/** @type {import('../../dist/index.js').Agent} */
export default {
  onRequest(request, ctx) {
    if (!Array.isArray(request.messages)) return request;
    const instruction = typeof ctx.settings.instruction === 'string' ? ctx.settings.instruction : 'Answer with valid JSON only.';
    const out = { ...request, messages: withInstruction(request.messages, instruction) };
    if (ctx.settings.constrain !== false && out.response_format === undefined) out.response_format = { type: 'json_object' };
    ctx.state.request = out;
    return out;
  },

  async onResponse(response, ctx) {
    if (!Array.isArray(response.choices) || response.choices.length === 0) return response;
    const first = extractJson(contentOf(response));
    if (first.ok) return annotate(withContent(response, first.json), { valid: true, attempts: 1 });
    if (ctx.settings.retry === false || !isObject(ctx.state.request)) {
      return annotate(response, { valid: false, attempts: 1, error: first.error });
    }
    ctx.log.info({ error: first.error }, 'answer is not valid JSON; asking once more');
    const original = /** @type {Record<string, unknown>} */ (ctx.state.request);
    const retryBody = {
      ...original,
      messages: [
        ...original.messages,
        { role: 'assistant', content: String(contentOf(response) ?? '') },
        { role: 'user', content: `That answer is not valid JSON (${first.error}). Reply again with only the JSON.` },
      ],
    };
    let retried;
    try {
      retried = await ctx.complete(retryBody);
    } catch (err) {
      return annotate(response, { valid: false, attempts: 1, error: first.error, retry_error: err.message });
    }
    const usage = addUsage(response.usage, retried.usage);
    const second = extractJson(contentOf(retried));
    if (second.ok) {
      return annotate({ ...withContent({ ...response, choices: retried.choices }, second.json), usage }, { valid: true, attempts: 2, first_error: first.error });
    }
    return annotate({ ...response, choices: retried.choices, usage }, { valid: false, attempts: 2, error: second.error, first_error: first.error });
  },
};
