/**
 * The counters the key policy decides from (key-policy.ts): per key, requests in flight, the start times of the
 * last minute's requests (at most requestsPerMinute kept), tokens used on the current UTC day.
 */
import { admit, utcDay, type Admission, type KeyLimits } from './key-policy.js';

interface KeyState {
  inFlight: number;
  starts: number[];
  day: number;
  tokens: number;
}

export class KeyLimiter {
  private readonly state = new Map<string, KeyState>();

  private of(name: string, now: number): KeyState {
    let s = this.state.get(name);
    if (!s) this.state.set(name, (s = { inFlight: 0, starts: [], day: utcDay(now), tokens: 0 }));
    if (s.day !== utcDay(now)) {
      s.day = utcDay(now);
      s.tokens = 0;
    }
    return s;
  }

  /** Admits a request (counting it as started and in flight) or says which limit refuses it. */
  tryStart(name: string, limits: KeyLimits, now = Date.now()): Admission {
    const s = this.of(name, now);
    while (s.starts.length > 0 && s.starts[0]! <= now - 60_000) s.starts.shift();
    const decision = admit(name, limits, { inFlight: s.inFlight, recentStarts: s.starts, tokensToday: s.tokens }, now);
    if (!decision.ok) return decision;
    s.inFlight++;
    if (limits.requestsPerMinute !== undefined) {
      s.starts.push(now);
      if (s.starts.length > limits.requestsPerMinute) s.starts.splice(0, s.starts.length - limits.requestsPerMinute);
    }
    return decision;
  }

  finish(name: string): void {
    const s = this.state.get(name);
    if (s && s.inFlight > 0) s.inFlight--;
  }

  addTokens(name: string, tokens: number, now = Date.now()): void {
    this.of(name, now).tokens += tokens;
  }

  tokensToday(name: string, now = Date.now()): number {
    return this.of(name, now).tokens;
  }
}
