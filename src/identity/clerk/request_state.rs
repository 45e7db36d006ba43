//! What a request's Clerk state is: where its token came from (or why there is none), the
//! handshake reasons and signed-out reasons, and how a verification result combines with the
//! cookie rules (`__client_uat`) into the request's state.

use super::claims::ClerkSession;
use super::token::ClerkTokenError;

/// Why a request would get Clerk's handshake redirect. `as_str` gives Clerk's own reason string
/// (`__clerk_hs_reason`). A request that is not a page load is simply signed out instead; see
/// [`is_handshake_eligible`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeReason {
    DevBrowserMissing,
    DevBrowserSync,
    SessionTokenWithoutClientUat,
    ClientUatWithoutSessionToken,
    SessionTokenIatBeforeClientUat,
    SessionTokenExpired,
    SessionTokenNotBefore,
    SessionTokenIatInTheFuture,
}

impl HandshakeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DevBrowserMissing => "dev-browser-missing",
            Self::DevBrowserSync => "dev-browser-sync",
            Self::SessionTokenWithoutClientUat => "session-token-but-no-client-uat",
            Self::ClientUatWithoutSessionToken => "client-uat-but-no-session-token",
            Self::SessionTokenIatBeforeClientUat => "session-token-iat-before-client-uat",
            // No refresh-token exchange here, so Clerk's "no refresh cookie" suffix applies.
            Self::SessionTokenExpired => {
                "session-token-expired-refresh-non-eligible-no-refresh-cookie"
            }
            Self::SessionTokenNotBefore => "session-token-nbf",
            Self::SessionTokenIatInTheFuture => "session-token-iat-in-the-future",
        }
    }
}

/// Why a request is signed out of Clerk without any handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedOutReason {
    /// Neither a session cookie nor `__client_uat` (Clerk: `session-token-and-uat-missing`);
    /// `__client_uat=0` without a session cookie lands here too.
    SessionTokenAndUatMissing,
    /// The token failed verification for a reason a handshake cannot fix.
    InvalidToken(ClerkTokenError),
}

/// Where the Clerk session token of a request comes from, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClerkTokenSource<'a> {
    /// `Authorization: Bearer <token>`: verified as is, no cookie rules.
    Bearer(&'a str),
    /// Session cookie; after verification `iat` must be ≥ `client_uat` ([`check_client_uat`]).
    Cookie {
        token: &'a str,
        client_uat: u64,
    },
    SignedOut(SignedOutReason),
    NeedsHandshake(HandshakeReason),
}

/// The cookie rule applied after verification: a token issued before the client's last update
/// is stale (Clerk: `session-token-iat-before-client-uat`).
pub fn check_client_uat(session: &ClerkSession, client_uat: u64) -> Result<(), HandshakeReason> {
    if session.iat < client_uat {
        Err(HandshakeReason::SessionTokenIatBeforeClientUat)
    } else {
        Ok(())
    }
}

/// Whether Clerk would answer with a handshake redirect rather than "signed out": only a `GET`
/// page load (`Sec-Fetch-Dest: document`/`iframe`, or no `Sec-Fetch-Dest` and an HTML `Accept`).
pub fn is_handshake_eligible(
    method: &str,
    sec_fetch_dest: Option<&str>,
    accept: Option<&str>,
) -> bool {
    if method != "GET" {
        return false;
    }
    match sec_fetch_dest.filter(|dest| !dest.is_empty()) {
        Some(dest) => dest == "document" || dest == "iframe",
        None => accept.is_some_and(|accept| accept.starts_with("text/html")),
    }
}

/// The outcome of Clerk authentication for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum ClerkRequestState {
    SignedIn(ClerkSession),
    SignedOut(SignedOutReason),
    /// A page load gets the handshake redirect; any other request is signed out.
    NeedsHandshake(HandshakeReason),
}

/// Combines the token source with the verification result: time errors become handshakes (as in
/// Clerk's `handleSessionTokenError`), other errors sign out, and cookie tokens must pass
/// [`check_client_uat`].
pub fn request_state_after_verification(
    source: &ClerkTokenSource<'_>,
    verified: Result<ClerkSession, ClerkTokenError>,
) -> ClerkRequestState {
    let client_uat = match source {
        ClerkTokenSource::Bearer(_) => None,
        ClerkTokenSource::Cookie { client_uat, .. } => Some(*client_uat),
        ClerkTokenSource::SignedOut(reason) => return ClerkRequestState::SignedOut(reason.clone()),
        ClerkTokenSource::NeedsHandshake(reason) => {
            return ClerkRequestState::NeedsHandshake(*reason)
        }
    };
    match verified {
        Ok(session) => match client_uat.map(|uat| check_client_uat(&session, uat)) {
            Some(Err(reason)) => ClerkRequestState::NeedsHandshake(reason),
            _ => ClerkRequestState::SignedIn(session),
        },
        Err(error) => match error.handshake_reason() {
            Some(reason) => ClerkRequestState::NeedsHandshake(reason),
            None => ClerkRequestState::SignedOut(SignedOutReason::InvalidToken(error)),
        },
    }
}

impl ClerkTokenError {
    /// The handshake a cookie request gets for this error, if any: only time errors can be fixed
    /// by fetching a fresh token.
    pub fn handshake_reason(&self) -> Option<HandshakeReason> {
        match self {
            Self::Expired => Some(HandshakeReason::SessionTokenExpired),
            Self::NotYetValid => Some(HandshakeReason::SessionTokenNotBefore),
            Self::IssuedInTheFuture => Some(HandshakeReason::SessionTokenIatInTheFuture),
            _ => None,
        }
    }
}
