// Shared pieces of the benchmarks (benches/hotpath.mjs, benches/profile.mjs): a keep-alive HTTP
// client timed with hrtime, a minimal Node origin, the JS reference worker bundled for workerd,
// interleaved sampling and percentile statistics.
import http from 'node:http';
import os from 'node:os';
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { COMPATIBILITY_DATE, listen } from '../tests/e2e/harness.mjs';
import { prng } from '../tests/clerk-server/faults.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A positive integer from the environment, or `fallback`. */
export function envInt(name, fallback) {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

/** `--name=value` or `--name value` from argv, else the env var, else the default. */
export function option(args, name, envName, fallback) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}` && args[i + 1]) return Number(args[i + 1]);
    if (args[i].startsWith(`--${name}=`)) return Number(args[i].slice(name.length + 3));
  }
  return envInt(envName, fallback);
}

/**
 * A minimal origin on 127.0.0.1: drains the request and answers a small fixed body, so the
 * origin's own cost is as small and as constant as possible.
 */
export function startSmallOrigin() {
  const body = Buffer.from('{"ok":true}\n');
  return listen(
    (req, res) => {
      req.resume();
      req.on('end', () => {
        // Tells the client which identity arrived, so every sample can be checked.
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': body.length,
          'x-seen-source': String(req.headers['x-auth-source'] ?? 'none'),
          'x-seen-user': String(req.headers['x-auth-user-id'] ?? ''),
        });
        res.end(body);
      });
    },
    { keepAliveTimeout: 60_000 },
  );
}

/**
 * CPU time used so far by the workerd process Miniflare started (a child of this process), in
 * ms: the sum over its threads of the scheduler's on-CPU nanoseconds (/proc/PID/task/TID/schedstat).
 * Requests are sent one at a time, so the difference around one request is that request's CPU
 * in workerd (both workers run in that one process). Returns null when /proc is not available.
 */
export function workerdCpu() {
  let pid;
  try {
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        const comm = stat.slice(stat.indexOf('(') + 1, close);
        const ppid = Number(stat.slice(close + 2).split(' ')[1]);
        if (ppid === process.pid && comm.startsWith('workerd')) pid = d;
      } catch {}
    }
  } catch {
    return null;
  }
  if (!pid) return null;
  let tasks = [];
  let calls = 0;
  const list = () => {
    tasks = fs.readdirSync(`/proc/${pid}/task`).map((t) => `/proc/${pid}/task/${t}/schedstat`);
  };
  list();
  return function cpuMs() {
    if (++calls % 256 === 0) list(); // threads may come and go
    let ns = 0;
    for (const t of tasks) {
      try {
        ns += Number(fs.readFileSync(t, 'utf8').split(' ')[0]);
      } catch {}
    }
    return ns / 1e6;
  };
}

/**
 * One keep-alive connection per target, so connection setup is never in a sample. With `cpu`
 * (from workerdCpu) each answer also carries the workerd CPU ms spent during the request.
 */
export function client(baseUrl, { cpu } = {}) {
  const u = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  /** Sends one GET, reads the whole body; resolves to {ms, cpuMs, status, headers, body}. */
  return function get(pathname, headers = {}) {
    return new Promise((resolve, reject) => {
      const c0 = cpu ? cpu() : 0;
      const t0 = process.hrtime.bigint();
      const req = http.request(
        { host: u.hostname, port: u.port, path: pathname, method: 'GET', headers, agent },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const ms = Number(process.hrtime.bigint() - t0) / 1e6;
            const cpuMs = cpu ? cpu() - c0 : NaN;
            resolve({ ms, cpuMs, status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  };
}

/** The JS reference worker (benches/reference-worker.mjs) bundled for workerd, as a string. */
export async function referenceScript() {
  const result = await esbuild.build({
    entryPoints: [path.join(ROOT, 'benches/reference-worker.mjs')],
    absWorkingDir: ROOT,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['workerd', 'worker', 'browser'],
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'error',
  });
  return result.outputFiles[0].text;
}

/** Miniflare options for a reference worker with its own direct socket. */
export function referenceWorker(name, script, bindings) {
  return {
    name,
    modules: true,
    script,
    compatibilityDate: COMPATIBILITY_DATE,
    bindings,
    unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
  };
}

/**
 * Runs `rounds` rounds; each round runs every case once, in a freshly shuffled order (seeded).
 * `cases` is [{name, run: async (round) => sample, prime?: async (round) => void}]. `prime`
 * runs, unrecorded, right before each measured `run`: the benchmarks use it to send one request
 * to the same worker first, because the first request after another worker ran in the same
 * workerd pays a switching cost (~0.2 ms on a 2-core machine) that is an artefact of running
 * two workers side by side, not of either worker.
 */
export async function interleave(cases, rounds, { seed = 1 } = {}) {
  const rand = prng(seed);
  const samples = Object.fromEntries(cases.map((c) => [c.name, []]));
  const order = cases.map((_, i) => i);
  for (let round = 0; round < rounds; round++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const k of order) {
      const c = cases[k];
      if (c.prime) await c.prime(round);
      samples[c.name].push(await c.run(round));
    }
  }
  return samples;
}

/**
 * What one operation of each case costs inside workerd, for the microbenchmarks whose worker
 * runs one case's operation `ops` times per request (the case named by the request path, with
 * `headers`) and answers how many operations came out right. Rounds as in `interleave`, the first
 * one unrecorded (warm-up); throws unless every answer is `ops`. Returns the wall time per
 * operation of `baseline` (a case whose loop does nothing) and of every other case less it,
 * medians over the rounds, in µs.
 */
export async function perOperation(mf, names, { ops, rounds, baseline, headers = {}, seed = 7 }) {
  const cases = names.map((name) => ({
    name,
    run: async () => {
      const started = process.hrtime.bigint();
      const response = await mf.dispatchFetch(`http://bench/${encodeURIComponent(name)}`, { headers });
      const answer = Number(await response.text());
      const us = Number(process.hrtime.bigint() - started) / 1000 / ops;
      if (answer !== ops) throw new Error(`${name}: ${answer} of ${ops} operations right`);
      return us;
    },
  }));
  const samples = await interleave(cases, rounds + 1, { seed });
  const median = (name) => summarize(samples[name].slice(1)).median;
  const floor = median(baseline);
  const cost = Object.fromEntries(names.filter((n) => n !== baseline).map((n) => [n, median(n) - floor]));
  return { baseline: floor, cost };
}

export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function summarize(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, median: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), min: s[0] };
}

export const fmt = (x, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

export function pad(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ')).join('\n');
}

export function machine() {
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, load ${load}, node ${process.version}`;
}

// gzip: at zlib's default level, as node and most tools gzip by default (the figure held to the
// 400 KB limit); gzip_level9: the smallest zlib makes it.
export function wasmSize() {
  const file = path.join(ROOT, 'build/index_bg.wasm');
  const raw = fs.readFileSync(file);
  return { raw: raw.length, gzip: zlib.gzipSync(raw).length, gzip_level9: zlib.gzipSync(raw, { level: 9 }).length };
}
