//! Who may spend the Backend API budget next (pure).
//!
//! One budget, `CLERK_RATE_LIMIT`, is shared by every Backend API call the worker makes. The
//! calls that a person is waiting on right now ([`Priority::Interactive`]: handshake payloads,
//! mapping look-ups, sign-in tokens) may use the whole window; the trickle's migrations
//! ([`Priority::Trickle`]) leave a quarter of it to them; the batch (the pacer and the queue
//! consumer) plans with what both left. The counter read here holds the interactive and trickle
//! calls of every isolate, as far as KV has propagated them, plus this isolate's own at once.

use crate::config::RateLimit;
use crate::pacer::CallCounter;

/// Whose call it is, in the order the budget serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A person waits on it: handshake payload, mapping look-up, sign-in token.
    Interactive,
    /// A trickle migration (find, create or link a signed-in NextAuth user).
    Trickle,
}

/// Share of the window the trickle may use, in percent; the rest stays for interactive calls.
pub const TRICKLE_SHARE_PCT: u64 = 75;

/// The budget's admission rule for the priority classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    calls: u32,
    window_ms: u64,
}

impl Share {
    pub fn new(limit: RateLimit) -> Share {
        Share {
            calls: limit.calls,
            window_ms: u64::from(limit.window_secs) * 1000,
        }
    }

    /// How many calls of `priority` one window may hold.
    pub fn ceiling(&self, priority: Priority) -> u32 {
        match priority {
            Priority::Interactive => self.calls,
            Priority::Trickle => (u64::from(self.calls) * TRICKLE_SHARE_PCT / 100).max(1) as u32,
        }
    }

    /// `Ok` when `cost` more calls of `priority` keep the last window (`recent`: interactive
    /// and trickle calls) under that class's ceiling; otherwise the seconds to wait (at least
    /// one, at most the window), for a `Retry-After`.
    pub fn admit(
        &self,
        priority: Priority,
        now_ms: u64,
        recent: &CallCounter,
        cost: u32,
    ) -> Result<(), u32> {
        let from = now_ms.saturating_sub(self.window_ms);
        let used = recent.calls_between(from, now_ms + 1);
        if used.saturating_add(cost) <= self.ceiling(priority) {
            return Ok(());
        }
        // The oldest calls leave the window first: wait until enough of them have.
        let mut excess = used.saturating_add(cost) - self.ceiling(priority);
        let mut at = from;
        while excess > 0 && at <= now_ms {
            let n = recent.calls_between(at, at + 1000);
            excess = excess.saturating_sub(n);
            at += 1000;
        }
        let wait_ms = (at + self.window_ms).saturating_sub(now_ms);
        Err(wait_ms
            .div_ceil(1000)
            .clamp(1, self.window_ms.div_ceil(1000).max(1)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(calls: u32, window_secs: u32) -> Share {
        Share::new(RateLimit { calls, window_secs })
    }

    fn counter(calls: &[(u64, u32)]) -> CallCounter {
        let mut c = CallCounter::new();
        for &(at, n) in calls {
            c.record(at, n);
        }
        c
    }

    #[test]
    fn interactive_calls_may_use_the_whole_window_and_the_trickle_three_quarters() {
        let s = share(100, 10);
        let now = 1_000_000;
        let used = counter(&[(now - 5_000, 75)]);
        assert_eq!(s.admit(Priority::Trickle, now, &used, 1), Err(6));
        assert_eq!(s.admit(Priority::Interactive, now, &used, 1), Ok(()));
        assert_eq!(s.admit(Priority::Interactive, now, &used, 25), Ok(()));
        assert!(s.admit(Priority::Interactive, now, &used, 26).is_err());
    }

    #[test]
    fn calls_older_than_the_window_no_longer_count() {
        let s = share(10, 10);
        let now = 1_000_000;
        let old = counter(&[(now - 11_000, 10)]);
        assert_eq!(s.admit(Priority::Interactive, now, &old, 10), Ok(()));
    }

    #[test]
    fn the_wait_is_until_enough_calls_leave_the_window() {
        let s = share(10, 10);
        let now = 1_000_000;
        let used = counter(&[(now - 9_000, 4), (now - 2_000, 6)]);
        // One more call needs the first four to leave: they leave in about a second.
        let wait = s.admit(Priority::Interactive, now, &used, 1).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        // Five more need the later six to leave too.
        let wait = s.admit(Priority::Interactive, now, &used, 5).unwrap_err();
        assert!((8..=10).contains(&wait), "{wait}");
    }

    #[test]
    fn a_tiny_budget_still_admits_one_trickle_call() {
        let s = share(1, 10);
        assert_eq!(s.ceiling(Priority::Trickle), 1);
        assert_eq!(
            s.admit(Priority::Trickle, 50_000, &CallCounter::new(), 1),
            Ok(())
        );
    }
}
