/**
 * llama-server closes its connection after every streamed answer although it announced keep-alive. A streamed
 * request to an instance therefore says `connection: close`: undici must not send the next request on that
 * socket, where it failed and went again behind every request queued since (a flood's requests were overtaken by
 * later ones). Here a server that closes the same way stands in for llama-server, and forward() runs behind a
 * node:http server as in the proxy.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool as UndiciPool } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { forward, instanceTarget } from '../../src/api/upstream.js';
import type { Instance } from '../../src/pool/instance.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return text;
}

/** Streams three events, then closes the socket as llama-server does; a plain answer keeps it alive. */
async function fakeLlamaServer(): Promise<{ url: string; seen: { stream: boolean; connection: string | undefined }[] }> {
  const seen: { stream: boolean; connection: string | undefined }[] = [];
  const url = await listen(
    createServer((req, res) => {
      void readBody(req).then((text) => {
        const stream = (JSON.parse(text) as { stream?: boolean }).stream === true;
        seen.push({ stream, connection: req.headers.connection });
        if (!stream) {
          res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive' }).end('{"ok":true}');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'keep-alive' });
        for (let i = 0; i < 3; i++) res.write(`data: {"i":${i}}\n\n`);
        res.end('data: [DONE]\n\n', () => res.socket?.destroy());
      });
    }),
  );
  return { url, seen };
}

describe('streamed requests to an instance', () => {
  it('are sent once each, with connection: close; plain ones keep the connection alive', async () => {
    const upstream = await fakeLlamaServer();
    const dispatcher = new UndiciPool(upstream.url, { connections: 1, pipelining: 1, keepAliveTimeout: 10_000 });
    const sent = vi.spyOn(dispatcher, 'request');
    const instance = { id: 'i1', url: upstream.url, authHeaders: {}, spec: { modelId: 'm' }, exit: undefined, hung: undefined, waitExit: () => new Promise(() => {}) } as unknown as Instance;
    const target = instanceTarget(dispatcher, instance, { readTimeoutMs: 10_000 });
    const proxyUrl = await listen(
      createServer((req, res) => {
        void readBody(req).then((body) => forward(target, { method: 'POST', path: '/v1/chat/completions', body, contentType: 'application/json', stream: (JSON.parse(body) as { stream?: boolean }).stream === true }, res));
      }),
    );
    const call = (stream: boolean) =>
      fetch(`${proxyUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stream }) }).then(async (r) => ({ status: r.status, text: await r.text() }));

    // Twelve streams at once through one connection: each one after another's close.
    const answers = await Promise.all(Array.from({ length: 12 }, () => call(true)));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.text.endsWith('data: [DONE]\n\n')).toBe(true);
    }
    expect(sent).toHaveBeenCalledTimes(12);
    expect(upstream.seen.map((s) => s.connection)).toEqual(Array(12).fill('close'));

    const plain = await Promise.all(Array.from({ length: 3 }, () => call(false)));
    expect(plain.map((p) => p.status)).toEqual([200, 200, 200]);
    expect(upstream.seen.slice(12).map((s) => s.connection)).toEqual(['keep-alive', 'keep-alive', 'keep-alive']);
    await dispatcher.close();
  });
});
