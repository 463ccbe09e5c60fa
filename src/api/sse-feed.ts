/**
 * Live feeds over Server-Sent Events (the dashboard's Requests and Logs pages): a response taken over from
 * fastify that stays open, a comment every 15 s so idle connections and proxies in between do not time it out, a
 * bound on how many are open at once, and a subscriber that does not read (its buffer over 4 MiB) is closed
 * rather than let the proxy buffer for it. Events are gathered for 100 ms and go out in one write: a write to a
 * socket costs tens of microseconds of system time (on loopback the receiver's side too), so at hundreds of
 * requests a second one write per record cost the proxy ~12 % of its CPU (bench:requests), one per 100 ms ~nothing.
 * All close at shutdown.
 */
import type { FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
import { ClientError } from '../models/index.js';

const HEARTBEAT_MS = 15_000;
const MAX_BUFFERED = 4 * 1024 * 1024;
/** How long events wait to go out together. */
const BATCH_MS = 100;

export interface Feed {
  /** Sends one event (`data` is already JSON or a line of text without newlines). */
  send(data: string, event?: string): void;
  /** Called once when the feed closes (client gone, too slow, shutdown). */
  onClose(fn: () => void): void;
}

export class SseFeeds {
  private readonly open = new Set<ServerResponse>();

  constructor(readonly max = 64) {}

  get size(): number {
    return this.open.size;
  }

  /** Takes the reply over as an event stream; 503 when `max` feeds are open already. */
  start(reply: FastifyReply): Feed {
    if (this.open.size >= this.max) throw new ClientError(503, 'too_many_feeds', `${this.max} live feeds are open already; close one (a browser tab) and retry`);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.write(': feed open\n\n');
    this.open.add(res);
    const closers: (() => void)[] = [];
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    let closed = false;
    let pending = '';
    const flush = () => {
      const text = pending;
      pending = '';
      if (closed || res.destroyed || text === '') return;
      if (res.writableLength > MAX_BUFFERED) {
        res.destroy();
        return;
      }
      res.write(text);
    };
    const close = () => {
      if (closed) return;
      closed = true;
      pending = '';
      clearInterval(heartbeat);
      this.open.delete(res);
      for (const fn of closers) fn();
    };
    res.once('close', close);
    return {
      send: (data, event) => {
        if (closed || res.destroyed) return;
        if (pending === '') setTimeout(flush, BATCH_MS).unref();
        pending += `${event ? `event: ${event}\n` : ''}data: ${data}\n\n`;
      },
      onClose: (fn) => {
        if (closed) fn();
        else closers.push(fn);
      },
    };
  }

  /** Ends every feed (shutdown). */
  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }
}
