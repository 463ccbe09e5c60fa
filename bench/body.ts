/**
 * bench:body — what the proxy does with a coding agent's 200 KB request body before forwarding it, in process
 * (no HTTP): the body parser (depth check, guarded fields, the rest parsed a field at a time), agents' planning
 * check on the last user message, and for comparison what a whole parse and the Anthropic bridge's translation
 * (what planning did before) cost. The body is an Anthropic Messages turn of Claude Code's shape: a system prompt,
 * then tool_use / tool_result pairs carrying this repository's sources, ending with a tool_result.
 *
 * npm run bench:body [-- --kb 200 --runs 300]
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { FastifyRequest } from 'fastify';
import { anthropicBridge } from '../src/api/anthropic.js';
import { jsonBodyParser, planningBody } from '../src/api/body.js';

const { values } = parseArgs({ options: { kb: { type: 'string', default: '200' }, runs: { type: 'string', default: '300' } } });
const BYTES = Number(values.kb) * 1000;
const RUNS = Number(values.runs);

function claudeCodeTurn(bytes: number): Buffer {
  const dir = path.resolve('src/api');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts')).sort();
  const messages: unknown[] = [{ role: 'user', content: [{ type: 'text', text: 'Find where request bodies are parsed — and why.' }] }];
  const base = { model: 'claude', max_tokens: 4096, stream: true, system: 'You are Claude Code, a coding agent. '.repeat(100) };
  for (let i = 0; JSON.stringify({ ...base, messages }).length < bytes; i++) {
    const file = files[i % files.length]!;
    messages.push({ role: 'assistant', content: [{ type: 'tool_use', id: `toolu_${i}`, name: 'Read', input: { file_path: `src/api/${file}` } }] });
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: `toolu_${i}`, content: readFileSync(path.join(dir, file), 'utf8') }] });
  }
  return Buffer.from(JSON.stringify({ ...base, messages }));
}

const raw = claudeCodeTurn(BYTES);
const parser = jsonBodyParser();
function parsed(): FastifyRequest {
  const request = {} as FastifyRequest;
  parser(request, raw, (err) => {
    if (err) throw err;
  });
  return request;
}

function time(label: string, f: () => unknown): void {
  for (let i = 0; i < Math.min(100, RUNS); i++) f();
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    f();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  samples.sort((a, b) => a - b);
  console.log(`${label.padEnd(64)} p50 ${samples[Math.floor(RUNS / 2)]!.toFixed(3)} ms  p90 ${samples[Math.floor(RUNS * 0.9)]!.toFixed(3)} ms`);
}

console.log(`an Anthropic Messages body of ${raw.length} bytes (Claude Code's shape), ${RUNS} runs each\n`);
time('body parser (what every request pays), then model and stream', () => {
  const body = parsed().parsedBody!.json as Record<string, unknown>;
  return [body.model, body.stream];
});
time('  + agents\' planning check (the last user message only)', () => {
  const request = parsed();
  return anthropicBridge.prompt.text(planningBody(request, anthropicBridge.prompt.field, (m) => anthropicBridge.prompt.wanted(m)));
});
time('before: decode + JSON.parse of the whole body', () => JSON.parse(raw.toString('utf8')));
time('before: + translation to chat for planning (bundled agents loaded)', () => anthropicBridge.toChat(JSON.parse(raw.toString('utf8')) as Record<string, unknown>));
