// The operator's dashboard in a real browser: headless Chromium opens GET /__auth-bridge/admin
// with HTTP Basic credentials (the admin token as the password) and reads what it shows after a
// batch with failures at Clerk and a day of convergence figures.
//
// With AUTH_BRIDGE_SCREENSHOT=<file.png> it also saves a screenshot of the page (the README's
// docs/dashboard.png is made so).
//
// Needs Chromium at /usr/bin/chromium (Debian: apt-get install -y chromium); skipped without it,
// except in CI (CI=true), where a missing browser fails the run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBridge } from './harness.mjs';
import { skipWithoutChromium, launchChromium } from './chromium.mjs';
import { startClerkServer } from '../clerk-server/server.mjs';

const skip = skipWithoutChromium('dashboard browser tests');

const ADMIN = 'admin-token-for-dashboard-tests-0123456789';
const BCRYPT = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0';
const USERS = 40;
const REJECTED = 3;
const HOUR = 3600;

let clerk, bridge, browser;

const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const bearer = { authorization: `Bearer ${ADMIN}` };

async function status() {
  const res = await bridge.fetch('/__auth-bridge/admin/status', { headers: bearer });
  assert.equal(res.status, 200);
  return res.json();
}

/**
 * One isolate-hour of convergence counts as the worker stores them (`conv:v1:<hour>:<isolate>`,
 * src/convergence.rs): `clerk` of `users` distinct users on Clerk. A sparse HyperLogLog register
 * per user (index << 8 | rank 1) counts exactly at this size.
 */
function convergenceHour(hour, users, clerkUsers) {
  const registers = (from, n) => Array.from({ length: n }, (_, i) => ((from + i) << 8) | 1);
  return JSON.stringify({
    buckets: [
      {
        start: hour,
        requests: { nextauth_only: (users - clerkUsers) * 3, clerk_only: clerkUsers * 3, both: 0, anonymous: 5 },
        users: { nextauth_only: registers(0, users - clerkUsers), clerk_only: registers(2000, clerkUsers), both: [] },
      },
    ],
  });
}

before(async () => {
  clerk = await startClerkServer({ port: 0, rateLimit: { limit: 1000, windowMs: 10_000 }, quiet: true });
  bridge = await startBridge({
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
    CLERK_API_URL: clerk.url,
    CLERK_RATE_LIMIT: '1000/10s',
    NEXTAUTH_SECRET: 'nextauth-secret-for-dashboard-tests',
    AUTH_BRIDGE_ADMIN_TOKEN: ADMIN,
  });
  // A batch in which a few records fail.
  const records = [];
  for (let i = 0; i < USERS; i++) {
    records.push({ id: `dash-${i}`, email: `dash${i}@example.com`, email_verified: true, password_digest: BCRYPT, password_hasher: 'bcrypt' });
  }
  // Each of these addresses is held by a Clerk account whose address is not verified: the
  // migration refuses to bind a verified legacy user to it, and the record fails.
  for (let i = 0; i < REJECTED; i++) {
    clerk.createUser({ email_address: [`bad${i}@example.com`], email_address_identification_status: ['reserved'] });
    records.push({ id: `dash-bad-${i}`, email: `bad${i}@example.com`, email_verified: true, password_digest: BCRYPT, password_hasher: 'bcrypt' });
  }
  const res = await bridge.fetch('/__auth-bridge/admin/imports', {
    method: 'POST',
    headers: bearer,
    body: records.map((r) => JSON.stringify(r)).join('\n'),
  });
  assert.equal(res.status, 202);
  await bridge.scheduled(Date.now() + 60_000);
  const end = Date.now() + 40_000;
  while ((await status()).counts.pending > 0) {
    assert.ok(Date.now() < end, 'the batch did not finish');
    await sleep(300);
  }
  // A day of traffic in which the share of users on Clerk rises from 0 to 95 %, the last two
  // hours alike: "last hour" spans 60–70 minutes (ten-minute buckets), so in the first ten
  // minutes of an hour it includes the hour before, which must not change its figure.
  const now = Math.floor(Date.now() / 1000);
  const current = now - (now % HOUR);
  const kv = await bridge.kv();
  for (let h = 0; h < 24; h++) {
    const hour = current - (23 - h) * HOUR;
    if (h === 3) continue; // an hour without traffic
    await kv.put(`conv:v1:${hour}:dashboard-test`, convergenceHour(hour, 100, Math.round((Math.min(h, 22) * 95) / 22)), {
      expirationTtl: 2 * 86_400,
    });
  }
  if (!skip) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await bridge?.close();
  await clerk?.close();
});

test('HTTP Basic opens the dashboard only: any user name, the token as the password', async () => {
  const page = (headers) => bridge.fetch('/__auth-bridge/admin', { headers });
  const ok = await page({ authorization: basic('ops', ADMIN) });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('cache-control'), 'no-store');
  assert.match(ok.headers.get('content-security-policy'), /default-src 'none'/);
  assert.match(await ok.text(), /auth-bridge migration/);
  assert.equal((await page({ authorization: basic('', ADMIN) })).status, 200, 'empty user name');
  assert.equal((await page(bearer)).status, 200, 'the bearer token still works');

  // No or wrong credentials: a challenge a browser answers with its login prompt.
  for (const headers of [{}, { authorization: basic('ops', 'wrong-token-wrong-token') }]) {
    const res = await page(headers);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="auth-bridge"');
    assert.equal(res.headers.get('cache-control'), 'no-store');
  }
  await status(); // a success clears the guard's count of wrong tokens
  // The API routes keep to the bearer token: Basic credentials a browser re-sends on its own
  // must not pause, resume or feed the batch.
  for (const [method, path] of [['GET', '/status'], ['POST', '/pause'], ['POST', '/imports']]) {
    const res = await bridge.fetch(`/__auth-bridge/admin${path}`, { method, headers: { authorization: basic('ops', ADMIN) } });
    assert.equal(res.status, 401, `${method} ${path}`);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
  }
  assert.equal((await status()).paused, false);
});

test('wrong Basic passwords count toward the guessing guard', async () => {
  // The guard counts per client address; Miniflare gives every local request the same one, so
  // this runs on a bridge of its own.
  const own = await startBridge({ AUTH_BRIDGE_ADMIN_TOKEN: ADMIN, NEXTAUTH_SECRET: 'x'.repeat(32) });
  try {
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const res = await own.fetch('/__auth-bridge/admin', { headers: { authorization: basic('ops', `guess-${i}-0123456789abcdef`) } });
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    const held = await own.fetch('/__auth-bridge/admin', { headers: { authorization: basic('ops', ADMIN) } });
    assert.equal(held.status, 429, 'refused without comparing, even the right token');
    assert.ok(Number(held.headers.get('retry-after')) > 0);
  } finally {
    await own.close();
  }
});

test('in a browser: progress, failures by Clerk code, rate against the limit, a day of convergence', { skip }, async () => {
  const context = await browser.newContext({
    httpCredentials: { username: 'operator', password: ADMIN },
    viewport: { width: 1000, height: 900 },
  });
  const page = await context.newPage();
  const external = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(bridge.url)) external.push(r.url());
  });
  try {
    const res = await page.goto(`${bridge.url}/__auth-bridge/admin`);
    assert.equal(res.status(), 200);
    assert.equal(await page.title(), 'auth-bridge migration');
    const body = await page.locator('body').innerText();
    const total = USERS + REJECTED;
    assert.match(body, new RegExp(`migrated\\s+${USERS} \\(${((USERS * 100) / total).toFixed(1)}%\\)`));
    assert.match(body, new RegExp(`failed\\s+${REJECTED} \\(${((REJECTED * 100) / total).toFixed(1)}%\\)`));
    assert.match(body, new RegExp(`Failures \\(${REJECTED}\\)`));
    // Failures grouped by their code (as admin/failures lists them), each failed id listed.
    const listed = (await (await bridge.fetch('/__auth-bridge/admin/failures', { headers: bearer })).text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.equal(listed.length, REJECTED);
    assert.ok(listed.every((f) => f.code && f.code === listed[0].code), JSON.stringify(listed));
    const codes = await page.locator('table.codes tr').allInnerTexts();
    assert.deepEqual(codes.map((r) => r.split('\t').map((c) => c.trim())), [[listed[0].code, String(REJECTED)]]);
    for (let i = 0; i < REJECTED; i++) assert.match(body, new RegExp(`dash-bad-${i}`));
    // The rate against the limit.
    assert.match(body, /of 1000 calls per window \(1000\/10s\)/);
    // Convergence: 95 of 100 users on Clerk in the current hour; 24 hourly bars, one empty.
    assert.match(body, /last hour\s+95\.0%/);
    assert.equal(await page.locator('svg.chart rect').count(), 24);
    assert.equal(await page.locator('svg.chart rect.none').count(), 1);
    const last = await page.locator('svg.chart rect.bar').last().getAttribute('height');
    assert.equal(Number(last), 114, '95 % of the 120-pixel chart');
    assert.deepEqual(external, [], 'the page loads nothing else');
    if (process.env.AUTH_BRIDGE_SCREENSHOT) {
      await page.screenshot({ path: process.env.AUTH_BRIDGE_SCREENSHOT, fullPage: true });
    }
  } finally {
    await context.close();
  }
});
