//! The per-isolate gate in front of Clerk (pure): after a `429` (or a `5xx` with
//! `Retry-After`) no request calls Clerk until the time Clerk asked for has passed.

use std::cell::Cell;

use super::DEFAULT_RATE_LIMIT_RETRY_SECS;
use crate::migration::Outcome;

/// Why the gate is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateReason {
    RateLimited,
    Unavailable,
}

/// "Do not call Clerk before": closed by a `429` (or a `5xx` with `Retry-After`) for as long
/// as Clerk asked. Per isolate: each isolate learns of Clerk's limit from its own calls.
#[derive(Debug, Default)]
pub struct CallGate {
    until_ms: Cell<u64>,
    reason: Cell<Option<GateReason>>,
}

impl CallGate {
    pub const fn new() -> CallGate {
        CallGate {
            until_ms: Cell::new(0),
            reason: Cell::new(None),
        }
    }

    /// Closes the gate for `secs` from `now_ms`; a gate only ever extends.
    pub fn hold(&self, now_ms: u64, secs: u32, reason: GateReason) {
        let until = now_ms + u64::from(secs) * 1000;
        if until > self.until_ms.get() {
            self.until_ms.set(until);
            self.reason.set(Some(reason));
        }
    }

    /// While closed: the whole seconds left (at least 1) and why.
    pub fn closed_for(&self, now_ms: u64) -> Option<(u32, GateReason)> {
        let until = self.until_ms.get();
        if now_ms >= until {
            return None;
        }
        let secs = (until - now_ms).div_ceil(1000).min(u64::from(u32::MAX)) as u32;
        Some((secs, self.reason.get().unwrap_or(GateReason::RateLimited)))
    }

    /// Closes the gate if `outcome` is Clerk asking to wait.
    pub fn note(&self, now_ms: u64, outcome: &Outcome) {
        if let Outcome::Retry { after_secs, code } = outcome {
            match (code.as_str(), after_secs) {
                ("rate_limited", after) => self.hold(
                    now_ms,
                    after.unwrap_or(DEFAULT_RATE_LIMIT_RETRY_SECS),
                    GateReason::RateLimited,
                ),
                ("clerk_unavailable", Some(after)) => {
                    self.hold(now_ms, *after, GateReason::Unavailable)
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_holds_for_retry_after_and_only_extends() {
        let gate = CallGate::new();
        assert_eq!(gate.closed_for(0), None);
        gate.note(
            1_000,
            &Outcome::Retry {
                after_secs: Some(7),
                code: "rate_limited".into(),
            },
        );
        assert_eq!(gate.closed_for(1_000), Some((7, GateReason::RateLimited)));
        assert_eq!(gate.closed_for(7_500), Some((1, GateReason::RateLimited)));
        gate.hold(2_000, 1, GateReason::Unavailable);
        assert_eq!(gate.closed_for(2_000), Some((6, GateReason::RateLimited)));
        assert_eq!(gate.closed_for(8_000), None);
        // A 5xx without Retry-After does not close it; other retries neither.
        gate.note(
            9_000,
            &Outcome::Retry {
                after_secs: None,
                code: "clerk_unavailable".into(),
            },
        );
        gate.note(
            9_000,
            &Outcome::Retry {
                after_secs: Some(2),
                code: "identifier_exists_not_found".into(),
            },
        );
        assert_eq!(gate.closed_for(9_000), None);
        gate.note(
            9_000,
            &Outcome::Retry {
                after_secs: Some(3),
                code: "clerk_unavailable".into(),
            },
        );
        assert_eq!(gate.closed_for(9_000), Some((3, GateReason::Unavailable)));
    }
}
