// export-users against the local MariaDB (or any MySQL at MYSQL_URL), each
// test in its own throw-away database: Prisma's MySQL schema ("User" /
// "Account") and Drizzle's mysql-core schema ("user" / "account").
// Without a server the tests skip with the reason, except under CI=true,
// where they fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXPORT_USERS, ROOT, idToken, mysqlDatabase, ndjson, requireMysql, run, schemaSql, tempDir } from './helpers.mjs';
import { mysqlConfig } from '../../scripts/lib/export-sources.mjs';

const BCRYPT = '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';

test('MySQL URLs: credentials, TLS forms, socket, pool settings ignored, others reported', () => {
  assert.deepEqual(mysqlConfig('mysql://app%40prod:p%3Ass@db.example.com:3307/auth%2Dapp'), {
    config: { database: 'auth-app', user: 'app@prod', password: 'p:ss', host: 'db.example.com', port: 3307 },
    warnings: [],
  });
  const v6 = mysqlConfig('mariadb://root@[::1]/app').config;
  assert.equal(v6.host, '::1');
  assert.equal(v6.port, 3306);
  for (const q of ['ssl=true', 'sslaccept=strict', 'sslmode=REQUIRED', 'ssl-mode=VERIFY_IDENTITY']) {
    assert.deepEqual(mysqlConfig(`mysql://h/app?${q}`).config.ssl, { rejectUnauthorized: true }, q);
  }
  assert.deepEqual(mysqlConfig('mysql://h/app?sslaccept=accept_invalid_certs').config.ssl, { rejectUnauthorized: false });
  assert.equal(mysqlConfig('mysql://h/app?ssl=true&sslmode=disabled').config.ssl, undefined);
  const sock = mysqlConfig('mysql://root@localhost/app?socket=/run/mysqld/mysqld.sock&connect_timeout=5').config;
  assert.equal(sock.socketPath, '/run/mysqld/mysqld.sock');
  assert.equal(sock.host, undefined);
  assert.equal(sock.connectTimeout, 5000);
  // Prisma's pool settings mean nothing to a single connection; anything unknown is reported.
  assert.deepEqual(mysqlConfig('mysql://h/app?connection_limit=5&pool_timeout=2&charset=latin1').warnings, [
    'MySQL URL parameter "charset" ignored',
  ]);
  assert.throws(() => mysqlConfig('mysql://h/'), /names no database/);
  assert.throws(() => mysqlConfig('mysql://h/a/b'), /names no database/);
  assert.throws(() => mysqlConfig('mysql:///app'), /names no host/);
  assert.throws(() => mysqlConfig('mysql://h/app?ssl=yes'), /ssl=yes in the MySQL URL/);
  assert.throws(() => mysqlConfig('mysql://h/app?connect_timeout=soon'), /connect_timeout=soon/);
});

async function seedPrisma(db) {
  const user = `INSERT INTO \`User\` (id, name, username, email, emailVerified, image, createdAt, updatedAt, password)
                VALUES (?, ?, ?, ?, ?, ?, ?, NOW(3), ?)`;
  const rows = [
    ['u_alice', 'Alice', null, 'alice@example.com', '2024-01-15 08:00:00.123', 'https://img.example.com/a.png', '2023-06-01 10:00:00', BCRYPT],
    ['u_bob', null, null, 'bob@example.com', null, null, '2023-07-02 11:30:00.5', null],
    ['u_carol', 'Carol', null, 'Carol@Example.com', null, null, '2023-08-03 00:00:00', null],
    ['u_dave', 'Dave', 'dave', null, null, null, '2023-09-04 12:00:00', null],
    ['u_erin', 'Erin', null, null, null, null, '2023-10-05 12:00:00', BCRYPT],
    ['u_frank', null, null, 'frank@example.com', null, null, '2023-11-06 00:00:00', null],
    ['u_gina', null, null, 'gina@example.com', null, null, '2023-12-07 00:00:00', BCRYPT],
    ['u_hank', null, null, 'hank@work.example', null, null, '2024-01-08 00:00:00', null],
    ['u_ivy', null, null, 'ivy@example.com', null, null, '2024-02-09 00:00:00', null],
  ];
  for (const r of rows) await db.conn.query(user, r);
  const account = `INSERT INTO \`Account\` (id, userId, type, provider, providerAccountId, id_token, updatedAt)
                   VALUES (?, ?, ?, ?, ?, ?, NOW(3))`;
  const accounts = [
    // Google (OIDC) with the same address in another case: vouches.
    ['a1', 'u_carol', 'oidc', 'google', 'g-carol', idToken({ email: 'carol@example.com', email_verified: true })],
    // GitHub (plain OAuth 2) stores no email: vouches on the provider alone…
    ['a2', 'u_frank', 'oauth', 'github', 'gh-frank', null],
    // …but not for a user who also has a password.
    ['a3', 'u_gina', 'oauth', 'github', 'gh-gina', null],
    // Google account of another address: never vouches, listed in the report.
    ['a4', 'u_hank', 'oidc', 'google', 'g-hank', idToken({ email: 'hank@gmail.com', email_verified: true })],
    // Google says the address is not verified.
    ['a5', 'u_ivy', 'oidc', 'google', 'g-ivy', idToken({ email: 'ivy@example.com', email_verified: false })],
    // Already verified in the database: left as it is.
    ['a6', 'u_alice', 'oidc', 'google', 'g-alice', idToken({ email: 'alice@example.com', email_verified: true })],
  ];
  for (const a of accounts) await db.conn.query(account, a);
}

test('prisma MySQL schema over mariadb://: exact NDJSON, DATETIME(3) read as UTC, digests only when asked', async (t) => {
  if (!(await requireMysql(t))) return;
  const db = await mysqlDatabase(schemaSql('mysql-prisma.sql'), { scheme: 'mariadb' });
  t.after(() => db.drop());
  await seedPrisma(db);

  const env = { TZ: 'America/New_York' };
  const res = await run(
    EXPORT_USERS,
    ['--db', db.url, '--password-column', 'User.password', '--password-hasher', 'bcrypt'],
    { env },
  );
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stdout.split('\n');
  assert.equal(
    lines[0],
    JSON.stringify({
      id: 'u_alice',
      email: 'alice@example.com',
      email_verified: '2024-01-15T08:00:00.123Z',
      name: 'Alice',
      image: 'https://img.example.com/a.png',
      password_digest: BCRYPT,
      password_hasher: 'bcrypt',
      created_at: '2023-06-01T10:00:00.000Z',
    }),
  );
  const records = ndjson(res.stdout);
  assert.deepEqual(records.map((r) => r.id), ['u_alice', 'u_bob', 'u_carol', 'u_dave', 'u_frank', 'u_gina', 'u_hank', 'u_ivy']);
  assert.deepEqual(records[1], { id: 'u_bob', email: 'bob@example.com', email_verified: false, created_at: '2023-07-02T11:30:00.500Z' });
  assert.deepEqual(records[3], { id: 'u_dave', name: 'Dave', username: 'dave', created_at: '2023-09-04T12:00:00.000Z' });
  // Without --trust-providers an OAuth sign-up stays unverified, as NextAuth stored it.
  assert.deepEqual(records[2], { id: 'u_carol', email: 'Carol@Example.com', email_verified: false, name: 'Carol', created_at: '2023-08-03T00:00:00.000Z' });
  assert.equal(records.filter((r) => r.password_digest).length, 2);
  assert.match(res.stderr, /^skipped: id=u_erin: no email, phone or username$/m);
  assert.match(res.stderr, /8 records written from export_test_\w+\.User \(prisma naming\), 1 skipped, 2 with a password digest, 0 warnings/);
  assert.ok(!res.stderr.includes(BCRYPT), 'digest leaked to stderr');

  // mysql:// and an explicit naming read the same rows; no digest without the options.
  const plain = await run(EXPORT_USERS, ['--db', db.url.replace(/^mariadb:/, 'mysql:'), '--schema', 'prisma']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(ndjson(plain.stdout).length, 8);
  assert.ok(!plain.stdout.includes('$2b$'));
});

test('prisma MySQL schema: --trust-providers marks OAuth users verified only on consistent evidence; --report', async (t) => {
  if (!(await requireMysql(t))) return;
  const db = await mysqlDatabase(schemaSql('mysql-prisma.sql'));
  t.after(() => db.drop());
  await seedPrisma(db);

  const res = await run(EXPORT_USERS, [
    '--db', db.url, '--password-column', 'User.password', '--password-hasher', 'bcrypt',
    '--trust-providers', 'google,github', '--report',
  ]);
  assert.equal(res.code, 0, res.stderr);
  const verified = Object.fromEntries(ndjson(res.stdout).filter((r) => r.email).map((r) => [r.id, r.email_verified]));
  assert.deepEqual(verified, {
    u_alice: '2024-01-15T08:00:00.123Z', // kept
    u_bob: false, // no account
    u_carol: true, // google, same address
    u_frank: true, // github, no password
    u_gina: false, // github, but a password user: the account cannot confirm the address
    u_hank: false, // google account of another address
    u_ivy: false, // google says unverified
  });
  assert.match(res.stderr, /2 emails verified through a trusted provider/);
  const report = res.stderr.slice(res.stderr.indexOf('OAuth readiness report'));
  assert.match(report, /^OAuth readiness report \(accounts table "Account"\)$/m);
  assert.match(report, /^ {4}github +oauth +2 users, 2 accounts {2}\(trusted\)$/m);
  assert.match(report, /^ {4}google +oidc +4 users, 4 accounts {2}\(trusted\)$/m);
  // carol, frank, hank, ivy: alice and gina also have a password.
  assert.match(report, /^ {2}users who sign in only through OAuth: 4 of 9$/m);
  assert.match(report, /^ {4}google: 3$/m);
  assert.match(report, /^ {4}github: 1$/m);
  assert.match(report, /^ {2}account emails that differ from the user's email: 1$/m);
  assert.match(report, /^ {4}id=u_hank google: account hank@gmail\.com, user hank@work\.example$/m);
  assert.match(report, /"Account" has no email column: account emails come only from OpenID Connect id_tokens/);
  assert.match(report, /^ {4}github: 0 of 2 accounts carry an email \(none compared\)$/m);
  assert.match(report, /^ {4}google: 4 of 4 accounts carry an email \(id_token\)$/m);
  assert.match(report, /marked verified: 2 \(1 with a matching account email, 1 on the provider alone\)/);
  assert.match(report, /already verified in the database: 1/);
  assert.match(
    report,
    /left unverified: 4 \(account email differs: 1, id_token says unverified: 1, password user whose account stores no email: 1, no trusted account: 1\)/,
  );

  // Trusting only GitHub leaves the Google users unverified.
  const gh = await run(EXPORT_USERS, ['--db', db.url, '--trust-providers', 'github']);
  assert.equal(gh.code, 0, gh.stderr);
  const ghVerified = ndjson(gh.stdout).filter((r) => r.email_verified === true).map((r) => r.id);
  // Without --password-column the export cannot tell gina has a password.
  assert.deepEqual(ghVerified, ['u_frank', 'u_gina']);
  assert.ok(!gh.stderr.includes('OAuth readiness report'), 'report only with --report');
});

async function drizzleDb() {
  const db = await mysqlDatabase(schemaSql('mysql-drizzle.sql'));
  const users = [
    ['d1', 'Ann', 'ann@example.com', '2024-03-01 11:54:56.789', 'https://img.example.com/a.png'],
    ['d2', null, 'ben@example.com', null, null],
    ['d3', 'No Mail', null, null, null],
    ['d4', 'Cy', 'cy@example.com', null, null],
    ['d5', 'Dee', 'dee@example.com', null, null],
  ];
  for (const u of users) {
    await db.conn.query('INSERT INTO `user` (id, name, email, emailVerified, image) VALUES (?, ?, ?, ?, ?)', u);
  }
  const accounts = [
    // Ben signs in with both GitHub and Google.
    ['d2', 'oauth', 'github', '101', null],
    ['d2', 'oidc', 'google', '201', idToken({ email: 'ben@example.com', email_verified: true })],
    ['d4', 'oauth', 'discord', '301', null],
    ['d5', 'webauthn', 'passkey', 'cred-1', null],
    ['d3', 'oauth', 'github', '102', null],
  ];
  for (const a of accounts) {
    await db.conn.query('INSERT INTO `account` (userId, type, provider, providerAccountId, id_token) VALUES (?, ?, ?, ?, ?)', a);
  }
  return db;
}

test('drizzle mysql-core schema: auto-detected, timestamp(3) in UTC, small batches to --out, several accounts per user', async (t) => {
  if (!(await requireMysql(t))) return;
  const db = await drizzleDb();
  const tmp = tempDir();
  t.after(async () => {
    tmp.cleanup();
    await db.drop();
  });
  const out = path.join(tmp.dir, 'users.ndjson');
  const res = await run(
    EXPORT_USERS,
    ['--db', db.url, '--batch-size', '2', '--out', out, '--trust-providers', 'github', '--report'],
    { env: { TZ: 'Asia/Kolkata' } },
  );
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, '');
  assert.deepEqual(ndjson(fs.readFileSync(out, 'utf8')), [
    { id: 'd1', email: 'ann@example.com', email_verified: '2024-03-01T11:54:56.789Z', name: 'Ann', image: 'https://img.example.com/a.png' },
    { id: 'd2', email: 'ben@example.com', email_verified: true },
    { id: 'd4', email: 'cy@example.com', email_verified: false, name: 'Cy' },
    { id: 'd5', email: 'dee@example.com', email_verified: false, name: 'Dee' },
  ]);
  assert.match(res.stderr, /^skipped: id=d3: no email, phone or username$/m);
  assert.match(res.stderr, /4 records written to .*users\.ndjson from export_test_\w+\.user \(drizzle naming\), 1 skipped/);
  assert.match(res.stderr, /1 emails verified through a trusted provider/);
  assert.match(res.stderr, /^ {4}passkey +webauthn +1 users, 1 accounts {2}\(not OAuth\)$/m);
  assert.match(res.stderr, /^ {4}discord +oauth +1 users, 1 accounts$/m);
  // Ben (github + google), Cy (discord) and the skipped d3 (github); Dee has a passkey.
  assert.match(res.stderr, /users who sign in only through OAuth: 3 of 5/);
  assert.match(res.stderr, /^ {4}github \+ google: 1$/m);
  assert.match(res.stderr, /no --password-column: users who also have a password are counted too/);
  assert.doesNotMatch(res.stderr, /has no index/);

  // Accounts without an index on the user column (a copy of the table): the
  // same answer through the hash join, with a hint.
  await db.conn.query('CREATE TABLE `links` AS SELECT * FROM `account`');
  const unindexed = await run(EXPORT_USERS, [
    '--db', db.url, '--accounts-table', 'links', '--trust-providers', 'github', '--report',
  ]);
  assert.equal(unindexed.code, 0, unindexed.stderr);
  assert.equal(unindexed.stdout, fs.readFileSync(out, 'utf8'));
  assert.match(unindexed.stderr, /^warning: "links"\."userId" has no index; the accounts are joined without one/m);
  assert.match(unindexed.stderr, /users who sign in only through OAuth: 3 of 5/);
});

test('streams the result set: the query is still being sent while the reader stalls', async (t) => {
  if (!(await requireMysql(t))) return;
  const db = await mysqlDatabase(schemaSql('mysql-drizzle.sql'));
  let child = null;
  t.after(async () => {
    // The export's open transaction would hold up DROP DATABASE: end it first.
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('close', resolve));
    }
    await db.drop();
  });
  // 100,000 users with 200-character names: about 30 MB of output, far more
  // than the pipe and socket buffers between the server and a stalled reader.
  await db.conn.query(`CREATE TEMPORARY TABLE digits (n INT);
    INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);
    INSERT INTO \`user\` (id, name, email)
      SELECT LPAD(a.n*10000 + b.n*1000 + c.n*100 + d.n*10 + e.n, 6, '0'), REPEAT('x', 200),
             CONCAT('u', a.n, b.n, c.n, d.n, e.n, '@example.com')
        FROM digits a, digits b, digits c, digits d, digits e;`);
  const N = 100_000;

  child = spawn(EXPORT_USERS, ['--db', db.url, '--batch-size', '100'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const closed = new Promise((resolve) => child.on('close', resolve));
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  // Wait for the first record, then stop reading.
  while (chunks.length === 0) await sleep(20);
  child.stdout.pause();
  await sleep(1500);
  const [running] = await db.conn.query(
    `SELECT COMMAND, INFO FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID() AND INFO LIKE 'SELECT %FROM \`user\`%'`,
    [db.database],
  );
  assert.equal(running.length, 1, `the export's SELECT should still be in flight: ${JSON.stringify(running)}`);
  child.stdout.resume();
  const code = await closed;
  assert.equal(code, 0, stderr);
  const records = ndjson(Buffer.concat(chunks).toString('utf8'));
  assert.equal(records.length, N);
  assert.deepEqual(records[0], { id: '000000', email: 'u00000@example.com', email_verified: false, name: 'x'.repeat(200) });
  assert.equal(records[N - 1].id, '099999');
  for (let i = 1; i < N; i++) assert.ok(records[i - 1].id < records[i].id);
  assert.match(stderr, new RegExp(`${N} records written`));
});

test('bad input: URLs, missing database or accounts table, unknown or non-OAuth providers', async (t) => {
  if (!(await requireMysql(t))) return;
  const db = await drizzleDb();
  const tmp = tempDir();
  t.after(async () => {
    tmp.cleanup();
    await db.drop();
  });
  const noDb = await run(EXPORT_USERS, ['--db', 'mysql://root@127.0.0.1:3306']);
  assert.equal(noDb.code, 1);
  assert.match(noDb.stderr, /the MySQL \/ MariaDB URL names no database/);
  const malformed = await run(EXPORT_USERS, ['--db', 'mysql://root@[::1/app']);
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr, /malformed MySQL \/ MariaDB URL/);
  const refused = await run(EXPORT_USERS, ['--db', 'mariadb://root@127.0.0.1:1/app']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /cannot connect to MySQL \/ MariaDB at 127\.0\.0\.1:1: ECONNREFUSED/);
  const missing = `export_test_missing_${randomBytes(4).toString('hex')}`;
  const unknownDb = await run(EXPORT_USERS, ['--db', `mysql://root@127.0.0.1:3306/${missing}`]);
  assert.equal(unknownDb.code, 1);
  assert.match(unknownDb.stderr, new RegExp(`Unknown database '${missing}'`));
  const badTls = await run(EXPORT_USERS, ['--db', `${db.url}?sslaccept=maybe`]);
  assert.equal(badTls.code, 1);
  assert.match(badTls.stderr, /sslaccept=maybe in the MySQL URL: expected strict or accept_invalid_certs/);

  // An unknown provider fails before anything is written, even an --out file.
  const out = path.join(tmp.dir, 'never.ndjson');
  const typo = await run(EXPORT_USERS, ['--db', db.url, '--trust-providers', 'gihub', '--out', out]);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /--trust-providers: no account of provider "gihub" in "account"; providers in use: discord, github, google, passkey/);
  assert.ok(!fs.existsSync(out), '--out written despite the error');
  const cased = await run(EXPORT_USERS, ['--db', db.url, '--trust-providers', 'GitHub']);
  assert.equal(cased.code, 1);
  assert.match(cased.stderr, /no account of provider "GitHub" in "account" \(did you mean "github"\?\)/);
  assert.equal(cased.stdout, '');
  const passkey = await run(EXPORT_USERS, ['--db', db.url, '--trust-providers', 'passkey']);
  assert.equal(passkey.code, 1);
  assert.match(passkey.stderr, /"passkey" is not an OAuth provider \(its accounts are of type webauthn\)/);
  const empty = await run(EXPORT_USERS, ['--db', db.url, '--trust-providers', ' , ']);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /--trust-providers needs at least one provider name/);
  const odd = await run(EXPORT_USERS, ['--db', db.url, '--trust-providers', 'google,git hub']);
  assert.equal(odd.code, 2);
  assert.match(odd.stderr, /"git hub" is not a provider name/);

  await db.conn.query('DROP TABLE `account`');
  const noAccounts = await run(EXPORT_USERS, ['--db', db.url, '--report']);
  assert.equal(noAccounts.code, 1);
  assert.match(noAccounts.stderr, /no accounts table \("account"\) found next to "user"; --trust-providers and --report read it/);
  const otherTable = await run(EXPORT_USERS, ['--db', db.url, '--report', '--accounts-table', 'logins']);
  assert.equal(otherTable.code, 1);
  assert.match(otherTable.stderr, /accounts table "logins" not found/);
  // The export itself does not need the accounts table.
  const plain = await run(EXPORT_USERS, ['--db', db.url]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(ndjson(plain.stdout).length, 4);
});
