#!/usr/bin/env node
// Added latency of auth-bridge as a proxy, against a no-op JS worker, in one Miniflare run.
//
//   node scripts/bench-proxy.mjs [--requests N] [--warmup N] [--json]
//   (env: BENCH_PROXY_REQUESTS, BENCH_PROXY_WARMUP)
//
// Needs build/ (scripts/build). Cases, interleaved round by round over keep-alive connections
// from this process, all to 127.0.0.1:
//   direct      client -> Node origin
//   js-noop     client -> JS worker `fetch(ORIGIN_URL + path, request)` -> origin
//   bridge      client -> auth-bridge (anonymous request, NextAuth + Clerk configured) -> origin
//   bridge+asrt the same with AUTH_BRIDGE_ASSERTION_SECRET (an HS256 assertion per request)
// Both workers run in the same workerd, each reached on its own direct socket (no Miniflare
// entry worker in the path). Each round runs the cases in a seeded random order, and each
// measured request follows an unrecorded one to the same target (see benches/common.mjs). Latency = wall time from sending the request to the last body byte.
// Also reported: workerd CPU per request, the on-CPU time of the workerd process (all threads,
// /proc/PID/task/TID/schedstat) read before and after each request; requests are sequential, so
// it is that request's CPU in workerd (HTTP in and out, the worker's JS/wasm), origin excluded.
import { Miniflare } from 'miniflare';
import { bridgeWorker } from '../tests/e2e/harness.mjs';
import { startClerkServer } from '../tests/clerk-server/server.mjs';
import { publishableKeyFor } from '../tests/clerk-server/keys.mjs';
import {
  client, interleave, machine, workerdCpu, option, pad, referenceScript, referenceWorker, startSmallOrigin,
  summarize, wasmSize, fmt,
} from '../benches/common.mjs';

const args = process.argv.slice(2);
const REQUESTS = option(args, 'requests', 'BENCH_PROXY_REQUESTS', 2000);
const WARMUP = option(args, 'warmup', 'BENCH_PROXY_WARMUP', 300);
const JSON_OUT = args.includes('--json');
const FAPI = 'clerk.bench.example.com';

const started = Date.now();
const origin = await startSmallOrigin();
const clerk = await startClerkServer({ port: 0, publishableKey: publishableKeyFor(FAPI).replace('pk_test_', 'pk_live_') });
const script = await referenceScript();
const identityVars = {
  ORIGIN_URL: origin.url,
  NEXTAUTH_SECRET: 'bench-nextauth-secret',
  CLERK_SECRET_KEY: clerk.secretKey,
  CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
  CLERK_API_URL: clerk.url,
  CLERK_JWT_KEY: clerk.publicKeyPem,
};
const direct = [{ host: '127.0.0.1', port: 0 }];
const mf = new Miniflare({
  workers: [
    bridgeWorker(identityVars, { unsafeDirectSockets: direct }),
    bridgeWorker(
      { ...identityVars, AUTH_BRIDGE_ASSERTION_SECRET: 'bench-assertion-secret' },
      { name: 'auth-bridge-assertion', queueConsumers: {}, unsafeDirectSockets: direct },
    ),
    referenceWorker('js-noop', script, { ORIGIN_URL: origin.url, REFERENCE_MODE: 'noop' }),
  ],
  host: '127.0.0.1',
  port: 0,
});
await mf.ready;
const cpu = workerdCpu() ?? undefined;
const targets = {
  direct: client(origin.url, { cpu }),
  'js-noop': client(await mf.unsafeGetDirectURL('js-noop'), { cpu }),
  bridge: client(await mf.unsafeGetDirectURL('auth-bridge'), { cpu }),
  'bridge+assertion': client(await mf.unsafeGetDirectURL('auth-bridge-assertion'), { cpu }),
};

try {
  // Sanity: every path reaches the origin; the bridge says anonymous.
  for (const [name, get] of Object.entries(targets)) {
    const r = await get('/bench');
    if (r.status !== 200 || !r.body.includes('"ok"')) throw new Error(`${name}: unexpected answer ${r.status} ${r.body.slice(0, 200)}`);
  }
  const cases = Object.entries(targets).map(([name, get]) => ({
    name,
    prime: () => get('/prime'),
    run: async () => {
      const r = await get('/bench?x=1', { accept: 'application/json', 'user-agent': 'bench' });
      if (r.status !== 200) throw new Error(`${name}: status ${r.status}`);
      return r;
    },
  }));
  await interleave(cases, WARMUP, { seed: 7 });
  const samples = await interleave(cases, REQUESTS, { seed: 1 });
  const stats = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v.map((r) => r.ms))]));
  const cpuStats = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v.map((r) => r.cpuMs))]));
  const size = wasmSize();
  const js = stats['js-noop'];
  const result = {
    method: 'wall time per request (send -> last body byte), sequential keep-alive, cases in a seeded random order per round, each measured request preceded by an unrecorded one to the same target',
    requests_per_case: REQUESTS,
    warmup_rounds: WARMUP,
    machine: machine(),
    seconds: (Date.now() - started) / 1000,
    stats,
    workerd_cpu_ms: cpu ? cpuStats : null,
    bridge_over_js: {
      median_ratio: stats.bridge.median / js.median,
      median_added_ms: stats.bridge.median - js.median,
      p90_ratio: stats.bridge.p90 / js.p90,
      p90_added_ms: stats.bridge.p90 - js.p90,
    },
    bridge_assertion_over_js: {
      median_ratio: stats['bridge+assertion'].median / js.median,
      median_added_ms: stats['bridge+assertion'].median - js.median,
    },
    wasm: size,
  };
  if (JSON_OUT) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    console.log(`bench-proxy: ${REQUESTS} requests per case after ${WARMUP} warm-up rounds, interleaved; ${result.machine}`);
    console.log(`method: ${result.method}\n`);
    const rows = [['case', 'median ms', 'p90 ms', 'p99 ms', 'min ms', 'median - js-noop', 'workerd CPU ms (median)']];
    for (const [name, s] of Object.entries(stats)) {
      rows.push([
        name, fmt(s.median), fmt(s.p90), fmt(s.p99), fmt(s.min),
        name === 'direct' ? '' : fmt(s.median - js.median),
        cpu && name !== 'direct' ? fmt(cpuStats[name].median) : '',
      ]);
    }
    console.log(pad(rows));
    console.log(
      `\nauth-bridge / JS no-op worker: median ${fmt(result.bridge_over_js.median_ratio, 2)}x (+${fmt(result.bridge_over_js.median_added_ms)} ms), ` +
        `p90 ${fmt(result.bridge_over_js.p90_ratio, 2)}x (+${fmt(result.bridge_over_js.p90_added_ms)} ms); ` +
        `with assertion: median ${fmt(result.bridge_assertion_over_js.median_ratio, 2)}x (+${fmt(result.bridge_assertion_over_js.median_added_ms)} ms)`,
    );
    if (cpu) {
      const c = cpuStats.bridge.median / cpuStats['js-noop'].median;
      console.log(`workerd CPU per request (on-CPU time of the workerd process around each request, /proc schedstat): auth-bridge / JS no-op ${fmt(c, 2)}x (+${fmt(cpuStats.bridge.median - cpuStats['js-noop'].median)} ms)`);
    }
    console.log(`build/index_bg.wasm: ${size.raw} bytes raw, ${size.gzip} bytes gzipped (node zlib level 9; gzip -9 in scripts/build differs by a few KB)`);
    console.log(`(${result.seconds.toFixed(1)} s)`);
  }
} finally {
  await mf.dispose();
  await clerk.close();
  await origin.close();
}
