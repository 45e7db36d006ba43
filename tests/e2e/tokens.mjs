// Session cookies minted at test time by the real libraries the apps use.
import { encode as encodeV4 } from 'next-auth/jwt';
import { encode as encodeV5 } from '@auth/core/jwt';

/** A NextAuth v4 session token (next-auth 4.24 `encode`), as in `next-auth.session-token`. */
export function nextAuthV4(secret, claims, maxAge = 30 * 24 * 3600) {
  return encodeV4({ secret, token: claims, maxAge });
}

/** An Auth.js v5 session token (@auth/core `encode`), salted with the cookie name. */
export function authJsV5(secret, claims, salt = 'authjs.session-token', maxAge = 30 * 24 * 3600) {
  return encodeV5({ secret, token: claims, salt, maxAge });
}

/** A Cookie header from name/value pairs. */
export function cookieHeader(pairs) {
  return Object.entries(pairs)
    .map(([k, v]) => `${k}=${v}`)
    .join('; ');
}
