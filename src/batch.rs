//! The batch import after the upload: the cron tick that paces pages of records into the
//! Queue, the queue consumer that migrates them ([`crate::migration::page`]), and the
//! dead-letter consumer that hands what the Queue gave up on back to the backlog. Decisions
//! are plain functions here (host-tested); `tick`, `consume` and `status` are the glue around
//! KV, the Queue and Clerk.
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
//! | `stats:batch` | [`status::BatchStats`]: calls and imported users, recent and total | consumer |
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
//! user — and the consumer's live [`crate::pacer::Pacer::grant`] check keeps the real call
//! rate under the limit whatever was sent.

use crate::migration::ledger::{BacklogCursor, ImportMeta, QueueMessage};
use crate::migration::page::{hold_until_due, paginate, PageMessage};
use crate::pacer::{CallCounter, Pacer, PacerState};

pub mod consume;
pub mod status;
pub mod tick;
pub mod upload;

/// KV keys of this module (see the table above).
pub const PACER_STATE_KEY: &str = "pacer:state";
pub const TICK_LOCK_KEY: &str = "lock:tick";
pub const ADMIN_PAUSE_KEY: &str = "ctl:pause";
pub const RATE_LIMIT_PAUSE_KEY: &str = "ctl:ratelimit_until";
pub const TALLY_CACHE_KEY: &str = "tally:cache";
pub const BATCH_STATS_KEY: &str = "stats:batch";

/// Queue names (wrangler.toml).
pub const IMPORT_QUEUE_NAME: &str = "auth-bridge-import";
pub const DEAD_LETTER_QUEUE_NAME: &str = "auth-bridge-import-dlq";

/// Delay before a record's next try after `attempts` tries that met only transient errors:
/// doubling from 2 s, or from 1 s for a record a tail page hands back (`tail_page`, see
/// [`crate::migration::page::PageMessage::tail`]), at most 5 min. Capped, never given up: only
/// Clerk's permanent refusals end a record as failed. A short start: a record that met one
/// sporadic fault is tried again soon; at the end of an import the few records left are all the
/// import waits for, and each backoff in a chain of them adds to its end. A Clerk in trouble
/// still gets minutes between tries after a few.
pub fn backoff_secs(attempts: u32, tail_page: bool) -> u32 {
    let first_secs: u32 = if tail_page { 1 } else { 2 };
    first_secs
        .saturating_mul(1 << attempts.saturating_sub(1).min(9))
        .min(300)
}

/// How far ahead a tick takes handed-back records: until the next tick (the cron runs every
/// minute). Those not due yet are sent with the delay that makes them due, so a retry never
/// waits for the following tick.
pub const REQUEUE_LOOKAHEAD_MS: u64 = 60_000;

/// Whether a tick's pages end the import (see [`crate::migration::page::PageMessage::tail`]):
/// the backlog ran out before the budget (`taken < room`), or what is left of it after this
/// tick (`backlog_left`) would not fill the next tick's plan either. Pages run up to a couple
/// of minutes after they are sent ([`crate::pacer::PAGE_LEAD_SECS`]): pages of the tick before
/// the last still run when the backlog is empty, and records they hand back through the
/// backlog would wait for a cron tick instead of their backoff.
pub fn ends_import(taken: usize, room: usize, backlog_left: u64) -> bool {
    taken < room || backlog_left < room as u64
}

/// A cron tick's planning, shared by the tick and the simulation: at `now_ms`, with the
/// trickle's recent calls, how many records to take ([`Self::room`]), then the pages to send
/// with them ([`Self::pages`]).
pub struct TickPlanner<'a> {
    pub pacer: &'a Pacer,
    pub now_ms: u64,
    pub trickle: &'a CallCounter,
}

/// A tick's Queue messages: pages with their delays (seconds), and records the plan had no room
/// for after all (back to the backlog).
#[derive(Debug)]
pub struct TickPages {
    pub pages: Vec<(u32, PageMessage)>,
    pub overflow: Vec<QueueMessage>,
    /// Calls planned for the pages.
    pub calls: u32,
}

impl TickPlanner<'_> {
    /// How many records the tick may take: what the plan would fill with an endless backlog
    /// (planned on a copy: the state changes only with [`Self::pages`]).
    pub fn room(&self, state: &PacerState) -> usize {
        self.plan(&mut state.clone(), usize::MAX).records()
    }

    fn plan(&self, state: &mut PacerState, records: usize) -> crate::pacer::Plan {
        let reserved = CallCounter::new();
        self.pacer
            .plan(state, self.now_ms, self.trickle, &reserved, records)
    }

    /// Plans the records the tick took — at most [`Self::room`]'s `room`; the handed-back
    /// ones first, due at `due_ms`, then fresh ones — into pages: each page is sent with its
    /// planned delay, or later while a record in it is not due yet; all are tail pages when
    /// they end the import ([`ends_import`], with `backlog_left` records left after them).
    /// Updates `state` with the plan.
    pub fn pages(
        &self,
        state: &mut PacerState,
        mut messages: Vec<QueueMessage>,
        due_ms: &[u64],
        room: usize,
        backlog_left: u64,
    ) -> TickPages {
        let tail = ends_import(messages.len(), room, backlog_left);
        let plan = self.plan(state, messages.len());
        let overflow = messages.split_off(plan.records().min(messages.len()));
        let sizes: Vec<usize> = plan.pages.iter().map(|p| p.records).collect();
        let mut pages: Vec<(u32, PageMessage)> = paginate(messages, &sizes)
            .into_iter()
            .map(|(i, page)| (plan.pages[i].delay_secs, page))
            .collect();
        hold_until_due(&mut pages, due_ms, self.now_ms);
        for (_, page) in &mut pages {
            page.tail = tail;
        }
        TickPages {
            pages,
            overflow,
            calls: plan.calls,
        }
    }
}

/// About how many records the backlog still holds past `cursor` (imports are cut into
/// buckets of similar size, so the current import's rest is estimated from its buckets).
pub fn backlog_left(imports: &[ImportMeta], cursor: &BacklogCursor) -> u64 {
    imports
        .iter()
        .filter(|m| !cursor.done.contains(&m.import_id))
        .map(|m| {
            if cursor.import_id.as_deref() != Some(m.import_id.as_str()) {
                return m.accepted;
            }
            let buckets = u64::from(m.buckets.max(1));
            let rest = u64::from(m.buckets.saturating_sub(cursor.bucket));
            (m.accepted * rest / buckets).saturating_sub(cursor.offset as u64)
        })
        .sum()
}

/// Retry codes that mean "not now" rather than "it went wrong" (a batch-wide 429 pause, the
/// live budget check): they do not grow a record's backoff.
pub const DEFERRAL_CODES: &[&str] = &[
    crate::migration::page::RATE_LIMITED,
    crate::migration::page::DEFERRED,
];

/// Whether a record handed back with retry code `code` from a tail page (see
/// [`crate::migration::page::PageMessage::tail`]) goes straight back to the Queue, delayed by
/// its backoff: a transient error does; a deferral waits in the backlog, where the cron plans
/// it with the budget and any pause.
pub fn retry_through_queue(code: &str) -> bool {
    !DEFERRAL_CODES.contains(&code)
}

/// When a record that ended a delivery with a transient `Retry` is tried again, and with how
/// many attempts counted: `(due_ms, attempts)`. A deferral waits only for what it waited on
/// (Clerk's `Retry-After`, or the next slot); a real error backs off ([`backoff_secs`], from a
/// tail page when `tail_page`).
pub fn retry_schedule(
    after_secs: Option<u32>,
    code: &str,
    attempts: u32,
    now_ms: u64,
    tail_page: bool,
) -> (u64, u32) {
    if DEFERRAL_CODES.contains(&code) {
        return (now_ms + u64::from(after_secs.unwrap_or(0)) * 1000, attempts);
    }
    let attempts = attempts.saturating_add(1);
    let secs = after_secs
        .unwrap_or(0)
        .max(backoff_secs(attempts, tail_page))
        .min(300);
    (now_ms + u64::from(secs) * 1000, attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_the_import_when_the_backlog_would_not_fill_the_next_tick() {
        let meta = |id: &str, accepted, buckets| ImportMeta {
            import_id: id.into(),
            accepted,
            buckets,
            created_at_ms: 0,
        };
        let imports = [meta("a", 1_000, 4), meta("b", 300, 1), meta("c", 50, 1)];
        let mut cursor = BacklogCursor {
            done: vec!["c".into()],
            import_id: Some("a".into()),
            bucket: 1,
            offset: 100,
        };
        // Three of a's four buckets (750), less the 100 taken from the current one, and b.
        assert_eq!(backlog_left(&imports, &cursor), 650 + 300);
        cursor.bucket = 4;
        cursor.offset = 0;
        assert_eq!(backlog_left(&imports, &cursor), 300);
        assert_eq!(backlog_left(&[], &BacklogCursor::default()), 0);

        assert!(
            !ends_import(1_200, 1_200, 5_000),
            "a full tick, more to come"
        );
        assert!(
            ends_import(1_200, 1_200, 1_000),
            "the next tick would run out"
        );
        assert!(ends_import(700, 1_200, 0), "this tick ran out");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let delays: Vec<u32> = (1..=10).map(|n| backoff_secs(n, false)).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff_secs(0, false), 2);
        assert_eq!(backoff_secs(u32::MAX, false), 300);
    }

    #[test]
    fn tail_pages_back_off_from_one_second() {
        let delays: Vec<u32> = (1..=10).map(|n| backoff_secs(n, true)).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(
            retry_schedule(None, "clerk_unavailable", 0, 0, true),
            (1_000, 1)
        );
        assert_eq!(retry_schedule(None, "timeout", 2, 0, true), (4_000, 3));
        assert_eq!(
            retry_schedule(Some(7), "clerk_unavailable", 0, 0, true),
            (7_000, 1),
            "Retry-After is honoured when longer"
        );
        assert_eq!(
            retry_schedule(Some(7), "rate_limited", 3, 1_000, true),
            (8_000, 3),
            "a deferral waits as anywhere"
        );
    }

    #[test]
    fn deferrals_wait_without_growing_the_backoff_and_errors_back_off() {
        assert_eq!(
            retry_schedule(Some(7), "rate_limited", 3, 1_000, false),
            (8_000, 3)
        );
        assert_eq!(
            retry_schedule(None, "admission_deferred", 0, 1_000, false),
            (1_000, 0)
        );
        assert_eq!(
            retry_schedule(None, "clerk_unavailable", 2, 0, false),
            (8_000, 3)
        );
        assert_eq!(
            retry_schedule(Some(60), "clerk_unavailable", 0, 0, false),
            (60_000, 1),
            "Retry-After is honoured when longer"
        );
        assert_eq!(
            retry_schedule(None, "timeout", 40, 0, false),
            (300_000, 41),
            "capped, and never a give-up"
        );
    }
}
