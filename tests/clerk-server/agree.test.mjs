// The local Clerk server against the shared table of Backend API cases (cases.json beside this
// file). The in-memory Clerk of the host tests runs the same table (tests/fakes_agree.rs), so
// the two fakes agree with each other and with the spec: `+`/`-` markers in external_id and
// user_id, uniqueness (external id included, by default), digest and identifier validation,
// and email search finding unverified addresses.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startClerkServer } from './server.mjs';

const cases = JSON.parse(readFileSync(new URL('./cases.json', import.meta.url), 'utf8'));
let server;

before(async () => {
  server = await startClerkServer({ port: 0, rateLimit: false, quiet: true });
});
after(async () => {
  await server?.close();
});

async function call(method, path, body) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.secretKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

const substitute = (v, ids) => ids.reduceRight((s, id, i) => s.replaceAll(`$${i}`, id), v);

function checkError(name, expect, res) {
  assert.equal(res.status, expect.status, `${name}: ${JSON.stringify(res.json)}`);
  if (expect.status !== 200) {
    assert.equal(res.json.errors[0].code, expect.code, name);
    assert.equal(res.json.errors[0].meta?.param_name, expect.param, name);
  }
}

test('the table is the point', () => {
  assert.ok(cases.length >= 40, `${cases.length}`);
});

for (const c of cases) {
  test(`local Clerk server: ${c.name}`, async () => {
    server.reset();
    const ids = c.seed.map((body) => server.createUser(body).id);
    const { op } = c.call;
    if (op === 'find') {
      const qs = new URLSearchParams();
      for (const [key, values] of Object.entries(c.call.query)) {
        for (const v of values) qs.append(key, substitute(v, ids));
      }
      qs.append('limit', '100');
      const res = await call('GET', `/v1/users?${qs}`);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      const got = res.json.map((u) => ids.indexOf(u.id)).sort((a, b) => a - b);
      assert.deepEqual(got, c.expect.users, c.name);
      if (c.expect.email_status) assert.equal(res.json[0].email_addresses[0].verification.status, c.expect.email_status);
      if (c.expect.phone_status) assert.equal(res.json[0].phone_numbers[0].verification.status, c.expect.phone_status);
    } else if (op === 'create') {
      checkError(c.name, c.expect, await call('POST', '/v1/users', c.call.body));
    } else if (op === 'update') {
      checkError(c.name, c.expect, await call('PATCH', `/v1/users/${ids[c.call.user]}`, c.call.body));
    } else {
      assert.fail(`${c.name}: unknown op ${op}`);
    }
  });
}
