// Helpers for the specification-conformance tests (spec-*.test.mjs): the worker is driven only
// through what /work's SPEC.md names — headers, cookies, endpoints, settings — never its KV layout.
import assert from 'node:assert/strict';
import { EncryptJWT } from 'jose';
import { hkdf } from '@panva/hkdf';
import { bridgeWorker, startWorkers } from './harness.mjs';
import { cookieHeader } from './tokens.mjs';

export const now = () => Math.floor(Date.now() / 1000);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A NextAuth v4 session token with a chosen `iat`, built the way next-auth 4.24 `encode` builds
 * it (JWE `dir` + A256GCM, key = HKDF-SHA256(secret, "", "NextAuth.js Generated Encryption Key"))
 * — `encode` itself always stamps the current time.
 */
export async function nextAuthV4At(secret, claims, iat, maxAge = 30 * 24 * 3600) {
  const key = await hkdf('sha256', secret, '', 'NextAuth.js Generated Encryption Key', 32);
  return new EncryptJWT({ ...claims, iat, exp: iat + maxAge, jti: `jti-${iat}-${Math.random()}` })
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .encrypt(key);
}

/**
 * Starts the bridge with exactly `vars` (no default MIGRATION_PHASE) and optional Miniflare
 * options (`upstream`, `kvPersist`), captured logs, or without the KV and Queue bindings.
 */
export async function startExactBridge(vars, miniflareOptions = {}, { captureLogs = false, withoutBindings = false } = {}) {
  const worker = bridgeWorker(vars);
  worker.bindings = { ...vars };
  if (withoutBindings) {
    delete worker.kvNamespaces;
    delete worker.queueProducers;
    delete worker.queueConsumers;
  }
  return startWorkers([worker], { captureLogs, ...miniflareOptions });
}

/**
 * What the origin saw for one request through `bridge` (the demo origin echoes the request):
 * `{status, url, headers, auth}` where `auth` holds only the `x-auth-*` headers.
 */
export async function through(bridge, path = '/whoami', headers = {}) {
  const res = await bridge.fetch(path, { headers });
  assert.equal(res.status, 200, `${path}: the origin's answer comes back (got ${res.status})`);
  const seen = await res.json();
  const auth = Object.fromEntries(Object.entries(seen.headers).filter(([k]) => k.startsWith('x-auth-')));
  return { url: seen.url, headers: seen.headers, auth };
}

/** Cookies of a signed-in Clerk browser: a fresh `__session` and an older `__client_uat`. */
export function clerkBrowser(clerk, opts = {}, uat = now() - 30) {
  return { __session: clerk.mintSessionToken({ iat: now() - 1, ...opts }), __client_uat: String(uat) };
}

/** POST /__auth-bridge/sign-in-token as a page of `bridge` sends it (same-origin), with `cookies` if any. */
export function signInToken(bridge, cookies, headers = {}) {
  return bridge.fetch('/__auth-bridge/sign-in-token', {
    method: 'POST',
    headers: { 'sec-fetch-site': 'same-origin', origin: bridge.url, ...(cookies ? { cookie: cookieHeader(cookies) } : {}), ...headers },
  });
}

/**
 * The operator's side of `bridge`, with `token` as the Bearer token of /__auth-bridge/admin.
 * `call(route, init)` answers `{status, headers, text, json()}` and hands each body to
 * `onAnswer`; `status()` is GET /status, answered 200, parsed; `tick()` runs the cron trigger a
 * minute after the last; `runBatch()` ticks once, then waits until nothing is pending.
 */
export function operator(bridge, token, { onAnswer = () => {} } = {}) {
  let minute = Date.now();
  async function call(route, init = {}) {
    const res = await bridge.fetch(`/__auth-bridge/admin${route}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
    const text = await res.text();
    onAnswer(text);
    return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
  }
  async function status() {
    const res = await call('/status');
    assert.equal(res.status, 200);
    return res.json();
  }
  const tick = () => bridge.scheduled((minute += 60_000));
  async function runBatch(timeoutMs = 30_000) {
    await tick();
    const end = Date.now() + timeoutMs;
    let s;
    while (Date.now() < end) {
      s = await status();
      if (s.counts.pending === 0) return s;
      await sleep(400);
    }
    assert.fail(`batch did not finish: ${JSON.stringify(s?.counts)}`);
  }
  return { call, status, tick, runBatch };
}
