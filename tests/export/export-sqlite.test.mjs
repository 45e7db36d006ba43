// export-users against real SQLite files: Drizzle naming ("user", integer
// millisecond timestamps) and Prisma naming ("User", DATETIME columns).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { EXPORT_USERS, run, ndjson, schemaSql, tempDir } from './helpers.mjs';

const BCRYPT = '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';

function makeDb(file, sql) {
  const db = new Database(file);
  db.exec(sql);
  return db;
}

test('drizzle naming (bare .db path): ms timestamps, empty email skipped', async (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const file = path.join(tmp.dir, 'auth.db');
  const db = makeDb(file, schemaSql('sqlite-drizzle.sql'));
  const ins = db.prepare(`INSERT INTO "user" ("id", "name", "email", "emailVerified", "image") VALUES (?, ?, ?, ?, ?)`);
  ins.run('a1', 'Ann', 'ann@example.com', 1709294096789, 'https://img.example.com/a.png');
  ins.run('b2', null, 'ben@example.com', null, null);
  ins.run('c3', 'No Mail', '', null, null);
  ins.run('d4', 'Dot', 'dot@example.com', 1577836800000, '');
  db.close();

  const res = await run(EXPORT_USERS, ['--db', file]);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(res.stdout.split('\n'), [
    '{"id":"a1","email":"ann@example.com","email_verified":"2024-03-01T11:54:56.789Z","name":"Ann","image":"https://img.example.com/a.png"}',
    '{"id":"b2","email":"ben@example.com","email_verified":false}',
    '{"id":"d4","email":"dot@example.com","email_verified":"2020-01-01T00:00:00.000Z","name":"Dot"}',
    '',
  ]);
  assert.match(res.stderr, /^skipped: id=c3: no email, phone or username$/m);
  assert.match(res.stderr, /3 records written from .*auth\.db \(drizzle naming\), 1 skipped/);

  const explicit = await run(EXPORT_USERS, ['--db', `sqlite:${file}`, '--schema', 'drizzle']);
  assert.equal(explicit.code, 0, explicit.stderr);
  assert.equal(explicit.stdout, res.stdout);
});

test('prisma naming (sqlite: URL): DATETIME as ms or text, digest, unreadable date never verified', async (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const file = path.join(tmp.dir, 'dev.sqlite');
  const db = makeDb(file, schemaSql('sqlite-prisma.sql'));
  const ins = db.prepare(
    `INSERT INTO "User" ("id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt", "password")
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  ins.run('ck1', 'Alice', 'alice@example.com', 1700000000000, 'https://img.example.com/al.png', 1577836800000, 1577836800000, BCRYPT);
  ins.run('ck2', null, 'bob@example.com', null, null, '2021-05-06 07:08:09', 0, null);
  ins.run('ck3', 'Ghost', null, null, null, 1577836800000, 0, BCRYPT);
  ins.run('ck4', 'Odd', 'odd@example.com', 'not a date', null, '2022-01-02T03:04:05+01:00', 0, '   ');
  db.close();

  const res = await run(EXPORT_USERS, [
    '--db', `sqlite:${file}`, '--password-column', 'User.password', '--password-hasher', 'bcrypt',
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(ndjson(res.stdout), [
    {
      id: 'ck1',
      email: 'alice@example.com',
      email_verified: '2023-11-14T22:13:20.000Z',
      name: 'Alice',
      image: 'https://img.example.com/al.png',
      password_digest: BCRYPT,
      password_hasher: 'bcrypt',
      created_at: '2020-01-01T00:00:00.000Z',
    },
    { id: 'ck2', email: 'bob@example.com', email_verified: false, created_at: '2021-05-06T07:08:09.000Z' },
    { id: 'ck4', email: 'odd@example.com', email_verified: false, name: 'Odd', created_at: '2022-01-02T02:04:05.000Z' },
  ]);
  // Key order is part of the contract of the output, check one raw line.
  assert.equal(
    res.stdout.split('\n')[1],
    '{"id":"ck2","email":"bob@example.com","email_verified":false,"created_at":"2021-05-06T07:08:09.000Z"}',
  );
  assert.match(res.stderr, /^warning: id=ck4: unreadable emailVerified value, exported as unverified$/m);
  assert.match(res.stderr, /^skipped: id=ck3: no email, phone or username$/m);
  assert.match(res.stderr, /3 records written .*\(prisma naming\), 1 skipped, 1 with a password digest, 1 warnings/);
  assert.ok(!res.stderr.includes(BCRYPT));
});

test('streams a large table in id order', async (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const file = path.join(tmp.dir, 'big.sqlite3');
  const db = makeDb(file, schemaSql('sqlite-drizzle.sql'));
  const ins = db.prepare(`INSERT INTO "user" ("id", "email", "emailVerified") VALUES (?, ?, ?)`);
  const N = 30_000;
  db.transaction(() => {
    for (let i = N - 1; i >= 0; i--) {
      const id = `u${String(i).padStart(6, '0')}`;
      ins.run(id, `${id}@example.com`, i % 2 ? 1700000000000 + i : null);
    }
  })();
  db.close();

  const res = await run(EXPORT_USERS, ['--db', file]);
  assert.equal(res.code, 0, res.stderr);
  const records = ndjson(res.stdout);
  assert.equal(records.length, N);
  assert.deepEqual(records[0], { id: 'u000000', email: 'u000000@example.com', email_verified: false });
  assert.deepEqual(records[N - 1], {
    id: 'u029999',
    email: 'u029999@example.com',
    email_verified: new Date(1700000000000 + 29999).toISOString(),
  });
  for (let i = 1; i < N; i++) assert.ok(records[i - 1].id < records[i].id);
  assert.match(res.stderr, new RegExp(`${N} records written`));
});

test('unknown --db forms and missing files are refused clearly', async () => {
  const odd = await run(EXPORT_USERS, ['--db', 'redis://localhost']);
  assert.equal(odd.code, 1);
  assert.match(odd.stderr, /unrecognised --db "redis:\/\/localhost": expected postgres:\/\/…, mysql:\/\/…, mariadb:\/\/…/);
  const missing = await run(EXPORT_USERS, ['--db', '/nonexistent/dir/x.db']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /SQLite database not found/);
});
