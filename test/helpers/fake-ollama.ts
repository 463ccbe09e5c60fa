/**
 * A small HTTP server that answers like Ollama 0.9 does (responses recorded from a real one, model llama3.2:1b,
 * trimmed): /api/version, /api/tags, /api/ps, /api/show, /api/chat and /api/generate (NDJSON streamed, or one
 * object with stream: false), /api/embed, /api/embeddings, /v1/models, /v1/chat/completions (SSE streamed or
 * not), /v1/embeddings. A model named "hang" never answers (for read timeouts). Every request is recorded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  body: Record<string, unknown> | undefined;
}

export interface FakeOllama {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Lines of the streamed /api/chat answer, as sent. */
  chatLines: string[];
  close(): Promise<void>;
}

const MODEL = 'llama3.2:1b';
const DETAILS = { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '1.2B', quantization_level: 'Q8_0' };
const TAG = {
  name: MODEL,
  model: MODEL,
  modified_at: '2025-06-10T14:02:11.148218302+02:00',
  size: 1321098329,
  digest: 'baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878',
  details: DETAILS,
};
const STATS = { total_duration: 412345678, load_duration: 12345678, prompt_eval_count: 26, prompt_eval_duration: 45678901, eval_count: 3, eval_duration: 98765432 };
const WORDS = ['Hello', '!', ' How'];

function chatLines(model: string): string[] {
  const at = (i: number) => `2025-06-10T12:30:0${i}.123456789Z`;
  return [
    ...WORDS.map((w, i) => JSON.stringify({ model, created_at: at(i), message: { role: 'assistant', content: w }, done: false })),
    JSON.stringify({ model, created_at: at(3), message: { role: 'assistant', content: '' }, done_reason: 'length', done: true, ...STATS }),
  ];
}

function generateLines(model: string): string[] {
  return [
    ...WORDS.map((w, i) => JSON.stringify({ model, created_at: `2025-06-10T12:31:0${i}.1Z`, response: w, done: false })),
    JSON.stringify({ model, created_at: '2025-06-10T12:31:03.1Z', response: '', done: true, done_reason: 'length', context: [128006, 9125, 128007], ...STATS }),
  ];
}

function openaiChunks(model: string): string[] {
  const head = { id: 'chatcmpl-382', object: 'chat.completion.chunk', created: 1749558000, model, system_fingerprint: 'fp_ollama' };
  return [
    ...WORDS.map((w) => JSON.stringify({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: w }, finish_reason: null }] })),
    JSON.stringify({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: 'length' }] }),
    JSON.stringify({ ...head, choices: [], usage: { prompt_tokens: 26, completion_tokens: 3, total_tokens: 29 } }),
  ];
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  const text = Buffer.concat(parts).toString('utf8');
  return text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text);
}

/** Writes lines a few milliseconds apart, as a generating model would. */
async function stream(res: ServerResponse, contentType: string, pieces: string[]): Promise<void> {
  res.writeHead(200, { 'content-type': contentType });
  for (const piece of pieces) {
    res.write(piece);
    await new Promise((r) => setTimeout(r, 5));
  }
  res.end();
}

export async function startFakeOllama(port = 0): Promise<FakeOllama> {
  const requests: RecordedRequest[] = [];
  const hanging = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0]!;
      const body = await readBody(req);
      requests.push({ method: req.method ?? 'GET', path, body });
      const model = typeof body?.model === 'string' ? body.model : MODEL;
      if (model === 'hang') {
        hanging.add(res);
        return;
      }
      if (req.method === 'GET' && path === '/') return void res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('Ollama is running');
      if (path === '/api/version') return json(res, 200, { version: '0.9.0' });
      if (path === '/api/tags') return json(res, 200, { models: [TAG] });
      if (path === '/api/ps') return json(res, 200, { models: [{ ...TAG, expires_at: '2025-06-10T14:40:00.1+02:00', size_vram: 1321098329, context_length: 4096 }] });
      if (model !== MODEL) return json(res, 404, path.startsWith('/v1/') ? { error: { message: `model "${model}" not found, try pulling it first`, type: 'api_error', param: null, code: null } } : { error: `model '${model}' not found` });
      switch (path) {
        case '/api/show':
          return json(res, 200, { license: 'LLAMA 3.2 COMMUNITY LICENSE AGREEMENT', modelfile: '# Modelfile generated by "ollama show"', parameters: 'stop "<|eot_id|>"', template: '<|start_header_id|>', details: DETAILS, model_info: { 'general.architecture': 'llama', 'llama.context_length': 131072 }, capabilities: ['completion', 'tools'], modified_at: TAG.modified_at });
        case '/api/chat':
          if (body?.stream === false) return json(res, 200, { model, created_at: '2025-06-10T12:30:03.5Z', message: { role: 'assistant', content: WORDS.join('') }, done_reason: 'length', done: true, ...STATS });
          return stream(res, 'application/x-ndjson', chatLines(model).map((l) => `${l}\n`));
        case '/api/generate':
          if (body?.stream === false) return json(res, 200, { model, created_at: '2025-06-10T12:31:03.5Z', response: WORDS.join(''), done: true, done_reason: 'length', context: [1, 2], ...STATS });
          return stream(res, 'application/x-ndjson', generateLines(model).map((l) => `${l}\n`));
        case '/api/embed':
          return json(res, 200, { model, embeddings: [[0.6, 0.8]], total_duration: 1000, load_duration: 10, prompt_eval_count: 2 });
        case '/api/embeddings':
          return json(res, 200, { embedding: [1.5, 2] });
        case '/v1/chat/completions':
          if (body?.stream === true) return stream(res, 'text/event-stream', [...openaiChunks(model).map((c) => `data: ${c}\n\n`), 'data: [DONE]\n\n']);
          return json(res, 200, { id: 'chatcmpl-77', object: 'chat.completion', created: 1749558000, model, system_fingerprint: 'fp_ollama', choices: [{ index: 0, message: { role: 'assistant', content: WORDS.join('') }, finish_reason: 'length' }], usage: { prompt_tokens: 26, completion_tokens: 3, total_tokens: 29 } });
        case '/v1/embeddings':
          return json(res, 200, { object: 'list', data: [{ object: 'embedding', embedding: [0.6, 0.8], index: 0 }], model, usage: { prompt_tokens: 2, total_tokens: 2 } });
        default:
          return json(res, 404, { error: '404 page not found' });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    requests,
    chatLines: chatLines(MODEL),
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
