// The two calls the hot path makes into JavaScript (bound in src/proxy.rs). Each crossing between
// wasm and JS, and each string copied across, costs about a microsecond; reading a request header
// by header from Rust, or rebuilding the forwarded headers one call at a time, made up most of the
// worker's own cost per request. Here each is one call; every decision stays in Rust.

const ABSENT = "-";
const PRESENT = "+";

// Field order; src/proxy.rs `RequestFacts::parse` reads the same order.
const HEADERS = ["via", "cookie", "authorization", "cf-connecting-ip"];

/**
 * Method, URL and the headers the worker reads, as one string: fields joined by NUL (which no
 * method, URL or header value can contain), each header value prefixed by "+", or "-" when the
 * header is absent.
 */
export function requestFacts(request) {
  const headers = request.headers;
  let out = request.method + "\0" + request.url;
  for (const name of HEADERS) {
    const value = headers.get(name);
    out += value === null ? "\0" + ABSENT : "\0" + PRESENT + value;
  }
  return out;
}

const IDENTITY_HEADER_PREFIX = "x-auth-";

function unreachable(error) {
  console.error("auth-bridge: origin unreachable: " + error);
  return new Response("Bad Gateway: the origin could not be reached\n", {
    status: 502,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

/**
 * Forwards `request` as `packed` says: `url NUL forwardedProto NUL via (NUL name NUL value)*` —
 * the upstream URL, the scheme for the x-forwarded-* pair (empty: none, the origin is the
 * request's own host), the `via` value, and the identity headers, set in order. The request
 * goes with its headers less every inbound x-auth-* header. One string, so one decoding per
 * request. The request body is handed over as a stream; redirects come back as they are.
 * Resolves to the origin's response untouched, or to a 502 when the origin cannot be reached.
 */
export function forward(request, packed) {
  try {
    const parts = packed.split("\0");
    const url = parts[0];
    const forwardedProto = parts[1];
    const headers = new Headers(request.headers);
    const forged = [];
    for (const name of headers.keys()) {
      if (name.startsWith(IDENTITY_HEADER_PREFIX)) forged.push(name);
    }
    for (const name of forged) headers.delete(name);
    if (forwardedProto !== "") {
      const host = headers.get("host");
      if (host !== null) headers.set("x-forwarded-host", host);
      headers.set("x-forwarded-proto", forwardedProto);
      headers.delete("host");
    }
    headers.set("via", parts[2]);
    for (let i = 3; i + 1 < parts.length; i += 2) headers.set(parts[i], parts[i + 1]);
    const method = request.method;
    const init = { method, headers, redirect: "manual" };
    if (method !== "GET" && method !== "HEAD" && request.body !== null) init.body = request.body;
    return fetch(url, init).catch(unreachable);
  } catch (error) {
    return Promise.resolve(unreachable(error));
  }
}
