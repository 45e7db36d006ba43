//! A compact JWS as Clerk mints session tokens: its shape and header rules (RS256 only, `kid`
//! required, `typ`, `cat`, no `crit`, bounded size), and why a token is refused.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::payload::ClerkClaims;
use super::{JWT_CATEGORY_IGNORE, JWT_CATEGORY_SESSION_TOKEN, MAX_TOKEN_LEN};

/// Which part of a compact JWS failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    Header,
    Payload,
    Signature,
}

/// Why a Clerk session token was refused. Carries no token material, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClerkTokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLarge,
    /// Not three dot-separated parts; holds the number of parts found.
    WrongPartCount(usize),
    InvalidBase64(TokenPart),
    InvalidJson(TokenPart),
    /// `alg` is anything but `RS256` (including `none` and `HS256`).
    DisallowedAlgorithm,
    /// `typ` present and not `JWT` (e.g. `at+jwt` OAuth access tokens).
    UnexpectedType,
    /// A `crit` header: no extension is understood, so the token must be refused (RFC 7515).
    UnsupportedCriticalHeader,
    MissingKeyId,
    /// A JWT-template, M2M or other non-session token (`cat` header or `mch_` subject).
    NotASessionToken,
    /// No key with the token's `kid` (after the allowed JWKS refresh).
    UnknownKeyId,
    /// Keys could not be loaded (JWKS fetch failed and nothing cached).
    KeysUnavailable,
    InvalidSignature,
    MissingClaim(&'static str),
    /// Claim present with the wrong JSON type or an impossible value.
    InvalidClaim(&'static str),
    InvalidIssuer,
    UnauthorizedParty,
    Expired,
    NotYetValid,
    IssuedInTheFuture,
}

impl fmt::Display for ClerkTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(f, "token longer than {MAX_TOKEN_LEN} bytes"),
            Self::WrongPartCount(n) => write!(f, "token has {n} parts, expected 3"),
            Self::InvalidBase64(part) => write!(f, "token {part:?} is not base64url"),
            Self::InvalidJson(part) => write!(f, "token {part:?} is not a JSON object"),
            Self::DisallowedAlgorithm => f.write_str("token algorithm is not RS256"),
            Self::UnexpectedType => f.write_str("token typ is not JWT"),
            Self::UnsupportedCriticalHeader => f.write_str("token has a crit header"),
            Self::MissingKeyId => f.write_str("token header has no kid"),
            Self::NotASessionToken => f.write_str("token is not a Clerk session token"),
            Self::UnknownKeyId => f.write_str("no signing key matches the token kid"),
            Self::KeysUnavailable => f.write_str("Clerk signing keys are unavailable"),
            Self::InvalidSignature => f.write_str("token signature is invalid"),
            Self::MissingClaim(name) => write!(f, "token has no {name} claim"),
            Self::InvalidClaim(name) => write!(f, "token {name} claim is malformed"),
            Self::InvalidIssuer => f.write_str("token issuer is not this Clerk instance"),
            Self::UnauthorizedParty => f.write_str("token azp is not an authorized party"),
            Self::Expired => f.write_str("token has expired"),
            Self::NotYetValid => f.write_str("token is not valid yet (nbf)"),
            Self::IssuedInTheFuture => f.write_str("token iat is in the future"),
        }
    }
}

impl std::error::Error for ClerkTokenError {}

/// A compact JWS whose header passed the static checks (size, shape, `alg`, `kid`, `typ`,
/// `cat`, `crit`) but whose signature and claims are not checked yet.
#[derive(Debug, Clone)]
pub struct UntrustedClerkToken {
    /// The token as sent, shared with the isolate's memory of it rather than copied.
    text: Rc<str>,
    /// Length of `<header>.<payload>`, the start of `text`.
    signing_input_len: usize,
    signature: Vec<u8>,
    kid: Rc<str>,
    /// Shared with the [`super::ClerkSession`] it becomes: never copied per request.
    claims: Rc<ClerkClaims>,
}

impl UntrustedClerkToken {
    pub fn parse(token: &str) -> Result<Self, ClerkTokenError> {
        Self::parse_shared(token.into())
    }

    /// [`Self::parse`] of a token held by the caller too: kept without a copy.
    pub fn parse_shared(text: Rc<str>) -> Result<Self, ClerkTokenError> {
        let token = &*text;
        if token.len() > MAX_TOKEN_LEN {
            return Err(ClerkTokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_text), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ClerkTokenError::WrongPartCount(token.split('.').count()));
        };
        let header = checked_header(header_text);
        if let HeaderCheck::Undecodable(error) = header {
            return Err(error);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| ClerkTokenError::InvalidBase64(TokenPart::Signature))?;
        // Header first: nothing about the payload matters if the algorithm is wrong.
        let kid = match header {
            HeaderCheck::Kid(kid) => kid,
            HeaderCheck::Undecodable(error) | HeaderCheck::Refused(error) => return Err(error),
        };
        if signature.is_empty() {
            return Err(ClerkTokenError::InvalidSignature);
        }
        let claims = decode_claims(payload)?;
        let signing_input_len = header_text.len() + 1 + payload.len();
        Ok(Self {
            text,
            signing_input_len,
            signature,
            kid,
            claims: Rc::new(claims),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `<header>.<payload>` as sent: the bytes the signature covers.
    pub fn signing_input(&self) -> &[u8] {
        &self.text.as_bytes()[..self.signing_input_len]
    }

    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Unverified claims; only for diagnostics and cookie selection, never for identity.
    pub fn unverified_claims(&self) -> &ClerkClaims {
        &self.claims
    }

    /// The unverified claims, shared, for [`super::claims::validate_claims`] once the
    /// signature holds.
    pub fn shared_claims(&self) -> &Rc<ClerkClaims> {
        &self.claims
    }
}

/// What a token's header says, by the header rules (`alg`, `crit`, `typ`, `cat`, `kid`).
#[derive(Clone)]
enum HeaderCheck {
    /// Not base64url JSON: refused before the signature is even decoded.
    Undecodable(ClerkTokenError),
    /// Decoded, and refused by a rule.
    Refused(ClerkTokenError),
    /// Accepted; the key id.
    Kid(Rc<str>),
}

thread_local! {
    /// The last header checked, by its exact base64url text. An isolate's tokens share their
    /// header (one instance, one signing key), so it is decoded once, not per token; the answer
    /// is a function of those bytes alone.
    static LAST_HEADER: RefCell<Option<(Box<str>, HeaderCheck)>> = const { RefCell::new(None) };
}

fn checked_header(part: &str) -> HeaderCheck {
    let known = LAST_HEADER.with(|last| {
        let last = last.borrow();
        last.as_ref()
            .filter(|(text, _)| **text == *part)
            .map(|(_, check)| check.clone())
    });
    if let Some(check) = known {
        return check;
    }
    let check = check_header(part);
    if part.len() <= MAX_HEADER_REMEMBERED {
        LAST_HEADER.with(|last| *last.borrow_mut() = Some((part.into(), check.clone())));
    }
    check
}

/// Longest header remembered (Clerk's are about a hundred bytes).
const MAX_HEADER_REMEMBERED: usize = 512;

fn check_header(part: &str) -> HeaderCheck {
    let header = match decode_header(part) {
        Ok(header) => header,
        Err(error) => return HeaderCheck::Undecodable(error),
    };
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return HeaderCheck::Refused(ClerkTokenError::DisallowedAlgorithm);
    }
    if header.contains_key("crit") {
        return HeaderCheck::Refused(ClerkTokenError::UnsupportedCriticalHeader);
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if typ == "JWT" => {}
        Some(_) => return HeaderCheck::Refused(ClerkTokenError::UnexpectedType),
    }
    match header.get("cat") {
        None => {}
        Some(Value::String(cat))
            if cat == JWT_CATEGORY_SESSION_TOKEN || cat == JWT_CATEGORY_IGNORE => {}
        Some(_) => return HeaderCheck::Refused(ClerkTokenError::NotASessionToken),
    }
    match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => HeaderCheck::Kid(kid.as_str().into()),
        _ => HeaderCheck::Refused(ClerkTokenError::MissingKeyId),
    }
}

/// A payload's claims, read for those the worker uses (see [`ClerkClaims`]).
pub(crate) fn decode_claims(part: &str) -> Result<ClerkClaims, ClerkTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ClerkTokenError::InvalidBase64(TokenPart::Payload))?;
    // JSON is UTF-8: other bytes are refused, as `serde_json::from_slice` refuses them.
    let text =
        String::from_utf8(bytes).map_err(|_| ClerkTokenError::InvalidJson(TokenPart::Payload))?;
    ClerkClaims::parse(text).map_err(|_| ClerkTokenError::InvalidJson(TokenPart::Payload))
}

fn decode_header(part: &str) -> Result<Map<String, Value>, ClerkTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ClerkTokenError::InvalidBase64(TokenPart::Header))?;
    crate::json::from_slice(&bytes).map_err(|_| ClerkTokenError::InvalidJson(TokenPart::Header))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, signature: &str) -> String {
        format!("{}.{}.{signature}", b64(header), b64(r#"{"sub":"user_1"}"#))
    }

    #[test]
    fn a_remembered_header_answers_as_a_fresh_check() {
        let good = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;
        let other_kid = r#"{"alg":"RS256","kid":"k2"}"#;
        let hs256 = r#"{"alg":"HS256","kid":"k1"}"#;
        for _ in 0..2 {
            assert_eq!(
                UntrustedClerkToken::parse(&token(good, "c2ln"))
                    .unwrap()
                    .kid(),
                "k1"
            );
            assert_eq!(
                UntrustedClerkToken::parse(&token(other_kid, "c2ln"))
                    .unwrap()
                    .kid(),
                "k2"
            );
            assert_eq!(
                UntrustedClerkToken::parse(&token(hs256, "c2ln")).unwrap_err(),
                ClerkTokenError::DisallowedAlgorithm
            );
            assert_eq!(
                UntrustedClerkToken::parse(&token(hs256, "c2ln")).unwrap_err(),
                ClerkTokenError::DisallowedAlgorithm
            );
            // Each check in its order: the signature's encoding before the header's rules,
            // the header's encoding before both.
            assert_eq!(
                UntrustedClerkToken::parse(&token(hs256, "!")).unwrap_err(),
                ClerkTokenError::InvalidBase64(TokenPart::Signature)
            );
            assert_eq!(
                UntrustedClerkToken::parse(&token(good, "")).unwrap_err(),
                ClerkTokenError::InvalidSignature
            );
            assert_eq!(
                UntrustedClerkToken::parse(&format!("!.{}.c2ln", b64("{}"))).unwrap_err(),
                ClerkTokenError::InvalidBase64(TokenPart::Header)
            );
            assert_eq!(
                UntrustedClerkToken::parse(&format!("{}.{}.!", b64("[]"), b64("{}"))).unwrap_err(),
                ClerkTokenError::InvalidJson(TokenPart::Header)
            );
        }
        // One spelling per signature: "c2k" is "si"; "c2l" is the same bytes with stray
        // trailing bits, and "c2k=" padded: both refused.
        let sig_a = UntrustedClerkToken::parse(&token(good, "c2k")).unwrap();
        assert_eq!(sig_a.signature(), b"si");
        assert_eq!(
            UntrustedClerkToken::parse(&token(good, "c2l")).unwrap_err(),
            ClerkTokenError::InvalidBase64(TokenPart::Signature)
        );
        assert_eq!(
            UntrustedClerkToken::parse(&token(good, "c2k=")).unwrap_err(),
            ClerkTokenError::InvalidBase64(TokenPart::Signature)
        );
        assert_eq!(
            sig_a.signing_input(),
            token(good, "c2k").rsplit_once('.').unwrap().0.as_bytes()
        );
        assert_eq!(
            UntrustedClerkToken::parse("a.b").unwrap_err(),
            ClerkTokenError::WrongPartCount(2)
        );
        assert_eq!(
            UntrustedClerkToken::parse("a.b.c.d").unwrap_err(),
            ClerkTokenError::WrongPartCount(4)
        );
    }
}
