// export-users: reads the users table of an Auth.js / NextAuth database and
// writes import NDJSON (SPEC.md, "Import record"), one record per line.
//
// Table layouts understood (read from the upstream adapters):
//   prisma  - table "User", camelCase columns ("emailVerified", "createdAt")
//             nextauthjs/next-auth docs/pages/getting-started/adapters/prisma.mdx,
//             packages/adapter-prisma/prisma/schema.prisma
//   pg      - table users, column "emailVerified" TIMESTAMPTZ
//             nextauthjs/next-auth packages/adapter-pg/schema.sql
//   drizzle - table "user" (drizzle / kysely), "emailVerified" as a timestamp,
//             in SQLite an integer in milliseconds
//             packages/adapter-drizzle/src/lib/sqlite.ts, packages/adapter-kysely
//             tests/migrations/testMigrations.ts
import fs from 'node:fs';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { CLERK_PASSWORD_HASHERS, isClerkHasher, buildRecord } from './records.mjs';

export const USAGE = `usage: export-users --db <url> [options]

  --db <url>                 postgres://… (a Prisma-style ?schema=name is honoured),
                             sqlite:path/to.db, or a path ending in .db / .sqlite
  --schema <naming>          prisma | pg | drizzle | auto (default auto)
  --table <name>             users table name, when it is none of "User", users, "user"
  --password-column <t.col>  column holding password digests (users table or a
                             table with a userId / user_id column)
  --password-hasher <name>   Clerk hasher of those digests (required with --password-column)
  --out <file>               write here instead of stdout
  --batch-size <n>           rows fetched per round trip (default 1000)
  -h, --help

Rows with no email, phone or username are reported on stderr as skipped.
`;

const NAMINGS = {
  prisma: ['User'],
  pg: ['users'],
  drizzle: ['user'],
};

// Logical field -> column names tried, most specific first.
const COLUMN_CANDIDATES = {
  id: ['id'],
  email: ['email'],
  emailVerified: ['emailVerified', 'email_verified'],
  name: ['name'],
  image: ['image'],
  username: ['username'],
  phone: ['phone', 'phoneNumber', 'phone_number'],
  createdAt: ['createdAt', 'created_at'],
};

const USER_FK_CANDIDATES = ['userId', 'user_id'];

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
  };
}

export function classifyDb(url) {
  if (/^postgres(ql)?:\/\//i.test(url)) return 'pg';
  if (/^(mysql|mariadb):\/\//i.test(url)) return 'mysql';
  if (/^sqlite:/i.test(url) || /^file:/i.test(url)) return 'sqlite';
  if (/\.(db|sqlite|sqlite3|db3)$/i.test(url)) return 'sqlite';
  return null;
}

export function sqlitePath(url) {
  let p = url;
  if (/^sqlite:\/\//i.test(p)) p = p.slice('sqlite://'.length);
  else if (/^sqlite:/i.test(p)) p = p.slice('sqlite:'.length);
  else if (/^file:\/\//i.test(p)) p = p.slice('file://'.length);
  else if (/^file:/i.test(p)) p = p.slice('file:'.length);
  const q = p.indexOf('?');
  if (q >= 0) p = p.slice(0, q);
  return decodeURIComponent(p);
}

const quoteIdent = (name) => `"${String(name).replace(/"/g, '""')}"`;

function pick(columns, candidates) {
  for (const c of candidates) if (columns.some((col) => col.name === c)) return c;
  for (const c of candidates) {
    const hit = columns.find((col) => col.name.toLowerCase() === c.toLowerCase());
    if (hit) return hit.name;
  }
  return null;
}

function findTable(tables, wanted) {
  // tables: Map<name, columns>. Exact name first, then case-insensitive.
  if (tables.has(wanted)) return wanted;
  const lower = wanted.toLowerCase();
  const hits = [...tables.keys()].filter((t) => t.toLowerCase() === lower);
  return hits.length === 1 ? hits[0] : null;
}

/**
 * Chooses the users table and maps its columns. `tables` is a Map of table
 * name -> [{name, type}] for one schema.
 */
export function planUsersTable(tables, { naming, table }) {
  let chosen = null;
  let chosenNaming = naming;
  if (table) {
    chosen = findTable(tables, table);
    if (!chosen) throw new Error(`table "${table}" not found`);
  } else if (naming !== 'auto') {
    for (const t of NAMINGS[naming]) {
      chosen = tables.has(t) ? t : null;
      if (chosen) break;
    }
    if (!chosen) {
      throw new Error(`no ${naming} users table (${NAMINGS[naming].map((t) => `"${t}"`).join(', ')}) found`);
    }
  } else {
    const found = [];
    for (const [n, names] of Object.entries(NAMINGS)) {
      for (const t of names) {
        if (tables.has(t) && pick(tables.get(t), COLUMN_CANDIDATES.email)) found.push([n, t]);
      }
    }
    if (found.length === 0) {
      throw new Error('no Auth.js users table found ("User", users or "user" with an email column); use --table');
    }
    if (found.length > 1) {
      throw new Error(
        `several users tables found (${found.map(([, t]) => `"${t}"`).join(', ')}); choose one with --schema or --table`,
      );
    }
    [chosenNaming, chosen] = found[0];
  }
  const columns = tables.get(chosen);
  const map = {};
  for (const [field, candidates] of Object.entries(COLUMN_CANDIDATES)) {
    map[field] = pick(columns, candidates);
  }
  if (!map.id) throw new Error(`table "${chosen}" has no id column`);
  if (!map.email && !map.username && !map.phone) {
    throw new Error(`table "${chosen}" has no email, phone or username column`);
  }
  const typeOf = (col) => columns.find((c) => c.name === col)?.type ?? '';
  return {
    table: chosen,
    naming: table ? 'custom' : chosenNaming,
    columns: map,
    emailVerifiedIsBool: map.emailVerified ? /bool/i.test(typeOf(map.emailVerified)) : false,
  };
}

export function planPassword(tables, plan, password) {
  if (!password) return null;
  const table = findTable(tables, password.table);
  if (!table) throw new Error(`password table "${password.table}" not found`);
  const cols = tables.get(table);
  const column = pick(cols, [password.column]);
  if (!column) throw new Error(`column "${password.column}" not found in "${table}"`);
  if (table === plan.table) return { table, column, join: null };
  const join = pick(cols, USER_FK_CANDIDATES);
  if (!join) {
    throw new Error(`"${table}" has no userId / user_id column to join the users table on`);
  }
  return { table, column, join };
}

export function buildSelect(plan, pw, qualify = (t) => quoteIdent(t)) {
  const select = [];
  for (const [field, col] of Object.entries(plan.columns)) {
    if (col) select.push(`u.${quoteIdent(col)} AS ${quoteIdent(field)}`);
  }
  let from = `${qualify(plan.table)} u`;
  if (pw && !pw.join) {
    select.push(`u.${quoteIdent(pw.column)} AS "passwordDigest"`);
  } else if (pw) {
    select.push(`p.digest AS "passwordDigest"`);
    const c = quoteIdent(pw.column);
    from +=
      ` LEFT JOIN (SELECT ${quoteIdent(pw.join)} AS uid, MAX(${c}) AS digest FROM ${qualify(pw.table)}` +
      ` WHERE ${c} IS NOT NULL AND ${c} <> '' GROUP BY ${quoteIdent(pw.join)}) p ON p.uid = u.${quoteIdent(plan.columns.id)}`;
  }
  return `SELECT ${select.join(', ')} FROM ${from} ORDER BY u.${quoteIdent(plan.columns.id)}`;
}

// ---------------------------------------------------------------- PostgreSQL

// Keep timestamps as the server's text so nothing is shifted by the local
// time zone of this machine; records.toRfc3339 reads text without an offset
// as UTC, which is how Prisma writes `timestamp(3)`.
const PG_TEXT_TYPES = new Set([1082 /* date */, 1114 /* timestamp */, 1184 /* timestamptz */]);

async function* pgRows(opts, info) {
  const { default: pg } = await import('pg');
  const url = new URL(opts.db);
  const schemaParam = url.searchParams.get('schema');
  url.searchParams.delete('schema');
  const client = new pg.Client({
    connectionString: url.toString(),
    types: {
      getTypeParser(oid, format) {
        if (PG_TEXT_TYPES.has(oid)) return (v) => v;
        return pg.types.getTypeParser(oid, format);
      },
    },
  });
  await client.connect();
  try {
    await client.query(`SET TIME ZONE 'UTC'`);
    if (schemaParam) await client.query(`SELECT set_config('search_path', $1, false)`, [quoteIdent(schemaParam)]);
    const { rows } = await client.query(
      `SELECT c.table_schema AS schema, c.table_name AS table, c.column_name AS name, c.data_type AS type,
              array_position(current_schemas(false), c.table_schema::name) AS pos
         FROM information_schema.columns c
        WHERE c.table_schema::name = ANY (current_schemas(false))
        ORDER BY pos, c.table_name, c.ordinal_position`,
    );
    // Tables by name, first schema of the search path winning.
    const tables = new Map();
    const schemaOf = new Map();
    for (const r of rows) {
      if (schemaOf.has(r.table) && schemaOf.get(r.table) !== r.schema) continue;
      schemaOf.set(r.table, r.schema);
      if (!tables.has(r.table)) tables.set(r.table, []);
      tables.get(r.table).push({ name: r.name, type: r.type });
    }
    const plan = planUsersTable(tables, opts);
    const pw = planPassword(tables, plan, opts.password);
    const qualify = (t) => `${quoteIdent(schemaOf.get(t))}.${quoteIdent(t)}`;
    info.plan = plan;
    info.where = `${schemaOf.get(plan.table)}.${plan.table}`;
    const sql = buildSelect(plan, pw, qualify);
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`DECLARE export_users_cursor NO SCROLL CURSOR FOR ${sql}`);
    for (;;) {
      const res = await client.query(`FETCH FORWARD ${opts.batchSize} FROM export_users_cursor`);
      for (const row of res.rows) yield row;
      if (res.rows.length < opts.batchSize) break;
    }
    await client.query('CLOSE export_users_cursor');
    await client.query('COMMIT');
  } finally {
    await client.end().catch(() => {});
  }
}

// -------------------------------------------------------------------- SQLite

async function* sqliteRows(opts, info) {
  const { default: Database } = await import('better-sqlite3');
  const file = sqlitePath(opts.db);
  if (!fs.existsSync(file)) throw new Error(`SQLite database not found: ${file}`);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const tables = new Map();
    const names = db
      .prepare(`SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'`)
      .all()
      .map((r) => r.name);
    for (const name of names) {
      const cols = db.prepare(`PRAGMA table_info(${quoteIdent(name)})`).all();
      tables.set(name, cols.map((c) => ({ name: c.name, type: c.type })));
    }
    const plan = planUsersTable(sqliteTables(tables, opts), opts);
    const pw = planPassword(tables, plan, opts.password);
    info.plan = plan;
    info.where = file;
    const stmt = db.prepare(buildSelect(plan, pw));
    stmt.safeIntegers(false);
    // iterate() steps the statement one row at a time: nothing is buffered.
    for (const row of stmt.iterate()) yield row;
  } finally {
    db.close();
  }
}

// SQLite table names are case-insensitive: "User" and "user" are one table.
// Let a naming find its table whatever case it was created with.
function sqliteTables(tables, opts) {
  if (opts.table || opts.naming === 'auto') return tables;
  const out = new Map(tables);
  for (const want of NAMINGS[opts.naming]) {
    const real = findTable(tables, want);
    if (real && !out.has(want)) out.set(want, tables.get(real));
  }
  return out;
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
 * Runs an export. `stderr` receives skipped rows, warnings and the summary;
 * password digests are only ever written to the output stream.
 */
export async function runExport(opts, { stdout = process.stdout, stderr = process.stderr } = {}) {
  const kind = classifyDb(opts.db);
  if (kind === 'mysql') {
    throw new Error('MySQL / MariaDB is not supported by export-users (no MySQL client is installed)');
  }
  if (!kind) throw new Error(`unrecognised --db "${opts.db}": expected postgres://…, sqlite:… or a .db/.sqlite file`);
  const out = opts.out ? fs.createWriteStream(opts.out) : stdout;
  const info = {};
  const counts = { rows: 0, written: 0, skipped: 0, withPassword: 0, warnings: 0 };
  const tty = Boolean(stderr.isTTY);
  let failed = null;
  // A closed pipe (export-users … | head) or a full disk ends the export
  // with a message instead of an unhandled 'error' event.
  let outError = null;
  const onOutError = (err) => {
    outError ??= err;
  };
  out.on('error', onOutError);
  try {
    const rows = kind === 'pg' ? pgRows(opts, info) : sqliteRows(opts, info);
    for await (const raw of rows) {
      counts.rows++;
      const row = normalizeRow(raw, info.plan);
      const { record, skip, warnings } = buildRecord(row, { passwordHasher: opts.password?.hasher });
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
    if (opts.out) {
      out.end();
      await once(out, 'close').catch(() => {});
    }
    out.off('error', onOutError);
  }
  if (failed?.code === 'EPIPE') failed = new Error('output closed before the export finished');
  if (tty && counts.rows >= 10000) stderr.write('\n');
  if (failed) throw failed;
  const plan = info.plan;
  stderr.write(
    `export-users: ${counts.written} records written${opts.out ? ` to ${opts.out}` : ''}` +
      ` from ${info.where} (${plan.naming} naming), ${counts.skipped} skipped,` +
      ` ${counts.withPassword} with a password digest, ${counts.warnings} warnings\n`,
  );
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
