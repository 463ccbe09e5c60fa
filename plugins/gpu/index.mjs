/**
 * /gpu: reports the instance that served this request, as the pool describes it (every field of its
 * InstanceInfo: id, model, pid, placement, estimated and measured bytes per GPU, ...) plus a memory summary in
 * MiB, estimate vs actual per GPU. Non-streamed: in `x_agents.gpu` of the response. Streamed: in `x_agents.gpu`
 * of the chunk that carries the finish reason. It reads the pool when the answer is complete, so the measured
 * memory is as fresh as the pool's.
 */
const MIB = 1024 * 1024;
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const mib = (bytes) => Math.round((bytes / MIB) * 10) / 10;

/** Per-GPU estimate vs measurement from the instance's byte maps ({ "<gpu index>": bytes }), when it has them. */
export function memorySummary(instance) {
  const estimated = isObject(instance.estimatedGpuBytes) ? instance.estimatedGpuBytes : {};
  const actual = isObject(instance.actualGpuBytes) ? instance.actualGpuBytes : {};
  const ids = [...new Set([...Object.keys(estimated), ...Object.keys(actual)])].sort((a, b) => Number(a) - Number(b));
  const gpus = ids.map((id) => {
    const est = typeof estimated[id] === 'number' ? estimated[id] : null;
    const act = typeof actual[id] === 'number' ? actual[id] : null;
    return {
      gpu: Number(id),
      estimated_mib: est === null ? null : mib(est),
      actual_mib: act === null ? null : mib(act),
      difference_mib: est === null || act === null ? null : mib(act - est),
      // How far the estimate is from the measurement, relative to the measurement.
      estimate_error_percent: est === null || act === null || act === 0 ? null : Math.round(((est - act) / act) * 1000) / 10,
    };
  });
  const hostBytes = instance.placement?.estimate?.hostBytes;
  return {
    on_gpu: gpus.length > 0,
    gpus,
    estimated_host_mib: typeof hostBytes === 'number' ? mib(hostBytes) : null,
  };
}

function report(ctx) {
  const instance = ctx.instance();
  if (!instance) return { instance: null, memory: null, note: 'no model instance served this answer (an agent replied)' };
  return { instance, memory: memorySummary(instance) };
}

function annotate(target, ctx) {
  target.x_agents = { ...(isObject(target.x_agents) ? target.x_agents : {}), gpu: report(ctx) };
  return target;
}

/** @type {import('../../dist/index.js').Agent} */
export default {
  onResponse(response, ctx) {
    return annotate(response, ctx);
  },
  onStreamChunk(chunk, ctx) {
    if (ctx.state.reported) return chunk;
    const finished = Array.isArray(chunk.choices) && chunk.choices.some((c) => isObject(c) && c.finish_reason != null);
    if (!finished) return chunk;
    ctx.state.reported = true;
    return annotate(chunk, ctx);
  },
};
