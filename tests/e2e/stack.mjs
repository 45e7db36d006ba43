// The usual scene of an end-to-end test: the demo origin, the local Clerk Backend API server, and
// bridges in front of both, configured only through the settings SPEC.md names.
import { startBridge } from './harness.mjs';
import { startOrigin } from './origin.mjs';
import { startClerkServer } from '../clerk-server/server.mjs';
import { publishableKeyFor } from '../clerk-server/keys.mjs';

/**
 * The local Clerk server on an ephemeral port with a production-style (`pk_live_`) publishable
 * key for `frontendApi`, so that pages are not sent to a development instance's handshake.
 * `options` go to `startClerkServer` (`live`, `rateLimit`, `quiet`, `faults`, …).
 */
export function startClerk(frontendApi, options = {}) {
  return startClerkServer({ port: 0, publishableKey: publishableKeyFor(frontendApi, { live: true }), ...options });
}

/** The settings of a bridge between `origin` and `clerk` with `secret` as NEXTAUTH_SECRET, and `extra`. */
export function bridgeSettings({ origin, clerk, secret }, extra = {}) {
  return {
    ORIGIN_URL: origin.url,
    NEXTAUTH_SECRET: secret,
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
    CLERK_API_URL: clerk.url,
    ...extra,
  };
}

/**
 * Starts the demo origin and a Clerk server for `frontendApi` (`clerk`: its options). Then
 * `bridge(extra, options)` starts a bridge of its own (its own isolate and KV) in front of both
 * with `bridgeSettings` plus `extra`, and `close()` closes every bridge, Clerk and the origin.
 */
export async function startStack({ secret, frontendApi, clerk: clerkOptions = {} }) {
  const origin = await startOrigin();
  let clerk;
  try {
    clerk = await startClerk(frontendApi, clerkOptions);
  } catch (e) {
    await origin.close();
    throw e;
  }
  const bridges = [];
  const settings = (extra = {}) => bridgeSettings({ origin, clerk, secret }, extra);
  return {
    origin,
    clerk,
    settings,
    async bridge(extra = {}, options = {}) {
      const b = await startBridge(settings(extra), options);
      bridges.push(b);
      return b;
    },
    async close() {
      await Promise.all(bridges.map((b) => b.close()));
      await Promise.all([clerk.close(), origin.close()]);
    },
  };
}
