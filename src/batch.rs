//! The batch import after the upload: the cron tick that paces records into the Queue, the
//! queue consumer that migrates them, and the dead-letter consumer that records what could
//! not be done. Decisions are plain functions here (host-tested); `tick`, `consume` and
//! `status` are the glue around KV, the Queue and Clerk.
//!
//! # Keys used beside the ledger's (see [`crate::migration`])
//!
//! | key | value | written by |
//! |---|---|---|
//! | `pacer:state` | [`crate::pacer::PacerState`] | cron (single writer) |
//! | `lock:tick` | the claim of the running tick | cron |
//! | `ctl:pause` | present while the admin paused the batch | admin |
//! | `ctl:ratelimit_until` | end of a pause asked by a Clerk `429` (ms) | consumer |
//! | `tally:cache` | the last computed counts | admin status |
//!
//! # Two ticks at once
//!
//! KV has no compare-and-swap, so a tick *claims* its run: it skips when a tick for the same or
//! a later minute already claimed, else writes its nonce to `lock:tick`, waits
//! [`tick::CLAIM_SETTLE_MS`] and reads it back; only the last writer goes on. Writes are
//! visible at once in the location that made them, so two ticks there (a doubled or a late
//! cron) cannot both send. Ticks in two locations may both see their own write while KV
//! propagates (up to about a minute); then the same records can be sent twice. That costs
//! budget, never correctness: the consumer skips records already migrated or skipped, the
//! migrator finds a user by `external_id` before creating one, and Clerk refuses a second
//! user with the same email, phone or username — so a legacy user still becomes one Clerk
//! user — and the consumer's live [`crate::pacer::Pacer::admit`] check keeps the real call
//! rate under the limit whatever was sent.

pub mod consume;
pub mod status;
pub mod tick;
pub mod upload;

use crate::migration::Outcome;

/// KV keys of this module (see the table above).
pub const PACER_STATE_KEY: &str = "pacer:state";
pub const TICK_LOCK_KEY: &str = "lock:tick";
pub const ADMIN_PAUSE_KEY: &str = "ctl:pause";
pub const RATE_LIMIT_PAUSE_KEY: &str = "ctl:ratelimit_until";
pub const TALLY_CACHE_KEY: &str = "tally:cache";

/// Queue names (wrangler.toml).
pub const IMPORT_QUEUE_NAME: &str = "auth-bridge-import";
pub const DEAD_LETTER_QUEUE_NAME: &str = "auth-bridge-import-dlq";

pub use crate::migration::ledger::DEFERRAL_CODES;

/// Backend API calls one record may cost, per phase (`observe` only looks up).
pub fn calls_per_record(dry_run: bool) -> u32 {
    if dry_run {
        2
    } else {
        3
    }
}

/// Delay before the next delivery after a transient failure: 5 s doubling, at most 5 min.
pub fn backoff_secs(deliveries: u32) -> u32 {
    5u32.saturating_mul(1 << deliveries.saturating_sub(1).min(6))
        .min(300)
}

/// What the consumer does with a message after the migrator ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Write the outcome to the ledger (or the dry-run verdict) and ack.
    Record,
    /// Retry after `delay_secs`; `pause_until_ms` is set when Clerk asked every batch call to
    /// wait (a `429`).
    Retry {
        delay_secs: u32,
        code: String,
        pause_until_ms: Option<u64>,
    },
}

/// The decision for an outcome; `deliveries` counts earlier deliveries that ended in a retry.
pub fn next_step(outcome: &Outcome, deliveries: u32, now_ms: u64) -> Next {
    match outcome {
        Outcome::Retry { after_secs, code } => {
            let rate_limited = code == "rate_limited";
            let delay_secs = after_secs
                .unwrap_or_else(|| backoff_secs(deliveries + 1))
                .max(1);
            Next::Retry {
                delay_secs,
                code: code.clone(),
                pause_until_ms: rate_limited.then(|| now_ms + u64::from(delay_secs) * 1000),
            }
        }
        _ => Next::Record,
    }
}

/// The message recorded for a record whose deliveries ran out.
pub fn exhausted_message(last: Option<&crate::migration::ledger::LastError>) -> String {
    match last {
        Some(l) => format!(
            "gave up after {} failed deliveries; last error: {} ({})",
            l.deliveries, l.code, l.message
        ),
        None => "gave up after the queue's retries; no error was recorded".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::ledger::LastError;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let delays: Vec<u32> = (1..=9).map(backoff_secs).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff_secs(0), 5);
    }

    #[test]
    fn a_429_pauses_everyone_for_its_retry_after() {
        let o = Outcome::Retry {
            after_secs: Some(7),
            code: "rate_limited".into(),
        };
        assert_eq!(
            next_step(&o, 0, 1_000),
            Next::Retry {
                delay_secs: 7,
                code: "rate_limited".into(),
                pause_until_ms: Some(8_000)
            }
        );
        let o = Outcome::Retry {
            after_secs: None,
            code: "clerk_unavailable".into(),
        };
        assert_eq!(
            next_step(&o, 2, 0),
            Next::Retry {
                delay_secs: 20,
                code: "clerk_unavailable".into(),
                pause_until_ms: None
            }
        );
        assert_eq!(
            next_step(
                &Outcome::Failed {
                    code: "x".into(),
                    message: "y".into()
                },
                0,
                0
            ),
            Next::Record
        );
        assert_eq!(next_step(&Outcome::WouldCreate, 0, 0), Next::Record);
    }

    #[test]
    fn exhausted_message_names_the_last_error() {
        let l = LastError {
            deliveries: 4,
            code: "clerk_unavailable".into(),
            message: "Clerk unavailable (503)".into(),
            updated_at_ms: 0,
        };
        let m = exhausted_message(Some(&l));
        assert!(m.contains("4 failed deliveries") && m.contains("clerk_unavailable"));
        assert!(exhausted_message(None).contains("no error"));
        assert!(DEFERRAL_CODES.contains(&"rate_limited"));
    }
}
