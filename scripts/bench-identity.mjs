#!/usr/bin/env node
// Cost of identity resolution per request: auth-bridge against the JS libraries apps use, both
// as workers in one Miniflare run, reached the same way (their own direct sockets), both
// forwarding to the same local origin with x-auth-* headers.
//
//   node scripts/bench-identity.mjs [--requests N] [--warmup N] [--json]
//   (env: BENCH_IDENTITY_REQUESTS, BENCH_IDENTITY_WARMUP)
//
// Needs build/ (scripts/build). JS reference: benches/reference-worker.mjs bundled by esbuild
// for workerd: next-auth v4 `decode` (next-auth/jwt), @auth/core `decode` (@auth/core/jwt) and
// @clerk/backend `verifyToken({ jwtKey })`, no caches.
//
// Cases: anonymous (no cookie); NextAuth v4 cookie, Auth.js v5 cookie, Clerk `__session` (+
// `__client_uat`) — each cold (a freshly minted token/cookie for every request: no verification
// cache can hit) and warm (one token repeated). Clerk tokens all carry the same `sub`, so cold
// measures verification, not the isolate's Clerk id -> legacy id cache.
//
// Method: workerd exposes no per-request CPU time to a worker and its clocks only advance on I/O,
// so a loop timed inside the worker is not possible for the Rust worker. Two measures instead,
// per request, with requests sent one at a time and all 14 cases interleaved round by round (a
// seeded random order per round; each measured request follows an unrecorded anonymous request
// to the same worker, so no sample pays for switching between the two workers):
//   latency  wall time from sending the request to the last body byte (keep-alive, 127.0.0.1);
//   cpu      on-CPU time of the workerd process (all threads, /proc/PID/task/TID/schedstat) read
//            just before and after the request — that request's CPU in workerd, origin excluded.
// The cost of a case = median(case) - median(anonymous) of the same worker (for the reference:
// its anonymous path, i.e. parse cookies and forward). Ratio = auth-bridge cost / JS cost
// (goal: <= 1). Every answer is checked: the origin echoes the identity source it received.
import { Miniflare } from 'miniflare';
import { bridgeWorker } from '../tests/e2e/harness.mjs';
import { startClerkServer } from '../tests/clerk-server/server.mjs';
import { publishableKeyFor } from '../tests/clerk-server/keys.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from '../tests/e2e/tokens.mjs';
import {
  client, interleave, machine, option, pad, referenceScript, referenceWorker, startSmallOrigin,
  summarize, workerdCpu, fmt,
} from '../benches/common.mjs';

const args = process.argv.slice(2);
const REQUESTS = option(args, 'requests', 'BENCH_IDENTITY_REQUESTS', 1000);
const WARMUP = option(args, 'warmup', 'BENCH_IDENTITY_WARMUP', 150);
const JSON_OUT = args.includes('--json');
const SECRET = 'bench-nextauth-secret';
const FAPI = 'clerk.bench.example.com';
const V4 = 'next-auth.session-token';
const V5 = 'authjs.session-token';

const log = (...a) => JSON_OUT || console.error(...a);
const started = Date.now();
const origin = await startSmallOrigin();
const clerk = await startClerkServer({ port: 0, publishableKey: publishableKeyFor(FAPI).replace('pk_test_', 'pk_live_') });
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
    referenceWorker('js-reference', script, { ...vars, REFERENCE_MODE: 'identity' }),
  ],
  host: '127.0.0.1',
  port: 0,
});

try {
  await mf.ready;
  const cpu = workerdCpu() ?? undefined;
  const workers = {
    bridge: client(await mf.unsafeGetDirectURL('auth-bridge'), { cpu }),
    js: client(await mf.unsafeGetDirectURL('js-reference'), { cpu }),
  };

  // Tokens. Cold cases get one fresh token per request and per worker (warm-up included).
  const total = WARMUP + REQUESTS;
  const userId = 'user_2benchUser0000000000000';
  const claims = (i) => ({ sub: `legacy-${i}`, email: `user${i}@example.com`, name: `User ${i}` });
  const mintClerk = () => clerk.mintSessionToken({ sub: userId, sid: 'sess_bench', ttlSeconds: 3600 });
  log(`minting ${total * 2} cookies per cold case ...`);
  const fresh = async (mint) => {
    const out = [];
    for (let i = 0; i < total * 2; i++) out.push(await mint(i));
    return out;
  };
  const uat = Math.floor(Date.now() / 1000) - 30;
  const cold = {
    v4: await fresh(async (i) => cookieHeader({ [V4]: await nextAuthV4(SECRET, claims(i)) })),
    v5: await fresh(async (i) => cookieHeader({ [V5]: await authJsV5(SECRET, claims(i)) })),
    clerk: await fresh(async () => cookieHeader({ __session: mintClerk(), __client_uat: String(uat) })),
  };
  const warm = {
    v4: cookieHeader({ [V4]: await nextAuthV4(SECRET, claims('warm')) }),
    v5: cookieHeader({ [V5]: await authJsV5(SECRET, claims('warm')) }),
    clerk: cookieHeader({ __session: mintClerk(), __client_uat: String(uat) }),
  };

  const kinds = [
    { kind: 'anonymous', source: 'anonymous', cookie: () => null },
    { kind: 'nextauth-v4 cold', source: 'nextauth', cookie: (w, i) => cold.v4[2 * i + w] },
    { kind: 'nextauth-v4 warm', source: 'nextauth', cookie: () => warm.v4 },
    { kind: 'authjs-v5 cold', source: 'nextauth', cookie: (w, i) => cold.v5[2 * i + w] },
    { kind: 'authjs-v5 warm', source: 'nextauth', cookie: () => warm.v5 },
    { kind: 'clerk cold', source: 'clerk', cookie: (w, i) => cold.clerk[2 * i + w] },
    { kind: 'clerk warm', source: 'clerk', cookie: () => warm.clerk },
  ];
  const cases = [];
  for (const [w, [workerName, get]] of Object.entries(workers).entries()) {
    for (const k of kinds) {
      cases.push({
        name: `${workerName}|${k.kind}`,
        prime: () => get('/prime', { accept: 'text/html' }),
        run: async (round) => {
          const cookie = k.cookie(w, round);
          const r = await get('/page', cookie ? { cookie, accept: 'text/html' } : { accept: 'text/html' });
          const seen = r.headers['x-seen-source'];
          if (r.status !== 200 || seen !== k.source) {
            throw new Error(`${workerName} ${k.kind}: status ${r.status}, origin saw source ${seen} (expected ${k.source})`);
          }
          return r;
        },
      });
    }
  }
  // Warm-up rounds use the first WARMUP fresh tokens; measured rounds the rest.
  log(`warm-up: ${WARMUP} rounds of ${cases.length} cases ...`);
  await interleave(cases, WARMUP, { seed: 7 });
  log(`measuring: ${REQUESTS} rounds of ${cases.length} cases ...`);
  const offset = cases.map((c) => ({ ...c, run: (i) => c.run(i + WARMUP) }));
  const samples = await interleave(offset, REQUESTS, { seed: 1 });

  const metrics = { latency: (r) => r.ms, cpu: (r) => r.cpuMs };
  const result = {
    method:
      'per request, sequential, 14 cases in a seeded random order per round, each after an unrecorded anonymous request to the same worker: latency = wall time send -> last body byte; ' +
      'cpu = on-CPU time of the workerd process around the request (/proc schedstat, all threads). ' +
      'cost(case) = median(case) - median(anonymous) of the same worker; ratio = auth-bridge cost / JS reference cost',
    requests_per_case: REQUESTS,
    warmup_rounds: WARMUP,
    machine: machine(),
    metrics: {},
  };
  for (const [metric, pick] of Object.entries(metrics)) {
    if (metric === 'cpu' && !cpu) continue;
    const stats = Object.fromEntries(Object.entries(samples).map(([name, v]) => [name, summarize(v.map(pick))]));
    const perKind = {};
    for (const k of kinds) {
      const b = stats[`bridge|${k.kind}`];
      const j = stats[`js|${k.kind}`];
      const bCost = b.median - stats['bridge|anonymous'].median;
      const jCost = j.median - stats['js|anonymous'].median;
      perKind[k.kind] = {
        bridge: b,
        js: j,
        bridge_cost_ms: bCost,
        js_cost_ms: jCost,
        ratio: k.kind === 'anonymous' ? b.median / j.median : bCost / jCost,
      };
    }
    result.metrics[metric] = perKind;
  }
  result.seconds = (Date.now() - started) / 1000;

  if (JSON_OUT) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    console.log(`bench-identity: ${REQUESTS} requests per case after ${WARMUP} warm-up rounds, interleaved; ${result.machine}`);
    console.log(`method: ${result.method}`);
    for (const [metric, perKind] of Object.entries(result.metrics)) {
      console.log(`\n${metric === 'cpu' ? 'workerd CPU per request' : 'latency per request'} (ms)`);
      const rows = [['case', 'bridge med', 'bridge p90', 'js med', 'js p90', 'bridge cost', 'js cost', 'ratio']];
      for (const [kind, s] of Object.entries(perKind)) {
        rows.push([
          kind, fmt(s.bridge.median), fmt(s.bridge.p90), fmt(s.js.median), fmt(s.js.p90),
          kind === 'anonymous' ? '' : fmt(s.bridge_cost_ms), kind === 'anonymous' ? '' : fmt(s.js_cost_ms),
          kind === 'anonymous' ? `${fmt(s.ratio, 2)}x (whole request)` : `${fmt(s.ratio, 2)}x`,
        ]);
      }
      console.log(pad(rows));
    }
    console.log(`\n(${result.seconds.toFixed(1)} s)`);
  }
} finally {
  await mf.dispose();
  await clerk.close();
  await origin.close();
}
