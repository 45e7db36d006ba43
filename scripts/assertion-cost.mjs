#!/usr/bin/env node
// What x-auth-assertion costs per forwarded request, under workerd (Miniflare): the same requests
// through three workers — no assertion, HS256, ES256 — interleaved in rounds so machine noise
// hits them alike. Pass "new" uses a session never seen (NextAuth decrypt + a fresh signature);
// pass "again" repeats it within 10 s (the verified-session cache, and for ES256 the reused
// signed assertion). Run after `scripts/build`: node scripts/assertion-cost.mjs [users] [rounds]
import fs from 'node:fs';
import path from 'node:path';
import { startBridge, ROOT } from '../tests/e2e/harness.mjs';
import { startOrigin } from '../tests/e2e/origin.mjs';
import { nextAuthV4 } from '../tests/e2e/tokens.mjs';

const USERS = Number(process.argv[2] ?? 200);
const ROUNDS = Number(process.argv[3] ?? 3);
const SECRET = 'assertion-cost-nextauth-secret';
const KEY = fs.readFileSync(path.join(ROOT, 'tests/fixtures/assertion-es256.pem'), 'utf8');

const origin = await startOrigin();
const base = { ORIGIN_URL: origin.url, NEXTAUTH_SECRET: SECRET, MIGRATION_PHASE: 'observe' };
// (Clerk is not configured: the status would say so; only the NextAuth path is measured.)
const kinds = {
  none: await startBridge(base),
  hs256: await startBridge({ ...base, AUTH_BRIDGE_ASSERTION_SECRET: 'assertion-cost-secret' }),
  es256: await startBridge({ ...base, AUTH_BRIDGE_ASSERTION_KEY: KEY }),
};
const times = Object.fromEntries(Object.keys(kinds).map((k) => [k, { new: [], again: [] }]));

async function timed(bridge, cookie) {
  const t = process.hrtime.bigint();
  const res = await bridge.fetch('/whoami', { headers: { cookie } });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`status ${res.status}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

try {
  // Warm each isolate (first request builds it).
  for (const b of Object.values(kinds)) await timed(b, '');
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < USERS; i++) {
      const cookie = `next-auth.session-token=${await nextAuthV4(SECRET, { sub: `cost-${round}-${i}` })}`;
      // A different order each time, so no kind always goes first.
      const order = Object.entries(kinds).sort(() => Math.random() - 0.5);
      for (const [kind, b] of order) {
        times[kind].new.push(await timed(b, cookie));
        times[kind].again.push(await timed(b, cookie));
      }
    }
  }
} finally {
  for (const b of Object.values(kinds)) await b.close();
  await origin.close();
}

const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: s[Math.floor(s.length / 2)], mean: s.reduce((a, b) => a + b, 0) / s.length };
};
console.log(`${USERS * ROUNDS} users per kind, ms per request (client-measured, Miniflare):`);
for (const [kind, t] of Object.entries(times)) {
  const n = stat(t.new), a = stat(t.again);
  console.log(`${kind.padEnd(6)} new p50 ${n.p50.toFixed(3)} mean ${n.mean.toFixed(3)} | again p50 ${a.p50.toFixed(3)} mean ${a.mean.toFixed(3)}`);
}
