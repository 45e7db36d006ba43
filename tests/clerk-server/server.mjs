// A local, in-memory Clerk Backend API server (single process, node:http).
//
//   import { startClerkServer } from './tests/clerk-server/server.mjs';
//   const clerk = await startClerkServer({ port: 0, rateLimit: { limit: 100, windowMs: 10_000 } });
//   // CLERK_API_URL = clerk.url, CLERK_SECRET_KEY = clerk.secretKey, CLERK_PUBLISHABLE_KEY = clerk.publishableKey
//   const token = clerk.mintSessionToken({ sub: user.id });
//   await clerk.close();
//
// Backend API routes (base /v1, `Authorization: Bearer <secret key>`): see README.md beside this
// file. Test control routes live under /__control/ (no auth, loopback only).
import http from 'node:http';
import crypto from 'node:crypto';
import {
  clerkId,
  makeSigningKey,
  publishableKeyFor,
  secretKeyFor,
  frontendApiFromPublishableKey,
  signJwt,
  randomBase62,
} from './keys.mjs';
import * as errs from './errors.mjs';
import { ApiError, E } from './errors.mjs';
import { UserStore, serializeUser } from './users.mjs';
import { DEFAULT_RATE_LIMIT, RateLimiter, parseRate } from './rate-limit.mjs';
import { Faults } from './faults.mjs';

export { DEFAULT_RATE_LIMIT, parseRate };
export { prng, pathMatches, normalizeAction } from './faults.mjs';

export const DEFAULT_FRONTEND_API = 'auth-bridge-local-00.clerk.accounts.dev';

// ---------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** Max number of entries of `log` (sorted by t) inside any window of `windowMs`. */
export function maxInWindow(entries, windowMs) {
  let best = 0;
  let j = 0;
  for (let i = 0; i < entries.length; i++) {
    while (entries[i].t - entries[j].t >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new ApiError(413, [{ code: 'request_body_too_large', message: 'Request body too large', long_message: `The request body exceeds the maximum allowed size of ${limit} bytes.` }]));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJsonBody(text) {
  if (!text || !text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw errs.requestBodyInvalid();
  }
}

// ---------------------------------------------------------------------------------------------
// The server

/**
 * options:
 *   port (0 = ephemeral), host ('127.0.0.1')
 *   frontendApi (host) or publishableKey; secretKey; live (pk_live_/sk_live_)
 *   privateKey (PEM or KeyObject, RSA-2048), kid
 *   rateLimit: { limit, windowMs, countRejected?, routes?: [{method, path, limit, windowMs}] } | "100/10s" | false
 *   faults: { seed, rules: [...] } (see Faults)
 *   users: { externalIdUnique=true, requireIdentifier=true, passwordRequired=false }
 *   azp: default `azp` claim of minted session tokens
 *   logLimit: max request-log entries kept (default 200000)
 *   quiet: no console output
 */
export async function startClerkServer(options = {}) {
  const live = !!options.live;
  const frontendApi =
    options.frontendApi || (options.publishableKey && frontendApiFromPublishableKey(options.publishableKey)) || DEFAULT_FRONTEND_API;
  const publishableKey = options.publishableKey || publishableKeyFor(frontendApi, { live });
  const secretKey = options.secretKey || secretKeyFor({ live });
  const issuer = `https://${frontendApi}`;
  let signing = makeSigningKey({ privateKey: options.privateKey, kid: options.kid });
  let retiredKeys = [];
  let otherKey = null;
  const defaultAzp = options.azp ?? 'http://localhost:8787';
  const logLimit = options.logLimit ?? 200_000;

  const initialRate = options.rateLimit === undefined ? DEFAULT_RATE_LIMIT : options.rateLimit;
  const initialFaults = options.faults || { rules: [] };
  const limiter = new RateLimiter(initialRate);
  const faults = new Faults(initialFaults);
  const store = new UserStore(options.users || {});

  const state = {
    store,
    signInTokens: new Map(), // id -> record
    handshakes: new Map(), // nonce -> { directives, fetched }
    client: null, // the browser's Clerk client for the stand-in Frontend API handshake: { sub, sid } | null
    log: [],
    logSeq: 0,
    hanging: new Set(),
  };

  // --- public helpers (also reachable through /__control/) ---
  const jwks = () => ({ keys: [signing.jwk, ...retiredKeys.map((k) => k.jwk)] });

  function getOtherKey() {
    if (!otherKey) otherKey = makeSigningKey({ kid: signing.kid });
    return otherKey;
  }

  /**
   * A Clerk session token (v2) for `sub`. Overrides:
   *   iss, azp, sid, iat, nbf, exp, ttlSeconds (default 60), fva, claims: {extra or null to drop},
   *   header: {extra or null to drop}, key: 'instance' | 'other' (same kid, different key) | PEM | KeyObject
   */
  function mintSessionToken(opts = {}) {
    const now = Math.floor(Date.now() / 1000);
    const iat = opts.iat ?? now;
    const ttl = opts.ttlSeconds ?? 60;
    const claims = {
      azp: opts.azp ?? defaultAzp,
      exp: opts.exp ?? iat + ttl,
      fva: opts.fva ?? [0, -1],
      iat,
      iss: opts.iss ?? issuer,
      nbf: opts.nbf ?? iat - 10,
      sid: opts.sid ?? clerkId('sess'),
      sub: opts.sub ?? opts.userId ?? clerkId('user'),
      v: 2,
    };
    for (const [k, v] of Object.entries(opts.claims || {})) {
      if (v === null || v === undefined) delete claims[k];
      else claims[k] = v;
    }
    const header = { alg: 'RS256', cat: 'cl_B7d4PD111AAA', kid: signing.kid, typ: 'JWT' };
    for (const [k, v] of Object.entries(opts.header || {})) {
      if (v === null || v === undefined) delete header[k];
      else header[k] = v;
    }
    let key = signing.privateKey;
    if (opts.key === 'other') key = getOtherKey().privateKey;
    else if (typeof opts.key === 'string' && opts.key !== 'instance') key = crypto.createPrivateKey(opts.key);
    else if (opts.key && typeof opts.key === 'object') key = opts.key;
    return { token: signJwt(header, claims, key), header, claims };
  }

  /** Replace the signing key; `keepOld` keeps serving the previous public key in the JWKS. */
  function rotateKey({ keepOld = true, privateKey, kid } = {}) {
    if (keepOld) retiredKeys.push(signing);
    signing = makeSigningKey({ privateKey, kid });
    return { kid: signing.kid, publicKeyPem: signing.publicKeyPem };
  }

  function registerHandshake({ nonce, directives } = {}) {
    const n = nonce || randomBase62(32);
    state.handshakes.set(n, { directives: directives || [], fetched: 0 });
    return { nonce: n };
  }

  /**
   * Stand-in for the Frontend API's `GET /v1/client/handshake`: builds the cookie directives of
   * the current `state.client` (signed in → `__session` + `__client_uat`; else cleared) and sends
   * the browser back to `redirect_url` with `__clerk_handshake_nonce` (format=nonce) or a signed
   * `__clerk_handshake` token (any other format). Development keys also get `__clerk_db_jwt`.
   */
  function frontendHandshake(url) {
    const redirectUrl = url.searchParams.get('redirect_url');
    let back;
    try {
      back = new URL(redirectUrl);
    } catch {
      return { status: 400, body: { errors: [{ code: 'redirect_url_invalid', message: 'redirect_url is invalid' }] } };
    }
    const now = Math.floor(Date.now() / 1000);
    const directives = [];
    if (state.client) {
      const token = mintSessionToken({ sub: state.client.sub, sid: state.client.sid, iat: now }).token;
      directives.push(`__session=${token}; Path=/; SameSite=Lax`);
      directives.push(`__client_uat=${now}; Path=/; SameSite=Lax; Max-Age=315360000`);
    } else {
      directives.push('__session=; Path=/; SameSite=Lax; Max-Age=0');
      directives.push('__client_uat=0; Path=/; SameSite=Lax; Max-Age=315360000');
    }
    if (!live) {
      const db = url.searchParams.get('__clerk_db_jwt') || `dvb_${randomBase62(24)}`;
      directives.push(`__clerk_db_jwt=${db}; Path=/; SameSite=Lax`);
      back.searchParams.set('__clerk_db_jwt', db);
    }
    if (url.searchParams.get('format') === 'nonce') {
      back.searchParams.set('__clerk_handshake_nonce', registerHandshake({ directives }).nonce);
    } else {
      const header = { alg: 'RS256', kid: signing.kid, typ: 'JWT' };
      back.searchParams.set('__clerk_handshake', signJwt(header, { handshake: directives, iat: now, exp: now + 60 }, signing.privateKey));
    }
    return { status: 307, location: back.toString() };
  }

  function consumeSignInToken(token) {
    const rec = [...state.signInTokens.values()].find((r) => r.token === token || r.id === token);
    if (!rec) throw errs.signInTokenCannotBeUsed();
    if (rec.status === 'accepted') throw errs.signInTokenAlreadyUsed();
    if (rec.status === 'revoked') throw errs.signInTokenRevoked();
    if (Date.now() > rec.expires_at) throw errs.signInTokenCannotBeUsed();
    if (!store.users.has(rec.user_id)) throw errs.signInTokenCannotBeUsed();
    rec.status = 'accepted';
    rec.updated_at = Date.now();
    rec.accepted_at = rec.updated_at;
    return serializeSignInToken(rec);
  }

  function serializeSignInToken(rec) {
    return {
      object: 'sign_in_token',
      id: rec.id,
      status: rec.status,
      user_id: rec.user_id,
      token: rec.token,
      url: rec.url,
      created_at: rec.created_at,
      updated_at: rec.updated_at,
    };
  }

  function usersReport() {
    const users = [...store.users.values()].sort((a, b) => a.seq - b.seq);
    const byExt = {};
    const byEmail = {};
    for (const u of users) {
      if (u.external_id != null) byExt[u.external_id] = (byExt[u.external_id] || 0) + 1;
      for (const e of u.emails) byEmail[e.email_address] = (byEmail[e.email_address] || 0) + 1;
    }
    const dups = (m) => Object.fromEntries(Object.entries(m).filter(([, n]) => n > 1));
    return {
      total: users.length,
      users: users.map(serializeUser),
      duplicates: { by_external_id: dups(byExt), by_email: dups(byEmail) },
    };
  }

  /** Request-log statistics; `windowMs` defaults to the configured rate-limit window. */
  function stats({ windowMs, since = 0 } = {}) {
    const w = windowMs ?? limiter.config.windowMs ?? DEFAULT_RATE_LIMIT.windowMs;
    const api = state.log.filter((e) => e.seq > since && e.counted);
    const byStatus = {};
    for (const e of state.log) if (e.seq > since) byStatus[e.status ?? e.outcome] = (byStatus[e.status ?? e.outcome] || 0) + 1;
    return {
      total: state.log.filter((e) => e.seq > since).length,
      counted: api.length,
      rate_limited: api.filter((e) => e.status === 429 && e.outcome === 'rate_limited').length,
      by_status: byStatus,
      window_ms: w,
      max_in_window: maxInWindow(api, w),
      max_admitted_in_window: maxInWindow(api.filter((e) => e.outcome !== 'rate_limited'), w),
    };
  }

  function reset({ keepConfig = false } = {}) {
    store.reset();
    state.signInTokens.clear();
    state.handshakes.clear();
    state.client = null;
    state.log.length = 0;
    if (!keepConfig) {
      limiter.configure(initialRate);
      faults.configure(initialFaults);
    } else {
      limiter.reset();
    }
  }

  // --- Backend API routes ---
  async function handleApi(req, res, url, entry, body) {
    const path = url.pathname;
    const method = req.method;
    let m;
    if (path === '/v1/users' && method === 'GET') return json(res, 200, store.list(url.searchParams).map(serializeUser));
    if (path === '/v1/users' && method === 'POST') return json(res, 200, serializeUser(store.create(parseJsonBody(body))));
    if (path === '/v1/users/count' && method === 'GET') {
      return json(res, 200, { object: 'total_count', total_count: store.count(url.searchParams) });
    }
    if ((m = /^\/v1\/users\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1]);
      if (method === 'GET') return json(res, 200, serializeUser(store.get(id)));
      if (method === 'PATCH') return json(res, 200, serializeUser(store.update(id, parseJsonBody(body))));
      if (method === 'DELETE') return json(res, 200, store.delete(id));
    }
    if ((m = /^\/v1\/users\/([^/]+)\/metadata$/.exec(path))) {
      const id = decodeURIComponent(m[1]);
      if (method === 'PATCH' || method === 'PUT') {
        return json(res, 200, serializeUser(store.updateMetadata(id, parseJsonBody(body) ?? {}, { replace: method === 'PUT' })));
      }
    }
    if (path === '/v1/sign_in_tokens' && method === 'POST') return json(res, 200, createSignInToken(parseJsonBody(body)));
    if ((m = /^\/v1\/sign_in_tokens\/([^/]+)\/revoke$/.exec(path)) && method === 'POST') {
      const rec = state.signInTokens.get(decodeURIComponent(m[1]));
      if (!rec) throw errs.resourceNotFound();
      if (rec.status !== 'pending') throw errs.signInTokenCannotBeRevoked(rec.status);
      rec.status = 'revoked';
      rec.updated_at = Date.now();
      return json(res, 200, serializeSignInToken(rec));
    }
    if (path === '/v1/clients/handshake_payload' && method === 'GET') {
      const nonce = url.searchParams.get('nonce');
      if (!nonce) throw errs.missingQueryParameter('nonce');
      const h = state.handshakes.get(nonce);
      if (!h) throw errs.resourceNotFound();
      h.fetched++;
      return json(res, 200, { directives: h.directives });
    }
    entry.outcome = 'no_route';
    throw errs.routeNotFound();
  }

  function createSignInToken(body) {
    if (body === undefined) body = {};
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw errs.requestBodyInvalid();
    const errors = [];
    if (body.user_id == null || body.user_id === '') errors.push(E.missing('user_id'));
    else if (typeof body.user_id !== 'string') errors.push(E.typeMismatch('user_id', typeof body.user_id, 'string'));
    if (body.expires_in_seconds != null) {
      if (!Number.isInteger(body.expires_in_seconds)) errors.push(E.typeMismatch('expires_in_seconds', typeof body.expires_in_seconds, 'integer'));
      else if (body.expires_in_seconds < 1) errors.push(E.tooSmall('expires_in_seconds', 1));
    }
    if (body.org_id != null && typeof body.org_id !== 'string') errors.push(E.typeMismatch('org_id', typeof body.org_id, 'string'));
    if (errors.length) throw errs.unprocessable(errors);
    const user = store.get(body.user_id); // 404 resource_not_found when missing
    const now = Date.now();
    const ttl = body.expires_in_seconds ?? 2_592_000;
    const id = clerkId('sit');
    const token = signJwt(
      { alg: 'RS256', kid: signing.kid, typ: 'JWT' },
      { iss: issuer, sub: user.id, sid: id, iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + ttl, nbf: Math.floor(now / 1000) - 10 },
      signing.privateKey,
    );
    const rec = {
      id,
      status: 'pending',
      user_id: user.id,
      token,
      url: `${issuer}/v1/tickets/accept?ticket=${token}`,
      created_at: now,
      updated_at: now,
      expires_at: now + ttl * 1000,
      expires_in_seconds: ttl,
    };
    state.signInTokens.set(id, rec);
    return serializeSignInToken(rec);
  }

  // --- control routes ---
  async function handleControl(req, res, url, body) {
    const path = url.pathname.replace(/^\/__control/, '') || '/';
    const method = req.method;
    const input = () => parseJsonBody(body) ?? {};
    if (path === '/health') return json(res, 200, { ok: true });
    if (path === '/info' && method === 'GET') return json(res, 200, info());
    if (path === '/reset' && method === 'POST') {
      reset(input());
      return json(res, 200, { ok: true });
    }
    if (path === '/rate-limit') {
      if (method === 'PUT' || method === 'POST') limiter.configure(input());
      return json(res, 200, limiter.config);
    }
    if (path === '/faults') {
      if (method === 'PUT' || method === 'POST') faults.configure(input());
      if (method === 'DELETE') faults.configure({ rules: [] });
      return json(res, 200, faults.describe());
    }
    if (path === '/faults/add' && method === 'POST') {
      faults.add(input());
      return json(res, 200, faults.describe());
    }
    if (path === '/users' && method === 'GET') return json(res, 200, usersReport());
    if (path === '/users' && method === 'POST') return json(res, 200, serializeUser(store.create(parseJsonBody(body))));
    if (path === '/requests' && method === 'GET') {
      const since = Number(url.searchParams.get('since') || 0);
      return json(res, 200, { requests: state.log.filter((e) => e.seq > since), stats: stats({ since }) });
    }
    if (path === '/stats' && method === 'GET') {
      const w = url.searchParams.get('window_ms');
      const since = Number(url.searchParams.get('since') || 0);
      return json(res, 200, stats({ windowMs: w ? Number(w) : undefined, since }));
    }
    if (path === '/handshake' && method === 'POST') return json(res, 200, registerHandshake(input()));
    if (path === '/client') {
      if (method === 'PUT' || method === 'POST') state.client = parseJsonBody(body) ?? null;
      return json(res, 200, { client: state.client });
    }
    if (path === '/sign-in-tokens' && method === 'GET') {
      return json(res, 200, { tokens: [...state.signInTokens.values()].map((r) => ({ ...serializeSignInToken(r), expires_at: r.expires_at, expires_in_seconds: r.expires_in_seconds })) });
    }
    if (path === '/sign-in-tokens/consume' && method === 'POST') return json(res, 200, consumeSignInToken(input().token));
    if (path === '/session-token' && method === 'POST') return json(res, 200, mintSessionToken(input()));
    if (path === '/rotate-key' && method === 'POST') return json(res, 200, rotateKey(input()));
    throw errs.routeNotFound();
  }

  function info() {
    return {
      url: api.url,
      api_url: api.url,
      secret_key: secretKey,
      publishable_key: publishableKey,
      frontend_api: frontendApi,
      issuer,
      kid: signing.kid,
      public_key_pem: signing.publicKeyPem,
      jwks: jwks(),
      rate_limit: limiter.config,
      faults: faults.describe(),
    };
  }

  function json(res, status, obj, headers = {}) {
    const text = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
    return status;
  }

  function sendError(res, e) {
    if (e instanceof ApiError) return json(res, e.status, errs.body(e.errors), e.headers);
    if (!options.quiet) console.error('clerk-server: unexpected error', e);
    const ie = errs.internalError();
    return json(res, ie.status, errs.body(ie.errors));
  }

  function sendStatusFault(res, action) {
    const { status } = action;
    const headers = {};
    if (action.retryAfter !== undefined) headers['Retry-After'] = String(action.retryAfter);
    if (status === 502) {
      // What sits in front of the API answers a bad gateway with an HTML page, not ClerkErrors.
      const html = '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>';
      res.writeHead(502, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(html), ...headers });
      res.end(html);
      return 502;
    }
    let e;
    if (status === 500) e = errs.internalError();
    else if (status === 503) e = errs.serviceUnavailable();
    else if (status === 504) e = errs.gatewayTimeout();
    else if (status === 429) e = errs.tooManyRequests(action.retryAfter ?? 1);
    else e = new ApiError(status, [{ message: 'error', long_message: `injected ${status}`, code: 'injected_fault' }]);
    return json(res, status, errs.body(e.errors), { ...e.headers, ...headers });
  }

  function hang(req, res) {
    state.hanging.add(res);
    res.on('close', () => state.hanging.delete(res));
  }

  function pushLog(entry) {
    state.log.push(entry);
    if (state.log.length > logLimit) state.log.splice(0, state.log.length - logLimit);
  }

  async function onRequest(req, res) {
    const started = Date.now();
    const url = new URL(req.url, 'http://localhost');
    const path = url.pathname;

    if (path.startsWith('/__control/') || path === '/__control') {
      if (!LOOPBACK.has(req.socket.remoteAddress)) {
        return json(res, 403, errs.body([{ code: 'authorization_invalid', message: 'Unauthorized request', long_message: 'Control routes are loopback-only' }]));
      }
      try {
        const body = await readBody(req);
        await handleControl(req, res, url, body);
      } catch (e) {
        sendError(res, e);
      }
      return;
    }

    if (path === '/v1/client/handshake' && req.method === 'GET') {
      const out = frontendHandshake(url);
      if (out.location) {
        res.writeHead(out.status, { location: out.location, 'cache-control': 'no-store' });
        return res.end();
      }
      return json(res, out.status, out.body);
    }

    const isJwks = path === '/v1/jwks' && req.method === 'GET';
    const entry = {
      seq: ++state.logSeq,
      t: started,
      method: req.method,
      path,
      query: url.search ? url.search.slice(1) : '',
      status: null,
      outcome: 'ok',
      ms: 0,
      counted: !isJwks && path.startsWith('/v1/'),
    };
    pushLog(entry);
    const finish = (status, outcome) => {
      entry.status = status;
      if (outcome) entry.outcome = outcome;
      entry.ms = Date.now() - started;
    };

    let body = '';
    try {
      body = await readBody(req);
    } catch (e) {
      finish(sendError(res, e), 'error');
      return;
    }

    // Faults act first, like the network and load balancers in front of the real API.
    let action = path.startsWith('/v1/') ? faults.pick(req.method, path) : null;
    while (action && action.kind === 'delay') {
      entry.delayed_ms = (entry.delayed_ms || 0) + action.ms;
      await sleep(action.ms);
      if (req.socket.destroyed) {
        finish(null, 'client_gone');
        return;
      }
      action = action.then;
    }
    if (action) {
      if (action.kind === 'reset') {
        finish(null, 'fault_reset');
        req.socket.destroy();
        return;
      }
      if (action.kind === 'timeout') {
        finish(null, 'fault_timeout');
        hang(req, res);
        return;
      }
      if (action.kind === 'status') {
        finish(sendStatusFault(res, action), `fault_${action.status}`);
        return;
      }
    }

    // Authentication.
    const auth = req.headers.authorization;
    const m = /^Bearer (\S+)$/.exec(auth || '');
    if (!m) {
      finish(sendError(res, errs.authHeaderFormatInvalid()), 'unauthorized');
      return;
    }
    if (m[1] !== secretKey) {
      finish(sendError(res, errs.clerkKeyInvalid()), 'unauthorized');
      return;
    }

    if (isJwks) {
      finish(json(res, 200, jwks()));
      return;
    }

    // Rate limit (everything under /v1 except the JWKS).
    const wait = limiter.check(req.method, path, Date.now());
    if (wait > 0) {
      finish(sendError(res, errs.tooManyRequests(wait)), 'rate_limited');
      entry.retry_after = wait;
      return;
    }

    if (action && (action.kind === 'reset-after' || action.kind === 'timeout-after')) {
      // Run the request for its side effects, then lose the answer.
      const sink = { writeHead() {}, end() {} };
      let status;
      try {
        status = await handleApi(req, sink, url, entry, body);
      } catch (e) {
        status = e instanceof ApiError ? e.status : 500;
      }
      entry.handled_status = status;
      if (action.kind === 'reset-after') {
        finish(null, 'fault_reset_after');
        req.socket.destroy();
      } else {
        finish(null, 'fault_timeout_after');
        hang(req, res);
      }
      return;
    }

    try {
      const status = await handleApi(req, res, url, entry, body);
      finish(status);
    } catch (e) {
      finish(sendError(res, e), entry.outcome === 'no_route' ? 'no_route' : 'error');
    }
  }

  const server = http.createServer((req, res) => {
    onRequest(req, res).catch((e) => {
      if (!options.quiet) console.error('clerk-server:', e);
      try {
        sendError(res, e);
      } catch {
        /* socket gone */
      }
    });
  });
  server.keepAliveTimeout = 5000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const address = server.address();
  const host = options.host ?? '127.0.0.1';
  const urlHost = host.includes(':') ? `[${host}]` : host;

  const api = {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    secretKey,
    publishableKey,
    frontendApi,
    issuer,
    get kid() {
      return signing.kid;
    },
    get publicKeyPem() {
      return signing.publicKeyPem;
    },
    get privateKeyPem() {
      return signing.privateKeyPem;
    },
    jwks,
    state,
    store,
    server,
    mintSessionToken: (opts) => mintSessionToken(opts).token,
    mintSessionTokenDetailed: mintSessionToken,
    rotateKey,
    registerHandshake: (nonce, directives) =>
      typeof nonce === 'object' && nonce !== null ? registerHandshake(nonce) : registerHandshake({ nonce, directives }),
    consumeSignInToken,
    /** The browser's client for the stand-in handshake: `{sub, sid}` (signed in) or null. */
    setClient: (client) => {
      state.client = client ?? null;
      return state.client;
    },
    signInTokens: () => [...state.signInTokens.values()].map((r) => ({ ...serializeSignInToken(r), expires_at: r.expires_at, expires_in_seconds: r.expires_in_seconds })),
    setRateLimit: (cfg) => {
      limiter.configure(cfg);
      return limiter.config;
    },
    get rateLimit() {
      return limiter.config;
    },
    setFaults: (cfg) => {
      faults.configure(cfg);
      return faults.describe();
    },
    addFault: (rule) => {
      faults.add(rule);
      return faults.describe();
    },
    clearFaults: () => faults.configure({ rules: [] }),
    faults: () => faults.describe(),
    users: () => usersReport(),
    createUser: (body) => serializeUser(store.create(body)),
    requestLog: ({ since = 0 } = {}) => state.log.filter((e) => e.seq > since),
    stats,
    maxInWindow: (windowMs, filter = (e) => e.counted) => maxInWindow(state.log.filter(filter), windowMs),
    reset,
    info: () => info(),
    close: () =>
      new Promise((resolve) => {
        for (const res of state.hanging) res.socket?.destroy();
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
  return api;
}
