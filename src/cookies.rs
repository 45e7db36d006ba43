//! `Cookie` request header parsing and reassembly of chunked session cookies.
//!
//! Parsing follows the `cookie` package that next-auth v4 (through Next.js) and @auth/core use:
//! pairs are separated by `;`, a segment without `=` is skipped, spaces and tabs around names and
//! values are trimmed, and the first occurrence of a name wins (browsers send the cookie with the
//! most specific path first). Values are kept raw, without percent-decoding: the session values
//! next-auth writes (base64url JWE, hex or UUID database tokens) never contain `%`.
//!
//! Chunk reassembly mirrors next-auth's `SessionStore`: every non-empty cookie whose name starts
//! with the session cookie name is a piece, and the pieces are joined in numeric order of their
//! `.<n>` suffix. Where `SessionStore` would join pieces into a value that cannot be a token (a
//! plain cookie beside chunks, a gap in the indices, a stray name sharing the prefix) we refuse
//! with a [`ChunkError`] instead, so the result is the same: no session.

use std::borrow::Cow;
use std::fmt;

/// Pairs beyond this count are ignored: no browser sends that many, and parsing stays bounded.
pub const MAX_COOKIE_PAIRS: usize = 200;
/// Values longer than this are dropped (browsers cap a cookie at 4 KiB).
pub const MAX_COOKIE_VALUE_LEN: usize = 16 * 1024;
/// Highest number of chunks accepted for one session cookie.
pub const MAX_CHUNKS: usize = 32;
/// Upper bound of a reassembled session value.
pub const MAX_JOINED_LEN: usize = 64 * 1024;

/// The cookies of one request, borrowed from the `Cookie` header, in header order.
#[derive(Clone, Default)]
pub struct Cookies<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    truncated: bool,
}

// Cookie values are credentials: Debug shows names only.
impl fmt::Debug for Cookies<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cookies")
            .field(
                "names",
                &self.pairs.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// Why a chunked session cookie could not be reassembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// `<name>` and `<name>.<n>` are both present.
    PlainAndChunks,
    /// The chunk indices are not exactly `0..n`; carries the first missing index.
    MissingChunk(usize),
    /// A cookie starts with the session name but is neither `<name>` nor `<name>.<n>`.
    UnexpectedName,
    /// More than [`MAX_CHUNKS`] chunks, or a chunk index at or beyond it.
    TooManyChunks,
    /// The joined value would exceed [`MAX_JOINED_LEN`].
    TooLarge,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::PlainAndChunks => {
                f.write_str("session cookie present both whole and chunked")
            }
            ChunkError::MissingChunk(i) => write!(f, "session cookie chunk {i} is missing"),
            ChunkError::UnexpectedName => {
                f.write_str("unexpected cookie sharing the session cookie prefix")
            }
            ChunkError::TooManyChunks => f.write_str("too many session cookie chunks"),
            ChunkError::TooLarge => f.write_str("session cookie too large"),
        }
    }
}

impl std::error::Error for ChunkError {}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Splits one `;`-separated segment into a trimmed name and value; `None` without `=`.
pub(crate) fn split_pair(segment: &str) -> Option<(&str, &str)> {
    let (name, value) = segment.split_once('=')?;
    Some((trim_ows(name), trim_ows(value)))
}

/// Every name and value of a `Cookie` header value, in order, as [`Cookies::parse`] reads them
/// (duplicates, oversized values and pairs past its limit included), without collecting them.
pub fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(split_pair)
}

impl<'a> Cookies<'a> {
    /// Parses a `Cookie` header value. Never fails: malformed segments are skipped.
    pub fn parse(header: &'a str) -> Self {
        let mut pairs = Vec::new();
        let mut truncated = false;
        for (name, value) in self::pairs(header) {
            if pairs.len() == MAX_COOKIE_PAIRS {
                truncated = true;
                break;
            }
            // An oversized value still occupies its name (first occurrence wins), but is unusable.
            let value = if value.len() > MAX_COOKIE_VALUE_LEN {
                ""
            } else {
                value
            };
            pairs.push((name, value));
        }
        Cookies { pairs, truncated }
    }

    /// The value of the first cookie called `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// All pairs in header order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Whether pairs were ignored because the header held more than [`MAX_COOKIE_PAIRS`].
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Reassembles the session cookie `base` from `<base>` or `<base>.0 … <base>.<n>`.
    ///
    /// `Ok(None)` when no non-empty piece is present. A single piece is returned borrowed.
    pub fn session_value(&self, base: &str) -> Result<Option<Cow<'a, str>>, ChunkError> {
        let mut plain: Option<&'a str> = None;
        let mut chunks: Vec<(usize, &'a str)> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for &(name, value) in &self.pairs {
            let Some(suffix) = name.strip_prefix(base) else {
                continue;
            };
            // First occurrence wins, even when it is empty (as in the `cookie` package).
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            // SessionStore skips empty values; they are what a deleted chunk looks like.
            if value.is_empty() {
                continue;
            }
            if suffix.is_empty() {
                plain = Some(value);
                continue;
            }
            let index = chunk_index(suffix).ok_or(ChunkError::UnexpectedName)?;
            if index >= MAX_CHUNKS {
                return Err(ChunkError::TooManyChunks);
            }
            chunks.push((index, value));
        }
        match (plain, chunks.is_empty()) {
            (None, true) => return Ok(None),
            (Some(value), true) => return Ok(Some(Cow::Borrowed(value))),
            (Some(_), false) => return Err(ChunkError::PlainAndChunks),
            (None, false) => {}
        }
        chunks.sort_unstable_by_key(|(index, _)| *index);
        // Names are distinct and canonical, so sorted indices are 0..n exactly when none is missing.
        if let Some(missing) = chunks.iter().enumerate().find(|(i, (index, _))| i != index) {
            return Err(ChunkError::MissingChunk(missing.0));
        }
        let total: usize = chunks.iter().map(|(_, v)| v.len()).sum();
        if total > MAX_JOINED_LEN {
            return Err(ChunkError::TooLarge);
        }
        if let [(_, only)] = chunks.as_slice() {
            return Ok(Some(Cow::Borrowed(only)));
        }
        let mut joined = String::with_capacity(total);
        for (_, value) in &chunks {
            joined.push_str(value);
        }
        Ok(Some(Cow::Owned(joined)))
    }
}

/// Parses `.<n>` with `n` in canonical decimal form (no sign, no leading zero but `0`).
fn chunk_index(suffix: &str) -> Option<usize> {
    let digits = suffix.strip_prefix('.')?;
    if digits.is_empty()
        || digits.len() > 3
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// Rewrites a `Cookie` header without the cookies whose names start with any of `bases`
/// (the session cookies and their chunks, as `SessionStore` would read them).
pub fn without_session_cookies(header: &str, bases: &[&str]) -> String {
    let mut out = String::with_capacity(header.len());
    for segment in header.split(';') {
        let segment = trim_ows(segment);
        if segment.is_empty() {
            continue;
        }
        if let Some((name, _)) = split_pair(segment) {
            if bases.iter().any(|base| name.starts_with(base)) {
                continue;
            }
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(segment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "authjs.session-token";

    #[test]
    fn parses_pairs_with_whitespace_and_skips_segments_without_equals() {
        let c = Cookies::parse(" a=1;b = 2 ;\tflag; c=x=y;;d=");
        assert_eq!(c.get("a"), Some("1"));
        assert_eq!(c.get("b"), Some("2"));
        assert_eq!(c.get("flag"), None);
        assert_eq!(c.get("c"), Some("x=y"));
        assert_eq!(c.get("d"), Some(""));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn first_occurrence_wins() {
        let c = Cookies::parse("a=first; a=second");
        assert_eq!(c.get("a"), Some("first"));
        assert_eq!(c.iter().count(), 2);
    }

    #[test]
    fn pair_count_is_bounded() {
        let header: String = (0..250).map(|i| format!("k{i}=v; ")).collect();
        let c = Cookies::parse(&header);
        assert_eq!(c.len(), MAX_COOKIE_PAIRS);
        assert!(c.is_truncated());
        assert_eq!(c.get("k199"), Some("v"));
        assert_eq!(c.get("k200"), None);
    }

    #[test]
    fn oversized_value_is_dropped_but_keeps_its_name() {
        let big = "x".repeat(MAX_COOKIE_VALUE_LEN + 1);
        let header = format!("a={big}; a=small; b=ok");
        let c = Cookies::parse(&header);
        assert_eq!(c.get("a"), Some(""));
        assert_eq!(c.get("b"), Some("ok"));
        assert_eq!(c.session_value("a"), Ok(None));
    }

    #[test]
    fn plain_session_value_is_borrowed() {
        let c = Cookies::parse("other=1; authjs.session-token=abc");
        assert!(matches!(
            c.session_value(BASE),
            Ok(Some(Cow::Borrowed("abc")))
        ));
        assert_eq!(Cookies::parse("x=1").session_value(BASE), Ok(None));
    }

    #[test]
    fn chunks_join_in_numeric_order() {
        let c = Cookies::parse(
            "authjs.session-token.10=K; authjs.session-token.2=C; authjs.session-token.0=A; \
             authjs.session-token.1=B; authjs.session-token.3=D; authjs.session-token.4=E; \
             authjs.session-token.5=F; authjs.session-token.6=G; authjs.session-token.7=H; \
             authjs.session-token.8=I; authjs.session-token.9=J",
        );
        assert_eq!(
            c.session_value(BASE).unwrap().as_deref(),
            Some("ABCDEFGHIJK")
        );
    }

    #[test]
    fn empty_pieces_are_ignored() {
        let c = Cookies::parse(
            "authjs.session-token=; authjs.session-token.0=A; authjs.session-token.1=B",
        );
        assert_eq!(c.session_value(BASE).unwrap().as_deref(), Some("AB"));
        let c = Cookies::parse("authjs.session-token.0=; authjs.session-token=P");
        assert_eq!(c.session_value(BASE).unwrap().as_deref(), Some("P"));
    }

    #[test]
    fn duplicate_chunk_uses_first_occurrence() {
        let c = Cookies::parse(
            "authjs.session-token.0=A; authjs.session-token.1=B; authjs.session-token.0=Z",
        );
        assert_eq!(c.session_value(BASE).unwrap().as_deref(), Some("AB"));
    }

    #[test]
    fn plain_beside_chunks_is_refused() {
        let c = Cookies::parse("authjs.session-token=P; authjs.session-token.0=A");
        assert_eq!(c.session_value(BASE), Err(ChunkError::PlainAndChunks));
    }

    #[test]
    fn gaps_are_refused() {
        let c = Cookies::parse("authjs.session-token.0=A; authjs.session-token.2=C");
        assert_eq!(c.session_value(BASE), Err(ChunkError::MissingChunk(1)));
        let c = Cookies::parse("authjs.session-token.1=B");
        assert_eq!(c.session_value(BASE), Err(ChunkError::MissingChunk(0)));
    }

    #[test]
    fn odd_names_sharing_the_prefix_are_refused() {
        for name in [
            "authjs.session-token.01",
            "authjs.session-token.x",
            "authjs.session-tokenX",
            "authjs.session-token.",
        ] {
            let header = format!("authjs.session-token.0=A; {name}=B");
            assert_eq!(
                Cookies::parse(&header).session_value(BASE),
                Err(ChunkError::UnexpectedName),
                "{name}"
            );
        }
        // The `__Secure-` variant does not share the prefix.
        let c = Cookies::parse("__Secure-authjs.session-token=S; authjs.session-token=P");
        assert_eq!(c.session_value(BASE).unwrap().as_deref(), Some("P"));
    }

    #[test]
    fn chunk_count_and_joined_size_are_bounded() {
        let c = Cookies::parse("authjs.session-token.32=A");
        assert_eq!(c.session_value(BASE), Err(ChunkError::TooManyChunks));
        let piece = "x".repeat(MAX_COOKIE_VALUE_LEN);
        let header: String = (0..5).map(|i| format!("{BASE}.{i}={piece}; ")).collect();
        assert_eq!(
            Cookies::parse(&header).session_value(BASE),
            Err(ChunkError::TooLarge)
        );
    }

    #[test]
    fn removes_session_cookies_from_header() {
        let header = "a=1; authjs.session-token.0=A;authjs.session-token.1=B; b=2; flag; next-auth.session-token=V";
        assert_eq!(
            without_session_cookies(header, &[BASE, "next-auth.session-token"]),
            "a=1; b=2; flag"
        );
    }

    #[test]
    fn debug_does_not_show_values() {
        let shown = format!("{:?}", Cookies::parse("authjs.session-token=SECRETVALUE"));
        assert!(shown.contains("authjs.session-token"));
        assert!(!shown.contains("SECRETVALUE"));
    }
}
