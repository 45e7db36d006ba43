//! `cookies`: `Cookies::parse`, `session_value` over several base names, and
//! `without_session_cookies`.

use auth_bridge::cookies::{
    without_session_cookies, ChunkError, Cookies, MAX_CHUNKS, MAX_COOKIE_PAIRS,
    MAX_COOKIE_VALUE_LEN, MAX_JOINED_LEN,
};

use crate::common::text;

/// Session bases: the NextAuth / Auth.js defaults, Clerk's, and short ones that collide often.
pub const BASES: &[&str] = &[
    "__Secure-authjs.session-token",
    "authjs.session-token",
    "__Secure-next-auth.session-token",
    "next-auth.session-token",
    "__session",
    "__client_uat",
    "a",
    "s.0",
];

pub fn run(data: &[u8]) {
    let header = text(data);
    let header = header.as_ref();
    let cookies = Cookies::parse(header);

    assert!(cookies.len() <= MAX_COOKIE_PAIRS);
    assert_eq!(cookies.len(), cookies.iter().count());
    assert_eq!(cookies.is_empty(), cookies.iter().next().is_none());
    if cookies.is_truncated() {
        assert_eq!(cookies.len(), MAX_COOKIE_PAIRS);
    }
    for (name, value) in cookies.iter() {
        assert!(value.len() <= MAX_COOKIE_VALUE_LEN);
        assert!(!name.contains(';') && !value.contains(';'));
        // The first occurrence wins.
        assert!(cookies.get(name).is_some());
    }
    // Debug shows names only: exactly the names and the truncation flag, never a value.
    let names: Vec<&str> = cookies.iter().map(|(n, _)| n).collect();
    assert_eq!(
        format!("{cookies:?}"),
        format!(
            "Cookies {{ names: {names:?}, truncated: {} }}",
            cookies.is_truncated()
        ),
        "Debug shows more than the cookie names"
    );

    for base in BASES {
        match cookies.session_value(base) {
            Ok(None) => {}
            Ok(Some(value)) => {
                assert!(!value.is_empty());
                assert!(value.len() <= MAX_JOINED_LEN);
                // Every byte of the result comes from the values of cookies named like the base.
                let pieces: usize = cookies
                    .iter()
                    .filter(|(n, _)| n.starts_with(base))
                    .map(|(_, v)| v.len())
                    .sum();
                assert!(value.len() <= pieces);
            }
            Err(ChunkError::MissingChunk(i)) => assert!(i < MAX_CHUNKS),
            Err(e) => {
                // Display is a fixed reason, never cookie content.
                let shown = e.to_string();
                assert!(!shown.is_empty());
            }
        }
    }

    let stripped = without_session_cookies(header, BASES);
    assert!(stripped.len() <= header.len() + header.matches(';').count());
    let again = Cookies::parse(&stripped);
    for base in BASES {
        assert!(
            again.iter().all(|(n, _)| !n.starts_with(base)),
            "without_session_cookies kept a cookie named like {base}"
        );
        assert_eq!(again.session_value(base), Ok(None));
    }
}
