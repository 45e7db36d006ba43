// Ordinary traffic for the soak: a small echo origin, and a seeded mix of request kinds
// (anonymous, NextAuth v4 / Auth.js v5, Clerk cookie and bearer, expired, garbage, oversized),
// each with the identity the origin must see.
import { listen } from '../../tests/e2e/harness.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from '../../tests/e2e/tokens.mjs';
import { prng } from '../../tests/clerk-server/faults.mjs';

/**
 * An origin that answers every request at once with the identity headers it received (as JSON),
 * and `{}` for NextAuth's session endpoint (database-session tokens). Its header limit is raised
 * so oversized requests reach it; what the worker does with them is what is measured.
 */
export async function startSoakOrigin() {
  const stats = { requests: 0, session_checks: 0 };
  const handler = (req, res) => {
    stats.requests++;
    const done = () => {
      if (req.url.startsWith('/api/auth/session')) {
        stats.session_checks++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
        return;
      }
      const h = req.headers;
      const body = JSON.stringify({
        source: h['x-auth-source'] ?? null,
        user_id: h['x-auth-user-id'] ?? null,
        clerk_user_id: h['x-auth-clerk-user-id'] ?? null,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'x-origin': 'soak' });
      res.end(body);
    };
    req.on('data', () => {});
    req.on('end', done);
    req.on('error', () => {});
  };
  const server = await listen(handler, { maxHeaderSize: 256 * 1024, keepAliveTimeout: 30_000 });
  return { url: server.url, stats, close: server.close };
}

const PAD_20K = 'p'.repeat(20 * 1024);
const JUNK_20K = 'A'.repeat(20 * 1024);

/** Kinds of ordinary request, with their weight in the mix. */
export const KIND_WEIGHTS = {
  anon_get: 12,
  anon_html: 4,
  anon_post: 4,
  forged_headers: 3,
  nextauth_v4: 11,
  nextauth_v5: 11,
  nextauth_v4_chunked: 2,
  clerk_cookie: 8,
  clerk_bearer: 4,
  clerk_and_nextauth: 3,
  expired_v4: 3,
  expired_v5: 3,
  expired_clerk: 3,
  wrong_secret: 2,
  garbage: 10,
  db_session: 2,
  oversized_pad_cookie: 4,
  oversized_session_cookie: 3,
  oversized_header: 3,
  many_cookies: 2,
};

/**
 * Everything the mix needs, minted before the run: session cookies for `sessionUsers`
 * (legacy users; NextAuth v4 and v5, live and expired), and garbage. Clerk session tokens live
 * 60 s, so they come from `clerkTokens()` (a pool refreshed by the caller).
 */
export async function prepareMix({ secret, sessionUsers, seed }) {
  const random = prng(seed ^ 0x5eed);
  const v4 = [];
  const v5 = [];
  const expiredV4 = [];
  const expiredV5 = [];
  const wrongSecret = [];
  for (const u of sessionUsers) {
    const claims = { sub: u.id, email: u.email, name: `${u.first_name} ${u.last_name}` };
    v4.push({ user: u, cookie: cookieHeader({ 'next-auth.session-token': await nextAuthV4(secret, claims) }) });
    v5.push({ user: u, cookie: cookieHeader({ 'authjs.session-token': await authJsV5(secret, claims) }) });
  }
  // A handful of expired and foreign tokens are enough (each is rejected the same way).
  for (const u of sessionUsers.slice(0, 20)) {
    const claims = { sub: u.id, email: u.email };
    // maxAge negative: `exp` an hour ago, far beyond the 15 s tolerance.
    expiredV4.push(cookieHeader({ 'next-auth.session-token': await nextAuthV4(secret, claims, -3600) }));
    expiredV5.push(cookieHeader({ 'authjs.session-token': await authJsV5(secret, claims, 'authjs.session-token', -3600) }));
    wrongSecret.push(cookieHeader({ 'next-auth.session-token': await nextAuthV4(`${secret}-not-ours`, claims) }));
  }
  // A v4 token large enough to be chunked (> 3933 characters), split as next-auth does.
  const chunked = [];
  for (const u of sessionUsers.slice(0, 10)) {
    const token = await nextAuthV4(secret, { sub: u.id, email: u.email, roles: 'r'.repeat(6000) });
    const parts = {};
    for (let i = 0, n = 0; i < token.length; i += 3933, n++) parts[`next-auth.session-token.${n}`] = token.slice(i, i + 3933);
    chunked.push({ user: u, cookie: cookieHeader(parts) });
  }
  const valid = v4[0].cookie.split('=').slice(1).join('=');
  const tampered = valid.slice(0, -10) + (valid.at(-10) === 'A' ? 'B' : 'A') + valid.slice(-9);
  const garbage = [
    'next-auth.session-token=garbage',
    'next-auth.session-token=a.b.c.d.e',
    `next-auth.session-token=${tampered}`,
    'authjs.session-token=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIn0..x.y.z',
    '__session=not.a.jwt; __client_uat=1',
    '__session=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln; __client_uat=abc',
    'next-auth.session-token.0=xx; next-auth.session-token.1=yy',
    'next-auth.session-token.99=zz',
    '=; ;;; a=b=c; "quoted"=1; =novalue',
    'next-auth.session-token=%E0%A4%A; authjs.session-token=%%%',
    `__Secure-next-auth.session-token=${valid.slice(0, 40)}`,
    '__client_uat=99999999999; __session=',
  ];
  return { random, v4, v5, expiredV4, expiredV5, wrongSecret, chunked, garbage };
}

function pick(random, list) {
  return list[Math.floor(random() * list.length)];
}

function chooseKind(random) {
  const total = Object.values(KIND_WEIGHTS).reduce((a, b) => a + b, 0);
  let x = random() * total;
  for (const [kind, w] of Object.entries(KIND_WEIGHTS)) {
    if ((x -= w) < 0) return kind;
  }
  return 'anon_get';
}

/**
 * The i-th request of the mix: `{kind, path, init, expect}`; `expect` is the identity the origin
 * must see (`source`, and `user_id` / `clerk_user_id` when they are certain), or null when the
 * request is not about identity. `clerk()` returns a fresh `{token, sub, iat}`.
 */
export function makeRequest(mix, i, clerk) {
  const r = mix.random;
  const kind = chooseKind(r);
  const path = `/soak/${kind}/${i}?q=${i % 97}`;
  const json = { accept: 'application/json' };
  const anonymous = { source: 'anonymous' };
  const clerkCookie = (t) => cookieHeader({ __session: t.token, __client_uat: String(t.iat - 30) });
  switch (kind) {
    case 'anon_get':
      return { kind, path, init: { headers: json }, expect: anonymous };
    case 'anon_html':
      return {
        kind,
        path,
        init: { headers: { accept: 'text/html', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' } },
        expect: anonymous,
      };
    case 'anon_post': {
      const body = JSON.stringify({ i, data: 'd'.repeat(200 + Math.floor(r() * 3000)) });
      return { kind, path, init: { method: 'POST', headers: { ...json, 'content-type': 'application/json' }, body }, expect: anonymous };
    }
    case 'forged_headers':
      return {
        kind,
        path,
        init: { headers: { ...json, 'x-auth-source': 'clerk', 'x-auth-user-id': 'admin', 'x-auth-clerk-user-id': 'user_admin' } },
        expect: { source: 'anonymous', user_id: null, clerk_user_id: null },
      };
    case 'nextauth_v4':
    case 'nextauth_v5': {
      const s = pick(r, kind === 'nextauth_v4' ? mix.v4 : mix.v5);
      return { kind, path, init: { headers: { ...json, cookie: s.cookie } }, expect: { source: 'nextauth', user_id: s.user.id } };
    }
    case 'nextauth_v4_chunked': {
      const s = pick(r, mix.chunked);
      return { kind, path, init: { headers: { ...json, cookie: s.cookie } }, expect: { source: 'nextauth', user_id: s.user.id } };
    }
    case 'clerk_cookie': {
      const t = clerk();
      return { kind, path, init: { headers: { ...json, cookie: clerkCookie(t) } }, expect: { source: 'clerk', clerk_user_id: t.sub } };
    }
    case 'clerk_bearer': {
      const t = clerk();
      return { kind, path, init: { headers: { ...json, authorization: `Bearer ${t.token}` } }, expect: { source: 'clerk', clerk_user_id: t.sub } };
    }
    case 'clerk_and_nextauth': {
      const t = clerk();
      const s = pick(r, mix.v4);
      return {
        kind,
        path,
        init: { headers: { ...json, cookie: `${clerkCookie(t)}; ${s.cookie}` } },
        expect: { source: 'clerk', clerk_user_id: t.sub },
      };
    }
    case 'expired_v4':
      return { kind, path, init: { headers: { ...json, cookie: pick(r, mix.expiredV4) } }, expect: anonymous };
    case 'expired_v5':
      return { kind, path, init: { headers: { ...json, cookie: pick(r, mix.expiredV5) } }, expect: anonymous };
    case 'expired_clerk': {
      const t = clerk({ expired: true });
      // Not a page load: an expired session is simply signed out (a page load would get the handshake).
      return { kind, path, init: { headers: { ...json, cookie: clerkCookie(t) } }, expect: anonymous };
    }
    case 'wrong_secret':
      return { kind, path, init: { headers: { ...json, cookie: pick(r, mix.wrongSecret) } }, expect: anonymous };
    case 'garbage':
      return { kind, path, init: { headers: { ...json, cookie: pick(r, mix.garbage) } }, expect: anonymous };
    case 'db_session':
      // Not five parts: an opaque database-session token, checked with the origin (which says no).
      return { kind, path, init: { headers: { ...json, cookie: `next-auth.session-token=soak-db-${i}` } }, expect: anonymous };
    case 'oversized_pad_cookie': {
      // A 20 KB cookie of the app's beside a valid session: the session still counts.
      const s = pick(r, mix.v4);
      return {
        kind,
        path,
        init: { headers: { ...json, cookie: `pad=${PAD_20K}; ${s.cookie}` } },
        expect: { source: 'nextauth', user_id: s.user.id },
      };
    }
    case 'oversized_session_cookie':
      return { kind, path, init: { headers: { ...json, cookie: `next-auth.session-token=${JUNK_20K}` } }, expect: anonymous };
    case 'oversized_header':
      return { kind, path, init: { headers: { ...json, 'x-pad': PAD_20K } }, expect: anonymous };
    case 'many_cookies': {
      // 250 pairs, the session last: past the parser's 200-pair bound, so what counts is not
      // asserted, only that the request is answered.
      const s = pick(r, mix.v5);
      const pairs = Array.from({ length: 250 }, (_, k) => `c${k}=${k}`).join('; ');
      return { kind, path, init: { headers: { ...json, cookie: `${pairs}; ${s.cookie}` } }, expect: null };
    }
    default:
      throw new Error(`unknown kind ${kind}`);
  }
}

/** Which identity fields differ from what was expected (empty when it matches). */
export function identityMismatch(expect, seen) {
  if (!expect) return [];
  const wrong = [];
  for (const [k, v] of Object.entries(expect)) if ((seen?.[k] ?? null) !== v) wrong.push(k);
  return wrong;
}
