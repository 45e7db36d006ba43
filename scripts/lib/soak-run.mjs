// The soak run: ordinary traffic, a batch import and a trickle of sign-ins at the same time,
// under Miniflare (real workerd), against a local Clerk Backend API that enforces a sliding-window
// rate limit and injects seeded faults. Returns the measured figures and the invariants checked.
// Used by scripts/soak.mjs (full size) and tests/e2e/soak.test.mjs (small numbers).
import { setTimeout as sleep } from 'node:timers/promises';
import { startBridge } from '../../tests/e2e/harness.mjs';
import { startClerkServer, parseRate } from '../../tests/clerk-server/server.mjs';
import { publishableKeyFor } from '../../tests/clerk-server/keys.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from '../../tests/e2e/tokens.mjs';
import { startSoakOrigin, prepareMix, makeRequest, identityMismatch } from './soak-traffic.mjs';
import { prng } from '../../tests/clerk-server/faults.mjs';

export const DEFAULTS = Object.freeze({
  requests: 10_000,
  users: 2_000,
  signins: 200,
  faultRate: 0.2,
  faultForMs: null, // faults only this long after the upload, then Clerk is healthy (null: the whole run)
  rate: '1000/10s',
  seed: 1,
  concurrency: 16,
  rps: 100, // ordinary traffic pace (0 = as fast as the concurrency allows)
  signinSpreadMs: 10_000, // sign-ins start within this long after the import starts
  tickEveryMs: 5_000, // cron ticks (each with the next minute's scheduledTime)
  pollEveryMs: 1_000,
  timeoutMs: 15 * 60_000, // the whole run, whatever happens
  requestTimeoutMs: 30_000,
  badDigestPct: 1, // records Clerk refuses (failed with its code)
  conflictPct: 1, // records whose email already belongs to a Clerk user without external_id
  timeouts: false, // add Backend API answers that never come (the worker's 10 s timeout)
  log: () => {},
});

const ADMIN = 'soak-admin-token-0123456789abcdef';
const NEXTAUTH_SECRET = 'soak-nextauth-secret';
const FAPI = 'clerk.soak.example.com';
const BCRYPT = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0';

/** Fault actions on the Backend API (uniform pick; repeats weight them). */
export function faultActions({ timeouts }) {
  const actions = [
    { status: 429, retryAfter: 1 },
    { status: 429, retryAfter: 2 },
    500,
    500,
    502,
    { status: 503, retryAfter: 1 },
    { delay: 300 },
    { delay: 1500 },
    'reset',
    'reset-after', // the call runs (a user may be created), the answer is lost
  ];
  if (timeouts) actions.push('timeout', 'timeout-after');
  return actions;
}

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Max entries in any window of `windowMs` (times sorted ascending); window is (t - w, t]. */
export function maxInWindow(times, windowMs) {
  let best = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** Entries whose trailing window (itself included) holds more than `limit` entries. */
export function overLimit(times, windowMs, limit) {
  let n = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] >= windowMs) j++;
    if (i - j + 1 > limit) n++;
  }
  return n;
}

function makeUsers(n, { badDigestPct, conflictPct }, random) {
  const users = [];
  const every = (pct) => (pct > 0 ? Math.max(1, Math.round(100 / pct)) : Infinity);
  for (let i = 0; i < n; i++) {
    const u = {
      id: `soak-${i}`,
      email: `soak${i}@example.com`,
      email_verified: random() < 0.7,
      first_name: `Soak${i}`,
      last_name: 'User',
      password_digest: BCRYPT,
      password_hasher: 'bcrypt',
      created_at: '2020-01-02T03:04:05Z',
      public_metadata: { cohort: i % 7 },
    };
    if (i % every(badDigestPct) === 3) u.password_digest = 'not-a-bcrypt-digest';
    users.push(u);
  }
  const conflicts = users.filter((_, i) => i % every(conflictPct) === 5);
  return { users, conflicts };
}

/**
 * Runs the soak. Everything is bounded: `timeoutMs` for the whole run, `requestTimeoutMs` per
 * request, 5 attempts per sign-in. Resolves to the report (never throws for a failed
 * invariant; see `report.invariants`).
 */
export async function runSoak(options = {}) {
  const o = { ...DEFAULTS, ...options };
  const log = o.log;
  const limit = parseRate(o.rate);
  const random = prng(o.seed);
  const started = Date.now();
  const deadline = started + o.timeoutMs;
  const left = () => deadline - Date.now();

  const origin = await startSoakOrigin();
  const clerk = await startClerkServer({
    port: 0,
    quiet: true,
    // A live key: the development-instance rule (dev-browser cookie) is not what is soaked here.
    publishableKey: publishableKeyFor(FAPI).replace('pk_test_', 'pk_live_'),
    rateLimit: { limit: limit.limit, windowMs: limit.windowMs },
    faults: {
      seed: o.seed,
      // The Backend API calls; the JWKS (not rate limited) stays reachable so Clerk sessions verify.
      rules: o.faultRate > 0 ? [{ path: '/v1/*', exclude: ['/v1/jwks'], probability: o.faultRate, actions: faultActions(o) }] : [],
    },
  });
  let bridge;
  const stop = { now: false };
  try {
    bridge = await startBridge({
      ORIGIN_URL: origin.url,
      NEXTAUTH_SECRET,
      CLERK_SECRET_KEY: clerk.secretKey,
      CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
      CLERK_API_URL: clerk.url,
      CLERK_RATE_LIMIT: o.rate,
      AUTH_BRIDGE_ADMIN_TOKEN: ADMIN,
    }, { captureLogs: !!o.captureLogs });
    return await soak(o, { origin, clerk, bridge, random, limit, started, deadline, left, log, stop });
  } finally {
    stop.now = true;
    await bridge?.close().catch(() => {});
    await clerk.close().catch(() => {});
    await origin.close().catch(() => {});
  }
}

async function soak(o, ctx) {
  const { origin, clerk, bridge, random, limit, left, log, stop } = ctx;
  const auth = { authorization: `Bearer ${ADMIN}` };
  const admin = (path, init = {}) =>
    bridge.fetch(`/__auth-bridge/admin${path}`, {
      signal: AbortSignal.timeout(o.requestTimeoutMs),
      ...init,
      headers: { ...auth, ...(init.headers ?? {}) },
    });

  // --- the users: the import, Clerk users already holding some of their emails, sign-ins ---
  const { users, conflicts } = makeUsers(o.users, o, random);
  for (const u of conflicts) clerk.createUser({ email_address: [u.email], skip_password_requirement: true });
  const preexisting = clerk.users().total;
  const order = users.map((u) => u).sort(() => random() - 0.5);
  const signinUsers = order.slice(0, Math.min(o.signins, users.length));
  const sessionUsers = order.slice(0, Math.min(users.length, 300));
  const mix = await prepareMix({ secret: NEXTAUTH_SECRET, sessionUsers, seed: o.seed });

  // Clerk session tokens: a pool refreshed as they age (they live 60 s), subjects either
  // Clerk users the migration made or users born in Clerk.
  const clerkPool = { tokens: [], at: 0 };
  const freshClerk = () => {
    const now = Date.now();
    if (now - clerkPool.at > 15_000 || clerkPool.tokens.length === 0) {
      const known = [...clerk.store.users.values()].filter((u) => u.external_id).map((u) => u.id);
      clerkPool.tokens = [];
      for (let k = 0; k < 40; k++) {
        const sub = known.length && k % 2 === 0 ? known[Math.floor(random() * known.length)] : `user_soakborn${k}`;
        const iat = Math.floor(now / 1000) - 1;
        clerkPool.tokens.push({ token: clerk.mintSessionToken({ sub, iat }), sub, iat });
      }
      clerkPool.at = now;
    }
    return clerkPool.tokens[Math.floor(random() * clerkPool.tokens.length)];
  };
  const clerkToken = ({ expired = false } = {}) => {
    if (!expired) return freshClerk();
    const iat = Math.floor(Date.now() / 1000) - 600;
    const sub = `user_soakexpired${Math.floor(random() * 5)}`;
    return { token: clerk.mintSessionToken({ sub, iat, ttlSeconds: 60 }), sub, iat };
  };

  // --- upload ---
  const ndjson = users.map((u) => JSON.stringify(u)).join('\n') + '\n';
  const uploadStarted = Date.now();
  const up = await admin('/imports', { method: 'POST', body: ndjson, headers: { 'content-type': 'application/x-ndjson' } });
  const upBody = await up.json();
  const upload = { status: up.status, accepted: upBody.accepted, rejected: upBody.rejected?.length ?? null, ms: Date.now() - uploadStarted, import_id: upBody.import_id };
  log(`upload: ${up.status}, ${upload.accepted} accepted, ${upload.rejected} rejected, ${upload.ms} ms`);
  if (up.status !== 202) throw new Error(`upload answered ${up.status}: ${JSON.stringify(upBody)}`);

  const seqAtStart = clerk.requestLog().at(-1)?.seq ?? 0;
  const t0 = Date.now();
  // A bad spell, then a healthy Clerk: records that met only transient errors must end migrated.
  let healed = null;
  const heal = o.faultForMs != null && o.faultRate > 0
    ? setTimeout(() => {
      clerk.clearFaults();
      healed = Date.now() - t0;
      log(`faults stopped after ${(healed / 1000).toFixed(0)} s; Clerk is healthy`);
    }, o.faultForMs)
    : null;

  // --- the batch: cron ticks and status polls until nothing is pending ---
  const batch = { ticks: 0, tick_errors: 0, polls: 0, done_ms: null, last: null, timeline: [] };
  let minute = Math.floor(Date.now() / 60_000) * 60_000;
  const tickLoop = (async () => {
    while (!stop.now && batch.done_ms === null && left() > 0) {
      try {
        await bridge.scheduled((minute += 60_000));
        batch.ticks++;
      } catch (e) {
        batch.tick_errors++;
        log(`tick failed: ${e.message}`);
      }
      await sleep(Math.min(o.tickEveryMs, Math.max(0, left())));
    }
  })();
  const pollLoop = (async () => {
    while (!stop.now && left() > 0) {
      try {
        const res = await admin('/status');
        if (res.status === 200) {
          const s = await res.json();
          batch.polls++;
          batch.last = s;
          const c = s.counts;
          batch.timeline.push({ t: Date.now() - t0, pending: c.pending, migrated: c.migrated, skipped: c.skipped, failed: c.failed, paused: s.paused });
          if (c.accepted >= upload.accepted && c.pending === 0) {
            batch.done_ms = Date.now() - t0;
            log(`import done in ${(batch.done_ms / 1000).toFixed(1)} s`);
            return;
          }
        } else {
          await res.body?.cancel();
        }
      } catch (e) {
        log(`status poll failed: ${e.message}`);
      }
      await sleep(Math.min(o.pollEveryMs, Math.max(0, left())));
    }
  })();
  const progress = setInterval(() => {
    const c = batch.last?.counts;
    if (c) log(`t+${((Date.now() - t0) / 1000).toFixed(0)}s import pending ${c.pending} migrated ${c.migrated} skipped ${c.skipped} failed ${c.failed}${batch.last.paused ? ' (paused)' : ''}; traffic ${traffic.sent}/${o.requests}; sign-ins ${trickle.finished}/${signinUsers.length}`);
  }, 10_000);

  // --- ordinary traffic ---
  const traffic = { sent: 0, done: 0, statuses: {}, by_kind: {}, latencies: [], fivexx: [], errors: [], mismatches: [], degraded: 0, elapsed_ms: 0 };
  // A Clerk session seen as anonymous is acceptable only while Clerk could not answer: some
  // Backend API call failed (a fault, a 429, a dropped or abandoned request) within the worker's
  // no-identity spell (5 s, plus slack for a loaded machine) before the request was answered.
  // After the faults stop, every Clerk session must carry its identity again.
  const NO_IDENTITY_SPELL_MS = 8_000;
  const clerkCouldNotSay = (expect, seen, startedAt, endedAt) =>
    expect?.source === 'clerk' &&
    seen?.source === 'anonymous' &&
    seen.user_id == null &&
    seen.clerk_user_id == null &&
    clerk
      .requestLog({ since: seqAtStart })
      .some((e) => e.counted && e.t >= startedAt - NO_IDENTITY_SPELL_MS && e.t <= endedAt && (e.outcome !== 'ok' || (e.status ?? 0) >= 429));
  const trafficLoop = (async () => {
    const tStart = Date.now();
    let next = 0;
    const one = async (i) => {
      const t0Abs = Date.now();
      const req = makeRequest(mix, i, clerkToken);
      const k = (traffic.by_kind[req.kind] ??= { n: 0, statuses: {}, latencies: [], mismatches: 0 });
      const t = performance.now();
      let status = 'error';
      try {
        const res = await bridge.fetch(req.path, { ...req.init, signal: AbortSignal.timeout(o.requestTimeoutMs) });
        status = res.status;
        const text = await res.text();
        const ms = performance.now() - t;
        traffic.latencies.push(ms);
        k.latencies.push(ms);
        if (status >= 500) traffic.fivexx.push({ i, kind: req.kind, status, body: text.slice(0, 200) });
        else if (status === 200 && req.expect) {
          let seen = null;
          try {
            seen = JSON.parse(text);
          } catch {
            /* not the origin's answer */
          }
          const wrong = identityMismatch(req.expect, seen);
          if (wrong.length && clerkCouldNotSay(req.expect, seen, t0Abs, Date.now())) {
            // Designed degradation, not a wrong identity: a Clerk session whose legacy id
            // Clerk could not confirm is forwarded with no identity for a few seconds.
            k.degraded = (k.degraded || 0) + 1;
            traffic.degraded++;
          } else if (wrong.length) {
            k.mismatches++;
            if (traffic.mismatches.length < 20) traffic.mismatches.push({ i, kind: req.kind, fields: wrong, expected: req.expect, seen });
          }
        }
      } catch (e) {
        if (traffic.errors.length < 20) traffic.errors.push({ i, kind: req.kind, error: String(e.cause?.code ?? e.name ?? e) });
      }
      k.n++;
      k.statuses[status] = (k.statuses[status] || 0) + 1;
      traffic.statuses[status] = (traffic.statuses[status] || 0) + 1;
      traffic.done++;
    };
    const workers = Array.from({ length: Math.max(1, o.concurrency) }, async () => {
      while (!stop.now && left() > 0) {
        const i = next++;
        if (i >= o.requests) return;
        if (o.rps > 0) {
          const due = tStart + (i * 1000) / o.rps;
          const wait = due - Date.now();
          if (wait > 0) await sleep(Math.min(wait, Math.max(0, left())));
        }
        traffic.sent++;
        await one(i);
      }
    });
    await Promise.all(workers);
    traffic.elapsed_ms = Date.now() - tStart;
  })();

  // --- the trickle: concurrent sign-ins with client.js's retry rules ---
  const trickle = { finished: 0, outcomes: {}, answers: {}, attempts: 0, fivexx_other: [], missing_retry_after: 0, results: [] };
  const trickleLoop = Promise.all(
    signinUsers.map(async (u, n) => {
      await sleep(Math.floor(random() * o.signinSpreadMs));
      const claims = { sub: u.id, email: u.email, name: `${u.first_name} ${u.last_name}`, ...(u.email_verified ? { email_verified: true } : {}) };
      const cookie = n % 2 === 0
        ? cookieHeader({ 'next-auth.session-token': await nextAuthV4(NEXTAUTH_SECRET, claims) })
        : cookieHeader({ 'authjs.session-token': await authJsV5(NEXTAUTH_SECRET, claims) });
      const result = await signIn(bridge, cookie, o, random, left, trickle);
      trickle.outcomes[result.outcome] = (trickle.outcomes[result.outcome] || 0) + 1;
      trickle.results.push({ id: u.id, ...result });
      trickle.finished++;
    }),
  );

  await Promise.all([trafficLoop, trickleLoop, pollLoop]);
  stop.now = true;
  if (heal) clearTimeout(heal);
  await tickLoop;
  clearInterval(progress);
  const wall_ms = Date.now() - t0;
  log(`traffic, trickle and import ended after ${(wall_ms / 1000).toFixed(1)} s; collecting`);

  // --- evidence ---
  const final = await (await admin('/status')).json();
  const failuresText = await (await admin('/failures')).text();
  const failures = failuresText.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const ledger = await readLedger(bridge, upload.import_id);
  const clerkReport = clerk.users();
  const apiLog = clerk.requestLog({ since: seqAtStart }).filter((e) => e.counted);

  if (o.debug) {
    const kv = await bridge.kv();
    const keys = [];
    let cursor;
    for (let page = 0; page < 100; page++) {
      const list = await kv.list({ cursor });
      for (const k of list.keys) if (!/^(st|rec|map):/.test(k.name)) keys.push({ name: k.name, value: (await kv.get(k.name))?.slice(0, 2000) });
      if (list.list_complete) break;
      cursor = list.cursor;
    }
    o.debug({ keys, logs: bridge.logs, ledger, apiLog });
  }
  const report = buildReport(o, {
    limit, users, conflicts, preexisting, signinUsers, upload, batch, final, failures, ledger, clerkReport,
    apiLog, traffic, trickle, origin, wall_ms, healed,
  });
  // What the worker logged (when captured): a count of each kind of line, digits folded.
  const lines = bridge.logs.join('').split('\n').filter((l) => l.trim());
  const kinds = {};
  for (const l of lines) {
    const k = l.replace(/\d+/g, 'N').replace(/user_[A-Za-z0-9]+/g, 'user_…').slice(0, 120);
    kinds[k] = (kinds[k] || 0) + 1;
  }
  report.worker_log = Object.fromEntries(Object.entries(kinds).sort((a, b) => b[1] - a[1]).slice(0, 25));
  report.worker_logs = lines;
  return report;
}

/** One browser's sign-in as client.js runs it: up to 5 attempts, Retry-After + full jitter. */
async function signIn(bridge, cookie, o, random, left, trickle) {
  const statuses = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    if (left() <= 0) return { outcome: 'deadline', statuses };
    let res = null;
    trickle.attempts++;
    try {
      res = await bridge.fetch('/__auth-bridge/sign-in-token', {
        method: 'POST',
        headers: { cookie, 'sec-fetch-site': 'same-origin', origin: bridge.url, accept: 'application/json' },
        signal: AbortSignal.timeout(o.requestTimeoutMs),
      });
    } catch {
      res = null;
    }
    const status = res ? res.status : 0;
    statuses.push(status);
    trickle.answers[status] = (trickle.answers[status] || 0) + 1;
    const body = res ? await res.text() : '';
    if (status === 200) {
      const b = JSON.parse(body);
      return { outcome: 'token', statuses, clerk_user_id: b.clerk_user_id, has_token: typeof b.token === 'string' && b.token.length > 0 };
    }
    if (status === 204) return { outcome: 'already_signed_in', statuses };
    if (status >= 500 && status !== 502 && status !== 503 && status !== 504) {
      if (trickle.fivexx_other.length < 20) trickle.fivexx_other.push({ status, body: body.slice(0, 200) });
    }
    if (status !== 0 && status !== 429 && status !== 502 && status !== 503 && status !== 504) {
      return { outcome: `refused_${status}`, statuses, error: safeError(body) };
    }
    const ra = res?.headers.get('retry-after');
    if ((status === 429 || status === 503) && !ra) trickle.missing_retry_after++;
    const wait = ra && /^\s*\d+\s*$/.test(ra) ? Number(ra) * 1000 : null;
    if (wait !== null && wait > 120_000) return { outcome: 'retry_later', statuses };
    if (attempt + 1 >= 5) break;
    const jitter = random() * Math.min(30_000, 1000 * 2 ** attempt);
    await sleep(Math.min((wait ?? 0) + jitter, Math.max(0, left())));
  }
  return { outcome: 'gave_up', statuses };
}

function safeError(body) {
  try {
    return JSON.parse(body).error ?? null;
  } catch {
    return null;
  }
}

/** Every `st:{import}:` entry of the ledger, straight from KV. */
async function readLedger(bridge, importId) {
  const kv = await bridge.kv();
  const states = new Map();
  let cursor;
  for (let page = 0; page < 1000; page++) {
    const list = await kv.list({ prefix: `st:${importId}:`, cursor });
    const values = await Promise.all(list.keys.map((k) => kv.get(k.name)));
    list.keys.forEach((k, i) => {
      try {
        const s = JSON.parse(values[i]);
        states.set(s.legacy_id, s);
      } catch {
        states.set(k.name.slice(`st:${importId}:`.length), { state: 'unreadable' });
      }
    });
    if (list.list_complete) break;
    cursor = list.cursor;
  }
  return states;
}

function latencySummary(list) {
  const s = [...list].sort((a, b) => a - b);
  const r = (x) => (x === null ? null : Math.round(x * 10) / 10);
  return { n: s.length, p50_ms: r(percentile(s, 50)), p99_ms: r(percentile(s, 99)), max_ms: r(s.at(-1) ?? null) };
}

function buildReport(o, e) {
  const { limit, users, conflicts, preexisting, signinUsers, upload, batch, final, failures, ledger, clerkReport, apiLog, traffic, trickle, origin } = e;

  // Import: every accepted record ends migrated (one Clerk user with its external id),
  // skipped with a reason, or failed with a code; nothing else.
  const byExternal = new Map();
  for (const u of clerkReport.users) if (u.external_id) byExternal.set(u.external_id, [...(byExternal.get(u.external_id) ?? []), u.id]);
  const failedListed = new Set(failures.map((f) => f.id));
  const lost = [];
  let lostCount = 0;
  const lostByReason = {};
  const states = { migrated: 0, skipped: 0, failed: 0 };
  const failCodes = {};
  const skipReasons = {};
  for (const u of users) {
    const s = ledger.get(u.id);
    const bad = (why) => {
      lostCount++;
      const reason = why.startsWith('migrated, but') ? 'migrated without exactly one Clerk user' : why;
      lostByReason[reason] = (lostByReason[reason] || 0) + 1;
      if (lost.length < 20) lost.push({ id: u.id, why, state: s ?? null });
    };
    if (!s) {
      bad('no terminal state');
      continue;
    }
    if (s.state === 'migrated') {
      const ids = byExternal.get(u.id) ?? [];
      if (ids.length !== 1 || (s.clerk_id && s.clerk_id !== ids[0])) bad(`migrated, but Clerk has ${ids.length} user(s) with this external_id`);
      states.migrated++;
    } else if (s.state === 'skipped') {
      if (!s.message && !s.code) bad('skipped without a reason');
      states.skipped++;
      const why = (s.message ?? s.code ?? '').replace(/soak\S*/g, '…').slice(0, 80);
      skipReasons[why] = (skipReasons[why] || 0) + 1;
    } else if (s.state === 'failed') {
      if (!s.code) bad('failed without a code');
      if (!failedListed.has(u.id)) bad('failed but not in /admin/failures');
      states.failed++;
      failCodes[s.code] = (failCodes[s.code] || 0) + 1;
    } else bad(`state ${s.state}`);
  }
  const c = final.counts;
  const reconciles = c.accepted === c.migrated + c.skipped + c.failed + c.pending;
  const countsMatchLedger = c.migrated === states.migrated && c.skipped === states.skipped && c.failed === states.failed;

  // Clerk: duplicates, and users beyond the legacy ones (+ those seeded before the import).
  const dupExt = Object.keys(clerkReport.duplicates.by_external_id).length;
  const dupEmail = Object.keys(clerkReport.duplicates.by_email).length;

  // Rate: every Backend API call in the run (the JWKS excepted), at arrival; "admitted" = passed
  // the server's limiter (a fault answered before it, or its own 429, is not admitted).
  const ADMITTED = new Set(['ok', 'error', 'no_route', 'fault_reset_after', 'fault_timeout_after']);
  const attempts = apiLog.map((x) => x.t).sort((a, b) => a - b);
  const admitted = apiLog.filter((x) => ADMITTED.has(x.outcome)).map((x) => x.t + (x.delayed_ms ?? 0)).sort((a, b) => a - b);
  const limiter429 = apiLog.filter((x) => x.outcome === 'rate_limited');
  const injected = {};
  for (const x of apiLog) if (x.outcome.startsWith('fault_') || x.delayed_ms) {
    const key = x.delayed_ms && x.outcome === 'ok' ? 'slow' : x.outcome;
    injected[key] = (injected[key] || 0) + 1;
  }
  const byRoute = {};
  for (const x of apiLog) {
    const route = `${x.method} ${x.path.replace(/\/user_[A-Za-z0-9]+/, '/{id}')}`;
    byRoute[route] = (byRoute[route] || 0) + 1;
  }
  const windowsOver = overLimit(admitted, limit.windowMs, limit.limit);
  const maxAttempts = maxInWindow(attempts, limit.windowMs);
  const maxAdmitted = maxInWindow(admitted, limit.windowMs);

  // Trickle: every token went to the Clerk user holding the legacy id.
  const wrongUser = trickle.results.filter(
    (r) => r.outcome === 'token' && (!r.has_token || !(byExternal.get(r.id) ?? []).includes(r.clerk_user_id)),
  );

  // The import's physical limit: records × calls per record ÷ rate.
  const callsPerRecord = final.rate?.calls_per_record ?? 3;
  const physical_s = (upload.accepted * callsPerRecord * limit.windowMs) / limit.limit / 1000;
  const budgeted_s = final.rate?.budget_per_window ? (upload.accepted * callsPerRecord * limit.windowMs) / final.rate.budget_per_window / 1000 : null;

  // Only Clerk's permanent refusals (and the binding rules' refusals) may end a record as failed:
  // never a transient error, never "gave up".
  const TRANSIENT = new Set(['retries_exhausted', 'clerk_unavailable', 'timeout', 'network_error', 'rate_limited', 'store_unavailable', 'identifier_exists_not_found', 'admission_deferred']);
  const failedTransient = Object.entries(failCodes).filter(([code]) => TRANSIENT.has(code)).reduce((a, [, n]) => a + n, 0);
  const ordinary5xx = traffic.fivexx.length;
  const invariants = {
    ordinary_5xx: { value: ordinary5xx, ok: ordinary5xx === 0 },
    ordinary_unanswered: { value: o.requests - traffic.done + (traffic.statuses.error ?? 0), ok: traffic.done === o.requests && !traffic.statuses.error },
    identity_mismatches: { value: Object.values(traffic.by_kind).reduce((a, k) => a + k.mismatches, 0), ok: traffic.mismatches.length === 0 },
    // Not a failure: Clerk sessions forwarded with no identity while Clerk could not confirm them.
    identity_degraded_while_clerk_failed: { value: traffic.degraded, ok: true },
    clerk_duplicates_by_external_id: { value: dupExt, ok: dupExt === 0 },
    clerk_duplicates_by_email: { value: dupEmail, ok: dupEmail === 0 },
    import_finished: { value: batch.done_ms === null ? 'no' : 'yes', ok: batch.done_ms !== null },
    import_records_lost: { value: lostCount, ok: lostCount === 0 },
    import_failed_by_transient_errors: { value: failedTransient, ok: failedTransient === 0 },
    status_counts_reconcile: { value: `${c.accepted} = ${c.migrated} + ${c.skipped} + ${c.failed} + ${c.pending}`, ok: reconciles && countsMatchLedger && c.accepted === upload.accepted },
    windows_over_rate_limit: { value: windowsOver, ok: windowsOver === 0 },
    server_rate_limited_429: { value: limiter429.length, ok: limiter429.length === 0 },
    trickle_tokens_for_wrong_user: { value: wrongUser.length, ok: wrongUser.length === 0 },
    trickle_5xx_other_than_502_503_504: { value: trickle.fivexx_other.length, ok: trickle.fivexx_other.length === 0 },
    trickle_429_503_without_retry_after: { value: trickle.missing_retry_after, ok: trickle.missing_retry_after === 0 },
  };

  const kinds = {};
  for (const [k, v] of Object.entries(traffic.by_kind).sort()) kinds[k] = { n: v.n, statuses: v.statuses, mismatches: v.mismatches, degraded: v.degraded ?? 0, ...latencySummary(v.latencies) };
  return {
    ok: Object.values(invariants).every((x) => x.ok),
    invariants,
    config: {
      requests: o.requests, users: o.users, signins: signinUsers.length, fault_rate: o.faultRate, fault_actions: o.faultRate > 0 ? faultActions(o) : [],
      fault_for_s: o.faultForMs == null ? null : o.faultForMs / 1000, healed_at_s: e.healed == null ? null : Math.round(e.healed / 100) / 10,
      rate: o.rate, seed: o.seed, concurrency: o.concurrency, rps: o.rps, tick_every_ms: o.tickEveryMs,
      bad_digest_records: users.filter((u) => u.password_digest !== BCRYPT).length, conflicting_clerk_users: conflicts.length,
    },
    wall_s: Math.round(e.wall_ms / 100) / 10,
    traffic: {
      sent: traffic.sent, answered: traffic.done - (traffic.statuses.error ?? 0), statuses: traffic.statuses, fivexx: traffic.fivexx.slice(0, 20),
      errors: traffic.errors, mismatches: traffic.mismatches, elapsed_s: Math.round(traffic.elapsed_ms / 100) / 10,
      rps: traffic.elapsed_ms ? Math.round((traffic.done * 10000) / traffic.elapsed_ms) / 10 : null,
      latency: latencySummary(traffic.latencies), by_kind: kinds, origin_requests: origin.stats.requests,
    },
    trickle: {
      signins: signinUsers.length, outcomes: trickle.outcomes, answers: trickle.answers, attempts: trickle.attempts,
      fivexx_other: trickle.fivexx_other, tokens_for_wrong_user: wrongUser.slice(0, 10),
    },
    import: {
      upload, ticks: batch.ticks, tick_errors: batch.tick_errors, took_s: batch.done_ms === null ? null : Math.round(batch.done_ms / 100) / 10,
      physical_limit_s: Math.round(physical_s * 10) / 10, budgeted_limit_s: budgeted_s && Math.round(budgeted_s * 10) / 10,
      calls_per_record: callsPerRecord, final_counts: c, ledger_states: states, failure_codes: failCodes, skip_reasons: skipReasons,
      failures_listed: failures.length, lost_by_reason: lostByReason, lost: lost.slice(0, 20), timeline: batch.timeline.filter((_, i, a) => i % Math.max(1, Math.floor(a.length / 40)) === 0 || i === a.length - 1),
    },
    clerk: {
      users: clerkReport.total, preexisting, legacy_users_in_clerk: byExternal.size,
      duplicates: { by_external_id: dupExt, by_email: dupEmail, examples: { ...Object.fromEntries(Object.entries(clerkReport.duplicates.by_external_id).slice(0, 5)), ...Object.fromEntries(Object.entries(clerkReport.duplicates.by_email).slice(0, 5)) } },
    },
    rate: {
      limit: o.rate, calls: apiLog.length, by_route: byRoute, max_attempts_in_window: maxAttempts, max_admitted_in_window: maxAdmitted,
      windows_over_limit: windowsOver, server_429: limiter429.length,
      server_429_by_route: limiter429.reduce((m, x) => ((m[`${x.method} ${x.path.replace(/\/user_[A-Za-z0-9]+/, '/{id}')}`] = (m[`${x.method} ${x.path.replace(/\/user_[A-Za-z0-9]+/, '/{id}')}`] || 0) + 1), m), {}),
      injected,
    },
  };
}

/** The compact text report. */
export function formatReport(r) {
  const lines = [];
  const c = r.config;
  const mark = (x) => (x.ok ? 'ok  ' : 'FAIL');
  lines.push(`auth-bridge soak — ${c.requests} requests, ${c.users} users, ${c.signins} sign-ins, fault rate ${c.fault_rate}${c.fault_for_s == null ? '' : ` for ${c.fault_for_s} s (healed at ${c.healed_at_s ?? 'never'} s)`}, rate ${c.rate}, seed ${c.seed}`);
  lines.push(`  (${c.bad_digest_records} records with a digest Clerk refuses, ${c.conflicting_clerk_users} emails already in Clerk without external_id; concurrency ${c.concurrency}, ${c.rps || 'unpaced'} req/s, tick every ${c.tick_every_ms / 1000} s)`);
  lines.push(`wall ${r.wall_s} s`);
  lines.push('');
  lines.push('invariants');
  for (const [k, v] of Object.entries(r.invariants)) lines.push(`  ${mark(v)} ${k.padEnd(38)} ${v.value}`);
  const t = r.traffic;
  lines.push('');
  lines.push(`ordinary traffic: ${t.answered}/${t.sent} answered in ${t.elapsed_s} s (${t.rps} req/s); p50 ${t.latency.p50_ms} ms, p99 ${t.latency.p99_ms} ms, max ${t.latency.max_ms} ms`);
  lines.push(`  statuses ${JSON.stringify(t.statuses)}; origin saw ${t.origin_requests}`);
  for (const [k, v] of Object.entries(t.by_kind)) {
    lines.push(`  ${k.padEnd(26)} n ${String(v.n).padStart(5)}  p50 ${String(v.p50_ms).padStart(6)}  p99 ${String(v.p99_ms).padStart(7)}  ${JSON.stringify(v.statuses)}${v.mismatches ? `  MISMATCHES ${v.mismatches}` : ''}${v.degraded ? `  no identity while Clerk failed ${v.degraded}` : ''}`);
  }
  for (const m of t.mismatches.slice(0, 5)) lines.push(`  mismatch: ${JSON.stringify(m)}`);
  for (const f of t.fivexx.slice(0, 5)) lines.push(`  5xx: ${JSON.stringify(f)}`);
  for (const f of t.errors.slice(0, 5)) lines.push(`  error: ${JSON.stringify(f)}`);
  const tr = r.trickle;
  lines.push('');
  lines.push(`trickle: ${tr.signins} sign-ins, ${tr.attempts} attempts; outcomes ${JSON.stringify(tr.outcomes)}; answers ${JSON.stringify(tr.answers)}`);
  const im = r.import;
  lines.push('');
  lines.push(`import: upload ${im.upload.status} (${im.upload.accepted} accepted) in ${im.upload.ms} ms; ${im.ticks} ticks`);
  lines.push(`  took ${im.took_s ?? 'UNFINISHED'} s; physical limit ${im.physical_limit_s} s (${im.upload.accepted} records × ${im.calls_per_record} calls ÷ ${r.rate.limit}), at the planned budget ${im.budgeted_limit_s} s`);
  lines.push(`  final ${JSON.stringify(im.final_counts)}; failures listed ${im.failures_listed}`);
  lines.push(`  failure codes ${JSON.stringify(im.failure_codes)}; skip reasons ${JSON.stringify(im.skip_reasons)}`);
  for (const l of im.lost.slice(0, 5)) lines.push(`  lost: ${JSON.stringify(l)}`);
  const cl = r.clerk;
  lines.push('');
  lines.push(`clerk: ${cl.users} users (${cl.preexisting} before the run, ${cl.legacy_users_in_clerk} with a legacy external_id); duplicates by external_id ${cl.duplicates.by_external_id}, by email ${cl.duplicates.by_email}`);
  const ra = r.rate;
  lines.push(`rate: ${ra.calls} Backend API calls; max admitted in any window ${ra.max_admitted_in_window} (all attempts ${ra.max_attempts_in_window}) vs limit ${ra.limit}; windows over ${ra.windows_over_limit}`);
  lines.push(`  429 from the server's limiter ${ra.server_429} ${JSON.stringify(ra.server_429_by_route)}; injected ${JSON.stringify(ra.injected)}`);
  lines.push(`  by route ${JSON.stringify(ra.by_route)}`);
  if (r.worker_log && Object.keys(r.worker_log).length) {
    lines.push('worker log (most frequent lines, digits as N)');
    for (const [l, n] of Object.entries(r.worker_log).slice(0, 10)) lines.push(`  ${String(n).padStart(6)}  ${l}`);
  }
  lines.push('');
  lines.push(r.ok ? 'soak: every invariant held' : 'soak: FAILED');
  return lines.join('\n');
}
