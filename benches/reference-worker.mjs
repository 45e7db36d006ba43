// JS reference worker for benches/hotpath.mjs, bundled for
// workerd with esbuild at benchmark time.
//
// REFERENCE_MODE = "noop": forwards every request to ORIGIN_URL unchanged (the cheapest possible
// proxy worker). REFERENCE_MODE = "identity": does what auth-bridge does per request with the
// libraries apps use today — reads the session cookie, decodes it with next-auth v4 `decode`
// (next-auth/jwt), @auth/core `decode` (@auth/core/jwt) or verifies it with @clerk/backend
// `verifyToken({ jwtKey })` — then forwards to ORIGIN_URL with x-auth-* headers. No caches: this
// is what each library costs per call.
import { decode as decodeV4 } from 'next-auth/jwt';
import { decode as decodeV5 } from '@auth/core/jwt';
import { verifyToken } from '@clerk/backend';

const V4_COOKIE = 'next-auth.session-token';
const V5_COOKIE = 'authjs.session-token';
const CLERK_COOKIE = '__session';

function cookies(header) {
  const out = new Map();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

async function identity(request, env) {
  const jar = cookies(request.headers.get('cookie'));
  const clerkToken = jar.get(CLERK_COOKIE);
  if (clerkToken) {
    try {
      // @clerk/backend's exported verifyToken resolves to the claims and throws when invalid.
      const claims = await verifyToken(clerkToken, { jwtKey: env.CLERK_JWT_KEY });
      return { source: 'clerk', user: claims.sub, session: claims.sid };
    } catch {}
  }
  const v5 = jar.get(V5_COOKIE);
  if (v5) {
    try {
      const claims = await decodeV5({ token: v5, secret: env.NEXTAUTH_SECRET, salt: V5_COOKIE });
      if (claims?.sub) return { source: 'nextauth', user: claims.sub, email: claims.email };
    } catch {}
  }
  const v4 = jar.get(V4_COOKIE);
  if (v4) {
    try {
      const claims = await decodeV4({ token: v4, secret: env.NEXTAUTH_SECRET });
      if (claims?.sub) return { source: 'nextauth', user: claims.sub, email: claims.email };
    } catch {}
  }
  return { source: 'anonymous' };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const upstream = env.ORIGIN_URL.replace(/\/$/, '') + url.pathname + url.search;
    if (env.REFERENCE_MODE === 'noop') return fetch(upstream, request);

    const id = await identity(request, env);
    const headers = new Headers(request.headers);
    for (const name of [...headers.keys()]) if (name.startsWith('x-auth-')) headers.delete(name);
    headers.set('x-auth-source', id.source);
    if (id.user) headers.set('x-auth-user-id', id.user);
    if (id.email) headers.set('x-auth-email', id.email);
    if (id.session) headers.set('x-auth-session-id', id.session);
    return fetch(upstream, { method: request.method, headers, body: request.body, redirect: 'manual' });
  },
};
