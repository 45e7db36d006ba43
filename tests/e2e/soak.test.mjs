// The soak (scripts/soak.mjs) with small numbers: ordinary traffic, a batch import and a trickle
// of sign-ins at once, while the local Clerk server injects seeded faults on the Backend API and
// enforces its sliding-window rate limit. Same code as the full run; see scripts/lib/soak-run.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak, formatReport } from '../../scripts/lib/soak-run.mjs';

let report;

test('soak under faults: no 5xx, no duplicate, no wrong record state, no window over the limit', { timeout: 90_000 }, async () => {
  report = await runSoak({
    requests: 600,
    users: 150,
    signins: 30,
    faultRate: Number(process.env.SOAK_FAULT_RATE ?? 0.05),
    // A bad spell, then a healthy Clerk: nothing may end failed for having met only transient errors.
    faultForMs: 15_000,
    rate: '1000/10s',
    seed: Number(process.env.SOAK_SEED ?? 1),
    rps: 60,
    signinSpreadMs: 3_000,
    tickEveryMs: 2_000,
    pollEveryMs: 500,
    timeoutMs: 50_000,
    requestTimeoutMs: 15_000,
    captureLogs: true,
  });
  delete report.worker_logs;
  for (const line of formatReport(report).split('\n')) console.log(`# ${line}`);
  const inv = report.invariants;
  assert.equal(inv.ordinary_5xx.value, 0, 'no 5xx for ordinary traffic');
  assert.ok(inv.ordinary_unanswered.ok, 'every ordinary request answered');
  assert.equal(inv.clerk_duplicates_by_external_id.value, 0);
  assert.equal(inv.clerk_duplicates_by_email.value, 0);
  // Every record that reached a state is right: migrated = one Clerk user with its external_id,
  // skipped with a reason, failed with a code and listed; the rest is still pending (in flight).
  const wrong = Object.entries(report.import.lost_by_reason).filter(([why]) => why !== 'no terminal state');
  assert.deepEqual(wrong, [], JSON.stringify(report.import.lost));
  assert.ok(inv.status_counts_reconcile.ok, inv.status_counts_reconcile.value);
  assert.equal(inv.windows_over_rate_limit.value, 0);
  assert.equal(report.rate.server_429, 0, "no 429 from the server's own limiter");
  assert.ok(report.rate.max_admitted_in_window <= 1000);
  assert.equal(inv.trickle_tokens_for_wrong_user.value, 0);
  assert.equal(inv.trickle_5xx_other_than_502_503_504.value, 0);
  assert.equal(inv.trickle_429_503_without_retry_after.value, 0);
});

// Includes the first requests of a fresh isolate, which arrive while its JWKS fetch is in flight.
test('soak under faults: the origin sees the expected identity for every request', () => {
  assert.ok(report, 'the soak ran');
  assert.equal(report.invariants.identity_mismatches.value, 0, JSON.stringify(report.traffic.mismatches));
});

// Batch-wide 429 pauses and live-check deferrals do not grow a record's backoff, so the tail
// of the import ends within the run.
test('soak under faults: the import ends with nothing pending', () => {
  assert.ok(report, 'the soak ran');
  assert.ok(report.invariants.import_finished.ok, JSON.stringify(report.import.final_counts));
  assert.equal(report.invariants.import_records_lost.value, 0);
  assert.equal(report.invariants.import_failed_by_transient_errors.value, 0, JSON.stringify(report.import.failure_codes));
});
