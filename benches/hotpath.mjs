#!/usr/bin/env node
// The hot path of auth-bridge against JS workers doing the same job, in one Miniflare run (real
// workerd), per-request workerd CPU. Run through scripts/bench (which builds first).
//
//   node benches/hotpath.mjs [--rounds N] [--warmup N] [--runs N] [--json] [--smoke]
//   (env: BENCH_ROUNDS, BENCH_WARMUP, BENCH_RUNS)
//
// Workers, each on its own direct socket of one workerd, all forwarding to the same small Node
// origin on 127.0.0.1:
//   noop    JS worker `fetch(ORIGIN_URL + path, request)` — the cheapest possible proxy
//   bridge  the built auth-bridge, NextAuth and Clerk (PEM key, no network) configured
//   js      JS reference: the session cookie decoded with next-auth v4 `decode`, @auth/core
//           `decode` or @clerk/backend `verifyToken({ jwtKey })`, then forwarded with x-auth-*
//           headers (benches/reference-worker.mjs); no caches, as the libraries are used
// Cases: anonymous (noop, bridge, js), and for bridge and js each of NextAuth v4, Auth.js v5 and
// Clerk, cold (a token never seen before, one per request) and warm (one token repeated); and the
// floor: noop given each warm cookie, what carrying the cookie itself costs any worker; and, for
// bridge and js, cookies holding no session: other sites' and preferences', and Clerk's
// signed-out `__client_uat=0` beside them (distinct per request).
//
// Method. Requests are sent one at a time over keep-alive connections. Every round runs all
// cases in a seeded random order; each measured request follows an unrecorded anonymous request
// to the same worker (switching between workers of one workerd costs ~0.2 ms that belongs to
// neither). cpu = on-CPU time of the workerd process (all threads, /proc/PID/task/TID/schedstat)
// read just before the request and after its last body byte: that request's CPU in workerd (HTTP
// in and out, the worker's JS and wasm, the subrequest to the origin), the origin excluded.
// latency = wall time from sending to the last body byte. Figures are medians over the rounds;
// with --runs N the whole measurement is repeated in a fresh workerd and the ratios are the
// medians of the runs' ratios.
//
// Every answer is checked (the origin echoes the identity it received), and every cold token is
// checked to be distinct from every other token of the run: Clerk's RS256 signatures are
// deterministic, so each Clerk token gets its own `sid`, `jti` and `iat`.
//
// --smoke: a few rounds, the same checks, no timing judgement; for CI (scripts/test).
import crypto from 'node:crypto';
import { Miniflare } from 'miniflare';
import { bridgeWorker } from '../tests/e2e/harness.mjs';
import { startClerkServer } from '../tests/clerk-server/server.mjs';
import { cookieSuffix, publishableKeyFor } from '../tests/clerk-server/keys.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from '../tests/e2e/tokens.mjs';
import {
  client, interleave, machine, option, pad, referenceScript, referenceWorker, startSmallOrigin,
  summarize, wasmSize, workerdCpu, fmt,
} from './common.mjs';

const args = process.argv.slice(2);
const SMOKE = args.includes('--smoke');
const JSON_OUT = args.includes('--json');
const ROUNDS = SMOKE ? 12 : option(args, 'rounds', 'BENCH_ROUNDS', 600);
const WARMUP = SMOKE ? 3 : option(args, 'warmup', 'BENCH_WARMUP', 100);
const RUNS = SMOKE ? 1 : option(args, 'runs', 'BENCH_RUNS', 1);
const SECRET = 'bench-nextauth-secret';
const FAPI = 'clerk.bench.example.com';
const V4 = 'next-auth.session-token';
const V5 = 'authjs.session-token';
/** The Clerk user's `external_id`: a migrated user, forwarded by auth-bridge under its legacy id. */
const CLERK_LEGACY_ID = 'legacy-clerk-bench';
/** Headers of an ordinary browser page load, sent with every request of every case. */
const BROWSER = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-US,en;q=0.5',
  'accept-encoding': 'gzip, deflate, br',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
};

/** The goals, as printed and judged. */
export const GOALS = {
  anonymous: 1.1,
  whole: 0.8,
  cold: 0.5,
  warm: 0.1,
};

const log = (...a) => JSON_OUT || console.error(...a);

/** Throws unless every token of `tokens` is distinct (cold tokens must never repeat). */
export function assertDistinct(name, tokens) {
  const seen = new Set(tokens);
  if (seen.size !== tokens.length) {
    throw new Error(`${name}: ${tokens.length - seen.size} of ${tokens.length} cold tokens repeat; a cold case would measure a cache`);
  }
}

async function oneRun(run) {
  const started = Date.now();
  const origin = await startSmallOrigin();
  const clerk = await startClerkServer({ port: 0, publishableKey: publishableKeyFor(FAPI, { live: true }) });
  const clerkSuffix = cookieSuffix(clerk.publishableKey);
  const script = await referenceScript();
  const vars = {
    ORIGIN_URL: origin.url,
    NEXTAUTH_SECRET: SECRET,
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
    CLERK_API_URL: clerk.url,
    CLERK_JWT_KEY: clerk.publicKeyPem,
  };
  const mf = new Miniflare({
    workers: [
      bridgeWorker(vars, { unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }] }),
      referenceWorker('js-noop', script, { ORIGIN_URL: origin.url, REFERENCE_MODE: 'noop' }),
      referenceWorker('js-reference', script, { ...vars, REFERENCE_MODE: 'identity' }),
    ],
    host: '127.0.0.1',
    port: 0,
  });
  try {
    await mf.ready;
    const cpu = workerdCpu() ?? undefined;
    if (!cpu && !SMOKE) log('warning: workerd CPU cannot be read (/proc); only latency is measured');
    const workers = {
      noop: client(await mf.unsafeGetDirectURL('js-noop'), { cpu }),
      bridge: client(await mf.unsafeGetDirectURL('auth-bridge'), { cpu }),
      js: client(await mf.unsafeGetDirectURL('js-reference'), { cpu }),
    };
    const direct = client(origin.url, { cpu }); // workerd idle: its cpu is the instrument's floor
    // A migrated user: auth-bridge asks Clerk once for its external_id, then caches it.
    const CLERK_USER = clerk.createUser({ external_id: CLERK_LEGACY_ID, email_address: ['bench@example.com'] }).id;

    // Tokens: one per cold request of each worker (warm-up included), one warm token per kind.
    const total = WARMUP + ROUNDS;
    const legacy = (i) => `legacy-${i}`;
    const claims = (i) => ({ sub: legacy(i), email: `user${i}@example.com`, name: `User ${i}` });
    const now = Math.floor(Date.now() / 1000);
    const uat = now - 120;
    // Distinct sid, jti and iat: RS256 is deterministic, equal claims would give equal tokens.
    const mintClerk = (i) =>
      clerk.mintSessionToken({
        sub: CLERK_USER,
        iat: now - (i % 100),
        ttlSeconds: 3600 + (i % 100),
        claims: { jti: crypto.randomBytes(12).toString('hex') },
      });
    log(`run ${run}: minting ${total * 2} tokens per cold case ...`);
    const mint = async (f) => {
      const out = [];
      for (let i = 0; i < total * 2; i++) out.push(await f(i));
      return out;
    };
    const tokens = {
      v4: await mint((i) => nextAuthV4(SECRET, claims(i))),
      v5: await mint((i) => authJsV5(SECRET, claims(i))),
      clerk: await mint((i) => mintClerk(i)),
    };
    const warm = {
      v4: await nextAuthV4(SECRET, claims('warm')),
      v5: await authJsV5(SECRET, claims('warm')),
      clerk: mintClerk(total * 2),
    };
    for (const kind of Object.keys(tokens)) assertDistinct(`${kind} cold`, [...tokens[kind], warm[kind]]);

    const cookieFor = {
      v4: (t) => cookieHeader({ [V4]: t }),
      v5: (t) => cookieHeader({ [V5]: t }),
      clerk: (t) => cookieHeader({ __session: t, __client_uat: String(uat) }),
    };
    // The JS reference forwards the token's `sub`; auth-bridge the user's external_id.
    const expectedUser = {
      v4: (i) => legacy(i),
      v5: (i) => legacy(i),
      clerk: (_, w) => (w === 0 ? CLERK_LEGACY_ID : CLERK_USER),
    };
    const sourceOf = { v4: 'nextauth', v5: 'nextauth', clerk: 'clerk' };
    const kinds = [{ kind: 'anonymous', cookie: () => null, source: 'anonymous', user: '' }];
    for (const id of ['v4', 'v5', 'clerk']) {
      kinds.push({
        kind: `${id} cold`,
        id,
        // Worker w takes the (2·round + w)-th token: no token is ever sent twice.
        cookie: (w, round) => cookieFor[id](tokens[id][2 * round + w]),
        user: (w, round) => expectedUser[id](2 * round + w, w),
        source: sourceOf[id],
      });
      kinds.push({
        kind: `${id} warm`,
        id,
        cookie: () => cookieFor[id](warm[id]),
        user: (w) => expectedUser[id]('warm', w),
        source: sourceOf[id],
      });
    }

    const check = (name, r, source, user) => {
      const seen = r.headers['x-seen-source'];
      const seenUser = r.headers['x-seen-user'];
      if (r.status !== 200 || seen !== source || (user !== undefined && seenUser !== user)) {
        throw new Error(`${name}: status ${r.status}, origin saw source ${seen} user ${seenUser} (expected ${source} ${user ?? ''}) ${r.body.slice(0, 200)}`);
      }
      return r;
    };
    const cases = [
      {
        name: 'direct|anonymous',
        prime: () => direct('/prime', BROWSER),
        run: async () => check('direct', await direct('/page', BROWSER), 'none', ''),
      },
      {
        name: 'noop|anonymous',
        prime: () => workers.noop('/prime', BROWSER),
        run: async () => check('noop', await workers.noop('/page', BROWSER), 'none', ''),
      },
      // The floor: what carrying the same session cookie costs the no-op worker. It is part of
      // every identity cost above (workerd parses, copies and forwards the longer request) and
      // no worker can remove it.
      ...['v4', 'v5', 'clerk'].map((id) => ({
        name: `noop|${id} cookie`,
        prime: () => workers.noop('/prime', BROWSER),
        run: async () => check('noop', await workers.noop('/page', { ...BROWSER, cookie: cookieFor[id](warm[id]) }), 'none', ''),
      })),
    ];
    for (const [w, name] of ['bridge', 'js'].entries()) {
      const get = workers[name];
      cases.push({
        name: `${name}|other cold`,
        prime: () => get('/prime', BROWSER),
        run: async (round) => {
          const cookie = `theme=dark-${round}-${w}; _ga=GA1.2.${round}`;
          return check(`${name} other`, await get('/page', { ...BROWSER, cookie }), 'anonymous', '');
        },
      });
      // A visitor signed out of Clerk: ClerkJS sets both `__client_uat` cookies to 0.
      cases.push({
        name: `${name}|signed-out cold`,
        prime: () => get('/prime', BROWSER),
        run: async (round) => {
          const cookie = `__client_uat=0; __client_uat_${clerkSuffix}=0; theme=dark-${round}-${w}`;
          return check(`${name} signed-out`, await get('/page', { ...BROWSER, cookie }), 'anonymous', '');
        },
      });
      for (const k of kinds) {
        cases.push({
          name: `${name}|${k.kind}`,
          prime: () => get('/prime', BROWSER),
          run: async (round) => {
            const cookie = k.cookie(w, round);
            const user = typeof k.user === 'function' ? k.user(w, round) : k.user;
            const r = await get('/page', cookie ? { ...BROWSER, cookie } : BROWSER);
            return check(`${name} ${k.kind}`, r, k.source, user);
          },
        });
      }
    }

    log(`run ${run}: warm-up ${WARMUP} rounds of ${cases.length} cases ...`);
    await interleave(cases, WARMUP, { seed: 7 + run });
    log(`run ${run}: measuring ${ROUNDS} rounds of ${cases.length} cases ...`);
    const measured = cases.map((c) => ({ ...c, run: (i) => c.run(i + WARMUP) }));
    const samples = await interleave(measured, ROUNDS, { seed: 1 + run });

    const stat = (pick) =>
      Object.fromEntries(Object.entries(samples).map(([name, v]) => [name, summarize(v.map(pick))]));
    const result = {
      run,
      seconds: 0,
      cpu: cpu ? stat((r) => r.cpuMs) : null,
      latency: stat((r) => r.ms),
    };
    result.ratios = ratios(result.cpu ?? result.latency);
    result.metric = result.cpu ? 'cpu' : 'latency';
    result.seconds = (Date.now() - started) / 1000;
    return result;
  } finally {
    await mf.dispose();
    await clerk.close();
    await origin.close();
  }
}

/** The four figures from one run's medians (per-request workerd CPU when available). */
export function ratios(s) {
  const m = (name) => s[name].median;
  const cost = (w, kind) => m(`${w}|${kind}`) - m(`${w}|anonymous`);
  const out = {
    anonymous: { bridge_ms: m('bridge|anonymous'), noop_ms: m('noop|anonymous'), ratio: m('bridge|anonymous') / m('noop|anonymous') },
    whole: {},
    cold: {},
    warm: {},
    floor: {},
    // A distinct non-session cookie per request: no token to read, so what the worker adds to
    // the anonymous request for cookies (its check that none is a session, then the same
    // forward).
    other: { bridge_ms: cost('bridge', 'other cold'), js_ms: cost('js', 'other cold') },
    // Clerk's signed-out cookies (`__client_uat=0`, plain and suffixed) beside another.
    signedOut: { bridge_ms: cost('bridge', 'signed-out cold'), js_ms: cost('js', 'signed-out cold') },
  };
  for (const id of ['v4', 'v5', 'clerk']) {
    const carried = cost('noop', `${id} cookie`);
    out.floor[id] = { noop_ms: carried, ratio: carried / cost('js', `${id} warm`) };
    for (const temp of ['cold', 'warm']) {
      const kind = `${id} ${temp}`;
      out.whole[kind] = { bridge_ms: m(`bridge|${kind}`), js_ms: m(`js|${kind}`), ratio: m(`bridge|${kind}`) / m(`js|${kind}`) };
      out[temp][id] = { bridge_ms: cost('bridge', kind), js_ms: cost('js', kind), ratio: cost('bridge', kind) / cost('js', kind) };
    }
  }
  return out;
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function report(runs) {
  const last = runs[runs.length - 1];
  const metric = last.metric;
  const lines = [];
  lines.push(`hot path: ${ROUNDS} rounds per case after ${WARMUP} warm-up rounds, ${runs.length} run(s); ${machine()}`);
  const size = wasmSize();
  lines.push(`build/index_bg.wasm: ${size.raw} bytes raw, ${size.gzip} bytes gzipped (node zlib, default level; ${size.gzip_level9} at level 9; goal <= 400000)`);
  for (const r of runs) {
    lines.push(`\nrun ${r.run} (${r.seconds.toFixed(1)} s): medians per request, ms`);
    const rows = [['case', 'cpu', 'cpu p90', 'latency', 'latency p90']];
    for (const name of Object.keys(r.latency)) {
      const c = r.cpu?.[name];
      rows.push([name, c ? fmt(c.median) : '', c ? fmt(c.p90) : '', fmt(r.latency[name].median), fmt(r.latency[name].p90)]);
    }
    lines.push(pad(rows));
  }
  // Ratios: per run, then the median over runs, judged against the goals.
  const pick = (f) => median(runs.map((r) => f(r.ratios)));
  const verdict = (x, goal) => (!Number.isFinite(x) ? 'n/a' : x <= goal ? 'meets' : 'MISSES');
  const rows = [['figure (' + metric + ')', 'auth-bridge ms', 'reference ms', 'ratio', 'goal', '']];
  const add = (label, f, goal) => {
    const ratio = pick((x) => f(x).ratio);
    const perRun = runs.length > 1 ? ` (runs: ${runs.map((r) => fmt(f(r.ratios).ratio, 2)).join(', ')})` : '';
    rows.push([label, fmt(pick((x) => f(x).bridge_ms)), fmt(pick((x) => f(x).noop_ms ?? f(x).js_ms)), `${fmt(ratio, 2)}x${perRun}`, `<= ${goal}x`, SMOKE ? '' : verdict(ratio, goal)]);
  };
  add('anonymous request vs no-op JS worker', (x) => x.anonymous, GOALS.anonymous);
  for (const id of ['v4', 'v5', 'clerk']) {
    for (const temp of ['warm', 'cold']) add(`whole request, ${id} ${temp}, vs JS reference`, (x) => x.whole[`${id} ${temp}`], GOALS.whole);
  }
  for (const id of ['v4', 'v5', 'clerk']) add(`identity cost, ${id} cold (fresh token), vs JS library`, (x) => x.cold[id], GOALS.cold);
  for (const id of ['v4', 'v5', 'clerk']) add(`identity cost, ${id} warm (repeated token), vs JS library`, (x) => x.warm[id], GOALS.warm);
  lines.push(`\n${pad(rows)}`);
  const floor = [['floor: the same cookie through the no-op worker', 'no-op ms', 'JS library ms', 'as a ratio']];
  for (const id of ['v4', 'v5', 'clerk']) {
    floor.push([`${id} session cookie (a warm identity cost cannot go below it)`, fmt(pick((x) => x.floor[id].noop_ms)), fmt(pick((x) => x.warm[id].js_ms)), `${fmt(pick((x) => x.floor[id].ratio), 2)}x`]);
  }
  lines.push(`\n${pad(floor)}`);
  const other = [
    ['cookies without a session, distinct per request: cost over the anonymous request', 'auth-bridge ms', 'JS reference ms'],
    ['reading the cookies and deciding "anonymous"', fmt(pick((x) => x.other.bridge_ms)), fmt(pick((x) => x.other.js_ms))],
    ['the same with Clerk\'s signed-out cookies (__client_uat=0)', fmt(pick((x) => x.signedOut.bridge_ms)), fmt(pick((x) => x.signedOut.js_ms))],
  ];
  lines.push(`\n${pad(other)}`);
  lines.push(
    '\nidentity cost = median(case) - median(anonymous) of the same worker; whole request = median(case) of auth-bridge / of the JS reference; ' +
      `ratios are of per-request workerd ${metric === 'cpu' ? 'CPU' : 'latency'}${runs.length > 1 ? ', median over runs' : ''}. ` +
      'A cost within noise of zero makes its ratio meaningless: read the ms columns too.',
  );
  return lines.join('\n');
}

const runs = [];
for (let run = 1; run <= RUNS; run++) runs.push(await oneRun(run));
if (SMOKE) {
  // Only that the figures exist: no timing is judged in CI.
  const r = runs[0].ratios;
  const all = [r.anonymous, ...Object.values(r.whole), ...Object.values(r.cold), ...Object.values(r.warm)];
  if (!all.every((x) => Number.isFinite(x.bridge_ms) && Number.isFinite(x.ratio)) || !Object.values(r.floor).every((x) => Number.isFinite(x.noop_ms))) {
    throw new Error('smoke: a figure is not a number');
  }
}
if (JSON_OUT) {
  console.log(JSON.stringify({ rounds: ROUNDS, warmup: WARMUP, machine: machine(), wasm: wasmSize(), goals: GOALS, runs }, null, 2));
} else {
  console.log(report(runs));
  if (SMOKE) console.log('\nsmoke: every answer checked, every cold token distinct (no timing judged)');
}
