// The trickle migration under real workerd: POST /__auth-bridge/sign-in-token with NextAuth
// cookies minted by next-auth, against the local Clerk Backend API server (its request log and
// duplicate counts are the evidence).
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from './stack.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from './tokens.mjs';

const SECRET = 'nextauth-secret-for-trickle-tests';
const FAPI = 'clerk.trickle-tests.example.com';
const ENDPOINT = '/__auth-bridge/sign-in-token';

let stack, clerk, bridge;

/** Another bridge on the same Clerk server (its own isolate: its own 429 gate). */
const freshBridge = (extra = {}) => stack.bridge(extra);

before(async () => {
  // A live key: Clerk's development-instance rule (dev-browser cookie) is not under test here.
  stack = await startStack({ secret: SECRET, frontendApi: FAPI, clerk: { rateLimit: false, quiet: true } });
  clerk = stack.clerk;
  bridge = await stack.bridge();
});
after(() => stack?.close());
beforeEach(() => {
  clerk.clearFaults();
  clerk.setRateLimit(false);
});

let seq = 0;
/** A legacy id no other test uses. */
function legacyId(label) {
  seq += 1;
  return `legacy-${label}-${process.pid}-${seq}`;
}

async function sessionCookie(claims, v5 = false) {
  if (v5) return cookieHeader({ 'authjs.session-token': await authJsV5(SECRET, claims) });
  return cookieHeader({ 'next-auth.session-token': await nextAuthV4(SECRET, claims) });
}

/** POST the endpoint as the page would (same-origin fetch). */
function post(b, cookie, headers = {}) {
  return b.fetch(ENDPOINT, {
    method: 'POST',
    headers: { 'sec-fetch-site': 'same-origin', origin: b.url, ...(cookie ? { cookie } : {}), ...headers },
  });
}

function lastSeq() {
  const log = clerk.requestLog();
  return log.length ? log[log.length - 1].seq : 0;
}

function apiCallsSince(since) {
  return clerk.requestLog({ since }).filter((e) => e.path.startsWith('/v1/') && e.path !== '/v1/jwks');
}

function userByExternalId(id) {
  return clerk.users().users.filter((u) => u.external_id === id);
}

test('first call creates one Clerk user with the legacy id; an unverified session email is reserved', async () => {
  const id = legacyId('fresh');
  const email = `${id}@example.com`;
  const since = lastSeq();
  const res = await post(bridge, await sessionCookie({ sub: id, email, name: 'Ada Lovelace' }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const body = await res.json();
  assert.deepEqual(Object.keys(body).sort(), ['clerk_user_id', 'token']);
  const users = userByExternalId(id);
  assert.equal(users.length, 1);
  assert.equal(users[0].id, body.clerk_user_id);
  assert.equal(users[0].first_name, 'Ada');
  assert.equal(users[0].last_name, 'Lovelace');
  const address = users[0].email_addresses[0];
  assert.equal(address.email_address, email);
  assert.equal(address.verification.status, 'unverified', 'NextAuth did not say the email is verified');
  // The token is a real, single-use Clerk sign-in token for that user.
  const minted = clerk.signInTokens().find((t) => t.token === body.token);
  assert.equal(minted.user_id, body.clerk_user_id);
  assert.ok(minted.expires_in_seconds > 0 && minted.expires_in_seconds <= 300, `${minted.expires_in_seconds}`);
  assert.equal(clerk.consumeSignInToken(body.token).status, 'accepted');
  const calls = apiCallsSince(since);
  // Create first, with the external id; no look-up for a fresh user: 2 Backend API calls.
  assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), ['POST /v1/users', 'POST /v1/sign_in_tokens']);
});

test('a session that says the email is verified creates it verified (Auth.js v5 cookie)', async () => {
  const id = legacyId('verified');
  const email = `${id}@example.com`;
  const res = await post(bridge, await sessionCookie({ sub: id, email, email_verified: true }, true));
  assert.equal(res.status, 200);
  const [user] = userByExternalId(id);
  assert.equal(user.email_addresses[0].verification.status, 'verified');
});

test('a repeat creates nothing and costs two Clerk calls (the mapping confirmed, the token)', async () => {
  const id = legacyId('repeat');
  const cookie = await sessionCookie({ sub: id, email: `${id}@example.com` });
  const first = await (await post(bridge, cookie)).json();
  const total = clerk.users().total;
  const since = lastSeq();
  const res = await post(bridge, cookie);
  assert.equal(res.status, 200);
  const again = await res.json();
  assert.equal(again.clerk_user_id, first.clerk_user_id);
  assert.notEqual(again.token, first.token, 'sign-in tokens are single use: a new one each time');
  assert.equal(clerk.users().total, total);
  const calls = apiCallsSince(since);
  // Clerk confirms the KV mapping (KV is a cache), then the token.
  assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), ['GET /v1/users', 'POST /v1/sign_in_tokens']);
});

test('20 concurrent calls for a fresh user make exactly one Clerk user (and 5 tokens, then 429)', async () => {
  const id = legacyId('burst');
  const cookie = await sessionCookie({ sub: id, email: `${id}@example.com` });
  const since = lastSeq();
  const answers = await Promise.all(Array.from({ length: 20 }, () => post(bridge, cookie)));
  const bodies = await Promise.all(answers.map((r) => r.json()));
  // A user gets at most 5 sign-in tokens a minute; the rest wait (Retry-After).
  const minted = bodies.filter((_, i) => answers[i].status === 200);
  assert.equal(minted.length, 5);
  assert.ok(answers.every((r) => r.status === 200 || (r.status === 429 && Number(r.headers.get('retry-after')) >= 1)));
  assert.equal(new Set(minted.map((b) => b.clerk_user_id)).size, 1);
  assert.equal(new Set(minted.map((b) => b.token)).size, 5);
  assert.equal(userByExternalId(id).length, 1);
  const report = clerk.users();
  assert.equal(report.duplicates.by_external_id[id], undefined);
  const calls = apiCallsSince(since);
  assert.equal(calls.filter((c) => c.method === 'POST' && c.path === '/v1/users').length, 1);
  // One shared migration plus one token each, not 20 migrations.
  assert.ok(calls.length <= 2 * 5 + 4, `${calls.length} Backend API calls`);
  console.log(`# 20 concurrent sign-in token requests for one fresh user: ${calls.length} Backend API calls`);
});

test('two isolates racing for one fresh user (separate KV, no shared state) still make one Clerk user', async () => {
  const other = await freshBridge();
  const id = legacyId('race');
  const cookie = await sessionCookie({ sub: id, email: `${id}@example.com` });
  const answers = await Promise.all(
    Array.from({ length: 10 }, (_, i) => post(i % 2 ? other : bridge, cookie)),
  );
  assert.deepEqual(answers.map((r) => r.status), Array(10).fill(200));
  const ids = new Set((await Promise.all(answers.map((r) => r.json()))).map((b) => b.clerk_user_id));
  assert.equal(ids.size, 1);
  assert.equal(userByExternalId(id).length, 1);
});

test('a Clerk user with the same verified email is linked, not duplicated', async () => {
  const id = legacyId('link');
  const email = `${id}@example.com`;
  const existing = clerk.createUser({ email_address: [email], skip_password_requirement: true });
  const total = clerk.users().total;
  const res = await post(bridge, await sessionCookie({ sub: id, email, email_verified: true }));
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.clerk_user_id, existing.id);
  assert.equal(clerk.users().total, total);
  assert.equal(userByExternalId(id)[0]?.id, existing.id);
});

test('an unverified session email never takes over an existing Clerk account', async () => {
  const id = legacyId('takeover');
  const email = `${id}@example.com`;
  const existing = clerk.createUser({ email_address: [email], skip_password_requirement: true });
  const res = await post(bridge, await sessionCookie({ sub: id, email }));
  assert.equal(res.status, 422);
  const body = await res.json();
  assert.deepEqual(body, { error: 'link_refused', code: 'link_email_unverified_legacy' });
  assert.ok(!JSON.stringify(body).includes(existing.id), 'no other account id leaks');
  assert.equal(userByExternalId(id).length, 0);
  assert.equal(clerk.users().users.find((u) => u.id === existing.id).external_id, null);
});

test('a NextAuth user with sub +alice never gets a token for Clerk user alice (nor -5 for everyone but 5)', async () => {
  // Clerk reads a leading + / - in the external_id filter as include / exclude markers.
  const base = legacyId('signed');
  const alice = clerk.createUser({ external_id: base, email_address: [`${base}@example.com`], skip_password_requirement: true });
  for (const sub of [`+${base}`, `-${base}`]) {
    const email = `${sub.slice(1)}-mallory-${sub[0] === '+' ? 'p' : 'm'}@example.com`;
    const cookie = await sessionCookie({ sub, email, email_verified: true });
    const first = await post(bridge, cookie);
    assert.equal(first.status, 200, sub);
    const { clerk_user_id: own } = await first.json();
    assert.notEqual(own, alice.id, sub);
    assert.deepEqual(userByExternalId(sub).map((u) => u.id), [own], sub);
    // Another isolate (no KV mapping): the create is refused, the escaped look-up finds exactly `sub`.
    const other = await freshBridge();
    const since = lastSeq();
    const again = await post(other, cookie);
    assert.equal(again.status, 200, sub);
    const body = await again.json();
    assert.equal(body.clerk_user_id, own, sub);
    assert.equal(clerk.signInTokens().find((t) => t.token === body.token).user_id, own);
    const lookups = apiCallsSince(since).filter((c) => c.method === 'GET' && c.path === '/v1/users');
    assert.ok(lookups.length >= 1, 'went through the look-up');
    for (const c of lookups) {
      const values = new URLSearchParams(c.query).getAll('external_id');
      for (const v of values) assert.equal(v, `+${sub}`, `escaped on the wire: ${c.query}`);
    }
  }
  assert.equal(clerk.users().users.find((u) => u.id === alice.id).external_id, base, "Alice's id is untouched");
  assert.ok(!clerk.signInTokens().some((t) => t.user_id === alice.id), 'no token for Alice');
});

test('a Clerk user holding the address unverified is not linked: 422 with a stable code', async () => {
  const id = legacyId('unverified-holder');
  const email = `${id}@example.com`;
  // The attacker's copy of the victim's address, never verified.
  const holder = clerk.createUser({
    email_address: [email],
    email_address_identification_status: ['reserved'],
    skip_password_requirement: true,
  });
  const res = await post(bridge, await sessionCookie({ sub: id, email, email_verified: true }));
  assert.equal(res.status, 422);
  const body = await res.json();
  assert.deepEqual(body, { error: 'link_refused', code: 'link_email_unverified_in_clerk' });
  assert.ok(!JSON.stringify(body).includes(holder.id), 'no other account id leaks');
  assert.equal(clerk.users().users.find((u) => u.id === holder.id).external_id, null);
  assert.ok(!clerk.signInTokens().some((t) => t.user_id === holder.id));
  assert.equal(userByExternalId(id).length, 0);
  const kv = await bridge.kv();
  assert.equal(await kv.get(`map:c2l:${holder.id}`), null);
});

const ADMIN = 'admin-token-for-trickle-tests-0123456789';
const BCRYPT = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0';

function importRecord(id, email) {
  return {
    id,
    email,
    email_verified: true,
    first_name: 'Grace',
    last_name: 'Hopper',
    password_digest: BCRYPT,
    password_hasher: 'bcrypt',
    created_at: '2019-05-06T07:08:09Z',
    public_metadata: { plan: 'pro' },
  };
}

async function upload(b, records) {
  const res = await b.fetch('/__auth-bridge/admin/imports', {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}` },
    body: records.map((r) => JSON.stringify(r)).join('\n'),
  });
  assert.equal(res.status, 202);
  assert.equal((await res.json()).accepted, records.length);
}

function assertCompletedFromRecord(user) {
  assert.equal(user.first_name, 'Grace');
  assert.equal(user.last_name, 'Hopper');
  assert.equal(user.password_enabled, true);
  assert.deepEqual(user.public_metadata, { plan: 'pro' });
  assert.equal(user.created_at, Date.parse('2019-05-06T07:08:09Z'));
}

test('an import uploaded before the first sign-in is merged into the Clerk user the trickle creates', async () => {
  const b = await freshBridge({ AUTH_BRIDGE_ADMIN_TOKEN: ADMIN });
  const id = legacyId('imported-before');
  const email = `${id}@example.com`;
  await upload(b, [importRecord(id, email)]);
  // The session knows only the id and the email, unverified: the record's facts win.
  const res = await post(b, await sessionCookie({ sub: id, email, name: 'G H' }));
  assert.equal(res.status, 200);
  const users = userByExternalId(id);
  assert.equal(users.length, 1);
  assertCompletedFromRecord(users[0]);
  assert.equal(users[0].email_addresses[0].verification.status, 'verified');
});

test('a password digest Clerk refuses does not block the user: migrated without it, with a warning', async () => {
  const b = await freshBridge({ AUTH_BRIDGE_ADMIN_TOKEN: ADMIN });
  const id = legacyId('bad-digest');
  const email = `${id}@example.com`;
  await upload(b, [{ ...importRecord(id, email), password_digest: 'not-a-bcrypt-digest' }]);
  const res = await post(b, await sessionCookie({ sub: id, email }));
  assert.equal(res.status, 200);
  const [user] = userByExternalId(id);
  assert.equal(user.password_enabled, false);
  assert.equal(user.first_name, 'Grace', 'the rest of the record is migrated');
  const status = await (await b.fetch('/__auth-bridge/admin/status', { headers: { authorization: `Bearer ${ADMIN}` } })).json();
  const warning = status.warnings.items.find((w) => w.legacy_id === id);
  assert.equal(warning?.code, 'form_password_digest_invalid_code', JSON.stringify(status.warnings));
  assert.equal(warning.clerk_id, user.id);
  assert.ok(status.warnings.count >= 1);
  assert.ok(!JSON.stringify(status).includes('not-a-bcrypt-digest'), 'never the digest');
});

test('an import uploaded after the trickle: the batch completes the user, without a second one', async () => {
  const b = await freshBridge({ AUTH_BRIDGE_ADMIN_TOKEN: ADMIN, CLERK_RATE_LIMIT: '1000/10s' });
  const id = legacyId('imported-after');
  const email = `${id}@example.com`;
  const res = await post(b, await sessionCookie({ sub: id, email, email_verified: true }));
  assert.equal(res.status, 200);
  const { clerk_user_id: clerkId } = await res.json();
  assert.equal(userByExternalId(id)[0].password_enabled, false);

  await upload(b, [importRecord(id, email)]);
  await b.scheduled(Date.now());
  let user;
  for (let i = 0; i < 40; i++) {
    [user] = userByExternalId(id);
    // The batch completes in two writes (profile, then metadata): wait for both.
    if (user.password_enabled && user.public_metadata?.plan) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(user.id, clerkId);
  assertCompletedFromRecord(user);
  assert.equal(userByExternalId(id).length, 1);
});

test('the mapping is remembered both ways, and a Clerk session then carries the legacy id to the origin', async () => {
  const id = legacyId('identity');
  const cookie = await sessionCookie({ sub: id, email: `${id}@example.com` });
  const { clerk_user_id: clerkId } = await (await post(bridge, cookie)).json();
  const kv = await bridge.kv();
  assert.equal(await kv.get(`map:l2c:${id}`), clerkId);
  assert.equal(await kv.get(`map:c2l:${clerkId}`), id);

  const token = clerk.mintSessionToken({ sub: clerkId, sid: 'sess_trickle' });
  const uat = Math.floor(Date.now() / 1000) - 30;
  const res = await bridge.fetch('/whoami', { headers: { cookie: `${cookieHeader({ __session: token, __client_uat: String(uat) })}; ${cookie}` } });
  const seen = (await res.json()).headers;
  assert.equal(seen['x-auth-source'], 'clerk');
  assert.equal(seen['x-auth-user-id'], id);
  assert.equal(seen['x-auth-clerk-user-id'], clerkId);

  // And the endpoint has nothing to do for that browser.
  const again = await post(bridge, `${cookieHeader({ __session: clerk.mintSessionToken({ sub: clerkId }), __client_uat: String(uat) })}; ${cookie}`);
  assert.equal(again.status, 204);
  assert.equal(again.headers.get('cache-control'), 'no-store');
});

test('without a NextAuth session: 401 no_nextauth_session', async () => {
  for (const cookie of [undefined, 'next-auth.session-token=not-a-jwe', cookieHeader({ 'next-auth.session-token': await nextAuthV4('another-secret', { sub: 'x' }) })]) {
    const res = await post(bridge, cookie);
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: 'no_nextauth_session' });
  }
});

test('cross-site requests are refused with 403 before anything else', async () => {
  const id = legacyId('csrf');
  const cookie = await sessionCookie({ sub: id, email: `${id}@example.com` });
  const since = lastSeq();
  const refused = [
    { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
    { 'sec-fetch-site': 'same-site', origin: 'https://sub.example' },
    { 'sec-fetch-site': '', origin: 'https://evil.example' },
  ];
  for (const headers of refused) {
    const h = { ...headers };
    if (h['sec-fetch-site'] === '') delete h['sec-fetch-site'];
    const res = await bridge.fetch(ENDPOINT, { method: 'POST', headers: { cookie, ...h } });
    assert.equal(res.status, 403, JSON.stringify(h));
  }
  assert.equal(apiCallsSince(since).length, 0);
  // Origin alone (older browsers) passes when it is ours.
  const ok = await bridge.fetch(ENDPOINT, { method: 'POST', headers: { cookie, origin: bridge.url } });
  assert.equal(ok.status, 200);
});

test('only POST', async () => {
  const res = await bridge.fetch(ENDPOINT);
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'POST');
});

test('observe and clerk-only answer 409 and write nothing to Clerk', async () => {
  for (const phase of ['observe', 'clerk-only']) {
    const b = await freshBridge({ MIGRATION_PHASE: phase });
    const id = legacyId(phase);
    const since = lastSeq();
    const res = await post(b, await sessionCookie({ sub: id, email: `${id}@example.com` }));
    assert.equal(res.status, 409, phase);
    assert.equal((await res.json()).error, 'not_migrating');
    const calls = apiCallsSince(since);
    assert.equal(calls.filter((c) => c.method !== 'GET').length, 0, `${phase}: no Clerk writes`);
    assert.equal(userByExternalId(id).length, 0);
  }
});

test('throttled Clerk: 429 with Retry-After, then the isolate waits it out without calling Clerk', async () => {
  const b = await freshBridge();
  const id = legacyId('throttled');
  const cookie = await sessionCookie({ sub: id, email: `${id}@example.com` });
  clerk.addFault({ path: '/v1/users', sequence: [{ status: 429, retryAfter: 3 }] });
  const since = lastSeq();
  const res = await post(b, cookie);
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '3');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal((await res.json()).error, 'rate_limited');
  const callsAfterFirst = apiCallsSince(since).length;

  const held = await post(b, cookie);
  assert.equal(held.status, 429);
  const wait = Number(held.headers.get('retry-after'));
  assert.ok(wait >= 1 && wait <= 3, `${wait}`);
  assert.equal(apiCallsSince(since).length, callsAfterFirst, 'no Clerk call while the gate is closed');

  await new Promise((r) => setTimeout(r, 3100));
  const later = await post(b, cookie);
  assert.equal(later.status, 200);
  assert.equal(userByExternalId(id).length, 1);
});

test('a real sliding-window limit on Clerk surfaces as 429 with its Retry-After', async () => {
  const b = await freshBridge();
  // A fresh user costs two calls (create, token): the token is the one refused.
  clerk.setRateLimit({ limit: 1, windowMs: 2000 });
  const id = legacyId('window');
  const res = await post(b, await sessionCookie({ sub: id, email: `${id}@example.com` }));
  assert.equal(res.status, 429);
  const wait = Number(res.headers.get('retry-after'));
  assert.ok(wait >= 1 && wait <= 2, `${wait}`);
});

test('Clerk down: 503 with Retry-After (5xx with and without the header, connection reset)', async () => {
  const b = await freshBridge();
  const cases = [
    [{ status: 503, retryAfter: 4 }, '4'],
    [500, '5'],
    ['reset', '5'],
    [502, '5'],
  ];
  for (const [action, expected] of cases) {
    clerk.clearFaults();
    clerk.addFault({ path: '/v1/*', sequence: [action] });
    const id = legacyId('down');
    const res = await post(b, await sessionCookie({ sub: id, email: `${id}@example.com` }));
    assert.equal(res.status, 503, JSON.stringify(action));
    assert.equal(res.headers.get('retry-after'), expected, JSON.stringify(action));
    const body = await res.json();
    assert.equal(body.error, 'clerk_unavailable');
    if (action?.retryAfter) await new Promise((r) => setTimeout(r, action.retryAfter * 1000 + 100));
  }
});

test('misconfiguration: no CLERK_SECRET_KEY is a 503 naming the setting, and pages still load', async () => {
  const b = await freshBridge({ CLERK_SECRET_KEY: '' });
  const id = legacyId('nokey');
  const res = await post(b, await sessionCookie({ sub: id, email: `${id}@example.com` }));
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { error: 'misconfigured', setting: 'CLERK_SECRET_KEY' });
  assert.ok(res.headers.get('retry-after'));
  const page = await b.fetch('/page');
  assert.equal(page.status, 200);
});

test('a wrong secret key is reported as misconfiguration, not blamed on the user', async () => {
  const b = await freshBridge({ CLERK_SECRET_KEY: 'sk_live_wrongwrongwrongwrong' });
  const id = legacyId('badkey');
  const res = await post(b, await sessionCookie({ sub: id, email: `${id}@example.com` }));
  assert.equal(res.status, 503);
  assert.equal((await res.json()).setting, 'CLERK_SECRET_KEY');
});

test('GET /__auth-bridge/client.js serves the script', async () => {
  const res = await bridge.fetch('/__auth-bridge/client.js');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/javascript/);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const js = await res.text();
  assert.ok(js.includes('/__auth-bridge/sign-in-token'));
  assert.ok(js.includes("strategy: 'ticket'"));
});
