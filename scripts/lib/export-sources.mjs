// export-sources: the databases export-users reads (PostgreSQL, MySQL /
// MariaDB, SQLite). Each source lists the tables of one schema, lets
// export-plan.mjs choose what to read, and yields the users one row at a time
// without holding the table in memory: a server-side cursor on PostgreSQL,
// the row stream of the result set (with backpressure on the socket) on
// MySQL / MariaDB, a stepped statement on SQLite.
//
// Every source fills `info` ({plan, where, accounts, providers}) and calls
// `onPlanned(info)` before the first row, so bad options fail before any
// output is written.
import fs from 'node:fs';
import {
  DIALECTS,
  NAMINGS,
  buildProvidersSelect,
  buildSelect,
  findTable,
  planAccounts,
  planPassword,
  planUsersTable,
} from './export-plan.mjs';

function plan(tables, opts, info) {
  info.plan = planUsersTable(tables, opts);
  info.accounts = planAccounts(tables, info.plan, { accountsTable: opts.accountsTable, needed: opts.readAccounts });
  return planPassword(tables, info.plan, opts.password);
}

function providerRows(rows) {
  return rows.map((r) => ({
    provider: r.provider === null || r.provider === undefined ? null : String(r.provider),
    type: r.type === null || r.type === undefined ? null : String(r.type),
    accounts: Number(r.accounts),
    users: Number(r.users),
  }));
}

// ---------------------------------------------------------------- PostgreSQL

// Keep timestamps as the server's text so nothing is shifted by the local
// time zone of this machine; records.toRfc3339 reads text without an offset
// as UTC, which is how Prisma writes `timestamp(3)`.
const PG_TEXT_TYPES = new Set([1082 /* date */, 1114 /* timestamp */, 1184 /* timestamptz */]);

export async function* pgRows(opts, info, onPlanned) {
  const { default: pg } = await import('pg');
  const dialect = DIALECTS.pg;
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
    if (schemaParam) await client.query(`SELECT set_config('search_path', $1, false)`, [dialect.quote(schemaParam)]);
    // One snapshot for the providers count and the users: both see the same data.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
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
    const pw = plan(tables, opts, info);
    const qualify = (t) => `${dialect.quote(schemaOf.get(t))}.${dialect.quote(t)}`;
    info.where = `${schemaOf.get(info.plan.table)}.${info.plan.table}`;
    if (info.accounts) {
      info.providers = providerRows((await client.query(buildProvidersSelect(info.accounts, dialect, qualify))).rows);
    }
    onPlanned(info);
    const sql = buildSelect(info.plan, pw, dialect, qualify, info.accounts);
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

// ------------------------------------------------------------ MySQL / MariaDB

/**
 * Connection options from a mysql:// or mariadb:// URL. Understands the TLS
 * parameters Prisma (`sslaccept`), mysql2 (`ssl`) and the MySQL clients
 * (`ssl-mode` / `sslmode`) use, and `socket` for a Unix socket; Prisma's pool
 * settings are ignored. Anything else is reported in `warnings`.
 */
export function mysqlConfig(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`malformed MySQL / MariaDB URL (expected mysql://user:password@host:port/database)`);
  }
  const warnings = [];
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!database || database.includes('/')) {
    throw new Error('the MySQL / MariaDB URL names no database (mysql://user:password@host:port/database)');
  }
  const socket = url.searchParams.get('socket');
  if (!url.hostname && !socket) throw new Error('the MySQL / MariaDB URL names no host');
  const config = {
    database,
    user: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
  };
  if (socket) config.socketPath = socket;
  else {
    config.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    config.port = url.port ? Number(url.port) : 3306;
  }
  const IGNORED = new Set(['connection_limit', 'pool_timeout', 'socket_timeout', 'schema', 'sslcert', 'sslidentity', 'sslpassword']);
  for (const [key, value] of url.searchParams) {
    const v = value.toLowerCase();
    if (key === 'socket') continue;
    if (key === 'ssl') {
      if (['true', '1', 'required'].includes(v)) config.ssl = { rejectUnauthorized: true };
      else if (!['false', '0'].includes(v)) throw new Error(`ssl=${value} in the MySQL URL: expected true or false`);
    } else if (key === 'sslaccept') {
      if (v === 'strict') config.ssl = { rejectUnauthorized: true };
      else if (v === 'accept_invalid_certs') config.ssl = { rejectUnauthorized: false };
      else throw new Error(`sslaccept=${value} in the MySQL URL: expected strict or accept_invalid_certs`);
    } else if (key === 'sslmode' || key === 'ssl-mode') {
      if (['disable', 'disabled'].includes(v)) delete config.ssl;
      else if (['require', 'required', 'verify_ca', 'verify_identity', 'verify-full', 'verify-ca'].includes(v)) {
        config.ssl = { rejectUnauthorized: true };
      } else throw new Error(`${key}=${value} in the MySQL URL: expected disabled, required or verify_identity`);
    } else if (key === 'connect_timeout') {
      const s = Number(value);
      if (!(s > 0)) throw new Error(`connect_timeout=${value} in the MySQL URL: expected seconds`);
      config.connectTimeout = s * 1000;
    } else if (!IGNORED.has(key)) {
      warnings.push(`MySQL URL parameter "${key}" ignored`);
    }
  }
  return { config, warnings };
}

// mysql2's promise-less API gives the row stream; these wrap the rest.
const mysqlQuery = (conn, sql, params = []) =>
  new Promise((resolve, reject) => conn.query(sql, params, (err, rows) => (err ? reject(err) : resolve(rows))));

function mysqlError(err, config) {
  const where = config.socketPath ?? `${config.host}:${config.port}`;
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(err.code)) {
    return new Error(`cannot connect to MySQL / MariaDB at ${where}: ${err.code}`);
  }
  if (err.sqlMessage) return new Error(`MySQL / MariaDB at ${where}: ${err.sqlMessage}`);
  return err;
}

export async function* mysqlRows(opts, info, onPlanned, warn = () => {}) {
  const { default: mysql } = await import('mysql2');
  const dialect = DIALECTS.mysql;
  const { config, warnings } = mysqlConfig(opts.db);
  warnings.forEach(warn);
  const conn = mysql.createConnection({
    ...config,
    charset: 'utf8mb4',
    // Timestamps as the server's text, read as UTC like the adapters do (Drizzle
    // appends +0000 to what it reads; Prisma stores UTC in DATETIME(3)), so the
    // time zone of this machine shifts nothing. The session keeps the server's
    // time zone, the one the application's own connections read TIMESTAMP in.
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  let connectionError = null;
  conn.on('error', (err) => {
    connectionError ??= err;
  });
  let done = false;
  let stream = null;
  try {
    await new Promise((resolve, reject) => conn.connect((err) => (err ? reject(err) : resolve())));
    // The accounts list of a user is built with GROUP_CONCAT; lift its 1 KB /
    // 1 MB cap. A slow reader downstream (the import upload) must not make the
    // server drop the connection while the result is paused.
    await mysqlQuery(conn, 'SET SESSION group_concat_max_len = 16777216');
    await mysqlQuery(conn, 'SET SESSION net_write_timeout = 3600').catch(() => {});
    await mysqlQuery(conn, 'SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await mysqlQuery(conn, 'START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    const cols = await mysqlQuery(
      conn,
      `SELECT TABLE_NAME AS tname, COLUMN_NAME AS cname, DATA_TYPE AS dtype, COLUMN_TYPE AS ctype
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
        ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    );
    const tables = new Map();
    for (const r of cols) {
      if (!tables.has(r.tname)) tables.set(r.tname, []);
      // MySQL has no boolean type: BOOLEAN is TINYINT(1).
      const type = /^tinyint\(1\)/i.test(r.ctype) ? 'boolean' : r.dtype;
      tables.get(r.tname).push({ name: r.cname, type });
    }
    const pw = plan(tables, opts, info);
    info.where = `${config.database}.${info.plan.table}`;
    let perUser = false;
    if (info.accounts) {
      info.providers = providerRows(await mysqlQuery(conn, buildProvidersSelect(info.accounts, dialect)));
      const { table, columns } = info.accounts;
      const indexed = await mysqlQuery(
        conn,
        `SELECT 1 FROM information_schema.STATISTICS
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ? AND SEQ_IN_INDEX = 1 LIMIT 1`,
        [table, columns.userId],
      );
      perUser = indexed.length > 0;
      if (!perUser) {
        // No index to look accounts up by user: join the grouped accounts by
        // hashing. MySQL 8 hash-joins on its own; MariaDB needs join_cache_level
        // 4 for it and a join buffer large enough that it scans the grouped
        // accounts a few times, not once per few hundred users. (MySQL has no
        // join_cache_level: the errors are ignored.)
        for (const set of ['join_cache_level = 4', 'join_buffer_space_limit = 67108864', 'join_buffer_size = 16777216']) {
          await mysqlQuery(conn, `SET SESSION ${set}`).catch(() => {});
        }
        warn(
          `"${table}"."${columns.userId}" has no index; the accounts are joined without one` +
            ` (CREATE INDEX ${table}_${columns.userId}_idx ON ${dialect.quote(table)} (${dialect.quote(columns.userId)}) would help)`,
        );
      }
    }
    onPlanned(info);
    // A plain (text protocol) query streams its result set row by row; the
    // stream pauses the socket when its buffer of batchSize rows is full.
    stream = conn.query(buildSelect(info.plan, pw, dialect, dialect.quote, info.accounts, { perUser })).stream({
      highWaterMark: opts.batchSize,
    });
    for await (const row of stream) {
      if (typeof row.accounts === 'string') {
        try {
          row.accounts = JSON.parse(row.accounts);
        } catch {
          throw new Error(`the accounts of user ${row.id} do not fit in group_concat_max_len`);
        }
      }
      yield row;
    }
    if (connectionError) throw connectionError;
    await mysqlQuery(conn, 'COMMIT');
    done = true;
  } catch (err) {
    throw mysqlError(err, config);
  } finally {
    stream?.destroy();
    // end() waits for a result in flight; an export stopped half-way drops the connection.
    if (done) await new Promise((resolve) => conn.end(() => resolve()));
    else conn.destroy();
  }
}

// -------------------------------------------------------------------- SQLite

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

export async function* sqliteRows(opts, info, onPlanned) {
  const { default: Database } = await import('better-sqlite3');
  const file = sqlitePath(opts.db);
  if (!fs.existsSync(file)) throw new Error(`SQLite database not found: ${file}`);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const dialect = DIALECTS.sqlite;
  try {
    // One read transaction: the providers count and the users see one snapshot.
    db.prepare('BEGIN').run();
    const tables = new Map();
    const names = db
      .prepare(`SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'`)
      .all()
      .map((r) => r.name);
    for (const name of names) {
      const cols = db.prepare(`PRAGMA table_info(${dialect.quote(name)})`).all();
      tables.set(name, cols.map((c) => ({ name: c.name, type: c.type })));
    }
    const pw = plan(sqliteTables(tables, opts), opts, info);
    info.where = file;
    if (info.accounts) info.providers = providerRows(db.prepare(buildProvidersSelect(info.accounts, dialect)).all());
    onPlanned(info);
    const stmt = db.prepare(buildSelect(info.plan, pw, dialect, dialect.quote, info.accounts));
    stmt.safeIntegers(false);
    // iterate() steps the statement one row at a time: nothing is buffered.
    for (const row of stmt.iterate()) {
      if (typeof row.accounts === 'string') row.accounts = JSON.parse(row.accounts);
      yield row;
    }
    db.prepare('COMMIT').run();
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
