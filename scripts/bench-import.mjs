// The batch import end to end at Clerk's limit: Miniflare (real workerd) with the built worker,
// the local Clerk Backend API server enforcing the same rate limit, an NDJSON upload, cron ticks
// driven by hand, and the figures that matter: wall time next to the physical limit (one
// POST /users per user at the full rate), Backend API calls per user, Clerk 429s, the busiest
// window. Run through scripts/bench-import (which builds first).
//
//   node scripts/bench-import.mjs [--users 2000] [--rate 1000/10s] [--tick-s 5] [--timeout-s 120] [--json]
import { setTimeout as sleep } from 'node:timers/promises';
import { startBridge } from '../tests/e2e/harness.mjs';
import { startClerkServer, parseRate } from '../tests/clerk-server/server.mjs';

const args = process.argv.slice(2);
const option = (name, fallback, parse = Number) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : parse(args[i + 1]);
};
const USERS = option('users', 2000);
const RATE = option('rate', '1000/10s', String);
const TICK_MS = option('tick-s', 5) * 1000;
const TIMEOUT_MS = option('timeout-s', 120) * 1000;
const ADMIN = 'bench-import-admin-token-0123456789';
const BCRYPT = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0';
const log = args.includes('--json') ? () => {} : (m) => console.error(`# ${m}`);

const limit = parseRate(RATE);
const clerk = await startClerkServer({ port: 0, quiet: true, rateLimit: { limit: limit.limit, windowMs: limit.windowMs } });
const bridge = await startBridge({
  CLERK_SECRET_KEY: clerk.secretKey,
  CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
  CLERK_API_URL: clerk.url,
  CLERK_RATE_LIMIT: RATE,
  NEXTAUTH_SECRET: 'bench-import-nextauth-secret',
  AUTH_BRIDGE_ADMIN_TOKEN: ADMIN,
}, { captureLogs: true });

const admin = (path, init = {}) =>
  bridge.fetch(`/__auth-bridge/admin${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, ...(init.headers ?? {}) } });
let report;
try {
  const lines = [];
  for (let i = 0; i < USERS; i++) {
    lines.push(JSON.stringify({
      id: `bench-${i}`,
      email: `bench${i}@example.com`,
      email_verified: i % 2 === 0,
      first_name: `Bench${i}`,
      last_name: 'User',
      password_digest: BCRYPT,
      password_hasher: 'bcrypt',
    }));
  }
  const up = await admin('/imports', { method: 'POST', body: lines.join('\n') + '\n', headers: { 'content-type': 'application/x-ndjson' } });
  const uploaded = await up.json();
  if (up.status !== 202 || uploaded.accepted !== USERS) throw new Error(`upload: ${up.status} ${JSON.stringify(uploaded).slice(0, 200)}`);
  const since = clerk.requestLog().at(-1)?.seq ?? 0;

  // Ticks every few seconds (each with the next minute's scheduledTime), until nothing is pending.
  const t0 = Date.now();
  let minute = Math.floor(t0 / 60_000) * 60_000;
  let last;
  let nextTick = 0;
  while (Date.now() - t0 < TIMEOUT_MS) {
    if (Date.now() >= nextTick) {
      await bridge.scheduled((minute += 60_000));
      nextTick = Date.now() + TICK_MS;
    }
    last = await (await admin('/status')).json();
    if (last.counts.pending === 0) break;
    await sleep(250);
  }
  const wallS = (Date.now() - t0) / 1000;
  const stats = clerk.stats({ since });
  const users = clerk.users();
  const physicalS = (USERS * limit.windowMs) / limit.limit / 1000;
  report = {
    users: USERS,
    rate: RATE,
    finished: last?.counts.pending === 0,
    counts: last?.counts,
    wall_s: Math.round(wallS * 10) / 10,
    physical_limit_s: physicalS,
    share_of_limit: Math.round((physicalS / wallS) * 1000) / 1000,
    clerk_calls: stats.counted,
    calls_per_user: Math.round((stats.counted / USERS) * 1000) / 1000,
    clerk_429: stats.rate_limited,
    max_calls_in_window: stats.max_in_window,
    clerk_users: users.total,
    duplicates: Object.keys(users.duplicates.by_external_id).length + Object.keys(users.duplicates.by_email).length,
    status_rate: last?.rate,
  };
} catch (e) {
  console.error(bridge.logs.join('').slice(-3000));
  throw e;
} finally {
  await bridge.close();
  await clerk.close();
}

if (args.includes('--json')) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const r = report;
  console.log(`bench-import: ${r.users} users at ${r.rate} under Miniflare with the local Clerk server`);
  console.log(`  finished          ${r.finished ? 'yes' : 'NO'} ${JSON.stringify(r.counts)}`);
  console.log(`  wall time         ${r.wall_s} s   (physical limit ${r.physical_limit_s} s: one POST /users per user at the full rate; ${(r.share_of_limit * 100).toFixed(0)} % of it)`);
  console.log(`  calls per user    ${r.calls_per_user}   (${r.clerk_calls} Backend API calls)`);
  console.log(`  Clerk 429s        ${r.clerk_429}`);
  console.log(`  busiest window    ${r.max_calls_in_window} calls (limit ${parseRate(r.rate).limit})`);
  console.log(`  Clerk users       ${r.clerk_users}, duplicates ${r.duplicates}`);
  console.log(`  admin/status      calls_per_user ${r.status_rate?.calls_per_user}, users_per_sec ${r.status_rate?.users_per_sec} (limit ${r.status_rate?.limit_users_per_sec})`);
}
process.exitCode = report.finished && report.clerk_429 === 0 && report.duplicates === 0 ? 0 : 1;
