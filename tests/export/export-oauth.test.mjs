// --trust-providers and --report against the PostgreSQL and SQLite schemas
// export-users supports (Prisma "Account", pg-adapter accounts, Kysely /
// Drizzle "account"), and the id_token reading on its own. The MySQL forms are
// in export-mysql.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { EXPORT_USERS, idToken, ndjson, pgSchema, run, schemaSql, tempDir } from './helpers.mjs';
import { accountsOf, idTokenEmail } from '../../scripts/lib/export-oauth.mjs';

const BCRYPT = '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';

const verifiedById = (stdout) => Object.fromEntries(ndjson(stdout).map((r) => [r.id, r.email_verified]));

test('id_token claims: email and email_verified read, anything unreadable ignored', () => {
  assert.deepEqual(idTokenEmail(idToken({ email: ' a@example.com ', email_verified: true })), { email: 'a@example.com', verified: true });
  // Some providers send the claim as a string.
  assert.deepEqual(idTokenEmail(idToken({ email: 'a@example.com', email_verified: 'false' })), { email: 'a@example.com', verified: false });
  assert.deepEqual(idTokenEmail(idToken({ email: 'a@example.com' })), { email: 'a@example.com', verified: undefined });
  assert.equal(idTokenEmail(idToken({ name: 'no email' })), null);
  assert.equal(idTokenEmail(null), null);
  assert.equal(idTokenEmail('not-a-jwt'), null);
  assert.equal(idTokenEmail('a.b.c.d.e'), null); // an encrypted (JWE) token
  assert.equal(idTokenEmail(`x.${Buffer.from('not json').toString('base64url')}.y`), null);
  assert.equal(idTokenEmail(`x.${Buffer.from('[1]').toString('base64url')}.y`), null);

  // A type column marks OAuth accounts; without one, every account counts as OAuth.
  const accounts = accountsOf({
    accounts: [
      ['google', 'oidc', idToken({ email: 'g@example.com' }), null],
      ['passkey', 'webauthn', null, null],
      ['corp', null, null, 'c@example.com'],
      [null, 'oauth', null, null],
    ],
  });
  assert.deepEqual(
    accounts.map((a) => [a.provider, a.oauth, a.email, a.emailFrom]),
    [
      ['google', true, 'g@example.com', 'id_token'],
      ['passkey', false, null, null],
      ['corp', true, 'c@example.com', 'column'],
    ],
  );
  assert.deepEqual(accountsOf({ accounts: null }), []);
});

test('PostgreSQL, Prisma naming: trusted providers, a password user, several accounts per user, report', async (t) => {
  const db = await pgSchema(schemaSql('prisma-postgres.sql'));
  t.after(() => db.drop());
  const user = `INSERT INTO "User" ("id", "email", "emailVerified", "updatedAt", "password") VALUES ($1, $2, $3, now(), $4)`;
  await db.client.query(user, ['p1', 'ann@example.com', null, null]);
  await db.client.query(user, ['p2', 'bo@example.com', null, BCRYPT]);
  await db.client.query(user, ['p3', 'cy@example.com', '2024-05-05 05:05:05', null]);
  await db.client.query(user, ['p4', 'di@example.com', null, null]);
  await db.client.query(user, ['p5', 'ed@example.com', null, null]);
  const account = `INSERT INTO "Account" ("userId", "type", "provider", "providerAccountId", "id_token", "updatedAt") VALUES ($1, $2, $3, $4, $5, now())`;
  await db.client.query(account, ['p1', 'oauth', 'github', 'gh1', null]);
  await db.client.query(account, ['p1', 'oidc', 'google', 'g1', idToken({ email: 'ANN@example.com', email_verified: true })]);
  await db.client.query(account, ['p2', 'oauth', 'github', 'gh2', null]);
  await db.client.query(account, ['p3', 'oidc', 'google', 'g3', idToken({ email: 'cy@example.com' })]);
  await db.client.query(account, ['p5', 'oidc', 'google', 'g5', idToken({ email: 'ed.personal@gmail.com' })]);

  const res = await run(EXPORT_USERS, [
    '--db', db.url, '--password-column', 'User.password', '--password-hasher', 'bcrypt',
    '--trust-providers', 'github,google', '--report',
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(verifiedById(res.stdout), {
    p1: true,
    p2: false,
    p3: '2024-05-05T05:05:05.000Z',
    p4: false,
    p5: false,
  });
  assert.match(res.stderr, /^ {4}github +oauth +2 users, 2 accounts {2}\(trusted\)$/m);
  assert.match(res.stderr, /^ {4}google +oidc +3 users, 3 accounts {2}\(trusted\)$/m);
  assert.match(res.stderr, /users who sign in only through OAuth: 3 of 5/);
  assert.match(res.stderr, /^ {4}github \+ google: 1$/m);
  assert.match(res.stderr, /^ {4}google: 2$/m);
  assert.match(res.stderr, /users with a password digest are not counted/);
  assert.match(res.stderr, /^ {4}id=p5 google: account ed\.personal@gmail\.com, user ed@example\.com$/m);
  // p1 is vouched for by Google's matching address rather than GitHub's silence.
  assert.match(res.stderr, /marked verified: 1 \(1 with a matching account email, 0 on the provider alone\)/);
  assert.match(res.stderr, /password user whose account stores no email: 1/);
  assert.ok(!res.stderr.includes(BCRYPT));

  // The report alone changes no record.
  const report = await run(EXPORT_USERS, ['--db', db.url, '--report']);
  assert.equal(report.code, 0, report.stderr);
  assert.deepEqual(Object.values(verifiedById(report.stdout)), [false, false, '2024-05-05T05:05:05.000Z', false, false]);
  assert.match(report.stderr, /OAuth readiness report \(accounts table "Account"\)/);
  assert.ok(!report.stderr.includes('email verification ('), 'no trust section without --trust-providers');
});

test('PostgreSQL, pg-adapter naming (accounts, integer ids) and Kysely naming ("account", uuid ids)', async (t) => {
  const pgdb = await pgSchema(schemaSql('pg-adapter.sql'));
  const ky = await pgSchema(schemaSql('kysely-postgres.sql'));
  t.after(async () => {
    await pgdb.drop();
    await ky.drop();
  });
  const ids = [];
  for (const email of ['a@example.com', 'b@example.com']) {
    ids.push((await pgdb.client.query(`INSERT INTO users (email) VALUES ($1) RETURNING id`, [email])).rows[0].id);
  }
  await pgdb.client.query(
    `INSERT INTO accounts ("userId", type, provider, "providerAccountId") VALUES ($1, 'oauth', 'github', '1'), ($2, 'oauth', 'gitlab', '2')`,
    ids,
  );
  const res = await run(EXPORT_USERS, ['--db', pgdb.url, '--trust-providers', 'github', '--report']);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(verifiedById(res.stdout), { [ids[0]]: true, [ids[1]]: false });
  assert.match(res.stderr, /OAuth readiness report \(accounts table "accounts"\)/);
  assert.match(res.stderr, /^ {4}gitlab +oauth +1 users, 1 accounts$/m);
  assert.match(res.stderr, /accounts without an email vouch even for users who also have a password/);
  const typo = await run(EXPORT_USERS, ['--db', pgdb.url, '--trust-providers', 'github,gitlba']);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /no account of provider "gitlba" in "accounts"; providers in use: github, gitlab/);
  assert.equal(typo.stdout, '');

  await ky.client.query(
    `INSERT INTO "user" ("id", "email") VALUES ('00000000-0000-4000-8000-000000000001', 'k@example.com');
     INSERT INTO "account" ("userId", "type", "provider", "providerAccountId", "id_token")
       VALUES ('00000000-0000-4000-8000-000000000001', 'oidc', 'google', 'k1', '${idToken({ email: 'k@example.com', email_verified: true })}')`,
  );
  const kres = await run(EXPORT_USERS, ['--db', ky.url, '--trust-providers', 'google', '--report']);
  assert.equal(kres.code, 0, kres.stderr);
  assert.deepEqual(ndjson(kres.stdout), [{ id: '00000000-0000-4000-8000-000000000001', email: 'k@example.com', email_verified: true }]);
  assert.match(kres.stderr, /accounts table "account"/);
  assert.match(kres.stderr, /\(drizzle naming\)/);
});

test('SQLite, Drizzle and Prisma naming: trusted providers and the report', async (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const drizzleFile = path.join(tmp.dir, 'drizzle.db');
  const d = new Database(drizzleFile);
  d.exec(schemaSql('sqlite-drizzle.sql'));
  d.prepare(`INSERT INTO "user" ("id", "email", "emailVerified") VALUES ('s1', 's1@example.com', NULL), ('s2', 's2@example.com', NULL), ('s3', 's3@example.com', 1700000000000)`).run();
  const acc = d.prepare(`INSERT INTO "account" ("userId", "type", "provider", "providerAccountId", "id_token") VALUES (?, ?, ?, ?, ?)`);
  acc.run('s1', 'oauth', 'discord', 'd1', null);
  acc.run('s2', 'oidc', 'apple', 'a2', idToken({ email: 's2@privaterelay.appleid.com', email_verified: 'true' }));
  acc.run('s3', 'oauth', 'discord', 'd3', null);
  d.close();
  const res = await run(EXPORT_USERS, ['--db', drizzleFile, '--trust-providers', 'discord,apple', '--report']);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(verifiedById(res.stdout), { s1: true, s2: false, s3: '2023-11-14T22:13:20.000Z' });
  assert.match(res.stderr, /^ {4}id=s2 apple: account s2@privaterelay\.appleid\.com, user s2@example\.com$/m);
  assert.match(res.stderr, /^ {4}discord: 0 of 2 accounts carry an email \(none compared\)$/m);

  const prismaFile = path.join(tmp.dir, 'prisma.sqlite');
  const p = new Database(prismaFile);
  p.exec(schemaSql('sqlite-prisma.sql'));
  p.prepare(`INSERT INTO "User" ("id", "email", "updatedAt") VALUES ('c1', 'c1@example.com', 0), ('c2', 'c2@example.com', 0)`).run();
  p.prepare(`INSERT INTO "Account" ("id", "userId", "type", "provider", "providerAccountId", "updatedAt") VALUES ('x', 'c2', 'oauth', 'twitter', 't2', 0)`).run();
  p.close();
  const pres = await run(EXPORT_USERS, ['--db', `sqlite:${prismaFile}`, '--trust-providers', 'twitter', '--report']);
  assert.equal(pres.code, 0, pres.stderr);
  assert.deepEqual(verifiedById(pres.stdout), { c1: false, c2: true });
  assert.match(pres.stderr, /accounts table "Account"/);
  assert.match(pres.stderr, /users who sign in only through OAuth: 1 of 2/);
});

test('SQLite, custom tables: an account email column is compared, a table without a type counts as OAuth', async (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const file = path.join(tmp.dir, 'custom.db');
  const db = new Database(file);
  db.exec(`CREATE TABLE members (id TEXT PRIMARY KEY, email TEXT, email_verified BOOLEAN);
           CREATE TABLE oauth_links (user_id TEXT, provider TEXT, email TEXT);
           INSERT INTO members VALUES ('m1', 'm1@example.com', 0), ('m2', 'm2@example.com', 0), ('m3', 'm3@example.com', 1);
           INSERT INTO oauth_links VALUES ('m1', 'okta', 'M1@example.com'), ('m2', 'okta', 'someone@else.example');`);
  db.close();
  const missing = await run(EXPORT_USERS, ['--db', file, '--table', 'members', '--report']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no accounts table \("Account", "accounts", "account"\) found next to "members"/);

  const res = await run(EXPORT_USERS, [
    '--db', file, '--table', 'members', '--accounts-table', 'oauth_links', '--trust-providers', 'okta', '--report',
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(verifiedById(res.stdout), { m1: true, m2: false, m3: true });
  assert.match(res.stderr, /^ {4}okta +- +2 users, 2 accounts {2}\(trusted\)$/m);
  assert.match(res.stderr, /account emails come from the "email" column, or else the id_token's email claim/);
  assert.match(res.stderr, /^ {4}id=m2 okta: account someone@else\.example, user m2@example\.com$/m);
  assert.match(res.stderr, /marked verified: 1 \(1 with a matching account email, 0 on the provider alone\)/);
});
