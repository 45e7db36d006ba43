//! Which token a request carries: Clerk's rules for the `Authorization` header, the session
//! cookies and their suffixed variants (`usesSuffixedCookies`), and the development-browser
//! cookie, as @clerk/backend `authenticateRequest` applies them before any verification.

use serde_json::Value;

use super::payload::ClerkClaims;
use super::publishable_key::{InstanceType, PublishableKey};
use super::request_state::{ClerkTokenSource, HandshakeReason, SignedOutReason};
use super::{CLIENT_UAT_COOKIE, DEV_BROWSER_COOKIE, SESSION_COOKIE};
use crate::identity::clerk_decoded;

/// Picks the session token out of a request the way @clerk/backend `authenticateRequest` does
/// for a primary (non-satellite) domain.
///
/// `cookie(name)` returns a cookie value by exact name; `authorization` is the raw header;
/// `dev_browser_in_query` says whether the URL carries `__clerk_db_jwt`. `now` is only used to
/// decide whether a suffixed session cookie has expired (Clerk's suffixed-cookie choice).
///
/// Not handled here: `__clerk_handshake` / `__clerk_handshake_nonce` (handshake resolution) and
/// satellite-domain syncing; the caller resolves a handshake payload before calling this.
pub fn session_token_from_request<'a>(
    cookie: &impl Fn(&str) -> Option<&'a str>,
    authorization: Option<&'a str>,
    dev_browser_in_query: bool,
    pk: &PublishableKey,
    now: u64,
) -> ClerkTokenSource<'a> {
    if let Some(token) = authorization.and_then(token_from_authorization_header) {
        return ClerkTokenSource::Bearer(token);
    }

    // Clerk reads cookies with `get(name) || undefined`: an empty value is an absent cookie.
    let get = |name: &str| cookie(name).filter(|value| !value.is_empty());
    let suffixed = |name: &str| get(&pk.suffixed(name));
    let use_suffixed = uses_suffixed_cookies(&get, &suffixed, pk, now);
    let pick = |name: &str| {
        if use_suffixed {
            suffixed(name)
        } else {
            get(name)
        }
    };

    let session = pick(SESSION_COOKIE);
    let client_uat = pick(CLIENT_UAT_COOKIE).map_or(0, parse_client_uat);

    if pk.is_development() {
        if dev_browser_in_query {
            return ClerkTokenSource::NeedsHandshake(HandshakeReason::DevBrowserSync);
        }
        if pick(DEV_BROWSER_COOKIE).is_none() {
            return ClerkTokenSource::NeedsHandshake(HandshakeReason::DevBrowserMissing);
        }
    }

    match (session, client_uat) {
        (None, 0) => ClerkTokenSource::SignedOut(SignedOutReason::SessionTokenAndUatMissing),
        (Some(_), 0) => {
            ClerkTokenSource::NeedsHandshake(HandshakeReason::SessionTokenWithoutClientUat)
        }
        (None, _) => {
            ClerkTokenSource::NeedsHandshake(HandshakeReason::ClientUatWithoutSessionToken)
        }
        (Some(token), client_uat) => ClerkTokenSource::Cookie { token, client_uat },
    }
}

/// `Bearer <token>` gives the token; a single word is taken as the token itself, as Clerk does;
/// any other scheme (e.g. `Basic …`) is not a Clerk token and the cookies are used instead.
fn token_from_authorization_header(header: &str) -> Option<&str> {
    if header.is_empty() {
        return None;
    }
    match header.split_once(' ') {
        None => Some(header),
        Some((scheme, rest)) => {
            // JS `split(" ", 2)` keeps only the word after the first space.
            let token = rest.split(' ').next().unwrap_or("");
            if token.is_empty() {
                Some(scheme).filter(|scheme| !scheme.is_empty())
            } else if scheme == "Bearer" {
                Some(token)
            } else {
                None
            }
        }
    }
}

/// `Number.parseInt(value) || 0`: leading digits count, anything unparsable is 0. Negative
/// values (never set by Clerk) are treated as 0, i.e. signed out.
fn parse_client_uat(value: &str) -> u64 {
    let value = value.trim_start();
    let digits = value.strip_prefix('+').unwrap_or(value);
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().unwrap_or(0)
}

/// Clerk's `usesSuffixedCookies` over a request's cookies (`cookie(name)` by exact name): whether
/// this instance's session lives in the suffixed cookies.
pub fn request_uses_suffixed_cookies<'a>(
    cookie: &impl Fn(&str) -> Option<&'a str>,
    pk: &PublishableKey,
    now: u64,
) -> bool {
    let get = |name: &str| cookie(name).filter(|value| !value.is_empty());
    let suffixed = |name: &str| get(&pk.suffixed(name));
    uses_suffixed_cookies(&get, &suffixed, pk, now)
}

/// Clerk's `usesSuffixedCookies`: when both the plain and the suffixed cookies exist, decide
/// which set belongs to this instance and is current.
fn uses_suffixed_cookies<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    suffixed: &impl Fn(&str) -> Option<&'a str>,
    pk: &PublishableKey,
    now: u64,
) -> bool {
    let suffixed_client_uat = suffixed(CLIENT_UAT_COOKIE);
    let client_uat = get(CLIENT_UAT_COOKIE);
    let suffixed_session = suffixed(SESSION_COOKIE);
    let session = get(SESSION_COOKIE);
    // Decoded once per isolate per token (see `clerk_decoded`); verification reuses it.
    let session_decoded = session.map(clerk_decoded::decoded);
    let session_claims = session_decoded.as_deref().and_then(|d| d.peeked_claims());

    if session.is_some() {
        let issuer = session_claims
            .as_ref()
            .and_then(|claims| claims.get("iss"))
            .filter(|iss| is_truthy(iss));
        let Some(issuer) = issuer else {
            return false;
        };
        // A plain cookie issued by another Clerk instance on the same domain: use ours.
        let belongs_here = issuer
            .as_str()
            .is_some_and(|iss| strip_http_schemes(iss) == pk.frontend_api());
        if !belongs_here {
            return true;
        }
    }
    if suffixed_client_uat.is_none() && suffixed_session.is_none() {
        return false;
    }

    let suffixed_decoded = suffixed_session.map(clerk_decoded::decoded);
    let suffixed_claims = suffixed_decoded.as_deref().and_then(|d| d.peeked_claims());
    let session_iat = numeric_claim(session_claims, "iat");
    let suffixed_session_iat = numeric_claim(suffixed_claims, "iat");
    let suffixed_uat_is_zero = suffixed_client_uat == Some("0");
    let uat_is_zero = client_uat == Some("0");

    if !suffixed_uat_is_zero && !uat_is_zero && session_iat > suffixed_session_iat {
        return false;
    }
    if suffixed_uat_is_zero && !uat_is_zero {
        return false;
    }
    if pk.instance_type() != InstanceType::Production {
        let suffixed_expired = suffixed_claims
            .as_ref()
            .and_then(|claims| claims.get("exp"))
            .and_then(Value::as_f64)
            .is_some_and(|exp| exp <= now as f64);
        if !suffixed_uat_is_zero && uat_is_zero && suffixed_expired {
            return false;
        }
    }
    if suffixed_client_uat.is_none() && suffixed_session.is_some() {
        return false;
    }
    true
}

/// `iss.replace(/https?:\/\//gi, "")`: every `http://` / `https://` removed, in any case, left
/// to right (the patterns are ASCII, so byte positions are character boundaries).
fn strip_http_schemes(iss: &str) -> String {
    let bytes = iss.as_bytes();
    let starts_with = |at: usize, prefix: &[u8]| {
        bytes
            .get(at..at + prefix.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(prefix))
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if starts_with(at, b"https://") {
            at += 8;
        } else if starts_with(at, b"http://") {
            at += 7;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    // Only whole ASCII patterns were removed, so the rest is the original UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `payload.<name> || 0` for numeric claims of an unverified token.
fn numeric_claim(claims: Option<&ClerkClaims>, name: &str) -> f64 {
    claims
        .and_then(|claims| claims.get(name))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::strip_http_schemes;

    /// The former implementation (one lower-cased 8-character window per character).
    fn reference(iss: &str) -> String {
        let mut out = String::new();
        let mut rest = iss;
        while !rest.is_empty() {
            let lower = rest
                .chars()
                .take(8)
                .collect::<String>()
                .to_ascii_lowercase();
            if lower.starts_with("https://") {
                rest = &rest[8..];
            } else if lower.starts_with("http://") {
                rest = &rest[7..];
            } else {
                let ch = rest.chars().next().unwrap_or_default();
                out.push(ch);
                rest = &rest[ch.len_utf8()..];
            }
        }
        out
    }

    #[test]
    fn schemes_are_stripped_as_clerk_strips_them() {
        for iss in [
            "https://clerk.example.com",
            "HTTPS://clerk.example.com",
            "hTtP://clerk.example.com",
            "https://https://clerk.example.com",
            "https:/clerk.example.com",
            "xhttp://a.bhttps://c",
            "https://clérk.example.com/ßhttp://é",
            "http:/",
            "http://",
            "",
            "ｈttps://full-width",
        ] {
            assert_eq!(strip_http_schemes(iss), reference(iss), "{iss}");
        }
        assert_eq!(strip_http_schemes("HTTPS://a.b"), "a.b");
    }
}
