//! Per-isolate memory of what a Clerk session token's bytes decode to, so a token sent again
//! (every request of its ~60 s life) is base64- and JSON-decoded once per isolate instead of
//! twice per request (once for Clerk's suffixed-cookie choice, once to verify), and its RSA
//! signature checked once rather than per request.
//!
//! Invariants (tested below):
//! - Decoding is remembered: the unverified payload as Clerk's `decodeJwt` reads it, and the
//!   outcome of [`UntrustedClerkToken::parse`] (header rules, shape). Both are pure functions of
//!   the token's bytes, so a remembered answer is exactly what decoding again would give,
//!   whatever the time, the other cookies or the keys.
//! - That the signature held is remembered for [`SIGNATURE_MEMORY_SECS`] from its check, on the
//!   entry of those exact bytes (so it can vouch for no other token). The claims and every time
//!   check (`exp`/`nbf`/`iat` with skew) and the request-state rules (`__client_uat`, dev
//!   browser) still run on every request.
//! - An entry is found only by the exact token, compared in full (no hash, no prefix).
//! - Bounded: at most [`CAPACITY`] tokens of at most [`MAX_TOKEN_LEN`] bytes; a longer token is
//!   decoded (and refused) without being remembered. The oldest entry makes room.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use super::clerk::token::decode_claims;
use super::clerk::{ClerkClaims, ClerkTokenError, UntrustedClerkToken, MAX_TOKEN_LEN};
use super::memo::same_bytes;

/// Tokens remembered per isolate: the sessions an isolate serves within a token's minute.
pub const CAPACITY: usize = 64;
/// How long a signature that held is remembered: a Clerk session token's 60 s life plus skew.
pub const SIGNATURE_MEMORY_SECS: u64 = 65;

/// One token's decodings, each computed at most once, on first use.
pub struct DecodedToken {
    /// Shared with the parsed token and the verified-signature memory: one copy of the text.
    token: Rc<str>,
    peeked: OnceCell<Option<ClerkClaims>>,
    parsed: OnceCell<Result<UntrustedClerkToken, ClerkTokenError>>,
    /// First second at which the signature must be checked again (0: never checked).
    signature_held_until: Cell<u64>,
}

impl DecodedToken {
    fn new(token: &str) -> Self {
        Self {
            token: token.into(),
            peeked: OnceCell::new(),
            parsed: OnceCell::new(),
            signature_held_until: Cell::new(0),
        }
    }

    /// Whether this token's signature was found valid less than [`SIGNATURE_MEMORY_SECS`] ago.
    pub fn signature_held(&self, now: u64) -> bool {
        now < self.signature_held_until.get()
    }

    /// Records that this token's signature was just found valid.
    pub fn remember_signature_held(&self, now: u64) {
        self.signature_held_until
            .set(now.saturating_add(SIGNATURE_MEMORY_SECS));
    }

    /// The payload decoded WITHOUT verification, as Clerk's `decodeJwt` does; only to choose
    /// between cookie sets, never to trust anything.
    pub fn peeked_claims(&self) -> Option<&ClerkClaims> {
        // A token that parses has exactly these claims (parsing asks more of the token than
        // peeking does: same parts, same decodings, a header object): decoded once, not twice.
        if let Ok(parsed) = self.parsed() {
            return Some(parsed.unverified_claims());
        }
        self.peeked
            .get_or_init(|| peek_claims(&self.token))
            .as_ref()
    }

    /// [`UntrustedClerkToken::parse`] of the token.
    pub fn parsed(&self) -> &Result<UntrustedClerkToken, ClerkTokenError> {
        self.parsed
            .get_or_init(|| UntrustedClerkToken::parse_shared(Rc::clone(&self.token)))
    }
}

fn peek_claims(token: &str) -> Option<ClerkClaims> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    crate::json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    URL_SAFE_NO_PAD.decode(signature).ok()?;
    decode_claims(payload).ok()
}

#[derive(Default)]
struct Memory {
    entries: Vec<Rc<DecodedToken>>,
    /// Where the next new token goes once full (oldest first).
    next: usize,
}

thread_local! {
    static MEMORY: RefCell<Memory> = RefCell::new(Memory::default());
}

/// The decodings of `token`, remembered per isolate (see the module invariants).
pub fn decoded(token: &str) -> Rc<DecodedToken> {
    if token.len() > MAX_TOKEN_LEN {
        return Rc::new(DecodedToken::new(token));
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        // Compared from the end: remembered tokens share their header and most of the payload.
        let found = memory
            .entries
            .iter()
            .find(|e| same_bytes(e.token.as_bytes(), token.as_bytes()));
        if let Some(found) = found {
            return Rc::clone(found);
        }
        let entry = Rc::new(DecodedToken::new(token));
        if memory.entries.len() < CAPACITY {
            memory.entries.push(Rc::clone(&entry));
        } else {
            let slot = memory.next;
            memory.entries[slot] = Rc::clone(&entry);
            memory.next = (slot + 1) % CAPACITY;
        }
        entry
    })
}

#[cfg(test)]
fn remembered(token: &str) -> bool {
    MEMORY.with(|m| m.borrow().entries.iter().any(|e| *e.token == *token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(payload: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#),
            b64(payload),
            b64("sig")
        )
    }

    #[test]
    fn a_repeated_token_is_decoded_once_and_answers_as_a_fresh_decoding() {
        let t = token(r#"{"sub":"user_1","iss":"https://a.clerk.accounts.dev","iat":1}"#);
        let first = decoded(&t);
        let again = decoded(&t);
        assert!(Rc::ptr_eq(&first, &again), "the same entry");
        assert_eq!(first.peeked_claims(), peek_claims(&t).as_ref());
        assert_eq!(
            again.parsed().as_ref().map(|u| u.kid().to_owned()).ok(),
            UntrustedClerkToken::parse(&t)
                .map(|u| u.kid().to_owned())
                .ok()
        );
    }

    #[test]
    fn a_token_refused_by_the_header_rules_is_still_peeked() {
        // Clerk's cookie choice reads the payload of any well-formed JWS, whatever its `alg`.
        let t = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(r#"{"iss":"https://a.clerk.accounts.dev","iat":7}"#),
            b64("sig")
        );
        let d = decoded(&t);
        assert!(matches!(
            d.parsed(),
            Err(ClerkTokenError::DisallowedAlgorithm)
        ));
        assert_eq!(d.peeked_claims(), peek_claims(&t).as_ref());
        assert_eq!(d.peeked_claims().unwrap().get("iat").unwrap(), 7);
    }

    #[test]
    fn a_different_token_never_hits_even_with_a_shared_prefix() {
        let a = token(r#"{"sub":"user_a"}"#);
        let mut b = a.clone();
        b.push('A'); // same bytes plus one: a prefix match would be wrong
        let da = decoded(&a);
        let db = decoded(&b);
        assert!(!Rc::ptr_eq(&da, &db));
        assert!(da.parsed().is_ok());
        assert!(db.parsed().is_err(), "the longer signature does not decode");
        assert_eq!(da.peeked_claims().unwrap().get("sub").unwrap(), "user_a");
    }

    #[test]
    fn a_held_signature_is_remembered_for_its_exact_token_and_a_while_only() {
        let t = token(r#"{"sub":"user_held"}"#);
        let d = decoded(&t);
        assert!(!d.signature_held(100), "never checked");
        d.remember_signature_held(100);
        assert!(decoded(&t).signature_held(100));
        assert!(decoded(&t).signature_held(100 + SIGNATURE_MEMORY_SECS - 1));
        assert!(!decoded(&t).signature_held(100 + SIGNATURE_MEMORY_SECS));
        // Same signing input, another signature; another payload, the same signature: neither
        // is vouched for.
        let (input, _) = t.rsplit_once('.').unwrap();
        let other_signature = format!("{input}.{}", b64("sih"));
        assert!(!decoded(&other_signature).signature_held(100));
        let (_, signature) = t.rsplit_once('.').unwrap();
        let (header, _) = input.split_once('.').unwrap();
        let other_payload = format!("{header}.{}.{signature}", b64(r#"{"sub":"user_else"}"#));
        assert!(!decoded(&other_payload).signature_held(100));
        // A token too long to remember is checked every time.
        let huge = token(&format!(r#"{{"sub":"{}"}}"#, "x".repeat(MAX_TOKEN_LEN)));
        decoded(&huge).remember_signature_held(100);
        assert!(!decoded(&huge).signature_held(100));
    }

    #[test]
    fn memory_is_bounded_and_oversized_tokens_are_not_kept() {
        let tokens: Vec<String> = (0..CAPACITY + 3)
            .map(|i| token(&format!(r#"{{"sub":"user_{i}"}}"#)))
            .collect();
        for t in &tokens {
            decoded(t);
        }
        MEMORY.with(|m| assert_eq!(m.borrow().entries.len(), CAPACITY));
        assert!(remembered(tokens.last().unwrap()));
        assert!(!remembered(&tokens[0]), "the oldest made room");

        let huge = token(&format!(r#"{{"sub":"{}"}}"#, "x".repeat(MAX_TOKEN_LEN)));
        let d = decoded(&huge);
        assert!(matches!(d.parsed(), Err(ClerkTokenError::TooLarge)));
        assert!(d.peeked_claims().is_none());
        assert!(!remembered(&huge));
    }
}
