// scripts/dev's settings: the environment wins over the demo defaults, a Clerk of one's own
// replaces the local stand-in, and values survive wrangler's dotenv reading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { devSettings, dotenvLine, describe, usesOwnClerk, DEMO_NEXTAUTH_SECRET, DEMO_ADMIN_TOKEN } from '../scripts/lib/dev-settings.mjs';

const clerk = { api_url: 'http://127.0.0.1:8788', publishable_key: 'pk_live_bG9jYWwk', secret_key: 'sk_test_local' };
const demoOrigin = 'http://127.0.0.1:8790';

test('unset settings keep the demo defaults, the local Clerk stand-in included', () => {
  assert.deepEqual(devSettings({ PATH: '/bin', HOME: '/root' }, { demoOrigin, clerk }), {
    NEXTAUTH_SECRET: DEMO_NEXTAUTH_SECRET,
    AUTH_BRIDGE_ADMIN_TOKEN: DEMO_ADMIN_TOKEN,
    ORIGIN_URL: demoOrigin,
    CLERK_API_URL: clerk.api_url,
    CLERK_PUBLISHABLE_KEY: clerk.publishable_key,
    CLERK_SECRET_KEY: clerk.secret_key,
  });
});

test('settings from the environment win; unrelated variables are not passed', () => {
  const env = {
    ORIGIN_URL: 'http://127.0.0.1:3000',
    NEXTAUTH_SECRET: 'mine',
    MIGRATION_PHASE: 'observe',
    AUTH_BRIDGE_ADMIN_TOKEN: 'my-token-0123456789',
    CLERK_RATE_LIMIT: '1000/10s',
    READINESS_MIN_CLERK_SHARE: '0.9',
    HOME: '/root',
    AUTH_BRIDGE_DEV_VARS: '/tmp/x.env',
    NEXTAUTH_: '',
  };
  const s = devSettings(env, { clerk });
  assert.equal(s.ORIGIN_URL, 'http://127.0.0.1:3000');
  assert.equal(s.NEXTAUTH_SECRET, 'mine');
  assert.equal(s.MIGRATION_PHASE, 'observe');
  assert.equal(s.AUTH_BRIDGE_ADMIN_TOKEN, 'my-token-0123456789');
  assert.equal(s.CLERK_RATE_LIMIT, '1000/10s');
  assert.equal(s.READINESS_MIN_CLERK_SHARE, '0.9');
  assert.equal(s.HOME, undefined);
  assert.equal(s.AUTH_BRIDGE_DEV_VARS, undefined, "scripts/dev's own variable");
  assert.equal(s.CLERK_API_URL, clerk.api_url, 'no Clerk keys given: the stand-in stays');
  assert.equal(devSettings({ AUTH_SECRET: 'v5-secret' }).NEXTAUTH_SECRET, 'v5-secret', 'an Auth.js v5 secret');
  assert.equal(devSettings({ AUTH_SECRET: 'v5', NEXTAUTH_SECRET: 'v4' }).NEXTAUTH_SECRET, 'v4');
});

test('Clerk keys of ones own replace every stand-in value', () => {
  const env = { CLERK_PUBLISHABLE_KEY: 'pk_test_real', CLERK_SECRET_KEY: 'sk_test_real' };
  assert.ok(usesOwnClerk(env));
  assert.ok(!usesOwnClerk({ CLERK_API_URL: 'http://x' }));
  const s = devSettings(env, { demoOrigin, clerk });
  assert.equal(s.CLERK_PUBLISHABLE_KEY, 'pk_test_real');
  assert.equal(s.CLERK_SECRET_KEY, 'sk_test_real');
  assert.equal(s.CLERK_API_URL, undefined, 'the real Backend API (the worker default)');
});

test('dotenv lines keep dollars, spaces, hashes and PEM line breaks; quotes are refused', () => {
  assert.equal(dotenvLine('A', 'x$y ${HOME} # z'), 'A="x\\$y \\${HOME} # z"');
  assert.equal(dotenvLine('PEM', '-----BEGIN-----\nabc\n-----END-----'), 'PEM="-----BEGIN-----\\nabc\\n-----END-----"');
  assert.throws(() => dotenvLine('B', 'a"b'), /double quote/);
  assert.throws(() => dotenvLine('B', 'a\\b'), /backslash/);
});

test('secrets are shortened when printed, public values are not', () => {
  assert.equal(describe('NEXTAUTH_SECRET', 'a-very-long-secret-value'), 'NEXTAUTH_SECRET = a-very-l… (24 characters)');
  assert.equal(describe('AUTH_BRIDGE_ADMIN_TOKEN', 'short'), 'AUTH_BRIDGE_ADMIN_TOKEN = (set)');
  assert.equal(describe('CLERK_PUBLISHABLE_KEY', 'pk_live_abc'), 'CLERK_PUBLISHABLE_KEY = pk_live_abc');
  assert.equal(describe('ORIGIN_URL', 'http://127.0.0.1:3000'), 'ORIGIN_URL = http://127.0.0.1:3000');
});
