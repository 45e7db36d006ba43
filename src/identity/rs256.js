// RS256 checked synchronously (bound in src/identity/webcrypto.rs). WebCrypto's verify returns a
// promise, and awaiting it turns the whole request into a driven future (a promise, closures,
// microtasks): that machinery cost more than the RSA itself. node:crypto's `verify` is the same
// native code, answering at once; the runtime offers it with the `nodejs_compat` flag. Without
// the flag, `rs256Key` answers null and the worker keeps WebCrypto's asynchronous verify.

let nodeCrypto;

function crypto() {
  if (nodeCrypto === undefined) {
    try {
      nodeCrypto = globalThis.process?.getBuiltinModule?.("node:crypto") ?? null;
    } catch {
      nodeCrypto = null;
    }
  }
  return nodeCrypto;
}

/** The public key (JWK `n` and `e`, base64url) for `rs256Verify`, or null when unavailable. */
export function rs256Key(n, e) {
  const c = crypto();
  if (c === null || typeof c.verify !== "function") return null;
  try {
    return c.createPublicKey({ key: { kty: "RSA", n, e }, format: "jwk" });
  } catch {
    return null;
  }
}

/** RSASSA-PKCS1-v1_5 with SHA-256 of `data` under `key`; any failure is false. */
export function rs256Verify(key, signature, data) {
  try {
    return nodeCrypto.verify("sha256", data, key, signature) === true;
  } catch {
    return false;
  }
}
