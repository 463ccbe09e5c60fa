/**
 * /parallel N: N samples of the same request through the proxy (context.complete, concurrently, seeds
 * seed..seed+N-1, temperature from the request when above 0 else settings.temperature), then answers by itself
 * (context.reply) with the most common answer, ties going to the longest (settings.pick "longest": the longest).
 * Usage is the sum over the samples; x_agents.parallel says { samples, succeeded, votes, distinct, pick }.
 * When every sample fails the agent fails, and the proxy forwards the request to the model as usual.
 */
import { chooseAnswer } from './vote.mjs';

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const textOf = (response) => {
  const choice = response?.choices?.[0];
  const text = choice?.message?.content ?? choice?.text;
  return typeof text === 'string' ? text : '';
};

function sumUsage(responses) {
  const total = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  for (const r of responses) for (const key of Object.keys(total)) if (typeof r.usage?.[key] === 'number') total[key] += r.usage[key];
  return total;
}

/** @type {import('../../dist/index.js').Agent} */
export default {
  async onRequest(request, ctx) {
    const s = ctx.settings;
    const max = Number(s.maxSamples ?? 8);
    const n = Math.min(max, Math.max(1, Number(ctx.args[0] ?? s.defaultSamples ?? 3)));
    const temperature = typeof request.temperature === 'number' && request.temperature > 0 ? request.temperature : Number(s.temperature ?? 0.8);
    const seed = Number.isInteger(request.seed) && request.seed >= 0 ? request.seed : Math.floor(Math.random() * 1e9);
    const { stream: _stream, stream_options: _options, n: _n, ...base } = request;
    const settled = await Promise.allSettled(Array.from({ length: n }, (_, i) => ctx.complete({ ...base, temperature, seed: seed + i })));
    const answers = settled.flatMap((r) => (r.status === 'fulfilled' && isObject(r.value) ? [r.value] : []));
    if (answers.length === 0) {
      const reason = settled.find((r) => r.status === 'rejected')?.reason;
      throw new Error(`all ${n} samples failed: ${reason?.message ?? reason}`);
    }
    const pick = s.pick === 'longest' ? 'longest' : 'most-common';
    const choice = chooseAnswer(answers.map(textOf), pick);
    const winner = answers[choice.index];
    ctx.log.info({ samples: n, succeeded: answers.length, votes: choice.votes, distinct: choice.distinct }, 'parallel samples chosen');
    return ctx.reply({
      ...winner,
      usage: sumUsage(answers),
      x_agents: {
        ...(isObject(winner.x_agents) ? winner.x_agents : {}),
        parallel: { samples: n, succeeded: answers.length, votes: choice.votes, distinct: choice.distinct, pick, seeds: [seed, seed + n - 1] },
      },
    });
  },
};
