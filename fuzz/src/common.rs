//! Small helpers shared by the harnesses.

use std::borrow::Cow;

/// The fuzz bytes as text: as is when UTF-8, lossily otherwise (parsers take `&str`).
pub fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Splits at the first `\n`: (before, Some(after)), or (all, None) without one.
pub fn split_line(s: &str) -> (&str, Option<&str>) {
    match s.split_once('\n') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// Shortest input for which "the message never contains it" is asserted: shorter strings can
/// legitimately occur inside fixed reason texts ("token", "kid", digits).
pub const MIN_SECRET_LEN: usize = 16;

/// Whether `secret` could only appear in a message by being copied there: long enough, without
/// whitespace, and with a `.` or `-` (every token has one; no fixed reason text or Debug
/// variant name is a run of 16 such characters).
pub fn is_distinctive(secret: &str) -> bool {
    secret.len() >= MIN_SECRET_LEN
        && !secret.contains(char::is_whitespace)
        && secret.contains(['.', '-'])
}

/// Asserts that `shown` (an error's Display or a Debug) does not reveal `secret`.
pub fn assert_not_revealed(what: &str, shown: &str, secret: &str) {
    if is_distinctive(secret) {
        assert!(
            !shown.contains(secret),
            "{what} reveals its input: {shown:?}"
        );
    }
}

/// Secrets of `tests/fixtures/nextauth/tokens.json` (test-only values).
pub const NEXTAUTH_SECRETS: [&str; 2] = [
    "fixture-secret-current-3f9a2c71d4",
    "fixture-secret-previous-8b1e55a0c2",
];
/// `now` of the fixtures: the real tokens are valid then.
pub const NEXTAUTH_NOW: u64 = 1_795_670_445;

pub fn nextauth_secrets() -> Vec<String> {
    NEXTAUTH_SECRETS.iter().map(|s| s.to_string()).collect()
}
