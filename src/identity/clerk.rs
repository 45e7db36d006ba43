//! Clerk session tokens: the publishable key, Clerk's request-state rules for picking the token
//! out of a request, and the checks on the token itself.
//!
//! Everything here is pure: time comes in as `now` (unix seconds) and the RSA signature check is
//! behind [`SignatureVerifier`], so the whole pipeline (parse → signature → claims) runs on the
//! host in tests. The Workers glue lives in `webcrypto.rs` (WebCrypto RS256) and `jwks.rs` (key
//! source, caches).
//!
//! Behaviour follows @clerk/backend's `authenticateRequest` (`tokens/request`,
//! `tokens/authenticateContext`, `jwt/verifyJwt`, `tokens/keys`), with stricter defaults where
//! Clerk is lenient: `iss` is always checked, `iat` is required, unknown `crit` headers are
//! rejected and tokens are bounded in size.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use serde_json::{Map, Value};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

/// Session cookie set by Clerk's Frontend API.
pub const SESSION_COOKIE: &str = "__session";
/// The client's last update time (unix seconds); `0` means signed out.
pub const CLIENT_UAT_COOKIE: &str = "__client_uat";
/// Development instances keep the dev-browser token here (also accepted as a query parameter).
pub const DEV_BROWSER_COOKIE: &str = "__clerk_db_jwt";
/// Query parameter carrying the dev-browser token during a sync.
pub const DEV_BROWSER_QUERY_PARAM: &str = "__clerk_db_jwt";

/// `cat` header of session tokens (handshake tokens use it too).
pub const JWT_CATEGORY_SESSION_TOKEN: &str = "cl_B7d4PD111AAA";
/// `cat` header of tokens minted from a JWT template: never a session.
pub const JWT_CATEGORY_JWT_TEMPLATE: &str = "cl_B7d4PD222AAA";
/// `cat` header of machine-to-machine tokens.
pub const JWT_CATEGORY_M2M_TOKEN: &str = "cl_B7d4PD333AAA";
/// `cat` value that @clerk/backend treats like an absent category.
pub const JWT_CATEGORY_IGNORE: &str = "cl_I7d4PD111III";
/// Subjects of machine tokens start with this; they are not user sessions.
const MACHINE_SUBJECT_PREFIX: &str = "mch_";

/// Real Clerk session tokens are ~1 KiB; the bound keeps hostile input cheap to reject.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew allowed by Clerk's SDK, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

/// RSA moduli below this are refused; Clerk's keys are 2048-bit.
const MIN_RSA_MODULUS_BITS: usize = 2048;
const MAX_RSA_MODULUS_BITS: usize = 8192;

// ---------------------------------------------------------------------------------------------
// Publishable key
// ---------------------------------------------------------------------------------------------

/// Development (`pk_test_`) or production (`pk_live_`) instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceType {
    Development,
    Production,
}

/// Why `CLERK_PUBLISHABLE_KEY` was refused. Never carries the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishableKeyError {
    Missing,
    /// Neither `pk_test_` nor `pk_live_`, or not exactly three `_`-separated parts.
    UnknownPrefix,
    /// The part after the prefix is not base64.
    NotBase64,
    /// Decoded value is not `<host>$`.
    InvalidFormat,
}

impl fmt::Display for PublishableKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "Clerk publishable key is missing",
            Self::UnknownPrefix => "Clerk publishable key must start with pk_test_ or pk_live_",
            Self::NotBase64 => "Clerk publishable key is not valid base64 after its prefix",
            Self::InvalidFormat => {
                "Clerk publishable key does not decode to a Frontend API host followed by '$'"
            }
        })
    }
}

impl std::error::Error for PublishableKeyError {}

/// A parsed publishable key: the Frontend API host (= token issuer), the instance type and the
/// cookie suffix Clerk derives from the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishableKey {
    key: String,
    frontend_api: String,
    instance_type: InstanceType,
    cookie_suffix: String,
}

/// atob() is forgiving about padding and trailing bits; publishable keys are built without `=`.
const FORGIVING_STANDARD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

impl PublishableKey {
    /// Parses `pk_test_…` / `pk_live_…` as @clerk/shared `parsePublishableKey` does, and
    /// additionally requires the host to be a plain DNS name (optionally with a port), since it
    /// becomes the `https://` issuer and redirect target.
    pub fn parse(key: &str) -> Result<Self, PublishableKeyError> {
        // Config values often pick up a trailing newline; the key itself never has whitespace.
        let key = key.trim();
        if key.is_empty() {
            return Err(PublishableKeyError::Missing);
        }
        let instance_type = if key.starts_with("pk_live_") {
            InstanceType::Production
        } else if key.starts_with("pk_test_") {
            InstanceType::Development
        } else {
            return Err(PublishableKeyError::UnknownPrefix);
        };
        let parts: Vec<&str> = key.split('_').collect();
        if parts.len() != 3 || parts[2].is_empty() {
            return Err(PublishableKeyError::UnknownPrefix);
        }
        let decoded = FORGIVING_STANDARD_BASE64
            .decode(parts[2])
            .map_err(|_| PublishableKeyError::NotBase64)?;
        let decoded = String::from_utf8(decoded).map_err(|_| PublishableKeyError::InvalidFormat)?;
        let host = decoded
            .strip_suffix('$')
            .ok_or(PublishableKeyError::InvalidFormat)?;
        if !is_plausible_host(host) {
            return Err(PublishableKeyError::InvalidFormat);
        }
        Ok(Self {
            cookie_suffix: cookie_suffix(key),
            key: key.to_owned(),
            frontend_api: host.to_owned(),
            instance_type,
        })
    }

    /// The key as configured (public by design; it is shipped to browsers).
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// Frontend API host, e.g. `clerk.example.com` or `happy-hippo-42.clerk.accounts.dev`.
    pub fn frontend_api(&self) -> &str {
        &self.frontend_api
    }

    /// Expected `iss` of session tokens: `https://<frontend api host>`.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.frontend_api)
    }

    pub fn instance_type(&self) -> InstanceType {
        self.instance_type
    }

    pub fn is_development(&self) -> bool {
        self.instance_type == InstanceType::Development
    }

    /// First 8 characters of base64url(SHA-1(publishable key)).
    pub fn cookie_suffix(&self) -> &str {
        &self.cookie_suffix
    }

    /// `<name>_<suffix>`, e.g. `__session_k_2xjilp`.
    pub fn suffixed_cookie_name(&self, name: &str) -> String {
        format!("{name}_{}", self.cookie_suffix)
    }
}

/// Same as @clerk/shared `getCookieSuffix`: standard base64 with `+`/`/` swapped for `-`/`_`,
/// which is base64url; the first 8 characters never reach padding.
fn cookie_suffix(publishable_key: &str) -> String {
    let digest = Sha1::digest(publishable_key.as_bytes());
    let mut encoded = URL_SAFE_NO_PAD.encode(digest);
    encoded.truncate(8);
    encoded
}

/// Clerk only asks for "contains a dot and one trailing `$`"; the host also ends up in URLs, so
/// only DNS characters and an optional port are allowed.
fn is_plausible_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && name.contains('.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

// ---------------------------------------------------------------------------------------------
// Request-state rules
// ---------------------------------------------------------------------------------------------

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
    let suffixed = |name: &str| get(&pk.suffixed_cookie_name(name));
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
    let suffixed = |name: &str| get(&pk.suffixed_cookie_name(name));
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
    let session_decoded = session.map(super::clerk_decoded::decoded);
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

    let suffixed_decoded = suffixed_session.map(super::clerk_decoded::decoded);
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

/// `iss.replace(/https?:\/\//gi, "")`.
fn strip_http_schemes(iss: &str) -> String {
    let mut out = String::with_capacity(iss.len());
    let mut rest = iss;
    while !rest.is_empty() {
        let lower: String = rest
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
fn numeric_claim(claims: Option<&Map<String, Value>>, name: &str) -> f64 {
    claims
        .and_then(|claims| claims.get(name))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
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

// ---------------------------------------------------------------------------------------------
// Token checks
// ---------------------------------------------------------------------------------------------

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
    /// Every claim of the token (e.g. `azp`, `fva`, `o`, `act`, custom session claims).
    pub claims: Map<String, Value>,
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

/// A compact JWS whose header passed the static checks (size, shape, `alg`, `kid`, `typ`,
/// `cat`, `crit`) but whose signature and claims are not checked yet.
#[derive(Debug, Clone)]
pub struct UntrustedClerkToken {
    signing_input: String,
    signature: Vec<u8>,
    kid: String,
    claims: Map<String, Value>,
}

impl UntrustedClerkToken {
    pub fn parse(token: &str) -> Result<Self, ClerkTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ClerkTokenError::TooLarge);
        }
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(ClerkTokenError::WrongPartCount(parts.len()));
        }
        let header = decode_json_object(parts[0], TokenPart::Header)?;
        let signature = URL_SAFE_NO_PAD
            .decode(parts[2])
            .map_err(|_| ClerkTokenError::InvalidBase64(TokenPart::Signature))?;

        // Header first: nothing about the payload matters if the algorithm is wrong.
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(ClerkTokenError::DisallowedAlgorithm);
        }
        if header.contains_key("crit") {
            return Err(ClerkTokenError::UnsupportedCriticalHeader);
        }
        match header.get("typ") {
            None => {}
            Some(Value::String(typ)) if typ == "JWT" => {}
            Some(_) => return Err(ClerkTokenError::UnexpectedType),
        }
        match header.get("cat") {
            None => {}
            Some(Value::String(cat))
                if cat == JWT_CATEGORY_SESSION_TOKEN || cat == JWT_CATEGORY_IGNORE => {}
            Some(_) => return Err(ClerkTokenError::NotASessionToken),
        }
        let kid = match header.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
            _ => return Err(ClerkTokenError::MissingKeyId),
        };
        if signature.is_empty() {
            return Err(ClerkTokenError::InvalidSignature);
        }
        let claims = decode_json_object(parts[1], TokenPart::Payload)?;
        let signing_input_len = parts[0].len() + 1 + parts[1].len();
        Ok(Self {
            signing_input: token[..signing_input_len].to_owned(),
            signature,
            kid,
            claims,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `<header>.<payload>` as sent: the bytes the signature covers.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Unverified claims; only for diagnostics and cookie selection, never for identity.
    pub fn unverified_claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Checks the claims. Call only after the signature has been verified. Order follows
    /// Clerk's `verifyJwt` (sub, azp, iss, exp, nbf, iat), so a token with several faults is
    /// reported as Clerk would report it.
    pub fn validate(
        self,
        validation: &ClerkValidation,
        now: u64,
    ) -> Result<ClerkSession, ClerkTokenError> {
        let claims = self.claims;

        let user_id = match claims.get("sub") {
            None => return Err(ClerkTokenError::MissingClaim("sub")),
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            Some(_) => return Err(ClerkTokenError::InvalidClaim("sub")),
        };
        if user_id.starts_with(MACHINE_SUBJECT_PREFIX) {
            return Err(ClerkTokenError::NotASessionToken);
        }
        let session_id = match claims.get("sid") {
            None if validation.require_session_id => {
                return Err(ClerkTokenError::MissingClaim("sid"))
            }
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

        let exp = timestamp_claim(&claims, "exp")?.ok_or(ClerkTokenError::MissingClaim("exp"))?;
        let nbf = timestamp_claim(&claims, "nbf")?;
        let iat = timestamp_claim(&claims, "iat")?.ok_or(ClerkTokenError::MissingClaim("iat"))?;
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
            claims,
        })
    }
}

fn decode_json_object(part: &str, which: TokenPart) -> Result<Map<String, Value>, ClerkTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ClerkTokenError::InvalidBase64(which))?;
    crate::json::from_slice(&bytes).map_err(|_| ClerkTokenError::InvalidJson(which))
}

/// NumericDate claims as non-negative integers; Clerk mints integers, so anything else is
/// malformed rather than silently rounded.
fn timestamp_claim(
    claims: &Map<String, Value>,
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

/// Checks an RS256 signature for a key id. Implemented with WebCrypto in the Worker and with the
/// `rsa` crate in host tests.
// Workers run single-threaded, so the futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait SignatureVerifier {
    /// `Ok(())` when a key for `kid` exists and the signature over `signing_input` is valid;
    /// otherwise [`ClerkTokenError::UnknownKeyId`], [`ClerkTokenError::KeysUnavailable`] or
    /// [`ClerkTokenError::InvalidSignature`].
    async fn verify_signature(
        &self,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8],
        now: u64,
    ) -> Result<(), ClerkTokenError>;
}

/// The whole check: parse and header rules, signature, then claims.
pub async fn verify_session_token(
    token: &str,
    verifier: &impl SignatureVerifier,
    validation: &ClerkValidation,
    now: u64,
) -> Result<ClerkSession, ClerkTokenError> {
    // The decoding is remembered per isolate by the exact token; the signature (remembered
    // separately) and the claims at `now` are checked on every call.
    let decoded = super::clerk_decoded::decoded(token);
    let untrusted = decoded.parsed().clone()?;
    verifier
        .verify_signature(
            untrusted.kid(),
            untrusted.signing_input(),
            untrusted.signature(),
            now,
        )
        .await?;
    untrusted.validate(validation, now)
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// Why a key (JWKS entry, PEM) was refused. Key material is public, but messages stay short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not PEM / base64.
    InvalidPem,
    /// DER is not an RSA SubjectPublicKeyInfo (or PKCS#1 RSAPublicKey).
    NotAnRsaPublicKey,
    /// Modulus outside 2048..=8192 bits, or an even / tiny exponent.
    WeakOrInvalidRsaKey,
    InvalidJwks,
    /// A JWKS without a single usable RS256 signing key.
    NoUsableKeys,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidPem => "key is not a PEM-encoded public key",
            Self::NotAnRsaPublicKey => "key is not an RSA public key (SPKI)",
            Self::WeakOrInvalidRsaKey => "RSA key has an unacceptable modulus or exponent",
            Self::InvalidJwks => "JWKS is not valid JSON with a keys array",
            Self::NoUsableKeys => "JWKS has no RSA RS256 signing key",
        })
    }
}

impl std::error::Error for KeyError {}

/// An RSA public key as big-endian modulus and exponent (no leading zero bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RsaPublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl RsaPublicKey {
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let n_bits = bit_length(n);
        let e_is_odd = e.last().is_some_and(|last| last & 1 == 1);
        // e ≥ 3 and at most 32 bits (WebCrypto and the rsa crate both cap it).
        let e_ok = e_is_odd && e.len() <= 4 && !(e.len() == 1 && e[0] < 3);
        if !(MIN_RSA_MODULUS_BITS..=MAX_RSA_MODULUS_BITS).contains(&n_bits) || !e_ok {
            return Err(KeyError::WeakOrInvalidRsaKey);
        }
        Ok(Self {
            n: n.to_vec(),
            e: e.to_vec(),
        })
    }

    /// `CLERK_JWT_KEY`: a PEM `PUBLIC KEY` (SPKI), also accepted with literal `\n` sequences (as
    /// env vars often carry it), as `RSA PUBLIC KEY` (PKCS#1) or as the bare base64 body.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let text = pem.replace("\\r", "").replace("\\n", "\n");
        let body: String = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat()
            .split_whitespace()
            .collect();
        if body.is_empty() {
            return Err(KeyError::InvalidPem);
        }
        let der = FORGIVING_STANDARD_BASE64
            .decode(body)
            .map_err(|_| KeyError::InvalidPem)?;
        Self::from_der(&der)
    }

    /// DER SubjectPublicKeyInfo with `rsaEncryption`, or a bare PKCS#1 `RSAPublicKey`.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let mut outer = DerReader::new(der);
        let sequence = outer.expect(DER_SEQUENCE)?;
        outer.finish()?;
        let mut inner = DerReader::new(sequence);
        match inner.peek_tag() {
            // PKCS#1: SEQUENCE { INTEGER n, INTEGER e }
            Some(DER_INTEGER) => read_rsa_components(sequence),
            // SPKI: SEQUENCE { SEQUENCE { OID, params }, BIT STRING }
            Some(DER_SEQUENCE) => {
                let mut algorithm = DerReader::new(inner.expect(DER_SEQUENCE)?);
                if algorithm.expect(DER_OID)? != RSA_ENCRYPTION_OID {
                    return Err(KeyError::NotAnRsaPublicKey);
                }
                let bits = inner.expect(DER_BIT_STRING)?;
                inner.finish()?;
                let key = bits
                    .strip_prefix(&[0u8])
                    .ok_or(KeyError::NotAnRsaPublicKey)?;
                let mut key_reader = DerReader::new(key);
                let rsa_key = key_reader.expect(DER_SEQUENCE)?;
                key_reader.finish()?;
                read_rsa_components(rsa_key)
            }
            _ => Err(KeyError::NotAnRsaPublicKey),
        }
    }

    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// Size of a valid signature for this key, in bytes.
    pub fn modulus_len(&self) -> usize {
        self.n.len()
    }

    /// JWK `n` (base64url, no padding).
    pub fn n_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.n)
    }

    /// JWK `e` (base64url, no padding).
    pub fn e_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.e)
    }

    /// Content address of the key (hex SHA-256 prefix of n and e), to cache imported keys by
    /// what they are rather than by a `kid` that a config change could reuse.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update((self.n.len() as u32).to_be_bytes());
        hasher.update(&self.n);
        hasher.update(&self.e);
        hasher.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(&top) => (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

const DER_INTEGER: u8 = 0x02;
const DER_BIT_STRING: u8 = 0x03;
const DER_OID: u8 = 0x06;
const DER_SEQUENCE: u8 = 0x30;
/// 1.2.840.113549.1.1.1
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn read_rsa_components(sequence: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let mut reader = DerReader::new(sequence);
    let n = reader.expect(DER_INTEGER)?;
    let e = reader.expect(DER_INTEGER)?;
    reader.finish()?;
    // A positive INTEGER has its top bit clear (a 0x00 pad keeps it so).
    if n.first().is_none_or(|b| b & 0x80 != 0) || e.first().is_none_or(|b| b & 0x80 != 0) {
        return Err(KeyError::NotAnRsaPublicKey);
    }
    RsaPublicKey::from_components(n, e)
}

/// Just enough DER for public keys: definite lengths, single-byte tags.
struct DerReader<'a> {
    rest: &'a [u8],
}

impl<'a> DerReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn expect(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        let malformed = KeyError::NotAnRsaPublicKey;
        let (&found, rest) = self.rest.split_first().ok_or(malformed.clone())?;
        if found != tag {
            return Err(malformed);
        }
        let (&first_len, mut rest) = rest.split_first().ok_or(malformed.clone())?;
        let len = if first_len < 0x80 {
            usize::from(first_len)
        } else {
            let count = usize::from(first_len & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return Err(malformed);
            }
            let (len_bytes, after) = rest.split_at(count);
            rest = after;
            len_bytes
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b))
        };
        if rest.len() < len {
            return Err(malformed);
        }
        let (content, after) = rest.split_at(len);
        self.rest = after;
        Ok(content)
    }

    fn finish(&self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyError::NotAnRsaPublicKey)
        }
    }
}

/// A parsed JWKS: the RS256 signing keys by `kid`, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<(String, RsaPublicKey)>,
}

impl Jwks {
    /// Parses `{"keys":[…]}`. Entries that are not RSA signing keys for RS256 (`kty` ≠ `RSA`,
    /// `use` ≠ `sig`, `alg` ≠ `RS256`, no `kid`, weak modulus) are skipped, not fatal: a JWKS
    /// may legitimately hold other keys. A document with no usable key is an error.
    pub fn parse(json: &str) -> Result<Self, KeyError> {
        let document: Value = serde_json::from_str(json).map_err(|_| KeyError::InvalidJwks)?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeyError::InvalidJwks)?;
        let mut keys: Vec<(String, RsaPublicKey)> = Vec::new();
        for entry in entries {
            let Some((kid, key)) = rsa_signing_key_from_jwk(entry) else {
                continue;
            };
            // First entry wins; a duplicate kid must not replace a key already trusted.
            if !keys.iter().any(|(known, _)| *known == kid) {
                keys.push((kid, key));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoUsableKeys);
        }
        Ok(Self { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&RsaPublicKey> {
        self.keys
            .iter()
            .find(|(known, _)| known == kid)
            .map(|(_, key)| key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }
}

fn rsa_signing_key_from_jwk(entry: &Value) -> Option<(String, RsaPublicKey)> {
    let field = |name: &str| entry.get(name);
    if field("kty")?.as_str()? != "RSA" {
        return None;
    }
    if field("use").is_some_and(|usage| usage.as_str() != Some("sig")) {
        return None;
    }
    if field("alg").is_some_and(|alg| alg.as_str() != Some("RS256")) {
        return None;
    }
    let kid = field("kid")?.as_str().filter(|kid| !kid.is_empty())?;
    let n = URL_SAFE_NO_PAD.decode(field("n")?.as_str()?).ok()?;
    let e = URL_SAFE_NO_PAD.decode(field("e")?.as_str()?).ok()?;
    let key = RsaPublicKey::from_components(&n, &e).ok()?;
    Some((kid.to_owned(), key))
}
