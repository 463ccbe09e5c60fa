import { describe, expect, it } from 'vitest';
import { formatPlan } from '../../src/cli/plan.js';
import { requestsTable } from '../../src/cli/status.js';
import type { RequestRecord } from '../../src/requests/index.js';

describe('formatPlan', () => {
  const base = {
    model: 'llama-3-8b', file: '/m/llama.gguf', on_disk: true, ctx: 8192, parallel: 1, already_running: [], first_answer: null, reserve_mib: 256,
    host: { total_mib: 32768, available_mib: 20000, would_take_mib: 306 },
  };
  it('names the placement, the GPU it picks and what it stops first', () => {
    const text = formatPlan({
      ...base,
      decision: 'place',
      reason: 'fits on GPU 0',
      placement: { gpus: [0], gpu_names: ['Sim Big'], n_gpu_layers: 33, n_layers: 33, split_mode: 'none', tensor_split: null, summary: 'GPU 0 · ngl 33', estimate_mib: { gpus: { '0': 6164 }, host: 306 }, reason: 'fits on GPU 0' },
      evicts: [{ instance: 'i3', model: 'qwen', gpus_mib: { '0': 4000 } }],
      devices: [
        { id: 0, name: 'Sim Big', total_mib: 12288, free_mib: 8000, used_mib: 4288, ours: [{ instance: 'i3', model: 'qwen', mib: 4000, evicted: true }], would_take_mib: 6164, chosen: true },
        { id: 1, name: 'Sim Small', total_mib: 2048, free_mib: 2048, used_mib: 0, ours: [], would_take_mib: 0, chosen: false },
      ],
    } as never);
    expect(text).toContain('would run on GPU 0 · ngl 33 (Sim Big): 6.02 GiB on GPUs, 306 MiB on the host');
    expect(text).toContain('after stopping: qwen (i3)');
    expect(text).toMatch(/0\s+Sim Big.*qwen:3.91 GiB\(evicted\)\s+6.02 GiB\s+<- chosen/);
    expect(text).toMatch(/1\s+Sim Small\s+2.00 GiB\s+2.00 GiB\s+-\s+-/);
  });
  it('says why it would not start', () => {
    const text = formatPlan({ ...base, decision: 'refuse', reason: 'needs 40 GiB, the largest GPU has 12 GiB', placement: null, evicts: [], devices: [] } as never);
    expect(text).toContain('would not start now: refuse — needs 40 GiB, the largest GPU has 12 GiB');
  });
});

describe('requestsTable', () => {
  it('one row per request, aborted ones marked, missing figures as -', () => {
    const r = { time: '2025-01-02T10:00:00.000Z', model: 'a', endpoint: 'chat/completions', key: 'alice', instance: 'i1', placement: 'GPU 1 · ngl 9', status: 200, aborted: true, prompt_tokens: 12, completion_tokens: null, ttft_ms: 40.2, generation_tps: 101.25, duration_ms: 300 } as RequestRecord;
    const text = requestsTable([r]);
    expect(text.split('\n')[0]).toMatch(/^TIME\s+MODEL\s+ENDPOINT\s+KEY\s+WHERE\s+STATUS/);
    expect(text).toMatch(/a\s+chat\/completions\s+alice\s+i1 GPU 1 · ngl 9\s+200 aborted\s+12\s+-\s+40\s+101.3\s+300/);
    expect(requestsTable([])).toBe('(no request yet)');
  });
});
