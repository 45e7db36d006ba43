#!/usr/bin/env node
// Soak under faults: ordinary traffic, a batch import and a trickle of sign-ins at once, under
// Miniflare (real workerd), against the local Clerk Backend API server with its sliding-window
// rate limit and seeded fault injection. Everything runs on 127.0.0.1 and stops by itself.
//
//   node scripts/soak.mjs [--requests 10000] [--users 2000] [--signins 200] [--fault-rate 0.2] [--fault-s N]
//                         [--rate 1000/10s] [--seed 1] [--concurrency 16] [--rps 100]
//                         [--timeouts] [--timeout-s 900] [--json] [--quiet] [--worker-logs]
//
// Needs build/ (scripts/build). Prints a compact report (or one JSON document with --json) and
// exits 1 when an invariant did not hold: no 5xx for ordinary traffic, no duplicated Clerk user,
// no import record lost, no record failed for a transient error, no rate-limit window exceeded
// (see scripts/lib/soak-run.mjs). `--fault-s N` injects faults for N seconds only, then Clerk is
// healthy: every record that met only transient errors must end migrated, exactly once.
import { runSoak, formatReport, DEFAULTS } from './lib/soak-run.mjs';

const args = process.argv.slice(2);
function option(name, fallback, parse = Number) {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  const parsed = parse(v);
  if (typeof parsed === 'number' && !Number.isFinite(parsed)) throw new Error(`--${name}: not a number: ${v}`);
  return parsed;
}

if (args.includes('--help') || args.includes('-h')) {
  console.log(
    'usage: node scripts/soak.mjs [--requests N] [--users N] [--signins N] [--fault-rate P] [--rate N/Ws]\n' +
      '                            [--fault-s N (faults only this long)] [--seed N] [--concurrency N]\n' +
      '                            [--rps N (0 = unpaced)] [--tick-s N]\n' +
      '                            [--timeouts] [--timeout-s N] [--json] [--quiet] [--worker-logs]',
  );
  process.exit(0);
}

const json = args.includes('--json');
const quiet = args.includes('--quiet') || json;
const options = {
  requests: option('requests', DEFAULTS.requests),
  users: option('users', DEFAULTS.users),
  signins: option('signins', DEFAULTS.signins),
  faultRate: option('fault-rate', DEFAULTS.faultRate),
  faultForMs: args.includes('--fault-s') ? option('fault-s', null) * 1000 : DEFAULTS.faultForMs,
  rate: option('rate', DEFAULTS.rate, String),
  seed: option('seed', DEFAULTS.seed),
  concurrency: option('concurrency', DEFAULTS.concurrency),
  rps: option('rps', DEFAULTS.rps),
  tickEveryMs: option('tick-s', DEFAULTS.tickEveryMs / 1000) * 1000,
  timeoutMs: option('timeout-s', DEFAULTS.timeoutMs / 1000) * 1000,
  timeouts: args.includes('--timeouts'),
  // The worker's own log lines are kept off stdout (it carries the report); --worker-logs
  // copies them to stderr when the run ends.
  captureLogs: true,
  log: quiet ? () => {} : (m) => console.error(`# ${m}`),
};
if (options.faultRate < 0 || options.faultRate > 1) throw new Error('--fault-rate must be within 0..1');
for (const k of ['requests', 'users', 'concurrency']) {
  if (!(options[k] >= 1)) throw new Error(`--${k} must be at least 1`);
}

// A hard stop beyond the run's own deadline, should anything hang while tearing down.
const guard = setTimeout(() => {
  console.error('soak: hard timeout');
  process.exit(2);
}, options.timeoutMs + 120_000);
guard.unref();

const report = await runSoak(options);
if (args.includes('--worker-logs')) process.stderr.write(report.worker_logs.join('\n') + '\n');
delete report.worker_logs;
console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
process.exitCode = report.ok ? 0 : 1;
