//! What a session token's signed payload must say (`sub`, `sid`, `azp`, `iss`, `exp`/`nbf`/`iat`
//! with skew), the settings of those checks, and the verified session they give.

use std::rc::Rc;

use serde_json::Value;

use super::payload::ClerkClaims;
use super::publishable_key::PublishableKey;
use super::token::{ClerkTokenError, UntrustedClerkToken};
use super::DEFAULT_LEEWAY_SECS;

/// Subjects of machine tokens start with this; they are not user sessions.
const MACHINE_SUBJECT_PREFIX: &str = "mch_";

/// The checks applied to a session token's claims, each explicit; built with safe defaults by
/// [`ClerkValidation::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkValidation {
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (Clerk: 5).
    pub leeway: u64,
    /// Exact expected `iss` (`https://<frontend api host>`). Clerk's SDK skips this; we do not.
    pub issuer: String,
    /// Allowed `azp` origins; empty = `azp` not checked (Clerk's behaviour).
    pub authorized_parties: Vec<String>,
    /// Session tokens always carry `sid`; refuse tokens without one.
    pub require_session_id: bool,
}

impl ClerkValidation {
    pub fn new(pk: &PublishableKey) -> Self {
        Self {
            leeway: DEFAULT_LEEWAY_SECS,
            issuer: pk.issuer(),
            authorized_parties: Vec::new(),
            require_session_id: true,
        }
    }

    /// Sets the parties from `CLERK_AUTHORIZED_PARTIES` (comma-separated origins).
    pub fn with_authorized_parties_csv(mut self, csv: &str) -> Self {
        self.authorized_parties = parse_authorized_parties(csv);
        self
    }
}

/// Splits a comma-separated origin list; blanks are dropped and a trailing `/` removed, since
/// `azp` is an origin (`https://app.example.com`), which never ends with one.
pub fn parse_authorized_parties(csv: &str) -> Vec<String> {
    csv.split(',')
        .map(|party| party.trim().trim_end_matches('/'))
        .filter(|party| !party.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A verified Clerk session.
#[derive(Debug, Clone, PartialEq)]
pub struct ClerkSession {
    /// `sub`: the Clerk user id (`user_…`).
    pub user_id: String,
    /// `sid`: the Clerk session id (`sess_…`).
    pub session_id: Option<String>,
    pub exp: u64,
    pub iat: u64,
    /// Every claim of the token (e.g. `azp`, `fva`, `o`, `act`, custom session claims), shared
    /// with the token's remembered decoding rather than copied.
    pub claims: Rc<ClerkClaims>,
}

/// Clerk's status of an active session (`sts`).
pub const SESSION_STATUS_ACTIVE: &str = "active";
/// A session with an unfinished task (choose an organization, set up MFA…).
pub const SESSION_STATUS_PENDING: &str = "pending";

impl ClerkSession {
    /// Clerk's `sts` claim (session tokens v2). A token without it (v1) is an active session:
    /// pending sessions came with v2. A value that is not a short token word is reported as
    /// `invalid` (and counts as not active), so nothing odd reaches a header.
    pub fn status(&self) -> &str {
        match self.claims.get("sts") {
            None => SESSION_STATUS_ACTIVE,
            Some(Value::String(sts))
                if !sts.is_empty()
                    && sts.len() <= 32
                    && sts
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                sts
            }
            Some(_) => "invalid",
        }
    }

    /// Whether the session is fully signed in; a pending (or unknown) status is not, and
    /// Clerk's SDKs sign it out by default (`treatPendingAsSignedOut`).
    pub fn is_active(&self) -> bool {
        self.status() == SESSION_STATUS_ACTIVE
    }
}

impl UntrustedClerkToken {
    /// [`validate_claims`] of this token's claims. Call only after the signature has been
    /// verified.
    pub fn validate(
        &self,
        validation: &ClerkValidation,
        now: u64,
    ) -> Result<ClerkSession, ClerkTokenError> {
        validate_claims(self.shared_claims(), validation, now)
    }
}

/// Checks the claims. Call only after the signature has been verified. Order follows
/// Clerk's `verifyJwt` (sub, azp, iss, exp, nbf, iat), so a token with several faults is
/// reported as Clerk would report it.
pub fn validate_claims(
    claims: &Rc<ClerkClaims>,
    validation: &ClerkValidation,
    now: u64,
) -> Result<ClerkSession, ClerkTokenError> {
    let user_id = match claims.get("sub") {
        None => return Err(ClerkTokenError::MissingClaim("sub")),
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(_) => return Err(ClerkTokenError::InvalidClaim("sub")),
    };
    if user_id.starts_with(MACHINE_SUBJECT_PREFIX) {
        return Err(ClerkTokenError::NotASessionToken);
    }
    let session_id = match claims.get("sid") {
        None if validation.require_session_id => return Err(ClerkTokenError::MissingClaim("sid")),
        None => None,
        Some(Value::String(sid)) if !sid.is_empty() => Some(sid.clone()),
        Some(_) => return Err(ClerkTokenError::InvalidClaim("sid")),
    };

    if !validation.authorized_parties.is_empty() {
        let azp = claims.get("azp").and_then(Value::as_str);
        if !azp.is_some_and(|azp| validation.authorized_parties.iter().any(|p| p == azp)) {
            return Err(ClerkTokenError::UnauthorizedParty);
        }
    }

    match claims.get("iss") {
        None => return Err(ClerkTokenError::MissingClaim("iss")),
        Some(Value::String(iss)) if *iss == validation.issuer => {}
        Some(_) => return Err(ClerkTokenError::InvalidIssuer),
    }

    let exp = timestamp_claim(claims, "exp")?.ok_or(ClerkTokenError::MissingClaim("exp"))?;
    let nbf = timestamp_claim(claims, "nbf")?;
    let iat = timestamp_claim(claims, "iat")?.ok_or(ClerkTokenError::MissingClaim("iat"))?;
    let leeway = validation.leeway;

    // Clerk: expired when exp <= now - skew; early when nbf (or iat) > now + skew.
    if exp.saturating_add(leeway) <= now {
        return Err(ClerkTokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(ClerkTokenError::NotYetValid);
    }
    if iat > now.saturating_add(leeway) {
        return Err(ClerkTokenError::IssuedInTheFuture);
    }

    Ok(ClerkSession {
        user_id,
        session_id,
        exp,
        iat,
        claims: Rc::clone(claims),
    })
}

/// NumericDate claims as non-negative integers; Clerk mints integers, so anything else is
/// malformed rather than silently rounded.
fn timestamp_claim(
    claims: &ClerkClaims,
    name: &'static str,
) -> Result<Option<u64>, ClerkTokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or(ClerkTokenError::InvalidClaim(name)),
    }
}
