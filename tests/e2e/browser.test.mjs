// client.js in a real browser: headless Chromium loads app pages through the worker with a
// NextAuth cookie; the pages carry a recording stand-in for window.Clerk (tests/e2e/browser/).
// The worker mints real tokens from the local Clerk server.
//
// Needs Chromium at /usr/bin/chromium (Debian: apt-get install -y chromium) or CHROMIUM_PATH;
// skipped without it, except in CI (CI=true), where a missing browser fails the run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { startBridge, listen } from './harness.mjs';
import { CHROMIUM, HAVE_CHROMIUM, IN_CI, skipWithoutChromium, launchChromium } from './chromium.mjs';
import { startClerk, bridgeSettings } from './stack.mjs';
import { nextAuthV4 } from './tokens.mjs';

// In CI (CI=true) a missing browser is a failure, never a silent skip; elsewhere the tests are
// skipped with the reason printed.
const skip = skipWithoutChromium('browser tests');

test('a browser is available (required when CI=true)', { skip: IN_CI ? false : skip }, () => {
  assert.ok(HAVE_CHROMIUM, `no browser at ${CHROMIUM}: install Chromium or set CHROMIUM_PATH (CI requires it)`);
});

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'browser');
const SECRET = 'nextauth-secret-for-browser-tests';
const FAPI = 'clerk.browser-tests.example.com';
const ENDPOINT = '/__auth-bridge/sign-in-token';

let origin, clerk, bridge, injecting, browser;

async function serveFixtures(req, res) {
  const url = new URL(req.url, 'http://origin');
  if (url.pathname === '/gz') {
    const body = gzipSync(fs.readFileSync(path.join(FIXTURES, 'plain.html')));
    res.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'content-length': body.length });
    res.end(body);
    return;
  }
  if (url.pathname === '/slow') {
    // The head ends in the first write; the rest comes later: the first part must not wait.
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.write('<html><head><title>slow</title></he');
    res.write('ad><body>first');
    await new Promise((r) => setTimeout(r, 800));
    res.end('second</body></html>');
    return;
  }
  if (url.pathname === '/clerk-stand-in.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(fs.readFileSync(path.join(FIXTURES, 'clerk-stand-in.js')));
    return;
  }
  const file = url.pathname.startsWith('/plain') ? 'plain.html' : 'page.html';
  const html = fs.readFileSync(path.join(FIXTURES, file));
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': html.length });
  res.end(html);
}

before(async () => {
  origin = await listen(serveFixtures);
  clerk = await startClerk(FAPI, { rateLimit: false, quiet: true });
  const vars = bridgeSettings({ origin, clerk, secret: SECRET });
  bridge = await startBridge(vars);
  injecting = await startBridge({ ...vars, INJECT_CLIENT_SCRIPT: 'true' });
  if (!skip) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await bridge?.close();
  await injecting?.close();
  await clerk?.close();
  await origin?.close();
});

let seq = 0;
function legacyId(label) {
  seq += 1;
  return `legacy-browser-${label}-${process.pid}-${seq}`;
}

/** A browser context with the given cookies for `b`, and a page that records the endpoint's traffic. */
async function openPage(b, cookies = {}) {
  const context = await browser.newContext();
  await context.addCookies(Object.entries(cookies).map(([name, value]) => ({ name, value, url: b.url })));
  const page = await context.newPage();
  const posts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === ENDPOINT) posts.push({ sentAt: Date.now() });
  });
  page.on('response', (r) => {
    if (r.request().method() === 'POST' && new URL(r.url()).pathname === ENDPOINT) {
      const entry = posts.find((p) => p.status === undefined);
      entry.status = r.status();
      entry.retryAfter = r.headers()['retry-after'];
      entry.receivedAt = Date.now();
    }
  });
  return { context, page, posts };
}

/** Loads `p` and waits for client.js's run to finish; returns what it said. */
async function visit(page, b, p) {
  await page.goto(b.url + p);
  await page.waitForFunction(() => window.__authBridgeTrickle !== undefined, null, { timeout: 5000 });
  return page.evaluate(() => window.__authBridgeTrickle);
}

async function nextAuthCookie(id) {
  return { 'next-auth.session-token': await nextAuthV4(SECRET, { sub: id, email: `${id}@example.com`, name: 'Browser User' }) };
}

test('client.js gets a token and exchanges it: signIn.create with the minted ticket, then setActive', { skip }, async () => {
  const id = legacyId('exchange');
  const { context, page, posts } = await openPage(bridge, await nextAuthCookie(id));
  try {
    const result = await visit(page, bridge, '/app?loadDelay=400');
    assert.equal(result, 'signed-in');
    const calls = await page.evaluate(() => window.__clerkCalls);
    assert.deepEqual(calls.map((c) => c.fn), ['signIn.create', 'setActive']);
    const ticket = calls[0].input.ticket;
    assert.equal(calls[0].input.strategy, 'ticket');
    assert.deepEqual(calls[1].input, { session: 'sess_from_ticket' });
    // The ticket is the token the worker minted for this legacy user's Clerk user.
    const user = clerk.users().users.find((u) => u.external_id === id);
    const minted = clerk.signInTokens().find((t) => t.token === ticket);
    assert.ok(minted, 'ticket minted by the Clerk server');
    assert.equal(minted.user_id, user.id);
    assert.equal(clerk.consumeSignInToken(ticket).status, 'accepted');
    assert.equal(posts.length, 1);
    assert.equal(posts[0].status, 200);

    // A reload with Clerk signed in does nothing.
    const again = await visit(page, bridge, `/app?user=${user.id}`);
    assert.equal(again, 'already-signed-in');
    assert.equal(posts.length, 1);
  } finally {
    await context.close();
  }
});

test('client.js backs off on 429 and waits at least Retry-After before trying again', { skip }, async () => {
  const id = legacyId('backoff');
  clerk.addFault({ path: '/v1/users', sequence: [{ status: 429, retryAfter: 2 }] });
  const { context, page, posts } = await openPage(bridge, await nextAuthCookie(id));
  try {
    const result = await visit(page, bridge, '/app');
    assert.equal(result, 'signed-in');
    assert.deepEqual(posts.map((p) => p.status), [429, 200]);
    assert.equal(posts[0].retryAfter, '2');
    const gap = posts[1].sentAt - posts[0].receivedAt;
    assert.ok(gap >= 2000, `second attempt ${gap} ms after the 429`);
    assert.ok(gap < 2000 + 1000 + 500, `full jitter of the first backoff step is under 1 s: ${gap} ms`);
    console.log(`# retry ${gap} ms after a 429 with Retry-After: 2`);
    const calls = await page.evaluate(() => window.__clerkCalls);
    assert.deepEqual(calls.map((c) => c.fn), ['signIn.create', 'setActive']);
  } finally {
    clerk.clearFaults();
    await context.close();
  }
});

test('client.js stops on 204 (a Clerk session is already there): one POST, no sign-in', { skip }, async () => {
  const id = legacyId('clerk-session');
  const user = clerk.createUser({ external_id: id, email_address: [`${id}@example.com`], skip_password_requirement: true });
  const cookies = {
    ...(await nextAuthCookie(id)),
    __session: clerk.mintSessionToken({ sub: user.id, ttlSeconds: 600 }),
    __client_uat: String(Math.floor(Date.now() / 1000) - 30),
  };
  const { context, page, posts } = await openPage(bridge, cookies);
  try {
    // The stand-in has no user yet (its session is the server's cookie), so the script asks.
    const result = await visit(page, bridge, '/app');
    assert.equal(result, 'already-signed-in');
    await page.waitForTimeout(1500);
    assert.deepEqual(posts.map((p) => p.status), [204]);
    assert.deepEqual(await page.evaluate(() => window.__clerkCalls), []);
  } finally {
    await context.close();
  }
});

test('client.js stops on 401 and a reload does not ask again (sessionStorage guard)', { skip }, async () => {
  const { context, page, posts } = await openPage(bridge, {});
  try {
    assert.equal(await visit(page, bridge, '/app'), 'no-session');
    assert.equal(await visit(page, bridge, '/app'), 'deferred');
    await page.waitForTimeout(500);
    assert.deepEqual(posts.map((p) => p.status), [401]);
  } finally {
    await context.close();
  }
});

test('client.js does nothing when Clerk already has a user', { skip }, async () => {
  const { context, page, posts } = await openPage(bridge, await nextAuthCookie(legacyId('skip')));
  try {
    assert.equal(await visit(page, bridge, '/app?user=user_existing'), 'already-signed-in');
    assert.equal(posts.length, 0);
  } finally {
    await context.close();
  }
});

const SCRIPT_TAG = '<script src="/__auth-bridge/client.js" defer></script>';

test('INJECT_CLIENT_SCRIPT: client.js is injected into pages of NextAuth users and signs them in', { skip }, async () => {
  const id = legacyId('injected');
  const { context, page, posts } = await openPage(injecting, await nextAuthCookie(id));
  try {
    assert.equal(await visit(page, injecting, '/plain'), 'signed-in');
    const calls = await page.evaluate(() => window.__clerkCalls);
    assert.deepEqual(calls.map((c) => c.fn), ['signIn.create', 'setActive']);
    assert.equal(posts.length, 1);
    const user = clerk.users().users.find((u) => u.external_id === id);
    assert.equal(clerk.signInTokens().find((t) => t.token === calls[0].input.ticket)?.user_id, user.id);
  } finally {
    await context.close();
  }
});

test('injection: before </head>, once, Content-Length dropped; only for NextAuth identities', async () => {
  const fixture = fs.readFileSync(path.join(FIXTURES, 'plain.html'), 'utf8');
  const cookie = (await nextAuthCookie(legacyId('inject-fetch')))['next-auth.session-token'];
  const headers = { cookie: `next-auth.session-token=${cookie}`, 'accept-encoding': 'identity' };

  const res = await injecting.fetch('/plain', { headers });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), null);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  const html = await res.text();
  assert.equal(html, fixture.replace('</head>', `${SCRIPT_TAG}</head>`));

  const anonymous = await injecting.fetch('/plain', { headers: { 'accept-encoding': 'identity' } });
  assert.equal(await anonymous.text(), fixture);
  const notEnabled = await bridge.fetch('/plain', { headers });
  assert.equal(await notEnabled.text(), fixture);
  const head = await injecting.fetch('/plain', { method: 'HEAD', headers });
  assert.equal(head.status, 200);
  const script = await injecting.fetch('/clerk-stand-in.js', { headers });
  assert.ok(!(await script.text()).includes(SCRIPT_TAG), 'not HTML: untouched');
});

test('injection leaves compressed bodies alone', async () => {
  const cookie = (await nextAuthCookie(legacyId('inject-gz')))['next-auth.session-token'];
  const res = await injecting.fetch('/gz', { headers: { cookie: `next-auth.session-token=${cookie}` } });
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.equal(html, fs.readFileSync(path.join(FIXTURES, 'plain.html'), 'utf8'));
});

test('injection streams: the head reaches the browser before the origin has finished', async () => {
  const cookie = (await nextAuthCookie(legacyId('inject-stream')))['next-auth.session-token'];
  const started = Date.now();
  const res = await injecting.fetch('/slow', { headers: { cookie: `next-auth.session-token=${cookie}`, 'accept-encoding': 'identity' } });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes('first')) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'stream ended early');
    text += decoder.decode(value, { stream: true });
  }
  const firstAt = Date.now() - started;
  assert.ok(firstAt < 700, `first part after ${firstAt} ms`);
  assert.ok(text.includes(`${SCRIPT_TAG}</head>`), text);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  assert.ok(Date.now() - started >= 800);
  assert.equal(text, `<html><head><title>slow</title>${SCRIPT_TAG}</head><body>firstsecond</body></html>`);
});
