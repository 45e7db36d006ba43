// In-memory users: request validation and the User object shape of Clerk's Backend API
// (OpenAPI 2026-05-12: CreateUser, UpdateUser, GetUserList, GetUsersCount, UpdateUserMetadata).
import { clerkId, b64url } from './keys.mjs';
import { E, unprocessable, userNotFound, requestBodyInvalid } from './errors.mjs';

// Request body schemas: field -> type. All of them are `additionalProperties: false` in the spec.
// Types: str (nullable string), str! (non-null string), strs (string array), bool (nullable
// boolean), int (nullable integer), obj (object), statuses (array of enum verified|reserved).
export const CREATE_USER_FIELDS = {
  external_id: 'str',
  first_name: 'str',
  last_name: 'str',
  locale: 'str',
  email_address: 'strs',
  email_address_identification_status: 'statuses',
  phone_number: 'strs',
  phone_number_identification_status: 'statuses',
  web3_wallet: 'strs',
  username: 'str',
  password: 'str',
  password_digest: 'str',
  password_hasher: 'str!',
  skip_password_checks: 'bool',
  skip_password_requirement: 'bool',
  totp_secret: 'str',
  backup_codes: 'strs',
  public_metadata: 'obj',
  private_metadata: 'obj',
  unsafe_metadata: 'obj',
  delete_self_enabled: 'bool',
  legal_accepted_at: 'str',
  skip_legal_checks: 'bool',
  skip_user_requirement: 'bool',
  create_organization_enabled: 'bool',
  create_organizations_limit: 'int',
  created_at: 'str',
  bypass_client_trust: 'bool',
  banned: 'bool',
  locked: 'bool',
};

export const UPDATE_USER_FIELDS = {
  external_id: 'str',
  first_name: 'str',
  last_name: 'str',
  locale: 'str',
  primary_email_address_id: 'str',
  notify_primary_email_address_changed: 'bool',
  primary_phone_number_id: 'str',
  primary_web3_wallet_id: 'str',
  username: 'str',
  profile_image_id: 'str',
  password: 'str',
  password_digest: 'str!',
  password_hasher: 'str!',
  skip_password_checks: 'bool',
  sign_out_of_other_sessions: 'bool',
  totp_secret: 'str',
  backup_codes: 'strs',
  delete_self_enabled: 'bool',
  create_organization_enabled: 'bool',
  legal_accepted_at: 'str',
  skip_legal_checks: 'bool',
  create_organizations_limit: 'int',
  created_at: 'str',
  bypass_client_trust: 'bool',
};

export const METADATA_FIELDS = { public_metadata: 'obj', private_metadata: 'obj', unsafe_metadata: 'obj' };

// PasswordHasher: the algorithms listed in the spec's schema description.
export const PASSWORD_HASHERS = [
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
];

const ORDER_FIELDS = [
  'created_at',
  'updated_at',
  'email_address',
  'web3wallet',
  'first_name',
  'last_name',
  'phone_number',
  'username',
  'last_active_at',
  'last_sign_in_at',
];

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PHONE_RE = /^\+[1-9]\d{6,14}$/;
const USERNAME_RE = /^[A-Za-z0-9_-]+$/;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Unknown fields first (all of them), then JSON types. Throws a 422 ApiError. */
export function checkShape(body, fields) {
  if (!isPlainObject(body)) throw requestBodyInvalid();
  const unknown = Object.keys(body).filter((k) => !Object.hasOwn(fields, k));
  if (unknown.length) throw unprocessable(unknown.map((k) => E.unknown(k)));
  const errors = [];
  for (const [k, v] of Object.entries(body)) {
    const t = fields[k];
    const bad = (expected) => errors.push(E.typeMismatch(k, typeName(v), expected));
    switch (t) {
      case 'str':
        if (v !== null && typeof v !== 'string') bad('string');
        break;
      case 'str!':
        if (typeof v !== 'string') bad('string');
        break;
      case 'bool':
        if (v !== null && typeof v !== 'boolean') bad('boolean');
        break;
      case 'int':
        if (v !== null && !Number.isInteger(v)) bad('integer');
        break;
      case 'obj':
        if (!isPlainObject(v)) bad('object');
        break;
      case 'strs':
      case 'statuses':
        if (v !== null && (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))) bad('[]string');
        break;
    }
  }
  if (errors.length) throw unprocessable(errors);
}

export function digestMatchesHasher(hasher, digest) {
  if (typeof digest !== 'string' || digest.length === 0) return false;
  switch (hasher) {
    case 'bcrypt':
      return /^\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}$/.test(digest);
    case 'bcrypt_sha256_django':
      return /^bcrypt_sha256\$\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}$/.test(digest);
    case 'argon2i':
    case 'argon2id':
      return new RegExp(`^\\$${hasher}\\$(v=\\d+\\$)?m=\\d+,t=\\d+,p=\\d+\\$[A-Za-z0-9+/]+={0,2}\\$[A-Za-z0-9+/]+={0,2}$`).test(digest);
    case 'md5':
      return /^[a-fA-F0-9]{32}$/.test(digest);
    case 'sha256':
      return /^[a-fA-F0-9]{64}$/.test(digest);
    case 'pbkdf2_sha1':
    case 'pbkdf2_sha256':
    case 'pbkdf2_sha512':
    case 'pbkdf2_sha512_hex':
    case 'pbkdf2_sha256_django': {
      const algo = hasher.replace(/_django$|_hex$/, '');
      return new RegExp(`^${algo}\\$\\d+\\$[^$]+\\$[^$]+$`).test(digest);
    }
    case 'scrypt_firebase':
      return digest.split('$').length >= 6;
    case 'phpass':
    case 'md5_phpass':
      return /^\$[PH]\$/.test(digest);
    case 'ldap_ssha':
      return /^\{SSHA\}/i.test(digest);
    case 'scrypt_werkzeug':
      return /^scrypt:\d+:\d+:\d+\$[^$]+\$[^$]+$/.test(digest);
    default:
      return true;
  }
}

function checkPassword(errors, password, skipChecks) {
  if (Buffer.byteLength(password, 'utf8') > 72) errors.push(E.passwordTooLong());
  else if (!skipChecks && password.length < 8) errors.push(E.passwordTooShort(8));
}

function checkRfc3339(errors, name, value, { notFuture = false } = {}) {
  if (value == null) return;
  if (!RFC3339_RE.test(value) || Number.isNaN(Date.parse(value))) errors.push(E.invalidTime(name));
  else if (notFuture && Date.parse(value) > Date.now() + 60_000) errors.push(E.futureDate(name));
}

function checkUsername(errors, username) {
  if (username.length < 4 || username.length > 64) errors.push(E.usernameLength(4, 64));
  else if (!USERNAME_RE.test(username)) errors.push(E.usernameCharacter());
}

function checkStatuses(errors, name, statuses, parallel, parallelName) {
  if (statuses == null || statuses.length === 0) return;
  if (statuses.length !== (parallel || []).length) {
    errors.push(E.arrayLengthMismatch(name, parallelName));
    return;
  }
  for (const s of statuses) {
    if (s !== 'verified' && s !== 'reserved') errors.push(E.valueNotAllowed(name, s, ['verified', 'reserved']));
  }
}

function checkPasswordDigest(errors, body, { creating }) {
  const hasDigest = body.password_digest != null;
  const hasHasher = body.password_hasher != null;
  if (hasDigest && !hasHasher) errors.push(E.conditionalMissing('password_hasher', 'password_digest'));
  if (hasHasher && !hasDigest) errors.push(E.conditionalMissing('password_digest', 'password_hasher'));
  if (hasDigest && body.password != null) errors.push(E.conditionalDisallowed('password_digest', 'password'));
  if (hasHasher && !PASSWORD_HASHERS.includes(body.password_hasher)) {
    errors.push(E.valueInvalid('password_hasher', body.password_hasher));
  } else if (hasDigest && hasHasher && !digestMatchesHasher(body.password_hasher, body.password_digest)) {
    errors.push(E.passwordDigestInvalid());
  }
  void creating;
}

const lower = (s) => String(s).trim().toLowerCase();

function deepMerge(target, patch) {
  const out = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = deepMerge(out[k], v);
    else out[k] = v;
  }
  return out;
}

export class UserStore {
  constructor({ externalIdUnique = true, requireIdentifier = true, passwordRequired = false } = {}) {
    this.options = { externalIdUnique, requireIdentifier, passwordRequired };
    this.users = new Map();
    this.seq = 0;
    this.byEmail = new Map();
    this.byPhone = new Map();
    this.byUsername = new Map();
    this.byExternalId = new Map();
  }

  reset() {
    this.users.clear();
    this.seq = 0;
    this.byEmail.clear();
    this.byPhone.clear();
    this.byUsername.clear();
    this.byExternalId.clear();
  }

  // --- indexes (email, phone, username, external_id -> Set of user ids) ---
  index(user, add = true) {
    const put = (map, key) => {
      if (key == null) return;
      let set = map.get(key);
      if (!set) map.set(key, (set = new Set()));
      if (add) set.add(user.id);
      else {
        set.delete(user.id);
        if (!set.size) map.delete(key);
      }
    };
    user.emails.forEach((e) => put(this.byEmail, e.email_address));
    user.phones.forEach((p) => put(this.byPhone, p.phone_number));
    put(this.byUsername, user.username);
    put(this.byExternalId, user.external_id);
  }
  firstOther(map, key, exceptId) {
    for (const id of map.get(key) || []) if (id !== exceptId) return this.users.get(id);
    return null;
  }
  findByEmail(email, exceptId) {
    return this.firstOther(this.byEmail, lower(email), exceptId);
  }
  findByPhone(phone, exceptId) {
    return this.firstOther(this.byPhone, phone, exceptId);
  }
  findByUsername(username, exceptId) {
    return this.firstOther(this.byUsername, lower(username), exceptId);
  }
  findByExternalId(externalId, exceptId) {
    return this.firstOther(this.byExternalId, externalId, exceptId);
  }

  get(id) {
    const u = this.users.get(id);
    if (!u) throw userNotFound(id);
    return u;
  }

  /** POST /v1/users */
  create(body) {
    if (body === undefined) throw requestBodyInvalid();
    checkShape(body, CREATE_USER_FIELDS);
    const errors = [];
    const emails = (body.email_address || []).map((e) => lower(e));
    const phones = (body.phone_number || []).map((p) => String(p).trim());
    emails.forEach((e) => {
      if (!EMAIL_RE.test(e)) errors.push(E.invalidEmail('email_address'));
    });
    phones.forEach((p) => {
      if (!PHONE_RE.test(p)) errors.push(E.invalidPhone('phone_number'));
    });
    if (emails.length > 100) errors.push(E.arrayTooLarge('email_address', 100));
    if (phones.length > 100) errors.push(E.arrayTooLarge('phone_number', 100));
    if (new Set(emails).size !== emails.length) errors.push(E.duplicateValues('email_address', emails.join(', ')));
    if (new Set(phones).size !== phones.length) errors.push(E.duplicateValues('phone_number', phones.join(', ')));
    checkStatuses(errors, 'email_address_identification_status', body.email_address_identification_status, emails, 'email_address');
    checkStatuses(errors, 'phone_number_identification_status', body.phone_number_identification_status, phones, 'phone_number');
    if (body.username != null && body.username !== '') checkUsername(errors, body.username);
    if (body.password != null) checkPassword(errors, body.password, body.skip_password_checks === true);
    checkPasswordDigest(errors, body, { creating: true });
    checkRfc3339(errors, 'created_at', body.created_at, { notFuture: true });
    checkRfc3339(errors, 'legal_accepted_at', body.legal_accepted_at);
    if (body.create_organizations_limit != null && body.create_organizations_limit < 0) {
      errors.push(E.tooSmall('create_organizations_limit', 0));
    }
    if (errors.length) throw unprocessable(errors);

    const hasIdentifier =
      emails.length > 0 || phones.length > 0 || (body.web3_wallet || []).length > 0 || (body.username != null && body.username !== '');
    if (this.options.requireIdentifier && !hasIdentifier) {
      throw unprocessable([E.atLeastOne(['email_address', 'phone_number', 'username', 'web3_wallet'])]);
    }
    if (
      this.options.passwordRequired &&
      body.password == null &&
      body.password_digest == null &&
      body.skip_password_requirement !== true
    ) {
      throw unprocessable([E.missing('password')]);
    }

    // Identifiers are unique across the instance, verified and reserved alike.
    const taken = [];
    if (emails.some((e) => this.findByEmail(e))) taken.push(E.identifierExists('email_address'));
    if (phones.some((p) => this.findByPhone(p))) taken.push(E.identifierExists('phone_number'));
    if (body.username && this.findByUsername(body.username)) taken.push(E.identifierExists('username'));
    if (this.options.externalIdUnique && body.external_id != null && this.findByExternalId(body.external_id)) {
      taken.push(E.identifierExists('external_id'));
    }
    if (taken.length) throw unprocessable(taken);

    const now = Date.now();
    const createdAt = body.created_at != null ? Date.parse(body.created_at) : now;
    const emailStatuses = body.email_address_identification_status || [];
    const phoneStatuses = body.phone_number_identification_status || [];
    const user = {
      id: clerkId('user'),
      seq: ++this.seq,
      external_id: body.external_id ?? null,
      first_name: body.first_name ?? null,
      last_name: body.last_name ?? null,
      locale: body.locale ?? null,
      username: body.username ? lower(body.username) : null,
      emails: emails.map((e, i) => ({
        id: clerkId('idn'),
        email_address: e,
        reserved: emailStatuses[i] === 'reserved',
        created_at: now,
        updated_at: now,
      })),
      phones: phones.map((p, i) => ({
        id: clerkId('idn'),
        phone_number: p,
        reserved: phoneStatuses[i] === 'reserved',
        created_at: now,
        updated_at: now,
      })),
      web3: (body.web3_wallet || []).slice(),
      password: null,
      password_last_updated_at: null,
      public_metadata: body.public_metadata ?? {},
      private_metadata: body.private_metadata ?? {},
      unsafe_metadata: body.unsafe_metadata ?? {},
      delete_self_enabled: body.delete_self_enabled ?? true,
      create_organization_enabled: body.create_organization_enabled ?? true,
      create_organizations_limit: body.create_organizations_limit ?? null,
      legal_accepted_at: body.legal_accepted_at != null ? Date.parse(body.legal_accepted_at) : null,
      bypass_client_trust: body.bypass_client_trust ?? false,
      banned: body.banned ?? false,
      locked: body.locked ?? false,
      totp: body.totp_secret != null,
      backup_codes: (body.backup_codes || []).length > 0,
      created_at: createdAt,
      updated_at: now,
    };
    user.primary_email_address_id = user.emails[0]?.id ?? null;
    user.primary_phone_number_id = user.phones[0]?.id ?? null;
    if (body.password != null) user.password = { hasher: 'plain' };
    else if (body.password_digest != null) user.password = { hasher: body.password_hasher };
    if (user.password) user.password_last_updated_at = now;
    this.users.set(user.id, user);
    this.index(user);
    return user;
  }

  /** PATCH /v1/users/{user_id} */
  update(id, body) {
    const user = this.get(id);
    if (body === undefined) throw requestBodyInvalid();
    checkShape(body, UPDATE_USER_FIELDS);
    const errors = [];
    if (body.username != null && body.username !== '') checkUsername(errors, body.username);
    if (body.password != null) checkPassword(errors, body.password, body.skip_password_checks === true);
    if (body.password == null && body.skip_password_checks != null) errors.push(E.conditionalMissing('password', 'skip_password_checks'));
    if (body.password == null && body.sign_out_of_other_sessions != null) {
      errors.push(E.conditionalMissing('password', 'sign_out_of_other_sessions'));
    }
    checkPasswordDigest(errors, body, { creating: false });
    checkRfc3339(errors, 'created_at', body.created_at, { notFuture: true });
    checkRfc3339(errors, 'legal_accepted_at', body.legal_accepted_at);
    if (body.primary_email_address_id != null) {
      const e = user.emails.find((x) => x.id === body.primary_email_address_id);
      if (!e) errors.push(E.resourceMissing('primary_email_address_id'));
      else if (e.reserved) errors.push(E.verificationNeeded('primary_email_address_id'));
    }
    if (body.primary_phone_number_id != null) {
      const p = user.phones.find((x) => x.id === body.primary_phone_number_id);
      if (!p) errors.push(E.resourceMissing('primary_phone_number_id'));
      else if (p.reserved) errors.push(E.verificationNeeded('primary_phone_number_id'));
    }
    if (errors.length) throw unprocessable(errors);
    const taken = [];
    if (body.username && this.findByUsername(body.username, id)) taken.push(E.identifierExists('username'));
    if (this.options.externalIdUnique && body.external_id != null && this.findByExternalId(body.external_id, id)) {
      taken.push(E.identifierExists('external_id'));
    }
    if (taken.length) throw unprocessable(taken);

    const now = Date.now();
    this.index(user, false);
    const set = (k, v = body[k]) => {
      if (Object.hasOwn(body, k)) user[k] = v;
    };
    set('external_id', body.external_id === '' ? null : body.external_id);
    set('first_name');
    set('last_name');
    set('locale');
    if (Object.hasOwn(body, 'username')) user.username = body.username ? lower(body.username) : null;
    if (body.primary_email_address_id != null) user.primary_email_address_id = body.primary_email_address_id;
    if (body.primary_phone_number_id != null) user.primary_phone_number_id = body.primary_phone_number_id;
    if (body.password != null) user.password = { hasher: 'plain' };
    if (body.password_digest != null) user.password = { hasher: body.password_hasher };
    if (body.password != null || body.password_digest != null) user.password_last_updated_at = now;
    if (body.totp_secret != null) user.totp = true;
    if (body.backup_codes != null) user.backup_codes = body.backup_codes.length > 0;
    for (const k of ['delete_self_enabled', 'create_organization_enabled', 'bypass_client_trust']) {
      if (body[k] != null) user[k] = body[k];
    }
    set('create_organizations_limit');
    if (body.legal_accepted_at != null) user.legal_accepted_at = Date.parse(body.legal_accepted_at);
    if (body.created_at != null) user.created_at = Date.parse(body.created_at);
    user.updated_at = now;
    this.index(user);
    return user;
  }

  /** PATCH (merge) or PUT (replace) /v1/users/{user_id}/metadata */
  updateMetadata(id, body, { replace = false } = {}) {
    const user = this.get(id);
    checkShape(body ?? {}, METADATA_FIELDS);
    for (const k of Object.keys(METADATA_FIELDS)) {
      if (body && Object.hasOwn(body, k)) user[k] = replace ? { ...body[k] } : deepMerge(user[k], body[k]);
    }
    user.updated_at = Date.now();
    return user;
  }

  delete(id) {
    const user = this.get(id);
    this.index(user, false);
    this.users.delete(id);
    return { object: 'user', id: user.id, deleted: true };
  }

  /** GET /v1/users and /v1/users/count filtering. `params` is a URLSearchParams. */
  filter(params) {
    const errors = [];
    const multi = (name) => {
      const v = params.getAll(name);
      if (v.length > 100) errors.push(E.arrayTooLarge(name, 100));
      return v;
    };
    const emails = multi('email_address').map(lower);
    const phones = multi('phone_number');
    const usernames = multi('username').map(lower);
    const externalIds = multi('external_id');
    const userIds = multi('user_id');
    const intParam = (name) => {
      const v = params.get(name);
      if (v == null || v === '') return null;
      if (!/^-?\d+$/.test(v)) {
        errors.push(E.typeMismatch(name, 'string', 'integer'));
        return null;
      }
      return Number(v);
    };
    const createdBefore = intParam('created_at_before');
    const createdAfter = intParam('created_at_after');
    if (errors.length) throw unprocessable(errors);

    const plusMinus = (values) => {
      const inc = [];
      const exc = [];
      for (const v of values) {
        if (v.startsWith('-')) exc.push(v.slice(1));
        else inc.push(v.startsWith('+') ? v.slice(1) : v);
      }
      return { inc, exc };
    };
    const ext = plusMinus(externalIds);
    const ids = plusMinus(userIds);
    const q = params.get('query');
    const emailQ = params.get('email_address_query');
    const phoneQ = params.get('phone_number_query');
    const usernameQ = params.get('username_query');
    const nameQ = params.get('name_query');
    const banned = params.get('banned');

    const contains = (hay, needle) => hay != null && String(hay).toLowerCase().includes(String(needle).toLowerCase());
    // Narrow the scan with an index when an exact filter allows it.
    let candidates = this.users.values();
    const fromIndex = (map, keys) => {
      const ids = new Set();
      for (const k of keys) for (const id of map.get(k) || []) ids.add(id);
      return [...ids].map((id) => this.users.get(id));
    };
    if (ext.inc.length) candidates = fromIndex(this.byExternalId, ext.inc);
    else if (emails.length) candidates = fromIndex(this.byEmail, emails);
    else if (ids.inc.length) candidates = [...new Set(ids.inc)].map((id) => this.users.get(id)).filter(Boolean);
    return [...candidates].filter((u) => {
      if (emails.length && !u.emails.some((e) => emails.includes(e.email_address))) return false;
      if (phones.length && !u.phones.some((p) => phones.includes(p.phone_number))) return false;
      if (usernames.length && !usernames.includes(u.username)) return false;
      if (ext.inc.length && !ext.inc.includes(u.external_id)) return false;
      if (ext.exc.length && ext.exc.includes(u.external_id)) return false;
      if (ids.inc.length && !ids.inc.includes(u.id)) return false;
      if (ids.exc.length && ids.exc.includes(u.id)) return false;
      if (createdBefore != null && !(u.created_at < createdBefore)) return false;
      if (createdAfter != null && !(u.created_at > createdAfter)) return false;
      if (banned === 'true' && !u.banned) return false;
      if (banned === 'false' && u.banned) return false;
      if (emailQ && !u.emails.some((e) => contains(e.email_address, emailQ))) return false;
      if (phoneQ && !u.phones.some((p) => contains(p.phone_number, phoneQ))) return false;
      if (usernameQ && !contains(u.username, usernameQ)) return false;
      if (nameQ && !contains(`${u.first_name ?? ''} ${u.last_name ?? ''}`, nameQ)) return false;
      if (q) {
        const hit =
          u.emails.some((e) => contains(e.email_address, q)) ||
          u.phones.some((p) => contains(p.phone_number, q)) ||
          contains(u.username, q) ||
          contains(u.id, q) ||
          contains(u.first_name, q) ||
          contains(u.last_name, q);
        if (!hit) return false;
      }
      return true;
    });
  }

  list(params) {
    const errors = [];
    const limitRaw = params.get('limit');
    const offsetRaw = params.get('offset');
    let limit = 10;
    let offset = 0;
    if (limitRaw != null && limitRaw !== '') {
      if (!/^\d+$/.test(limitRaw)) errors.push(E.typeMismatch('limit', 'string', 'integer'));
      else if (Number(limitRaw) < 1) errors.push(E.tooSmall('limit', 1));
      else if (Number(limitRaw) > 500) errors.push(E.tooLarge('limit', 500));
      else limit = Number(limitRaw);
    }
    if (offsetRaw != null && offsetRaw !== '') {
      if (!/^\d+$/.test(offsetRaw)) errors.push(E.typeMismatch('offset', 'string', 'integer'));
      else offset = Number(offsetRaw);
    }
    // Only the first order_by counts, per the spec.
    const orderBy = params.get('order_by') || '-created_at';
    const m = /^([+-]?)(.+)$/.exec(orderBy);
    const dir = m[1] === '-' ? -1 : 1;
    const field = m[2];
    if (!ORDER_FIELDS.includes(field)) {
      errors.push(E.valueNotAllowed('order_by', orderBy, ORDER_FIELDS));
    }
    const startingAfter = params.get('starting_after');
    if (startingAfter) {
      if (field !== 'created_at') errors.push(E.conditionalDisallowed('starting_after', 'order_by'));
      if (offset > 0) errors.push(E.conditionalDisallowed('starting_after', 'offset'));
    }
    if (errors.length) throw unprocessable(errors);

    const key = (u) => {
      switch (field) {
        case 'email_address':
          return u.emails.find((e) => e.id === u.primary_email_address_id)?.email_address ?? null;
        case 'phone_number':
          return u.phones.find((p) => p.id === u.primary_phone_number_id)?.phone_number ?? null;
        case 'web3wallet':
          return u.web3[0] ?? null;
        case 'last_active_at':
        case 'last_sign_in_at':
          return null;
        default:
          return u[field] ?? null;
      }
    };
    const rows = this.filter(params).sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      if (ka === kb) return dir * (a.seq - b.seq);
      if (ka === null) return 1;
      if (kb === null) return -1;
      return dir * (ka < kb ? -1 : 1);
    });
    let start = offset;
    if (startingAfter) {
      const i = rows.findIndex((u) => u.id === startingAfter);
      start = i < 0 ? rows.length : i + 1;
    }
    return rows.slice(start, start + limit);
  }

  count(params) {
    return this.filter(params).length;
  }
}

function verificationFor(reserved, strategy) {
  return reserved
    ? { object: 'verification_otp', status: 'unverified', strategy, attempts: null, expire_at: null }
    : { object: 'verification_admin', status: 'verified', strategy: 'admin', attempts: null, expire_at: null };
}

/** The spec's `User` schema. */
export function serializeUser(u) {
  const image = `https://img.clerk.com/${b64url(JSON.stringify({ type: 'default', iid: u.id }))}`;
  return {
    id: u.id,
    object: 'user',
    external_id: u.external_id,
    primary_email_address_id: u.primary_email_address_id,
    primary_phone_number_id: u.primary_phone_number_id,
    primary_web3_wallet_id: null,
    username: u.username,
    first_name: u.first_name,
    last_name: u.last_name,
    locale: u.locale,
    profile_image_url: image,
    image_url: image,
    has_image: false,
    public_metadata: u.public_metadata,
    private_metadata: u.private_metadata,
    unsafe_metadata: u.unsafe_metadata,
    email_addresses: u.emails.map((e) => ({
      id: e.id,
      object: 'email_address',
      email_address: e.email_address,
      reserved: e.reserved,
      verification: verificationFor(e.reserved, 'email_code'),
      linked_to: [],
      matches_sso_connection: false,
      created_at: e.created_at,
      updated_at: e.updated_at,
    })),
    phone_numbers: u.phones.map((p) => ({
      id: p.id,
      object: 'phone_number',
      phone_number: p.phone_number,
      reserved_for_second_factor: false,
      default_second_factor: false,
      reserved: p.reserved,
      verification: verificationFor(p.reserved, 'phone_code'),
      linked_to: [],
      backup_codes: null,
      created_at: p.created_at,
      updated_at: p.updated_at,
    })),
    web3_wallets: [],
    passkeys: [],
    password_enabled: u.password !== null,
    two_factor_enabled: u.totp || u.backup_codes,
    totp_enabled: u.totp,
    backup_code_enabled: u.backup_codes,
    mfa_enabled_at: null,
    mfa_disabled_at: null,
    password_last_updated_at: u.password_last_updated_at,
    external_accounts: [],
    saml_accounts: [],
    enterprise_accounts: [],
    last_sign_in_at: null,
    banned: u.banned,
    locked: u.locked,
    lockout_expires_in_seconds: null,
    verification_attempts_remaining: 100,
    created_at: u.created_at,
    updated_at: u.updated_at,
    delete_self_enabled: u.delete_self_enabled,
    create_organization_enabled: u.create_organization_enabled,
    create_organizations_limit: u.create_organizations_limit,
    last_active_at: null,
    legal_accepted_at: u.legal_accepted_at,
    bypass_client_trust: u.bypass_client_trust,
  };
}
