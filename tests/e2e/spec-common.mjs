// Helpers for the specification-conformance tests (spec-*.test.mjs): the worker is driven only
// through what /work's SPEC.md names — headers, cookies, endpoints, settings — never its KV layout.
import assert from 'node:assert/strict';
import { EncryptJWT } from 'jose';
import { hkdf } from '@panva/hkdf';
import { bridgeWorker, startWorkers } from './harness.mjs';

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
