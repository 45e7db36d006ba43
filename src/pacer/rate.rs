//! `CLERK_RATE_LIMIT` as the pacer reads it: calls per window, in milliseconds.

use super::SLOT_MS;
use serde::{Deserialize, Serialize};

/// `CLERK_RATE_LIMIT`: `calls` per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub calls: u32,
    pub window_ms: u64,
}

impl Default for RateLimit {
    /// Clerk development instances: 100 requests / 10 s.
    fn default() -> Self {
        Self {
            calls: 100,
            window_ms: 10_000,
        }
    }
}

impl RateLimit {
    /// Parses `"1000/10s"`, `"100/10s"`, `"20/1s"`, `"600/1m"`, `"36000/1h"`, `"100/s"`.
    /// Windows must be whole seconds (plans are made in one-second slots).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("CLERK_RATE_LIMIT {s:?} is not like \"100/10s\"");
        let (calls, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let calls: u32 = calls.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let split = window.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = window.split_at(split);
        let n: u64 = if n.is_empty() {
            1
        } else {
            n.parse().map_err(|_| bad())?
        };
        let unit_ms = match unit {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        if calls == 0 || n == 0 || n > 24 {
            return Err(bad());
        }
        Ok(Self {
            calls,
            window_ms: n * unit_ms,
        })
    }

    pub(super) fn window_slots(&self) -> u64 {
        self.window_ms.div_ceil(SLOT_MS).max(1)
    }
}

/// `CLERK_RATE_LIMIT` as the configuration parses it; the pacer works in milliseconds.
impl From<crate::config::RateLimit> for RateLimit {
    fn from(limit: crate::config::RateLimit) -> Self {
        Self {
            calls: limit.calls,
            window_ms: u64::from(limit.window_secs) * 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rate_limits() {
        assert_eq!(
            RateLimit::parse("1000/10s").unwrap(),
            RateLimit {
                calls: 1000,
                window_ms: 10_000
            }
        );
        assert_eq!(RateLimit::parse("600/1m").unwrap().window_ms, 60_000);
        assert_eq!(RateLimit::parse(" 20/1s ").unwrap().calls, 20);
        assert_eq!(RateLimit::parse("100/s").unwrap().window_ms, 1000);
        for bad in ["", "100", "100/10", "0/10s", "x/10s", "100/10ms", "100/0s"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn converts_the_configured_rate_limit() {
        let configured = crate::config::RateLimit::parse("600/1m").unwrap();
        assert_eq!(
            RateLimit::from(configured),
            RateLimit {
                calls: 600,
                window_ms: 60_000
            }
        );
    }
}
