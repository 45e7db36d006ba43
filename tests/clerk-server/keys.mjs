// Keys, key strings and JWT signing for the local Clerk Backend API server.
//
// Clerk instance keys: a publishable key is `pk_test_` (development) or `pk_live_` (production)
// followed by base64(`<frontend api host>$`); a secret key is `sk_test_` / `sk_live_` followed by
// an opaque random string. Session tokens are RS256 JWTs signed with the instance key whose public
// half is served by `GET /v1/jwks`.
import crypto from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function randomBase62(length, rand = crypto.randomBytes) {
  const bytes = rand(length);
  let out = '';
  for (let i = 0; i < length; i++) out += BASE62[bytes[i] % 62];
  return out;
}

/** Clerk-style object id: `<prefix>_` + 27 base62 characters (e.g. `user_2abc…`). */
export function clerkId(prefix) {
  return `${prefix}_${randomBase62(27)}`;
}

export function b64url(input) {
  return Buffer.from(input).toString('base64url');
}

/** `pk_test_` + base64(`host$`) — the format @clerk/shared parses back into the Frontend API host. */
export function publishableKeyFor(frontendApiHost, { live = false } = {}) {
  const host = String(frontendApiHost).replace(/^https?:\/\//, '').replace(/\/+$/, '');
  return `${live ? 'pk_live_' : 'pk_test_'}${Buffer.from(`${host}$`).toString('base64')}`;
}

/**
 * The suffix Clerk gives this instance's cookie names (`__session_<suffix>`, `__client_uat_<suffix>`),
 * as @clerk/shared `getCookieSuffix` derives it: the first 8 characters of the publishable key's
 * SHA-1 in base64url.
 */
export function cookieSuffix(publishableKey) {
  return crypto.createHash('sha1').update(publishableKey).digest('base64url').slice(0, 8);
}

/** A secret key string in Clerk's shape (`sk_test_` + 40 base62 characters). */
export function secretKeyFor({ live = false } = {}) {
  return `${live ? 'sk_live_' : 'sk_test_'}${randomBase62(40)}`;
}

/** Inverse of publishableKeyFor: the Frontend API host, or null when the key is malformed. */
export function frontendApiFromPublishableKey(pk) {
  const m = /^pk_(test|live)_(.+)$/.exec(String(pk || ''));
  if (!m) return null;
  const decoded = Buffer.from(m[2], 'base64').toString('utf8');
  if (!decoded.endsWith('$') || decoded.length < 2) return null;
  return decoded.slice(0, -1);
}

/**
 * An RSA-2048 key pair (e = 65537). Clerk's networkless verification strips a fixed SPKI prefix
 * from the PEM, which only matches 2048-bit keys with this exponent, so keep both.
 * `privateKey` may be given as a PEM string or a KeyObject to reuse a key.
 */
export function makeSigningKey({ privateKey, kid } = {}) {
  let priv;
  if (privateKey) {
    priv = typeof privateKey === 'string' ? crypto.createPrivateKey(privateKey) : privateKey;
  } else {
    priv = crypto.generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 }).privateKey;
  }
  const pub = crypto.createPublicKey(priv);
  const jwk = pub.export({ format: 'jwk' });
  const publicKeyPem = pub.export({ type: 'spki', format: 'pem' });
  const privateKeyPem = priv.export({ type: 'pkcs8', format: 'pem' });
  const thumb = crypto
    .createHash('sha256')
    .update(JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n }))
    .digest('base64url');
  const keyId = kid || `ins_${thumb.slice(0, 27)}`;
  return {
    kid: keyId,
    privateKey: priv,
    publicKey: pub,
    publicKeyPem,
    privateKeyPem,
    jwk: { use: 'sig', kty: 'RSA', kid: keyId, alg: 'RS256', n: jwk.n, e: jwk.e },
  };
}

/** Compact JWS. `alg` in the header is written as given; the signature is always RS256. */
export function signJwt(header, payload, privateKey) {
  const h = b64url(JSON.stringify(header));
  const p = b64url(JSON.stringify(payload));
  const sig = crypto.sign('RSA-SHA256', Buffer.from(`${h}.${p}`), privateKey).toString('base64url');
  return `${h}.${p}.${sig}`;
}

export function decodeJwt(token) {
  const [h, p] = String(token).split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}
