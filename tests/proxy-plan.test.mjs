// The JS entry's forward on the worker's plan (src/proxy.js `forwardOnPlan`), on its own: which
// requests with cookies it forwards without the worker, which it asks the worker about
// (`cookiesHoldNoSession`), and which it leaves to the worker. The end-to-end tests
// (tests/e2e/identity.test.mjs) check the same requests' answers through the built worker.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { installForwardPlan, takeForwardedOnPlan } from '../src/proxy.js';

const forwardOnPlan = globalThis[Symbol.for('auth-bridge.forwardOnPlan')];
const COOKIE_CHECK = Symbol.for('auth-bridge.cookiesHoldNoSession');
// The worker's marks for NextAuth and a Clerk instance, and cookies by what the JS entry does with
// them; src/identity/no_session.rs holds the same table to the worker's own names and answers.
const TABLE = JSON.parse(readFileSync(new URL('./fixtures/cookie-marks.json', import.meta.url), 'utf8'));
const MARKS = TABLE.marks.join('\0');
const SIGNED_OUT = TABLE.signed_out.join('\0');
const PLAN = ['http://origin.test', '1.1 auth-bridge', 'x-auth-source', 'anonymous'].join('\0');

let sent; // requests handed to fetch
let asked; // cookies the worker was asked about
let answer; // the worker's answer

beforeEach(() => {
  sent = [];
  asked = [];
  answer = true;
  globalThis.fetch = async (request) => {
    sent.push(request);
    return new Response('ok');
  };
  globalThis[COOKIE_CHECK] = (cookie) => {
    asked.push(cookie);
    return answer;
  };
  installForwardPlan(PLAN, Date.now() + 60_000, MARKS, SIGNED_OUT);
  takeForwardedOnPlan();
});

const page = (cookie, extra = {}) =>
  new Request('https://app.test/page?x=1', { headers: { host: 'app.test', ...(cookie === null ? {} : { cookie }), ...extra } });

test('cookies without any of the marks, or with Clerk\'s signed-out ones, are forwarded on the plan without asking the worker', async () => {
  answer = false; // never asked
  for (const cookie of TABLE.forwarded_without_asking) {
    sent = [];
    const forged = { 'x-auth-user-id': 'admin', 'X-Auth-Email': 'ceo@example.com' };
    const pending = forwardOnPlan(page(cookie, forged));
    assert.notEqual(pending, undefined, cookie);
    assert.equal((await pending).status, 200);
    assert.equal(sent.length, 1);
    const out = sent[0];
    assert.equal(out.url, 'http://origin.test/page?x=1');
    assert.equal(out.headers.get('cookie'), cookie.trim(), 'the cookies go on unchanged');
    assert.equal(out.headers.get('x-auth-source'), 'anonymous');
    assert.equal(out.headers.get('x-auth-user-id'), null, 'client-sent identity headers are removed');
    assert.equal(out.headers.get('x-auth-email'), null);
    assert.equal(out.headers.get('x-forwarded-host'), 'app.test');
    assert.equal(out.headers.get('via'), '1.1 auth-bridge');
  }
  assert.deepEqual(asked, []);
  assert.equal(takeForwardedOnPlan(), TABLE.forwarded_without_asking.length, 'each is counted as forwarded on the plan');
});

test('any other mark in the header asks the worker, whose answer decides', async () => {
  for (const cookie of TABLE.asked) {
    asked = [];
    answer = true;
    assert.notEqual(forwardOnPlan(page(cookie)), undefined, cookie);
    assert.deepEqual(asked, [cookie.trim()]);
    answer = false;
    assert.equal(forwardOnPlan(page(cookie)), undefined, `${cookie}: the worker takes it`);
  }
  assert.equal(sent.length, TABLE.asked.length);
});

test('session cookies go to the worker without asking', () => {
  for (const cookie of TABLE.sessions) {
    assert.equal(forwardOnPlan(page(cookie)), undefined, cookie);
  }
  assert.deepEqual(asked, []);
  assert.deepEqual(sent, []);
});

test("only the names this worker reads are marks: a configured cookie name replaces the defaults", async () => {
  installForwardPlan(PLAN, Date.now() + 60_000, ['app.session', '__clerk_handshake'].join('\0'), '');
  answer = false;
  assert.equal(forwardOnPlan(page('app.session=a.b.c.d.e')), undefined);
  assert.equal(forwardOnPlan(page('app.session.0=a.b.c')), undefined);
  assert.deepEqual(asked, ['app.session=a.b.c.d.e', 'app.session.0=a.b.c']);
  // The default name is not read by this worker: anonymous, as the worker itself answers.
  const pending = forwardOnPlan(page('next-auth.session-token=a.b.c.d.e'));
  assert.notEqual(pending, undefined);
  await pending;
  assert.equal(sent[0].headers.get('x-auth-source'), 'anonymous');
  assert.equal(asked.length, 2);
});

test('a plan without marks forwards no cookie without asking', () => {
  for (const marks of ['', undefined]) {
    installForwardPlan(PLAN, Date.now() + 60_000, marks, marks);
    answer = false;
    assert.equal(forwardOnPlan(page('theme=dark')), undefined);
    answer = true;
    assert.notEqual(forwardOnPlan(page('theme=dark')), undefined);
    assert.notEqual(forwardOnPlan(page(null)), undefined, 'no cookie: anonymous');
  }
  assert.deepEqual(asked, ['theme=dark', 'theme=dark', 'theme=dark', 'theme=dark']);
});

test('no plan, an ended plan, an Authorization header or a Via header: the worker takes it', () => {
  installForwardPlan(PLAN, Date.now() - 1, MARKS, SIGNED_OUT);
  assert.equal(forwardOnPlan(page('theme=dark')), undefined, 'the plan ended');
  installForwardPlan(PLAN, Date.now() + 60_000, MARKS, SIGNED_OUT);
  assert.equal(forwardOnPlan(page('theme=dark', { authorization: 'Bearer x' })), undefined);
  assert.equal(forwardOnPlan(page('theme=dark', { via: '1.1 auth-bridge' })), undefined);
  assert.equal(forwardOnPlan(new Request('https://app.test/__auth-bridge/status', { headers: { cookie: 'theme=dark' } })), undefined);
  assert.equal(forwardOnPlan(new Request('https://app.test/p?__clerk_db_jwt=x', { headers: { cookie: 'theme=dark' } })), undefined);
  assert.deepEqual(sent, []);
  assert.deepEqual(asked, []);
});
