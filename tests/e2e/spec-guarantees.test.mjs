// SPEC.md "Guarantees", the parts a black-box tester can observe: a legacy user is bound to a
// Clerk user only on what Clerk's own record shows — `external_id` equal to the legacy id
// exactly (Clerk's list filters read a leading `+` / `-` as include / exclude markers), or a
// link through an address verified on both sides — through the trickle, the batch and the
// forwarded identity. Clerk is the local Backend API server; its users are the evidence.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBridge } from './harness.mjs';
import { startStack } from './stack.mjs';
import { nextAuthV4, cookieHeader } from './tokens.mjs';
import { through, clerkBrowser, signInToken, operator } from './spec-common.mjs';

const SECRET = 'spec-guarantees-nextauth-secret';
const ADMIN = 'spec-guarantees-admin-token-0123456789';
const FAPI = 'clerk.spec-guarantees.example.com';

let stack, clerk, bridge, ops;

before(async () => {
  stack = await startStack({ secret: SECRET, frontendApi: FAPI, clerk: { live: true, rateLimit: false, quiet: true } });
  clerk = stack.clerk;
  bridge = await stack.bridge({ MIGRATION_PHASE: 'migrate', CLERK_RATE_LIMIT: '1000/10s', AUTH_BRIDGE_ADMIN_TOKEN: ADMIN });
  ops = operator(bridge, ADMIN);
});
after(() => stack?.close());

const na = async (sub, extra = {}) => ({ 'next-auth.session-token': await nextAuthV4(SECRET, { sub, email: `${sub}@example.com`, ...extra }) });
const upload = (lines) => ops.call('/imports', { method: 'POST', body: lines.map((l) => JSON.stringify(l)).join('\n') + '\n' });
const runBatch = (timeoutMs) => ops.runBatch(timeoutMs);
const clerkUser = (externalId) => clerk.users().users.filter((u) => u.external_id === externalId);


test('guarantee: legacy id "+alice" is never bound to the Clerk user "alice" (trickle, batch, forwarding)', async () => {
  const alice = clerk.createUser({ external_id: 'alice', email_address: ['alice@example.com'], skip_password_requirement: true });
  const minus = clerk.createUser({ external_id: '-bob', email_address: ['minus-bob@example.com'], skip_password_requirement: true });
  // Trickle: a NextAuth user whose id is "+alice".
  const res = await signInToken(bridge, await na('+alice', { email: 'plus-alice@example.com' }));
  if (res.status === 200) {
    const body = await res.json();
    assert.notEqual(body.clerk_user_id, alice.id);
    assert.equal(clerk.users().users.find((u) => u.id === body.clerk_user_id).external_id, '+alice');
  } else {
    assert.ok(res.status !== 500, `refused with ${res.status}`);
    await res.arrayBuffer();
  }
  // Batch: "bob" must not find "-bob" (an exclude marker in Clerk's list filters).
  const up = await upload([{ id: 'bob', email: 'bob@example.com', email_verified: true }, { id: '+carol', email: 'carol@example.com', email_verified: true }]);
  assert.equal(up.status, 202);
  await runBatch();
  const bob = clerkUser('bob');
  assert.equal(bob.length, 1);
  assert.notEqual(bob[0].id, minus.id);
  assert.equal(clerk.users().users.find((u) => u.id === minus.id).external_id, '-bob', 'untouched');
  assert.equal(clerk.users().users.find((u) => u.id === alice.id).external_id, 'alice', 'untouched');
  assert.equal(clerkUser('+carol').length, 1);
  // Forwarding: alice's Clerk session is alice, not "+alice".
  const a = (await through(bridge, '/whoami', { cookie: cookieHeader(clerkBrowser(clerk, { sub: alice.id })) })).auth;
  assert.equal(a['x-auth-user-id'], 'alice');
});

test('guarantee: an unverified Clerk-side address is never linked, even when the legacy side is verified', async () => {
  const reserved = clerk.createUser({ email_address: ['reserved@example.com'], email_address_identification_status: ['reserved'], skip_password_requirement: true });
  assert.notEqual(reserved.email_addresses[0].verification?.status, 'verified');
  const res = await signInToken(bridge, await na('legacy-reserved', { email: 'reserved@example.com', email_verified: true }));
  if (res.status === 200) {
    const body = await res.json();
    assert.notEqual(body.clerk_user_id, reserved.id);
  } else {
    assert.ok(res.status < 500 || res.status === 503, `status ${res.status}`);
    await res.arrayBuffer();
  }
  const up = await upload([{ id: 'legacy-reserved-batch', email: 'reserved@example.com', email_verified: true }]);
  assert.equal(up.status, 202);
  await runBatch();
  const after = clerk.users().users.find((u) => u.id === reserved.id);
  assert.equal(after.external_id ?? null, null, 'the reserved-address user was not bound to a legacy id');
  for (const id of ['legacy-reserved', 'legacy-reserved-batch']) {
    for (const u of clerkUser(id)) assert.notEqual(u.id, reserved.id);
  }
});


test('guarantee: x-auth-user-id never changes for a person — a just-migrated user keeps the legacy id on every isolate', async () => {
  const cookies = await na('legacy-stable');
  assert.equal((await through(bridge, '/whoami', { cookie: cookieHeader(cookies) })).auth['x-auth-user-id'], 'legacy-stable');
  const res = await signInToken(bridge, cookies);
  assert.equal(res.status, 200);
  const { clerk_user_id: clerkId } = await res.json();
  // The new Clerk session, first request, on this isolate and on two fresh ones (own KV).
  const others = await Promise.all([0, 1].map(() => startBridge(stack.settings())));
  try {
    for (const b of [bridge, others[0]]) {
      const a = (await through(b, '/whoami', { cookie: cookieHeader({ ...clerkBrowser(clerk, { sub: clerkId }), ...cookies }) })).auth;
      assert.equal(a['x-auth-source'], 'clerk');
      assert.equal(a['x-auth-user-id'], 'legacy-stable');
      assert.equal(a['x-auth-clerk-user-id'], clerkId);
    }
    // When Clerk cannot say (its user look-up failing), the Clerk id is never sent in its place.
    clerk.addFault({ path: `/v1/users/${clerkId}`, actions: [503], probability: 1 });
    const a = (await through(others[1], '/whoami', { cookie: cookieHeader(clerkBrowser(clerk, { sub: clerkId })) })).auth;
    assert.notEqual(a['x-auth-user-id'], clerkId);
    assert.ok(a['x-auth-user-id'] === undefined || a['x-auth-user-id'] === 'legacy-stable', JSON.stringify(a));
  } finally {
    clerk.clearFaults();
    await Promise.all(others.map((b) => b.close()));
  }
});
