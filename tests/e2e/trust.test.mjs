// What binds a person to an identity, and who may spend the Backend API budget, under real
// workerd with the local Clerk server: Clerk's external_id is the truth (KV only caches it),
// pending sessions are signed out, and no anonymous client (made-up handshake nonces, made-up
// database-session cookies) nor one user (sign-in tokens in a loop) can spend the budget.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { listen } from './harness.mjs';
import { DB_SESSION_VALID } from './origin.mjs';
import { startStack } from './stack.mjs';
import { nextAuthV4, cookieHeader } from './tokens.mjs';

const SECRET = 'nextauth-secret-for-trust-tests';
const FAPI = 'clerk.trust-tests.example.com';
const PAGE = { 'sec-fetch-dest': 'document', accept: 'text/html' };

let stack, origin, clerk;

/** A bridge of its own: its own isolate, caches and per-address caps. */
const bridgeWith = (extra = {}) => stack.bridge(extra);

before(async () => {
  stack = await startStack({ secret: SECRET, frontendApi: FAPI, clerk: { rateLimit: false, quiet: true } });
  ({ origin, clerk } = stack);
});
after(() => stack?.close());
beforeEach(() => clerk.clearFaults());

let seq = 0;
const unique = (label) => `${label}-${process.pid}-${++seq}`;

function createUser(externalId) {
  return clerk.createUser({
    ...(externalId ? { external_id: externalId } : {}),
    email_address: [`${unique('u')}@example.com`],
    skip_password_requirement: true,
  });
}

const now = () => Math.floor(Date.now() / 1000);
const clerkCookies = (token) => cookieHeader({ __session: token, __client_uat: String(now() - 30) });
const lastSeq = () => clerk.requestLog().at(-1)?.seq ?? 0;
const callsSince = (since, filter = () => true) => clerk.requestLog({ since }).filter((e) => e.counted && filter(e));

/** The identity headers the origin saw. */
async function seen(b, headers = {}, path = '/whoami') {
  const res = await b.fetch(path, { headers });
  assert.equal(res.status, 200, `${path} answered ${res.status}`);
  const body = await res.json();
  return Object.fromEntries(Object.entries(body.headers).filter(([k]) => k.startsWith('x-auth-')));
}

// --- Clerk is the truth, KV a cache ---------------------------------------------------------

test('a Clerk user whose external_id was set elsewhere is forwarded under it, from the first request', async () => {
  const b = await bridgeWith();
  const legacy = unique('set-elsewhere');
  const user = createUser(legacy);
  const token = clerk.mintSessionToken({ sub: user.id, sid: unique('sess') });
  const id = await seen(b, { cookie: clerkCookies(token) });
  assert.equal(id['x-auth-source'], 'clerk');
  assert.equal(id['x-auth-user-id'], legacy, 'the external_id, not the Clerk id');
  assert.equal(id['x-auth-clerk-user-id'], user.id);
  // The re-checked answer is cached in KV for other isolates.
  assert.equal(await (await b.kv()).get(`map:c2l:${user.id}`), legacy);
  // A second isolate, first request: the same id.
  const other = await bridgeWith();
  assert.equal((await seen(other, { cookie: clerkCookies(token) }))['x-auth-user-id'], legacy);
});

test('a user born in Clerk is forwarded under its Clerk id; a session is looked up once', async () => {
  const b = await bridgeWith();
  const user = createUser(null);
  const token = clerk.mintSessionToken({ sub: user.id, sid: unique('sess') });
  const since = lastSeq();
  for (let i = 0; i < 3; i++) {
    const id = await seen(b, { authorization: `Bearer ${token}` });
    assert.equal(id['x-auth-user-id'], user.id);
    assert.equal(id['x-auth-source'], 'clerk');
  }
  const lookups = callsSince(since, (e) => e.method === 'GET' && e.path === `/v1/users/${user.id}`);
  assert.equal(lookups.length, 1);
});

test('a user migrated after a "no external_id" answer: its new session carries the legacy id at once', async () => {
  const b = await bridgeWith();
  const user = createUser(null);
  const before = clerk.mintSessionToken({ sub: user.id, sid: unique('sess-before') });
  assert.equal((await seen(b, { authorization: `Bearer ${before}` }))['x-auth-user-id'], user.id);
  // Linked (the batch, another tool): Clerk now holds an external_id.
  const legacy = unique('linked-later');
  const patched = await fetch(`${clerk.url}/v1/users/${user.id}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${clerk.secretKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ external_id: legacy }),
  });
  assert.equal(patched.status, 200);
  // The sign-in after a migration is a new session: never forwarded under the Clerk id.
  const after = clerk.mintSessionToken({ sub: user.id, sid: unique('sess-after') });
  assert.equal((await seen(b, { authorization: `Bearer ${after}` }))['x-auth-user-id'], legacy);
});

test('when Clerk cannot say (down), a session without a known mapping gets no identity, never its Clerk id', async () => {
  const b = await bridgeWith();
  const user = createUser(unique('while-down'));
  clerk.addFault({ path: '/v1/users/*', action: 503 });
  const token = clerk.mintSessionToken({ sub: user.id, sid: unique('sess') });
  const id = await seen(b, { authorization: `Bearer ${token}` });
  assert.equal(id['x-auth-source'], 'anonymous');
  assert.equal(id['x-auth-user-id'], undefined);
  clerk.clearFaults();
  // A few seconds later Clerk answers again and the id is the external_id.
  await new Promise((r) => setTimeout(r, 5200));
  assert.equal((await seen(b, { authorization: `Bearer ${token}` }))['x-auth-user-id'], user.external_id);
});

test('CLERK_LEGACY_ID_CLAIM: the claim decides, without any Backend API call', async () => {
  const b = await bridgeWith({ CLERK_LEGACY_ID_CLAIM: 'app_user_id' });
  const born = createUser(null);
  const migrated = createUser(unique('claimed'));
  const since = lastSeq();
  // The template `{{user.external_id || user.id}}` gives the Clerk id for users born in Clerk.
  const bornToken = clerk.mintSessionToken({ sub: born.id, claims: { app_user_id: born.id } });
  assert.equal((await seen(b, { authorization: `Bearer ${bornToken}` }))['x-auth-user-id'], born.id);
  const migratedToken = clerk.mintSessionToken({ sub: migrated.id, claims: { app_user_id: migrated.external_id } });
  assert.equal((await seen(b, { authorization: `Bearer ${migratedToken}` }))['x-auth-user-id'], migrated.external_id);
  assert.equal(callsSince(since, (e) => e.path.startsWith('/v1/users')).length, 0);
});

// --- Pending sessions -------------------------------------------------------------------------

test('a pending Clerk session is signed out by default: anonymous, no handshake, no sign-in token', async () => {
  const b = await bridgeWith();
  const user = createUser(unique('pending'));
  const token = clerk.mintSessionToken({ sub: user.id, claims: { sts: 'pending' } });
  const na = await nextAuthV4(SECRET, { sub: user.external_id, email: 'p@example.com' });
  const cookie = `${clerkCookies(token)}; next-auth.session-token=${na}`;
  const page = await b.fetch('/whoami', { headers: { ...PAGE, cookie } });
  assert.equal(page.status, 200, 'no handshake redirect');
  const id = Object.fromEntries(Object.entries((await page.json()).headers).filter(([k]) => k.startsWith('x-auth-')));
  assert.deepEqual(id, { 'x-auth-source': 'anonymous' });
  const post = await b.fetch('/__auth-bridge/sign-in-token', {
    method: 'POST',
    headers: { 'sec-fetch-site': 'same-origin', cookie },
  });
  assert.equal(post.status, 204, 'a Clerk session is there: no ticket');
  // An active session says so.
  const active = clerk.mintSessionToken({ sub: user.id, claims: { sts: 'active' } });
  const activeId = await seen(b, { authorization: `Bearer ${active}` });
  assert.equal(activeId['x-auth-session-status'], 'active');
  assert.equal(activeId['x-auth-user-id'], user.external_id);
});

test('CLERK_TREAT_PENDING_AS_SIGNED_OUT=false forwards pending sessions with x-auth-session-status', async () => {
  const b = await bridgeWith({ CLERK_TREAT_PENDING_AS_SIGNED_OUT: 'false' });
  const user = createUser(unique('pending-fwd'));
  const token = clerk.mintSessionToken({ sub: user.id, claims: { sts: 'pending' } });
  const id = await seen(b, { authorization: `Bearer ${token}` });
  assert.equal(id['x-auth-source'], 'clerk');
  assert.equal(id['x-auth-session-status'], 'pending');
  assert.equal(id['x-auth-user-id'], user.external_id);
});

// --- The budget is not for strangers ----------------------------------------------------------

test('40 made-up handshake nonces from one address make at most 10 Backend API calls', async () => {
  const b = await bridgeWith();
  const since = lastSeq();
  for (let i = 0; i < 40; i++) {
    const res = await b.fetch(`/p?__clerk_handshake_nonce=madeUpNonce${i}x${process.pid}`, {
      headers: { ...PAGE, 'cf-connecting-ip': '203.0.113.40' },
    });
    assert.equal(res.status, 200, 'an unresolvable nonce: the page is forwarded');
  }
  const payloads = callsSince(since, (e) => e.path === '/v1/clients/handshake_payload');
  assert.ok(payloads.length <= 10, `${payloads.length} handshake payload look-ups`);
  assert.ok(payloads.length >= 1, 'nonce-shaped values are still resolved');
  // The cap is per address: another client is not locked out by the first one.
  const { nonce } = clerk.registerHandshake(undefined, []);
  const before = lastSeq();
  await b.fetch(`/p?__clerk_handshake_nonce=${nonce}`, { headers: { ...PAGE, 'cf-connecting-ip': '203.0.113.41' } });
  assert.equal(callsSince(before, (e) => e.path === '/v1/clients/handshake_payload').length, 1);
});

test('a value that cannot be a nonce never reaches the Backend API', async () => {
  const b = await bridgeWith();
  const since = lastSeq();
  for (const bad of ['has space', 'quote"d', 'x'.repeat(300), 'semi;colon', '%00']) {
    const res = await b.fetch(`/p?__clerk_handshake_nonce=${encodeURIComponent(bad)}`, { headers: PAGE });
    assert.equal(res.status, 200);
  }
  assert.equal(callsSince(since, (e) => e.path === '/v1/clients/handshake_payload').length, 0);
});

test('handshake payload look-ups come out of CLERK_RATE_LIMIT', async () => {
  const b = await bridgeWith({ CLERK_RATE_LIMIT: '2/1m' });
  const since = lastSeq();
  for (let i = 0; i < 4; i++) {
    const { nonce } = clerk.registerHandshake(undefined, []);
    await b.fetch(`/p?__clerk_handshake_nonce=${nonce}`, { headers: { ...PAGE, 'cf-connecting-ip': `198.51.100.${i}` } });
  }
  assert.equal(callsSince(since, (e) => e.path === '/v1/clients/handshake_payload').length, 2);
});

test('a sign-in token is minted at most 5 times a minute per user; then 429 with Retry-After', async () => {
  const b = await bridgeWith();
  const legacy = unique('mint-loop');
  const na = await nextAuthV4(SECRET, { sub: legacy, email: `${legacy}@example.com` });
  const since = lastSeq();
  const statuses = [];
  let limited;
  for (let i = 0; i < 12; i++) {
    const res = await b.fetch('/__auth-bridge/sign-in-token', {
      method: 'POST',
      headers: { 'sec-fetch-site': 'same-origin', cookie: `next-auth.session-token=${na}` },
    });
    statuses.push(res.status);
    if (res.status === 429) limited = res;
    await res.body?.cancel();
  }
  assert.deepEqual(statuses, [...Array(5).fill(200), ...Array(7).fill(429)]);
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  const minted = callsSince(since, (e) => e.method === 'POST' && e.path === '/v1/sign_in_tokens');
  assert.equal(minted.length, 5);
});

test('database-session look-ups only for values next-auth could have made, with a short negative cache', async () => {
  const b = await bridgeWith();
  const asked = () => origin.received.filter((r) => r.url === '/api/auth/session').length;
  const before = asked();
  for (const made_up of ['made-up', 'x'.repeat(64), '0f8fad5b-d9cb-469f-a165-70867728950', 'null']) {
    const id = await seen(b, { cookie: `next-auth.session-token=${made_up}` });
    assert.equal(id['x-auth-source'], 'anonymous');
  }
  assert.equal(asked(), before, 'no made-up value reached the origin');
  const unknown = 'a3bb189e-8bf9-3888-9912-ace4e6543002';
  for (let i = 0; i < 3; i++) {
    assert.equal((await seen(b, { cookie: `next-auth.session-token=${unknown}` }))['x-auth-source'], 'anonymous');
  }
  assert.equal(asked(), before + 1, 'a "no session" answer is remembered briefly');
  const valid = await seen(b, { cookie: `next-auth.session-token=${DB_SESSION_VALID}` });
  assert.equal(valid['x-auth-user-id'], 'db-user-1');
});

// --- Bodies are capped while they stream ------------------------------------------------------

/** Answers with a JSON prefix and then an endless body, counting what it managed to send. */
function endless(res, meter) {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{"user":{"id":"');
  const chunk = Buffer.alloc(64 * 1024, 'a');
  res.on('close', () => {
    meter.closed = true;
  });
  const pump = () => {
    while (!res.destroyed) {
      if (meter.sent >= 256 * 1024 * 1024) return res.end('"}}');
      meter.sent += chunk.length;
      if (!res.write(chunk)) return res.once('drain', pump);
    }
  };
  pump();
}

test('an endless answer from the origin or from Clerk is cut off at the cap, not buffered', async () => {
  const meters = { origin: { sent: 0 }, clerk: { sent: 0 } };
  const app = await listen((req, res) => {
    if (req.url === '/api/auth/session') return endless(res, meters.origin);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ headers: req.headers }));
  });
  const api = await listen((req, res) => endless(res, meters.clerk));
  try {
    const b = await bridgeWith({
      ORIGIN_URL: app.url,
      CLERK_API_URL: api.url,
      // Networkless key: only the user look-up goes to the endless Backend API.
      CLERK_JWT_KEY: clerk.publicKeyPem,
    });
    const started = Date.now();
    const db = await seen(b, { cookie: 'next-auth.session-token=9b2d6f0e-3c1a-4e8b-9f7d-2a6c5e4b3d21' });
    assert.equal(db['x-auth-source'], 'anonymous');
    const token = clerk.mintSessionToken({ sub: 'user_endless', sid: unique('sess') });
    const id = await seen(b, { authorization: `Bearer ${token}` });
    assert.equal(id['x-auth-source'], 'anonymous', 'no identity when Clerk\'s answer cannot be read');
    const elapsed = Date.now() - started;
    await new Promise((r) => setTimeout(r, 300));
    // Reading stopped at the cap (64 KiB and 4 MiB): what was sent is bounded by socket buffers,
    // far from the 256 MiB an unbounded read would have taken.
    assert.ok(meters.origin.sent < 32 * 1024 * 1024, `origin sent ${meters.origin.sent} bytes`);
    assert.ok(meters.clerk.sent < 48 * 1024 * 1024, `Clerk sent ${meters.clerk.sent} bytes`);
    console.log(`# endless bodies: origin sent ${meters.origin.sent} B, Clerk ${meters.clerk.sent} B before the worker stopped reading (${elapsed} ms)`);
  } finally {
    await app.close();
    await api.close();
  }
});
