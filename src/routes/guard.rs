//! Admin credentials: which `Authorization` headers present the admin token, and a guard that
//! slows token guessing: after a few wrong tokens from one client address within a minute, that
//! address gets `429` with `Retry-After` without its token even being compared.
//!
//! `Bearer <token>` works on every admin route. HTTP Basic (any user name, the token as the
//! password) works only on the read-only dashboard, so that a browser can open it: a browser
//! re-sends Basic credentials on its own, also on requests another site makes it send, and a
//! form posted from elsewhere must never pause, resume or feed the batch.
//!
//! The guard is per isolate and bounded: a guesser spread over many isolates or addresses is
//! still held back by the token's length (at least 16 characters, compared in constant time);
//! this stops the cheap, fast loop from one place.

use base64::Engine as _;
use std::collections::HashMap;

/// Wrong tokens allowed per address per window before it is refused.
pub const MAX_FAILURES: u32 = 5;
/// Length of the counting window, and of the refusal, in seconds.
pub const WINDOW_SECS: u64 = 60;
/// Addresses remembered at once; the oldest windows are forgotten first.
const MAX_ADDRESSES: usize = 4096;

/// The `WWW-Authenticate` challenge of the dashboard: makes a browser ask for credentials.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"auth-bridge\"";

/// The admin token an `Authorization` header presents, if any: `Bearer <token>`, or, where
/// `basic_allowed`, `Basic base64(<any user>:<token>)`. Schemes are case-insensitive (RFC 9110).
pub fn presented_token(authorization: &str, basic_allowed: bool) -> Option<String> {
    let (scheme, credentials) = authorization.trim().split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.to_owned());
    }
    if !basic_allowed || !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()?;
    let user_pass = String::from_utf8(decoded).ok()?;
    let (_user, password) = user_pass.split_once(':')?;
    Some(password.to_owned())
}

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

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn bearer_works_everywhere_basic_only_where_allowed() {
        let token = "0123456789abcdef-token";
        for allowed in [true, false] {
            assert_eq!(
                presented_token(&format!("Bearer {token}"), allowed).as_deref(),
                Some(token)
            );
        }
        assert_eq!(
            presented_token(&format!("bearer  {token} "), false).as_deref(),
            Some(token)
        );
        let header = basic(&format!("anyone:{token}"));
        assert_eq!(presented_token(&header, true).as_deref(), Some(token));
        assert_eq!(presented_token(&header, false), None, "not on API routes");
        // The user name is free; the password is everything after the first colon.
        assert_eq!(
            presented_token(&basic(":a:b"), true).as_deref(),
            Some("a:b")
        );
        assert_eq!(
            presented_token(&basic(token), true),
            None,
            "no colon: no password"
        );
        assert_eq!(presented_token("Basic !!!not-base64", true), None);
        assert_eq!(presented_token("Digest abc", true), None);
        assert_eq!(presented_token(token, true), None, "no scheme");
        assert_eq!(presented_token("", true), None);
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
