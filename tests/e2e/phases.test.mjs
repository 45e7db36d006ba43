// MIGRATION_PHASE end to end: clerk-only drops NextAuth and sends its sign-in routes to Clerk
// (never an open redirect), observe reads both sessions but writes nothing, and switching phases
// between deployments that share KV loses nothing. Also the convergence counts in KV.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { startBridge, bridgeWorker } from './harness.mjs';
import { startStack } from './stack.mjs';
import { nextAuthV4, cookieHeader } from './tokens.mjs';

const SECRET = 'nextauth-secret-for-phase-tests';
const FAPI = 'clerk.phase-tests.example.com';
const SIGN_IN = 'https://accounts.phase-tests.example.com/sign-in';

let stack, clerk;
before(async () => {
  stack = await startStack({ secret: SECRET, frontendApi: FAPI, clerk: { live: true } });
  clerk = stack.clerk;
});
after(() => stack?.close());

const vars = (phase, extra = {}) => stack.settings({ MIGRATION_PHASE: phase, ...extra });

const now = () => Math.floor(Date.now() / 1000);
const clerkCookies = (sub) => ({ __session: clerk.mintSessionToken({ sub, iat: now() - 1 }), __client_uat: String(now() - 30) });

async function identity(b, cookies) {
  const res = await b.fetch('/whoami', { headers: { cookie: cookieHeader(cookies) } });
  assert.equal(res.status, 200);
  const h = (await res.json()).headers;
  return { source: h['x-auth-source'], user: h['x-auth-user-id'], clerk: h['x-auth-clerk-user-id'] };
}

/** redirect_url of a clerk-only sign-in redirect, after checking where it goes. */
function signInTarget(res) {
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const loc = new URL(res.headers.get('location'));
  assert.equal(`${loc.origin}${loc.pathname}`, SIGN_IN);
  return loc.searchParams.get('redirect_url');
}

test('clerk-only: NextAuth cookies give no identity; Clerk sessions still do', async () => {
  const b = await startBridge(vars('clerk-only', { CLERK_SIGN_IN_URL: SIGN_IN }));
  try {
    const na = await nextAuthV4(SECRET, { sub: 'legacy-gone', email: 'gone@example.com' });
    assert.deepEqual(await identity(b, { 'next-auth.session-token': na }), { source: 'anonymous', user: undefined, clerk: undefined });
    const both = await identity(b, { ...clerkCookies('user_co'), 'next-auth.session-token': na });
    assert.equal(both.source, 'clerk');
    assert.equal(both.clerk, 'user_co');
  } finally {
    await b.close();
  }
});

test('clerk-only: sign-in routes redirect to CLERK_SIGN_IN_URL with a same-origin redirect_url only', async () => {
  const b = await startBridge(vars('clerk-only', { CLERK_SIGN_IN_URL: SIGN_IN }));
  try {
    const f = (p, init) => b.fetch(p, init);
    assert.equal(signInTarget(await f('/api/auth/signin')), `${b.url}/`);
    assert.equal(signInTarget(await f('/api/auth/signin?callbackUrl=%2Fdashboard%3Ftab%3D2')), `${b.url}/dashboard?tab=2`);
    assert.equal(
      signInTarget(await f(`/api/auth/signin/github?callbackUrl=${encodeURIComponent(`${b.url}/settings`)}`)),
      `${b.url}/settings`,
    );
    // next-auth posts its provider forms: a 302 turns them into a GET at Clerk.
    assert.equal(signInTarget(await f('/api/auth/signin/credentials', { method: 'POST', body: 'csrfToken=x' })), `${b.url}/`);
    for (const evil of ['https://evil.example', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)', 'https://evil.example@127.0.0.1/']) {
      const target = signInTarget(await f(`/api/auth/signin?callbackUrl=${encodeURIComponent(evil)}`));
      assert.equal(target, `${b.url}/`, evil);
    }
    // Other NextAuth routes and look-alike paths still reach the origin.
    for (const p of ['/api/auth/signinfo', '/api/auth/signout', '/api/auth/session']) {
      const res = await f(p);
      assert.equal(res.status, 200, p);
    }
  } finally {
    await b.close();
  }
});

test('clerk-only: NEXTAUTH_SIGN_IN_PATHS is honoured; without CLERK_SIGN_IN_URL sign-in passes through', async () => {
  const custom = await startBridge(vars('clerk-only', { CLERK_SIGN_IN_URL: SIGN_IN, NEXTAUTH_SIGN_IN_PATHS: '/login,/auth/signin' }));
  try {
    assert.equal(signInTarget(await custom.fetch('/login')), `${custom.url}/`);
    assert.equal(signInTarget(await custom.fetch('/auth/signin/google')), `${custom.url}/`);
    assert.equal((await custom.fetch('/api/auth/signin')).status, 200);
  } finally {
    await custom.close();
  }
  const bare = await startBridge(vars('clerk-only'));
  try {
    const res = await bare.fetch('/api/auth/signin?callbackUrl=%2Fx');
    assert.equal(res.status, 200);
    assert.equal((await res.json()).url, '/api/auth/signin?callbackUrl=%2Fx');
  } finally {
    await bare.close();
  }
});

test('migrate and observe: sign-in routes are the origin\'s', async () => {
  for (const phase of ['migrate', 'observe']) {
    const b = await startBridge(vars(phase, { CLERK_SIGN_IN_URL: SIGN_IN }));
    try {
      assert.equal((await b.fetch('/api/auth/signin')).status, 200, phase);
    } finally {
      await b.close();
    }
  }
});

test('observe: both identities work and nothing is written to Clerk', async () => {
  const b = await startBridge(vars('observe'));
  try {
    const na = await nextAuthV4(SECRET, { sub: 'legacy-observed', email: 'observed@example.com' });
    assert.deepEqual(await identity(b, { 'next-auth.session-token': na }), { source: 'nextauth', user: 'legacy-observed', clerk: undefined });
    assert.equal((await identity(b, clerkCookies('user_obs'))).source, 'clerk');
    const since = clerk.requestLog().at(-1)?.seq ?? 0;
    const res = await b.fetch('/__auth-bridge/sign-in-token', {
      method: 'POST',
      headers: { cookie: cookieHeader({ 'next-auth.session-token': na }), 'sec-fetch-site': 'same-origin' },
    });
    assert.equal(res.status, 409);
    const writes = clerk.requestLog({ since }).filter((e) => e.method !== 'GET');
    assert.deepEqual(writes, []);
    assert.equal(clerk.users().total, 0);
  } finally {
    await b.close();
  }
});

/** A bridge whose KV lives in `dir`, as a redeploy with another phase would see it. */
async function persistentBridge(dir, phase) {
  const mf = new Miniflare({ workers: [bridgeWorker(vars(phase, { CLERK_SIGN_IN_URL: SIGN_IN }))], kvPersist: dir, port: 0, host: '127.0.0.1' });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  return { mf, url, fetch: (p, init = {}) => fetch(url + p, { redirect: 'manual', ...init }), kv: () => mf.getKVNamespace('AUTH_BRIDGE_KV'), close: () => mf.dispose() };
}

test('rollback: migrate → clerk-only → migrate over the same KV loses nothing', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-bridge-phases-'));
  const na = await nextAuthV4(SECRET, { sub: 'legacy-roundtrip', email: 'rt@example.com' });
  try {
    const first = await persistentBridge(dir, 'migrate');
    await (await first.kv()).put('map:c2l:user_rt', 'legacy-roundtrip');
    assert.equal((await identity(first, { 'next-auth.session-token': na })).user, 'legacy-roundtrip');
    await first.close();

    const cutover = await persistentBridge(dir, 'clerk-only');
    assert.equal((await identity(cutover, { 'next-auth.session-token': na })).source, 'anonymous');
    const migrated = await identity(cutover, clerkCookies('user_rt'));
    assert.deepEqual(migrated, { source: 'clerk', user: 'legacy-roundtrip', clerk: 'user_rt' });
    await cutover.close();

    const back = await persistentBridge(dir, 'migrate');
    assert.equal((await identity(back, { 'next-auth.session-token': na })).user, 'legacy-roundtrip');
    assert.equal((await identity(back, clerkCookies('user_rt'))).user, 'legacy-roundtrip');
    assert.equal(await (await back.kv()).get('map:c2l:user_rt'), 'legacy-roundtrip');
    assert.equal((await back.fetch('/api/auth/signin')).status, 200);
    await back.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function convergenceKeys(b) {
  const kv = await b.kv();
  for (let i = 0; i < 40; i++) {
    const { keys } = await kv.list({ prefix: 'conv:v1:' });
    if (keys.length) return Promise.all(keys.map(async (k) => ({ name: k.name, value: JSON.parse(await kv.get(k.name)) })));
    await new Promise((r) => setTimeout(r, 50));
  }
  return [];
}

test('convergence: a request with both valid sessions is counted as both, flushed to KV per isolate-hour', async () => {
  const b = await startBridge(vars('migrate'));
  try {
    const na = await nextAuthV4(SECRET, { sub: 'legacy-both' });
    await (await b.kv()).put('map:c2l:user_both', 'legacy-both');
    assert.equal((await identity(b, { ...clerkCookies('user_both'), 'next-auth.session-token': na })).source, 'clerk');
    const stored = await convergenceKeys(b);
    assert.equal(stored.length, 1);
    const hour = Math.floor(Date.now() / 3_600_000) * 3600;
    assert.match(stored[0].name, new RegExp(`^conv:v1:${hour}:[0-9a-f]{16}$`));
    const [bucket] = stored[0].value.buckets;
    assert.deepEqual(bucket.requests, { nextauth_only: 0, clerk_only: 0, both: 1, anonymous: 0 });
    assert.equal(bucket.users.both.length, 1);
    assert.deepEqual(bucket.users.nextauth_only, []);
    // Counted in memory, but not flushed again within the minute.
    await identity(b, { 'next-auth.session-token': na });
    await new Promise((r) => setTimeout(r, 300));
    const again = await convergenceKeys(b);
    assert.equal(again[0].value.buckets[0].requests.nextauth_only, 0);
  } finally {
    await b.close();
  }
});

test('convergence: requests the JS entry forwards on a remembered session are counted with the next plan', async () => {
  const token = 'phases-admin-token-0123456789';
  const b = await startBridge(vars('migrate', { AUTH_BRIDGE_ADMIN_TOKEN: token }));
  try {
    const na = { 'next-auth.session-token': await nextAuthV4(SECRET, { sub: 'legacy-counted' }) };
    // The first is resolved, the second recalled and handed to the JS entry, the rest forwarded
    // by it without the worker's Rust.
    for (let i = 0; i < 5; i++) assert.equal((await identity(b, na)).user, 'legacy-counted');
    // The plan (and its sessions) ends within a minute; the first request the worker sees after
    // it hands the counts over, and the next write of the counts (at most once a minute) holds them.
    await new Promise((r) => setTimeout(r, 61_000));
    assert.equal((await identity(b, { other: '1' })).source, 'anonymous');
    const status = await b.fetch('/__auth-bridge/admin/status', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(status.status, 200);
    const { convergence } = await status.json();
    assert.equal(convergence.last_hour.requests.nextauth_only, 5, JSON.stringify(convergence.last_hour));
    assert.equal(convergence.last_hour.requests.anonymous, 1, JSON.stringify(convergence.last_hour));
  } finally {
    await b.close();
  }
});

test('convergence: a NextAuth-only request', async () => {
  const b = await startBridge(vars('migrate', { AUTH_BRIDGE_ADMIN_TOKEN: 'phases-admin-token-0123456789' }));
  try {
    const na = await nextAuthV4(SECRET, { sub: 'legacy-only' });
    assert.equal((await identity(b, { 'next-auth.session-token': na })).source, 'nextauth');
    const [{ value }] = await convergenceKeys(b);
    assert.equal(value.buckets[0].requests.nextauth_only, 1);
    assert.equal(value.buckets[0].users.nextauth_only.length, 1);
    // The operator reads the same figures in the admin status.
    const status = await b.fetch('/__auth-bridge/admin/status', { headers: { authorization: 'Bearer phases-admin-token-0123456789' } });
    assert.equal(status.status, 200);
    const { convergence } = await status.json();
    assert.equal(convergence.last_hour.requests.nextauth_only, 1);
    assert.equal(convergence.last_day.requests.nextauth_only, 1);
  } finally {
    await b.close();
  }
});
