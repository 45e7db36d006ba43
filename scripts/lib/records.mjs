// Import-record helpers shared by export-users and import-users.
// The record shape is the "Import record" section of SPEC.md.

// Clerk's password hashers, as listed for `PasswordHasher` (POST /users
// `password_hasher`) in clerk/bapi-2026-05-12.yml. The spec has no enum, only
// this list in the description; keep it in step with that file.
export const CLERK_PASSWORD_HASHERS = Object.freeze([
  'argon2i',
  'argon2id',
  'bcrypt',
  'bcrypt_sha256_django',
  'ldap_ssha',
  'md5',
  'md5_phpass',
  'pbkdf2_sha1',
  'pbkdf2_sha256',
  'pbkdf2_sha256_django',
  'pbkdf2_sha512',
  'pbkdf2_sha512_hex',
  'phpass',
  'scrypt_firebase',
  'scrypt_werkzeug',
  'sha256',
  'sha512_symfony',
]);

export function isClerkHasher(name) {
  return CLERK_PASSWORD_HASHERS.includes(name);
}

// Unix time given as a number: values this large are milliseconds
// (1e11 ms is March 1973, 1e11 s is year 5138).
const MS_THRESHOLD = 1e11;

const SQL_DATETIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Turns a database timestamp into an RFC 3339 string (UTC, millisecond
 * precision), or returns null when the value is empty or not a time.
 * Accepts Date, epoch seconds / milliseconds (number, bigint or digit
 * string), ISO 8601 and SQL "YYYY-MM-DD HH:MM:SS[.fff][+zz]" text. Text
 * without an offset is read as UTC (Prisma stores `timestamp(3)` in UTC).
 */
export function toRfc3339(value) {
  if (value === null || value === undefined) return null;
  let ms;
  if (value instanceof Date) {
    ms = value.getTime();
  } else if (typeof value === 'number' || typeof value === 'bigint') {
    const n = Number(value);
    ms = Math.abs(n) >= MS_THRESHOLD ? n : n * 1000;
  } else if (typeof value === 'string') {
    const s = value.trim();
    if (s === '') return null;
    if (/^-?\d+(\.\d+)?$/.test(s)) return toRfc3339(Number(s));
    const m = SQL_DATETIME.exec(s);
    if (!m) return null;
    const [, y, mo, d, h = '00', mi = '00', sec = '00', frac = '', zone] = m;
    const fracMs = frac ? Math.floor(Number(frac) * 1000) : 0;
    ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +sec, fracMs);
    if (zone && zone.toUpperCase() !== 'Z') {
      const sign = zone[0] === '-' ? -1 : 1;
      const digits = zone.slice(1).replace(':', '');
      const offMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0');
      ms -= sign * offMin * 60_000;
    }
    // Reject impossible calendar dates such as 2024-02-31.
    const check = new Date(Date.UTC(+y, +mo - 1, +d));
    if (check.getUTCDate() !== +d || check.getUTCMonth() !== +mo - 1) return null;
  } else {
    return null;
  }
  if (!Number.isFinite(ms)) return null;
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return null;
  return date.toISOString();
}

function text(value) {
  if (value === null || value === undefined) return undefined;
  const s = String(value).trim();
  return s === '' ? undefined : s;
}

/**
 * Builds one import record from a normalised row
 * `{id, email, emailVerified, name, image, username, phone, createdAt, passwordDigest}`.
 * Returns `{record}` or `{skip: reason}`; `warnings` lists recoverable oddities.
 */
export function buildRecord(row, { passwordHasher } = {}) {
  const warnings = [];
  const id = text(row.id);
  if (id === undefined) return { skip: 'no id', warnings };
  const email = text(row.email);
  const username = text(row.username);
  const phone = text(row.phone);
  if (email === undefined && username === undefined && phone === undefined) {
    return { skip: 'no email, phone or username', warnings };
  }
  const record = { id };
  if (email !== undefined) {
    record.email = email;
    const v = row.emailVerified;
    if (typeof v === 'boolean') {
      record.email_verified = v;
    } else if (v === null || v === undefined || v === '') {
      record.email_verified = false;
    } else {
      const ts = toRfc3339(v);
      if (ts === null) {
        // Never guess "verified" from a value we cannot read.
        warnings.push('unreadable emailVerified value, exported as unverified');
        record.email_verified = false;
      } else {
        record.email_verified = ts;
      }
    }
  }
  const name = text(row.name);
  if (name !== undefined) record.name = name;
  const image = text(row.image);
  if (image !== undefined) record.image = image;
  if (username !== undefined) record.username = username;
  if (phone !== undefined) record.phone = phone;
  if (passwordHasher) {
    const digest = row.passwordDigest;
    if (digest !== null && digest !== undefined) {
      const d = Buffer.isBuffer(digest) ? digest.toString('utf8') : String(digest);
      if (d.trim() !== '') {
        record.password_digest = d;
        record.password_hasher = passwordHasher;
      }
    }
  }
  if (row.createdAt !== null && row.createdAt !== undefined) {
    const ts = toRfc3339(row.createdAt);
    if (ts === null) warnings.push('unreadable creation time, created_at left out');
    else record.created_at = ts;
  }
  return { record, warnings };
}
