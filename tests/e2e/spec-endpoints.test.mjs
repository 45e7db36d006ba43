// SPEC.md's endpoints under /__auth-bridge/, its import record, the cutover tools and the rule
// that no secret reaches a log or an admin answer, each status code and body shape as written
// there. Black-box:
// the worker is reached only over HTTP (and its cron trigger); Clerk is the local Backend API
// server, whose users and request log are the evidence. Request flow, headers, phases and
// settings: spec-conformance.test.mjs; identity-binding guarantees: spec-guarantees.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBridge, deadPort } from './harness.mjs';
import { startStack } from './stack.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from './tokens.mjs';
import { sleep, nextAuthV4At, through, clerkBrowser, signInToken, operator } from './spec-common.mjs';

const SECRET = 'spec-endpoints-nextauth-secret';
const ADMIN = 'spec-endpoints-admin-token-0123456789';
const HS_SECRET = 'spec-endpoints-assertion-secret';
const FAPI = 'clerk.spec-endpoints.example.com';
const BCRYPT = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0';
const BAD_BCRYPT = '$2b$10$spec-too-short-to-be-a-digest';
const ARGON2ID = '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';

let stack, clerk, bridge, noAdmin, ops;
/** Values that must never appear in a log line or a status/failures answer. */
const secrets = new Set([SECRET, ADMIN, HS_SECRET, BCRYPT, BAD_BCRYPT, ARGON2ID]);
const adminAnswers = [];

before(async () => {
  stack = await startStack({ secret: SECRET, frontendApi: FAPI, clerk: { live: true, rateLimit: false, quiet: true } });
  clerk = stack.clerk;
  secrets.add(clerk.secretKey);
  const vars = { MIGRATION_PHASE: 'migrate', CLERK_RATE_LIMIT: '1000/10s', AUTH_BRIDGE_ASSERTION_SECRET: HS_SECRET };
  [bridge, noAdmin] = await Promise.all([
    stack.bridge({ ...vars, AUTH_BRIDGE_ADMIN_TOKEN: ADMIN }, { captureLogs: true }),
    stack.bridge(vars),
  ]);
  ops = operator(bridge, ADMIN, { onAnswer: (text) => adminAnswers.push(text) });
});
after(() => stack?.close());

const na = async (sub, extra = {}) => {
  const token = await nextAuthV4(SECRET, { sub, email: `${sub}@example.com`, ...extra });
  secrets.add(token);
  return { 'next-auth.session-token': token };
};
const admin = (route, init) => ops.call(route, init);
const status = () => ops.status();
const runBatch = (timeoutMs) => ops.runBatch(timeoutMs);
const ndjson = (lines) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
const upload = (lines) => admin('/imports', { method: 'POST', body: ndjson(lines), headers: { 'content-type': 'application/x-ndjson' } });
const clerkUser = (externalId) => clerk.users().users.filter((u) => u.external_id === externalId);
const lastSeq = () => clerk.requestLog().at(-1)?.seq ?? 0;

// ------------------------------------------------------------------------------------------
// POST /__auth-bridge/sign-in-token

test('sign-in-token 200: {"token","clerk_user_id"} for a NextAuth session without a Clerk session', async () => {
  const res = await signInToken(bridge, await na('legacy-sit-200', { email_verified: true }));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const body = await res.json();
  assert.deepEqual(Object.keys(body).sort(), ['clerk_user_id', 'token']);
  secrets.add(body.token);
  const [user] = clerkUser('legacy-sit-200');
  assert.ok(user, 'the Clerk user was created with external_id = the legacy id');
  assert.equal(user.id, body.clerk_user_id);
  const minted = clerk.signInTokens().find((t) => t.token === body.token);
  assert.ok(minted, 'a real Clerk sign-in token');
  assert.equal(minted.user_id, body.clerk_user_id);
  // Found, not created again, the next time (Auth.js v5 cookie this time).
  const again = await signInToken(bridge, { 'authjs.session-token': await authJsV5(SECRET, { sub: 'legacy-sit-200', email: 'legacy-sit-200@example.com' }) });
  assert.equal(again.status, 200);
  const second = await again.json();
  secrets.add(second.token);
  assert.equal(second.clerk_user_id, body.clerk_user_id);
  assert.equal(clerkUser('legacy-sit-200').length, 1);
});

test('sign-in-token 204 when already signed in with Clerk (with or without a NextAuth session)', async () => {
  const res = await signInToken(bridge, { ...clerkBrowser(clerk, { sub: 'user_sit_204' }), ...(await na('legacy-sit-204')) });
  assert.equal(res.status, 204);
  assert.equal(await res.text(), '');
  assert.equal(clerkUser('legacy-sit-204').length, 0, 'nothing migrated');
  const bearer = await signInToken(bridge, null, { authorization: `Bearer ${clerk.mintSessionToken({ sub: 'user_sit_204' })}` });
  assert.equal(bearer.status, 204);
});

test('sign-in-token 401 {"error":"no_nextauth_session"} without a valid NextAuth session', async () => {
  const cases = [null, { 'next-auth.session-token': 'garbage' }, { 'next-auth.session-token': await nextAuthV4('other-secret', { sub: 'x' }) }, { __client_uat: '0' }];
  for (const cookies of cases) {
    const res = await signInToken(bridge, cookies);
    assert.equal(res.status, 401, JSON.stringify(cookies));
    assert.deepEqual(await res.json(), { error: 'no_nextauth_session' });
  }
});

test('sign-in-token 403 for a cross-site request', async () => {
  const cookies = await na('legacy-sit-403');
  for (const headers of [
    { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': '', origin: 'https://evil.example' },
  ]) {
    const res = await bridge.fetch('/__auth-bridge/sign-in-token', { method: 'POST', headers: { ...headers, cookie: cookieHeader(cookies) } });
    assert.equal(res.status, 403, JSON.stringify(headers));
    await res.arrayBuffer();
  }
  // Without Sec-Fetch-Site, a foreign Origin is cross-site too.
  const legacy = await bridge.fetch('/__auth-bridge/sign-in-token', { method: 'POST', headers: { origin: 'https://evil.example', cookie: cookieHeader(cookies) } });
  assert.equal(legacy.status, 403);
  assert.equal(clerkUser('legacy-sit-403').length, 0);
});

test('sign-in-token 429 with Retry-After when Clerk is rate-limiting; 503 with Retry-After when Clerk is down', async () => {
  // Each on its own worker: a worker that met Clerk's 429 holds later calls back for a while.
  const port = await deadPort();
  const [limited, down] = await Promise.all([startBridge(stack.settings()), startBridge(stack.settings({ CLERK_API_URL: `http://127.0.0.1:${port}` }))]);
  try {
    clerk.addFault({ path: '/v1/*', exclude: ['/v1/jwks'], sequence: [{ status: 429, retryAfter: 7 }], loop: true });
    const res = await signInToken(limited, await na('legacy-sit-429'));
    clerk.clearFaults();
    assert.equal(res.status, 429);
    const retry = res.headers.get('retry-after');
    assert.match(String(retry), /^\d+$/);
    assert.ok(Number(retry) >= 1, `Retry-After ${retry}`);
    await res.arrayBuffer();

    const unavailable = await signInToken(down, await na('legacy-sit-503'));
    assert.equal(unavailable.status, 503);
    assert.match(String(unavailable.headers.get('retry-after')), /^\d+$/);
    assert.ok(Number(unavailable.headers.get('retry-after')) >= 1);
    await unavailable.arrayBuffer();
    // Ordinary traffic of the same user still reaches the origin.
    assert.equal((await through(down, '/page', { cookie: cookieHeader(await na('legacy-sit-503')) })).auth['x-auth-user-id'], 'legacy-sit-503');
  } finally {
    clerk.clearFaults();
    await Promise.all([limited.close(), down.close()]);
  }
});

test('sign-in-token: at most a few tokens per user per minute (429 with Retry-After after that)', async () => {
  const cookies = await na('legacy-sit-cap');
  const statuses = [];
  for (let i = 0; i < 12; i++) {
    const res = await signInToken(bridge, cookies);
    statuses.push(res.status);
    if (res.status === 200) secrets.add((await res.json()).token);
    else {
      assert.equal(res.status, 429);
      assert.ok(Number(res.headers.get('retry-after')) >= 1);
      await res.arrayBuffer();
    }
  }
  assert.ok(statuses.includes(200) && statuses.includes(429), statuses.join(','));
  assert.ok(statuses.filter((s) => s === 200).length <= 10, statuses.join(','));
});

// ------------------------------------------------------------------------------------------
// GET /__auth-bridge/client.js

test('client.js: the script that fetches the token and signs in with the ticket strategy', async () => {
  const res = await bridge.fetch('/__auth-bridge/client.js');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /javascript/);
  const js = await res.text();
  assert.ok(js.includes('/__auth-bridge/sign-in-token'), 'fetches the token');
  assert.match(js, /signIn\.create/);
  assert.match(js, /['"]?strategy['"]?\s*:\s*['"]ticket['"]/);
  assert.match(js, /setActive/);
  assert.match(js, /retry-after/i, 'honours Retry-After');
  assert.match(js, /Math\.random/, 'jitter');
});

// ------------------------------------------------------------------------------------------
// Admin routes: 404 without AUTH_BRIDGE_ADMIN_TOKEN, Bearer required with it.

const ADMIN_ROUTES = [
  ['POST', '/imports'],
  ['GET', '/status'],
  ['GET', '/failures'],
  ['POST', '/retry-failed'],
  ['POST', '/pause'],
  ['POST', '/resume'],
  ['POST', '/revoke'],
  ['GET', '/readiness'],
];

test('admin routes answer 404 when AUTH_BRIDGE_ADMIN_TOKEN is not configured', async () => {
  for (const [method, route] of ADMIN_ROUTES) {
    for (const authorization of [undefined, `Bearer ${ADMIN}`, 'Bearer ']) {
      const res = await noAdmin.fetch(`/__auth-bridge/admin${route}`, { method, headers: authorization ? { authorization } : {}, body: method === 'POST' ? '{}' : undefined });
      assert.equal(res.status, 404, `${method} ${route} ${authorization}`);
      await res.arrayBuffer();
    }
  }
  const before = clerk.requestLog().length;
  assert.equal(clerk.requestLog().length, before);
});

test('admin routes require Authorization: Bearer $AUTH_BRIDGE_ADMIN_TOKEN', async () => {
  let ip = 0;
  for (const [method, route] of ADMIN_ROUTES) {
    for (const authorization of [undefined, `Bearer ${ADMIN}x`, `Bearer ${ADMIN.slice(1)}`, ADMIN, `Token ${ADMIN}`, `Bearer ${ADMIN.toUpperCase()}`]) {
      ip += 1;
      const headers = { 'cf-connecting-ip': `198.51.100.${ip}`, ...(authorization ? { authorization } : {}) };
      const res = await bridge.fetch(`/__auth-bridge/admin${route}`, { method, headers, body: method === 'POST' ? '{"user_id":"x"}' : undefined });
      assert.equal(res.status, 401, `${method} ${route} ${authorization}`);
      await res.arrayBuffer();
    }
  }
  const s = await status();
  assert.equal(s.counts.pending + s.counts.migrated + s.counts.failed + s.counts.skipped, 0, 'nothing was imported');
  assert.equal(s.paused ?? false, false);
});

// ------------------------------------------------------------------------------------------
// POST admin/imports, GET admin/status, GET admin/failures, retry-failed, pause, resume.

const FULL = {
  id: 'legacy-full-1',
  email: 'Full.One@Example.com',
  email_verified: true,
  name: 'Ada Lovelace',
  first_name: 'Ada',
  last_name: 'Lovelace',
  image: 'https://example.com/ada.png',
  username: 'ada_lovelace',
  phone: '+15551234567',
  password_digest: BCRYPT,
  password_hasher: 'bcrypt',
  created_at: '2021-04-01T12:00:00Z',
  public_metadata: { plan: 'pro' },
  private_metadata: { crm: 'c-1' },
};

test('imports: 202 {"import_id","accepted","rejected":[{"line","error"}]}, each field listed accepted, 1-based lines', async () => {
  clerk.createUser({ email_address: ['taken-verified@example.com'], skip_password_requirement: true });
  const lines = [
    FULL, // 1
    { id: 'legacy-ts-2', email: 'ts2@example.com', email_verified: '2022-01-02T03:04:05Z', password_digest: ARGON2ID, password_hasher: 'argon2id' }, // 2
    { id: 'legacy-phone-3', phone: '+15557654321' }, // 3
    { id: 'legacy-user-4', username: 'only_username_4' }, // 4
    { id: 'legacy-unknown-5', email: 'u5@example.com', role: 'admin' }, // 5: unknown field
    { id: 'legacy-unverified-6', email: 'unverified6@example.com', email_verified: false }, // 6
    { email: 'noid7@example.com' }, // 7: no id
    { id: 'legacy-noaddr-8', name: 'Nobody' }, // 8: no email, phone or username
    'this is not json', // 9
    { id: 'legacy-bad-digest-10', email: 'bad10@example.com', password_digest: BAD_BCRYPT, password_hasher: 'bcrypt' }, // 10: Clerk refuses the digest
    { id: 'legacy-skip-11', email: 'taken-verified@example.com', email_verified: false }, // 11: skipped (unverified)
    { id: 'legacy-null-12', email: 'n12@example.com', email_verified: null, name: 'Null Twelve' }, // 12
    { id: 'legacy-epoch-13', email: 'e13@example.com', email_verified: 1617278400000 }, // 13: a numeric timestamp
  ];
  const res = await upload(lines);
  assert.equal(res.status, 202);
  const body = res.json();
  assert.deepEqual(Object.keys(body).sort(), ['accepted', 'import_id', 'rejected']);
  assert.equal(typeof body.import_id, 'string');
  assert.ok(body.import_id.length > 0);
  assert.equal(body.accepted, 9, JSON.stringify(body.rejected));
  assert.deepEqual(body.rejected.map((r) => r.line), [5, 7, 8, 9]);
  for (const r of body.rejected) {
    assert.deepEqual(Object.keys(r).sort(), ['error', 'line']);
    assert.equal(typeof r.error, 'string');
    assert.ok(r.error.length > 0);
  }
  assert.match(body.rejected[0].error, /role/, 'names the unknown field');
  assert.ok(!res.text.includes(BCRYPT) && !res.text.includes(BAD_BCRYPT), 'no digest in the answer');

  const before = await status();
  assert.equal(before.phase, 'migrate');
  for (const k of ['pending', 'migrated', 'failed', 'skipped']) assert.equal(typeof before.counts[k], 'number', k);
  assert.equal(before.counts.pending, 9);
  assert.ok('rate' in before, 'rate in use');
  assert.ok('eta' in before, `ETA in ${JSON.stringify(Object.keys(before))}`);
  assert.ok(typeof before.eta === 'number' && before.eta > 0, `eta ${before.eta}`);

  const done = await runBatch();
  // Every record ends migrated, skipped or failed: none is lost.
  assert.equal(done.counts.migrated + done.counts.skipped + done.counts.failed, 9, JSON.stringify(done.counts));
  assert.ok(done.counts.migrated >= 7, JSON.stringify(done.counts));
  assert.equal(done.eta, null);

  // Each listed field reached Clerk.
  const [full] = clerkUser('legacy-full-1');
  assert.ok(full, 'imported');
  assert.equal(full.first_name, 'Ada');
  assert.equal(full.last_name, 'Lovelace');
  assert.equal(full.username, 'ada_lovelace');
  assert.equal(full.email_addresses[0].email_address.toLowerCase(), 'full.one@example.com');
  assert.equal(full.email_addresses[0].verification?.status, 'verified');
  assert.equal(full.phone_numbers[0].phone_number, '+15551234567');
  assert.equal(full.password_enabled, true);
  assert.deepEqual(full.public_metadata, { plan: 'pro' });
  assert.deepEqual(full.private_metadata, { crm: 'c-1' });
  assert.equal(full.created_at, Date.parse('2021-04-01T12:00:00Z'));
  assert.equal(clerkUser('legacy-ts-2')[0].email_addresses[0].verification?.status, 'verified', 'a timestamp means verified');
  assert.equal(clerkUser('legacy-ts-2')[0].password_enabled, true, 'argon2id digest');
  assert.equal(clerkUser('legacy-epoch-13')[0].email_addresses[0].verification?.status, 'verified', 'a numeric timestamp means verified');
  assert.equal(clerkUser('legacy-phone-3')[0].phone_numbers[0].phone_number, '+15557654321');
  assert.equal(clerkUser('legacy-user-4')[0].username, 'only_username_4');
  // Unverified addresses are not created as verified.
  for (const id of ['legacy-unverified-6', 'legacy-null-12']) {
    const [u] = clerkUser(id);
    assert.ok(u, id);
    assert.notEqual(u.email_addresses[0].verification?.status, 'verified', id);
  }
  for (const id of ['legacy-unknown-5', 'legacy-noaddr-8']) assert.equal(clerkUser(id).length, 0, id);
  // A record whose email a Clerk user holds verified, while the record does not prove it, is
  // never linked; it ends with a reason: skipped, or listed as failed with a stable code.
  assert.equal(clerkUser('legacy-skip-11').length, 0, 'never linked on an unverified record');
  const failures = await admin('/failures');
  const listed = failures.text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const refusal = listed.find((f) => JSON.stringify(f).includes('legacy-skip-11'));
  assert.ok(done.counts.skipped === 1 || refusal, `legacy-skip-11 neither skipped nor listed: ${JSON.stringify(done.counts)} ${failures.text}`);
  if (refusal) assert.ok(Object.values(refusal).some((v) => typeof v === 'string' && /^[a-z_]+$/.test(v) && v.includes('_')), JSON.stringify(refusal));
});

let failedBefore = 0;
test('failures: NDJSON of failed records with Clerk\'s error code and message', async () => {
  failedBefore = (await status()).counts.failed;
  // Clerk refuses the next creation for good.
  clerk.addFault({ path: '/v1/users', method: 'POST', sequence: [422] });
  const up = await upload([{ id: 'legacy-refused-by-clerk', email: 'refused@example.com', email_verified: true, password_digest: BCRYPT, password_hasher: 'bcrypt' }]);
  assert.equal(up.status, 202);
  const done = await runBatch();
  clerk.clearFaults();
  assert.equal(done.counts.failed, failedBefore + 1, JSON.stringify(done.counts));
  const res = await admin('/failures');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /ndjson|json/);
  const lines = res.text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(lines.length, failedBefore + 1);
  const line = lines.find((l) => JSON.stringify(l).includes('legacy-refused-by-clerk'));
  assert.ok(line, res.text);
  const values = Object.values(line).filter((v) => typeof v === 'string');
  assert.ok(values.includes('injected_fault'), `Clerk's code in ${JSON.stringify(line)}`);
  assert.ok(values.some((v) => /injected 422|error/.test(v)), `Clerk's message in ${JSON.stringify(line)}`);
  assert.ok(!res.text.includes(BCRYPT), 'the digest is not listed');
});

test('retry-failed puts the failed records back; pause holds the batch, resume releases it', async () => {
  const failed = (await status()).counts.failed;
  assert.ok(failed >= 1);
  const retry = await admin('/retry-failed', { method: 'POST' });
  assert.equal(retry.status, 200);
  const retried = await status();
  assert.equal(retried.counts.failed, 0);
  assert.equal(retried.counts.pending, failed);
  const again = await runBatch();
  assert.equal(again.counts.failed, failedBefore, 'Clerk accepts the retried record now');
  assert.equal(clerkUser('legacy-refused-by-clerk').length, 1);

  const paused = await admin('/pause', { method: 'POST' });
  assert.equal(paused.status, 200);
  const up = await upload([{ id: 'legacy-paused-1', email: 'paused1@example.com', email_verified: true }]);
  assert.equal(up.status, 202);
  const since = lastSeq();
  await ops.tick();
  await sleep(1500);
  assert.equal(clerk.requestLog({ since }).filter((e) => e.path.startsWith('/v1/users')).length, 0, 'no Clerk call while paused');
  assert.equal((await status()).counts.pending, 1);

  const resumed = await admin('/resume', { method: 'POST' });
  assert.equal(resumed.status, 200);
  const done = await runBatch();
  assert.equal(done.counts.pending, 0);
  assert.equal(clerkUser('legacy-paused-1').length, 1);
});

test('transient Clerk errors (5xx, 429, a dropped connection) never end a record as failed: it stays pending, then migrates, once', async () => {
  const before = await status();
  clerk.addFault({ path: '/v1/users', method: 'POST', sequence: [503, { status: 429, retryAfter: 1 }, 'reset', 'reset-after', 500] });
  const ids = ['legacy-transient-1', 'legacy-transient-2', 'legacy-transient-3'];
  const up = await upload(ids.map((id) => ({ id, email: `${id}@example.com`, email_verified: true })));
  assert.equal(up.status, 202);
  const started = Date.now();
  await ops.tick();
  let s;
  for (;;) {
    s = await status();
    assert.equal(s.counts.failed, before.counts.failed, `a transient error ended a record as failed: ${JSON.stringify(s.counts)}`);
    if (s.counts.pending === 0) break;
    assert.ok(Date.now() - started < 60_000, `still pending: ${JSON.stringify(s.counts)}`);
    // The pacer's next minute picks up what is due again.
    await ops.tick();
    await sleep(1000);
  }
  clerk.clearFaults();
  assert.equal(s.counts.migrated, before.counts.migrated + 3);
  // Exactly one Clerk user each, although one creation went through with its answer lost.
  for (const id of ids) assert.equal(clerkUser(id).length, 1, id);
  console.log(`# 3 records through 5 transient Clerk errors: ${Date.now() - started} ms`);
});

// ------------------------------------------------------------------------------------------
// Cutover: revoke, readiness.

test('revoke: 200 with the stored entry; the user\'s sessions are anonymous and get 401; {"revoked": false} lifts it; 400 on a bad body', async () => {
  const cookies = await na('legacy-revoke-me');
  assert.equal((await through(bridge, '/whoami', { cookie: cookieHeader(cookies) })).auth['x-auth-user-id'], 'legacy-revoke-me');
  await sleep(1000); // the revoke time must be strictly after the session's second for a clean check
  const res = await admin('/revoke', { method: 'POST', body: JSON.stringify({ user_id: 'legacy-revoke-me' }), headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 200);
  const entry = res.json();
  assert.equal(entry.user_id, 'legacy-revoke-me');
  assert.notEqual(entry.revoked, false);
  const seen = (await through(bridge, '/whoami', { cookie: cookieHeader(cookies) })).auth;
  assert.equal(seen['x-auth-source'], 'anonymous');
  assert.equal(seen['x-auth-user-id'], undefined);
  const sit = await signInToken(bridge, cookies);
  assert.equal(sit.status, 401);
  assert.deepEqual(await sit.json(), { error: 'no_nextauth_session' });
  // Other users are untouched.
  assert.equal((await through(bridge, '/whoami', { cookie: cookieHeader(await na('legacy-not-revoked')) })).auth['x-auth-user-id'], 'legacy-not-revoked');
  // The boundary: a session issued up to the revoke time (iat <= it) is cut off, a later one is not.
  if (typeof entry.revoked_at === 'number') {
    const at = (iat) => nextAuthV4At(SECRET, { sub: 'legacy-revoke-me' }, iat).then((t) => ({ 'next-auth.session-token': t }));
    const atRevoke = (await through(bridge, '/whoami', { cookie: cookieHeader(await at(entry.revoked_at)) })).auth;
    assert.equal(atRevoke['x-auth-source'], 'anonymous', 'iat = the revoke time');
    const afterRevoke = (await through(bridge, '/whoami', { cookie: cookieHeader(await at(entry.revoked_at + 1)) })).auth;
    assert.equal(afterRevoke['x-auth-user-id'], 'legacy-revoke-me', 'iat after the revoke time');
  }

  const lift = await admin('/revoke', { method: 'POST', body: JSON.stringify({ user_id: 'legacy-revoke-me', revoked: false }), headers: { 'content-type': 'application/json' } });
  assert.equal(lift.status, 200);
  const lifted = lift.json();
  assert.equal(lifted.user_id, 'legacy-revoke-me');
  assert.equal(lifted.revoked, false);
  assert.equal((await through(bridge, '/whoami', { cookie: cookieHeader(cookies) })).auth['x-auth-user-id'], 'legacy-revoke-me');

  for (const body of ['', 'nope', '{}', '{"user_id":""}', '{"user_id":42}', '[]']) {
    const bad = await admin('/revoke', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400, body);
  }
});

test('readiness: {"ready": bool, "checks": [{"name","ok","value","detail"}]}, ready = AND of the checks', async () => {
  const res = await admin('/readiness');
  assert.equal(res.status, 200);
  const r = res.json();
  assert.deepEqual(Object.keys(r).sort(), ['checks', 'ready']);
  assert.equal(typeof r.ready, 'boolean');
  assert.ok(Array.isArray(r.checks) && r.checks.length >= 5, JSON.stringify(r.checks));
  for (const c of r.checks) {
    assert.deepEqual(Object.keys(c).sort(), ['detail', 'name', 'ok', 'value'], JSON.stringify(c));
    assert.equal(typeof c.name, 'string');
    assert.equal(typeof c.ok, 'boolean');
  }
  assert.equal(r.ready, r.checks.every((c) => c.ok));
  // One record failed for good and NextAuth-only users signed in: not ready.
  assert.equal(r.ready, false);
});

// ------------------------------------------------------------------------------------------
// Sign-in tokens, secrets, cookies and digests never in logs or status output.

test('guarantee: no sign-in token, secret, cookie or digest in the logs or in status/failures output', async () => {
  await admin('/status');
  await admin('/failures');
  await admin('/readiness');
  const logs = bridge.logs.join('');
  for (const s of secrets) {
    if (!s || s.length < 12) continue;
    assert.ok(!logs.includes(s), `a secret value (${s.slice(0, 6)}…) is in the logs`);
    for (const answer of adminAnswers) assert.ok(!answer.includes(s), `a secret value (${s.slice(0, 6)}…) is in an admin answer`);
  }
  assert.ok(secrets.size > 10, 'the tests collected tokens to look for');
});
