#!/usr/bin/env node
// What each `Headers` operation the forward makes (src/proxy.js `send`) costs inside workerd,
// for a browser's page load with a Clerk-sized cookie: the copy of the request's headers, the
// scan for inbound x-auth-* names (keys() against forEach), a set, a delete, a get.
//
//   node benches/headers.mjs [--iterations N] [--rounds N]
//
// Method. One Miniflare worker runs an operation N times inside one request; the wall time of the
// request over N, less that of a request whose loop does nothing, is the operation's cost. Rounds
// run the operations in a shuffled order (after one warm-up round); the figure is the median over
// rounds (benches/common.mjs `perOperation`). Each loop's answer is checked (the scan finds the
// one forged header the request carries), so no loop is optimised away.
import { Miniflare } from 'miniflare';
import { option, perOperation } from './common.mjs';

const args = process.argv.slice(2);
const N = option(args, 'iterations', 'HEADERS_ITERATIONS', 20000);
const ROUNDS = option(args, 'rounds', 'HEADERS_ROUNDS', 10);

// Each case: the work of one iteration, which adds 1 to `sink` when it came out right.
const CASES = {
  baseline: 'sink++;',
  copy: 'const h = new Headers(request.headers); sink += h.has("cookie") ? 1 : 0;',
  'copy + scan by keys()': 'const h = new Headers(request.headers); for (const n of h.keys()) if (n.startsWith("x-auth-")) sink++;',
  'copy + scan by forEach': 'const h = new Headers(request.headers); h.forEach((_, n) => { if (n.startsWith("x-auth-")) sink++; });',
  'copy + 1 set': 'const h = new Headers(request.headers); h.set("x-auth-source", "clerk"); sink += h.has("x-auth-source") ? 1 : 0;',
  'copy + 6 sets': 'const h = new Headers(request.headers); for (let j = 0; j < 6; j++) h.set(NAMES[j], "v" + j); sink += h.has(NAMES[5]) ? 1 : 0;',
  'copy + 6 appends': 'const h = new Headers(request.headers); for (let j = 0; j < 6; j++) h.append(NAMES[j], "v" + j); sink += h.has(NAMES[5]) ? 1 : 0;',
  'copy + 1 delete': 'const h = new Headers(request.headers); h.delete("x-auth-user-id"); sink += h.has("x-auth-user-id") ? 0 : 1;',
  // fetch(url, init) builds a Request from init, copying init.headers again; a Request built
  // from the inbound headers and changed in place is sent as it is (fetch(request)).
  'forward: copy, then Request': 'const h = new Headers(request.headers); h.set("via", "1.1 b"); const r = new Request("https://origin.example/p", { method: "GET", headers: h, redirect: "manual" }); sink += r.headers.has("via") ? 1 : 0;',
  'forward: Request, in place': 'const r = new Request("https://origin.example/p", { method: "GET", headers: request.headers, redirect: "manual" }); r.headers.set("via", "1.1 b"); sink += r.headers.has("via") ? 1 : 0;',
  'get cookie': 'sink += request.headers.get("cookie").length > 0 ? 1 : 0;',
};
const NAMES = ['x-auth-source', 'x-auth-user-id', 'x-auth-clerk-user-id', 'x-auth-email', 'x-auth-session-id', 'x-auth-session-status'];

const script = `
const N = ${N};
const NAMES = ${JSON.stringify(NAMES)};
const CASES = {
${Object.entries(CASES)
  .map(([name, body]) => `  ${JSON.stringify(name)}: (request) => { let sink = 0; for (let i = 0; i < N; i++) { ${body} } return sink; },`)
  .join('\n')}
};
export default {
  async fetch(request) {
    const name = decodeURIComponent(new URL(request.url).pathname.slice(1));
    return new Response(String(CASES[name](request)));
  },
};`;

// A browser's page load, signed in with Clerk (a session token's size), and one forged header.
const HEADERS = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-US,en;q=0.5',
  'accept-encoding': 'gzip, deflate, br',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  'sec-fetch-dest': 'document',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-site': 'none',
  'upgrade-insecure-requests': '1',
  'x-auth-user-id': 'forged',
  cookie: `__session=${'a'.repeat(900)}; __client_uat=1700000000`,
};

const mf = new Miniflare({ modules: true, script, compatibilityDate: '2025-01-01' });
try {
  await mf.ready;
  const { baseline, cost } = await perOperation(mf, Object.keys(CASES), { ops: N, rounds: ROUNDS, baseline: 'baseline', headers: HEADERS });
  console.log(`Headers operations in workerd, ${N} per request, median of ${ROUNDS} rounds (after one warm-up), less the empty loop (${baseline.toFixed(2)} us)`);
  for (const [name, us] of Object.entries(cost)) console.log(`  ${name.padEnd(24)} ${us.toFixed(2).padStart(7)} us`);
} finally {
  await mf.dispose();
}
