//! Coalesces concurrent migrations of one legacy id within an isolate (pure): a burst of tabs
//! of one user makes one migration, whose outcome the other requests read.

use std::collections::HashMap;

use crate::migration::Outcome;

/// What a request should do about the migration of one legacy id in this isolate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nobody is migrating it: run the migration.
    Lead,
    /// Another request is: look again shortly.
    Wait,
    /// Another request just finished: use its outcome.
    Use(Outcome),
}

#[derive(Debug, Clone)]
enum Slot {
    Running { since_ms: u64 },
    Done { outcome: Outcome, at_ms: u64 },
}

/// Coalesces concurrent migrations of one legacy id within an isolate (a burst of tabs).
///
/// Workers forbid awaiting another request's I/O, so followers do not share the leader's
/// future: they poll this plain table on their own timers and read the leader's outcome.
/// A leader that vanished (its request cancelled) is replaced after [`LEAD_TIMEOUT_MS`].
#[derive(Debug, Default)]
pub struct Coalescer {
    slots: HashMap<String, Slot>,
}

/// A follower waits at most this long before migrating on its own (the Migrator is
/// race-safe; this only bounds a stuck wait).
pub const LEAD_TIMEOUT_MS: u64 = 15_000;
/// How long a finished outcome is handed to late followers; after that the KV mapping answers.
pub const DONE_TTL_MS: u64 = 3_000;

impl Coalescer {
    pub fn new() -> Coalescer {
        Coalescer::default()
    }

    /// The next step for a request about `key` at `now_ms`; `Lead` also claims the slot.
    /// `waiting` says whether this request was already waiting: a failure is handed only to
    /// the requests that waited for that attempt, never to one that arrives after it.
    pub fn step(&mut self, key: &str, now_ms: u64, waiting: bool) -> Step {
        self.slots.retain(|_, slot| match slot {
            Slot::Running { since_ms } => now_ms < since_ms.saturating_add(LEAD_TIMEOUT_MS),
            Slot::Done { at_ms, .. } => now_ms < at_ms.saturating_add(DONE_TTL_MS),
        });
        match self.slots.get(key) {
            Some(Slot::Running { .. }) => Step::Wait,
            Some(Slot::Done { outcome, .. }) if waiting || outcome.clerk_id().is_some() => {
                Step::Use(outcome.clone())
            }
            _ => {
                self.slots
                    .insert(key.to_owned(), Slot::Running { since_ms: now_ms });
                Step::Lead
            }
        }
    }

    /// The leader's outcome, for the followers.
    pub fn finish(&mut self, key: &str, outcome: &Outcome, now_ms: u64) {
        self.slots.insert(
            key.to_owned(),
            Slot::Done {
                outcome: outcome.clone(),
                at_ms: now_ms,
            },
        );
    }

    /// A leader that stopped without an outcome frees the slot.
    pub fn abandon(&mut self, key: &str) {
        if matches!(self.slots.get(key), Some(Slot::Running { .. })) {
            self.slots.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescer_hands_the_leaders_outcome_to_followers() {
        let mut c = Coalescer::new();
        assert_eq!(c.step("a", 0, false), Step::Lead);
        assert_eq!(c.step("a", 10, false), Step::Wait);
        assert_eq!(
            c.step("b", 10, false),
            Step::Lead,
            "other users are independent"
        );
        let done = Outcome::Created {
            clerk_id: "user_1".into(),
        };
        c.finish("a", &done, 100);
        assert_eq!(c.step("a", 150, true), Step::Use(done.clone()));
        assert_eq!(c.step("a", 160, false), Step::Use(done.clone()));
        assert_eq!(
            c.step("a", 100 + DONE_TTL_MS, false),
            Step::Lead,
            "stale outcomes expire"
        );
        c.abandon("a");
        assert_eq!(c.step("a", 100 + DONE_TTL_MS + 1, false), Step::Lead);
        // A leader that never finishes is replaced.
        assert_eq!(
            c.step("a", 200 + DONE_TTL_MS + LEAD_TIMEOUT_MS, true),
            Step::Lead
        );
        // Finished entries do not accumulate.
        let mut c = Coalescer::new();
        for i in 0..100 {
            let key = format!("k{i}");
            assert_eq!(c.step(&key, i, false), Step::Lead);
            c.finish(&key, &done, i);
        }
        c.step("x", 100 + DONE_TTL_MS, false);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_failure_goes_to_the_waiters_not_to_later_arrivals() {
        let mut c = Coalescer::new();
        assert_eq!(c.step("a", 0, false), Step::Lead);
        assert_eq!(c.step("a", 5, false), Step::Wait);
        let throttled = Outcome::Retry {
            after_secs: Some(2),
            code: "rate_limited".into(),
        };
        c.finish("a", &throttled, 50);
        assert_eq!(c.step("a", 60, true), Step::Use(throttled));
        assert_eq!(
            c.step("a", 70, false),
            Step::Lead,
            "a later request tries again"
        );
    }
}
