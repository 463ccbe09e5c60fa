import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A folder of test agent plugins, outside the repository; `add` writes one (no code or no manifest when null). */
export function pluginsRoot(prefix: string): { root: string; add: (name: string, code: string | null, manifest?: object | null) => void } {
  const root = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  const add = (name: string, code: string | null, manifest: object | null = {}) => {
    const dir = path.join(root, name);
    mkdirSync(dir);
    if (manifest) writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ description: `test agent ${name}`, enabled: true, ...manifest }));
    if (code !== null) writeFileSync(path.join(dir, 'index.mjs'), code);
  };
  return { root, add };
}

/** An agent that answers by itself, without the model. */
export const CANNED_AGENT = `export default {
  onRequest(request, ctx) {
    return ctx.reply({ id: 'canned-1', object: 'chat.completion', created: 1, model: request.model, choices: [{ index: 0, message: { role: 'assistant', content: 'canned answer' }, finish_reason: 'stop' }] });
  },
};\n`;
