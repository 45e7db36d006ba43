// A real Next.js 16 app (examples/nextjs: next-auth v4 on /, Auth.js v5 on /v5) behind the
// worker, driven in headless Chromium through the worker only: sign in (password and an OAuth
// round trip), the page shows the user, the app receives `x-auth-source: nextauth` with its own
// user id, client.js trades the ticket (a recording stand-in for window.Clerk), sign out gives
// `anonymous`.
//
// Needs the example installed and built (scripts/setup does both) and Chromium at
// /usr/bin/chromium; skipped, saying why, without them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBridge, deadPort, ROOT } from './harness.mjs';
import { startClerkServer } from '../clerk-server/server.mjs';
import { publishableKeyFor } from '../clerk-server/keys.mjs';
import { skipWithoutChromium, launchChromium } from './chromium.mjs';

const APP = path.join(ROOT, 'examples/nextjs');
const NEXT_BIN = path.join(APP, 'node_modules/next/dist/bin/next');
// In CI (CI=true) a missing piece is a failure, never a silent skip.
const skip = skipWithoutChromium('Next.js example tests', [
  !fs.existsSync(path.join(APP, '.next/BUILD_ID')) && 'examples/nextjs is not built (scripts/setup builds it)',
]);

const SECRET = 'nextauth-secret-for-the-nextjs-example-test';
const STAND_IN = fs.readFileSync(path.join(ROOT, 'tests/e2e/browser/clerk-stand-in.js'), 'utf8');

let clerk, bridge, app, browser, publicUrl;
const appLog = [];

async function startApp(port, env) {
  const child = spawn(process.execPath, [NEXT_BIN, 'start', '--hostname', '127.0.0.1', '--port', String(port)], {
    cwd: APP,
    env: { ...process.env, ...env, PORT: String(port), NEXT_TELEMETRY_DISABLED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => appLog.push(d.toString()));
  child.stderr.on('data', (d) => appLog.push(d.toString()));
  const end = Date.now() + 60_000;
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${port}/`, { redirect: 'manual' });
      return child;
    } catch {
      if (child.exitCode !== null || Date.now() > end) throw new Error(`next start did not come up:\n${appLog.join('')}`);
      await sleep(200);
    }
  }
}

before(async () => {
  if (skip) return;
  // A production-style key: no development-browser handshake with a Clerk Frontend API.
  clerk = await startClerkServer({
    port: 0,
    publishableKey: publishableKeyFor('clerk.nextjs-example.localhost', { live: true }),
    rateLimit: false,
    quiet: true,
  });
  const appPort = await deadPort();
  bridge = await startBridge({
    ORIGIN_URL: `http://127.0.0.1:${appPort}`,
    NEXTAUTH_SECRET: SECRET,
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
    CLERK_API_URL: clerk.url,
  });
  // The app's public URL is the worker's, under the name `localhost` (see README: Auth.js v5
  // cannot use 127.0.0.1).
  publicUrl = bridge.url.replace('127.0.0.1', 'localhost');
  app = await startApp(appPort, { NEXTAUTH_URL: publicUrl, AUTH_URL: publicUrl, NEXTAUTH_SECRET: SECRET, AUTH_SECRET: SECRET });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  app?.kill('SIGTERM');
  await bridge?.close();
  await clerk?.close();
});

/** A browser context whose pages carry the recording window.Clerk stand-in; requests outside
 *  the worker are collected (there must be none). */
async function newBrowser() {
  const context = await browser.newContext();
  await context.addInitScript(STAND_IN);
  const page = await context.newPage();
  const elsewhere = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(publicUrl)) elsewhere.push(r.url());
  });
  return { context, page, elsewhere };
}

/** The identity headers the app received for the page shown, as its page lists them. */
async function identity(page) {
  const cells = await page.locator('#identity td[data-header]').all();
  const out = {};
  for (const cell of cells) out[await cell.getAttribute('data-header')] = (await cell.innerText()).trim();
  return out;
}

async function trickle(page) {
  await page.waitForFunction(() => window.__authBridgeTrickle !== undefined, null, { timeout: 10_000 });
  return page.evaluate(() => window.__authBridgeTrickle);
}

function assertTicketFor(calls, legacyId) {
  assert.deepEqual(calls.map((c) => c.fn), ['signIn.create', 'setActive']);
  assert.equal(calls[0].input.strategy, 'ticket');
  const user = clerk.users().users.find((u) => u.external_id === legacyId);
  assert.ok(user, `a Clerk user for ${legacyId}`);
  const minted = clerk.signInTokens().find((t) => t.token === calls[0].input.ticket);
  assert.ok(minted, 'the ticket was minted by Clerk');
  assert.equal(minted.user_id, user.id);
}

test('next-auth v4: password sign-in through the worker, identity headers, ticket, sign-out', { skip }, async () => {
  const { context, page, elsewhere } = await newBrowser();
  try {
    // Straight to next-auth's sign-in page: client.js, run on an anonymous page, stays quiet for
    // the tab's next 30 s (its sessionStorage note), which would defer the trade below.
    await page.goto(`${publicUrl}/api/auth/signin`);
    await page.fill('input[name=username]', 'ada');
    await page.fill('input[name=password]', 'ada-password');
    await page.click('button:has-text("Sign in with password")');
    await page.waitForURL(`${publicUrl}/`);
    assert.match(await page.locator('#user').innerText(), /Signed in as Ada Lovelace \(user-1001, ada@example\.com\)/);
    const headers = await identity(page);
    assert.equal(headers['x-auth-source'], 'nextauth');
    assert.equal(headers['x-auth-user-id'], 'user-1001');
    assert.equal(headers['x-auth-email'], 'ada@example.com');
    const cookies = await context.cookies();
    assert.ok(cookies.some((c) => c.name === 'next-auth.session-token'), 'the app set its own cookie through the worker');

    assert.equal(await trickle(page), 'signed-in');
    assertTicketFor(await page.evaluate(() => window.__clerkCalls), 'user-1001');

    await page.goto(`${publicUrl}/api/auth/signout`);
    await page.click('button:has-text("Sign out")');
    await page.waitForURL(`${publicUrl}/`);
    assert.match(await page.locator('#user').innerText(), /Not signed in/);
    assert.equal((await identity(page))['x-auth-source'], 'anonymous');
    assert.deepEqual(elsewhere, []);
  } finally {
    await context.close();
  }
});

test('next-auth v4: an OAuth provider round trip through the worker', { skip }, async () => {
  const { context, page, elsewhere } = await newBrowser();
  try {
    await page.goto(`${publicUrl}/api/auth/signin`);
    await page.click('button:has-text("Sign in with Acme (OAuth stub)")');
    await page.waitForURL(`${publicUrl}/`);
    assert.match(await page.locator('#user').innerText(), /Signed in as Grace Hopper \(oauth-2001/);
    const headers = await identity(page);
    assert.equal(headers['x-auth-source'], 'nextauth');
    assert.equal(headers['x-auth-user-id'], 'oauth-2001');
    assert.equal(await trickle(page), 'signed-in');
    assertTicketFor(await page.evaluate(() => window.__clerkCalls), 'oauth-2001');
    assert.deepEqual(elsewhere, []);
  } finally {
    await context.close();
  }
});

test('Auth.js v5: sign-in by server action through the worker, identity headers, ticket, sign-out', { skip }, async () => {
  const { context, page, elsewhere } = await newBrowser();
  try {
    await page.goto(`${publicUrl}/v5`);
    assert.match(await page.locator('#user').innerText(), /Not signed in/);
    await page.fill('input[name=username]', 'alan');
    await page.fill('input[name=password]', 'wrong');
    await page.click('button:has-text("Sign in")');
    await page.waitForURL(/\/v5\?error=CredentialsSignin/);
    assert.equal((await identity(page))['x-auth-source'], 'anonymous');

    await page.fill('input[name=username]', 'alan');
    await page.fill('input[name=password]', 'alan-password');
    await page.click('button:has-text("Sign in")');
    await page.waitForURL(`${publicUrl}/v5`);
    // The page that the server action answered with was rendered for the request that carried
    // the form (sent before the session cookie existed); the next load is the signed-in one. A
    // fresh tab state, as client.js has been quiet since the anonymous page.
    await page.evaluate(() => sessionStorage.clear());
    await page.reload();
    assert.match(await page.locator('#user').innerText(), /Signed in as Alan Turing \(user-1002, alan@example\.com\)/);
    const headers = await identity(page);
    assert.equal(headers['x-auth-source'], 'nextauth');
    assert.equal(headers['x-auth-user-id'], 'user-1002');
    assert.ok((await context.cookies()).some((c) => c.name === 'authjs.session-token'));

    assert.equal(await trickle(page), 'signed-in');
    assertTicketFor(await page.evaluate(() => window.__clerkCalls), 'user-1002');

    await page.click('button:has-text("Sign out")');
    await page.waitForFunction(() => document.querySelector('#user')?.innerText.includes('Not signed in'));
    await page.reload();
    assert.equal((await identity(page))['x-auth-source'], 'anonymous');
    assert.deepEqual(elsewhere, []);
  } finally {
    await context.close();
  }
});
