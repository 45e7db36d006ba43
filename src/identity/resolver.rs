//! Resolves the identity of one request (glue): a valid Clerk session wins, otherwise a valid
//! NextAuth session (unless the phase is `clerk-only`), otherwise anonymous.
//!
//! Built once per isolate with every key derived and imported up front. Failure is anonymity:
//! nothing here can fail a request; a bad cookie, an unreachable JWKS or a misconfiguration
//! degrades to a weaker identity and is logged without any cookie, token or secret value.

use std::cell::{Cell, RefCell};

use serde::Deserialize;
use worker::kv::KvStore;

use super::cache::VerifiedCache;
use super::clerk::{
    is_handshake_eligible, session_token_from_request, ClerkRequestState, ClerkSession,
    ClerkValidation, HandshakeReason, PublishableKey,
};
use super::jwks::{self, KeySource};
use super::nextauth::{NextAuthOutcome, NextAuthSession, NextAuthVerifier};
use super::{Identity, Source};
use crate::config::{Config, Phase};
use crate::cookies::Cookies;
use crate::migration::ledger::clerk_to_legacy_key;

/// How long a Clerk id → legacy id answer from KV is reused in the isolate.
const LEGACY_ID_TTL_SECS: u64 = 300;
/// How long the origin's answer about a database session is reused.
const DATABASE_SESSION_TTL_SECS: u64 = 30;
/// Minimum time between two log lines about rejected cookies (an attack must not flood logs).
const REJECTION_LOG_INTERVAL_SECS: u64 = 60;

/// Clerk verification settings, present when the publishable key is usable.
pub struct ClerkContext {
    pub publishable_key: PublishableKey,
    pub validation: ClerkValidation,
    pub keys: Option<KeySource>,
}

/// What the request looked like to the resolver, for the steps after it.
pub struct Resolution {
    pub identity: Identity,
    /// Clerk's view of the request (handshake decisions need it); `None` without Clerk config.
    pub clerk: Option<ClerkRequestState>,
    /// The NextAuth session, when one was valid (the trickle migrates it).
    pub nextauth: Option<NextAuthSession>,
}

impl Resolution {
    /// No identity looked at: for requests that do not need one.
    pub fn anonymous() -> Resolution {
        Resolution {
            identity: Identity::anonymous(),
            clerk: None,
            nextauth: None,
        }
    }

    /// The reason this request should get Clerk's handshake redirect, if it should.
    pub fn handshake_reason(
        &self,
        method: &str,
        sec_fetch_dest: Option<&str>,
        accept: Option<&str>,
    ) -> Option<HandshakeReason> {
        match &self.clerk {
            Some(ClerkRequestState::NeedsHandshake(reason))
                if is_handshake_eligible(method, sec_fetch_dest, accept) =>
            {
                Some(*reason)
            }
            _ => None,
        }
    }
}

/// Facts of a database session, as the origin answered them.
#[derive(Clone)]
struct DatabaseSessionFacts {
    user_id: Option<String>,
    email: Option<String>,
}

pub struct IdentityResolver {
    phase: Phase,
    nextauth: Option<NextAuthVerifier>,
    clerk: Option<ClerkContext>,
    legacy_id_claim: Option<String>,
    legacy_ids: RefCell<VerifiedCache<Option<String>>>,
    database_sessions: RefCell<VerifiedCache<Option<DatabaseSessionFacts>>>,
    last_rejection_log: Cell<u64>,
}

/// The parts of the request the resolver reads.
pub struct RequestFacts<'a> {
    pub cookie_header: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub dev_browser_in_query: bool,
    /// Where `GET /api/auth/session` is asked about database sessions (the origin's base URL).
    pub origin_base: &'a str,
}

impl IdentityResolver {
    /// Builds the resolver from the configuration: derives NextAuth keys, parses the Clerk keys.
    /// Problems are appended to `problems` (they are shown in the admin status).
    pub fn new(
        config: &Config,
        kv: Option<KvStore>,
        problems: &mut Vec<String>,
    ) -> IdentityResolver {
        let nextauth = (config.phase.accepts_nextauth() && !config.nextauth_secrets.is_empty())
            .then(|| {
                NextAuthVerifier::new(
                    &config.nextauth_secrets,
                    config.nextauth_cookie_name.as_deref(),
                )
            });
        let clerk = config.clerk_publishable_key.as_deref().and_then(|pk| match PublishableKey::parse(pk) {
            Ok(publishable_key) => {
                let mut validation = ClerkValidation::new(&publishable_key);
                validation.authorized_parties = config.clerk_authorized_parties.clone();
                let keys = match (&config.clerk_jwt_key, &config.clerk_secret_key) {
                    (Some(pem), _) => match KeySource::from_pem(pem) {
                        Ok(keys) => Some(keys),
                        Err(error) => {
                            problems.push(format!("CLERK_JWT_KEY: {error}"));
                            config.clerk_secret_key.as_deref().map(|secret| {
                                KeySource::remote(&config.clerk_api_url.join(""), secret, kv.clone())
                            })
                        }
                    },
                    (None, Some(secret)) => Some(KeySource::remote(&config.clerk_api_url.join(""), secret, kv.clone())),
                    (None, None) => {
                        problems.push(
                            "Clerk sessions cannot be verified: neither CLERK_JWT_KEY nor CLERK_SECRET_KEY is set".into(),
                        );
                        None
                    }
                };
                Some(ClerkContext { publishable_key, validation, keys })
            }
            Err(error) => {
                problems.push(format!("CLERK_PUBLISHABLE_KEY: {error}"));
                None
            }
        });
        IdentityResolver {
            phase: config.phase,
            nextauth,
            clerk,
            legacy_id_claim: config.clerk_legacy_id_claim.clone(),
            legacy_ids: RefCell::new(VerifiedCache::new(4096)),
            database_sessions: RefCell::new(VerifiedCache::new(1024)),
            last_rejection_log: Cell::new(0),
        }
    }

    pub fn clerk(&self) -> Option<&ClerkContext> {
        self.clerk.as_ref()
    }

    pub fn nextauth(&self) -> Option<&NextAuthVerifier> {
        self.nextauth.as_ref()
    }

    pub async fn resolve(
        &self,
        request: &RequestFacts<'_>,
        kv: Option<&KvStore>,
        now: u64,
    ) -> Resolution {
        let cookies = Cookies::parse(request.cookie_header.unwrap_or(""));

        let clerk_state = match &self.clerk {
            Some(ctx) => Some(self.clerk_state(ctx, &cookies, request, now).await),
            None => None,
        };
        if let Some(ClerkRequestState::SignedIn(session)) = &clerk_state {
            let identity = self.clerk_identity(session, kv, now).await;
            return Resolution {
                identity,
                clerk: clerk_state,
                nextauth: None,
            };
        }
        if let Some(error) = clerk_state.as_ref().and_then(jwks::invalid_token_error) {
            self.log_rejection("clerk", &error.to_string(), now);
        }

        let mut resolution = Resolution {
            identity: Identity::anonymous(),
            clerk: clerk_state,
            nextauth: None,
        };
        let Some(verifier) = &self.nextauth else {
            return resolution;
        };
        match verifier.session_from_cookies(&cookies, now) {
            NextAuthOutcome::NoCookie => {}
            NextAuthOutcome::Session(session) => {
                resolution.identity = Identity {
                    source: Source::NextAuth,
                    user_id: Some(session.sub.clone()),
                    clerk_user_id: None,
                    email: session.email.clone(),
                    session_id: None,
                };
                resolution.nextauth = Some(session);
            }
            NextAuthOutcome::DatabaseSession { cookie_name, token } => {
                if let Some(facts) = self
                    .database_session(&cookie_name, &token, request.origin_base, now)
                    .await
                {
                    resolution.identity = Identity {
                        source: Source::NextAuth,
                        user_id: facts.user_id,
                        clerk_user_id: None,
                        email: facts.email,
                        session_id: None,
                    };
                }
            }
            NextAuthOutcome::Rejected(error) => {
                self.log_rejection("nextauth", &error.to_string(), now)
            }
        }
        resolution
    }

    async fn clerk_state(
        &self,
        ctx: &ClerkContext,
        cookies: &Cookies<'_>,
        request: &RequestFacts<'_>,
        now: u64,
    ) -> ClerkRequestState {
        let source = session_token_from_request(
            &|name| cookies.get(name),
            request.authorization,
            request.dev_browser_in_query,
            &ctx.publishable_key,
            now,
        );
        match &ctx.keys {
            Some(keys) => jwks::authenticate(&source, keys, &ctx.validation, now).await,
            // Without keys nothing can be verified: treat every token as absent.
            None => ClerkRequestState::SignedOut(
                super::clerk::SignedOutReason::SessionTokenAndUatMissing,
            ),
        }
    }

    /// The identity of a Clerk session: the legacy id from the configured claim, else from the
    /// migration's KV mapping, else the Clerk id itself (users born in Clerk).
    async fn clerk_identity(
        &self,
        session: &ClerkSession,
        kv: Option<&KvStore>,
        now: u64,
    ) -> Identity {
        let from_claim = self
            .legacy_id_claim
            .as_deref()
            .and_then(|claim| session.claims.get(claim))
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty() && *v != session.user_id)
            .map(str::to_string);
        let legacy = match from_claim {
            Some(id) => Some(id),
            None => self.legacy_id_for(&session.user_id, kv, now).await,
        };
        let email = ["email", "primary_email", "primaryEmail"]
            .iter()
            .find_map(|name| session.claims.get(*name).and_then(|v| v.as_str()))
            .map(str::to_string);
        Identity {
            source: Source::Clerk,
            user_id: Some(legacy.unwrap_or_else(|| session.user_id.clone())),
            clerk_user_id: Some(session.user_id.clone()),
            email,
            session_id: session.session_id.clone(),
        }
    }

    async fn legacy_id_for(
        &self,
        clerk_id: &str,
        kv: Option<&KvStore>,
        now: u64,
    ) -> Option<String> {
        let key = VerifiedCache::<Option<String>>::key(&[clerk_id]);
        if let Some(known) = self.legacy_ids.borrow_mut().get(&key, now) {
            return known;
        }
        let kv = kv?;
        match kv.get(&clerk_to_legacy_key(clerk_id)).text().await {
            Ok(value) => {
                let value = value.filter(|v| !v.is_empty());
                self.legacy_ids.borrow_mut().insert(
                    key,
                    value.clone(),
                    now + LEGACY_ID_TTL_SECS,
                    now,
                );
                value
            }
            Err(error) => {
                worker::console_error!(
                    "auth-bridge: KV read of the legacy id mapping failed: {error}"
                );
                None
            }
        }
    }

    /// Asks the origin (`GET /api/auth/session` with only that cookie) about an opaque
    /// database-session token; remembers the answer briefly.
    async fn database_session(
        &self,
        cookie_name: &str,
        token: &str,
        origin_base: &str,
        now: u64,
    ) -> Option<DatabaseSessionFacts> {
        let key = VerifiedCache::<()>::key(&[cookie_name, token]);
        if let Some(known) = self.database_sessions.borrow_mut().get(&key, now) {
            return known;
        }
        let facts = fetch_database_session(cookie_name, token, origin_base).await;
        match facts {
            Ok(facts) => {
                self.database_sessions.borrow_mut().insert(
                    key,
                    facts.clone(),
                    now + DATABASE_SESSION_TTL_SECS,
                    now,
                );
                facts
            }
            Err(reason) => {
                // Not cached: the next request asks again.
                self.log_rejection("nextauth database session", &reason, now);
                None
            }
        }
    }

    fn log_rejection(&self, kind: &str, reason: &str, now: u64) {
        if now >= self.last_rejection_log.get() + REJECTION_LOG_INTERVAL_SECS {
            self.last_rejection_log.set(now);
            worker::console_log!("auth-bridge: {kind} session rejected: {reason} (further rejections muted for 60 s)");
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
}

#[derive(Deserialize)]
struct SessionAnswer {
    user: Option<SessionUser>,
}

#[derive(Deserialize)]
struct SessionUser {
    id: Option<serde_json::Value>,
    email: Option<String>,
}

/// `Ok(None)`: the origin says there is no session. `Err`: the origin could not answer.
async fn fetch_database_session(
    cookie_name: &str,
    token: &str,
    origin_base: &str,
) -> Result<Option<DatabaseSessionFacts>, String> {
    let headers = worker::Headers::new();
    headers
        .set("cookie", &format!("{cookie_name}={token}"))
        .map_err(|e| e.to_string())?;
    headers
        .set("accept", "application/json")
        .map_err(|e| e.to_string())?;
    // Marks the hop, so a session URL that leads back to this worker is refused, not recursed.
    headers
        .set("via", &crate::proxy::via_with_bridge(None))
        .map_err(|e| e.to_string())?;
    let mut init = worker::RequestInit::new();
    init.with_headers(headers)
        .with_redirect(worker::RequestRedirect::Manual);
    let url = format!("{}/api/auth/session", origin_base.trim_end_matches('/'));
    let request = worker::Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    let mut response = worker::Fetch::Request(request)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status_code() != 200 {
        return Err(format!("origin answered {}", response.status_code()));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    if text.len() > 64 * 1024 {
        return Err("session answer too large".into());
    }
    // next-auth answers `{}` (or `null`) when there is no session.
    let answer: Option<SessionAnswer> =
        serde_json::from_str(&text).map_err(|_| "session answer is not JSON".to_string())?;
    Ok(answer
        .and_then(|a| a.user)
        .map(|user| DatabaseSessionFacts {
            user_id: user.id.and_then(|id| match id {
                serde_json::Value::String(s) if !s.is_empty() => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
            email: user.email,
        }))
}
