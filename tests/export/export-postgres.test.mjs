// export-users against real PostgreSQL: Prisma naming ("User") and
// @auth/pg-adapter naming (users), each in its own throw-away schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EXPORT_USERS, run, ndjson, pgSchema, schemaSql, tempDir } from './helpers.mjs';

const BCRYPT = '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';
const BCRYPT_2 = '$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW';

async function seedPrisma(db) {
  const q = `INSERT INTO "User" ("id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt", "username", "password")
             VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8)`;
  // Verified, with name, image and a bcrypt digest.
  await db.client.query(q, ['u_alice', 'Alice Liddell', 'alice@example.com', '2024-01-15 08:00:00.123',
    'https://img.example.com/alice.png', '2023-06-01 10:00:00', null, BCRYPT]);
  // Unverified, no name, no image, no password.
  await db.client.query(q, ['u_bob', null, 'bob@example.com', null, null, '2023-07-02 11:30:00.5', null, null]);
  // Verified, empty-string password (an OAuth-only user): no digest exported.
  await db.client.query(q, ['u_carol', 'Carol', 'carol@example.com', '2024-02-29 23:59:59', null,
    '2023-08-03 00:00:00', null, '']);
  // No email, but a username: exported without email fields.
  await db.client.query(q, ['u_dave', 'Dave', null, null, null, '2023-09-04 12:00:00', 'dave', null]);
  // No email, phone or username: skipped with a reason.
  await db.client.query(q, ['u_erin', 'Erin', null, null, null, '2023-10-05 12:00:00', null, BCRYPT_2]);
}

test('prisma naming: exact NDJSON, digests only when asked, timestamps read as UTC', async (t) => {
  const db = await pgSchema(schemaSql('prisma-postgres.sql'));
  t.after(() => db.drop());
  await seedPrisma(db);

  // A local time zone far from UTC must not shift Prisma's UTC timestamps.
  const env = { TZ: 'America/New_York' };
  const res = await run(
    EXPORT_USERS,
    ['--db', db.url, '--schema', 'auto', '--password-column', 'User.password', '--password-hasher', 'bcrypt'],
    { env },
  );
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(res.stdout.split('\n'), [
    JSON.stringify({
      id: 'u_alice',
      email: 'alice@example.com',
      email_verified: '2024-01-15T08:00:00.123Z',
      name: 'Alice Liddell',
      image: 'https://img.example.com/alice.png',
      password_digest: BCRYPT,
      password_hasher: 'bcrypt',
      created_at: '2023-06-01T10:00:00.000Z',
    }),
    JSON.stringify({ id: 'u_bob', email: 'bob@example.com', email_verified: false, created_at: '2023-07-02T11:30:00.500Z' }),
    JSON.stringify({
      id: 'u_carol',
      email: 'carol@example.com',
      email_verified: '2024-02-29T23:59:59.000Z',
      name: 'Carol',
      created_at: '2023-08-03T00:00:00.000Z',
    }),
    JSON.stringify({ id: 'u_dave', name: 'Dave', username: 'dave', created_at: '2023-09-04T12:00:00.000Z' }),
    '',
  ]);
  assert.match(res.stderr, /^skipped: id=u_erin: no email, phone or username$/m);
  assert.match(res.stderr, /4 records written .*\(prisma naming\), 1 skipped, 1 with a password digest/);
  assert.ok(!res.stderr.includes(BCRYPT) && !res.stderr.includes(BCRYPT_2), 'digest leaked to stderr');

  // Without the password options the digest column is not read at all.
  const plain = await run(EXPORT_USERS, ['--db', db.url, '--schema', 'prisma'], { env });
  assert.equal(plain.code, 0, plain.stderr);
  const records = ndjson(plain.stdout);
  assert.equal(records.length, 4);
  for (const r of records) {
    assert.ok(!('password_digest' in r) && !('password_hasher' in r), JSON.stringify(r));
  }
  assert.ok(!plain.stdout.includes('$2b$'));
});

test('pg-adapter naming: digest joined from another table, cursor in small batches, --out file', async (t) => {
  const db = await pgSchema(schemaSql('pg-adapter.sql'));
  const tmp = tempDir();
  t.after(async () => {
    tmp.cleanup();
    await db.drop();
  });
  const ins = `INSERT INTO users (name, email, "emailVerified", image) VALUES ($1, $2, $3, $4) RETURNING id`;
  const ids = [];
  for (const row of [
    ['Ann', 'ann@example.com', '2024-03-01 12:34:56.789+02', 'https://img.example.com/ann.jpg'],
    [null, 'ben@example.com', null, null],
    ['No Mail', null, null, 'https://img.example.com/x.png'],
    ['Cy', 'cy@example.com', '2023-12-31 23:00:00-05', null],
    ['  ', 'dee@example.com', null, ''],
  ]) {
    ids.push((await db.client.query(ins, row)).rows[0].id);
  }
  await db.client.query(`INSERT INTO credentials ("userId", password_hash) VALUES ($1, $2), ($3, NULL), ($4, ''), ($5, $6)`, [
    ids[0], BCRYPT, ids[1], ids[3], ids[2], BCRYPT_2,
  ]);

  const out = path.join(tmp.dir, 'users.ndjson');
  const res = await run(EXPORT_USERS, [
    '--db', db.url, '--schema', 'pg', '--batch-size', '2', '--out', out,
    '--password-column', 'credentials.password_hash', '--password-hasher', 'bcrypt',
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, '', 'records go to --out, not stdout');
  assert.deepEqual(ndjson(fs.readFileSync(out, 'utf8')), [
    {
      id: String(ids[0]),
      email: 'ann@example.com',
      email_verified: '2024-03-01T10:34:56.789Z',
      name: 'Ann',
      image: 'https://img.example.com/ann.jpg',
      password_digest: BCRYPT,
      password_hasher: 'bcrypt',
    },
    { id: String(ids[1]), email: 'ben@example.com', email_verified: false },
    { id: String(ids[3]), email: 'cy@example.com', email_verified: '2024-01-01T04:00:00.000Z', name: 'Cy' },
    { id: String(ids[4]), email: 'dee@example.com', email_verified: false },
  ]);
  assert.match(res.stderr, new RegExp(`^skipped: id=${ids[2]}: no email, phone or username$`, 'm'));
  assert.match(res.stderr, /4 records written to .*users\.ndjson .*\(pg naming\), 1 skipped, 1 with a password digest/);
  assert.ok(!res.stderr.includes(BCRYPT_2) && !res.stderr.includes(BCRYPT));

  // auto finds the same table.
  const auto = await run(EXPORT_USERS, ['--db', db.url]);
  assert.equal(auto.code, 0, auto.stderr);
  assert.equal(ndjson(auto.stdout).length, 4);
  assert.match(auto.stderr, /\(pg naming\)/);
});

test('errors: wrong naming, ambiguous tables, unknown hasher, missing password column', async (t) => {
  const db = await pgSchema(schemaSql('pg-adapter.sql'));
  t.after(() => db.drop());

  const wrong = await run(EXPORT_USERS, ['--db', db.url, '--schema', 'prisma']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /no prisma users table/);
  assert.equal(wrong.stdout, '');

  const hasher = await run(EXPORT_USERS, [
    '--db', db.url, '--password-column', 'credentials.password_hash', '--password-hasher', 'bcrypt2',
  ]);
  assert.equal(hasher.code, 2);
  assert.match(hasher.stderr, /unknown password hasher "bcrypt2"/);
  assert.match(hasher.stderr, /scrypt_firebase/);

  const alone = await run(EXPORT_USERS, ['--db', db.url, '--password-hasher', 'bcrypt']);
  assert.equal(alone.code, 2);
  assert.match(alone.stderr, /go together/);

  const col = await run(EXPORT_USERS, [
    '--db', db.url, '--password-column', 'credentials.nope', '--password-hasher', 'argon2id',
  ]);
  assert.equal(col.code, 1);
  assert.match(col.stderr, /column "nope" not found in "credentials"/);

  const nojoin = await run(EXPORT_USERS, [
    '--db', db.url, '--password-column', 'verification_token.token', '--password-hasher', 'argon2id',
  ]);
  assert.equal(nojoin.code, 1);
  assert.match(nojoin.stderr, /no userId \/ user_id column/);

  await db.client.query(schemaSql('prisma-postgres.sql'));
  const ambiguous = await run(EXPORT_USERS, ['--db', db.url]);
  assert.equal(ambiguous.code, 1);
  assert.match(ambiguous.stderr, /several users tables found \("User", "users"\)/);
  const chosen = await run(EXPORT_USERS, ['--db', db.url, '--schema', 'prisma']);
  assert.equal(chosen.code, 0, chosen.stderr);
  assert.match(chosen.stderr, /0 records written .*\(prisma naming\)/);
});

test('kysely / drizzle naming ("user" table, uuid ids) is found by auto', async (t) => {
  const db = await pgSchema(schemaSql('kysely-postgres.sql'));
  t.after(() => db.drop());
  await db.client.query(
    `INSERT INTO "user" ("id", "name", "email", "emailVerified", "image") VALUES
       ('00000000-0000-4000-8000-000000000001', 'Una', 'una@example.com', '2025-05-05 05:05:05.5', NULL),
       ('00000000-0000-4000-8000-000000000002', NULL, 'vic@example.com', NULL, 'https://img.example.com/v.png'),
       ('00000000-0000-4000-8000-000000000003', 'Nobody', NULL, '2025-01-01 00:00:00', NULL)`,
  );
  const res = await run(EXPORT_USERS, ['--db', db.url], { env: { TZ: 'Asia/Kolkata' } });
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(ndjson(res.stdout), [
    { id: '00000000-0000-4000-8000-000000000001', email: 'una@example.com', email_verified: '2025-05-05T05:05:05.500Z', name: 'Una' },
    { id: '00000000-0000-4000-8000-000000000002', email: 'vic@example.com', email_verified: false, image: 'https://img.example.com/v.png' },
  ]);
  assert.match(res.stderr, /^skipped: id=00000000-0000-4000-8000-000000000003: no email, phone or username$/m);
  assert.match(res.stderr, /2 records written .*\(drizzle naming\), 1 skipped, 0 with a password digest/);
});
