// The local Clerk server's fault injection: error answers, resets, timeouts and delays, by rule,
// sequence or seeded probability (see server.mjs and README.md beside it).

/** Deterministic PRNG (mulberry32). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Glob ("/v1/users*", "*") or RegExp or "re:<source>" against the request path. */
export function pathMatches(pattern, path) {
  if (pattern === undefined || pattern === null || pattern === '*') return true;
  if (pattern instanceof RegExp) return pattern.test(path);
  const p = String(pattern);
  if (p.startsWith('re:')) return new RegExp(p.slice(3)).test(path);
  const re = new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(path);
}

/**
 * Normalises a fault action:
 *   500 | 502 | 503 | 504 | 429            -> an error answer with that status
 *   { status, retryAfter }                  -> same, with a Retry-After header
 *   'reset'                                 -> destroy the socket without answering
 *   'timeout'                               -> never answer
 *   'reset-after' | 'timeout-after'         -> run the request (state changes!), then reset / never answer
 *   { delay: ms, then?: action }            -> wait, then do `then` (default: answer normally)
 *   null | 'pass'                           -> no fault
 */
export function normalizeAction(a) {
  if (a === null || a === undefined || a === 'pass') return null;
  if (typeof a === 'number') return { kind: 'status', status: a };
  if (typeof a === 'string') {
    if (/^\d{3}$/.test(a)) return { kind: 'status', status: Number(a) };
    if (['reset', 'timeout', 'reset-after', 'timeout-after'].includes(a)) return { kind: a };
    if (/^delay:\d+$/.test(a)) return { kind: 'delay', ms: Number(a.slice(6)), then: null };
    throw new Error(`unknown fault action ${a}`);
  }
  if (typeof a === 'object') {
    if (a.delay !== undefined) return { kind: 'delay', ms: Number(a.delay), then: normalizeAction(a.then ?? null) };
    if (a.status !== undefined) return { kind: 'status', status: Number(a.status), retryAfter: a.retryAfter };
    if (a.kind) return a;
  }
  throw new Error(`unknown fault action ${JSON.stringify(a)}`);
}

export class Faults {
  constructor(config) {
    this.configure(config);
  }
  /**
   * config: { seed?, rules: [{ path?='/v1/*', method?, exclude?: [paths], probability?, actions?,
   *           sequence?, loop?, times? }] }
   * A rule with `sequence` consumes one entry per matching request (`loop` repeats it).
   * A rule with `probability` fires with that probability and picks uniformly among `actions`
   * (default [500, 502, 503]). `times` caps how often a rule fires.
   */
  configure(config = {}) {
    const c = Array.isArray(config) ? { rules: config } : config || {};
    this.seed = c.seed ?? 1;
    this.random = prng(this.seed);
    this.rules = (c.rules || []).map((r) => this.makeRule(r));
  }
  makeRule(r) {
    const rule = {
      path: r.path ?? '/v1/*',
      method: r.method ? String(r.method).toUpperCase() : undefined,
      exclude: r.exclude || [],
      probability: r.probability,
      actions: (r.actions ?? (r.action !== undefined ? [r.action] : [500, 502, 503])).map(normalizeAction),
      sequence: r.sequence ? r.sequence.map(normalizeAction) : null,
      loop: !!r.loop,
      times: r.times ?? Infinity,
      index: 0,
      fired: 0,
      seen: 0,
      source: r,
    };
    return rule;
  }
  add(r) {
    this.rules.push(this.makeRule(r));
  }
  describe() {
    return {
      seed: this.seed,
      rules: this.rules.map((r) => ({ ...r.source, fired: r.fired, seen: r.seen, remaining_sequence: r.sequence ? r.sequence.length - r.index : undefined })),
    };
  }
  pick(method, path) {
    for (const r of this.rules) {
      if (r.method && r.method !== method) continue;
      if (!pathMatches(r.path, path)) continue;
      if (r.exclude.some((x) => pathMatches(x, path))) continue;
      if (r.fired >= r.times) continue;
      r.seen++;
      let action = null;
      if (r.sequence) {
        if (r.index >= r.sequence.length) {
          if (!r.loop) continue;
          r.index = 0;
        }
        action = r.sequence[r.index++];
      } else {
        const p = r.probability ?? 1;
        if (this.random() < p) action = r.actions[Math.floor(this.random() * r.actions.length)] ?? null;
      }
      if (action) {
        r.fired++;
        return action;
      }
    }
    return null;
  }
}
