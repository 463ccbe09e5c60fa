/**
 * POST /v1/audio/transcriptions: a multipart form whose `model` field names the model; the form goes to that
 * model's instance as the bytes received (llama-server answers it when the model can take audio, else says why).
 */
import type { FastifyRequest } from 'fastify';
import { ClientError } from '../models/index.js';
import type { PromptPipeline } from './prompt-pipeline.js';
import { proxyTo } from './serve-prompt.js';
import type { ProxyApp } from './types.js';

/** The multipart boundary of a content type, or undefined. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  return m ? (m[1] ?? m[2]) : undefined;
}

/**
 * A plain (non-file) field of a multipart form, read from the raw bytes: the audio is never copied or decoded,
 * only the part headers are looked at.
 */
export function formField(raw: Buffer, boundary: string, name: string): string | undefined {
  const delimiter = Buffer.from(`--${boundary}`);
  let at = raw.indexOf(delimiter);
  while (at !== -1) {
    const start = at + delimiter.length;
    const next = raw.indexOf(delimiter, start);
    const headersEnd = raw.indexOf('\r\n\r\n', start);
    if (headersEnd === -1 || (next !== -1 && headersEnd > next)) break;
    const headers = raw.subarray(start, headersEnd).toString('latin1');
    const disposition = /content-disposition:[^\r\n]*\bname="([^"]*)"/i.exec(headers);
    if (disposition?.[1] === name && !/filename=/i.test(headers)) {
      // The value ends before the CRLF that precedes the next delimiter.
      return raw.subarray(headersEnd + 4, next === -1 ? raw.length : next - 2).toString('utf8');
    }
    at = next;
  }
  return undefined;
}

function modelOfForm(request: FastifyRequest): string {
  const contentType = request.headers['content-type'];
  const boundary = boundaryOf(contentType);
  const raw = request.parsedBody?.raw;
  if (!boundary || !raw || !/^multipart\/form-data/i.test(contentType ?? '')) throw new ClientError(400, 'invalid_form', 'a transcription is a multipart/form-data request (fields "file" and "model")');
  const model = formField(raw, boundary, 'model');
  if (model === undefined || model.trim() === '') throw new ClientError(400, 'model_required', 'the form needs a "model" field');
  return model.trim();
}

export function registerTranscriptionRoutes(app: ProxyApp, pipeline: PromptPipeline): void {
  // Kept as bytes (parsedBody.json stays undefined: JSON routes refuse such a body by themselves).
  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer' }, (request, body, done) => {
    request.parsedBody = { raw: typeof body === 'string' ? Buffer.from(body) : body, json: undefined };
    done(null, undefined);
  });
  for (const path of ['/v1/audio/transcriptions', '/audio/transcriptions']) {
    app.post(path, async (request, reply) => {
      const field = modelOfForm(request);
      if (pipeline.backendRoute(field)) throw new ClientError(400, 'unsupported', `model "${field}" is served by the Ollama backend, which has no /v1/audio/transcriptions`);
      const route = await pipeline.route(field);
      return proxyTo(pipeline, request, reply, route, { method: 'POST', path: '/v1/audio/transcriptions' }, { contentType: request.headers['content-type']! });
    });
  }
}
