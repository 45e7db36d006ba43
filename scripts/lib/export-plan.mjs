// export-plan: decides, from a database's table and column names alone, which
// tables export-users reads and builds the one SELECT that streams them. No
// database access here: each source (export-sources.mjs) lists its tables and
// columns, hands them to these functions and runs the SQL they return.
//
// Table layouts understood (read from the upstream adapters):
//   prisma  - tables "User" / "Account", camelCase columns ("emailVerified")
//             nextauthjs/next-auth docs/pages/getting-started/adapters/prisma.mdx
//             (PostgreSQL, MySQL and SQLite models), packages/adapter-prisma/prisma/schema.prisma
//   pg      - tables users / accounts, "emailVerified" TIMESTAMPTZ
//             nextauthjs/next-auth packages/adapter-pg/schema.sql
//   drizzle - tables "user" / "account" (drizzle and kysely); "emailVerified" a
//             timestamp, in SQLite an integer in milliseconds, in MySQL timestamp(3)
//             packages/adapter-drizzle/src/lib/{pg,mysql,sqlite}.ts,
//             packages/adapter-kysely tests/migrations/testMigrations.ts

export const NAMINGS = {
  prisma: ['User'],
  pg: ['users'],
  drizzle: ['user'],
};

// The accounts table that goes with each users table naming.
export const ACCOUNT_NAMINGS = {
  prisma: ['Account'],
  pg: ['accounts'],
  drizzle: ['account'],
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

// Accounts columns. NextAuth v3 spelled them provider_id / provider_type.
// None of the upstream adapters stores the provider's email on the account;
// an `email` column is read when an application added one, and otherwise the
// address comes from the OpenID Connect id_token the adapters keep.
const ACCOUNT_COLUMN_CANDIDATES = {
  userId: USER_FK_CANDIDATES,
  provider: ['provider', 'provider_id', 'providerId'],
  type: ['type', 'provider_type', 'providerType'],
  idToken: ['id_token', 'idToken'],
  email: ['email'],
};

/** SQL spelling that differs between the databases export-users reads. */
export const DIALECTS = {
  pg: {
    quote: (name) => `"${String(name).replace(/"/g, '""')}"`,
    // One JSON array per user: [[provider, type, id_token, email], …].
    accountsAgg: (cols) => `json_agg(json_build_array(${cols}))`,
  },
  sqlite: {
    quote: (name) => `"${String(name).replace(/"/g, '""')}"`,
    accountsAgg: (cols) => `json_group_array(json_array(${cols}))`,
  },
  mysql: {
    quote: (name) => `\`${String(name).replace(/`/g, '``')}\``,
    // GROUP_CONCAT rather than JSON_ARRAYAGG: the latter needs MariaDB 10.5 /
    // MySQL 5.7.22. The source raises group_concat_max_len, and a truncated
    // list fails to parse instead of passing for a shorter one.
    accountsAgg: (cols) => `CONCAT('[', GROUP_CONCAT(JSON_ARRAY(${cols}) SEPARATOR ','), ']')`,
  },
};

export function pick(columns, candidates) {
  for (const c of candidates) if (columns.some((col) => col.name === c)) return c;
  for (const c of candidates) {
    const hit = columns.find((col) => col.name.toLowerCase() === c.toLowerCase());
    if (hit) return hit.name;
  }
  return null;
}

export function findTable(tables, wanted) {
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

/**
 * Chooses the accounts table read by --trust-providers / --report: the one
 * named like the users table ("Account" next to "User", accounts next to
 * users, "account" next to "user"), or --accounts-table. Returns null when
 * neither option asked for it; throws when it is needed and missing.
 */
export function planAccounts(tables, plan, { accountsTable, needed }) {
  if (!needed) return null;
  let chosen = null;
  if (accountsTable) {
    chosen = findTable(tables, accountsTable);
    if (!chosen) throw new Error(`accounts table "${accountsTable}" not found`);
  } else {
    const names =
      plan.naming === 'custom' ? [...new Set(Object.values(ACCOUNT_NAMINGS).flat())] : ACCOUNT_NAMINGS[plan.naming];
    const found = [...new Set(names.map((n) => findTable(tables, n)).filter(Boolean))];
    if (found.length === 0) {
      throw new Error(
        `no accounts table (${names.map((t) => `"${t}"`).join(', ')}) found next to "${plan.table}";` +
          ' --trust-providers and --report read it (name it with --accounts-table)',
      );
    }
    if (found.length > 1) {
      throw new Error(`several accounts tables found (${found.map((t) => `"${t}"`).join(', ')}); choose one with --accounts-table`);
    }
    chosen = found[0];
  }
  const cols = tables.get(chosen);
  const columns = {};
  for (const [field, candidates] of Object.entries(ACCOUNT_COLUMN_CANDIDATES)) columns[field] = pick(cols, candidates);
  if (!columns.userId) throw new Error(`accounts table "${chosen}" has no userId / user_id column`);
  if (!columns.provider) throw new Error(`accounts table "${chosen}" has no provider column`);
  return { table: chosen, columns };
}

/**
 * The users SELECT, ordered by id, with the password digest and the user's
 * accounts when asked. The accounts come from a join on the accounts grouped
 * by user (PostgreSQL and SQLite hash or index it), or with `perUser` from a
 * subquery per user row: MariaDB joins a grouped derived table by scanning it
 * once per block of users, so where the user column is indexed the subquery
 * is the one that stays linear (and streams in primary key order).
 */
export function buildSelect(plan, pw, dialect, qualify = dialect.quote, accounts = null, { perUser = false } = {}) {
  const q = dialect.quote;
  const select = [];
  for (const [field, col] of Object.entries(plan.columns)) {
    if (col) select.push(`u.${q(col)} AS ${q(field)}`);
  }
  let from = `${qualify(plan.table)} u`;
  if (pw && !pw.join) {
    select.push(`u.${q(pw.column)} AS ${q('passwordDigest')}`);
  } else if (pw) {
    select.push(`p.digest AS ${q('passwordDigest')}`);
    const c = q(pw.column);
    from +=
      ` LEFT JOIN (SELECT ${q(pw.join)} AS uid, MAX(${c}) AS digest FROM ${qualify(pw.table)}` +
      ` WHERE ${c} IS NOT NULL AND ${c} <> '' GROUP BY ${q(pw.join)}) p ON p.uid = u.${q(plan.columns.id)}`;
  }
  if (accounts) {
    const a = accounts.columns;
    const cols = [a.provider, a.type, a.idToken, a.email].map((c) => (c ? q(c) : 'NULL')).join(', ');
    if (perUser) {
      select.push(
        `(SELECT ${dialect.accountsAgg(cols)} FROM ${qualify(accounts.table)} a` +
          ` WHERE a.${q(a.userId)} = u.${q(plan.columns.id)}) AS ${q('accounts')}`,
      );
      return `SELECT ${select.join(', ')} FROM ${from} ORDER BY u.${q(plan.columns.id)}`;
    }
    select.push(`acc.list AS ${q('accounts')}`);
    from +=
      ` LEFT JOIN (SELECT ${q(a.userId)} AS uid, ${dialect.accountsAgg(cols)} AS list FROM ${qualify(accounts.table)}` +
      ` GROUP BY ${q(a.userId)}) acc ON acc.uid = u.${q(plan.columns.id)}`;
  }
  return `SELECT ${select.join(', ')} FROM ${from} ORDER BY u.${q(plan.columns.id)}`;
}

/** Providers in use: one row per (provider, type) with its account and user counts. */
export function buildProvidersSelect(accounts, dialect, qualify = dialect.quote) {
  const q = dialect.quote;
  const a = accounts.columns;
  const type = a.type ? q(a.type) : 'NULL';
  return (
    `SELECT ${q(a.provider)} AS ${q('provider')}, ${type} AS ${q('type')}, COUNT(*) AS ${q('accounts')},` +
    ` COUNT(DISTINCT ${q(a.userId)}) AS ${q('users')} FROM ${qualify(accounts.table)}` +
    ` GROUP BY ${q(a.provider)}${a.type ? `, ${type}` : ''} ORDER BY 1, 2`
  );
}
