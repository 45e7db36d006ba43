// Fidelity tests for the local Clerk Backend API server, driven by the real @clerk/backend client
// and by plain fetch. Run: node --test tests/clerk-server.test.mjs
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { createClerkClient, verifyToken } from '@clerk/backend';
import { startClerkServer, parseRate, maxInWindow } from './clerk-server/server.mjs';
import { publishableKeyFor, frontendApiFromPublishableKey, secretKeyFor, decodeJwt } from './clerk-server/keys.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function expectClerkError(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the call to fail');
}

function api(server) {
  return async (method, path, body, headers = {}) => {
    const res = await fetch(server.url + path, {
      method,
      headers: { Authorization: `Bearer ${server.secretKey}`, 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json, text };
  };
}

describe('keys', () => {
  test('publishable key round-trips the Frontend API host; secret key has Clerk shape', () => {
    const pk = publishableKeyFor('my-app-12.clerk.accounts.dev');
    assert.match(pk, /^pk_test_/);
    assert.equal(Buffer.from(pk.slice(8), 'base64').toString(), 'my-app-12.clerk.accounts.dev$');
    assert.equal(frontendApiFromPublishableKey(pk), 'my-app-12.clerk.accounts.dev');
    assert.match(publishableKeyFor('clerk.example.com', { live: true }), /^pk_live_/);
    assert.equal(frontendApiFromPublishableKey('pk_test_bm90LWEta2V5'), null);
    assert.match(secretKeyFor(), /^sk_test_[0-9A-Za-z]{40}$/);
  });

  test('parseRate', () => {
    assert.deepEqual(parseRate('100/10s'), { limit: 100, windowMs: 10_000 });
    assert.deepEqual(parseRate('1000/10s'), { limit: 1000, windowMs: 10_000 });
    assert.deepEqual(parseRate('20/500ms'), { limit: 20, windowMs: 500 });
    assert.deepEqual(parseRate('5/m'), { limit: 5, windowMs: 60_000 });
    assert.throws(() => parseRate('fast'));
  });

  test('maxInWindow counts the busiest window', () => {
    const at = (...ts) => ts.map((t) => ({ t }));
    assert.equal(maxInWindow(at(0, 1, 2, 10_000, 10_001), 10_000), 3);
    // Windows are half-open: 10 000 ms apart is never in the same window.
    assert.equal(maxInWindow(at(0, 9_999, 10_000, 19_999), 10_000), 2);
    assert.equal(maxInWindow(at(0, 5_000, 9_999, 10_000), 10_000), 3);
    assert.equal(maxInWindow([], 10_000), 0);
  });
});

describe('with @clerk/backend', () => {
  let server;
  let clerk;
  before(async () => {
    server = await startClerkServer({ frontendApi: 'fidelity-01.clerk.accounts.dev', rateLimit: false, quiet: true });
    clerk = createClerkClient({ secretKey: server.secretKey, apiUrl: server.url });
  });
  after(() => server.close());

  test('create, get, list by external_id and email, update, delete', async () => {
    const user = await clerk.users.createUser({
      externalId: 'legacy-1',
      emailAddress: ['Ada@Example.com', 'ada.old@example.com'],
      emailAddressIdentificationStatus: ['verified', 'reserved'],
      firstName: 'Ada',
      lastName: 'Lovelace',
      username: 'ada_l',
      skipPasswordRequirement: true,
      publicMetadata: { plan: 'pro' },
      privateMetadata: { legacy: true },
      createdAt: '2020-01-02T03:04:05.000Z',
    });
    assert.match(user.id, /^user_[0-9A-Za-z]{27}$/);
    assert.equal(user.externalId, 'legacy-1');
    assert.equal(user.username, 'ada_l');
    assert.equal(user.createdAt, Date.parse('2020-01-02T03:04:05.000Z'));
    assert.equal(user.passwordEnabled, false);
    assert.deepEqual(user.publicMetadata, { plan: 'pro' });
    const [primary, second] = user.emailAddresses;
    assert.equal(primary.emailAddress, 'ada@example.com');
    assert.equal(user.primaryEmailAddressId, primary.id);
    assert.equal(user.primaryEmailAddress.emailAddress, 'ada@example.com');
    assert.equal(primary.verification.status, 'verified');
    assert.equal(second.verification.status, 'unverified');

    const again = await clerk.users.getUser(user.id);
    assert.equal(again.id, user.id);

    const byExt = await clerk.users.getUserList({ externalId: ['legacy-1', 'nope'] });
    assert.equal(byExt.totalCount, 1);
    assert.deepEqual(byExt.data.map((u) => u.id), [user.id]);
    const byEmail = await clerk.users.getUserList({ emailAddress: ['ADA.OLD@example.com'] });
    assert.deepEqual(byEmail.data.map((u) => u.id), [user.id]);
    const none = await clerk.users.getUserList({ emailAddress: ['nobody@example.com'] });
    assert.equal(none.totalCount, 0);
    assert.deepEqual(none.data, []);

    const updated = await clerk.users.updateUser(user.id, { firstName: 'Augusta', externalId: 'legacy-1b' });
    assert.equal(updated.firstName, 'Augusta');
    assert.equal(updated.externalId, 'legacy-1b');
    assert.ok(updated.updatedAt >= user.updatedAt);

    const merged = await clerk.users.updateUserMetadata(user.id, { publicMetadata: { theme: 'dark' }, privateMetadata: { legacy: null } });
    assert.deepEqual(merged.publicMetadata, { plan: 'pro', theme: 'dark' });
    assert.deepEqual(merged.privateMetadata, {});

    const deleted = await clerk.users.deleteUser(user.id);
    assert.equal(deleted.id, user.id);
    assert.equal(deleted.deleted, true);
    const gone = await expectClerkError(clerk.users.getUser(user.id));
    assert.equal(gone.status, 404);
    assert.equal(gone.errors[0].code, 'resource_not_found');
  });

  test('duplicate email and username surface form_identifier_exists with the param name', async () => {
    await clerk.users.createUser({ emailAddress: ['dup@example.com'], username: 'dupuser' });
    const e1 = await expectClerkError(clerk.users.createUser({ emailAddress: ['DUP@example.com'] }));
    assert.equal(e1.status, 422);
    assert.equal(e1.errors[0].code, 'form_identifier_exists');
    assert.equal(e1.errors[0].meta.paramName, 'email_address');
    assert.ok(e1.clerkTraceId);
    const e2 = await expectClerkError(clerk.users.createUser({ emailAddress: ['other@example.com'], username: 'DupUser' }));
    assert.equal(e2.errors[0].code, 'form_identifier_exists');
    assert.equal(e2.errors[0].meta.paramName, 'username');
    // A reserved (unverified) address is locked too.
    await clerk.users.createUser({ emailAddress: ['held@example.com'], emailAddressIdentificationStatus: ['reserved'] });
    const e3 = await expectClerkError(clerk.users.createUser({ emailAddress: ['held@example.com'] }));
    assert.equal(e3.errors[0].code, 'form_identifier_exists');
  });

  test('sign-in tokens: created pending, single use, unknown user is 404', async () => {
    const user = await clerk.users.createUser({ emailAddress: ['ticket@example.com'] });
    const sit = await clerk.signInTokens.createSignInToken({ userId: user.id, expiresInSeconds: 600 });
    assert.match(sit.id, /^sit_/);
    assert.equal(sit.status, 'pending');
    assert.equal(sit.userId, user.id);
    assert.ok(sit.token.length > 20);
    assert.ok(sit.url.includes(sit.token));
    const recorded = server.signInTokens().find((t) => t.id === sit.id);
    assert.equal(recorded.expires_in_seconds, 600);
    assert.equal(server.consumeSignInToken(sit.token).status, 'accepted');
    assert.throws(() => server.consumeSignInToken(sit.token), (e) => e.errors[0].code === 'sign_in_token_already_used_code');

    const missing = await expectClerkError(clerk.signInTokens.createSignInToken({ userId: 'user_doesnotexist', expiresInSeconds: 60 }));
    assert.equal(missing.status, 404);
    assert.equal(missing.errors[0].code, 'resource_not_found');

    const other = await clerk.signInTokens.createSignInToken({ userId: user.id, expiresInSeconds: 60 });
    const revoked = await clerk.signInTokens.revokeSignInToken(other.id);
    assert.equal(revoked.status, 'revoked');
    assert.throws(() => server.consumeSignInToken(other.token), (e) => e.errors[0].code === 'sign_in_token_revoked_code');
  });

  test('session tokens verify against the JWKS and the PEM; forged ones do not', async () => {
    const user = await clerk.users.createUser({ emailAddress: ['jwt@example.com'] });
    const token = server.mintSessionToken({ sub: user.id, azp: 'http://localhost:3000' });
    const { header, payload } = decodeJwt(token);
    assert.deepEqual(header, { alg: 'RS256', cat: 'cl_B7d4PD111AAA', kid: server.kid, typ: 'JWT' });
    assert.deepEqual(Object.keys(payload).sort(), ['azp', 'exp', 'fva', 'iat', 'iss', 'nbf', 'sid', 'sub', 'v']);
    assert.equal(payload.iss, 'https://fidelity-01.clerk.accounts.dev');
    assert.equal(payload.exp - payload.iat, 60);

    const viaJwks = await verifyToken(token, { secretKey: server.secretKey, apiUrl: server.url, authorizedParties: ['http://localhost:3000'] });
    assert.equal(viaJwks.sub, user.id);
    const viaPem = await verifyToken(token, { jwtKey: server.publicKeyPem });
    assert.equal(viaPem.sid, payload.sid);

    const rejects = async (tok, why) => {
      await assert.rejects(verifyToken(tok, { jwtKey: server.publicKeyPem }), undefined, why);
      await assert.rejects(verifyToken(tok, { secretKey: server.secretKey, apiUrl: server.url }), undefined, why);
    };
    const now = Math.floor(Date.now() / 1000);
    await rejects(server.mintSessionToken({ sub: user.id, iat: now - 300 }), 'expired');
    await rejects(server.mintSessionToken({ sub: user.id, key: 'other' }), 'signed by another key');
    await rejects(server.mintSessionToken({ sub: user.id, nbf: now + 300 }), 'not yet valid');
    await assert.rejects(
      verifyToken(server.mintSessionToken({ sub: user.id, header: { kid: 'ins_unknown' } }), { secretKey: server.secretKey, apiUrl: server.url }),
      'unknown kid',
    );
    // The SDK does not check iss; the claim is still what the caller asked for.
    const wrongIss = server.mintSessionToken({ sub: user.id, iss: 'https://evil.example' });
    assert.equal(decodeJwt(wrongIss).payload.iss, 'https://evil.example');
    const custom = decodeJwt(server.mintSessionToken({ sub: user.id, claims: { o: { id: 'org_1' }, azp: null } })).payload;
    assert.deepEqual(custom.o, { id: 'org_1' });
    assert.equal('azp' in custom, false);
  });

  test('handshake payload for a registered nonce', async () => {
    const { nonce } = server.registerHandshake({ directives: ['__session=abc; Path=/', '__client_uat=123; Path=/'] });
    const payload = await clerk.clients.getHandshakePayload({ nonce });
    assert.deepEqual(payload.directives, ['__session=abc; Path=/', '__client_uat=123; Path=/']);
    const missing = await expectClerkError(clerk.clients.getHandshakePayload({ nonce: 'unknown' }));
    assert.equal(missing.status, 404);
  });

  test('a 429 surfaces its status and Retry-After through the client', async () => {
    server.setRateLimit({ limit: 3, windowMs: 2000 });
    try {
      for (let i = 0; i < 3; i++) await clerk.users.getUser('user_x').catch((e) => assert.equal(e.status, 404));
      const e = await expectClerkError(clerk.users.getUser('user_x'));
      assert.equal(e.status, 429);
      assert.equal(e.errors[0].code, 'too_many_requests');
      assert.ok(Number.isInteger(e.retryAfter) && e.retryAfter >= 1 && e.retryAfter <= 2, `retryAfter ${e.retryAfter}`);
      // The JWKS is not rate limited.
      const jwks = await fetch(`${server.url}/v1/jwks`, { headers: { Authorization: `Bearer ${server.secretKey}` } });
      assert.equal(jwks.status, 200);
    } finally {
      server.setRateLimit(false);
    }
  });
});

describe('plain HTTP', () => {
  let server;
  let call;
  before(async () => {
    server = await startClerkServer({ rateLimit: false, quiet: true });
    call = api(server);
  });
  after(() => server.close());

  test('authentication failures answer 401 ClerkErrors as application/json', async () => {
    const missing = await fetch(`${server.url}/v1/users`);
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get('content-type'), 'application/json');
    const mj = await missing.json();
    assert.equal(mj.errors[0].code, 'authorization_header_format_invalid');
    assert.equal(typeof mj.clerk_trace_id, 'string');
    const wrong = await call('GET', '/v1/users', undefined, { Authorization: 'Bearer sk_test_wrong' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.errors[0].code, 'clerk_key_invalid');
    assert.ok(wrong.json.errors[0].message && wrong.json.errors[0].long_message);
    const jwks = await fetch(`${server.url}/v1/jwks`);
    assert.equal(jwks.status, 401);
  });

  test('JWKS shape', async () => {
    const r = await call('GET', '/v1/jwks');
    assert.equal(r.status, 200);
    assert.equal(r.json.keys.length, 1);
    const [k] = r.json.keys;
    assert.deepEqual(Object.keys(k).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use']);
    assert.equal(k.kty, 'RSA');
    assert.equal(k.alg, 'RS256');
    assert.equal(k.use, 'sig');
    assert.equal(k.kid, server.kid);
    const pem = crypto.createPublicKey({ key: k, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    assert.equal(pem, server.publicKeyPem);
  });

  test('POST /v1/users rejects unknown fields with form_param_unknown, one error per field', async () => {
    const r = await call('POST', '/v1/users', { email_address: ['u1@example.com'], skip_email_verification: true, name: 'x' });
    assert.equal(r.status, 422);
    assert.deepEqual(r.json.errors.map((e) => e.code), ['form_param_unknown', 'form_param_unknown']);
    assert.deepEqual(r.json.errors.map((e) => e.meta.param_name).sort(), ['name', 'skip_email_verification']);
    assert.equal(r.json.errors[0].long_message.endsWith('is not a valid parameter for this request.'), true);
    assert.equal(server.users().total, 0);
  });

  test('POST /v1/users validation: types, passwords, hashers, statuses, formats', async () => {
    const codeOf = async (body) => {
      const r = await call('POST', '/v1/users', body);
      assert.equal(r.status, 422, JSON.stringify(r.json));
      return r.json.errors.map((e) => `${e.code}:${e.meta?.param_name}`);
    };
    assert.deepEqual(await codeOf({ email_address: 'a@example.com' }), ['form_param_value_invalid:email_address']);
    assert.deepEqual(await codeOf({ email_address: ['a@example.com'], password_digest: '$2a$10$abc' }), [
      'form_conditional_param_missing:password_hasher',
    ]);
    assert.deepEqual(await codeOf({ email_address: ['a@example.com'], password_hasher: 'rot13', password_digest: 'x' }), [
      'form_param_value_invalid:password_hasher',
    ]);
    assert.deepEqual(await codeOf({ email_address: ['a@example.com'], password_hasher: 'bcrypt', password_digest: 'not-bcrypt' }), [
      'form_password_digest_invalid_code:password_digest',
    ]);
    assert.deepEqual(await codeOf({ email_address: ['a@example.com'], password: 'short' }), ['form_password_length_too_short:password']);
    assert.deepEqual(await codeOf({ email_address: ['a@example.com', 'b@example.com'], email_address_identification_status: ['reserved'] }), [
      'form_param_array_length_mismatch:email_address_identification_status',
    ]);
    assert.deepEqual(await codeOf({ email_address: ['a@example.com'], email_address_identification_status: ['unverified'] }), [
      'form_param_value_invalid:email_address_identification_status',
    ]);
    assert.deepEqual(await codeOf({ email_address: ['not an email'] }), ['form_param_format_invalid:email_address']);
    assert.deepEqual(await codeOf({ phone_number: ['555-1234'] }), ['form_param_format_invalid:phone_number']);
    assert.deepEqual(await codeOf({ username: 'ab.cd' }), ['form_username_invalid_character:username']);
    assert.deepEqual(await codeOf({ username: 'abc' }), ['form_username_invalid_length:username']);
    assert.deepEqual(await codeOf({ email_address: ['a@example.com'], created_at: 'yesterday' }), ['form_param_invalid_time:created_at']);
    assert.deepEqual(await codeOf({ first_name: 'Only' }), ['form_param_missing:email_address,phone_number,username,web3_wallet']);
    assert.equal(server.users().total, 0);

    const bad = await call('POST', '/v1/users', '{"email_address": [');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errors[0].code, 'request_body_invalid');

    // Accepted: digest + hasher, short password with skip_password_checks, phone-only user.
    const ok1 = await call('POST', '/v1/users', {
      email_address: ['digest@example.com'],
      password_hasher: 'bcrypt',
      password_digest: '$2a$10$' + 'a'.repeat(53),
    });
    assert.equal(ok1.status, 200);
    assert.equal(ok1.json.password_enabled, true);
    const ok2 = await call('POST', '/v1/users', { email_address: ['short@example.com'], password: 'abc', skip_password_checks: true });
    assert.equal(ok2.status, 200);
    const ok3 = await call('POST', '/v1/users', { phone_number: ['+15555550100'], phone_number_identification_status: ['reserved'] });
    assert.equal(ok3.status, 200);
    assert.equal(ok3.json.phone_numbers[0].verification.status, 'unverified');
    assert.equal(ok3.json.phone_numbers[0].reserved, true);
    const dupPhone = await call('POST', '/v1/users', { phone_number: ['+15555550100'] });
    assert.equal(dupPhone.json.errors[0].code, 'form_identifier_exists');
    assert.equal(dupPhone.json.errors[0].meta.param_name, 'phone_number');
  });

  test('User object carries the fields of the spec', async () => {
    const r = await call('POST', '/v1/users', { email_address: ['shape@example.com'], external_id: 'legacy-shape' });
    for (const k of [
      'id', 'object', 'external_id', 'primary_email_address_id', 'primary_phone_number_id', 'primary_web3_wallet_id', 'username',
      'first_name', 'last_name', 'image_url', 'has_image', 'public_metadata', 'private_metadata', 'unsafe_metadata',
      'email_addresses', 'phone_numbers', 'web3_wallets', 'passkeys', 'password_enabled', 'two_factor_enabled', 'totp_enabled',
      'backup_code_enabled', 'external_accounts', 'saml_accounts', 'enterprise_accounts', 'last_sign_in_at', 'banned', 'locked',
      'lockout_expires_in_seconds', 'verification_attempts_remaining', 'created_at', 'updated_at', 'delete_self_enabled',
      'create_organization_enabled', 'last_active_at', 'mfa_enabled_at', 'mfa_disabled_at', 'legal_accepted_at',
    ]) {
      assert.ok(Object.hasOwn(r.json, k), `missing ${k}`);
    }
    assert.equal(r.json.object, 'user');
    const email = r.json.email_addresses[0];
    assert.equal(email.object, 'email_address');
    assert.equal(email.reserved, false);
    assert.deepEqual(email.verification, { object: 'verification_admin', status: 'verified', strategy: 'admin', attempts: null, expire_at: null });
  });

  test('PATCH /v1/users/{id} validates its own field list (metadata moved to /metadata)', async () => {
    const { json: user } = await call('POST', '/v1/users', { email_address: ['patch@example.com'] });
    const meta = await call('PATCH', `/v1/users/${user.id}`, { public_metadata: { a: 1 } });
    assert.equal(meta.status, 422);
    assert.equal(meta.json.errors[0].code, 'form_param_unknown');
    assert.equal(meta.json.errors[0].meta.param_name, 'public_metadata');
    const emailField = await call('PATCH', `/v1/users/${user.id}`, { email_address: ['x@example.com'] });
    assert.equal(emailField.json.errors[0].code, 'form_param_unknown');
    const noHasher = await call('PATCH', `/v1/users/${user.id}`, { password_digest: 'abc' });
    assert.equal(noHasher.json.errors[0].code, 'form_conditional_param_missing');
    const ok = await call('PATCH', `/v1/users/${user.id}`, { username: 'patched', last_name: 'P' });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.username, 'patched');
    const cleared = await call('PATCH', `/v1/users/${user.id}`, { username: '' });
    assert.equal(cleared.json.username, null);
    const missing = await call('PATCH', '/v1/users/user_missing', { first_name: 'x' });
    assert.equal(missing.status, 404);
    const put = await call('PUT', `/v1/users/${user.id}/metadata`, { private_metadata: { k: 'v' } });
    assert.deepEqual(put.json.private_metadata, { k: 'v' });
  });

  test('external_id duplicates are refused by default, and allowed (and reported) on request', async () => {
    const a = await call('POST', '/v1/users', { email_address: ['ext-a@example.com'], external_id: 'same' });
    const b = await call('POST', '/v1/users', { email_address: ['ext-b@example.com'], external_id: 'same' });
    assert.equal(a.status, 200);
    assert.equal(b.status, 422);
    assert.equal(b.json.errors[0].code, 'form_identifier_exists');
    assert.equal(b.json.errors[0].meta.param_name, 'external_id');

    const lax = await startClerkServer({ rateLimit: false, users: { externalIdUnique: false }, quiet: true });
    try {
      const lc = api(lax);
      assert.equal((await lc('POST', '/v1/users', { email_address: ['s1@example.com'], external_id: 'x' })).status, 200);
      assert.equal((await lc('POST', '/v1/users', { email_address: ['s2@example.com'], external_id: 'x' })).status, 200);
      const report = await (await fetch(`${lax.url}/__control/users`)).json();
      assert.equal(report.duplicates.by_external_id.x, 2);
      const list = await lc('GET', '/v1/users?external_id=x');
      assert.equal(list.json.length, 2);
    } finally {
      await lax.close();
    }
  });

  test('GET /v1/users: repeated keys, +/- ids, ordering, limit/offset, bare array', async () => {
    const reset = await fetch(`${server.url}/__control/reset`, { method: 'POST' });
    assert.equal(reset.status, 200);
    assert.equal(server.users().total, 0);
    const ids = [];
    for (const n of ['c', 'a', 'b']) {
      const r = await call('POST', '/v1/users', { email_address: [`${n}@list.example`], external_id: `ext-${n}`, first_name: n });
      ids.push(r.json.id);
    }
    const all = await call('GET', '/v1/users');
    assert.ok(Array.isArray(all.json));
    assert.deepEqual(all.json.map((u) => u.id), [...ids].reverse(), 'default order is -created_at');
    const byExt = await call('GET', '/v1/users?external_id=ext-a&external_id=ext-b&order_by=first_name');
    assert.deepEqual(byExt.json.map((u) => u.first_name), ['a', 'b']);
    const excl = await call('GET', `/v1/users?user_id=-${ids[0]}&order_by=%2Bcreated_at`);
    assert.deepEqual(excl.json.map((u) => u.id), ids.slice(1));
    const page = await call('GET', '/v1/users?order_by=created_at&limit=1&offset=1');
    assert.deepEqual(page.json.map((u) => u.id), [ids[1]]);
    const cursor = await call('GET', `/v1/users?order_by=created_at&starting_after=${ids[0]}`);
    assert.deepEqual(cursor.json.map((u) => u.id), ids.slice(1));
    const count = await call('GET', '/v1/users/count?email_address=a@list.example&email_address=c@list.example');
    assert.deepEqual(count.json, { object: 'total_count', total_count: 2 });
    assert.equal((await call('GET', '/v1/users?limit=0')).status, 422);
    assert.equal((await call('GET', '/v1/users?limit=501')).status, 422);
    assert.equal((await call('GET', '/v1/users?order_by=shoe_size')).status, 422);
    assert.equal((await call('GET', `/v1/users?order_by=username&starting_after=${ids[0]}`)).status, 422);
  });

  test('sign-in token body validation', async () => {
    const r = await call('POST', '/v1/sign_in_tokens', { expires_in_seconds: 60 });
    assert.equal(r.status, 422);
    assert.equal(r.json.errors[0].code, 'form_param_missing');
    assert.equal(r.json.errors[0].meta.param_name, 'user_id');
    const { json: user } = await call('POST', '/v1/users', { email_address: ['sit@example.com'] });
    const zero = await call('POST', '/v1/sign_in_tokens', { user_id: user.id, expires_in_seconds: 0 });
    assert.equal(zero.status, 422);
    const def = await call('POST', '/v1/sign_in_tokens', { user_id: user.id });
    assert.equal(def.status, 200);
    assert.deepEqual(Object.keys(def.json).sort(), ['created_at', 'id', 'object', 'status', 'token', 'updated_at', 'url', 'user_id']);
    const rec = (await (await fetch(`${server.url}/__control/sign-in-tokens`)).json()).tokens.find((t) => t.id === def.json.id);
    assert.equal(rec.expires_in_seconds, 2_592_000);
    const used = await fetch(`${server.url}/__control/sign-in-tokens/consume`, { method: 'POST', body: JSON.stringify({ token: def.json.token }) });
    assert.equal(used.status, 200);
    const reused = await fetch(`${server.url}/__control/sign-in-tokens/consume`, { method: 'POST', body: JSON.stringify({ token: def.json.token }) });
    assert.equal(reused.status, 400);
    assert.equal((await reused.json()).errors[0].code, 'sign_in_token_already_used_code');
  });

  test('key rotation keeps the old public key in the JWKS when asked', async () => {
    const oldKid = server.kid;
    const oldToken = server.mintSessionToken({ sub: 'user_rot' });
    const r = await fetch(`${server.url}/__control/rotate-key`, { method: 'POST', body: JSON.stringify({ keepOld: true }) });
    const { kid } = await r.json();
    assert.notEqual(kid, oldKid);
    assert.equal(server.kid, kid);
    const jwks = await call('GET', '/v1/jwks');
    assert.deepEqual(jwks.json.keys.map((k) => k.kid), [kid, oldKid]);
    const newToken = server.mintSessionToken({ sub: 'user_rot' });
    assert.equal(decodeJwt(newToken).header.kid, kid);
    assert.equal((await verifyToken(newToken, { jwtKey: server.publicKeyPem })).sub, 'user_rot');
    await assert.rejects(verifyToken(oldToken, { jwtKey: server.publicKeyPem }));
  });

  test('control: mint a session token over HTTP', async () => {
    const r = await fetch(`${server.url}/__control/session-token`, {
      method: 'POST',
      body: JSON.stringify({ sub: 'user_abc', iss: 'https://x.clerk.accounts.dev', ttlSeconds: 30, header: { kid: 'other-kid' } }),
    });
    const { token, claims, header } = await r.json();
    assert.equal(claims.iss, 'https://x.clerk.accounts.dev');
    assert.equal(claims.exp - claims.iat, 30);
    assert.equal(header.kid, 'other-kid');
    assert.equal(decodeJwt(token).payload.sub, 'user_abc');
  });
});

describe('rate limit (sliding window)', () => {
  test('a burst over the limit gets 429 with a sane Retry-After, then succeeds again', async () => {
    const server = await startClerkServer({ rateLimit: { limit: 5, windowMs: 1500 }, quiet: true });
    try {
      const call = api(server);
      const burst = await Promise.all(Array.from({ length: 8 }, () => call('GET', '/v1/users')));
      const statuses = burst.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
      const limited = burst.find((r) => r.status === 429);
      assert.equal(limited.json.errors[0].code, 'too_many_requests');
      const retryAfter = Number(limited.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 2, `Retry-After ${retryAfter}`);
      // JWKS does not count and is never limited.
      assert.equal((await call('GET', '/v1/jwks')).status, 200);
      await sleep(retryAfter * 1000);
      const after = await call('GET', '/v1/users');
      assert.equal(after.status, 200);

      const stats = server.stats({ windowMs: 1500 });
      assert.equal(stats.rate_limited, 3);
      assert.equal(stats.counted, 9, 'jwks is not counted');
      assert.equal(stats.max_admitted_in_window, 5);
      const log = server.requestLog();
      assert.equal(log.length, 10);
      assert.ok(log.every((e) => typeof e.t === 'number' && e.method && e.path && (e.status !== null)));
    } finally {
      await server.close();
    }
  });

  test('sliding, not fixed: capacity returns one slot at a time', async () => {
    const server = await startClerkServer({ rateLimit: { limit: 2, windowMs: 1000 }, quiet: true });
    try {
      const call = api(server);
      assert.equal((await call('GET', '/v1/users')).status, 200);
      await sleep(500);
      assert.equal((await call('GET', '/v1/users')).status, 200);
      assert.equal((await call('GET', '/v1/users')).status, 429);
      await sleep(600); // the first hit has left the window, the second has not
      assert.equal((await call('GET', '/v1/users')).status, 200);
      assert.equal((await call('GET', '/v1/users')).status, 429);
    } finally {
      await server.close();
    }
  });

  test('per-route limits and runtime reconfiguration over HTTP', async () => {
    const server = await startClerkServer({
      rateLimit: { limit: 100, windowMs: 10_000, routes: [{ method: 'POST', path: '/v1/users', limit: 1, windowMs: 10_000 }] },
      quiet: true,
    });
    try {
      const call = api(server);
      assert.equal((await call('POST', '/v1/users', { email_address: ['r1@example.com'] })).status, 200);
      const second = await call('POST', '/v1/users', { email_address: ['r2@example.com'] });
      assert.equal(second.status, 429);
      assert.equal(second.headers.get('retry-after'), '10');
      assert.equal((await call('GET', '/v1/users')).status, 200);
      const cfg = await fetch(`${server.url}/__control/rate-limit`, { method: 'PUT', body: JSON.stringify({ limit: 1000, windowMs: 10_000 }) });
      assert.equal((await cfg.json()).limit, 1000);
      assert.equal((await call('POST', '/v1/users', { email_address: ['r2@example.com'] })).status, 200);
    } finally {
      await server.close();
    }
  });
});

describe('faults', () => {
  test('scripted sequence: 503, 500, 502 (HTML), reset, then normal', async () => {
    const server = await startClerkServer({ rateLimit: false, quiet: true, faults: { rules: [{ path: '/v1/users*', sequence: [503, 500, 502, 'reset'] }] } });
    try {
      const call = api(server);
      const r1 = await call('GET', '/v1/users');
      assert.equal(r1.status, 503);
      assert.equal(r1.json.errors[0].code, 'service_unavailable');
      const r2 = await call('GET', '/v1/users');
      assert.equal(r2.status, 500);
      assert.equal(r2.json.errors[0].code, 'internal_clerk_error');
      const r3 = await call('GET', '/v1/users');
      assert.equal(r3.status, 502);
      assert.match(r3.headers.get('content-type'), /text\/html/);
      await assert.rejects(call('GET', '/v1/users'));
      assert.equal((await call('GET', '/v1/users')).status, 200);
      // Paths outside the pattern are untouched.
      assert.equal((await call('GET', '/v1/jwks')).status, 200);
      const outcomes = server.requestLog().map((e) => e.outcome);
      assert.deepEqual(outcomes.slice(0, 5), ['fault_503', 'fault_500', 'fault_502', 'fault_reset', 'ok']);
    } finally {
      await server.close();
    }
  });

  test('probabilistic faults are deterministic for a seed', async () => {
    const run = async (seed) => {
      const server = await startClerkServer({ rateLimit: false, quiet: true, faults: { seed, rules: [{ probability: 0.5, actions: [500, 503] }] } });
      try {
        const call = api(server);
        const out = [];
        for (let i = 0; i < 20; i++) out.push((await call('GET', '/v1/users')).status);
        return out;
      } finally {
        await server.close();
      }
    };
    const a = await run(42);
    const b = await run(42);
    const c = await run(7);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.ok(a.includes(200) && a.some((s) => s >= 500));
  });

  test('slow answers, timeouts and lost answers after the write', async () => {
    const server = await startClerkServer({ rateLimit: false, quiet: true });
    try {
      const call = api(server);
      server.setFaults({ rules: [{ method: 'GET', path: '/v1/users', sequence: [{ delay: 300 }, 'timeout'] }] });
      const t0 = Date.now();
      assert.equal((await call('GET', '/v1/users')).status, 200);
      assert.ok(Date.now() - t0 >= 290);
      await assert.rejects(fetch(`${server.url}/v1/users`, { headers: { Authorization: `Bearer ${server.secretKey}` }, signal: AbortSignal.timeout(300) }), {
        name: 'TimeoutError',
      });

      // The user is created, but the client never learns it: an idempotency trap.
      server.setFaults({ rules: [{ method: 'POST', path: '/v1/users', sequence: ['reset-after'] }] });
      await assert.rejects(call('POST', '/v1/users', { email_address: ['lost@example.com'], external_id: 'lost-1' }));
      assert.equal(server.users().total, 1);
      const retry = await call('POST', '/v1/users', { email_address: ['lost@example.com'], external_id: 'lost-1' });
      assert.equal(retry.status, 422);
      assert.equal(retry.json.errors[0].code, 'form_identifier_exists');
      const found = await call('GET', '/v1/users?external_id=lost-1');
      assert.equal(found.json.length, 1);

      // Faults set over HTTP, with `times`.
      await fetch(`${server.url}/__control/faults`, { method: 'PUT', body: JSON.stringify({ rules: [{ probability: 1, actions: [503], times: 2 }] }) });
      assert.deepEqual(
        [(await call('GET', '/v1/users')).status, (await call('GET', '/v1/users')).status, (await call('GET', '/v1/users')).status],
        [503, 503, 200],
      );
    } finally {
      await server.close();
    }
  });
});

describe('cli', () => {
  test('starts, prints keys as JSON, serves the API, stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [new URL('./clerk-server/cli.mjs', import.meta.url).pathname, '--port', '0', '--json', '--rate', '1000/10s', '--frontend-api', 'cli-test.clerk.accounts.dev'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const line = await new Promise((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d) => {
          buf += d;
          if (buf.includes('\n')) resolve(buf.split('\n')[0]);
        });
        child.on('exit', (code) => reject(new Error(`cli exited ${code}`)));
      });
      const info = JSON.parse(line);
      assert.equal(info.frontend_api, 'cli-test.clerk.accounts.dev');
      assert.equal(frontendApiFromPublishableKey(info.publishable_key), 'cli-test.clerk.accounts.dev');
      assert.match(info.public_key_pem, /BEGIN PUBLIC KEY/);
      assert.deepEqual({ limit: info.rate_limit.limit, windowMs: info.rate_limit.windowMs }, { limit: 1000, windowMs: 10_000 });
      const r = await fetch(`${info.url}/v1/jwks`, { headers: { Authorization: `Bearer ${info.secret_key}` } });
      assert.equal(r.status, 200);
      assert.equal((await r.json()).keys[0].kid, info.kid);
    } finally {
      const exited = new Promise((r) => child.on('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });
});
