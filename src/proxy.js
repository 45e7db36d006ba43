// The two calls the hot path makes into JavaScript (bound in src/proxy.rs). Each crossing between
// wasm and JS, and each string copied across, costs about a microsecond; reading a request header
// by header from Rust, or rebuilding the forwarded headers one call at a time, made up most of the
// worker's own cost per request. Here each is one call; every decision stays in Rust: requests
// forwarded without entering wasm (`forwardOnPlan`) follow a plan the worker made, and sessions
// the worker resolved and handed over (`rememberSession`).

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
 * request's own host), the `via` value, and the identity headers, set in order. One string, so
 * one decoding per request. Resolves as `send` does.
 */
export function forward(request, packed) {
  const parts = packed.split("\0");
  return send(request, parts[0], parts[1], parts[2], parts, 3);
}

/**
 * The request, with its headers less every inbound x-auth-* header, to `url`, with `via` and
 * the identity headers `pairs[from..]` (name, value, ...) set. The request body is handed over
 * as a stream; redirects come back as they are. Resolves to the origin's response untouched,
 * or to a 502 when the origin cannot be reached; never rejects.
 */
function send(request, url, forwardedProto, via, pairs, from) {
  try {
    // The outbound request is built from the inbound headers and changed in place, then sent as
    // it is: fetch(url, init) would copy the headers a second time (benches/headers.mjs).
    const method = request.method;
    const init = { method, headers: request.headers, redirect: "manual" };
    if (method !== "GET" && method !== "HEAD" && request.body !== null) init.body = request.body;
    const outbound = new Request(url, init);
    const headers = outbound.headers;
    // forEach, not keys(): workerd's iterator costs about twice as much (benches/headers.mjs).
    let forged = null;
    headers.forEach((_, name) => {
      if (name.startsWith(IDENTITY_HEADER_PREFIX)) (forged ??= []).push(name);
    });
    if (forged !== null) for (const name of forged) headers.delete(name);
    if (forwardedProto !== "") {
      const host = headers.get("host");
      if (host !== null) headers.set("x-forwarded-host", host);
      headers.set("x-forwarded-proto", forwardedProto);
      headers.delete("host");
    }
    headers.set("via", via);
    for (let i = from; i + 1 < pairs.length; i += 2) headers.set(pairs[i], pairs[i + 1]);
    return fetch(outbound).catch(unreachable);
  } catch (error) {
    return Promise.resolve(unreachable(error));
  }
}

// The forward of requests that can only be anonymous, made by the worker (src/fast_path.rs):
// the entry forwards them without entering wasm. Fields of `installForwardPlan`'s string:
// `base NUL via (NUL name NUL value)*`; base empty: route mode.
let plan = null;
let forwardedOnPlan = 0;

// Sessions the worker resolved and said how long their answer stands (src/fast_path.rs
// `remember_session`): the exact `Cookie` and `Authorization` values to the identity headers
// they forward with, until a time (ms) and with their convergence kind. They live within the
// plan: a new plan starts with none. Requests forwarded on them, per kind (NextAuth only, Clerk
// only, both, anonymous), for the worker to count.
let sessions = new Map();
let sessionHits = [0, 0, 0, 0];
const MAX_SESSIONS = 256;

export function installForwardPlan(packed, until, cookieMarks, signedOutMarks) {
  const parts = packed.split("\0");
  const list = (names) => (typeof names === "string" && names !== "" ? names.split("\0") : []);
  plan = { until, base: parts[0], via: parts[1], identity: parts, marks: list(cookieMarks), signedOut: list(signedOutMarks) };
  sessions = new Map();
}

export function takeForwardedOnPlan() {
  const count = forwardedOnPlan;
  forwardedOnPlan = 0;
  return count;
}

/** The key of a request's `Cookie` and `Authorization` values (absent and empty differ). */
function sessionKey(cookie, authorization) {
  return (cookie === null ? ABSENT : PRESENT + cookie) + "\0" + (authorization === null ? ABSENT : PRESENT + authorization);
}

/**
 * Forwards further requests with exactly this `cookie` and `authorization` (null: absent) with
 * the identity headers `packed` (`name NUL value ...`) until `until` (ms), counted as `kind`.
 */
export function rememberSession(cookie, authorization, packed, until, kind) {
  if (plan === null) return;
  if (sessions.size >= MAX_SESSIONS) sessions = new Map();
  const pairs = packed === "" ? [] : packed.split("\0");
  sessions.set(sessionKey(cookie ?? null, authorization ?? null), { until: Math.min(until, plan.until), pairs, kind });
}

/** Forgets every remembered session (an answer may have changed: a revoke on this isolate). */
export function forgetSessions() {
  sessions = new Map();
}

/** Requests forwarded on remembered sessions since the last call, per kind: "n0 n1 n2 n3". */
export function takeSessionHits() {
  const out = sessionHits.join(" ");
  sessionHits = [0, 0, 0, 0];
  return out;
}

const BRIDGE_ROUTES = "/__auth-bridge";

// The worker's `cookiesHoldNoSession` (src/gateway.rs), handed over by the entry
// (scripts/lean-entry.mjs) once the module has loaded: whether a request's cookies hold nothing
// the worker reads, so that it would give the request the anonymous forward.
const COOKIE_CHECK = Symbol.for("auth-bridge.cookiesHoldNoSession");

/**
 * The origin's pending answer when `request` can only be anonymous, or carries exactly the
 * `Cookie` and `Authorization` of a remembered session, and the plan stands; `undefined` (the
 * worker takes it) otherwise, or whenever in doubt. The same conditions as the worker's
 * (src/gateway.rs), narrower: no `Via` header; a path as a URL parser leaves it (printable
 * ASCII, no `%`, `\`, or `.` after `/`) outside the bridge's routes; a query without `%` or
 * `__clerk` (Clerk's handshake and dev-browser parameters). Anonymous means no `Authorization`
 * and either no `Cookie`, or one that contains none of the plan's cookie marks (the names the
 * worker reads: then it holds none of them), or one that, as the worker says, holds none.
 */
function forwardOnPlan(request) {
  const now = Date.now();
  if (plan === null || now >= plan.until) return undefined;
  let url, onward, session, cookie;
  try {
    const headers = request.headers;
    if (headers.has("via")) return undefined;
    cookie = headers.get("cookie");
    const authorization = headers.get("authorization");
    if (authorization !== null || (cookie !== null && sessions.size !== 0)) {
      const key = sessionKey(cookie, authorization);
      session = sessions.get(key);
      if (session === undefined) {
        if (authorization !== null) return undefined;
      } else if (now >= session.until) {
        sessions.delete(key);
        return undefined;
      } else {
        cookie = null; // remembered: nothing left to ask about
      }
    }
    url = request.url;
    onward = pathOnward(url);
    if (!plainPathAndQuery(onward)) return undefined;
  } catch {
    return undefined;
  }
  // Last, as it may enter wasm (a trap there resets the instance, as in any call of its
  // exports). Cookies without any of the worker's marks (or with only Clerk's signed-out
  // `__client_uat=0` pairs) hold no session. Cookies that look like a session by the default
  // names go to the worker without asking, a shortcut only: nothing but the worker's marks or
  // its answer lets a request with cookies through here.
  if (cookie !== null && mayHoldSession(cookie, plan.marks, plan.signedOut)) {
    if (looksLikeSession(cookie) || globalThis[COOKIE_CHECK]?.(cookie) !== true) return undefined;
  }
  let identity = plan.identity;
  let from = 2;
  if (session === undefined) {
    forwardedOnPlan++;
  } else {
    sessionHits[session.kind]++;
    identity = session.pairs;
    from = 0;
  }
  if (plan.base === "") return send(request, url, "", plan.via, identity, from);
  const proto = url.startsWith("https:") ? "https" : "http";
  return send(request, plan.base + onward, proto, plan.via, identity, from);
}

// The entry (scripts/lean-entry.mjs) looks it up here: it runs before the worker's Rust.
globalThis[Symbol.for("auth-bridge.forwardOnPlan")] = forwardOnPlan;

/**
 * Whether `cookie` contains one of `marks` (src/identity/no_session.rs `marks`: every name the
 * worker reads a session from, and the handshake's parameter) other than as a signed-out pair:
 * one of `signedOut` (Clerk's `__client_uat` names) with the value `0`. Pairs are read as the
 * worker reads them (src/cookies.rs `pairs`: split at `;`, then at the first `=`, spaces and tabs
 * trimmed). A cookie is read only under a name that is or starts with a mark, taken from the
 * header as it stands: where this answers false, the worker's own check would say "no session".
 */
function mayHoldSession(cookie, marks, signedOut) {
  // No marks: the worker said nothing (it always names its handshake's parameter); ask it.
  if (marks.length === 0) return true;
  return containsAny(cookie, marks) && (signedOut.length === 0 || !marksOnlySignedOut(cookie, marks, signedOut));
}

/** Whether every pair of `cookie` that holds a mark is a signed-out pair (see `mayHoldSession`). */
function marksOnlySignedOut(cookie, marks, signedOut) {
  for (const pair of cookie.split(";")) {
    if (!containsAny(pair, marks)) continue;
    const eq = pair.indexOf("=");
    if (eq < 0 || trimOws(pair.slice(eq + 1)) !== "0" || !signedOut.includes(trimOws(pair.slice(0, eq)))) return false;
  }
  return true;
}

function containsAny(text, marks) {
  for (let i = 0; i < marks.length; i++) if (text.includes(marks[i])) return true;
  return false;
}

/** `s` without leading and trailing spaces and tabs (src/cookies.rs `trim_ows`). */
function trimOws(s) {
  let start = 0;
  let end = s.length;
  while (start < end && (s[start] === " " || s[start] === "\t")) start++;
  while (end > start && (s[end - 1] === " " || s[end - 1] === "\t")) end--;
  return s.slice(start, end);
}

/**
 * Whether `cookie` holds a name next-auth, Auth.js or Clerk give their session tokens. Not
 * `__client_uat` alone: Clerk sets `__client_uat=0` for every signed-out visitor, which the
 * worker's check lets through.
 */
function looksLikeSession(cookie) {
  return cookie.includes("session-token") || cookie.includes("__session");
}

/** Path and query of `url` (what src/proxy.rs `path_onward` gives). */
function pathOnward(url) {
  const scheme = url.indexOf("://");
  const rest = scheme < 0 ? url : url.slice(scheme + 3);
  const slash = rest.indexOf("/");
  return slash < 0 ? "/" : rest.slice(slash);
}

function plainPathAndQuery(onward) {
  const q = onward.indexOf("?");
  const path = q < 0 ? onward : onward.slice(0, q);
  if (path.startsWith(BRIDGE_ROUTES)) return false;
  let afterSlash = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    // Printable ASCII other than #, % and \, and no dot segment.
    if (c < 0x21 || c > 0x7e || c === 0x23 || c === 0x25 || c === 0x5c) return false;
    if (afterSlash && c === 0x2e) return false;
    afterSlash = c === 0x2f;
  }
  if (q < 0) return true;
  const query = onward.slice(q + 1);
  return !query.includes("%") && !query.includes("__clerk") && !query.includes("#");
}
