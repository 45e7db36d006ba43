#!/usr/bin/env node
// Where one request's time goes inside the worker's isolate: V8's sampling CPU profiler (through
// workerd's inspector) over many identical requests, summarised per function (self time) and
// per group (wasm-bindgen glue, worker-build shim, the worker's Rust, runtime built-ins).
//
//   node benches/profile.mjs [--build DIR] [--case anonymous|other|signed-out|v4|v5|clerk] [--requests N]
//                            [--interval US] [--top N] [--warm]
//
// Build with `scripts/build --keep-names` so wasm frames carry Rust names. The profile covers
// the isolate's thread only (JS and wasm); workerd's HTTP handling outside the isolate does not
// appear in it, so compare the sampled total with the per-request CPU of benches/hotpath.mjs.
import path from 'node:path';
import http from 'node:http';
import { Miniflare } from 'miniflare';
import WebSocket from 'ws';
import { bridgeWorker, COMPATIBILITY_DATE, ROOT } from '../tests/e2e/harness.mjs';
import { startClerkServer } from '../tests/clerk-server/server.mjs';
import { cookieSuffix, publishableKeyFor } from '../tests/clerk-server/keys.mjs';
import { nextAuthV4, authJsV5, cookieHeader } from '../tests/e2e/tokens.mjs';
import { client, option, pad, referenceScript, startSmallOrigin } from './common.mjs';

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const BUILD = path.resolve(arg('build', path.join(ROOT, 'build')));
const CASE = arg('case', 'anonymous');
const REQUESTS = option(args, 'requests', 'PROFILE_REQUESTS', 3000);
const INTERVAL = option(args, 'interval', 'PROFILE_INTERVAL', 25);
const TOP = option(args, 'top', 'PROFILE_TOP', 40);
const WARM = args.includes('--warm');
const SECRET = 'bench-nextauth-secret';
const FAPI = 'clerk.bench.example.com';

const origin = await startSmallOrigin();
const clerk = await startClerkServer({ port: 0, publishableKey: publishableKeyFor(FAPI, { live: true }) });
const inspectorPort = 20000 + Math.floor(Math.random() * 20000);
const worker = bridgeWorker(
  {
    ORIGIN_URL: origin.url,
    NEXTAUTH_SECRET: SECRET,
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_PUBLISHABLE_KEY: clerk.publishableKey,
    CLERK_API_URL: clerk.url,
    CLERK_JWT_KEY: clerk.publicKeyPem,
  },
  { unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }] },
);
worker.modulesRoot = BUILD;
worker.modules = [
  { type: 'ESModule', path: path.join(BUILD, 'index.js') },
  { type: 'CompiledWasm', path: path.join(BUILD, 'index_bg.wasm') },
];
// --noop profiles the no-op JS worker instead, as the floor to compare with.
const NOOP = args.includes('--noop');
const noop = {
  name: 'auth-bridge',
  modules: true,
  script: await referenceScript(),
  compatibilityDate: COMPATIBILITY_DATE,
  bindings: { ORIGIN_URL: origin.url, REFERENCE_MODE: 'noop' },
  unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
};
const mf = new Miniflare({ workers: [NOOP ? noop : worker], host: '127.0.0.1', port: 0, inspectorPort });

const getJson = (url) =>
  new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(JSON.parse(body)));
    }).on('error', reject);
  });

try {
  await mf.ready;
  const get = client(await mf.unsafeGetDirectURL('auth-bridge'));
  const clerkUser = clerk.createUser({ external_id: 'legacy-clerk-profile', email_address: ['p@example.com'] }).id;
  const uat = Math.floor(Date.now() / 1000) - 120;
  let n = 0;
  const claims = () => ({ sub: `legacy-${WARM ? 'warm' : n++}`, email: 'u@example.com' });
  const cookie = {
    anonymous: async () => null,
    other: async () => `theme=dark-${WARM ? 'warm' : n++}; _ga=GA1.2.${n}`,
    // Clerk's signed-out visitor: both `__client_uat` cookies at 0.
    'signed-out': async () =>
      `__client_uat=0; __client_uat_${cookieSuffix(clerk.publishableKey)}=0; theme=dark-${WARM ? 'warm' : n++}`,
    v4: async () => cookieHeader({ 'next-auth.session-token': await nextAuthV4(SECRET, claims()) }),
    v5: async () => cookieHeader({ 'authjs.session-token': await authJsV5(SECRET, claims()) }),
    clerk: async () =>
      cookieHeader({
        __session: clerk.mintSessionToken({ sub: clerkUser, ttlSeconds: 3600, claims: { jti: String(n++) } }),
        __client_uat: String(uat),
      }),
  }[CASE];
  if (!cookie) throw new Error(`unknown case ${CASE}`);
  const cookies = [];
  const fixed = WARM ? await cookie() : null;
  for (let i = 0; i < REQUESTS + 200; i++) cookies.push(fixed ?? (await cookie()));
  const headers = (c) => ({ accept: 'text/html', 'user-agent': 'profile', ...(c ? { cookie: c } : {}) });
  for (let i = 0; i < 200; i++) await get('/warm', headers(cookies[i]));

  const targets = await getJson(`http://127.0.0.1:${inspectorPort}/json/list`);
  const target = targets.find((t) => t.title?.includes('auth-bridge') || t.id?.includes('auth-bridge')) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  let id = 0;
  const pending = new Map();
  ws.on('message', (m) => {
    const msg = JSON.parse(m);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const mid = ++id;
      pending.set(mid, resolve);
      ws.send(JSON.stringify({ id: mid, method, params }));
    });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: INTERVAL });
  await send('Profiler.start');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const r = await get('/page', headers(cookies[200 + i]));
    if (r.status !== 200) throw new Error(`status ${r.status}`);
  }
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const { result } = await send('Profiler.stop');
  ws.close();
  const profile = result.profile;

  // Self time per node from the sample deltas.
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const selfUs = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? INTERVAL;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
  }
  const label = (node) => {
    const f = node.callFrame;
    const name = f.functionName || '(anonymous)';
    const file = f.url ? f.url.split('/').pop() : '';
    return file ? `${name} [${file}]` : name;
  };
  const group = (node) => {
    const f = node.callFrame;
    if (['(idle)', '(program)', '(garbage collector)', '(root)'].includes(f.functionName)) return f.functionName;
    if (f.url.includes('wasm')) return 'wasm (Rust)';
    if (f.url.endsWith('index.js') || f.url.includes('script-')) return 'JS glue (wasm-bindgen + worker-build shim)';
    return f.url ? `JS ${f.url.split('/').pop()}` : 'runtime built-ins';
  };
  const bySelf = new Map();
  const byGroup = new Map();
  let busy = 0;
  for (const [nid, us] of selfUs) {
    const node = nodes.get(nid);
    const l = label(node);
    bySelf.set(l, (bySelf.get(l) ?? 0) + us);
    const g = group(node);
    byGroup.set(g, (byGroup.get(g) ?? 0) + us);
    if (node.callFrame.functionName !== '(idle)') busy += us;
  }
  // Inclusive time of each Rust function (a frame counted once per sample even when recursive).
  const inclusive = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? INTERVAL;
    const seen = new Set();
    for (let nid = profile.samples[i]; nid !== undefined; nid = parent.get(nid)) {
      const l = label(nodes.get(nid));
      if (!seen.has(l)) {
        seen.add(l);
        inclusive.set(l, (inclusive.get(l) ?? 0) + dt);
      }
    }
  }
  const per = (us) => (us / REQUESTS).toFixed(2);
  console.log(`profile: case ${CASE}${WARM ? ' (warm)' : ''}, ${REQUESTS} requests, sampling every ${INTERVAL} us, wall ${(wallMs / REQUESTS).toFixed(3)} ms/request`);
  console.log(`isolate thread busy (not idle): ${per(busy)} us/request\n`);
  const groups = [['group', 'us/request (self)']];
  for (const [g, us] of [...byGroup].sort((a, b) => b[1] - a[1])) groups.push([g, per(us)]);
  console.log(pad(groups));
  const self = [['function (self time)', 'us/request']];
  for (const [l, us] of [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, TOP)) self.push([l.slice(0, 110), per(us)]);
  console.log(`\n${pad(self)}`);
  const inc = [['function (inclusive)', 'us/request']];
  for (const [l, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, TOP)) inc.push([l.slice(0, 110), per(us)]);
  console.log(`\n${pad(inc)}`);
} finally {
  await mf.dispose();
  await clerk.close();
  await origin.close();
}
