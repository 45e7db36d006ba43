// The local Clerk server's rate limiting: a sliding-window log per instance, and per route when
// configured, answering with the Retry-After that frees a slot (see server.mjs).
import { pathMatches } from './faults.mjs';

export const DEFAULT_RATE_LIMIT = Object.freeze({ limit: 100, windowMs: 10_000 });

/** Parses "100/10s", "1000/10s", "20/500ms", "5/1m" into { limit, windowMs }. */
export function parseRate(text) {
  const m = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)?\s*$/.exec(String(text));
  if (!m) throw new Error(`invalid rate "${text}" (expected e.g. 100/10s)`);
  const n = m[2] === undefined ? 1 : Number(m[2]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[3] || 's'];
  return { limit: Number(m[1]), windowMs: Math.round(n * unit) };
}

class SlidingWindow {
  constructor({ limit, windowMs }) {
    this.limit = limit;
    this.windowMs = windowMs;
    this.hits = [];
  }
  prune(now) {
    let i = 0;
    while (i < this.hits.length && this.hits[i] <= now - this.windowMs) i++;
    if (i) this.hits.splice(0, i);
  }
  /** Seconds until a slot frees, or 0 when there is room now. */
  wait(now) {
    this.prune(now);
    if (this.hits.length < this.limit) return 0;
    const ms = this.hits[this.hits.length - this.limit] + this.windowMs - now;
    return Math.max(1, Math.ceil(ms / 1000));
  }
  take(now) {
    this.hits.push(now);
  }
}

export class RateLimiter {
  constructor(config) {
    this.configure(config);
  }
  configure(config) {
    if (config === false || config === null || config?.enabled === false) {
      this.config = { enabled: false };
      this.global = null;
      this.routes = [];
      return;
    }
    const c = typeof config === 'string' ? parseRate(config) : { ...DEFAULT_RATE_LIMIT, ...(config || {}) };
    this.config = {
      enabled: true,
      limit: c.limit,
      windowMs: c.windowMs,
      countRejected: !!c.countRejected,
      routes: (c.routes || []).map((r) => ({ ...r })),
    };
    this.global = new SlidingWindow(this.config);
    this.routes = this.config.routes.map((r) => ({ rule: r, window: new SlidingWindow(r) }));
  }
  reset() {
    this.configure(this.config);
  }
  /** Returns 0 to admit (and records the hit), or the Retry-After in seconds. */
  check(method, path, now) {
    if (!this.global) return 0;
    const windows = [this.global];
    for (const r of this.routes) {
      if ((!r.rule.method || r.rule.method.toUpperCase() === method) && pathMatches(r.rule.path, path)) windows.push(r.window);
    }
    const wait = Math.max(...windows.map((w) => w.wait(now)));
    if (wait === 0 || this.config.countRejected) windows.forEach((w) => w.take(now));
    return wait;
  }
}
