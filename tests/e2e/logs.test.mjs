// Secrets, tokens, cookies and password digests never appear in the worker's logs, in its error
// answers or in the operator's status and failure listings — checked by capturing everything the
// runtime prints while the worker handles good, bad and failing traffic.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBridge } from './harness.mjs';
import { startOrigin } from './origin.mjs';
import { startClerk, bridgeSettings } from './stack.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from './tokens.mjs';

const SECRET = 'nextauth-secret-that-must-never-be-logged';
const ADMIN = 'admin-token-that-must-never-be-logged';
const ASSERTION = 'assertion-secret-that-must-never-be-logged';
const DIGEST = '$2a$10$abcdefghijklmnopqrstuuNeverLogThisDigestValue1234567';
const BAD_DIGEST = '$2a$10$short-and-invalid-digest-never-logged';

let origin, clerk, bridge;
const seen = []; // every answer body the worker itself produced
const secrets = new Set([SECRET, ADMIN, ASSERTION, DIGEST, BAD_DIGEST]);

before(async () => {
  origin = await startOrigin();
  clerk = await startClerk('clerk.logs-tests.example.com', { rateLimit: false, quiet: true });
  secrets.add(clerk.secretKey);
  bridge = await startBridge(
    bridgeSettings({ origin, clerk, secret: SECRET }, { AUTH_BRIDGE_ADMIN_TOKEN: ADMIN, AUTH_BRIDGE_ASSERTION_SECRET: ASSERTION }),
    { captureLogs: true },
  );
});
after(async () => {
  await bridge?.close();
  await clerk?.close();
  await origin?.close();
});

async function call(path, init = {}) {
  const res = await bridge.fetch(path, init);
  const body = await res.text();
  if (path.startsWith('/__auth-bridge/')) seen.push(body);
  return { status: res.status, body };
}

const admin = { authorization: `Bearer ${ADMIN}` };
const sameOrigin = () => ({ 'sec-fetch-site': 'same-origin', origin: bridge.url });

test('good, bad and failing traffic leaves no secret in logs or answers', async () => {
  // NextAuth cookies: valid v4 and v5, tampered, wrongly keyed, expired.
  const v4 = await nextAuthV4(SECRET, { sub: 'log-user-1', email: 'log1@example.com' });
  const v5 = await authJsV5(SECRET, { sub: 'log-user-2', email: 'log2@example.com' });
  const wrong = await nextAuthV4('another-secret-entirely', { sub: 'x' });
  const expired = await nextAuthV4(SECRET, { sub: 'x' }, -120);
  const tampered = v4.slice(0, -3) + (v4.endsWith('AAA') ? 'BBB' : 'AAA');
  for (const t of [v4, v5, wrong, expired, tampered]) secrets.add(t);
  for (const cookie of [
    cookieHeader({ 'next-auth.session-token': v4 }),
    cookieHeader({ 'authjs.session-token': v5 }),
    cookieHeader({ 'next-auth.session-token': wrong }),
    cookieHeader({ 'next-auth.session-token': expired }),
    cookieHeader({ 'next-auth.session-token': tampered }),
    cookieHeader({ 'next-auth.session-token': 'opaque-database-session-value-never-logged' }),
  ]) {
    await call('/page', { headers: { cookie } });
  }
  secrets.add('opaque-database-session-value-never-logged');

  // Clerk tokens: valid, forged with another key, wrong issuer.
  const good = clerk.mintSessionToken({ sub: 'user_logs' });
  const forged = clerk.mintSessionToken({ sub: 'user_logs', key: 'other' });
  const evil = clerk.mintSessionToken({ sub: 'user_logs', iss: 'https://evil.example.com' });
  for (const t of [good, forged, evil]) {
    secrets.add(t);
    await call('/page', { headers: { authorization: `Bearer ${t}` } });
    await call('/page', { headers: { cookie: cookieHeader({ __session: t, __client_uat: '1' }) } });
  }

  // Trickle: a sign-in token is minted, then Clerk fails in every way.
  const minted = await call('/__auth-bridge/sign-in-token', {
    method: 'POST',
    headers: { ...sameOrigin(), cookie: cookieHeader({ 'next-auth.session-token': v4 }) },
  });
  assert.equal(minted.status, 200);
  const { token } = JSON.parse(minted.body);
  secrets.add(token);
  seen.pop(); // that answer legitimately carries the token
  clerk.setFaults({ seed: 3, rules: [{ path: '/v1/*', sequence: [500, 'reset', { status: 429, retryAfter: 1 }, 502] }] });
  const v4b = await nextAuthV4(SECRET, { sub: 'log-user-3', email: 'log3@example.com' });
  secrets.add(v4b);
  for (let i = 0; i < 4; i++) {
    await call('/__auth-bridge/sign-in-token', {
      method: 'POST',
      headers: { ...sameOrigin(), cookie: cookieHeader({ 'next-auth.session-token': v4b }) },
    });
  }
  clerk.clearFaults();

  // Batch: digests in the upload, one Clerk refuses; then status, failures, wrong admin tokens.
  const lines = [
    JSON.stringify({ id: 'log-imp-1', email: 'imp1@example.com', email_verified: true, password_digest: DIGEST, password_hasher: 'bcrypt' }),
    JSON.stringify({ id: 'log-imp-2', email: 'imp2@example.com', password_digest: BAD_DIGEST, password_hasher: 'bcrypt' }),
    JSON.stringify({ id: 'log-imp-3', email: 'imp3@example.com', password_digest: DIGEST }),
    '{"id": "log-imp-4", "email": "imp4@example.com", "secret_field": "unknown"}',
  ].join('\n');
  const imported = await call('/__auth-bridge/admin/imports', { method: 'POST', headers: admin, body: lines });
  assert.equal(imported.status, 202);
  for (let i = 0; i < 3; i++) await bridge.scheduled(Date.now() + i * 60_000);
  for (let i = 0; i < 50; i++) {
    const status = JSON.parse((await call('/__auth-bridge/admin/status', { headers: admin })).body);
    if (status.pending === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await call('/__auth-bridge/admin/failures', { headers: admin });
  // A refused digest never blocks the user: it is a warning in the status, without the digest.
  const status = JSON.parse((await call('/__auth-bridge/admin/status', { headers: admin })).body);
  const warning = status.warnings.items.find((w) => w.legacy_id === 'log-imp-2');
  assert.equal(warning?.code, 'form_password_digest_invalid_code', 'the refused digest is listed as a warning');
  await call('/__auth-bridge/admin', { headers: admin });
  await call('/__auth-bridge/admin/status', { headers: { authorization: `Bearer ${ADMIN}x` } });

  await new Promise((r) => setTimeout(r, 300));
  const logs = bridge.logs.join('');
  assert.ok(logs.length > 0, 'the runtime printed something');
  for (const secret of secrets) {
    assert.ok(!logs.includes(secret), `a secret value (${secret.slice(0, 6)}…) appears in the logs`);
    for (const body of seen) {
      assert.ok(!body.includes(secret), `a secret value (${secret.slice(0, 6)}…) appears in an answer`);
    }
  }
});
