// The admin API at scale and in `observe`: a 100,000-line upload within one request's limits,
// and a dry run that counts what would happen without writing to Clerk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBridge } from './harness.mjs';
import { startClerkServer } from '../clerk-server/server.mjs';

const ADMIN = 'admin-token-for-admin-tests-0123456789';
const BCRYPT = '$2b$10$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0';

let clerk, bridge;
before(async () => {
  clerk = await startClerkServer({ port: 0, rateLimit: { limit: 1000, windowMs: 10_000 } });
  bridge = await startBridge({
    MIGRATION_PHASE: 'observe',
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
    CLERK_API_URL: clerk.url,
    CLERK_RATE_LIMIT: '1000/10s',
    NEXTAUTH_SECRET: 'nextauth-secret-for-admin-tests',
    AUTH_BRIDGE_ADMIN_TOKEN: ADMIN,
  });
});
after(async () => {
  await bridge?.close();
  await clerk?.close();
});

const admin = (path, init = {}) =>
  bridge.fetch(`/__auth-bridge/admin${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}` } });
const status = async () => (await admin('/status')).json();

test('observe: an import is a dry run that counts would-create, would-link and would-fail (a refused link)', async () => {
  clerk.createUser({ external_id: 'obs-0', email_address: ['obs0@example.com'] });
  clerk.createUser({ email_address: ['obs1@example.com'] }); // verified in legacy data → link
  clerk.createUser({ email_address: ['obs2@example.com'] }); // unverified in legacy data → refused
  const records = [];
  for (let i = 0; i < 12; i++) {
    records.push({ id: `obs-${i}`, email: `obs${i}@example.com`, email_verified: i !== 2, password_digest: BCRYPT, password_hasher: 'bcrypt' });
  }
  const res = await admin('/imports', { method: 'POST', body: records.map((r) => JSON.stringify(r)).join('\n') });
  assert.equal(res.status, 202);
  assert.equal((await res.json()).accepted, 12);
  const calls = clerk.stats().counted;
  await bridge.scheduled(Date.now());
  let s;
  for (let i = 0; i < 40; i++) {
    s = await status();
    if (s.dry_run?.pending === 0) break;
    await sleep(500);
  }
  assert.equal(s.phase, 'observe');
  assert.deepEqual(s.dry_run, { would_create: 9, would_link: 1, already_migrated: 1, would_skip: 0, would_fail: 1, pending: 0 });
  assert.equal(s.counts.pending, 12, 'nothing was migrated for real');
  assert.equal(s.counts.accepted, s.counts.pending + s.counts.migrated + s.counts.skipped + s.counts.failed);
  assert.equal(clerk.users().total, 3, 'no Clerk user created');
  const writes = clerk.requestLog().filter((e) => e.method !== 'GET');
  assert.equal(writes.length, 0, 'no Clerk write in observe');
  assert.ok(clerk.stats().counted - calls <= 2 * 12, 'two lookups per record at most');
});

test('a 100,000-line upload of about 30 MB is accepted in one request', async () => {
  const lines = [];
  for (let i = 0; i < 100_000; i++) {
    lines.push(
      JSON.stringify({
        id: `big-${i}`,
        email: `big${i}@example.com`,
        email_verified: '2021-04-01T12:00:00Z',
        name: `User ${i}`,
        password_digest: BCRYPT,
        password_hasher: 'bcrypt',
        created_at: '2020-01-01T00:00:00Z',
        public_metadata: { plan: 'pro', tags: ['a', 'b'] },
        private_metadata: { crm_id: `crm-${i}-000000` },
      }),
    );
  }
  lines[41_999] = '{"id":"bad","email":"bad@example.com","extra":1}';
  const body = lines.join('\n') + '\n';
  assert.ok(body.length > 25e6 && body.length < 40e6, `${body.length} bytes`);
  const started = Date.now();
  const res = await admin('/imports', { method: 'POST', body });
  assert.equal(res.status, 202);
  const answer = await res.json();
  assert.equal(answer.accepted, 99_999);
  assert.deepEqual(answer.rejected.map((r) => r.line), [42_000]);
  const s = await status();
  assert.equal(s.counts.accepted, 12 + 99_999);
  assert.equal(s.counts.pending, 12 + 99_999);
  assert.ok(s.eta > 0);
  console.log(`100,000-line upload (${(body.length / 1e6).toFixed(1)} MB): ${Date.now() - started} ms`);
});
