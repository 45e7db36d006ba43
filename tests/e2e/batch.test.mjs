// The batch import end to end under real workerd: NDJSON upload → KV → cron pacer → Queue →
// consumer → the local Clerk server (which enforces its rate limit), with the operator's view.
// Ticks are driven with explicit scheduledTime values; queue delays run in real time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBridge } from './harness.mjs';
import { startClerkServer } from '../clerk-server/server.mjs';

const ADMIN = 'admin-token-for-batch-tests-0123456789';
const BCRYPT = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'; // 53 chars
const USERS = 300;
// Records whose verified email a Clerk user holds unverified: the link is refused for good.
const REJECTED_BY_CLERK = 5;
// Records whose password digest Clerk refuses: migrated without it, with a warning.
const BAD_DIGESTS = 3;
// Records Clerk refuses for good (a sign-up date in the future): listed with Clerk's code.
const FUTURE_DATES = 2;

let clerk, bridge;
let minute = Date.now();
const tick = () => bridge.scheduled((minute += 60_000));

before(async () => {
  // Clerk enforces 1000 / 10 s; the bridge plans against the same figure (less its margin).
  clerk = await startClerkServer({ port: 0, rateLimit: { limit: 1000, windowMs: 10_000 } });
  bridge = await startBridge({
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
    CLERK_API_URL: clerk.url,
    CLERK_RATE_LIMIT: '1000/10s',
    NEXTAUTH_SECRET: 'nextauth-secret-for-batch-tests',
    AUTH_BRIDGE_ADMIN_TOKEN: ADMIN,
  });
});
after(async () => {
  await bridge?.close();
  await clerk?.close();
});

const auth = { authorization: `Bearer ${ADMIN}` };
const admin = (path, init = {}) =>
  bridge.fetch(`/__auth-bridge/admin${path}`, { ...init, headers: { ...auth, ...(init.headers ?? {}) } });
const upload = async (body) => {
  const res = await admin('/imports', { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson' } });
  return { status: res.status, body: await res.json() };
};
const status = async () => {
  const res = await admin('/status');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  return res.json();
};
const failures = async () => {
  const res = await admin('/failures');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
  return (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l));
};
async function until(what, predicate, timeoutMs = 40_000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await status();
    if (predicate(last)) return last;
    await sleep(500);
  }
  assert.fail(`${what}: timed out; last status ${JSON.stringify(last)}`);
}
const reconciles = (s) => {
  const c = s.counts;
  assert.equal(c.accepted, c.migrated + c.skipped + c.failed + c.pending, JSON.stringify(c));
};

function user(i, extra = {}) {
  return {
    id: `legacy-${i}`,
    email: `user${i}@example.com`,
    email_verified: i % 2 === 0,
    first_name: `First${i}`,
    last_name: 'Batch',
    password_digest: BCRYPT,
    password_hasher: 'bcrypt',
    ...extra,
  };
}
const ndjson = (records) => records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

test('admin routes: 401 without the bearer, 405 for a wrong method, 404 when disabled', async () => {
  for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token-xx' }, { authorization: ADMIN }]) {
    const res = await bridge.fetch('/__auth-bridge/admin/status', { headers });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await res.json()).error, 'unauthorized');
  }
  assert.equal((await bridge.fetch('/__auth-bridge/admin/imports', { method: 'POST', body: '{}' })).status, 401);
  const wrong = await admin('/status', { method: 'POST' });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'GET, HEAD');
  assert.equal((await admin('/imports')).status, 405);
  assert.equal((await admin('/nope')).status, 404);
  const html = await admin('');
  assert.equal(html.status, 200);
  assert.match(html.headers.get('content-type'), /^text\/html/);
  assert.match(await html.text(), /auth-bridge migration/);

  const disabled = await startBridge({ CLERK_SECRET_KEY: clerk.secretKey, CLERK_API_URL: clerk.url });
  try {
    for (const path of ['/__auth-bridge/admin', '/__auth-bridge/admin/status']) {
      assert.equal((await disabled.fetch(path, { headers: auth })).status, 404);
    }
  } finally {
    await disabled.close();
  }
});

test('a batch of users: validated per line, paced under the rate limit, each user once in Clerk', async () => {
  const records = [];
  for (let i = 0; i < USERS; i++) records.push(user(i));
  for (let i = 0; i < REJECTED_BY_CLERK; i++) {
    clerk.createUser({ email_address: [`user${1000 + i}@example.com`], email_address_identification_status: ['reserved'] });
    records.push(user(1000 + i, { email_verified: true }));
  }
  for (let i = 0; i < BAD_DIGESTS; i++) records.push(user(1100 + i, { password_digest: 'not-a-bcrypt-digest' }));
  for (let i = 0; i < FUTURE_DATES; i++) records.push(user(1200 + i, { created_at: '2999-01-01T00:00:00Z' }));
  const bad = [
    '{"id":"x1","email":"x1@example.com","role":"admin"}', // unknown field
    '{"email":"noid@example.com"}', // no id
    'not json at all',
    JSON.stringify(user(7)), // duplicate id
    '{"id":"x2","email":"not-an-email"}',
  ];
  const lines = [...records.slice(0, 10), ...bad, ...records.slice(10)];
  const { status: code, body } = await upload(ndjson(lines));
  assert.equal(code, 202);
  assert.match(body.import_id, /^\d{13}-[0-9a-f]{8}$/);
  assert.equal(body.accepted, USERS + REJECTED_BY_CLERK + BAD_DIGESTS + FUTURE_DATES);
  assert.deepEqual(body.rejected.map((r) => r.line), [11, 12, 13, 14, 15]);
  assert.match(body.rejected[0].error, /unknown field `role`/);
  assert.match(body.rejected[1].error, /`id` is required/);
  assert.match(body.rejected[3].error, /duplicate `id` \(first seen on line 8\)/);
  assert.ok(!JSON.stringify(body).includes(BCRYPT), 'no digest in the answer');

  const before = await status();
  assert.equal(before.counts.pending, USERS + REJECTED_BY_CLERK + BAD_DIGESTS + FUTURE_DATES);
  assert.equal(before.phase, 'migrate');
  assert.equal(before.rate.limit, '1000/10s');
  assert.ok(before.eta > 0, `eta ${before.eta}`);
  reconciles(before);

  // A doubled tick: both run at once for the same minute; only one may send.
  const t = (minute += 60_000);
  await Promise.all([bridge.scheduled(t), bridge.scheduled(t)]);
  const done = await until('batch done', (s) => s.counts.pending === 0);
  reconciles(done);
  assert.equal(done.counts.migrated, USERS + BAD_DIGESTS);
  assert.equal(done.counts.failed, REJECTED_BY_CLERK + FUTURE_DATES);
  // A refused digest never blocks a user: listed as a warning with Clerk's code.
  const warned = done.warnings.items.filter((w) => /^legacy-110\d$/.test(w.legacy_id));
  assert.equal(warned.length, BAD_DIGESTS, JSON.stringify(done.warnings));
  for (const w of warned) assert.equal(w.code, 'form_password_digest_invalid_code');
  assert.ok(!JSON.stringify(done).includes('not-a-bcrypt-digest'), 'never the digest');
  assert.equal(done.eta, null);

  const report = clerk.users();
  assert.equal(report.total, USERS + BAD_DIGESTS + REJECTED_BY_CLERK);
  assert.deepEqual(report.duplicates, { by_external_id: {}, by_email: {} });
  for (const u of report.users) {
    if (u.external_id === null) continue; // the holders of refused links, untouched
    const i = Number(u.external_id.replace('legacy-', ''));
    assert.equal(u.email_addresses[0].email_address, `user${i}@example.com`);
    assert.equal(u.email_addresses[0].verification.status, i % 2 === 0 ? 'verified' : 'unverified', u.external_id);
    assert.equal(u.password_enabled, i < 1100, u.external_id);
    assert.equal(u.first_name, `First${i}`);
  }
  const stats = clerk.stats();
  assert.equal(stats.rate_limited, 0, 'Clerk never answered 429');
  // About one call per new user: each page of up to 100 records costs one look-up by
  // external_id and one create per user still missing (a refused digest, one more create
  // without it; a refused link, its create refused as taken); a page with taken emails, one
  // look-up of them. The refused links here (5 in 303 users) cost more than a fresh import's.
  const pages = Math.ceil((USERS + REJECTED_BY_CLERK + BAD_DIGESTS + FUTURE_DATES) / 100) + 2;
  const creates = USERS + 2 * BAD_DIGESTS + FUTURE_DATES + REJECTED_BY_CLERK;
  assert.ok(stats.counted <= creates + 2 * pages, `${stats.counted} calls`);
  assert.ok(done.rate.calls_per_user <= 1.06, `calls per user ${done.rate.calls_per_user}`);
  assert.equal(done.rate.limit_users_per_sec, 100);
  assert.equal(done.rate.imported, USERS + BAD_DIGESTS, JSON.stringify(done.rate));

  const failed = await failures();
  assert.equal(failed.length, REJECTED_BY_CLERK + FUTURE_DATES);
  for (const f of failed) {
    assert.match(f.id, /^legacy-1[02]0\d$/);
    assert.equal(f.code, f.id.startsWith('legacy-100') ? 'link_email_unverified_in_clerk' : 'form_disallow_future_date');
    assert.ok(f.message.length > 0);
    assert.ok(!JSON.stringify(f).includes(BCRYPT), 'no digest in the failures');
  }
});

test('a second import of the same users adds nothing to Clerk', async () => {
  const calls = clerk.stats().counted;
  const again = [];
  for (let i = 0; i < 60; i++) again.push(user(i));
  const { status: code, body } = await upload(ndjson(again));
  assert.equal(code, 202);
  assert.equal(body.accepted, 60);
  await tick();
  const s = await until('second import done', (x) => x.counts.pending === 0, 20_000);
  reconciles(s);
  assert.equal(s.counts.migrated, USERS + BAD_DIGESTS + 60);
  assert.equal(clerk.users().total, USERS + BAD_DIGESTS + REJECTED_BY_CLERK);
  // The page's one look-up by external_id finds them all: nothing else is called.
  assert.ok(clerk.stats().counted - calls <= 2, 'one look-up for the whole page of known users');
  assert.equal(clerk.stats().rate_limited, 0);
});

test('retry-failed puts failures back to pending; the pacer picks them up again', async () => {
  const res = await admin('/retry-failed', { method: 'POST' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { requeued: REJECTED_BY_CLERK + FUTURE_DATES, more: false });
  const s = await status();
  assert.equal(s.counts.failed, 0);
  assert.equal(s.counts.pending, REJECTED_BY_CLERK + FUTURE_DATES);
  reconciles(s);
  await tick();
  const after = await until('failures retried', (x) => x.counts.pending === 0, 20_000);
  assert.equal(after.counts.failed, REJECTED_BY_CLERK + FUTURE_DATES, 'the links and dates are still refused');
  assert.equal((await failures()).length, REJECTED_BY_CLERK + FUTURE_DATES);
});

test('pause holds the batch, resume releases it', async () => {
  let res = await admin('/pause', { method: 'POST' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { paused: true });
  assert.equal((await status()).paused, true);
  const batch = [];
  for (let i = 2000; i < 2030; i++) batch.push(user(i));
  assert.equal((await upload(ndjson(batch))).body.accepted, 30);
  const calls = clerk.stats().counted;
  await tick();
  await sleep(2_500);
  const held = await status();
  assert.equal(held.counts.pending, 30);
  assert.equal(held.eta, null, 'no eta while paused');
  assert.equal(clerk.stats().counted, calls, 'no Clerk call while paused');

  res = await admin('/resume', { method: 'POST' });
  assert.deepEqual(await res.json(), { paused: false });
  await tick();
  const done = await until('resumed batch done', (x) => x.counts.pending === 0, 20_000);
  assert.equal(done.paused, false);
  assert.equal(clerk.users().total, USERS + BAD_DIGESTS + REJECTED_BY_CLERK + 30);
});

test('a 429 pauses the batch for Retry-After; transient errors never fail a record', async () => {
  clerk.setFaults({ rules: [{ path: '/v1/users', method: 'POST', sequence: [{ status: 429, retryAfter: 2 }] }] });
  const { body } = await upload(ndjson([user(3000)]));
  assert.equal(body.accepted, 1);
  await tick();
  const paused = await until('429 pause seen', (x) => x.paused === true || x.counts.pending === 0, 10_000);
  if (paused.counts.pending !== 0) assert.ok(paused.pause.rate_limited_until, JSON.stringify(paused.pause));
  // The record went back to the backlog; a tick after the pause sends it again.
  const end = Date.now() + 20_000;
  while ((await status()).counts.pending !== 0 && Date.now() < end) {
    await sleep(2_500);
    await tick();
  }
  assert.equal((await status()).counts.pending, 0);
  assert.ok(clerk.users().users.some((u) => u.external_id === 'legacy-3000'));

  // Every look-up fails with 503 for a while: the record stays pending, is tried again with
  // its backoff, and is migrated once Clerk is healthy — never failed for having waited.
  const failedBefore = (await status()).counts.failed;
  clerk.setFaults({ rules: [{ path: '/v1/users', method: 'GET', sequence: [{ status: 503, retryAfter: 1 }], loop: true }] });
  await upload(ndjson([user(3001)]));
  for (let i = 0; i < 4; i++) {
    await tick();
    await sleep(2_000);
  }
  const during = await status();
  assert.equal(during.counts.pending, 1, JSON.stringify(during.counts));
  assert.equal(during.counts.failed, failedBefore, 'no record failed for transient errors');
  clerk.clearFaults();
  const end2 = Date.now() + 30_000;
  while ((await status()).counts.pending !== 0 && Date.now() < end2) {
    await tick();
    await sleep(2_000);
  }
  const after = await status();
  assert.equal(after.counts.pending, 0, JSON.stringify(after.counts));
  assert.equal(after.counts.failed, failedBefore);
  assert.ok((await failures()).every((f) => f.id !== 'legacy-3001'));
  assert.equal(clerk.users().users.filter((u) => u.external_id === 'legacy-3001').length, 1);
});

test('an upload over the size limit is refused with 413', async () => {
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  let sent = 0;
  const body = new ReadableStream({
    pull(controller) {
      if (sent++ >= 50) controller.close();
      else controller.enqueue(chunk);
    },
  });
  const res = await admin('/imports', { method: 'POST', body, duplex: 'half' });
  assert.equal(res.status, 413);
  const answer = await res.json();
  assert.equal(answer.error, 'payload_too_large');
  assert.match(answer.message, /48 MiB/);
});
