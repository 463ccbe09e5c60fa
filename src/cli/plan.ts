/**
 * `llama-smart-proxy plan MODEL [--ctx N]`: where a running proxy would place a model now, what it would evict
 * and each device's memory, without loading it (GET /plan).
 */
import type { planDocument } from '../api/plan.js';
import { table } from './gpus.js';
import { proxyClient, type ProxyFlags } from './proxy-client.js';

export interface PlanFlags extends ProxyFlags {
  ctx?: number;
  json?: boolean;
}

type PlanDoc = ReturnType<typeof planDocument>;

const gib = (m: number) => (m >= 1024 ? `${(m / 1024).toFixed(2)} GiB` : `${Math.round(m)} MiB`);

/** The plan as a person reads it (pure). */
export function formatPlan(p: PlanDoc): string {
  const lines = [`${p.model} (ctx ${p.ctx}, ${p.parallel} slot${p.parallel === 1 ? '' : 's'})${p.on_disk ? '' : ' — not downloaded yet; header read from the Hub'}`];
  for (const r of p.already_running) lines.push(`  already running: ${r.instance} on ${r.placement} (${r.state}); a request goes there`);
  if (p.placement) {
    const est = p.placement.estimate_mib;
    const onGpus = Object.values(est.gpus).reduce((a, b) => a + b, 0);
    lines.push(`would run on ${p.placement.summary}${p.placement.gpu_names.length ? ` (${p.placement.gpu_names.join(', ')})` : ''}: ${gib(onGpus)} on GPUs, ${gib(est.host)} on the host`);
    lines.push(`  ${p.placement.reason}`);
  } else lines.push(`would not start now: ${p.decision} — ${p.reason}`);
  if (p.evicts.length) lines.push(`after stopping: ${p.evicts.map((e) => `${e.model} (${e.instance})`).join(', ')}`);
  if (p.devices.length) {
    lines.push('');
    lines.push(
      table([
        ['GPU', 'NAME', 'TOTAL', 'FREE', 'OURS', 'WOULD TAKE', ''],
        ...p.devices.map((d) => [String(d.id), d.name, gib(d.total_mib), gib(d.free_mib), d.ours.map((o) => `${o.model}:${gib(o.mib)}${o.evicted ? '(evicted)' : ''}`).join(' ') || '-', d.would_take_mib ? gib(d.would_take_mib) : '-', d.chosen ? '<- chosen' : '']),
      ]),
    );
  }
  lines.push(`host: ${gib(p.host.available_mib)} available of ${gib(p.host.total_mib)}${p.host.would_take_mib ? `, would take ${gib(p.host.would_take_mib)}` : ''}`);
  return lines.join('\n');
}

export async function planCommand(model: string, flags: PlanFlags): Promise<void> {
  const client = proxyClient(flags);
  const q = new URLSearchParams({ model, ...(flags.ctx !== undefined ? { ctx: String(flags.ctx) } : {}) });
  const plan = await client.get<PlanDoc>(`/plan?${q}`);
  process.stdout.write(flags.json ? `${JSON.stringify(plan, null, 2)}\n` : `${formatPlan(plan)}\n`);
}
