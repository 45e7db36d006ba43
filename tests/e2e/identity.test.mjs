// Identity at the edge under real workerd: cookies minted by next-auth 4 and @auth/core, Clerk
// tokens signed by the local Clerk server's RSA key and verified through its JWKS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { jwtVerify } from 'jose';
import { startBridge, startWorkers, bridgeWorker } from './harness.mjs';
import { startOrigin, DB_SESSION_VALID } from './origin.mjs';
import { startClerk, bridgeSettings } from './stack.mjs';
import { cookieSuffix } from '../clerk-server/keys.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from './tokens.mjs';

const SECRET = 'nextauth-secret-for-identity-tests';
const OLD_SECRET = 'an-older-rotated-secret';
const ASSERTION_SECRET = 'assertion-secret-shared-with-origin';
const FAPI = 'clerk.identity-tests.example.com';

let origin, clerk, bridge;

before(async () => {
  origin = await startOrigin();
  clerk = await startClerk(FAPI);
  bridge = await startBridge(bridgeSettings({ origin, clerk, secret: `${SECRET},${OLD_SECRET}` }, { AUTH_BRIDGE_ASSERTION_SECRET: ASSERTION_SECRET }));
});
after(async () => {
  await bridge?.close();
  await clerk?.close();
  await origin?.close();
});

/** What the origin saw of identity for a request with these headers. */
async function seenIdentity(headers = {}) {
  const res = await bridge.fetch('/whoami', { headers });
  assert.equal(res.status, 200);
  const seen = await res.json();
  return Object.fromEntries(Object.entries(seen.headers).filter(([k]) => k.startsWith('x-auth-')));
}

function decodeJws(token) {
  const [h, p, s] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')), h, p, s };
}

function checkAssertion(identity, expected) {
  const { header, payload, h, p, s } = decodeJws(identity['x-auth-assertion']);
  assert.equal(header.alg, 'HS256');
  const mac = createHmac('sha256', ASSERTION_SECRET).update(`${h}.${p}`).digest('base64url');
  assert.equal(s, mac, 'assertion signature');
  assert.equal(payload.aud, new URL(origin.url).host);
  assert.ok(payload.exp - payload.iat <= 60 && payload.exp > Date.now() / 1000);
  for (const [k, v] of Object.entries(expected)) assert.equal(payload[k], v, k);
}

test('the assertion verifies exactly as the README tells origins to verify it', async () => {
  const token = await nextAuthV4(SECRET, { sub: 'readme-user', email: 'readme@example.com' });
  const id = await seenIdentity({ cookie: cookieHeader({ 'next-auth.session-token': token }) });
  const key = new TextEncoder().encode(ASSERTION_SECRET);
  const { payload } = await jwtVerify(id['x-auth-assertion'], key, {
    algorithms: ['HS256'],
    issuer: 'auth-bridge',
    audience: new URL(origin.url).host,
    maxTokenAge: '60s',
  });
  assert.equal(payload.user_id, 'readme-user');
  assert.equal(payload.source, 'nextauth');
  await assert.rejects(
    jwtVerify(id['x-auth-assertion'], key, { algorithms: ['HS256'], audience: 'other.example.com' }),
  );
  await assert.rejects(jwtVerify(id['x-auth-assertion'], new TextEncoder().encode('wrong'), { algorithms: ['HS256'] }));
});

test('no cookie: anonymous, with a signed assertion saying so', async () => {
  const id = await seenIdentity();
  assert.equal(id['x-auth-source'], 'anonymous');
  assert.equal(id['x-auth-user-id'], undefined);
  checkAssertion(id, { source: 'anonymous' });
});

test('NextAuth v4 cookie minted by next-auth gives the legacy id and email', async () => {
  const token = await nextAuthV4(SECRET, { sub: 'legacy-v4', email: 'v4@example.com', name: 'Vee Four' });
  const id = await seenIdentity({ cookie: cookieHeader({ 'next-auth.session-token': token, other: 'x' }) });
  assert.equal(id['x-auth-source'], 'nextauth');
  assert.equal(id['x-auth-user-id'], 'legacy-v4');
  assert.equal(id['x-auth-email'], 'v4@example.com');
  assert.equal(id['x-auth-clerk-user-id'], undefined);
  checkAssertion(id, { source: 'nextauth', user_id: 'legacy-v4', email: 'v4@example.com' });
});

test('NextAuth v4 __Secure- cookie signed with the older secret still works', async () => {
  const token = await nextAuthV4(OLD_SECRET, { sub: 'legacy-old', email: 'old@example.com' });
  const id = await seenIdentity({ cookie: cookieHeader({ '__Secure-next-auth.session-token': token }) });
  assert.equal(id['x-auth-user-id'], 'legacy-old');
});

test('Auth.js v5 cookie minted by @auth/core gives the legacy id', async () => {
  const token = await authJsV5(SECRET, { sub: 'legacy-v5', email: 'v5@example.com' });
  const id = await seenIdentity({ cookie: cookieHeader({ 'authjs.session-token': token }) });
  assert.equal(id['x-auth-source'], 'nextauth');
  assert.equal(id['x-auth-user-id'], 'legacy-v5');
  assert.equal(id['x-auth-email'], 'v5@example.com');
});

test('Auth.js v5 chunked cookie is reassembled', async () => {
  const big = 'x'.repeat(6000);
  const token = await authJsV5(SECRET, { sub: 'legacy-chunked', email: 'c@example.com', big });
  const chunks = token.match(/.{1,3936}/g);
  assert.ok(chunks.length >= 2);
  const pairs = Object.fromEntries(chunks.map((c, i) => [`authjs.session-token.${i}`, c]).reverse());
  const id = await seenIdentity({ cookie: cookieHeader(pairs) });
  assert.equal(id['x-auth-user-id'], 'legacy-chunked');
});

test('expired, tampered, garbage, wrongly keyed and oversized cookies are anonymous, never errors', async () => {
  const expired = await nextAuthV4(SECRET, { sub: 'expired' }, -60);
  const good = await nextAuthV4(SECRET, { sub: 'tamper-me' });
  const tampered = good.slice(0, -5) + (good.at(-5) === 'A' ? 'B' : 'A') + good.slice(-4);
  const wrongKey = await nextAuthV4('somebody-elses-secret', { sub: 'intruder' });
  for (const value of [expired, tampered, wrongKey, 'garbage', 'a.b.c.d.e', 'x'.repeat(12000)]) {
    const id = await seenIdentity({ cookie: cookieHeader({ 'next-auth.session-token': value }) });
    assert.equal(id['x-auth-source'], 'anonymous');
    assert.equal(id['x-auth-user-id'], undefined);
  }
});

/** A next-auth 4 token with part `index` (2 iv, 3 ciphertext, 4 tag) edited by `edit` on its bytes. */
function editPart(token, index, edit) {
  const parts = token.split('.');
  parts[index] = Buffer.from(edit(Buffer.from(parts[index], 'base64url'))).toString('base64url');
  return parts.join('.');
}

/** One bit of the last byte flipped. */
const flipLast = (bytes) => {
  const out = Buffer.from(bytes);
  out[out.length - 1] ^= 1;
  return out;
};

/** Altered copies of a next-auth 4 (A256GCM) token: each must be refused. */
function tamperedGcm(token) {
  const header = Buffer.from(JSON.stringify({ alg: 'dir', enc: 'A256GCM', typ: 'JWT' })).toString('base64url');
  return {
    ciphertext: editPart(token, 3, flipLast),
    tag: editPart(token, 4, flipLast),
    'tag a byte short': editPart(token, 4, (b) => b.subarray(1)),
    'tag a byte long': editPart(token, 4, (b) => Buffer.concat([b, Buffer.from([0])])),
    iv: editPart(token, 2, flipLast),
    'iv of 16 bytes': editPart(token, 2, (b) => Buffer.concat([b, Buffer.alloc(4)])),
    header: [header, ...token.split('.').slice(1)].join('.'),
  };
}

test('next-auth 4 cookies, with or without nodejs_compat: accepted as minted, every altered copy refused alike', async () => {
  const settings = bridgeSettings({ origin, clerk, secret: `${SECRET},${OLD_SECRET}` });
  const plain = await startWorkers([bridgeWorker(settings, { compatibilityFlags: [] })]);
  try {
    const workers = {
      nodejs_compat: (headers) => bridge.fetch('/whoami', { headers }),
      'no nodejs_compat': (headers) => plain.fetch('/whoami', { headers }),
    };
    for (const [name, fetchVia] of Object.entries(workers)) {
      const seen = async (token) => {
        const res = await fetchVia({ cookie: cookieHeader({ 'next-auth.session-token': token }) });
        assert.equal(res.status, 200, name);
        return (await res.json()).headers;
      };
      const current = await nextAuthV4(SECRET, { sub: `gcm-${name}`, email: 'gcm@example.com' });
      const rotated = await nextAuthV4(OLD_SECRET, { sub: `gcm-old-${name}` });
      const ok = await seen(current);
      assert.equal(ok['x-auth-source'], 'nextauth', name);
      assert.equal(ok['x-auth-user-id'], `gcm-${name}`);
      assert.equal(ok['x-auth-email'], 'gcm@example.com');
      // The second secret: the first key refuses, the next one opens it.
      assert.equal((await seen(rotated))['x-auth-user-id'], `gcm-old-${name}`, name);
      for (const [what, bad] of Object.entries(tamperedGcm(await nextAuthV4(SECRET, { sub: `forged-${name}` })))) {
        const id = await seen(bad);
        assert.equal(id['x-auth-source'], 'anonymous', `${name}: ${what}`);
        assert.equal(id['x-auth-user-id'], undefined, `${name}: ${what}`);
      }
    }
  } finally {
    await plain.close();
  }
});

test('forged identity headers are replaced by the real identity', async () => {
  const token = await nextAuthV4(SECRET, { sub: 'real-user', email: 'real@example.com' });
  const id = await seenIdentity({
    cookie: cookieHeader({ 'next-auth.session-token': token }),
    'x-auth-user-id': 'admin',
    'x-auth-assertion': 'forged',
  });
  assert.equal(id['x-auth-user-id'], 'real-user');
  assert.notEqual(id['x-auth-assertion'], 'forged');
});

async function clerkUser(externalId, email) {
  const res = await fetch(`${clerk.url}/v1/users`, {
    method: 'POST',
    headers: { authorization: `Bearer ${clerk.secretKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ external_id: externalId ?? undefined, email_address: [email], skip_password_requirement: true }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

function clerkCookies(token, uat = Math.floor(Date.now() / 1000) - 30) {
  return cookieHeader({ __session: token, __client_uat: String(uat) });
}

test('a Clerk session (born in Clerk) gives the Clerk id as the app id', async () => {
  const user = await clerkUser(null, 'born@example.com');
  const token = clerk.mintSessionToken({ sub: user.id, sid: 'sess_born' });
  const id = await seenIdentity({ cookie: clerkCookies(token) });
  assert.equal(id['x-auth-source'], 'clerk');
  assert.equal(id['x-auth-user-id'], user.id);
  assert.equal(id['x-auth-clerk-user-id'], user.id);
  assert.equal(id['x-auth-session-id'], 'sess_born');
  checkAssertion(id, { source: 'clerk', clerk_user_id: user.id, session_id: 'sess_born' });
});

test('a migrated Clerk user is forwarded under the legacy id from the KV mapping', async () => {
  const user = await clerkUser('legacy-mapped', 'mapped@example.com');
  await (await bridge.kv()).put(`map:c2l:${user.id}`, 'legacy-mapped');
  const token = clerk.mintSessionToken({ sub: user.id, sid: 'sess_mapped' });
  const id = await seenIdentity({ cookie: clerkCookies(token) });
  assert.equal(id['x-auth-source'], 'clerk');
  assert.equal(id['x-auth-user-id'], 'legacy-mapped');
  assert.equal(id['x-auth-clerk-user-id'], user.id);
});

test('Clerk wins over NextAuth when both are valid', async () => {
  const user = await clerkUser(null, 'both@example.com');
  const token = clerk.mintSessionToken({ sub: user.id });
  const na = await nextAuthV4(SECRET, { sub: 'legacy-both' });
  const id = await seenIdentity({ cookie: `${clerkCookies(token)}; next-auth.session-token=${na}` });
  assert.equal(id['x-auth-source'], 'clerk');
  assert.equal(id['x-auth-clerk-user-id'], user.id);
});

test('Authorization: Bearer Clerk tokens skip the cookie rules', async () => {
  const token = clerk.mintSessionToken({ sub: 'user_bearer', sid: 'sess_bearer' });
  const id = await seenIdentity({ authorization: `Bearer ${token}` });
  assert.equal(id['x-auth-source'], 'clerk');
  assert.equal(id['x-auth-clerk-user-id'], 'user_bearer');
});

test('bad Clerk tokens fall back to NextAuth, or to anonymous', async () => {
  const na = await nextAuthV4(SECRET, { sub: 'fallback-user' });
  const now = Math.floor(Date.now() / 1000);
  const bad = [
    clerk.mintSessionToken({ sub: 'user_x', key: 'other' }),
    clerk.mintSessionToken({ sub: 'user_x', iss: 'https://evil.example.com' }),
    clerk.mintSessionToken({ sub: 'user_x', header: { kid: 'unknown-kid' } }),
    clerk.mintSessionToken({ sub: 'user_x', iat: now - 600, exp: now - 540, nbf: now - 600 }),
    clerk.mintSessionToken({ sub: 'user_x', header: { cat: 'cl_B7d4PD222AAA' } }),
    'not.a.jwt',
  ];
  for (const token of bad) {
    const withNa = await seenIdentity({ cookie: `${clerkCookies(token, now - 900)}; next-auth.session-token=${na}` });
    assert.equal(withNa['x-auth-source'], 'nextauth', token.slice(0, 20));
    assert.equal(withNa['x-auth-user-id'], 'fallback-user');
    const alone = await seenIdentity({ authorization: `Bearer ${token}` });
    assert.equal(alone['x-auth-source'], 'anonymous');
  }
});

/** A Clerk token whose signature is changed in one bit, and one cut a byte short. */
function forgedSignatures(token) {
  const [h, p, s] = token.split('.');
  const sig = Buffer.from(s, 'base64url');
  const flipped = Buffer.from(sig);
  flipped[sig.length - 1] ^= 1;
  return [`${h}.${p}.${flipped.toString('base64url')}`, `${h}.${p}.${sig.subarray(1).toString('base64url')}`];
}

test('a Clerk signature changed in one bit, or a byte short, is refused', async () => {
  const token = clerk.mintSessionToken({ sub: 'user_sig', sid: 'sess_sig' });
  assert.equal((await seenIdentity({ authorization: `Bearer ${token}` }))['x-auth-clerk-user-id'], 'user_sig');
  for (const forged of forgedSignatures(token)) {
    assert.equal((await seenIdentity({ authorization: `Bearer ${forged}` }))['x-auth-source'], 'anonymous');
  }
});

test('a remembered Clerk signature vouches for its own token only: another payload under it is refused', async () => {
  const token = clerk.mintSessionToken({ sub: 'user_kept', sid: 'sess_kept' });
  const other = clerk.mintSessionToken({ sub: 'user_other', sid: 'sess_other' });
  for (const t of [token, other]) {
    assert.equal((await seenIdentity({ authorization: `Bearer ${t}` }))['x-auth-source'], 'clerk');
  }
  const [h, , s] = token.split('.');
  const [, p] = other.split('.');
  // The other (valid) token's payload under this one's remembered signature, and this
  // token's payload with a claim changed.
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
  const changed = Buffer.from(JSON.stringify({ ...claims, sub: 'user_other' })).toString('base64url');
  for (const forged of [`${h}.${p}.${s}`, `${h}.${changed}.${s}`]) {
    const seen = await seenIdentity({ authorization: `Bearer ${forged}` });
    assert.equal(seen['x-auth-source'], 'anonymous');
    assert.equal(seen['x-auth-clerk-user-id'], undefined);
  }
});

test('without nodejs_compat, Clerk signatures are checked with WebCrypto: valid ones pass, forged ones do not', async () => {
  const settings = bridgeSettings({ origin, clerk, secret: SECRET });
  const plain = await startWorkers([bridgeWorker(settings, { compatibilityFlags: [] })]);
  try {
    const seen = async (token) => {
      const res = await plain.fetch('/whoami', { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      return (await res.json()).headers;
    };
    const token = clerk.mintSessionToken({ sub: 'user_webcrypto', sid: 'sess_webcrypto' });
    const ok = await seen(token);
    assert.equal(ok['x-auth-source'], 'clerk');
    assert.equal(ok['x-auth-clerk-user-id'], 'user_webcrypto');
    const forged = [...forgedSignatures(token), clerk.mintSessionToken({ sub: 'user_webcrypto', key: 'other' })];
    for (const bad of forged) assert.equal((await seen(bad))['x-auth-source'], 'anonymous');
  } finally {
    await plain.close();
  }
});

test('a Clerk cookie older than __client_uat is not trusted', async () => {
  const now = Math.floor(Date.now() / 1000);
  const token = clerk.mintSessionToken({ sub: 'user_stale', iat: now - 20 });
  const id = await seenIdentity({ cookie: clerkCookies(token, now - 5) });
  assert.equal(id['x-auth-source'], 'anonymous');
  const signedOut = await seenIdentity({ cookie: clerkCookies(token, 0) });
  assert.equal(signedOut['x-auth-source'], 'anonymous');
});

test('an opaque database-session cookie is validated by the origin, briefly cached', async () => {
  const asked = () => origin.received.filter((r) => r.url === '/api/auth/session').length;
  const before = asked();
  const id = await seenIdentity({ cookie: `next-auth.session-token=${DB_SESSION_VALID}; theme=dark` });
  assert.equal(id['x-auth-source'], 'nextauth');
  assert.equal(id['x-auth-user-id'], 'db-user-1');
  assert.equal(id['x-auth-email'], 'db@example.com');
  const sessionCall = origin.received.filter((r) => r.url === '/api/auth/session').at(-1);
  assert.equal(sessionCall.headers.cookie, `next-auth.session-token=${DB_SESSION_VALID}`, 'only that cookie is sent');
  await seenIdentity({ cookie: `next-auth.session-token=${DB_SESSION_VALID}` });
  assert.equal(asked(), before + 1, 'the second request reuses the answer');
  const unknown = await seenIdentity({ cookie: 'authjs.session-token=6ba7b810-9dad-11d1-80b4-00c04fd430c8' });
  assert.equal(unknown['x-auth-source'], 'anonymous');
});

test('a fresh isolate: requests arriving during the first JWKS fetch wait for it, none is signed out', async () => {
  clerk.addFault({ path: '/v1/jwks', sequence: [{ delay: 400 }] });
  const fresh = await startBridge({
    ORIGIN_URL: origin.url,
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
    CLERK_API_URL: clerk.url,
  });
  try {
    const token = clerk.mintSessionToken({ sub: 'user_concurrent', sid: 'sess_concurrent' });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => fresh.fetch('/whoami', { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json())),
    );
    const sources = answers.map((a) => a.headers['x-auth-source']);
    assert.deepEqual(sources, Array(10).fill('clerk'));
  } finally {
    clerk.clearFaults();
    await fresh.close();
  }
});

test('cookies seen again are forwarded alike by the JS entry: same identity, forged headers stripped, a learned external_id and a token ending on time', async () => {
  // Without signed assertions the worker hands a session it has resolved twice to the JS entry
  // (src/fast_path.rs), which forwards further requests with the same cookies on its own.
  const plain = await startBridge(bridgeSettings({ origin, clerk, secret: SECRET }));
  try {
    const seen = async (headers, path = '/whoami?x=1') => {
      const res = await plain.fetch(path, { headers, redirect: 'manual' });
      if (res.status !== 200) return { status: res.status };
      const { url, headers: h } = await res.json();
      return { url, headers: h };
    };
    const v4 = cookieHeader({ 'next-auth.session-token': await nextAuthV4(SECRET, { sub: 'again-user', email: 'again@example.com' }), theme: 'dark' });
    const forged = { 'x-auth-user-id': 'admin', 'X-Auth-Source': 'clerk', 'x-auth-email': 'ceo@example.com' };
    const first = await seen({ cookie: v4 });
    assert.equal(first.headers['x-auth-user-id'], 'again-user');
    for (let i = 0; i < 4; i++) {
      const again = await seen({ cookie: v4, ...(i % 2 ? forged : {}) });
      assert.deepEqual(again, first, `request ${i + 2}`);
    }
    // Another cookie string, a bridge route and a Clerk query parameter are the worker's own.
    assert.equal((await seen({ cookie: `${v4}; x=1` })).headers['x-auth-user-id'], 'again-user');
    const route = await plain.fetch('/__auth-bridge/nope', { headers: { cookie: v4 } });
    assert.equal(route.status, 404);
    await route.arrayBuffer();
    const withQuery = await seen({ cookie: v4 }, '/whoami?__clerk_db_jwt=x');
    assert.equal(withQuery.headers['x-auth-user-id'], 'again-user');

    // A Clerk token that ends in two seconds: forwarded as Clerk until then (and its leeway),
    // never after, however often it was seen.
    const user = await clerkUser('legacy-again', 'again-clerk@example.com');
    const now = Math.floor(Date.now() / 1000);
    const token = clerk.mintSessionToken({ sub: user.id, sid: 'sess_again', iat: now - 1, exp: now + 2 });
    const cookie = clerkCookies(token, now - 30);
    for (let i = 0; i < 4; i++) {
      const id = await seen({ cookie });
      assert.equal(id.headers['x-auth-user-id'], 'legacy-again', `request ${i + 1}`);
      assert.equal(id.headers['x-auth-clerk-user-id'], user.id);
      assert.equal(id.headers['x-auth-session-id'], 'sess_again');
    }
    // A user born in Clerk is forwarded under its Clerk id while no external_id is known. Once
    // the worker learns one for it (here through another of its sessions and the KV mapping),
    // the first session's further requests carry the legacy id, as the worker itself answers.
    const born = await clerkUser(null, 'again-born@example.com');
    const bornFirst = clerkCookies(clerk.mintSessionToken({ sub: born.id, sid: 'sess_born_1' }));
    for (let i = 0; i < 4; i++) assert.equal((await seen({ cookie: bornFirst })).headers['x-auth-user-id'], born.id, `request ${i + 1}`);
    await (await plain.kv()).put(`map:c2l:${born.id}`, 'legacy-born-later');
    const bornSecond = clerkCookies(clerk.mintSessionToken({ sub: born.id, sid: 'sess_born_2' }));
    assert.equal((await seen({ cookie: bornSecond })).headers['x-auth-user-id'], 'legacy-born-later');
    assert.equal((await seen({ cookie: bornFirst })).headers['x-auth-user-id'], 'legacy-born-later');

    const leeway = 5;
    await new Promise((r) => setTimeout(r, (now + 2 + leeway + 1) * 1000 - Date.now()));
    const ended = await seen({ cookie });
    assert.notEqual(ended.headers?.['x-auth-clerk-user-id'], user.id, JSON.stringify(ended));
    assert.notEqual(ended.headers?.['x-auth-user-id'], 'legacy-again', JSON.stringify(ended));
  } finally {
    await plain.close();
  }
});

test('cookies that hold no session are forwarded by the JS entry like no cookies; every session cookie still reaches the worker', async () => {
  // Without signed assertions the worker hands the JS entry its plan, and answers its question
  // about a request's cookies (src/gateway.rs cookiesHoldNoSession): none of them is one it reads.
  const plain = await startBridge(bridgeSettings({ origin, clerk, secret: `${SECRET},${OLD_SECRET}` }));
  try {
    const seen = async (headers, path = '/whoami?x=1') => {
      const res = await plain.fetch(path, { headers, redirect: 'manual' });
      if (res.status !== 200) {
        await res.arrayBuffer();
        return { status: res.status };
      }
      const { headers: h } = await res.json();
      const identity = Object.fromEntries(Object.entries(h).filter(([k]) => k.startsWith('x-auth-')));
      return { identity, cookie: h.cookie };
    };
    await seen({}); // the first request makes the plan
    const forged = { 'x-auth-user-id': 'admin', 'X-Auth-Source': 'clerk', 'x-auth-email': 'ceo@example.com' };
    const suffix = cookieSuffix(clerk.publishableKey);
    const noSession = [
      'theme=dark',
      '_ga=GA1.2.3.4; consent=yes; cart=%7B%22n%22%3A2%7D',
      'next-auth.csrf-token=abc%7Cdef; next-auth.callback-url=http%3A%2F%2Fx%2F',
      'next-auth.session-token=; __session=', // deleted cookies
      '__client_uat=0', // Clerk signed out
      `__client_uat=0; __client_uat_${suffix}=0; theme=dark`, // as ClerkJS leaves a signed-out visitor
      '__clerk_db_jwt=dvb_x; my__sessionish=1',
    ];
    for (const cookie of noSession) {
      for (const extra of [{}, forged]) {
        const got = await seen({ cookie, ...extra });
        assert.deepEqual(got, { identity: { 'x-auth-source': 'anonymous' }, cookie }, cookie);
      }
    }

    // Session cookies of every shape the worker reads, each with unrelated cookies beside it.
    const user = await clerkUser(null, 'no-session-test@example.com');
    const now = Math.floor(Date.now() / 1000);
    const big = await authJsV5(SECRET, { sub: 'legacy-chunks', big: 'x'.repeat(6000) });
    const chunks = Object.fromEntries(big.match(/.{1,3936}/g).map((c, i) => [`authjs.session-token.${i}`, c]));
    const sessions = [
      [{ 'next-auth.session-token': await nextAuthV4(SECRET, { sub: 'legacy-plain' }) }, 'legacy-plain'],
      [{ '__Secure-next-auth.session-token': await nextAuthV4(OLD_SECRET, { sub: 'legacy-secure' }) }, 'legacy-secure'],
      [{ 'authjs.session-token': await authJsV5(SECRET, { sub: 'legacy-v5-plain' }) }, 'legacy-v5-plain'],
      [chunks, 'legacy-chunks'],
      [{ __session: clerk.mintSessionToken({ sub: user.id }), __client_uat: String(now - 30) }, user.id],
      [{ [`__session_${suffix}`]: clerk.mintSessionToken({ sub: user.id }), [`__client_uat_${suffix}`]: String(now - 30) }, user.id],
    ];
    for (const [pairs, expected] of sessions) {
      const cookie = cookieHeader({ theme: 'dark', ...pairs, _ga: 'GA1.2.3.4' });
      for (let i = 0; i < 3; i++) {
        const got = await seen({ cookie, ...forged });
        assert.equal(got.identity?.['x-auth-user-id'], expected, `${Object.keys(pairs)[0]} request ${i + 1}`);
      }
    }
    // Refused or incomplete: still the worker's (anonymous after a check, or a handshake).
    const refused = await seen({ cookie: 'theme=dark; next-auth.session-token=not-a-token', ...forged });
    assert.deepEqual(refused.identity, { 'x-auth-source': 'anonymous' });
    const handshake = await seen({ cookie: `theme=dark; __client_uat=${now - 30}`, accept: 'text/html' });
    assert.equal(handshake.status, 307, 'a signed-in Clerk client without its session token gets a handshake');
    // The same beside a signed-out pair of the other name: still the worker's.
    const beside = await seen({ cookie: `__client_uat=0; __client_uat_${suffix}=${now - 30}`, accept: 'text/html' });
    assert.equal(beside.status, 307, 'one signed-in __client_uat is enough for a handshake');
  } finally {
    await plain.close();
  }
});
