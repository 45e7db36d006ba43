// README command one, as a user runs it: `scripts/dev` (wrangler dev, the local Clerk stand-in,
// the demo origin) and headless Chromium opening the worker's URL. The page load must reach the
// origin — no redirect to a host off this machine — and settings given in the environment
// (ORIGIN_URL, NEXTAUTH_SECRET, the admin token) must win over the demo defaults.
//
// Needs Chromium at /usr/bin/chromium; skipped, saying why, without it (a failure when CI=true). scripts/dev builds the
// worker when build/ is not up to date (scripts/test has just built it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ROOT, deadPort, listen } from './harness.mjs';
import { nextAuthV4 } from './tokens.mjs';
import { skipWithoutChromium, launchChromium } from './chromium.mjs';

const skip = skipWithoutChromium('scripts/dev browser tests');

const DEMO_SECRET = 'local-development-secret-change-me';
const DEMO_ADMIN = 'local-admin-token-change-me';

let browser;
before(async () => {
  if (!skip) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/**
 * Starts scripts/dev on free ports with `settings` in its environment (and none of the worker's
 * settings that this process may have); resolves once it says the worker is ready. A port found
 * free may be taken by a concurrent test before wrangler binds it (wrangler then exits, and the
 * readiness check may have reached the other server): a start that ends before wrangler says it
 * is ready on its port is tried again on other ports, twice at most.
 */
async function startDev(settings = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevOnce(settings);
    } catch (error) {
      if (attempt === 3 || !error.exited) throw error;
      console.log(`scripts/dev ended before it was ready (attempt ${attempt}); trying other ports`);
    }
  }
}

async function startDevOnce(settings) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(ORIGIN_URL|MIGRATION_PHASE|NEXTAUTH_|CLERK_|AUTH_BRIDGE_)/.test(k)),
  );
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-bridge-dev-'));
  const ports = {
    PORT: await deadPort(),
    CLERK_PORT: await deadPort(),
    DEMO_ORIGIN_PORT: await deadPort(),
    INSPECTOR_PORT: await deadPort(),
  };
  const child = spawn('bash', [path.join(ROOT, 'scripts/dev')], {
    cwd: ROOT,
    env: {
      ...env,
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
      AUTH_BRIDGE_DEV_VARS: path.join(scratch, 'dev-vars.env'),
      AUTH_BRIDGE_DEV_STATE: path.join(scratch, 'state'),
      ...settings,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: stopping it stops wrangler and the local servers
  });
  let output = '';
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`scripts/dev not ready after 5 min:\n${output}`)), 300_000);
    // Both: scripts/dev's check that the port answers, and wrangler's word that it is its own.
    const wranglerReady = `Ready on http://127.0.0.1:${ports.PORT}`;
    const onData = (d) => {
      output += d.toString();
      if (/auth-bridge is ready/.test(output) && output.includes(wranglerReady)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`scripts/dev exited with ${code}:\n${output}`), { exited: true }));
    });
  });
  await ready.catch((error) => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    fs.rmSync(scratch, { recursive: true, force: true });
    throw error;
  });
  return {
    url: `http://localhost:${ports.PORT}`,
    ports,
    output: () => output,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {}
      await exited;
      fs.rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/** Opens `url` in a fresh browser context; returns the first response, the page and every
 *  request's URL. */
async function open(url, cookies = {}, options = {}) {
  const context = await browser.newContext(options);
  await context.addCookies(Object.entries(cookies).map(([name, value]) => ({ name, value, url })));
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  return { context, page, response: await goto(page, url), requests };
}

/**
 * `page.goto(url)`, tried again for a few seconds while the connection is refused: wrangler
 * builds once more when its watcher of `src` is ready and then restarts the worker, which under
 * load can come after the first answer. Any other failure, or a refusal that lasts, fails.
 */
async function goto(page, url) {
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      return await page.goto(url);
    } catch (error) {
      if (!/ERR_CONNECTION_REFUSED/.test(String(error)) || Date.now() > until) throw error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

test('README command one: the page load reaches the demo origin, with the demo settings', { skip }, async () => {
  const dev = await startDev();
  try {
    assert.match(dev.output(), /CLERK_PUBLISHABLE_KEY = pk_live_/, 'the local Clerk stand-in has a production-style key');
    const { context, page, response, requests } = await open(`${dev.url}/`);
    try {
      assert.equal(response.status(), 200);
      assert.equal(page.url(), `${dev.url}/`, 'no redirect');
      assert.deepEqual(requests.filter((u) => !u.startsWith(dev.url)), [], 'nothing outside the worker');
      assert.equal(await page.locator('h1').innerText(), 'Demo origin');
      assert.match(await page.locator('body').innerText(), /x-auth-source\s+anonymous/);
    } finally {
      await context.close();
    }

    // A NextAuth session signed with the demo secret is read.
    const cookie = await nextAuthV4(DEMO_SECRET, { sub: 'demo-user-1', email: 'demo@example.com', name: 'Demo' });
    const signedIn = await open(`${dev.url}/`, { 'next-auth.session-token': cookie });
    try {
      const text = await signedIn.page.locator('body').innerText();
      assert.match(text, /x-auth-source\s+nextauth/);
      assert.match(text, /x-auth-user-id\s+demo-user-1/);
      assert.equal(signedIn.page.url(), `${dev.url}/`);
    } finally {
      await signedIn.context.close();
    }

    // The dashboard opens with the demo token as a Basic password.
    const admin = await open(`${dev.url}/__auth-bridge/admin`, {}, { httpCredentials: { username: 'me', password: DEMO_ADMIN } });
    try {
      assert.equal(admin.response.status(), 200);
      assert.equal(await admin.page.title(), 'auth-bridge migration');
    } finally {
      await admin.context.close();
    }
  } finally {
    await dev.stop();
  }
});

test('settings from the environment win: your own origin, secret and admin token', { skip }, async () => {
  const seen = [];
  const origin = await listen((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>my app</title><h1>My app</h1><p id=source>${req.headers['x-auth-source']}</p>`);
  });
  const secret = 'my-apps-own-nextauth-secret-0123456789';
  const token = 'my-own-admin-token-0123456789';
  // A failed start must still close the origin, or its listening socket keeps this file's
  // process (and the whole test run) alive.
  const dev = await startDev({ ORIGIN_URL: origin.url, NEXTAUTH_SECRET: secret, AUTH_BRIDGE_ADMIN_TOKEN: token }).catch(
    async (e) => {
      await origin.close();
      throw e;
    },
  );
  try {
    assert.doesNotMatch(dev.output(), new RegExp(secret), 'secrets are not printed');
    const cookie = await nextAuthV4(secret, { sub: 'my-user-42', email: 'u42@example.com' });
    const { context, page, response } = await open(`${dev.url}/account`, { 'next-auth.session-token': cookie });
    try {
      assert.equal(response.status(), 200);
      assert.equal(await page.locator('h1').innerText(), 'My app');
      assert.equal(await page.locator('#source').innerText(), 'nextauth');
    } finally {
      await context.close();
    }
    const last = seen.at(-1);
    assert.equal(last['x-auth-source'], 'nextauth');
    assert.equal(last['x-auth-user-id'], 'my-user-42');
    assert.equal(last['x-forwarded-host'], `localhost:${dev.ports.PORT}`);
    assert.equal(last['x-forwarded-proto'], 'http');
    // The demo origin was not started.
    await assert.rejects(fetch(`http://127.0.0.1:${dev.ports.DEMO_ORIGIN_PORT}/`));

    const dashboard = (password) =>
      fetch(`${dev.url}/__auth-bridge/admin`, { headers: { authorization: `Basic ${Buffer.from(`x:${password}`).toString('base64')}` } });
    assert.equal((await dashboard(token)).status, 200);
    assert.equal((await dashboard(DEMO_ADMIN)).status, 401, 'the demo token is not in force');
  } finally {
    await dev.stop();
    await origin.close();
  }
});
