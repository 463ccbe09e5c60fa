/**
 * The floor for any proxy written in Node, for bench:proxy's "node" column: node:http in front, one undici pool
 * behind (the same client the proxy uses), the body read whole and sent on, the answer streamed back. No routing,
 * no checks, no records: what is left is the cost of two HTTP hops through one Node event loop.
 *
 * tsx bench/node-floor.ts <listen port> <upstream port> <upstream API key>
 */
import http from 'node:http';
import { Pool } from 'undici';

const [port, upstreamPort, key] = process.argv.slice(2);
const upstream = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 17 });

/** llama-server closes a connection after a streamed answer: a request sent on it fails unanswered, and goes again. */
async function send(path: string, body: Buffer) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await upstream.request({ method: 'POST', path, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 4 || (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET')) throw err;
    }
  }
}

const server = http.createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (chunk: Buffer) => parts.push(chunk));
  req.on('end', () => {
    void (async () => {
      try {
        const answer = await send(req.url ?? '/', Buffer.concat(parts));
        const length = answer.headers['content-length'];
        res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type']), ...(typeof length === 'string' ? { 'content-length': length } : {}) });
        for await (const chunk of answer.body) res.write(chunk);
        res.end();
      } catch (err) {
        if (!res.headersSent) res.writeHead(502);
        res.end(String(err));
      }
    })();
  });
});
server.listen(Number(port), '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`));
