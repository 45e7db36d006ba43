// The misconfiguration matrix: each setting missing or malformed, one at a time. Ordinary traffic
// still reaches the origin, the admin status names the problem, and no secret value is echoed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBridge } from './harness.mjs';
import { startOrigin } from './origin.mjs';

const ADMIN = 'misconfig-admin-token-0123456789';
const SECRETS = {
  NEXTAUTH_SECRET: 'nextauth-secret-value-should-never-be-echoed',
  CLERK_SECRET_KEY: 'sk_test_secretkeyvalueneverechoed',
  AUTH_BRIDGE_ASSERTION_SECRET: 'assertion-secret-never-echoed',
};

let origin;
before(async () => {
  origin = await startOrigin();
});
after(async () => origin?.close());

function base() {
  return {
    ORIGIN_URL: origin.url,
    MIGRATION_PHASE: 'migrate',
    CLERK_PUBLISHABLE_KEY: 'pk_live_Y2xlcmsubWlzY29uZmlnLmV4YW1wbGUuY29tJA',
    CLERK_API_URL: 'http://127.0.0.1:9',
    AUTH_BRIDGE_ADMIN_TOKEN: ADMIN,
    ...SECRETS,
  };
}

// [case name, change to the base config, setting the status must name]
const MATRIX = [
  ['MIGRATION_PHASE unknown', { MIGRATION_PHASE: 'half-way' }, 'MIGRATION_PHASE'],
  ['ORIGIN_URL malformed', { ORIGIN_URL: 'origin.internal:8080' }, 'ORIGIN_URL'],
  ['NEXTAUTH_SECRET missing', { NEXTAUTH_SECRET: undefined }, 'NEXTAUTH_SECRET'],
  ['NEXTAUTH_COOKIE_NAME malformed', { NEXTAUTH_COOKIE_NAME: 'bad name;' }, 'NEXTAUTH_COOKIE_NAME'],
  ['CLERK_SECRET_KEY missing', { CLERK_SECRET_KEY: undefined }, 'CLERK_SECRET_KEY'],
  ['CLERK_SECRET_KEY malformed', { CLERK_SECRET_KEY: 'not-a-clerk-key-but-still-secret' }, 'CLERK_SECRET_KEY'],
  ['CLERK_PUBLISHABLE_KEY missing', { CLERK_PUBLISHABLE_KEY: undefined }, 'CLERK_PUBLISHABLE_KEY'],
  ['CLERK_PUBLISHABLE_KEY malformed', { CLERK_PUBLISHABLE_KEY: 'pk_live_%%%notbase64' }, 'CLERK_PUBLISHABLE_KEY'],
  ['CLERK_JWT_KEY malformed', { CLERK_JWT_KEY: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----' }, 'CLERK_JWT_KEY'],
  ['CLERK_API_URL malformed', { CLERK_API_URL: 'api.clerk.com' }, 'CLERK_API_URL'],
  ['CLERK_SIGN_IN_URL malformed', { CLERK_SIGN_IN_URL: '/sign-in' }, 'CLERK_SIGN_IN_URL'],
  ['CLERK_RATE_LIMIT malformed', { CLERK_RATE_LIMIT: 'as fast as possible' }, 'CLERK_RATE_LIMIT'],
  ['INJECT_CLIENT_SCRIPT malformed', { INJECT_CLIENT_SCRIPT: 'yes please' }, 'INJECT_CLIENT_SCRIPT'],
  ['CLERK_TREAT_PENDING_AS_SIGNED_OUT malformed', { CLERK_TREAT_PENDING_AS_SIGNED_OUT: 'maybe' }, 'CLERK_TREAT_PENDING_AS_SIGNED_OUT'],
  ['NEXTAUTH_DATABASE_SESSIONS unknown', { NEXTAUTH_DATABASE_SESSIONS: 'sometimes' }, 'NEXTAUTH_DATABASE_SESSIONS'],
  ['CLERK_LEGACY_ID_CLAIM unset without a secret key', { CLERK_SECRET_KEY: undefined }, 'CLERK_LEGACY_ID_CLAIM'],
];

for (const [name, change, setting] of MATRIX) {
  test(`${name}: traffic flows, status names ${setting}, no secret echoed`, async () => {
    const vars = { ...base(), ...change };
    for (const [k, v] of Object.entries(vars)) if (v === undefined) delete vars[k];
    const bridge = await startBridge(vars);
    try {
      const res = await bridge.fetch('/ordinary/page?x=1', { headers: { cookie: 'next-auth.session-token=garbage' } });
      if (setting === 'ORIGIN_URL') {
        // Route mode: the request goes to its own URL, which locally leads back to the worker;
        // the Via loop guard stops it at once instead of recursing.
        assert.equal(res.status, 508);
      } else {
        assert.equal(res.status, 200);
        const seen = await res.json();
        assert.equal(seen.url, '/ordinary/page?x=1');
        assert.equal(seen.headers['x-auth-source'], 'anonymous');
      }
      const status = await bridge.fetch('/__auth-bridge/admin/status', { headers: { authorization: `Bearer ${ADMIN}` } });
      assert.equal(status.status, 200);
      const text = await status.text();
      const body = JSON.parse(text);
      assert.ok(JSON.stringify(body.problems).includes(setting), `status problems ${JSON.stringify(body.problems)} lack ${setting}`);
      // Secrets (and a malformed secret-kind value) must never be echoed; vars may be.
      const secretKind = setting in SECRETS || setting === 'CLERK_SECRET_KEY';
      for (const secret of [...Object.values(SECRETS), secretKind ? change[setting] : undefined].filter(Boolean)) {
        if (secret.length >= 12) assert.ok(!text.includes(secret), `status echoes a configured value`);
      }
    } finally {
      await bridge.close();
    }
  });
}

test('AUTH_BRIDGE_ADMIN_TOKEN too short: admin API stays disabled (404), traffic flows', async () => {
  const bridge = await startBridge({ ...base(), AUTH_BRIDGE_ADMIN_TOKEN: 'short' });
  try {
    assert.equal((await bridge.fetch('/page')).status, 200);
    const status = await bridge.fetch('/__auth-bridge/admin/status', { headers: { authorization: 'Bearer short' } });
    assert.equal(status.status, 404);
  } finally {
    await bridge.close();
  }
});

test('without AUTH_BRIDGE_ADMIN_TOKEN the admin API does not exist; with it, a wrong token is 401', async () => {
  const vars = base();
  delete vars.AUTH_BRIDGE_ADMIN_TOKEN;
  const closed = await startBridge(vars);
  try {
    const res = await closed.fetch('/__auth-bridge/admin/status', { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(res.status, 404);
  } finally {
    await closed.close();
  }
  const open = await startBridge(base());
  try {
    for (const authorization of [undefined, `Bearer ${ADMIN}x`, `Bearer ${ADMIN.slice(0, -1)}`, ADMIN, `Basic ${ADMIN}`]) {
      const res = await open.fetch('/__auth-bridge/admin/status', { headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 401, String(authorization));
      assert.equal(res.headers.get('cache-control'), 'no-store');
    }
  } finally {
    await open.close();
  }
});

test('repeated wrong admin tokens are slowed: 429 with Retry-After, without comparing', async () => {
  const bridge = await startBridge(base());
  try {
    const attempt = (token) =>
      bridge.fetch('/__auth-bridge/admin/status', { headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': '203.0.113.7' } });
    for (let i = 0; i < 5; i++) assert.equal((await attempt(`guess-${i}-0123456789abcdef`)).status, 401);
    const refused = await attempt(ADMIN);
    assert.equal(refused.status, 429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const other = await bridge.fetch('/__auth-bridge/admin/status', {
      headers: { authorization: `Bearer ${ADMIN}`, 'cf-connecting-ip': '198.51.100.1' },
    });
    assert.equal(other.status, 200, 'another address is not affected');
  } finally {
    await bridge.close();
  }
});
