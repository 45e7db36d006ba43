//! Slows admin-token guessing: after a few wrong tokens from one client address within a minute,
//! that address gets `429` with `Retry-After` without its token even being compared.
//!
//! Per isolate and bounded: a guesser spread over many isolates or addresses is still held back by
//! the token's length (at least 16 characters, compared in constant time); this stops the cheap,
//! fast loop from one place.

use std::collections::HashMap;

/// Wrong tokens allowed per address per window before it is refused.
pub const MAX_FAILURES: u32 = 5;
/// Length of the counting window, and of the refusal, in seconds.
pub const WINDOW_SECS: u64 = 60;
/// Addresses remembered at once; the oldest windows are forgotten first.
const MAX_ADDRESSES: usize = 4096;

#[derive(Default)]
pub struct FailureGuard {
    /// address → (window start, failures in it)
    failures: HashMap<String, (u64, u32)>,
}

impl FailureGuard {
    /// `Some(retry_after_secs)` when `address` must be refused now.
    pub fn refused(&self, address: &str, now: u64) -> Option<u64> {
        let (start, count) = *self.failures.get(address)?;
        let ends = start + WINDOW_SECS;
        (count >= MAX_FAILURES && now < ends).then(|| (ends - now).max(1))
    }

    pub fn record_failure(&mut self, address: &str, now: u64) {
        if self.failures.len() >= MAX_ADDRESSES && !self.failures.contains_key(address) {
            self.failures
                .retain(|_, (start, _)| now < *start + WINDOW_SECS);
            if self.failures.len() >= MAX_ADDRESSES {
                if let Some(oldest) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(a, _)| a.clone())
                {
                    self.failures.remove(&oldest);
                }
            }
        }
        let entry = self.failures.entry(address.to_string()).or_insert((now, 0));
        if now >= entry.0 + WINDOW_SECS {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    pub fn record_success(&mut self, address: &str) {
        self.failures.remove(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_failures_until_the_window_ends() {
        let mut guard = FailureGuard::default();
        for i in 0..MAX_FAILURES {
            assert_eq!(guard.refused("1.2.3.4", 100 + u64::from(i)), None);
            guard.record_failure("1.2.3.4", 100 + u64::from(i));
        }
        assert_eq!(guard.refused("1.2.3.4", 110), Some(50));
        assert_eq!(
            guard.refused("5.6.7.8", 110),
            None,
            "other addresses are not affected"
        );
        assert_eq!(
            guard.refused("1.2.3.4", 160),
            None,
            "the refusal ends with the window"
        );
        guard.record_failure("1.2.3.4", 160);
        assert_eq!(
            guard.refused("1.2.3.4", 161),
            None,
            "a new window starts from zero"
        );
    }

    #[test]
    fn success_clears_the_count() {
        let mut guard = FailureGuard::default();
        for _ in 0..MAX_FAILURES - 1 {
            guard.record_failure("a", 0);
        }
        guard.record_success("a");
        guard.record_failure("a", 1);
        assert_eq!(guard.refused("a", 2), None);
    }

    #[test]
    fn bounded_memory() {
        let mut guard = FailureGuard::default();
        for i in 0..(MAX_ADDRESSES as u64 + 100) {
            guard.record_failure(&format!("10.0.{}.{}", i / 256, i % 256), 0);
        }
        assert!(guard.failures.len() <= MAX_ADDRESSES);
    }
}
