import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PRESET_IDS, REPLICA_QUANTS, replicaTensors, writeSparseReplica,
  type PresetId, type ReplicaQuant,
} from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';

const run = promisify(execFile);
const tools = llamaTools();
const fitParams = tools.fitParams;
const quantize = tools.quantize;
const skipReason = tools.reason || 'binary not found';

let dir: string;
const replicaPath = (id: PresetId, quant: ReplicaQuant): string => join(dir, `${id}-${quant}.gguf`);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gguf-replicas-'));
  if (!fitParams && !quantize) return;
  for (const id of PRESET_IDS) {
    for (const quant of REPLICA_QUANTS) await writeSparseReplica(replicaPath(id, quant), id, quant);
  }
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const cases = PRESET_IDS.flatMap((id) => REPLICA_QUANTS.map((quant) => [id, quant] as const));

describe.skipIf(!fitParams)(`llama-fit-params accepts every sparse replica${fitParams ? '' : ` (skipped: ${skipReason})`}`, () => {
  it.each(cases)('%s %s', async (id, quant) => {
    // --fit-print on prints one line per device plus "Host", each "<name> <model> <context> <compute>" in MiB.
    const { stdout } = await run(fitParams!, ['-m', replicaPath(id, quant), '-c', '4096', '--fit-print', 'on'], {
      maxBuffer: 16 << 20,
    });
    const host = /^Host (\d+) (\d+) (\d+)\s*$/m.exec(stdout);
    expect(host, stdout).not.toBeNull();
    expect(Number(host![2])).toBeGreaterThan(0); // the 4096-token KV cache
  });
});

/**
 * Per-tensor lines of `llama-quantize --dry-run` (on stderr), e.g.
 * "[  17/ 291] blk.1.attn_v.weight - [ 4096, 1024, 1, 1], type =    f16, size =  8.00 MiB ->  3.28 MiB (q6_K)"
 * or, for a tensor left as is, "... type =    f32, size =    0.016 MiB".
 */
const DRY_RUN_LINE = /^\[\s*\d+\/\s*\d+\]\s+(\S+)\s+-\s+\[[^\]]*\],\s+type =\s+(\S+),\s+size =\s+[\d.]+ MiB(?:\s+->\s+[\d.]+ MiB \((\S+)\))?/;

function parseDryRun(log: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const line of log.split('\n')) {
    const m = DRY_RUN_LINE.exec(line);
    if (m) types.set(m[1]!, (m[3] ?? m[2]!).toUpperCase());
  }
  return types;
}

describe.skipIf(!quantize)(`llama-quantize --dry-run picks the replica types${quantize ? '' : ` (skipped: ${skipReason})`}`, () => {
  const targets = PRESET_IDS.flatMap((id) => (['Q4_K_M', 'Q8_0'] as const).map((quant) => [id, quant] as const));

  it.each(targets)('%s F16 -> %s', async (id, quant) => {
    const { stderr } = await run(quantize!, ['--dry-run', replicaPath(id, 'F16'), quant], { maxBuffer: 16 << 20 });
    const llama = parseDryRun(stderr);
    const ours = new Map(replicaTensors(id, quant).map((t) => [t.name, t.type.toUpperCase()]));
    expect(llama.size).toBe(ours.size);
    expect(Object.fromEntries(llama)).toEqual(Object.fromEntries(ours));
  });
});
