// Shared helpers for the export / import script tests.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../..');
export const EXPORT_USERS = path.join(ROOT, 'scripts/export-users');
export const IMPORT_USERS = path.join(ROOT, 'scripts/import-users');
export const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// A server URL without a database: each test creates and drops its own.
export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/';

export function schemaSql(name) {
  return fs.readFileSync(path.join(here, 'schemas', name), 'utf8');
}

/** Runs a script as a child process; resolves {code, stdout, stderr}. */
export function run(script, args, { env = {}, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(script, args, {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(script)} timed out\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export const ndjson = (text) =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));

/**
 * A fresh PostgreSQL schema `export_test_<random>` holding the given SQL.
 * Returns {client, schema, url, drop}; `url` carries ?schema= for the script.
 */
export async function pgSchema(sql) {
  const schema = `export_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.query(`SET search_path TO ${schema}`);
  await client.query(sql);
  const url = new URL(PG_URL);
  url.searchParams.set('schema', schema);
  return {
    client,
    schema,
    url: url.toString(),
    async drop() {
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    },
  };
}

export function tempDir(prefix = 'auth-bridge-export-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Whether MariaDB / MySQL answers at MYSQL_URL: null when it does, else the
 * reason. Callers skip with that reason locally; under CI (CI=true) a missing
 * server fails the tests instead of skipping them.
 */
// Loaded on first use, so the PostgreSQL / SQLite tests do not depend on the MySQL client.
const mysqlClient = async () => (await import('mysql2/promise')).default;

export async function mysqlUnavailable() {
  try {
    const mysql = await mysqlClient();
    const conn = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 3000 });
    await conn.end();
    return null;
  } catch (err) {
    return `MariaDB / MySQL not reachable at ${MYSQL_URL}: ${err.code ?? err.message}`;
  }
}

export async function requireMysql(t) {
  const reason = await mysqlUnavailable();
  if (reason === null) return true;
  if (process.env.CI && !['false', '0'].includes(process.env.CI)) throw new Error(`${reason} (CI is set: the MySQL export tests must run)`);
  t.skip(reason);
  return false;
}

/**
 * A fresh database `export_test_<random>` holding the given SQL. Returns
 * {conn, database, url, drop}; `url` names the database for the script.
 */
export async function mysqlDatabase(sql, { scheme = 'mysql' } = {}) {
  const mysql = await mysqlClient();
  const database = `export_test_${randomBytes(6).toString('hex')}`;
  const admin = await mysql.createConnection({ uri: MYSQL_URL });
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`);
  await admin.end();
  const conn = await mysql.createConnection({ uri: MYSQL_URL, database, multipleStatements: true, dateStrings: true });
  if (sql) await conn.query(sql);
  const url = new URL(MYSQL_URL);
  url.protocol = `${scheme}:`;
  url.pathname = `/${database}`;
  return {
    conn,
    database,
    url: url.toString(),
    async drop() {
      await conn.query(`DROP DATABASE \`${database}\``);
      await conn.end();
    },
  };
}

/** An id_token as a provider issues it (the signature is not checked by the export). */
export function idToken(claims) {
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  return `${part({ alg: 'RS256', kid: 'test' })}.${part({ iss: 'https://accounts.example.com', sub: '1', ...claims })}.${randomBytes(32).toString('base64url')}`;
}
