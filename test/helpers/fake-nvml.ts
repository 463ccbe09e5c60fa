import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Compiles test/fixtures/fake-nvml.c into a libnvidia-ml.so.1 stand-in; undefined (with the reason) without gcc. */
export function buildFakeNvml(): { library?: string; reason: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-fake-nvml-'));
  const library = path.join(dir, 'libnvidia-ml.so.1');
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-O1', '-o', library, path.resolve('test/fixtures/fake-nvml.c')], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { reason: `cannot compile the NVML stand-in: ${r.error?.message ?? r.stderr}` };
  return { library, reason: '' };
}

export interface FakeGpu {
  uuid: string;
  name: string;
  bus: string;
  totalMiB: number;
  usedMiB: number;
  utilGpu?: number;
  utilMem?: number;
  tempC?: number;
  powerMw?: number;
  cc?: [number, number];
}

/** Writes the stand-in's script and points $FAKE_NVML_FILE at it (read by the library at each device count). */
export function scriptFakeNvml(file: string, gpus: FakeGpu[], procs: { gpu: number; pid: number; usedMiB: number }[] = []): void {
  const lines = gpus.map(
    (g) =>
      `gpu ${g.uuid} ${g.name.replace(/ /g, '_')} ${g.bus} ${g.totalMiB} ${g.usedMiB} ${g.utilGpu ?? 0} ${g.utilMem ?? 0} ${g.tempC ?? 40} ${g.powerMw ?? 0} ${g.cc?.[0] ?? 8} ${g.cc?.[1] ?? 9}`,
  );
  lines.push(...procs.map((p) => `proc ${p.gpu} ${p.pid} ${p.usedMiB}`));
  writeFileSync(file, `${lines.join('\n')}\n`);
  process.env.FAKE_NVML_FILE = file;
}
