// The pass-through proxy under real workerd: what the origin receives and what the client gets back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startBridge, deadPort } from './harness.mjs';
import { startOrigin, pattern, BIG_SIZE } from './origin.mjs';
import { startClerkServer } from '../clerk-server/server.mjs';

let origin, bridge;

before(async () => {
  origin = await startOrigin();
  bridge = await startBridge({ ORIGIN_URL: origin.url });
});
after(async () => {
  await bridge?.close();
  await origin?.close();
});

test('GET with a query reaches the origin with path, query and headers', async () => {
  const res = await bridge.fetch('/some/path?x=1&y=two%20words&x=3', { headers: { 'x-custom': 'kept' } });
  assert.equal(res.status, 200);
  const seen = await res.json();
  assert.equal(seen.method, 'GET');
  assert.equal(seen.url, '/some/path?x=1&y=two%20words&x=3');
  assert.equal(seen.headers['x-custom'], 'kept');
  assert.equal(seen.headers['x-auth-source'], 'anonymous');
  assert.equal(res.headers.get('x-origin'), 'yes');
});

for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
  test(`${method} with a body is forwarded intact`, async () => {
    const body = JSON.stringify({ method, text: 'héllo', n: [1, 2, 3] });
    const res = await bridge.fetch('/api/things?id=7', {
      method,
      body,
      headers: { 'content-type': 'application/json' },
    });
    const seen = await res.json();
    assert.equal(seen.method, method);
    assert.equal(seen.url, '/api/things?id=7');
    assert.equal(seen.body, body);
    assert.equal(seen.headers['content-type'], 'application/json');
  });
}

test('a large request body is streamed to the origin intact', async () => {
  const big = pattern(0, 3 * 1024 * 1024);
  const res = await bridge.fetch('/upload', { method: 'POST', body: big });
  const seen = await res.json();
  assert.equal(seen.url, '/upload');
  assert.equal(seen.bodyLength, big.length);
  assert.equal(seen.bodySha256, createHash('sha256').update(big).digest('hex'));
});

test('a 5 MiB streamed response arrives byte for byte', async () => {
  const res = await bridge.fetch('/big');
  assert.equal(res.status, 200);
  const buf = Buffer.from(await res.arrayBuffer());
  assert.equal(buf.length, BIG_SIZE);
  assert.ok(buf.equals(pattern(0, BIG_SIZE)), 'body differs');
});

test('a streaming body is not buffered: the first chunk arrives before the origin finishes', async () => {
  const started = Date.now();
  const res = await bridge.fetch('/slow-stream?ms=1500');
  const reader = res.body.getReader();
  const first = await reader.read();
  const firstAt = Date.now() - started;
  assert.equal(Buffer.from(first.value).toString(), 'first\n');
  assert.ok(firstAt < 1200, `first chunk took ${firstAt} ms: the response was buffered`);
  let rest = '';
  for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
  assert.equal(rest, 'second\n');
});

test('a 302 is returned, not followed', async () => {
  const res = await bridge.fetch('/redirect');
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/elsewhere');
  assert.deepEqual(res.headers.getSetCookie(), ['r=1; Path=/']);
  assert.ok(!origin.received.some((r) => r.url === '/elsewhere'), 'the redirect was followed');
});

test('three Set-Cookie headers come back as three', async () => {
  const res = await bridge.fetch('/cookies');
  assert.deepEqual(res.headers.getSetCookie(), [
    'a=1; Path=/; HttpOnly',
    'b=2; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT',
    'c=3; Path=/; SameSite=Lax; Secure',
  ]);
  assert.equal(await res.text(), 'cookies');
});

test('origin status codes pass through', async () => {
  for (const code of [201, 204, 304, 404, 418, 500, 503]) {
    const res = await bridge.fetch(`/status?code=${code}`);
    assert.equal(res.status, code, `status ${code}`);
    assert.equal(res.headers.get('x-origin'), 'yes');
    await res.arrayBuffer();
  }
});

test('client-sent identity headers never reach the origin', async () => {
  const res = await bridge.fetch('/whoami', {
    headers: {
      'x-auth-user-id': 'forged-admin',
      'X-Auth-Source': 'clerk',
      'x-auth-email': 'ceo@example.com',
      'x-auth-clerk-user-id': 'user_forged',
      'x-auth-session-id': 'sess_forged',
      'x-auth-assertion': 'forged.jws.value',
      'x-auth-anything-else': 'nope',
    },
  });
  const seen = await res.json();
  const identity = Object.fromEntries(Object.entries(seen.headers).filter(([k]) => k.startsWith('x-auth-')));
  assert.deepEqual(identity, { 'x-auth-source': 'anonymous' });
});

test('a request that can only be anonymous reaches the origin the same with or without entering wasm', async () => {
  // With an Authorization header (not a Clerk one: no Clerk here) the worker's Rust forwards
  // it; without, once the worker has made its plan, the JS entry does (src/fast_path.rs), also
  // with cookies none of which the worker reads. The origin must see the same request.
  const shapes = [
    ['/assets/app.css?v=3', { headers: { 'x-auth-user-id': 'forged', 'X-Auth-Source': 'clerk', accept: 'text/css' } }],
    ['/page', { method: 'HEAD' }],
    ['/api/items?id=7&q=a+b', { method: 'POST', body: 'a=1&b=2', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
    ['/forwarded', { headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } }],
    ['/caf%C3%A9/./x?y=%20', {}],
    ['/__auth-bridge-like/x?__clerk_handshake=1', {}],
  ];
  const seen = async (path, init) => {
    const res = await bridge.fetch(path, init);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get('x-origin'), 'yes', path);
    await res.arrayBuffer();
    const received = structuredClone(origin.received.at(-1));
    delete received.headers.cookie;
    delete received.headers.authorization;
    return received;
  };
  await bridge.fetch('/');
  for (const [path, init] of shapes) {
    const viaRust = await seen(path, { ...init, headers: { ...init.headers, authorization: 'Basic dTpw' } });
    const onPlan = await seen(path, init);
    assert.deepEqual(onPlan, viaRust, path);
    const withCookies = await seen(path, { ...init, headers: { ...init.headers, cookie: 'unrelated=1; theme=dark' } });
    assert.deepEqual(withCookies, viaRust, path);
    const identity = Object.entries(onPlan.headers).filter(([k]) => k.startsWith('x-auth-'));
    assert.deepEqual(identity, [['x-auth-source', 'anonymous']], path);
    assert.equal(onPlan.headers.via, '1.1 auth-bridge', path);
    assert.equal(onPlan.headers['x-forwarded-host'], new URL(bridge.url).host, path);
  }
});

test('the request carries a Via hop, and a request that already passed the worker is refused', async () => {
  const res = await bridge.fetch('/via', { headers: { via: '1.1 cdn' } });
  assert.equal((await res.json()).headers.via, '1.1 cdn, 1.1 auth-bridge');
  const loop = await bridge.fetch('/via', { headers: { via: '1.1 auth-bridge' } });
  assert.equal(loop.status, 508);
});

test('the origin learns the host the browser used', async () => {
  const res = await bridge.fetch('/host');
  const seen = await res.json();
  assert.equal(seen.headers['x-forwarded-host'], new URL(bridge.url).host);
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
  assert.equal(seen.headers.host, new URL(origin.url).host);
});

test('unknown /__auth-bridge/ paths are answered by the worker, not the origin', async () => {
  const before = origin.received.length;
  const res = await bridge.fetch('/__auth-bridge/nope');
  assert.equal(res.status, 404);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal(origin.received.length, before);
});

test('an unreachable origin gives a 502 with a short reason', async () => {
  const port = await deadPort();
  const down = await startBridge({ ORIGIN_URL: `http://127.0.0.1:${port}` });
  try {
    const res = await down.fetch('/anything');
    assert.equal(res.status, 502);
    assert.match(res.headers.get('content-type'), /text\/plain/);
    assert.match(await res.text(), /origin/i);
    // The isolate survives: the next request is answered the same way, not with a 500.
    const again = await down.fetch('/again', { method: 'POST', body: 'x' });
    assert.equal(again.status, 502);
  } finally {
    await down.close();
  }
});

test('misconfiguration never stops pass-through', async () => {
  const bad = await startBridge({
    ORIGIN_URL: origin.url,
    MIGRATION_PHASE: 'sideways',
    CLERK_RATE_LIMIT: 'fast',
    CLERK_API_URL: 'not a url',
    CLERK_PUBLISHABLE_KEY: 'garbage',
  });
  try {
    const res = await bad.fetch('/still-works');
    assert.equal(res.status, 200);
    const seen = await res.json();
    assert.equal(seen.url, '/still-works');
  } finally {
    await bad.close();
  }
});

test('the cron handler claims its run, plans and sends the backlog; the queue handler migrates it', async () => {
  const clerk = await startClerkServer({ port: 0, rateLimit: false, quiet: true });
  const admin = 'admin-token-for-the-handler-test';
  const b = await startBridge(
    {
      ORIGIN_URL: origin.url,
      CLERK_SECRET_KEY: clerk.secretKey,
      CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
      CLERK_API_URL: clerk.url,
      AUTH_BRIDGE_ADMIN_TOKEN: admin,
    },
    { captureLogs: true },
  );
  try {
    const id = `handler-${process.pid}`;
    const upload = await b.fetch('/__auth-bridge/admin/imports', {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
      body: JSON.stringify({ id, email: `${id}@example.com`, email_verified: true }),
    });
    assert.equal(upload.status, 202);
    const kv = await b.kv();
    const scheduledTime = Date.now();
    const result = await b.scheduled(scheduledTime);
    assert.equal(result.outcome, 'ok');
    // The tick claimed this very run and saved the pacer's state with the record planned.
    assert.equal(JSON.parse(await kv.get('lock:tick')).scheduled_ms, scheduledTime);
    const state = JSON.parse(await kv.get('pacer:state'));
    assert.ok(state.scheduled_until_ms >= scheduledTime, 'the pacer planned ahead');
    assert.ok(!b.logs.join('').includes('pacer tick failed'), 'the tick reported no failure');
    // The queue handler (run by the runtime for the sent message) created the Clerk user.
    let created;
    for (let i = 0; i < 60 && !created; i++) {
      created = clerk.users().users?.find((u) => u.external_id === id);
      if (!created) await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(created, 'the queued record reached Clerk through the queue handler');
    // The dead-letter handler, called directly: it acks the message and lists the record as failed.
    const worker = await b.mf.getWorker('auth-bridge');
    const dead = await worker.queue('auth-bridge-import-dlq', [
      {
        id: 'dead-1',
        timestamp: new Date(),
        attempts: 1,
        body: { import_id: 'imp-dead', record: JSON.stringify({ id: `${id}-dead`, email: `${id}-dead@example.com` }) },
      },
    ]);
    assert.equal(dead.outcome, 'ok');
    assert.deepEqual(dead.explicitAcks, ['dead-1']);
    assert.deepEqual(dead.retryMessages, []);
  } finally {
    await b.close();
    await clerk.close();
  }
});
