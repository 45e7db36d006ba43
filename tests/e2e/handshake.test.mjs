// Clerk's handshake at the edge under real workerd: the redirect out to the Frontend API (with
// Clerk's parameters and loop guard), and the way back (nonce resolved through the Backend API,
// or a signed handshake token) with the local Clerk server standing in for both APIs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBridge } from './harness.mjs';
import { startOrigin } from './origin.mjs';
import { startClerkServer } from '../clerk-server/server.mjs';
import { startClerk, bridgeSettings } from './stack.mjs';
import { nextAuthV4, cookieHeader } from './tokens.mjs';

const LIVE_FAPI = 'clerk.handshake-tests.example.com';
const DEV_FAPI = 'handshake-dev-42.clerk.accounts.dev';
const SECRET = 'nextauth-secret-for-handshake-tests';

let origin, clerk, bridge, devClerk, devBridge;
/** Every response the bridge answered itself during these tests (for the cache check). */
const handshakeResponses = [];

before(async () => {
  origin = await startOrigin();
  clerk = await startClerk(LIVE_FAPI, { live: true });
  devClerk = await startClerkServer({ port: 0, frontendApi: DEV_FAPI });
  const vars = (c) => bridgeSettings({ origin, clerk: c, secret: SECRET });
  bridge = await startBridge(vars(clerk));
  devBridge = await startBridge(vars(devClerk));
});
after(async () => {
  await bridge?.close();
  await devBridge?.close();
  await clerk?.close();
  await devClerk?.close();
  await origin?.close();
});

const now = () => Math.floor(Date.now() / 1000);
const PAGE = { 'sec-fetch-dest': 'document', accept: 'text/html,application/xhtml+xml' };

async function get(b, path, headers = {}) {
  const res = await b.fetch(path, { headers });
  if (res.status === 307) handshakeResponses.push(res);
  return res;
}

/** The Location of a handshake redirect, parsed, after checking it goes to the Frontend API. */
function handshakeLocation(res, fapi = LIVE_FAPI) {
  assert.equal(res.status, 307);
  const loc = new URL(res.headers.get('location'));
  assert.equal(loc.origin, `https://${fapi}`);
  assert.equal(loc.pathname, '/v1/client/handshake');
  return loc;
}

function setCookies(res) {
  return res.headers.getSetCookie();
}

/** `name=value` pairs a browser would keep from these Set-Cookie lines. */
function jar(lines, base = {}) {
  const out = { ...base };
  for (const line of lines) {
    const [pair, ...attrs] = line.split(';');
    const [name, ...rest] = pair.split('=');
    const value = rest.join('=');
    if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '') delete out[name.trim()];
    else out[name.trim()] = value;
  }
  return out;
}

async function seen(b, cookies, headers = PAGE) {
  const res = await get(b, '/whoami', { ...headers, cookie: cookieHeader(cookies) });
  assert.equal(res.status, 200);
  return (await res.json()).headers;
}

/** Plays the Frontend API: follows the bridge's handshake redirect on the local server. */
async function viaFrontendApi(c, location, format) {
  const fapi = new URL(location);
  const local = new URL(c.url + fapi.pathname + fapi.search);
  if (format) local.searchParams.set('format', format);
  const res = await fetch(local, { redirect: 'manual' });
  assert.equal(res.status, 307);
  return new URL(res.headers.get('location'));
}

test('client_uat > 0 without a session: 307 to the Frontend API with Clerk\'s parameters, no-store', async () => {
  const res = await get(bridge, '/dashboard?tab=2', { ...PAGE, cookie: `__client_uat=${now() - 10}` });
  const loc = handshakeLocation(res);
  assert.deepEqual([...loc.searchParams.keys()], ['redirect_url', '__clerk_api_version', 'suffixed_cookies', '__clerk_hs_reason', 'format']);
  assert.equal(loc.searchParams.get('redirect_url'), `${bridge.url}/dashboard?tab=2`);
  assert.equal(loc.searchParams.get('__clerk_api_version'), '2026-05-12');
  assert.equal(loc.searchParams.get('suffixed_cookies'), 'false');
  assert.equal(loc.searchParams.get('__clerk_hs_reason'), 'client-uat-but-no-session-token');
  assert.equal(loc.searchParams.get('format'), 'nonce');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.deepEqual(setCookies(res), ['__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2']);
});

test('Accept: text/html without Sec-Fetch-Dest is a page load too', async () => {
  const res = await get(bridge, '/', { accept: 'text/html', cookie: `__client_uat=${now()}` });
  handshakeLocation(res);
});

test('an expired session token: 307 with its reason and the token for the Frontend API', async () => {
  const t = now();
  const token = clerk.mintSessionToken({ sub: 'user_expired', iat: t - 120, nbf: t - 130, exp: t - 60 });
  const res = await get(bridge, '/', { ...PAGE, cookie: cookieHeader({ __session: token, __client_uat: String(t - 200) }) });
  const loc = handshakeLocation(res);
  assert.equal(loc.searchParams.get('__clerk_hs_reason'), 'session-token-expired-refresh-non-eligible-no-refresh-cookie');
  assert.equal(loc.searchParams.get('__session'), token);
});

test('a session token older than __client_uat: 307 (session-token-iat-before-client-uat)', async () => {
  const t = now();
  const token = clerk.mintSessionToken({ sub: 'user_stale', iat: t - 20 });
  const res = await get(bridge, '/', { ...PAGE, cookie: cookieHeader({ __session: token, __client_uat: String(t - 5) }) });
  assert.equal(handshakeLocation(res).searchParams.get('__clerk_hs_reason'), 'session-token-iat-before-client-uat');
});

test('a session cookie without __client_uat: 307 (session-token-but-no-client-uat)', async () => {
  const token = clerk.mintSessionToken({ sub: 'user_nouat' });
  const res = await get(bridge, '/', { ...PAGE, cookie: cookieHeader({ __session: token }) });
  assert.equal(handshakeLocation(res).searchParams.get('__clerk_hs_reason'), 'session-token-but-no-client-uat');
});

test('XHR / fetch, POST and subresource requests are never redirected: forwarded signed out of Clerk', async () => {
  const na = await nextAuthV4(SECRET, { sub: 'legacy-xhr', email: 'xhr@example.com' });
  const cookie = cookieHeader({ __client_uat: String(now()), 'next-auth.session-token': na });
  for (const headers of [
    { 'sec-fetch-dest': 'empty', accept: '*/*' },
    { accept: 'application/json' },
    { 'sec-fetch-dest': 'image', accept: 'text/html' },
  ]) {
    const res = await bridge.fetch('/api/data', { headers: { ...headers, cookie } });
    assert.equal(res.status, 200, JSON.stringify(headers));
    const h = (await res.json()).headers;
    assert.equal(h['x-auth-source'], 'nextauth');
    assert.equal(h['x-auth-user-id'], 'legacy-xhr');
  }
  const post = await bridge.fetch('/form', { method: 'POST', headers: { ...PAGE, cookie: `__client_uat=${now()}` }, body: 'a=1' });
  assert.equal(post.status, 200);
  assert.equal((await post.json()).headers['x-auth-source'], 'anonymous');
});

test('signed out of Clerk (no cookies, or __client_uat=0): no handshake', async () => {
  for (const cookie of ['', '__client_uat=0']) {
    const res = await get(bridge, '/', { ...PAGE, cookie });
    assert.equal(res.status, 200);
  }
});

test('loop guard: redirect counts up, and after 3 the page is forwarded signed out of Clerk', async () => {
  const base = `__client_uat=${now()}`;
  const second = await get(bridge, '/', { ...PAGE, cookie: `${base}; __clerk_redirect_count=2` });
  handshakeLocation(second);
  assert.deepEqual(setCookies(second), ['__clerk_redirect_count=3; SameSite=Lax; HttpOnly; Max-Age=2']);
  const na = await nextAuthV4(SECRET, { sub: 'legacy-looped' });
  const given = await get(bridge, '/whoami', { ...PAGE, cookie: `${base}; __clerk_redirect_count=3; next-auth.session-token=${na}` });
  assert.equal(given.status, 200);
  assert.equal(given.headers.get('set-cookie'), null);
  const h = (await given.json()).headers;
  assert.equal(h['x-auth-source'], 'nextauth');
  assert.equal(h['x-auth-user-id'], 'legacy-looped');
});

test('nonce in the query: directives fetched, cookies set, 307 to the clean URL; then signed in', async () => {
  clerk.setClient({ sub: 'user_nonce', sid: 'sess_nonce' });
  const out = await get(bridge, '/account?x=1', { ...PAGE, cookie: `__client_uat=${now() - 30}` });
  const back = await viaFrontendApi(clerk, out.headers.get('location'));
  assert.ok(back.searchParams.get('__clerk_handshake_nonce'));
  assert.equal(back.origin, bridge.url);
  const before = clerk.requestLog().length;
  const res = await get(bridge, back.pathname + back.search, PAGE);
  assert.equal(res.status, 307);
  assert.equal(res.headers.get('location'), `${bridge.url}/account?x=1`);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const fetched = clerk.requestLog().slice(before).filter((e) => e.path === '/v1/clients/handshake_payload');
  assert.equal(fetched.length, 1);
  assert.equal(fetched[0].status, 200);
  const cookies = jar(setCookies(res));
  assert.ok(cookies.__session);
  assert.ok(Number(cookies.__client_uat) > 0);
  assert.equal(cookies.__clerk_redirect_count, undefined, 'a query nonce does not count as a loop');
  const h = await seen(bridge, cookies);
  assert.equal(h['x-auth-source'], 'clerk');
  assert.equal(h['x-auth-clerk-user-id'], 'user_nonce');
  assert.equal(h['x-auth-session-id'], 'sess_nonce');
});

test('nonce in a cookie: resolved, the nonce cookie cleared, the loop guard counted', async () => {
  const t = now();
  const token = clerk.mintSessionToken({ sub: 'user_cookie_nonce', iat: t });
  const { nonce } = clerk.registerHandshake(undefined, [`__session=${token}; Path=/`, `__client_uat=${t}; Path=/`]);
  const res = await get(bridge, '/p?keep=1', { ...PAGE, cookie: `__clerk_handshake_nonce=${nonce}` });
  assert.equal(res.status, 307);
  assert.equal(res.headers.get('location'), `${bridge.url}/p?keep=1`);
  const lines = setCookies(res);
  assert.ok(lines.includes(`__session=${token}; Path=/`));
  assert.ok(lines.includes('__clerk_handshake_nonce=; Path=/; Max-Age=0'));
  assert.ok(lines.includes('__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2'));
  // A nonce cookie that keeps coming back stops redirecting after 3.
  const stuck = await get(bridge, '/whoami', { ...PAGE, cookie: `__clerk_handshake_nonce=${nonce}; __clerk_redirect_count=3` });
  assert.equal(stuck.status, 200);
});

test('a signed-out handshake clears the Clerk cookies', async () => {
  clerk.setClient(null);
  const out = await get(bridge, '/', { ...PAGE, cookie: `__client_uat=${now()}` });
  const back = await viaFrontendApi(clerk, out.headers.get('location'));
  const res = await get(bridge, back.pathname + back.search, PAGE);
  assert.equal(res.status, 307);
  assert.equal(res.headers.get('location'), `${bridge.url}/`);
  const lines = setCookies(res);
  assert.ok(lines.some((l) => l.startsWith('__session=;') && /Max-Age=0/.test(l)));
  assert.ok(lines.some((l) => l.startsWith('__client_uat=0;')));
});

test('unknown nonce, or directives whose session token does not verify: nothing set, page forwarded', async () => {
  const unknown = await get(bridge, '/whoami?__clerk_handshake_nonce=does-not-exist', PAGE);
  assert.equal(unknown.status, 200);
  assert.equal(unknown.headers.get('set-cookie'), null);
  const forged = clerk.mintSessionToken({ sub: 'user_forged', key: 'other' });
  const { nonce } = clerk.registerHandshake(undefined, [`__session=${forged}; Path=/`, `__client_uat=${now()}; Path=/`]);
  const res = await get(bridge, `/whoami?__clerk_handshake_nonce=${nonce}`, PAGE);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('set-cookie'), null);
  assert.equal((await res.json()).headers['x-auth-source'], 'anonymous');
});

test('handshake token form: verified with the JWKS, applied the same way; a forged one is ignored', async () => {
  clerk.setClient({ sub: 'user_token', sid: 'sess_token' });
  const out = await get(bridge, '/t?y=2', { ...PAGE, cookie: `__client_uat=${now() - 30}` });
  const back = await viaFrontendApi(clerk, out.headers.get('location'), 'token');
  assert.ok(back.searchParams.get('__clerk_handshake'));
  const res = await get(bridge, back.pathname + back.search, PAGE);
  assert.equal(res.status, 307);
  assert.equal(res.headers.get('location'), `${bridge.url}/t?y=2`);
  const cookies = jar(setCookies(res));
  assert.equal((await seen(bridge, cookies))['x-auth-clerk-user-id'], 'user_token');

  const [h, p] = back.searchParams.get('__clerk_handshake').split('.');
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  payload.handshake = ['__session=attacker; Path=/'];
  const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${back.searchParams.get('__clerk_handshake').split('.')[2]}`;
  const bad = await get(bridge, `/whoami?__clerk_handshake=${tampered}`, PAGE);
  assert.equal(bad.status, 200);
  assert.equal(bad.headers.get('set-cookie'), null);
});

test('development instance: dev-browser-missing, dev-browser-sync, and the whole round trip', async () => {
  const missing = await get(devBridge, '/', PAGE);
  assert.equal(handshakeLocation(missing, DEV_FAPI).searchParams.get('__clerk_hs_reason'), 'dev-browser-missing');

  const sync = await get(devBridge, '/dev?z=1&__clerk_db_jwt=dvb_fromquery', PAGE);
  const loc = handshakeLocation(sync, DEV_FAPI);
  assert.equal(loc.searchParams.get('__clerk_hs_reason'), 'dev-browser-sync');
  assert.equal(loc.searchParams.get('__clerk_db_jwt'), 'dvb_fromquery');
  assert.equal(loc.searchParams.get('redirect_url'), `${devBridge.url}/dev?z=1`);

  devClerk.setClient({ sub: 'user_dev', sid: 'sess_dev' });
  const back = await viaFrontendApi(devClerk, sync.headers.get('location'));
  assert.equal(back.searchParams.get('__clerk_db_jwt'), 'dvb_fromquery');
  const res = await get(devBridge, back.pathname + back.search, PAGE);
  assert.equal(res.status, 307);
  assert.equal(res.headers.get('location'), `${devBridge.url}/dev?z=1`, 'handshake and dev-browser params removed');
  const cookies = jar(setCookies(res));
  assert.equal(cookies.__clerk_db_jwt, 'dvb_fromquery');
  const h = await seen(devBridge, cookies);
  assert.equal(h['x-auth-source'], 'clerk');
  assert.equal(h['x-auth-clerk-user-id'], 'user_dev');
  // Without the dev-browser cookie the same session is not trusted (Clerk's rule).
  const { __clerk_db_jwt, ...withoutDb } = cookies;
  assert.equal((await seen(devBridge, withoutDb, { accept: 'application/json' }))['x-auth-source'], 'anonymous');
});

test('every handshake response is uncacheable: no-store, no ETag, no Last-Modified', () => {
  assert.ok(handshakeResponses.length >= 10, `${handshakeResponses.length} responses`);
  for (const res of handshakeResponses) {
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('etag'), null);
    assert.equal(res.headers.get('last-modified'), null);
  }
});
