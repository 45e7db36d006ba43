//! Where Clerk's signing keys come from, and the async entry points that verify a session token
//! in the Worker.
//!
//! With `CLERK_JWT_KEY` (PEM) there is no network at all: the PEM key matches any `kid`, as
//! Clerk's `jwtKey` option does. Otherwise keys come from `GET {CLERK_API_URL}/v1/jwks`, cached
//! per isolate (thread-local) and across isolates in KV (`jwks:v1`, 1 h). An unknown `kid`
//! triggers at most one refresh per [`REFRESH_INTERVAL_SECS`] per isolate, so a flood of forged
//! tokens cannot turn into a flood of Backend API calls. Fetch failures are logged once per
//! interval, never with the secret key.

use std::cell::RefCell;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use worker::kv::KvStore;
use worker::{Fetch, Headers, Method};

use super::clerk::{
    ClerkRequestState, ClerkSession, ClerkTokenError, ClerkTokenSource, ClerkValidation, Jwks,
    KeyError, RsaPublicKey, SignatureVerifier, SignedOutReason,
};
use super::webcrypto;

/// KV key of the JWKS shared across isolates.
pub const JWKS_KV_KEY: &str = "jwks:v1";
/// How long fetched keys are used before they are fetched again.
pub const JWKS_TTL_SECS: u64 = 3600;
/// Minimum time between two refresh attempts (KV + network) in one isolate.
pub const REFRESH_INTERVAL_SECS: u64 = 60;
/// When refreshing keeps failing, previously fetched keys stay usable this long: Clerk rotates
/// keys rarely, and an outage of the Backend API must not sign everybody out.
pub const MAX_STALE_SECS: u64 = 24 * 3600;
/// How long a request waits for another request's key fetch: polls of [`WAIT_POLL_MS`].
const MAX_WAIT_POLLS: u32 = 300;
const WAIT_POLL_MS: u64 = 10;

/// Marks a key fetch in flight for the isolate; lowered when the fetch ends, however it ends.
struct RefreshingFlag;

impl RefreshingFlag {
    fn raise() -> RefreshingFlag {
        ISOLATE_JWKS.with(|cell| cell.borrow_mut().refreshing = true);
        RefreshingFlag
    }
}

impl Drop for RefreshingFlag {
    fn drop(&mut self) {
        ISOLATE_JWKS.with(|cell| cell.borrow_mut().refreshing = false);
    }
}

thread_local! {
    static ISOLATE_JWKS: RefCell<IsolateJwks> = RefCell::new(IsolateJwks::default());
}

#[derive(Default)]
struct IsolateJwks {
    /// Which API URL + secret key the cached keys belong to (the secret only as a hash).
    scope: String,
    jwks: Option<Jwks>,
    fetched_at: u64,
    last_refresh_attempt: Option<u64>,
    last_failure_logged: Option<u64>,
    /// A request of this isolate is fetching the keys right now.
    refreshing: bool,
}

/// The JWKS as stored in KV, with the time it was fetched from Clerk.
#[derive(Serialize, Deserialize)]
struct KvJwksEntry {
    fetched_at: u64,
    jwks: String,
}

/// Why the JWKS could not be loaded. Never includes the secret key or response bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksFetchError {
    /// The request could not be built or sent.
    Network,
    /// Clerk answered with a non-200 status.
    Status(u16),
    /// The body was not a usable JWKS.
    InvalidBody(KeyError),
    /// The body was larger than [`MAX_JWKS_BODY`] (reading stopped there).
    TooLarge,
}

/// Largest JWKS body read from the Backend API (Clerk's holds a few RSA keys).
pub const MAX_JWKS_BODY: usize = 256 * 1024;

impl fmt::Display for JwksFetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network => f.write_str("Clerk JWKS request failed (network)"),
            Self::Status(status) => write!(f, "Clerk JWKS request answered HTTP {status}"),
            Self::InvalidBody(error) => write!(f, "Clerk JWKS response unusable: {error}"),
            Self::TooLarge => write!(f, "Clerk JWKS response larger than {MAX_JWKS_BODY} bytes"),
        }
    }
}

impl std::error::Error for JwksFetchError {}

/// The Backend API settings for fetching keys. `Debug` never shows the secret key.
#[derive(Clone)]
pub struct RemoteJwks {
    api_url: String,
    secret_key: String,
    kv: Option<KvStore>,
    scope: String,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("api_url", &self.api_url)
            .field("secret_key", &"<redacted>")
            .field("kv", &self.kv.is_some())
            .finish()
    }
}

/// Where verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `CLERK_JWT_KEY`: one key, any `kid`, no network.
    Pem(RsaPublicKey),
    /// `GET {api_url}/v1/jwks` with the secret key, cached per isolate and in KV.
    Remote(RemoteJwks),
}

impl KeySource {
    /// The PEM key when `jwt_key` is set (and non-blank), otherwise the remote JWKS.
    pub fn from_config(
        jwt_key: Option<&str>,
        api_url: &str,
        secret_key: &str,
        kv: Option<KvStore>,
    ) -> Result<Self, KeyError> {
        match jwt_key.map(str::trim).filter(|pem| !pem.is_empty()) {
            Some(pem) => Self::from_pem(pem),
            None => Ok(Self::remote(api_url, secret_key, kv)),
        }
    }

    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        RsaPublicKey::from_pem(pem).map(Self::Pem)
    }

    pub fn remote(api_url: &str, secret_key: &str, kv: Option<KvStore>) -> Self {
        let api_url = api_url.trim().trim_end_matches('/').to_owned();
        let secret_hash: String = Sha256::digest(secret_key.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self::Remote(RemoteJwks {
            scope: format!("{api_url}|{secret_hash}"),
            api_url,
            secret_key: secret_key.to_owned(),
            kv,
        })
    }

    /// The key for `kid`: see the module documentation for the caching and refresh rules.
    pub async fn key_for_kid(&self, kid: &str, now: u64) -> Result<RsaPublicKey, ClerkTokenError> {
        match self {
            Self::Pem(key) => Ok(key.clone()),
            Self::Remote(remote) => remote.key_for_kid(kid, now).await,
        }
    }
}

impl SignatureVerifier for KeySource {
    async fn verify_signature(
        &self,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8],
        now: u64,
    ) -> Result<(), ClerkTokenError> {
        let key = self.key_for_kid(kid, now).await?;
        // Synchronous when the runtime allows it: with nothing left to await, the request is
        // answered without being driven as a promise.
        let valid = match webcrypto::verify_rs256_now(&key, signing_input, signature) {
            Some(valid) => valid,
            None => webcrypto::verify_rs256(&key, signing_input, signature).await,
        };
        if valid {
            Ok(())
        } else {
            Err(ClerkTokenError::InvalidSignature)
        }
    }
}

/// What the isolate cache says about a kid, without any I/O.
enum CachedLookup {
    Fresh(RsaPublicKey),
    /// Not found (or keys stale) and a refresh is allowed now; the attempt is already recorded.
    Refresh,
    /// Not found and refreshed too recently: answer from whatever is cached.
    Wait,
}

impl RemoteJwks {
    async fn key_for_kid(&self, kid: &str, now: u64) -> Result<RsaPublicKey, ClerkTokenError> {
        match self.lookup_cached(kid, now) {
            CachedLookup::Fresh(key) => return Ok(key),
            CachedLookup::Wait => return self.key_after_waiting(kid, now).await,
            CachedLookup::Refresh => {}
        }
        let _refreshing = RefreshingFlag::raise();

        // Another isolate may already have fetched the current keys.
        if let Some(entry) = self.read_kv().await {
            if now < entry.fetched_at.saturating_add(JWKS_TTL_SECS) {
                if let Ok(jwks) = Jwks::parse(&entry.jwks) {
                    let key = jwks.get(kid).cloned();
                    self.store_in_isolate(jwks, entry.fetched_at);
                    if let Some(key) = key {
                        return Ok(key);
                    }
                }
            }
        }

        match self.fetch().await {
            Ok((jwks, body)) => {
                let key = jwks.get(kid).cloned();
                self.store_in_isolate(jwks, now);
                self.write_kv(body, now).await;
                key.ok_or(ClerkTokenError::UnknownKeyId)
            }
            Err(error) => {
                self.log_failure_once(&error, now);
                self.stale_key(kid, now)
            }
        }
    }

    fn lookup_cached(&self, kid: &str, now: u64) -> CachedLookup {
        ISOLATE_JWKS.with(|cell| {
            let mut state = cell.borrow_mut();
            if state.scope != self.scope {
                *state = IsolateJwks {
                    scope: self.scope.clone(),
                    ..IsolateJwks::default()
                };
            }
            let fresh = now < state.fetched_at.saturating_add(JWKS_TTL_SECS);
            if fresh {
                if let Some(key) = state.jwks.as_ref().and_then(|jwks| jwks.get(kid)) {
                    return CachedLookup::Fresh(key.clone());
                }
            }
            let may_refresh = state
                .last_refresh_attempt
                .is_none_or(|last| now >= last.saturating_add(REFRESH_INTERVAL_SECS));
            if may_refresh {
                // Recorded before any await, so concurrent requests do not refresh twice.
                state.last_refresh_attempt = Some(now);
                CachedLookup::Refresh
            } else {
                CachedLookup::Wait
            }
        })
    }

    /// The key from the isolate cache even if past its TTL (up to [`MAX_STALE_SECS`]).
    fn stale_key(&self, kid: &str, now: u64) -> Result<RsaPublicKey, ClerkTokenError> {
        ISOLATE_JWKS.with(|cell| {
            let state = cell.borrow();
            let usable =
                state.scope == self.scope && now < state.fetched_at.saturating_add(MAX_STALE_SECS);
            match state.jwks.as_ref().filter(|_| usable) {
                Some(jwks) => jwks.get(kid).cloned().ok_or(ClerkTokenError::UnknownKeyId),
                None => Err(ClerkTokenError::KeysUnavailable),
            }
        })
    }

    /// A refresh is not allowed now. If another request of this isolate is fetching the keys
    /// (typically the first requests of a fresh isolate, arriving together), wait for it
    /// rather than calling a valid session signed out; with nothing cached at all, try the
    /// keys another isolate shared in KV.
    async fn key_after_waiting(
        &self,
        kid: &str,
        now: u64,
    ) -> Result<RsaPublicKey, ClerkTokenError> {
        for _ in 0..MAX_WAIT_POLLS {
            if !ISOLATE_JWKS.with(|cell| cell.borrow().refreshing) {
                break;
            }
            worker::Delay::from(std::time::Duration::from_millis(WAIT_POLL_MS)).await;
        }
        match self.stale_key(kid, now) {
            Err(ClerkTokenError::KeysUnavailable) => {
                let entry = self
                    .read_kv()
                    .await
                    .ok_or(ClerkTokenError::KeysUnavailable)?;
                let jwks =
                    Jwks::parse(&entry.jwks).map_err(|_| ClerkTokenError::KeysUnavailable)?;
                let key = jwks.get(kid).cloned();
                self.store_in_isolate(jwks, entry.fetched_at);
                key.ok_or(ClerkTokenError::UnknownKeyId)
            }
            other => other,
        }
    }

    fn store_in_isolate(&self, jwks: Jwks, fetched_at: u64) {
        ISOLATE_JWKS.with(|cell| {
            let mut state = cell.borrow_mut();
            if state.scope == self.scope && fetched_at >= state.fetched_at {
                state.jwks = Some(jwks);
                state.fetched_at = fetched_at;
            }
        });
    }

    async fn read_kv(&self) -> Option<KvJwksEntry> {
        let kv = self.kv.as_ref()?;
        match kv.get(JWKS_KV_KEY).json::<KvJwksEntry>().await {
            Ok(entry) => entry,
            Err(_) => {
                worker::console_warn!("clerk jwks: KV read of {JWKS_KV_KEY} failed");
                None
            }
        }
    }

    async fn write_kv(&self, jwks: String, now: u64) {
        let Some(kv) = self.kv.as_ref() else {
            return;
        };
        let entry = KvJwksEntry {
            fetched_at: now,
            jwks,
        };
        let Ok(value) = serde_json::to_string(&entry) else {
            return;
        };
        let written = match crate::kv::put(kv, JWKS_KV_KEY, &value) {
            Ok(put) => put.expiration_ttl(JWKS_TTL_SECS).execute().await.is_ok(),
            Err(_) => false,
        };
        if !written {
            worker::console_warn!("clerk jwks: KV write of {JWKS_KV_KEY} failed");
        }
    }

    /// `GET {api_url}/v1/jwks`; returns the parsed keys and the body to share through KV.
    async fn fetch(&self) -> Result<(Jwks, String), JwksFetchError> {
        let url = format!("{}/v1/jwks", self.api_url);
        let headers = Headers::new();
        headers
            .set("Authorization", &format!("Bearer {}", self.secret_key))
            .map_err(|_| JwksFetchError::Network)?;
        headers
            .set("Accept", "application/json")
            .map_err(|_| JwksFetchError::Network)?;
        let request = crate::outbound::request(&url, Method::Get, &headers, None, false)
            .map_err(|_| JwksFetchError::Network)?;
        let mut response = Fetch::Request(request)
            .send()
            .await
            .map_err(|_| JwksFetchError::Network)?;
        let status = response.status_code();
        if status != 200 {
            return Err(JwksFetchError::Status(status));
        }
        // Capped while it streams: Clerk's key set is a few kilobytes.
        let body = crate::capped_body::read_capped(&mut response, MAX_JWKS_BODY)
            .await
            .map_err(|e| match e {
                crate::capped_body::BodyError::TooLarge { .. } => JwksFetchError::TooLarge,
                crate::capped_body::BodyError::Read(_) => JwksFetchError::Network,
            })?;
        let body = String::from_utf8(body).map_err(|_| JwksFetchError::Network)?;
        let jwks = Jwks::parse(&body).map_err(JwksFetchError::InvalidBody)?;
        Ok((jwks, body))
    }

    fn log_failure_once(&self, error: &JwksFetchError, now: u64) {
        let should_log = ISOLATE_JWKS.with(|cell| {
            let mut state = cell.borrow_mut();
            let due = state
                .last_failure_logged
                .is_none_or(|last| now >= last.saturating_add(REFRESH_INTERVAL_SECS));
            if due {
                state.last_failure_logged = Some(now);
            }
            due
        });
        if should_log {
            // The URL is configuration, not a secret; the key is only ever in a header.
            worker::console_error!("clerk jwks: {error} ({}/v1/jwks)", self.api_url);
        }
    }
}

/// Verifies a Clerk session token: header rules, signature (remembered per isolate with the
/// token's decoding, see `clerk_decoded`), then claims at `now` — the same pipeline the host
/// tests run.
pub async fn verify_session(
    token: &str,
    keys: &KeySource,
    validation: &ClerkValidation,
    now: u64,
) -> Result<ClerkSession, ClerkTokenError> {
    super::clerk::verify_session_token(token, keys, validation, now).await
}

/// Clerk authentication of one request, given the token source from
/// [`super::clerk::session_token_from_request`].
pub async fn authenticate(
    source: &ClerkTokenSource<'_>,
    keys: &KeySource,
    validation: &ClerkValidation,
    now: u64,
) -> ClerkRequestState {
    let token = match source {
        ClerkTokenSource::Bearer(token) | ClerkTokenSource::Cookie { token, .. } => *token,
        ClerkTokenSource::SignedOut(reason) => return ClerkRequestState::SignedOut(reason.clone()),
        ClerkTokenSource::NeedsHandshake(reason) => {
            return ClerkRequestState::NeedsHandshake(*reason)
        }
    };
    let verified = verify_session(token, keys, validation, now).await;
    super::clerk::request_state_after_verification(source, verified)
}

/// Whether a state came from a token that failed verification (for logging by the caller).
pub fn invalid_token_error(state: &ClerkRequestState) -> Option<&ClerkTokenError> {
    match state {
        ClerkRequestState::SignedOut(SignedOutReason::InvalidToken(error)) => Some(error),
        _ => None,
    }
}
