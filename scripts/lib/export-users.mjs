// export-users: reads the users of an Auth.js / NextAuth database (PostgreSQL,
// MySQL / MariaDB or SQLite) and writes import NDJSON (SPEC.md, "Import
// record"), one record per line. Which tables and columns are read is decided
// in export-plan.mjs, the databases are read in export-sources.mjs, the
// accounts table (trusted providers, the OAuth report) in export-oauth.mjs.
import fs from 'node:fs';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { CLERK_PASSWORD_HASHERS, isClerkHasher, buildRecord } from './records.mjs';
import { NAMINGS } from './export-plan.mjs';
import { mysqlRows, pgRows, sqliteRows } from './export-sources.mjs';
import { OAuthAccounts, PROVIDER_NAME, checkTrustedProviders } from './export-oauth.mjs';

export const USAGE = `usage: export-users --db <url> [options]

  --db <url>                 postgres://… (a Prisma-style ?schema=name is honoured),
                             mysql://… or mariadb://… (user:password@host:port/database),
                             sqlite:path/to.db, or a path ending in .db / .sqlite
  --schema <naming>          prisma | pg | drizzle | auto (default auto)
  --table <name>             users table name, when it is none of "User", users, "user"
  --password-column <t.col>  column holding password digests (users table or a
                             table with a userId / user_id column)
  --password-hasher <name>   Clerk hasher of those digests (required with --password-column)
  --trust-providers <list>   comma-separated OAuth providers (as stored in the accounts
                             table, e.g. google,github) trusted to have verified the email:
                             their users' unverified addresses are exported as verified
  --report                   print an OAuth readiness report on stderr after the export
  --accounts-table <name>    accounts table, when it is none of "Account", accounts, "account"
  --out <file>               write here instead of stdout
  --batch-size <n>           rows fetched per round trip (default 1000)
  -h, --help

Rows with no email, phone or username are reported on stderr as skipped.
`;

export class UsageError extends Error {}

export function parseExportArgs(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        db: { type: 'string' },
        schema: { type: 'string', default: 'auto' },
        table: { type: 'string' },
        'password-column': { type: 'string' },
        'password-hasher': { type: 'string' },
        'trust-providers': { type: 'string' },
        report: { type: 'boolean' },
        'accounts-table': { type: 'string' },
        out: { type: 'string' },
        'batch-size': { type: 'string', default: '1000' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err.message);
  }
  const v = parsed.values;
  if (v.help) return { help: true };
  if (!v.db) throw new UsageError('--db is required');
  if (!['auto', ...Object.keys(NAMINGS)].includes(v.schema)) {
    throw new UsageError(`--schema must be one of auto, ${Object.keys(NAMINGS).join(', ')}`);
  }
  const pwCol = v['password-column'];
  const hasher = v['password-hasher'];
  if (Boolean(pwCol) !== Boolean(hasher)) {
    throw new UsageError('--password-column and --password-hasher go together');
  }
  if (hasher && !isClerkHasher(hasher)) {
    throw new UsageError(
      `unknown password hasher "${hasher}"; Clerk accepts: ${CLERK_PASSWORD_HASHERS.join(', ')}`,
    );
  }
  let password = null;
  if (pwCol) {
    const dot = pwCol.lastIndexOf('.');
    if (dot <= 0 || dot === pwCol.length - 1) {
      throw new UsageError('--password-column must be <table>.<column>');
    }
    password = { table: pwCol.slice(0, dot), column: pwCol.slice(dot + 1), hasher };
  }
  let trustProviders = [];
  if (v['trust-providers'] !== undefined) {
    trustProviders = [...new Set(v['trust-providers'].split(',').map((p) => p.trim()).filter(Boolean))];
    if (trustProviders.length === 0) throw new UsageError('--trust-providers needs at least one provider name');
    const bad = trustProviders.find((p) => !PROVIDER_NAME.test(p));
    if (bad) throw new UsageError(`--trust-providers: "${bad}" is not a provider name (letters, digits, . _ -)`);
  }
  const batchSize = Number(v['batch-size']);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new UsageError('--batch-size must be a positive integer');
  }
  return {
    db: v.db,
    naming: v.schema,
    table: v.table ?? null,
    password,
    out: v.out ?? null,
    batchSize,
    trustProviders,
    report: Boolean(v.report),
    accountsTable: v['accounts-table'] ?? null,
    readAccounts: trustProviders.length > 0 || Boolean(v.report),
  };
}

export function classifyDb(url) {
  if (/^postgres(ql)?:\/\//i.test(url)) return 'pg';
  if (/^(mysql|mariadb):\/\//i.test(url)) return 'mysql';
  if (/^sqlite:/i.test(url) || /^file:/i.test(url)) return 'sqlite';
  if (/\.(db|sqlite|sqlite3|db3)$/i.test(url)) return 'sqlite';
  return null;
}

// ------------------------------------------------------------------- driver

function normalizeRow(row, plan) {
  const r = { ...row };
  if (plan.emailVerifiedIsBool && r.emailVerified !== null && r.emailVerified !== undefined) {
    r.emailVerified = Boolean(Number(r.emailVerified));
  }
  return r;
}

async function write(stream, chunk) {
  if (!stream.write(chunk)) await once(stream, 'drain');
}

/**
 * Runs an export. `stderr` receives skipped rows, warnings, the summary and
 * the report; password digests are only ever written to the output stream.
 * The --out file is opened only once the tables are planned, so an error in
 * the options leaves an existing file alone.
 */
export async function runExport(opts, { stdout = process.stdout, stderr = process.stderr } = {}) {
  const kind = classifyDb(opts.db);
  if (!kind) {
    throw new Error(
      `unrecognised --db "${opts.db}": expected postgres://…, mysql://…, mariadb://…, sqlite:… or a .db/.sqlite file`,
    );
  }
  let out = null;
  const info = {};
  let oauth = null;
  const counts = { rows: 0, written: 0, skipped: 0, withPassword: 0, warnings: 0, trusted: 0 };
  const tty = Boolean(stderr.isTTY);
  let failed = null;
  // A closed pipe (export-users … | head) or a full disk ends the export
  // with a message instead of an unhandled 'error' event.
  let outError = null;
  const onOutError = (err) => {
    outError ??= err;
  };
  const openOut = () => {
    out = opts.out ? fs.createWriteStream(opts.out) : stdout;
    out.on('error', onOutError);
  };
  const onPlanned = () => {
    if (info.accounts) {
      checkTrustedProviders(opts.trustProviders, info.providers, info.accounts.table);
      oauth = new OAuthAccounts({
        trusted: opts.trustProviders,
        passwordKnown: Boolean(opts.password),
        accounts: info.accounts,
        providers: info.providers,
      });
    }
    openOut();
  };
  const warn = (text) => {
    counts.warnings++;
    stderr.write(`warning: ${text}\n`);
  };
  try {
    const rows =
      kind === 'pg'
        ? pgRows(opts, info, onPlanned)
        : kind === 'mysql'
          ? mysqlRows(opts, info, onPlanned, warn)
          : sqliteRows(opts, info, onPlanned);
    for await (const raw of rows) {
      counts.rows++;
      const row = normalizeRow(raw, info.plan);
      const { record, skip, warnings } = buildRecord(row, { passwordHasher: opts.password?.hasher });
      if (oauth?.visit(row, skip ? null : record)) counts.trusted++;
      const idText = row.id === null || row.id === undefined ? '(null)' : String(row.id);
      for (const w of warnings) {
        counts.warnings++;
        stderr.write(`warning: id=${idText}: ${w}\n`);
      }
      if (skip) {
        counts.skipped++;
        stderr.write(`skipped: id=${idText}: ${skip}\n`);
        continue;
      }
      if (record.password_digest) counts.withPassword++;
      if (outError) throw outError;
      await write(out, JSON.stringify(record) + '\n');
      counts.written++;
      if (counts.rows % 10000 === 0) {
        if (tty) stderr.write(`\rexported ${counts.rows} rows…`);
        else if (counts.rows % 100000 === 0) stderr.write(`exported ${counts.rows} rows\n`);
      }
    }
    if (outError) throw outError;
  } catch (err) {
    failed = err;
  } finally {
    if (out && opts.out) {
      out.end();
      await once(out, 'close').catch(() => {});
    }
    out?.off('error', onOutError);
  }
  if (failed?.code === 'EPIPE') failed = new Error('output closed before the export finished');
  if (tty && counts.rows >= 10000) stderr.write('\n');
  if (failed) throw failed;
  const plan = info.plan;
  stderr.write(
    `export-users: ${counts.written} records written${opts.out ? ` to ${opts.out}` : ''}` +
      ` from ${info.where} (${plan.naming} naming), ${counts.skipped} skipped,` +
      ` ${counts.withPassword} with a password digest,` +
      (opts.trustProviders.length ? ` ${counts.trusted} emails verified through a trusted provider,` : '') +
      ` ${counts.warnings} warnings\n`,
  );
  if (opts.report && oauth) stderr.write(oauth.report().join('\n') + '\n');
  return counts;
}

export async function main(argv = process.argv.slice(2)) {
  let opts;
  try {
    opts = parseExportArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`export-users: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    await runExport(opts);
    return 0;
  } catch (err) {
    process.stderr.write(`export-users: error: ${err.message}\n`);
    return 1;
  }
}
