// SPEC.md, read line by line, as a black-box tester who sees only that file: the request flow
// (x-auth-* stripped, Clerk > NextAuth > anonymous, invalid cookies anonymous, Clerk's
// __client_uat and dev-browser rules, Bearer tokens), every identity header as named, the
// assertion's claims (HS256 and ES256 with jwks.json), the three phases, and each configuration
// name honoured. Endpoints, guarantees and cutover: spec-endpoints.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { startBridge, deadPort, ROOT } from './harness.mjs';
import { startOrigin, DB_SESSION_VALID } from './origin.mjs';
import { startClerkServer } from '../clerk-server/server.mjs';
import { cookieSuffix } from '../clerk-server/keys.mjs';
import { startClerk, bridgeSettings } from './stack.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from './tokens.mjs';
import { now, sleep, nextAuthV4At, startExactBridge, through, clerkBrowser, signInToken } from './spec-common.mjs';

const SECRET = 'spec-nextauth-secret-current';
const OLD_SECRET = 'spec-nextauth-secret-previous';
const ADMIN = 'spec-conformance-admin-token-0123456789';
const HS_SECRET = 'spec-assertion-shared-secret';
const FAPI = 'clerk.spec-tests.example.com';
const DEV_FAPI = 'spec-dev-17.clerk.accounts.dev';
const SIGN_IN = 'https://accounts.spec-tests.example.com/sign-in';
const APP_PARTY = 'https://app.spec-tests.example.com';
const ES_KEY = fs.readFileSync(path.join(ROOT, 'tests/fixtures/assertion-es256.pem'), 'utf8');
const ES_KEY_PREVIOUS = fs.readFileSync(path.join(ROOT, 'tests/fixtures/assertion-es256-next.pem'), 'utf8');
const ES_KID = fs.readFileSync(path.join(ROOT, 'tests/fixtures/assertion-es256.kid'), 'utf8').trim();
const NOT_BEFORE = now() - 600; // variant bridge: unix seconds
const NOT_BEFORE_RFC3339 = new Date((now() - 600) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'); // observe bridge

const bridges = {};
let origin, clerk, devClerk, keyClerk;

before(async () => {
  origin = await startOrigin();
  [clerk, devClerk, keyClerk] = await Promise.all([
    startClerk(FAPI, { live: true, rateLimit: false, quiet: true }),
    startClerkServer({ port: 0, frontendApi: DEV_FAPI, rateLimit: false, quiet: true }),
    // The Backend API of this one never serves its JWKS: only CLERK_JWT_KEY can verify its tokens.
    startClerk('clerk.spec-jwtkey.example.com', { live: true, rateLimit: false, quiet: true, faults: { rules: [{ path: '/v1/jwks', actions: [503], probability: 1 }] } }),
  ]);
  const base = (c) => bridgeSettings({ origin, clerk: c, secret: `${SECRET},${OLD_SECRET}` }, { AUTH_BRIDGE_ADMIN_TOKEN: ADMIN });
  const started = await Promise.all([
    startBridge({ ...base(clerk), MIGRATION_PHASE: 'migrate', AUTH_BRIDGE_ASSERTION_SECRET: HS_SECRET, CLERK_RATE_LIMIT: '1000/10s' }),
    startBridge({
      ...base(clerk),
      MIGRATION_PHASE: 'migrate',
      NEXTAUTH_COOKIE_NAME: 'app.session',
      CLERK_AUTHORIZED_PARTIES: `${APP_PARTY},https://other.spec-tests.example.com`,
      CLERK_TREAT_PENDING_AS_SIGNED_OUT: 'false',
      NEXTAUTH_SESSIONS_NOT_BEFORE: String(NOT_BEFORE),
      AUTH_BRIDGE_ASSERTION_SECRET: HS_SECRET,
      AUTH_BRIDGE_ASSERTION_KEY: ES_KEY,
      AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS: ES_KEY_PREVIOUS,
    }),
    startBridge({ ...base(clerk), MIGRATION_PHASE: 'observe', AUTH_BRIDGE_ASSERTION_SECRET: HS_SECRET, NEXTAUTH_SESSIONS_NOT_BEFORE: NOT_BEFORE_RFC3339 }),
    startBridge({ ...base(clerk), MIGRATION_PHASE: 'clerk-only', CLERK_SIGN_IN_URL: SIGN_IN }),
    startBridge({ ...base(devClerk), MIGRATION_PHASE: 'migrate' }),
    // Defaults: no MIGRATION_PHASE, no CLERK_RATE_LIMIT, no ORIGIN_URL (route mode: Miniflare's
    // `upstream` makes the request's own URL the origin's), networkless CLERK_JWT_KEY.
    startExactBridge(
      { NEXTAUTH_SECRET: SECRET, CLERK_SECRET_KEY: keyClerk.secretKey, CLERK_PUBLISHABLE_KEY: keyClerk.publishableKey, CLERK_API_URL: keyClerk.url, CLERK_JWT_KEY: keyClerk.publicKeyPem, AUTH_BRIDGE_ADMIN_TOKEN: ADMIN, AUTH_BRIDGE_ASSERTION_SECRET: HS_SECRET },
      { upstream: origin.url },
    ),
  ]);
  [bridges.main, bridges.variant, bridges.observe, bridges.clerkOnly, bridges.dev, bridges.defaults] = started;
});
after(async () => {
  await Promise.all(Object.values(bridges).map((b) => b.close()));
  await Promise.all([clerk?.close(), devClerk?.close(), keyClerk?.close(), origin?.close()]);
});

const naCookie = async (sub, extra = {}, secret = SECRET) => ({ 'next-auth.session-token': await nextAuthV4(secret, { sub, email: `${sub}@example.com`, ...extra }) });
const id = (b, cookies, headers = {}) => through(b, '/whoami', { ...headers, ...(cookies ? { cookie: cookieHeader(cookies) } : {}) }).then((s) => s.auth);
const admin = (b, route) => b.fetch(`/__auth-bridge/admin${route}`, { headers: { authorization: `Bearer ${ADMIN}` } });
const PAGE = { 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate', accept: 'text/html,application/xhtml+xml' };
const XHR = { 'sec-fetch-dest': 'empty', 'sec-fetch-mode': 'cors', accept: 'application/json' };

// ------------------------------------------------------------------------------------------
// Request flow 1: every inbound x-auth-* header is removed.

test('flow: every inbound x-auth-* header is removed, whatever its case; others are kept', async () => {
  const forged = {
    'x-auth-source': 'clerk',
    'X-Auth-User-Id': 'admin',
    'x-auth-clerk-user-id': 'user_admin',
    'x-auth-email': 'ceo@example.com',
    'x-auth-session-id': 'sess_forged',
    'x-auth-session-status': 'active',
    'x-auth-assertion': 'eyJhbGciOiJub25lIn0.e30.',
    'X-AUTH-ROLE': 'superuser',
    'x-auth-': 'empty-suffix',
    'x-authority': 'not-an-x-auth-header',
  };
  const seen = await through(bridges.main, '/whoami', forged);
  assert.deepEqual(Object.keys(seen.auth).sort(), ['x-auth-assertion', 'x-auth-source']);
  assert.equal(seen.auth['x-auth-source'], 'anonymous');
  assert.notEqual(seen.auth['x-auth-assertion'], forged['x-auth-assertion']);
  assert.equal(seen.headers['x-authority'], 'not-an-x-auth-header');
  // Under a real session the forged values are replaced, not merged.
  const real = await id(bridges.main, await naCookie('legacy-real'), forged);
  assert.equal(real['x-auth-user-id'], 'legacy-real');
  assert.equal(real['x-auth-email'], 'legacy-real@example.com');
  for (const h of ['x-auth-clerk-user-id', 'x-auth-session-id', 'x-auth-session-status', 'x-auth-role', 'x-auth-']) assert.equal(real[h], undefined, h);
  // And a bare worker (no secret, no key at all) strips them too.
  const bare = await through(bridges.defaults, '/whoami', forged);
  assert.equal(bare.auth['x-auth-user-id'], undefined);
  assert.equal(bare.auth['x-auth-role'], undefined);
});

// ------------------------------------------------------------------------------------------
// Request flow 2: precedence, invalid cookies, Clerk's request-state rules, Bearer.

test('flow: Clerk wins over NextAuth, NextAuth over anonymous', async () => {
  const both = await id(bridges.main, { ...clerkBrowser(clerk, { sub: 'user_prec', sid: 'sess_prec' }), ...(await naCookie('legacy-prec')) });
  assert.equal(both['x-auth-source'], 'clerk');
  assert.equal(both['x-auth-clerk-user-id'], 'user_prec');
  const na = await id(bridges.main, await naCookie('legacy-prec'));
  assert.equal(na['x-auth-source'], 'nextauth');
  assert.equal(na['x-auth-user-id'], 'legacy-prec');
  assert.equal((await id(bridges.main, null))['x-auth-source'], 'anonymous');
  // An invalid Clerk session falls through to the valid NextAuth one.
  const badClerk = await id(bridges.main, { __session: clerk.mintSessionToken({ sub: 'user_x', key: 'other' }), __client_uat: String(now() - 30), ...(await naCookie('legacy-fallthrough')) });
  assert.equal(badClerk['x-auth-source'], 'nextauth');
  assert.equal(badClerk['x-auth-user-id'], 'legacy-fallthrough');
});

test('flow: an invalid or expired cookie is anonymous, never an error page (pages and XHR alike)', async () => {
  const expired = await nextAuthV4At(SECRET, { sub: 'legacy-expired' }, now() - 7200, 3600);
  const wrongKey = await nextAuthV4('not-the-apps-secret', { sub: 'intruder' });
  const good = await nextAuthV4(SECRET, { sub: 'legacy-tamper' });
  const tampered = good.slice(0, 40) + (good[40] === 'a' ? 'b' : 'a') + good.slice(41);
  const cases = [
    { 'next-auth.session-token': expired },
    { 'next-auth.session-token': wrongKey },
    { 'next-auth.session-token': tampered },
    { 'next-auth.session-token': '' },
    { 'authjs.session-token': 'a.b.c.d.e' },
    { '__Secure-authjs.session-token': '%%%' },
    { 'authjs.session-token.0': 'half-a-chunk' },
    { 'next-auth.session-token': 'x'.repeat(8000) },
    { __session: 'not.a.jwt', __client_uat: '0' },
    { __session: clerk.mintSessionToken({ sub: 'user_expired', iat: now() - 600, exp: now() - 500, nbf: now() - 610 }), __client_uat: '0' },
  ];
  for (const cookies of cases) {
    for (const headers of [XHR, { accept: '*/*' }]) {
      const res = await bridges.main.fetch('/whoami', { headers: { ...headers, cookie: cookieHeader(cookies) } });
      assert.equal(res.status, 200, JSON.stringify(cookies).slice(0, 80));
      const seen = await res.json();
      assert.equal(seen.headers['x-auth-source'], 'anonymous', JSON.stringify(cookies).slice(0, 80));
      assert.equal(seen.headers['x-auth-user-id'], undefined);
    }
  }
  // A page load with an invalid NextAuth cookie and no Clerk cookie is served, not redirected.
  const page = await bridges.main.fetch('/whoami', { headers: { ...PAGE, cookie: cookieHeader({ 'next-auth.session-token': tampered }) } });
  assert.equal(page.status, 200);
});

test('flow: __session counts only beside __client_uat > 0 with iat >= __client_uat', async () => {
  const t = now();
  const token = clerk.mintSessionToken({ sub: 'user_uat', iat: t - 5 });
  const clerkId = (cookies) => id(bridges.main, cookies, XHR).then((a) => a['x-auth-clerk-user-id']);
  assert.equal(await clerkId({ __session: token, __client_uat: String(t - 60) }), 'user_uat', 'iat after client_uat');
  assert.equal(await clerkId({ __session: token, __client_uat: String(t - 5) }), 'user_uat', 'iat equal to client_uat');
  assert.equal(await clerkId({ __session: token, __client_uat: String(t - 4) }), undefined, 'iat before client_uat');
  assert.equal(await clerkId({ __session: token, __client_uat: '0' }), undefined, 'client_uat 0 = signed out');
  assert.equal(await clerkId({ __session: token }), undefined, 'no client_uat');
  // Signed out of Clerk, a valid NextAuth session still identifies the request.
  const withNa = await id(bridges.main, { __session: token, __client_uat: '0', ...(await naCookie('legacy-uat')) }, XHR);
  assert.equal(withNa['x-auth-source'], 'nextauth');
  assert.equal(withNa['x-auth-user-id'], 'legacy-uat');
});

test('flow: a page load failing those rules gets Clerk\'s handshake redirect; any other request is signed out', async () => {
  const t = now();
  const stale = clerk.mintSessionToken({ sub: 'user_hs', iat: t - 20 });
  const cookies = cookieHeader({ __session: stale, __client_uat: String(t - 5) });
  const page = await bridges.main.fetch('/dashboard', { headers: { ...PAGE, cookie: cookies } });
  assert.equal(page.status, 307);
  const loc = new URL(page.headers.get('location'));
  assert.equal(loc.origin, `https://${FAPI}`, 'to the Frontend API host of CLERK_PUBLISHABLE_KEY');
  assert.equal(loc.searchParams.get('redirect_url'), `${bridges.main.url}/dashboard`);
  const before = origin.received.length;
  const xhr = await bridges.main.fetch('/api/data', { headers: { ...XHR, cookie: cookies } });
  assert.equal(xhr.status, 200);
  assert.equal((await xhr.json()).headers['x-auth-source'], 'anonymous');
  const post = await bridges.main.fetch('/form', { method: 'POST', headers: { ...PAGE, cookie: cookies }, body: 'a=1' });
  assert.equal(post.status, 200, 'a POST is never redirected away');
  assert.equal(origin.received.length, before + 2);
});

test('flow: a development instance (pk_test_) also needs the dev-browser cookie __clerk_db_jwt', async () => {
  const cookies = clerkBrowser(devClerk, { sub: 'user_dev', sid: 'sess_dev' });
  const without = await id(bridges.dev, cookies, XHR);
  assert.equal(without['x-auth-source'], 'anonymous');
  const withDb = await id(bridges.dev, { ...cookies, __clerk_db_jwt: 'dvb_2abcDEFghiJKLmnoPQRstuVWXyz' }, XHR);
  assert.equal(withDb['x-auth-source'], 'clerk');
  assert.equal(withDb['x-auth-clerk-user-id'], 'user_dev');
  // A page load without it goes through Clerk's handshake (to the dev Frontend API).
  const page = await bridges.dev.fetch('/', { headers: { ...PAGE, cookie: cookieHeader(cookies) } });
  assert.equal(page.status, 307);
  assert.equal(new URL(page.headers.get('location')).host, DEV_FAPI);
});

test('flow: Authorization: Bearer tokens skip the cookie rules', async () => {
  const t = now();
  const bearer = clerk.mintSessionToken({ sub: 'user_bearer', sid: 'sess_bearer', iat: t - 20 });
  // Signed-out and stale cookie state beside it does not matter.
  for (const cookie of [undefined, '__client_uat=0', `__client_uat=${t}`]) {
    const a = await id(bridges.main, null, { authorization: `Bearer ${bearer}`, ...(cookie ? { cookie } : {}), ...PAGE });
    assert.equal(a['x-auth-source'], 'clerk', String(cookie));
    assert.equal(a['x-auth-clerk-user-id'], 'user_bearer');
    assert.equal(a['x-auth-session-id'], 'sess_bearer');
  }
  // No dev-browser cookie needed on a development instance either.
  const dev = await id(bridges.dev, null, { authorization: `Bearer ${devClerk.mintSessionToken({ sub: 'user_dev_bearer' })}` });
  assert.equal(dev['x-auth-clerk-user-id'], 'user_dev_bearer');
  // An invalid Bearer token is anonymous, not an error.
  assert.equal((await id(bridges.main, null, { authorization: 'Bearer not-a-token' }))['x-auth-source'], 'anonymous');
  // Beside a valid NextAuth cookie, an Authorization header that is no Clerk session (an app's own
  // API token) leaves the NextAuth identity in place: otherwise a valid NextAuth session.
  for (const authorization of ['Bearer not-a-token', 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln', 'Basic dXNlcjpwYXNz']) {
    const a = await id(bridges.main, await naCookie('legacy-own-api'), { authorization });
    assert.equal(a['x-auth-source'], 'nextauth', authorization);
    assert.equal(a['x-auth-user-id'], 'legacy-own-api');
  }
});

// ------------------------------------------------------------------------------------------
// Request flow 3: /__auth-bridge/ answered by the worker, the rest streamed back unchanged.

test('flow: /__auth-bridge/ is the worker\'s; other responses come back unchanged', async () => {
  const before = origin.received.length;
  const own = await bridges.main.fetch('/__auth-bridge/no-such-route');
  assert.notEqual(own.headers.get('x-origin'), 'yes');
  await own.arrayBuffer();
  assert.equal(origin.received.length, before, 'never forwarded');
  const cookies = await bridges.main.fetch('/cookies');
  assert.deepEqual(cookies.headers.getSetCookie(), ['a=1; Path=/; HttpOnly', 'b=2; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'c=3; Path=/; SameSite=Lax; Secure']);
  const redirect = await bridges.main.fetch('/redirect');
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.get('location'), '/elsewhere');
  for (const code of [201, 404, 418, 500, 503]) {
    const res = await bridges.main.fetch(`/status?code=${code}`);
    assert.equal(res.status, code);
    assert.equal(await res.text(), `status ${code}`);
  }
  const big = await bridges.main.fetch('/big');
  assert.equal((await big.arrayBuffer()).byteLength, 5 * 1024 * 1024);
  // The method, path, query and body reach the origin as sent.
  const res = await bridges.main.fetch('/echo/p%20q?x=1&y=%2F', { method: 'PUT', body: 'payload', headers: { 'content-type': 'text/plain' } });
  const echo = await res.json();
  assert.equal(echo.method, 'PUT');
  assert.equal(echo.url, '/echo/p%20q?x=1&y=%2F');
  assert.equal(echo.body, 'payload');
});

// ------------------------------------------------------------------------------------------
// Identity headers, each as named.

test('headers: a NextAuth session (v4 and v5 cookies)', async () => {
  const v4 = await id(bridges.main, await naCookie('legacy-h4', { name: 'Ada' }));
  assert.equal(v4['x-auth-source'], 'nextauth');
  assert.equal(v4['x-auth-user-id'], 'legacy-h4');
  assert.equal(v4['x-auth-email'], 'legacy-h4@example.com');
  for (const h of ['x-auth-clerk-user-id', 'x-auth-session-id', 'x-auth-session-status']) assert.equal(v4[h], undefined, h);
  const v5 = await id(bridges.main, { 'authjs.session-token': await authJsV5(SECRET, { sub: 'legacy-h5', email: 'h5@example.com' }) });
  assert.equal(v5['x-auth-source'], 'nextauth');
  assert.equal(v5['x-auth-user-id'], 'legacy-h5');
  assert.equal(v5['x-auth-email'], 'h5@example.com');
  // The __Secure- names, and a v5 cookie signed with the second of the comma-separated secrets.
  const secure = await id(bridges.main, { '__Secure-authjs.session-token': await authJsV5(OLD_SECRET, { sub: 'legacy-h5s' }, '__Secure-authjs.session-token') });
  assert.equal(secure['x-auth-user-id'], 'legacy-h5s');
  const secureV4 = await id(bridges.main, { '__Secure-next-auth.session-token': await nextAuthV4(OLD_SECRET, { sub: 'legacy-h4s' }) });
  assert.equal(secureV4['x-auth-user-id'], 'legacy-h4s');
});

test('headers: a Clerk user born in Clerk is forwarded under its Clerk id, with sid and sts', async () => {
  const user = clerk.createUser({ email_address: ['born@spec-tests.example.com'], skip_password_requirement: true });
  const a = await id(bridges.main, clerkBrowser(clerk, { sub: user.id, sid: 'sess_born' }));
  assert.equal(a['x-auth-source'], 'clerk');
  assert.equal(a['x-auth-user-id'], user.id);
  assert.equal(a['x-auth-clerk-user-id'], user.id);
  assert.equal(a['x-auth-session-id'], 'sess_born');
  assert.equal(a['x-auth-session-status'], 'active');
  // An explicit `sts: active` is the same.
  const sts = await id(bridges.main, clerkBrowser(clerk, { sub: user.id, sid: 'sess_sts', claims: { sts: 'active' } }));
  assert.equal(sts['x-auth-session-status'], 'active');
});

test('headers: a migrated Clerk user (external_id = legacy id) is forwarded under the legacy id', async () => {
  const user = clerk.createUser({ external_id: 'legacy-migrated-7', email_address: ['migrated7@spec-tests.example.com'], skip_password_requirement: true });
  const a = await id(bridges.main, clerkBrowser(clerk, { sub: user.id, sid: 'sess_mig' }));
  assert.equal(a['x-auth-source'], 'clerk');
  assert.equal(a['x-auth-user-id'], 'legacy-migrated-7');
  assert.equal(a['x-auth-clerk-user-id'], user.id);
  assert.equal(a['x-auth-session-id'], 'sess_mig');
});

test('headers: pending sessions are signed out by default; forwarded as pending when CLERK_TREAT_PENDING_AS_SIGNED_OUT=false', async () => {
  const pending = (c) => clerkBrowser(c, { sub: 'user_pending', sid: 'sess_pending', azp: APP_PARTY, claims: { sts: 'pending' } });
  const dflt = await id(bridges.main, { ...pending(clerk), ...(await naCookie('legacy-pending')) }, XHR);
  assert.notEqual(dflt['x-auth-source'], 'clerk');
  assert.equal(dflt['x-auth-clerk-user-id'], undefined);
  assert.equal(dflt['x-auth-session-status'], undefined);
  const fwd = await id(bridges.variant, pending(clerk), XHR);
  assert.equal(fwd['x-auth-source'], 'clerk');
  assert.equal(fwd['x-auth-clerk-user-id'], 'user_pending');
  assert.equal(fwd['x-auth-session-status'], 'pending');
  const active = await id(bridges.variant, clerkBrowser(clerk, { sub: 'user_pending', azp: APP_PARTY }), XHR);
  assert.equal(active['x-auth-session-status'], 'active');
});

test('headers: chunked NextAuth cookies (<name>.0, .1, … joined in numeric order) and database sessions', async () => {
  const big = { sub: 'legacy-chunked', email: 'chunked@example.com', permissions: Array.from({ length: 300 }, (_, i) => `perm:${i}:read-write`) };
  const v4 = await nextAuthV4(SECRET, big);
  const v4Chunks = v4.match(/.{1,3933}/g);
  assert.ok(v4Chunks.length >= 3);
  const v4Cookies = Object.fromEntries(v4Chunks.map((c, i) => [`next-auth.session-token.${i}`, c]).reverse());
  assert.equal((await id(bridges.main, v4Cookies))['x-auth-user-id'], 'legacy-chunked');
  const v5 = await authJsV5(SECRET, big);
  const v5Chunks = v5.match(/.{1,3936}/g);
  const v5Cookies = Object.fromEntries([v5Chunks[1], v5Chunks[0], ...v5Chunks.slice(2)].map((c) => [`authjs.session-token.${v5Chunks.indexOf(c)}`, c]));
  assert.equal((await id(bridges.main, v5Cookies))['x-auth-user-id'], 'legacy-chunked');
  // A value that is not five dot-separated parts is a database session: the origin decides.
  const db = await id(bridges.main, { 'next-auth.session-token': DB_SESSION_VALID });
  assert.equal(db['x-auth-source'], 'nextauth');
  assert.equal(db['x-auth-user-id'], 'db-user-1');
});

test('headers: clock tolerance — NextAuth 15 s, Clerk 5 s', async () => {
  const t = now();
  const justExpired = await nextAuthV4At(SECRET, { sub: 'legacy-tolerated' }, t - 3600, 3600 - 5);
  assert.equal((await id(bridges.main, { 'next-auth.session-token': justExpired }))['x-auth-user-id'], 'legacy-tolerated');
  const longExpired = await nextAuthV4At(SECRET, { sub: 'legacy-too-old' }, t - 3600, 3600 - 60);
  assert.equal((await id(bridges.main, { 'next-auth.session-token': longExpired }))['x-auth-source'], 'anonymous');
  const bearer = (o) => id(bridges.main, null, { authorization: `Bearer ${clerk.mintSessionToken({ sub: 'user_skew', ...o })}` });
  assert.equal((await bearer({ iat: t - 61, nbf: t - 61, exp: t - 1 }))['x-auth-source'], 'clerk', 'expired 1 s ago: within the skew');
  assert.equal((await bearer({ iat: t - 90, nbf: t - 90, exp: t - 30 }))['x-auth-source'], 'anonymous', 'expired 30 s ago');
  assert.equal((await bearer({ iat: t, nbf: t + 2, exp: t + 60 }))['x-auth-source'], 'clerk', 'nbf 2 s ahead: within the skew');
  assert.equal((await bearer({ iat: t, nbf: t + 40, exp: t + 60 }))['x-auth-source'], 'anonymous', 'nbf 40 s ahead');
});

// ------------------------------------------------------------------------------------------
// x-auth-assertion.

const audience = () => new URL(origin.url).host;

test('assertion (HS256): iat, exp <= 60 s, aud = origin host, sub = x-auth-user-id, legacy/clerk ids, source, phase', async () => {
  const key = new TextEncoder().encode(HS_SECRET);
  const verify = async (a) => {
    const { payload, protectedHeader } = await jwtVerify(a['x-auth-assertion'], key, { algorithms: ['HS256'], audience: audience() });
    assert.equal(protectedHeader.alg, 'HS256');
    assert.equal(typeof payload.iat, 'number');
    assert.ok(payload.exp > now() && payload.exp - payload.iat <= 60, `iat ${payload.iat} exp ${payload.exp}`);
    assert.equal(payload.sub, a['x-auth-user-id']);
    assert.equal(payload.source, a['x-auth-source']);
    return payload;
  };
  const na = await verify(await id(bridges.main, await naCookie('legacy-as')));
  assert.equal(na.legacy_user_id, 'legacy-as');
  assert.equal(na.clerk_user_id, undefined);
  assert.equal(na.phase, 'migrate');

  const born = clerk.createUser({ email_address: ['born-as@spec-tests.example.com'], skip_password_requirement: true });
  const ck = await verify(await id(bridges.main, clerkBrowser(clerk, { sub: born.id })));
  assert.equal(ck.clerk_user_id, born.id);
  assert.equal(ck.legacy_user_id, undefined, 'a user born in Clerk has no legacy id');

  const migrated = clerk.createUser({ external_id: 'legacy-as-mig', email_address: ['as-mig@spec-tests.example.com'], skip_password_requirement: true });
  const mg = await verify(await id(bridges.main, clerkBrowser(clerk, { sub: migrated.id })));
  assert.equal(mg.sub, 'legacy-as-mig');
  assert.equal(mg.clerk_user_id, migrated.id);
  assert.equal(mg.legacy_user_id, 'legacy-as-mig');

  const anon = await verify(await id(bridges.main, null));
  assert.equal(anon.source, 'anonymous');
  assert.equal(anon.sub, undefined);

  const obs = await verify(await id(bridges.observe, await naCookie('legacy-as-obs')));
  assert.equal(obs.phase, 'observe');

  // Without a secret or a key there is no assertion at all.
  const none = await through(bridges.dev, '/whoami', { authorization: `Bearer ${devClerk.mintSessionToken({ sub: 'user_noassert' })}` });
  assert.equal(none.auth['x-auth-source'], 'clerk');
  assert.equal(none.auth['x-auth-assertion'], undefined);

  // Another audience or secret fails.
  const token = (await id(bridges.main, null))['x-auth-assertion'];
  await assert.rejects(jwtVerify(token, key, { audience: 'evil.example.com' }));
  await assert.rejects(jwtVerify(token, new TextEncoder().encode('wrong'), { audience: audience() }));
});

test('assertion (ES256): the key wins over the secret; kid in the header; jwks.json verifies it', async () => {
  const b = bridges.variant;
  const res = await b.fetch('/__auth-bridge/jwks.json');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
  const { keys } = await res.json();
  assert.equal(keys.length, 2, 'current and previous');
  for (const k of keys) {
    assert.equal(k.kty, 'EC');
    assert.equal(k.crv, 'P-256');
    assert.equal(k.d, undefined, 'public keys only');
    assert.equal(typeof k.kid, 'string');
  }
  assert.ok(keys.some((k) => k.kid === ES_KID));
  const JWKS = createRemoteJWKSet(new URL(`${b.url}/__auth-bridge/jwks.json`));
  const a = await id(b, { 'app.session': await nextAuthV4(SECRET, { sub: 'legacy-es', email: 'es@example.com' }) });
  assert.equal(a['x-auth-user-id'], 'legacy-es');
  const { payload, protectedHeader } = await jwtVerify(a['x-auth-assertion'], JWKS, { algorithms: ['ES256'], audience: audience() });
  assert.equal(protectedHeader.alg, 'ES256');
  assert.equal(protectedHeader.kid, ES_KID);
  assert.equal(payload.sub, 'legacy-es');
  assert.equal(payload.legacy_user_id, 'legacy-es');
  assert.equal(payload.source, 'nextauth');
  assert.equal(payload.phase, 'migrate');
  assert.ok(payload.exp - payload.iat <= 60);
  // An HS256 verification with the (also configured) secret must fail: it is not an HS256 token.
  await assert.rejects(jwtVerify(a['x-auth-assertion'], new TextEncoder().encode(HS_SECRET), { algorithms: ['HS256'] }));
});

// ------------------------------------------------------------------------------------------
// Phases.

test('phase observe: identity from Clerk, else NextAuth; no Clerk writes (sign-in-token 409)', async () => {
  const b = bridges.observe;
  assert.equal((await id(b, await naCookie('legacy-obs')))['x-auth-user-id'], 'legacy-obs');
  assert.equal((await id(b, clerkBrowser(clerk, { sub: 'user_obs' })))['x-auth-clerk-user-id'], 'user_obs');
  const since = clerk.requestLog().at(-1)?.seq ?? 0;
  const res = await signInToken(b, await naCookie('legacy-obs-2'));
  assert.equal(res.status, 409);
  assert.deepEqual(clerk.requestLog({ since }).filter((e) => e.method !== 'GET'), [], 'no Clerk write');
  const st = await (await admin(b, '/status')).json();
  assert.equal(st.phase, 'observe');
});

test('phase clerk-only: Clerk only; NextAuth sign-in routes redirect to CLERK_SIGN_IN_URL; no Clerk writes', async () => {
  const b = bridges.clerkOnly;
  const na = await naCookie('legacy-gone');
  assert.equal((await id(b, na))['x-auth-source'], 'anonymous');
  const both = await id(b, { ...na, ...clerkBrowser(clerk, { sub: 'user_co' }) });
  assert.equal(both['x-auth-source'], 'clerk');
  assert.equal(both['x-auth-clerk-user-id'], 'user_co');
  const redirect = await b.fetch('/api/auth/signin');
  assert.ok([302, 303, 307].includes(redirect.status), `status ${redirect.status}`);
  const loc = new URL(redirect.headers.get('location'));
  assert.equal(`${loc.origin}${loc.pathname}`, SIGN_IN);
  const provider = await b.fetch('/api/auth/signin/github');
  assert.equal(`${new URL(provider.headers.get('location')).origin}${new URL(provider.headers.get('location')).pathname}`, SIGN_IN);
  const since = clerk.requestLog().at(-1)?.seq ?? 0;
  assert.equal((await signInToken(b, na)).status, 409);
  assert.deepEqual(clerk.requestLog({ since }).filter((e) => e.method !== 'GET'), []);
  assert.equal((await (await admin(b, '/status')).json()).phase, 'clerk-only');
});

test('cutover: revoke acts in observe too; clerk-only on a worker that is not ready says so under problems', async () => {
  const cookies = { 'next-auth.session-token': await nextAuthV4At(SECRET, { sub: 'legacy-obs-revoked' }, now() - 5) };
  assert.equal((await id(bridges.observe, cookies))['x-auth-user-id'], 'legacy-obs-revoked');
  const res = await bridges.observe.fetch('/__auth-bridge/admin/revoke', {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: 'legacy-obs-revoked' }),
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).user_id, 'legacy-obs-revoked');
  assert.equal((await id(bridges.observe, cookies))['x-auth-source'], 'anonymous');

  // A record still waiting for the batch: not ready.
  const up = await bridges.clerkOnly.fetch('/__auth-bridge/admin/imports', { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: '{"id":"legacy-waiting","email":"waiting@example.com"}\n' });
  assert.equal(up.status, 202);
  await up.arrayBuffer();
  const readiness = await (await admin(bridges.clerkOnly, '/readiness')).json();
  assert.equal(readiness.ready, false, JSON.stringify(readiness));
  const { problems } = await (await admin(bridges.clerkOnly, '/status')).json();
  assert.ok(problems.some((p) => /clerk-only/.test(p) && /read/i.test(p)), JSON.stringify(problems));
  // And it still works as configured.
  assert.equal((await id(bridges.clerkOnly, clerkBrowser(clerk, { sub: 'user_notready' })))['x-auth-source'], 'clerk');
});

test('bindings: wrangler.toml declares AUTH_BRIDGE_KV, IMPORT_QUEUE → auth-bridge-import (+ dlq) and the cron', () => {
  const tables = [];
  let current = { name: '', entries: {} };
  tables.push(current);
  for (const raw of fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8').split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').replace(/^#.*$/, '').trim();
    if (!line) continue;
    const header = /^\[\[?\s*([^\]]+?)\s*\]\]?$/.exec(line);
    if (header) {
      current = { name: header[1], entries: {} };
      tables.push(current);
      continue;
    }
    const kv = /^([A-Za-z0-9_]+)\s*=\s*(.+)$/.exec(line);
    if (kv) current.entries[kv[1]] = JSON.parse(kv[2]);
  }
  const find = (name, pred) => tables.some((t) => t.name === name && pred(t.entries));
  assert.ok(find('kv_namespaces', (e) => e.binding === 'AUTH_BRIDGE_KV'));
  assert.ok(find('queues.producers', (e) => e.binding === 'IMPORT_QUEUE' && e.queue === 'auth-bridge-import'));
  assert.ok(find('queues.consumers', (e) => e.queue === 'auth-bridge-import' && e.dead_letter_queue === 'auth-bridge-import-dlq'));
  assert.ok(find('triggers', (e) => Array.isArray(e.crons) && e.crons.includes('* * * * *')));
  const vars = tables.find((t) => t.name === 'vars')?.entries ?? {};
  if (vars.MIGRATION_PHASE !== undefined) assert.ok(['observe', 'migrate', 'clerk-only'].includes(vars.MIGRATION_PHASE));
});

test('phases observe and clerk-only: an import and a cron tick write nothing to Clerk', async () => {
  const since = clerk.requestLog().at(-1)?.seq ?? 0;
  const record = (id) => JSON.stringify({ id, email: `${id}@example.com`, email_verified: true });
  for (const [b, id] of [[bridges.observe, 'legacy-dry-obs'], [bridges.clerkOnly, 'legacy-dry-co']]) {
    const res = await b.fetch('/__auth-bridge/admin/imports', { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: `${record(id)}\n` });
    assert.equal(res.status, 202, id);
    await res.arrayBuffer();
    await b.scheduled(Date.now() + 60_000);
  }
  // Give the queue consumer time to run (it would write within a second or two).
  await sleep(3000);
  assert.deepEqual(clerk.requestLog({ since }).filter((e) => e.method !== 'GET').map((e) => `${e.method} ${e.path}`), []);
  assert.equal(clerk.users().users.filter((u) => ['legacy-dry-obs', 'legacy-dry-co'].includes(u.external_id)).length, 0);
});

test('phase migrate is the default; CLERK_RATE_LIMIT defaults to 100/10s and is reported', async () => {
  const st = await (await admin(bridges.defaults, '/status')).json();
  assert.equal(st.phase, 'migrate');
  assert.ok('rate' in st, JSON.stringify(Object.keys(st)));
  assert.match(JSON.stringify(st.rate), /100\b/);
  assert.doesNotMatch(JSON.stringify(st.rate), /1000/);
  const configured = await (await admin(bridges.main, '/status')).json();
  assert.match(JSON.stringify(configured.rate), /1000/);
  // migrate mints tokens (sign-in-token is not 409 there).
  const res = await signInToken(bridges.defaults, await naCookie('legacy-default-phase'));
  assert.notEqual(res.status, 409);
});

// ------------------------------------------------------------------------------------------
// Configuration names.

test('config: ORIGIN_URL unset = route mode (the request\'s own URL); aud is that host', async () => {
  const seen = await through(bridges.defaults, '/route-mode?q=1', { cookie: cookieHeader(await naCookie('legacy-route')) });
  assert.equal(seen.url, '/route-mode?q=1');
  assert.equal(seen.auth['x-auth-user-id'], 'legacy-route');
  // The host as the origin's Host header carries it (port included), as with ORIGIN_URL.
  assert.equal(seen.headers.host, new URL(origin.url).host);
  const { payload } = await jwtVerify(seen.auth['x-auth-assertion'], new TextEncoder().encode(HS_SECRET), { audience: seen.headers.host });
  assert.equal(payload.sub, 'legacy-route');
});

test('config: NEXTAUTH_COOKIE_NAME overrides the cookie name (v4 and v5 tokens under it)', async () => {
  const v4 = await id(bridges.variant, { 'app.session': await nextAuthV4(SECRET, { sub: 'legacy-custom4' }) });
  assert.equal(v4['x-auth-user-id'], 'legacy-custom4');
  const v5 = await id(bridges.variant, { 'app.session': await authJsV5(SECRET, { sub: 'legacy-custom5' }, 'app.session') });
  assert.equal(v5['x-auth-user-id'], 'legacy-custom5');
  const dflt = await id(bridges.variant, await naCookie('legacy-default-name'));
  assert.equal(dflt['x-auth-source'], 'anonymous', 'the default name is no longer read');
});

test('config: CLERK_AUTHORIZED_PARTIES checks azp', async () => {
  const ok = await id(bridges.variant, clerkBrowser(clerk, { sub: 'user_azp', azp: APP_PARTY }), XHR);
  assert.equal(ok['x-auth-clerk-user-id'], 'user_azp');
  const other = await id(bridges.variant, clerkBrowser(clerk, { sub: 'user_azp', azp: 'https://evil.example.com' }), XHR);
  assert.equal(other['x-auth-source'], 'anonymous');
  // Without the setting, azp is not checked.
  const any = await id(bridges.main, clerkBrowser(clerk, { sub: 'user_azp', azp: 'https://evil.example.com' }), XHR);
  assert.equal(any['x-auth-clerk-user-id'], 'user_azp');
});

test('config: CLERK_PUBLISHABLE_KEY gives iss and the cookie suffix (__session_<suffix>)', async () => {
  const wrongIss = await id(bridges.main, clerkBrowser(clerk, { sub: 'user_iss', iss: 'https://clerk.other.example.com' }), XHR);
  assert.equal(wrongIss['x-auth-source'], 'anonymous');
  const suffix = cookieSuffix(clerk.publishableKey);
  const t = now();
  const suffixed = { [`__session_${suffix}`]: clerk.mintSessionToken({ sub: 'user_suffixed', iat: t - 1 }), [`__client_uat_${suffix}`]: String(t - 30) };
  const a = await id(bridges.main, suffixed, XHR);
  assert.equal(a['x-auth-source'], 'clerk');
  assert.equal(a['x-auth-clerk-user-id'], 'user_suffixed');
});

test('config: CLERK_JWT_KEY verifies without the JWKS', async () => {
  const a = await id(bridges.defaults, clerkBrowser(keyClerk, { sub: 'user_pem', sid: 'sess_pem' }), XHR);
  assert.equal(a['x-auth-source'], 'clerk');
  assert.equal(a['x-auth-clerk-user-id'], 'user_pem');
  assert.equal(a['x-auth-session-id'], 'sess_pem');
  assert.ok(keyClerk.requestLog().filter((e) => e.path === '/v1/jwks' && e.status === 200).length === 0, 'no JWKS was served');
});

test('config: NEXTAUTH_SESSIONS_NOT_BEFORE (unix seconds, RFC 3339) makes earlier sessions anonymous', async () => {
  for (const b of [bridges.variant, bridges.observe]) {
    const cookie = b === bridges.variant ? 'app.session' : 'next-auth.session-token';
    const early = await id(b, { [cookie]: await nextAuthV4At(SECRET, { sub: 'legacy-early' }, NOT_BEFORE - 60) });
    assert.equal(early['x-auth-source'], 'anonymous');
    const later = await id(b, { [cookie]: await nextAuthV4At(SECRET, { sub: 'legacy-later' }, NOT_BEFORE + 60) });
    assert.equal(later['x-auth-user-id'], 'legacy-later');
    // Only an *earlier* iat is cut off: one issued at that very second is not.
    const same = await id(b, { [cookie]: await nextAuthV4At(SECRET, { sub: 'legacy-same-second' }, NOT_BEFORE) });
    assert.equal(same['x-auth-user-id'], 'legacy-same-second');
    const justBefore = await id(b, { [cookie]: await nextAuthV4At(SECRET, { sub: 'legacy-second-before' }, NOT_BEFORE - 1) });
    assert.equal(justBefore['x-auth-source'], 'anonymous');
  }
  // Clerk sessions are not affected.
  assert.equal((await id(bridges.variant, clerkBrowser(clerk, { sub: 'user_nb', azp: APP_PARTY }), XHR))['x-auth-source'], 'clerk');
  // A revoked-by-date session gets no sign-in token.
  const early = { 'app.session': await nextAuthV4At(SECRET, { sub: 'legacy-early-2' }, NOT_BEFORE - 60) };
  assert.equal((await signInToken(bridges.variant, early)).status, 401);
});

test('config: misconfiguration is reported in admin/status, never a 500 for ordinary traffic', async () => {
  const port = await deadPort();
  const broken = await startBridge({
    ORIGIN_URL: origin.url,
    MIGRATION_PHASE: 'migrate',
    NEXTAUTH_SECRET: SECRET,
    CLERK_PUBLISHABLE_KEY: 'pk_live_%%%',
    CLERK_JWT_KEY: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----',
    CLERK_API_URL: `http://127.0.0.1:${port}`,
    CLERK_RATE_LIMIT: 'fast',
    CLERK_TREAT_PENDING_AS_SIGNED_OUT: 'perhaps',
    CLERK_SIGN_IN_URL: 'not a url',
    NEXTAUTH_SESSIONS_NOT_BEFORE: 'yesterday',
    AUTH_BRIDGE_ASSERTION_KEY: '-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----',
    AUTH_BRIDGE_ADMIN_TOKEN: ADMIN,
  });
  try {
    for (const [p, headers] of [
      ['/', PAGE],
      ['/api/x', XHR],
      ['/cookie', { cookie: cookieHeader({ ...clerkBrowser(clerk, { sub: 'user_b' }), ...(await naCookie('legacy-broken')) }) }],
    ]) {
      const res = await broken.fetch(p, { headers });
      assert.equal(res.status, 200, p);
      await res.arrayBuffer();
    }
    const na = await id(broken, await naCookie('legacy-broken'));
    assert.equal(na['x-auth-user-id'], 'legacy-broken', 'NextAuth identity still works');
    // A missing CLERK_SECRET_KEY: sign-in-token says so (not a 500).
    const sit = await signInToken(broken, await naCookie('legacy-broken'));
    assert.ok(sit.status < 500 || sit.status === 503, `sign-in-token ${sit.status}`);
    const st = await admin(broken, '/status');
    assert.equal(st.status, 200);
    const text = await st.text();
    const { problems } = JSON.parse(text);
    for (const name of ['CLERK_SECRET_KEY', 'CLERK_PUBLISHABLE_KEY', 'CLERK_JWT_KEY', 'CLERK_RATE_LIMIT', 'CLERK_TREAT_PENDING_AS_SIGNED_OUT', 'CLERK_SIGN_IN_URL', 'NEXTAUTH_SESSIONS_NOT_BEFORE', 'AUTH_BRIDGE_ASSERTION_KEY']) {
      assert.ok(JSON.stringify(problems).includes(name), `${name} not reported in ${JSON.stringify(problems)}`);
    }
    assert.ok(!text.includes('bm9wZQ=='), 'no key material echoed');
  } finally {
    await broken.close();
  }
});

test('config: without the KV and Queue bindings, ordinary traffic still reaches the origin; nothing answers 500', async () => {
  const bare = await startExactBridge(
    { ORIGIN_URL: origin.url, MIGRATION_PHASE: 'migrate', NEXTAUTH_SECRET: SECRET, CLERK_SECRET_KEY: clerk.secretKey, CLERK_PUBLISHABLE_KEY: clerk.publishableKey, CLERK_API_URL: clerk.url, AUTH_BRIDGE_ADMIN_TOKEN: ADMIN },
    {},
    { withoutBindings: true },
  );
  try {
    const na = await naCookie('legacy-nokv');
    assert.equal((await id(bare, na))['x-auth-user-id'], 'legacy-nokv');
    assert.equal((await id(bare, clerkBrowser(clerk, { sub: 'user_nokv' }), XHR))['x-auth-source'], 'clerk');
    const sit = await signInToken(bare, na);
    assert.ok(sit.status !== 500 && sit.status >= 400, `sign-in-token ${sit.status}`);
    await sit.arrayBuffer();
    for (const [method, route] of [['GET', '/status'], ['POST', '/imports'], ['GET', '/readiness'], ['GET', '/failures']]) {
      const res = await bare.fetch(`/__auth-bridge/admin${route}`, { method, headers: { authorization: `Bearer ${ADMIN}` }, body: method === 'POST' ? '{"id":"a","email":"a@example.com"}\n' : undefined });
      assert.notEqual(res.status, 500, route);
      const text = await res.text();
      assert.match(text, /AUTH_BRIDGE_KV/, `${route} names the missing binding`);
    }
    await bare.scheduled(Date.now());
  } finally {
    await bare.close();
  }
});
