// import-users against a local node:http server that mimics
// POST /__auth-bridge/admin/imports and GET /__auth-bridge/admin/status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Database from 'better-sqlite3';
import { EXPORT_USERS, IMPORT_USERS, run, schemaSql, tempDir } from './helpers.mjs';
import { retryAfterSeconds, formatStatus } from '../../scripts/lib/import-users.mjs';

const TOKEN = 'adm_test_token_5c1e0d';
const DIGEST = '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';
const FIELDS = new Set([
  'id', 'email', 'email_verified', 'name', 'first_name', 'last_name', 'image', 'username', 'phone',
  'password_digest', 'password_hasher', 'created_at', 'public_metadata', 'private_metadata',
]);

/**
 * Mock admin API. `importAnswers` is a list of overrides consumed one per
 * POST ({status, headers, body}); when empty, the body is validated like the
 * worker does and answered 202. `statusAnswers` feeds GET /status likewise.
 */
async function mockServer({ importAnswers = [], statusAnswers = [] } = {}) {
  const seen = { imports: [], status: [] };
  let importCount = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const entry = {
        at: Date.now(),
        method: req.method,
        url: req.url,
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        body,
      };
      const reply = (status, json, headers = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(typeof json === 'string' ? json : JSON.stringify(json));
      };
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return reply(401, { error: 'unauthorized' });
      if (req.method === 'POST' && req.url === '/__auth-bridge/admin/imports') {
        seen.imports.push(entry);
        const override = importAnswers.shift();
        if (override) return reply(override.status, override.body ?? {}, override.headers);
        const lines = body.split('\n');
        if (lines.at(-1) === '') lines.pop();
        const rejected = [];
        lines.forEach((line, i) => {
          let rec;
          try {
            rec = JSON.parse(line);
          } catch {
            return rejected.push({ line: i + 1, error: 'invalid JSON' });
          }
          const unknown = Object.keys(rec).find((k) => !FIELDS.has(k));
          if (unknown) return rejected.push({ line: i + 1, error: `unknown field "${unknown}"` });
          if (!rec.id) return rejected.push({ line: i + 1, error: 'missing id' });
        });
        importCount++;
        return reply(202, { import_id: `imp_${importCount}`, accepted: lines.length - rejected.length, rejected });
      }
      if (req.method === 'GET' && req.url === '/__auth-bridge/admin/status') {
        seen.status.push(entry);
        const a = statusAnswers.length > 1 ? statusAnswers.shift() : statusAnswers[0];
        return reply(a.status ?? 200, a.body, a.headers);
      }
      reply(404, { error: 'not found' });
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, seen, close: () => new Promise((r) => server.close(r)) };
}

const rec = (id, extra = {}) => JSON.stringify({ id: String(id), email: `u${id}@example.com`, ...extra });

// 13 file lines: one blank, three that the worker rejects.
const FILE_LINES = [
  rec(1), //                                          1
  rec(2), //                                          2
  '', //                                              3 blank
  rec(3, { bogus: 1 }), //                            4 rejected
  rec(4), //                                          5
  rec(5), //                                          6
  'not json', //                                      7 rejected
  rec(6), //                                          8
  rec(7), //                                          9
  rec(8), //                                         10
  rec(9), //                                         11
  rec(10, { password_digest: DIGEST, password_hasher: 'bcrypt', nope: true }), // 12 rejected
  rec(11), //                                        13
];

function writeFile(dir, lines = FILE_LINES) {
  const file = path.join(dir, 'users.ndjson');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

test('chunks, retries a 429 after Retry-After, maps rejected lines to file lines', async (t) => {
  const srv = await mockServer({ importAnswers: [{ status: 429, headers: { 'retry-after': '1' }, body: { error: 'rate_limited' } }] });
  const tmp = tempDir('auth-bridge-import-');
  t.after(async () => {
    tmp.cleanup();
    await srv.close();
  });
  const file = writeFile(tmp.dir);

  const res = await run(IMPORT_USERS, ['--url', `${srv.url}/`, '--token', TOKEN, '--chunk-lines', '4', file]);
  assert.equal(res.code, 3, `exit 3 when lines were rejected\n${res.stderr}`);

  const posts = srv.seen.imports;
  assert.equal(posts.length, 4, 'one 429 then three chunks');
  assert.equal(posts[1].body, posts[0].body, 'the refused chunk is sent again unchanged');
  assert.ok(posts[1].at - posts[0].at >= 950, `Retry-After honoured (waited ${posts[1].at - posts[0].at} ms)`);
  for (const p of posts) {
    assert.equal(p.authorization, `Bearer ${TOKEN}`);
    assert.equal(p.contentType, 'application/x-ndjson');
    assert.ok(p.body.endsWith('\n'));
  }
  assert.deepEqual(
    posts.slice(1).map((p) => p.body),
    [
      [FILE_LINES[0], FILE_LINES[1], FILE_LINES[3], FILE_LINES[4]].join('\n') + '\n',
      FILE_LINES.slice(5, 9).join('\n') + '\n',
      FILE_LINES.slice(9, 13).join('\n') + '\n',
    ],
  );

  assert.equal(
    res.stdout,
    [
      'accepted: 9',
      'rejected: 3',
      'blank lines ignored: 1',
      '  line 4: unknown field "bogus"',
      '  line 7: invalid JSON',
      '  line 12: unknown field "nope"',
      'import ids: imp_1, imp_2, imp_3',
      '',
    ].join('\n'),
  );
  // Not a TTY: plain progress lines.
  assert.match(res.stderr, /^chunk 1 \(lines 1-5\): HTTP 429, retrying in 1s$/m);
  assert.match(res.stderr, /^chunk 1 \(lines 1-5\): 3 accepted, 1 rejected$/m);
  assert.match(res.stderr, /^chunk 2 \(lines 6-9\): 3 accepted, 1 rejected$/m);
  assert.match(res.stderr, /^chunk 3 \(lines 10-13\): 3 accepted, 1 rejected$/m);
  for (const out of [res.stdout, res.stderr]) {
    assert.ok(!out.includes(DIGEST), 'digest printed');
    assert.ok(!out.includes(TOKEN), 'token printed');
  }
});

test('token from the environment, --watch polls status until pending is 0', async (t) => {
  const counts = (pending, migrated) => ({ phase: 'migrate', counts: { pending, migrated, failed: 0, skipped: 1 }, eta: `${pending}s` });
  const srv = await mockServer({
    statusAnswers: [
      { body: counts(4, 0) },
      { status: 503, headers: { 'retry-after': '0' }, body: { error: 'unavailable' } },
      { body: counts(2, 2) },
      { body: counts(0, 4) },
      { body: counts(0, 4) },
    ],
  });
  const tmp = tempDir('auth-bridge-import-');
  t.after(async () => {
    tmp.cleanup();
    await srv.close();
  });
  const good = [rec(1), rec(2), rec(3), rec(4), rec(5)];
  const file = writeFile(tmp.dir, good);
  const res = await run(IMPORT_USERS, ['--url', srv.url, '--watch', '--watch-interval', '0.05', file], {
    env: { AUTH_BRIDGE_ADMIN_TOKEN: TOKEN },
  });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(srv.seen.imports.length, 1, 'default chunk size holds the whole file');
  assert.equal(srv.seen.imports[0].body, good.join('\n') + '\n');
  assert.equal(srv.seen.status.length, 4, 'stops at the first pending = 0');
  assert.match(res.stdout, /^accepted: 5\nrejected: 0\n/);
  assert.match(res.stderr, /^phase migrate, pending 4, migrated 0, failed 0, skipped 1, eta 4s$/m);
  assert.match(res.stderr, /^phase migrate, pending 0, migrated 4, failed 0, skipped 1, eta 0s$/m);
  assert.ok(!res.stderr.includes(TOKEN) && !res.stdout.includes(TOKEN));
});

test('a refused chunk stops the upload with a resume point; --from-line resumes there', async (t) => {
  const srv = await mockServer({
    importAnswers: [null, { status: 400, body: { error: 'bad_request', message: 'body too odd' } }],
  });
  const tmp = tempDir('auth-bridge-import-');
  t.after(async () => {
    tmp.cleanup();
    await srv.close();
  });
  const lines = [rec(1), rec(2), rec(3), '', rec(4), rec(5), rec(6), rec(7)];
  const file = writeFile(tmp.dir, lines);

  const res = await run(IMPORT_USERS, ['--url', srv.url, '--token', TOKEN, '--chunk-lines', '3', file]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /chunk 2 \(lines 5-7\): HTTP 400: .*body too odd/);
  assert.match(res.stderr, /resume with --from-line 5\b/);
  assert.match(res.stdout, /^accepted: 3\nrejected: 0\n/);

  const again = await run(IMPORT_USERS, ['--url', srv.url, '--token', TOKEN, '--chunk-lines', '3', '--from-line', '5', file]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    srv.seen.imports.slice(2).map((p) => p.body),
    [[rec(4), rec(5), rec(6)].join('\n') + '\n', rec(7) + '\n'],
  );
  assert.match(again.stderr, /^chunk 1 \(lines 5-7\): 3 accepted, 0 rejected$/m);
  assert.match(again.stderr, /^chunk 2 \(lines 8-8\): 1 accepted, 0 rejected$/m);
});

test('wrong token and missing admin API are reported, not retried', async (t) => {
  const srv = await mockServer();
  const tmp = tempDir('auth-bridge-import-');
  t.after(async () => {
    tmp.cleanup();
    await srv.close();
  });
  const file = writeFile(tmp.dir, [rec(1)]);
  const bad = await run(IMPORT_USERS, ['--url', srv.url, '--token', 'wrong', file]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /HTTP 401: the admin token was refused/);
  assert.ok(!bad.stderr.includes('wrong'));

  const noApi = await run(IMPORT_USERS, ['--url', `${srv.url}/elsewhere`, '--token', TOKEN, file]);
  assert.equal(noApi.code, 1);
  assert.match(noApi.stderr, /HTTP 404: no admin API/);

  const noToken = await run(IMPORT_USERS, ['--url', srv.url, file], { env: { AUTH_BRIDGE_ADMIN_TOKEN: '' } });
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /admin token is required/);
  assert.equal(srv.seen.imports.length, 0);
});

test('Retry-After parsing and status formatting', () => {
  assert.equal(retryAfterSeconds('7'), 7);
  assert.equal(retryAfterSeconds(null), null);
  assert.equal(retryAfterSeconds('soon'), null);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(retryAfterSeconds('Thu, 01 Jan 2026 00:00:30 GMT', now), 30);
  assert.equal(retryAfterSeconds('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(formatStatus({ pending: 3, migrated: 1, failed: 2, skipped: 0 }), 'pending 3, migrated 1, failed 2, skipped 0');
  assert.equal(
    formatStatus({ phase: 'observe', counts: { pending: 0 }, rate: { limit: 100, window_s: 10 } }),
    'phase observe, pending 0, migrated ?, failed ?, skipped ?, rate {"limit":100,"window_s":10}',
  );
});

test('export-users output is accepted whole by the import endpoint', async (t) => {
  const srv = await mockServer();
  const tmp = tempDir('auth-bridge-import-');
  t.after(async () => {
    tmp.cleanup();
    await srv.close();
  });
  const dbFile = path.join(tmp.dir, 'dev.sqlite');
  const db = new Database(dbFile);
  db.exec(schemaSql('sqlite-prisma.sql'));
  const ins = db.prepare(
    `INSERT INTO "User" ("id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt", "password")
     VALUES (?, ?, ?, ?, ?, ?, 0, ?)`,
  );
  ins.run('a', 'A', 'a@example.com', 1700000000000, 'https://img.example.com/a.png', 1577836800000, DIGEST);
  ins.run('b', null, 'b@example.com', null, null, '2021-05-06 07:08:09', null);
  ins.run('c', 'C', null, null, null, 1577836800000, null);
  db.close();
  const out = path.join(tmp.dir, 'users.ndjson');
  const exp = await run(EXPORT_USERS, [
    '--db', dbFile, '--out', out, '--password-column', 'User.password', '--password-hasher', 'bcrypt',
  ]);
  assert.equal(exp.code, 0, exp.stderr);
  const imp = await run(IMPORT_USERS, ['--url', srv.url, '--token', TOKEN, out]);
  assert.equal(imp.code, 0, imp.stderr + imp.stdout);
  assert.match(imp.stdout, /^accepted: 2\nrejected: 0\n/);
  assert.equal(srv.seen.imports[0].body, fs.readFileSync(out, 'utf8'));
  assert.ok(!imp.stderr.includes(DIGEST) && !imp.stdout.includes(DIGEST));
});

test('an answer that does not account for every line sent is flagged', async (t) => {
  const srv = await mockServer({
    importAnswers: [{ status: 202, body: { import_id: 'imp_x', accepted: 1, rejected: [{ line: 2, error: 'duplicate id' }] } }],
  });
  const tmp = tempDir('auth-bridge-import-');
  t.after(async () => {
    tmp.cleanup();
    await srv.close();
  });
  const file = writeFile(tmp.dir, [rec(1), rec(2), rec(3)]);
  const res = await run(IMPORT_USERS, ['--url', srv.url, '--token', TOKEN, file]);
  assert.equal(res.code, 3);
  assert.match(res.stderr, /^warning: chunk 1: 3 lines sent but the answer counts 1 accepted \+ 1 rejected$/m);
  assert.match(res.stdout, /^ {2}line 2: duplicate id$/m);
});
