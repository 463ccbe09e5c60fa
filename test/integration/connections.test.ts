/**
 * Client connections on real sockets: slow and idle clients are closed at the configured deadlines (short here),
 * a long answer is not cut by them, the per-client cap holds, and request lines in other HTTP versions get 505.
 */
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { waitFor } from '../helpers/processes.js';

const tools = llamaTools();

interface Probe {
  socket: net.Socket;
  received: () => string;
  closed: () => boolean;
  /** Milliseconds from the connection to its close (NaN while open). */
  closedAfter: () => number;
  connected: Promise<void>;
}

/** A raw client socket that records what it gets and when it is closed. */
function probe(url: string, opts: { localAddress?: string } = {}): Probe {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  const socket = net.connect({ host: hostname, port: Number(port), ...opts });
  let data = '';
  let closedAt = Number.NaN;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (data += chunk));
  socket.on('error', () => {});
  socket.on('close', () => (closedAt = Date.now()));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, connected, received: () => data, closed: () => !Number.isNaN(closedAt), closedAfter: () => closedAt - started };
}

/** Writes `piece` every `everyMs` while the socket is open. */
function trickle(socket: net.Socket, piece: string, everyMs: number): void {
  const timer = setInterval(() => {
    if (socket.destroyed) clearInterval(timer);
    else socket.write(piece);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

/** Sends one raw request and resolves with everything the proxy answered until it closed the connection. */
async function rawRequest(url: string, head: string): Promise<string> {
  const p = probe(url);
  await p.connected;
  p.socket.write(head);
  expect(await waitFor(p.closed, 5000)).toBe(true);
  return p.received();
}

const statusLine = (answer: string): string => answer.split('\r\n')[0] ?? '';
const bodyOf = (answer: string): string => answer.slice(answer.indexOf('\r\n\r\n') + 4);

/**
 * Stands in for an Ollama server whose model thinks long before it answers: /api/chat sends nothing for
 * `silentMs`, then `lines` NDJSON lines `everyMs` apart.
 */
async function slowOllama(silentMs: number, lines: number, everyMs: number): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url !== '/api/chat') return void res.writeHead(404).end('{}');
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        let sent = 0;
        const timer = setInterval(() => {
          const done = ++sent === lines;
          res.write(`${JSON.stringify({ model: 'slow', message: { role: 'assistant', content: `w${sent}` }, done })}\n`);
          if (done) {
            clearInterval(timer);
            res.end();
          }
        }, everyMs);
        res.once('close', () => clearInterval(timer));
      }, silentMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${address.port}`, server };
}

describe.skipIf(!tools.server)(`client connections${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  // headers within 1 s, the whole request within 2 s, 2 s of keep-alive; no cap (the flood below is one client).
  const TIMEOUTS = { headersTimeout: 1, requestTimeout: 2, keepAliveTimeout: 2, maxConnectionsPerClient: 0 };
  let t: TestProxy;
  let upstream: { url: string; server: Server };

  beforeAll(async () => {
    upstream = await slowOllama(2500, 10, 250);
    const { root } = await modelsFolder([]);
    t = await startTestProxy(tools.server!, root, { server: TIMEOUTS, backends: { ollama: { url: upstream.url } }, models: { slow: { backend: 'ollama' } } });
  });
  afterAll(async () => {
    await t?.proxy.close();
    await new Promise((resolve) => upstream?.server.close(resolve));
  });

  it('closes 100 silent connections and 100 with half a request at the header deadline', async () => {
    const silent = Array.from({ length: 100 }, () => probe(t.url));
    const half = Array.from({ length: 100 }, () => probe(t.url));
    await Promise.all([...silent, ...half].map((p) => p.connected));
    for (const p of half) p.socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n');
    const all = [...silent, ...half];
    expect(await waitFor(() => all.every((p) => p.closed()), 4000)).toBe(true);
    const times = all.map((p) => p.closedAfter());
    // At the deadline (1 s, checked every 250 ms), not before it and not minutes later.
    expect(Math.min(...times)).toBeGreaterThanOrEqual(900);
    expect(Math.max(...times)).toBeLessThan(2500);
    for (const p of half) expect(statusLine(p.received())).toBe('HTTP/1.1 408 Request Timeout');
    // nothing reached a route
    expect(t.proxy.pool.list()).toHaveLength(0);
  });

  it('closes a connection whose headers trickle in, although bytes keep coming', async () => {
    const p = probe(t.url);
    await p.connected;
    p.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    trickle(p.socket, 'X-Slow: 1\r\n', 100);
    expect(await waitFor(p.closed, 4000)).toBe(true);
    expect(p.closedAfter()).toBeGreaterThanOrEqual(900);
    expect(p.closedAfter()).toBeLessThan(2500);
    expect(statusLine(p.received())).toBe('HTTP/1.1 408 Request Timeout');
  });

  it('closes a request whose body trickles in at the request deadline', async () => {
    const p = probe(t.url);
    await p.connected;
    p.socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    trickle(p.socket, ' ', 100);
    expect(await waitFor(p.closed, 5000)).toBe(true);
    expect(p.closedAfter()).toBeGreaterThanOrEqual(1900);
    expect(p.closedAfter()).toBeLessThan(3500);
    expect(statusLine(p.received())).toBe('HTTP/1.1 408 Request Timeout');
    expect(t.proxy.pool.list()).toHaveLength(0);
  });

  it('closes an idle keep-alive connection after keepAliveTimeout, not before', async () => {
    const p = probe(t.url);
    await p.connected;
    p.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await waitFor(() => p.received().includes('\r\n\r\n'), 2000)).toBe(true);
    expect(statusLine(p.received())).toBe('HTTP/1.1 200 OK');
    const answeredAt = Date.now();
    // Past the header deadline (1 s), within keep-alive (2 s): idle between requests is keep-alive's alone.
    await new Promise((r) => setTimeout(r, 1500));
    expect(p.closed()).toBe(false);
    expect(await waitFor(p.closed, 3000)).toBe(true);
    // Node 20.20 adds a second of grace to keepAliveTimeout; older ones do not.
    expect(Date.now() - answeredAt).toBeGreaterThanOrEqual(1900);
    expect(Date.now() - answeredAt).toBeLessThan(3800);
  });

  it('does not cut an answer that takes longer than requestTimeout: 2.5 s of silence, then 2.5 s of streaming', async () => {
    const started = Date.now();
    const res = await fetch(`${t.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'think long' }] }),
    });
    expect(res.status).toBe(200);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { message: { content: string }; done: boolean });
    expect(Date.now() - started).toBeGreaterThan(4500);
    expect(lines.map((l) => l.message.content)).toEqual(Array.from({ length: 10 }, (_, i) => `w${i + 1}`));
    expect(lines.at(-1)!.done).toBe(true);
  });

  it('answers a request line in HTTP/2.0, 0.9, 1.2, 3.0 (and the HTTP/2 preface) with 505; 1.0 and 1.1 are served', async () => {
    for (const version of ['HTTP/2.0', 'HTTP/0.9', 'HTTP/1.2', 'HTTP/3.0']) {
      const answer = await rawRequest(t.url, `GET /v1/models ${version}\r\nHost: 127.0.0.1\r\n\r\n`);
      expect(statusLine(answer), version).toBe('HTTP/1.1 505 HTTP Version Not Supported');
      const body = JSON.parse(bodyOf(answer)) as { error: { message: string; code: string } };
      expect(body.error.code).toBe('http_version_not_supported');
      expect(body.error.message).toMatch(/not supported: this server speaks HTTP\/1\.1/);
    }
    // the Ollama family gets its own shape
    const ollama = await rawRequest(t.url, 'GET /api/tags HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n');
    expect(statusLine(ollama)).toBe('HTTP/1.1 505 HTTP Version Not Supported');
    expect(JSON.parse(bodyOf(ollama))).toEqual({ error: 'HTTP/2.0 is not supported: this server speaks HTTP/1.1 (and HTTP/1.0)' });
    const preface = await rawRequest(t.url, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(statusLine(preface)).toBe('HTTP/1.1 505 HTTP Version Not Supported');
    for (const version of ['HTTP/1.0', 'HTTP/1.1']) {
      const answer = await rawRequest(t.url, `GET /health ${version}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(statusLine(answer), version).toMatch(/^HTTP\/1\.1 200 /);
    }
  });
});

describe.skipIf(!tools.server)(`connections per client${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  const MAX = 8;
  let t: TestProxy;

  beforeAll(async () => {
    const { root } = await modelsFolder([]);
    // Deadlines longer than the test, so only the cap closes anything.
    t = await startTestProxy(tools.server!, root, { server: { maxConnectionsPerClient: MAX, headersTimeout: 20, requestTimeout: 20 } });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('refuses a connection over the cap with 503 at once, counts per address, and takes one again when one closes', async () => {
    const held = Array.from({ length: MAX }, () => probe(t.url));
    await Promise.all(held.map((p) => p.connected));
    // Wait until the proxy has taken all of them in.
    await new Promise((r) => setTimeout(r, 100));
    const extra = probe(t.url);
    await extra.connected;
    extra.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await waitFor(extra.closed, 2000)).toBe(true);
    expect(statusLine(extra.received())).toBe('HTTP/1.1 503 Service Unavailable');
    expect(JSON.parse(bodyOf(extra.received())).error.code).toBe('too_many_connections');
    expect(held.every((p) => !p.closed())).toBe(true);

    // Another client address (127.0.0.2 is loopback too) has a cap of its own.
    const other = probe(t.url, { localAddress: '127.0.0.2' });
    await other.connected;
    other.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(await waitFor(other.closed, 2000)).toBe(true);
    expect(statusLine(other.received())).toBe('HTTP/1.1 200 OK');

    // One closed: a new connection from the first address is served again.
    held.pop()!.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const again = probe(t.url);
    await again.connected;
    again.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(await waitFor(again.closed, 2000)).toBe(true);
    expect(statusLine(again.received())).toBe('HTTP/1.1 200 OK');
    for (const p of held) p.socket.destroy();
  });
});
