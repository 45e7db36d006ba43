// Cutover under real workerd: the kill switches for NextAuth sessions (admin/revoke, on the
// isolate that took the call at once and on another isolate sharing the KV within 60 s;
// NEXTAUTH_SESSIONS_NOT_BEFORE), the ES256 assertion verified with jose against jwks.json,
// readiness, and malformed settings that must stay configuration problems.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';
import { startBridge, bridgeWorker, deadPort, ROOT } from './harness.mjs';
import { startStack } from './stack.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from './tokens.mjs';

const SECRET = 'nextauth-secret-for-cutover-tests';
const ADMIN = 'cutover-admin-token-0123456789';
const FAPI = 'clerk.cutover-tests.example.com';
const KEY = fs.readFileSync(path.join(ROOT, 'tests/fixtures/assertion-es256.pem'), 'utf8');
const KEY_NEXT = fs.readFileSync(path.join(ROOT, 'tests/fixtures/assertion-es256-next.pem'), 'utf8');
const KEY_KID = fs.readFileSync(path.join(ROOT, 'tests/fixtures/assertion-es256.kid'), 'utf8').trim();

let stack, origin, clerk;
before(async () => {
  stack = await startStack({ secret: SECRET, frontendApi: FAPI, clerk: { live: true } });
  ({ origin, clerk } = stack);
});
after(() => stack?.close());

const vars = (extra = {}) => stack.settings({ MIGRATION_PHASE: 'migrate', AUTH_BRIDGE_ADMIN_TOKEN: ADMIN, ...extra });

const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const clerkCookies = (sub) => ({ __session: clerk.mintSessionToken({ sub, iat: now() - 1 }), __client_uat: String(now() - 30) });
const session = (sub) => nextAuthV4(SECRET, { sub, email: `${sub}@example.com` });

/** What the origin saw for one request: identity headers and the Cookie header. */
async function seen(b, cookies) {
  const res = await b.fetch('/whoami', { headers: { cookie: cookieHeader(cookies) } });
  assert.equal(res.status, 200);
  const h = (await res.json()).headers;
  return { source: h['x-auth-source'], user: h['x-auth-user-id'], cookie: h.cookie, assertion: h['x-auth-assertion'] };
}

const admin = (b, route, init = {}) =>
  b.fetch(`/__auth-bridge/admin${route}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, ...(init.headers ?? {}) } });
const revoke = (b, body) =>
  admin(b, '/revoke', { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
const status = async (b) => (await admin(b, '/status')).json();

const signInToken = (b, cookies) =>
  b.fetch('/__auth-bridge/sign-in-token', {
    method: 'POST',
    headers: { 'sec-fetch-site': 'same-origin', origin: b.url, cookie: cookieHeader(cookies) },
  });

/** A bridge whose KV lives in `dir`: two of them at once are two isolates sharing one KV. */
async function persistentBridge(dir, extra = {}) {
  const mf = new Miniflare({ workers: [bridgeWorker(vars(extra))], kvPersist: dir, port: 0, host: '127.0.0.1' });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  return { mf, url, fetch: (p, init = {}) => fetch(url + p, { redirect: 'manual', ...init }), close: () => mf.dispose() };
}

test('admin/revoke: at once on this isolate, within 60 s on another; later sessions work; lift restores', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-bridge-cutover-'));
  const a = await persistentBridge(dir);
  const b = await persistentBridge(dir);
  try {
    const old = { 'next-auth.session-token': await session('legacy-revoked') };
    const bystander = { 'next-auth.session-token': await session('legacy-bystander') };
    // Both isolates have read the (empty) list and hold it in memory. On `a` the same cookie
    // comes three times: from the second on, the JS entry forwards it on its own.
    for (let i = 0; i < 3; i++) assert.equal((await seen(a, old)).user, 'legacy-revoked');
    assert.equal((await seen(b, old)).user, 'legacy-revoked');

    const res = await revoke(a, { user_id: 'legacy-revoked' });
    assert.equal(res.status, 200);
    const entry = await res.json();
    assert.equal(entry.user_id, 'legacy-revoked');
    assert.equal(entry.revoked, true);
    assert.ok(Math.abs(entry.revoked_at - now()) <= 2, JSON.stringify(entry));
    const revokedAt = Date.now();

    // The isolate that took the call: anonymous at once, the very same cookie included (the JS
    // entry forgot it), and the origin does not get the cookie (its own NextAuth would
    // otherwise still accept it, and renew it with a fresh iat).
    const same = await seen(a, old);
    assert.equal(same.source, 'anonymous');
    assert.equal(same.user, undefined);
    assert.equal(same.cookie, undefined);
    const after = await seen(a, { ...old, other: 'kept' });
    assert.equal(after.source, 'anonymous');
    assert.equal(after.user, undefined);
    assert.equal(after.cookie, 'other=kept');
    const refused = await signInToken(a, old);
    assert.equal(refused.status, 401);
    assert.deepEqual(await refused.json(), { error: 'no_nextauth_session' });
    // Another user is untouched.
    assert.equal((await seen(a, bystander)).user, 'legacy-bystander');

    // The other isolate: within 60 s.
    let elapsed;
    for (;;) {
      if ((await seen(b, old)).source === 'anonymous') {
        elapsed = Date.now() - revokedAt;
        break;
      }
      assert.ok(Date.now() - revokedAt < 60_000, 'the other isolate still accepts the revoked session after 60 s');
      await sleep(1000);
    }
    assert.ok(elapsed < 60_000, `took ${elapsed} ms`);
    assert.equal((await signInToken(b, old)).status, 401);

    // A session issued after the revoke (a later second) works on both.
    await sleep(1100);
    const fresh = { 'next-auth.session-token': await session('legacy-revoked') };
    assert.equal((await seen(a, fresh)).user, 'legacy-revoked');
    assert.equal((await seen(b, fresh)).user, 'legacy-revoked');
    assert.notEqual((await signInToken(a, fresh)).status, 401);

    // Listed in the status.
    const listed = (await status(a)).revocations;
    assert.equal(listed.revoked_users, 1);
    assert.equal(listed.listed[0].user_id, 'legacy-revoked');

    // Lifting: the old session works again at once where the call was taken.
    const lift = await revoke(a, { user_id: 'legacy-revoked', revoked: false });
    assert.equal(lift.status, 200);
    const lifted = await lift.json();
    assert.equal(lifted.user_id, 'legacy-revoked');
    assert.equal(lifted.revoked, false);
    assert.equal((await seen(a, old)).user, 'legacy-revoked');
    assert.equal((await status(a)).revocations.revoked_users, 0);
  } finally {
    await a.close();
    await b.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('admin/revoke: malformed bodies are 400, other methods 405, no token 401', async () => {
  const b = await startBridge(vars());
  try {
    for (const body of ['', 'not json', '[]', '{}', '{"user_id":""}', '{"user_id":7}', '{"user_id":"x","revoked":"no"}', '{"user_id":"x","extra":1}', JSON.stringify({ user_id: 'x'.repeat(300) })]) {
      const res = await revoke(b, body);
      assert.equal(res.status, 400, body);
      assert.equal((await res.json()).error, 'invalid_body');
    }
    assert.equal((await admin(b, '/revoke')).status, 405);
    const anonymous = await b.fetch('/__auth-bridge/admin/revoke', { method: 'POST', body: '{"user_id":"x"}' });
    assert.equal(anonymous.status, 401);
    assert.equal((await status(b)).revocations.revoked_users, 0);
  } finally {
    await b.close();
  }
});

test('NEXTAUTH_SESSIONS_NOT_BEFORE: earlier sessions are anonymous in every phase; later ones and Clerk work', async () => {
  const na = { 'next-auth.session-token': await session('legacy-nb') };
  const futureSecs = now() + 3600;
  const future = new Date(futureSecs * 1000).toISOString();
  for (const phase of ['migrate', 'observe']) {
    const b = await startBridge(vars({ MIGRATION_PHASE: phase, NEXTAUTH_SESSIONS_NOT_BEFORE: future }));
    try {
      const s = await seen(b, na);
      assert.equal(s.source, 'anonymous', phase);
      assert.equal(s.cookie, undefined, 'the killed cookie is not forwarded');
      assert.equal((await seen(b, clerkCookies('user_nb'))).source, 'clerk');
      // Beside a Clerk session too: the Clerk identity stands, the killed cookie stays here.
      const both = await seen(b, { ...clerkCookies('user_nb'), ...na });
      assert.equal(both.source, 'clerk');
      assert.ok(both.cookie.includes('__session=') && !both.cookie.includes('next-auth.session-token'), both.cookie);
      const st = await status(b);
      assert.equal(st.revocations.nextauth_sessions_not_before, futureSecs);
      assert.deepEqual(st.problems.filter((p) => p.startsWith('NEXTAUTH_SESSIONS_NOT_BEFORE')), []);
    } finally {
      await b.close();
    }
  }
  const migrating = await startBridge(vars({ NEXTAUTH_SESSIONS_NOT_BEFORE: String(now() + 3600) }));
  try {
    assert.equal((await signInToken(migrating, na)).status, 401);
  } finally {
    await migrating.close();
  }
  // Auth.js v5, split into chunks: refused the same way, and every chunk is kept from the origin.
  const v5 = await authJsV5(SECRET, { sub: 'legacy-nb-v5', big: 'x'.repeat(6000) });
  const chunks = Object.fromEntries(v5.match(/.{1,3936}/g).map((c, i) => [`authjs.session-token.${i}`, c]));
  assert.ok(Object.keys(chunks).length >= 2);
  const v5Bridge = await startBridge(vars({ NEXTAUTH_SESSIONS_NOT_BEFORE: future }));
  try {
    const s = await seen(v5Bridge, { theme: 'dark', ...chunks, lang: 'en' });
    assert.equal(s.source, 'anonymous');
    assert.equal(s.cookie, 'theme=dark; lang=en');
  } finally {
    await v5Bridge.close();
  }
  const past = await startBridge(vars({ NEXTAUTH_SESSIONS_NOT_BEFORE: String(now() - 3600) }));
  try {
    const kept = await seen(past, na);
    assert.equal(kept.user, 'legacy-nb');
    assert.equal(kept.cookie, cookieHeader(na), 'a session that stands keeps its cookie');
    assert.ok((await seen(past, { ...clerkCookies('user_nb'), ...na })).cookie.includes('next-auth.session-token='));
    assert.equal((await seen(past, chunks)).user, 'legacy-nb-v5');
  } finally {
    await past.close();
  }
});

test('malformed NEXTAUTH_SESSIONS_NOT_BEFORE and assertion keys are configuration problems, never a 500', async () => {
  const b = await startBridge(vars({
    NEXTAUTH_SESSIONS_NOT_BEFORE: 'next tuesday',
    AUTH_BRIDGE_ASSERTION_KEY: '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----',
    AUTH_BRIDGE_ASSERTION_SECRET: 'shared-secret-for-fallback',
    READINESS_MIN_CLERK_SHARE: 'most',
  }));
  try {
    const s = await seen(b, { 'next-auth.session-token': await session('legacy-mal') });
    assert.equal(s.user, 'legacy-mal', 'no cut-off applied');
    assert.equal(decodeProtectedHeader(s.assertion).alg, 'HS256', 'falls back to the secret');
    const jwks = await b.fetch('/__auth-bridge/jwks.json');
    assert.equal(jwks.status, 404);
    const { problems } = await status(b);
    for (const setting of ['NEXTAUTH_SESSIONS_NOT_BEFORE', 'AUTH_BRIDGE_ASSERTION_KEY', 'READINESS_MIN_CLERK_SHARE']) {
      assert.ok(problems.some((p) => p.startsWith(`${setting}: `)), `${setting} not in ${JSON.stringify(problems)}`);
    }
    assert.ok(!JSON.stringify(problems).includes('next tuesday'));
    assert.ok(!JSON.stringify(problems).includes('bm90IGEga2V5'));
  } finally {
    await b.close();
  }
  const keyOnly = await startBridge(vars({ AUTH_BRIDGE_ASSERTION_KEY: 'garbage' }));
  try {
    const s = await seen(keyOnly, {});
    assert.equal(s.source, 'anonymous');
    assert.equal(s.assertion, undefined, 'no assertion rather than a wrong one');
  } finally {
    await keyOnly.close();
  }
});

test('a key WebCrypto refuses is a configuration problem: HS256 fallback or no assertion, jwks.json 503, never a 500', async () => {
  // A well-formed P-256 PKCS#8 whose private scalar is out of range: only the import can tell.
  const refused = fs.readFileSync(path.join(ROOT, 'tests/fixtures/assertion-es256-bad-scalar.pem'), 'utf8');
  const withSecret = await startBridge(vars({ AUTH_BRIDGE_ASSERTION_KEY: refused, AUTH_BRIDGE_ASSERTION_SECRET: 'fallback-secret' }));
  try {
    for (let i = 0; i < 2; i++) {
      const s = await seen(withSecret, { 'next-auth.session-token': await session('legacy-refused') });
      assert.equal(s.user, 'legacy-refused');
      assert.equal(decodeProtectedHeader(s.assertion).alg, 'HS256');
    }
    const jwks = await withSecret.fetch('/__auth-bridge/jwks.json');
    assert.equal(jwks.status, 503);
    assert.equal((await jwks.json()).error, 'assertion_key_unusable');
    const st = await status(withSecret);
    assert.ok(st.problems.some((p) => p.startsWith('AUTH_BRIDGE_ASSERTION_KEY: WebCrypto refused')), JSON.stringify(st.problems));
    assert.equal(st.readiness.checks.find((c) => c.name === 'configuration').ok, false);
  } finally {
    await withSecret.close();
  }
  const alone = await startBridge(vars({ AUTH_BRIDGE_ASSERTION_KEY: refused }));
  try {
    const s = await seen(alone, {});
    assert.equal(s.assertion, undefined);
    assert.equal((await alone.fetch('/__auth-bridge/jwks.json')).status, 503);
    assert.equal((await alone.fetch('/__auth-bridge/jwks.json', { method: 'POST' })).status, 405);
  } finally {
    await alone.close();
  }
});

test('ES256 assertion: jwks.json (current and previous keys) verifies it with jose createRemoteJWKSet', async () => {
  const b = await startBridge(vars({
    AUTH_BRIDGE_ASSERTION_KEY: KEY,
    AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS: KEY_NEXT,
    AUTH_BRIDGE_ASSERTION_SECRET: 'the key wins over this',
  }));
  try {
    const res = await b.fetch('/__auth-bridge/jwks.json');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
    const { keys } = await res.json();
    assert.equal(keys.length, 2);
    assert.equal(keys[0].kid, KEY_KID);
    for (const k of keys) {
      assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    }
    const JWKS = createRemoteJWKSet(new URL(`${b.url}/__auth-bridge/jwks.json`));
    const audience = new URL(origin.url).host;

    const na = await seen(b, { 'next-auth.session-token': await session('legacy-es') });
    assert.equal(decodeProtectedHeader(na.assertion).kid, KEY_KID);
    const { payload, protectedHeader } = await jwtVerify(na.assertion, JWKS, { issuer: 'auth-bridge', audience, algorithms: ['ES256'], maxTokenAge: '60s' });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload.sub, 'legacy-es');
    assert.equal(payload.legacy_user_id, 'legacy-es');
    assert.equal(payload.source, 'nextauth');
    assert.equal(payload.phase, 'migrate');
    assert.equal(payload.clerk_user_id, undefined);
    assert.ok(payload.exp - payload.iat <= 60 && payload.exp > now());

    await (await b.kv()).put('map:c2l:user_es', 'legacy-es-migrated');
    const ck = await seen(b, clerkCookies('user_es'));
    const verified = (await jwtVerify(ck.assertion, JWKS, { issuer: 'auth-bridge', audience, algorithms: ['ES256'], maxTokenAge: '60s' })).payload;
    assert.equal(verified.sub, 'legacy-es-migrated');
    assert.equal(verified.clerk_user_id, 'user_es');
    assert.equal(verified.legacy_user_id, 'legacy-es-migrated');
    assert.equal(verified.source, 'clerk');

    // A forged payload under the worker's header fails.
    const [h, , sig] = na.assertion.split('.');
    const forged = Buffer.from(JSON.stringify({ ...payload, sub: 'someone-else' })).toString('base64url');
    await assert.rejects(jwtVerify(`${h}.${forged}.${sig}`, JWKS, { issuer: 'auth-bridge', audience }));
    // And another audience is refused.
    await assert.rejects(jwtVerify(na.assertion, JWKS, { issuer: 'auth-bridge', audience: 'other.example.com' }));
  } finally {
    await b.close();
  }
});

test('ES256 rotation: an assertion of the previous key still verifies against the new jwks.json', async () => {
  const before = await startBridge(vars({ AUTH_BRIDGE_ASSERTION_KEY: KEY }));
  let oldAssertion;
  try {
    oldAssertion = (await seen(before, {})).assertion;
    assert.equal(decodeProtectedHeader(oldAssertion).kid, KEY_KID);
  } finally {
    await before.close();
  }
  const rotated = await startBridge(vars({ AUTH_BRIDGE_ASSERTION_KEY: KEY_NEXT, AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS: KEY }));
  try {
    const JWKS = createRemoteJWKSet(new URL(`${rotated.url}/__auth-bridge/jwks.json`));
    const audience = new URL(origin.url).host;
    const { payload } = await jwtVerify(oldAssertion, JWKS, { issuer: 'auth-bridge', audience });
    assert.equal(payload.source, 'anonymous');
    const fresh = (await seen(rotated, {})).assertion;
    assert.notEqual(decodeProtectedHeader(fresh).kid, KEY_KID);
    await jwtVerify(fresh, JWKS, { issuer: 'auth-bridge', audience });
  } finally {
    await rotated.close();
  }
  const hsOnly = await startBridge(vars({ AUTH_BRIDGE_ASSERTION_SECRET: 'only-a-secret' }));
  try {
    assert.equal((await hsOnly.fetch('/__auth-bridge/jwks.json')).status, 404);
    assert.equal(decodeProtectedHeader((await seen(hsOnly, {})).assertion).alg, 'HS256');
  } finally {
    await hsOnly.close();
  }
});

/** Readiness once the convergence figures of the first request are in KV. */
async function readinessAfter(b, cookies) {
  await seen(b, cookies);
  const kv = await b.kv();
  for (let i = 0; i < 40 && (await kv.list({ prefix: 'conv:v1:' })).keys.length === 0; i++) await sleep(50);
  const res = await admin(b, '/readiness');
  assert.equal(res.status, 200);
  return res.json();
}

const check = (r, name) => r.checks.find((c) => c.name === name);

test('readiness: ready when users are on Clerk, the batch is done, the config clean and Clerk reachable', async () => {
  const b = await startBridge(vars());
  try {
    const r = await readinessAfter(b, clerkCookies('user_ready'));
    assert.equal(r.ready, true, JSON.stringify(r));
    assert.deepEqual(r.checks.map((c) => c.name), ['clerk_user_share', 'batch_pending', 'batch_failed', 'configuration', 'clerk_reachable']);
    for (const c of r.checks) assert.deepEqual(Object.keys(c).sort(), ['detail', 'name', 'ok', 'value']);
    assert.equal(check(r, 'clerk_user_share').value, 1);
    const st = await status(b);
    assert.equal(st.readiness.ready, true);
    assert.equal((await b.fetch('/__auth-bridge/admin/readiness')).status, 401);
  } finally {
    await b.close();
  }
});

test('readiness: not ready on NextAuth users, pending records or an unreachable Clerk; clerk-only says so', async () => {
  const legacy = await startBridge(vars());
  try {
    const r = await readinessAfter(legacy, { 'next-auth.session-token': await session('legacy-not-yet') });
    assert.equal(r.ready, false);
    assert.deepEqual(r.checks.filter((c) => !c.ok).map((c) => c.name), ['clerk_user_share']);
    assert.equal(check(r, 'clerk_user_share').value, 0);
    const upload = await admin(legacy, '/imports', { method: 'POST', body: '{"id":"legacy-p","email":"p@example.com"}\n' });
    assert.equal(upload.status, 202);
    const again = await (await admin(legacy, '/readiness')).json();
    assert.equal(check(again, 'batch_pending').ok, false);
    assert.equal(check(again, 'batch_pending').value, 1);
  } finally {
    await legacy.close();
  }
  // The share is configurable.
  const lenient = await startBridge(vars({ READINESS_MIN_CLERK_SHARE: '0' }));
  try {
    const r = await readinessAfter(lenient, { 'next-auth.session-token': await session('legacy-lenient') });
    assert.equal(check(r, 'clerk_user_share').ok, true, JSON.stringify(r));
  } finally {
    await lenient.close();
  }
  const port = await deadPort();
  const cutover = await startBridge(vars({
    MIGRATION_PHASE: 'clerk-only',
    CLERK_SIGN_IN_URL: 'https://accounts.cutover-tests.example.com/sign-in',
    CLERK_API_URL: `http://127.0.0.1:${port}`,
    CLERK_JWT_KEY: clerk.publicKeyPem,
  }));
  try {
    const r = await readinessAfter(cutover, clerkCookies('user_cut'));
    assert.equal(r.ready, false);
    assert.equal(check(r, 'clerk_reachable').ok, false, JSON.stringify(r));
    const { problems } = await status(cutover);
    assert.ok(problems.some((p) => p.startsWith('MIGRATION_PHASE: clerk-only while admin/readiness is not ready')), JSON.stringify(problems));
  } finally {
    await cutover.close();
  }
});

test('readiness follows the batch: a failure blocks it, retry-failed turns it into pending, a clean run makes it ready', async () => {
  const b = await startBridge(vars());
  let minute = Date.now();
  const drain = async () => {
    await b.scheduled((minute += 60_000));
    for (let i = 0; i < 75; i++) {
      const s = await status(b);
      if (s.counts.pending === 0) return s;
      await sleep(400);
    }
    assert.fail('the batch did not finish');
  };
  try {
    const first = await readinessAfter(b, clerkCookies('user_batch_ready'));
    assert.equal(first.ready, true, JSON.stringify(first));
    // Clerk refuses the next creation for good.
    clerk.addFault({ path: '/v1/users', method: 'POST', sequence: [422] });
    const up = await admin(b, '/imports', { method: 'POST', body: '{"id":"legacy-refused","email":"refused@example.com","email_verified":true}\n' });
    assert.equal(up.status, 202);
    assert.equal((await drain()).counts.failed, 1);
    clerk.clearFaults();
    let r = await (await admin(b, '/readiness')).json();
    assert.deepEqual(r.checks.filter((c) => !c.ok).map((c) => c.name), ['batch_failed']);
    assert.equal(check(r, 'batch_failed').value, 1);
    // Acknowledged with retry-failed: no longer failed, pending again.
    assert.equal((await admin(b, '/retry-failed', { method: 'POST' })).status, 200);
    r = await (await admin(b, '/readiness')).json();
    assert.deepEqual(r.checks.filter((c) => !c.ok).map((c) => c.name), ['batch_pending']);
    // Migrated on the next run: ready.
    const done = await drain();
    assert.equal(done.counts.migrated, 1, JSON.stringify(done.counts));
    r = await (await admin(b, '/readiness')).json();
    assert.equal(r.ready, true, JSON.stringify(r));
  } finally {
    clerk.clearFaults();
    await b.close();
  }
});
