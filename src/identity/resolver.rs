//! Resolves the identity of one request (glue): a valid Clerk session wins, otherwise a valid
//! NextAuth session (unless the phase is `clerk-only`), otherwise anonymous.
//!
//! A Clerk session is forwarded under Clerk's `external_id` (`clerk_id`; see `legacy_id` for
//! the order of sources and why an unanswerable look-up gives no identity); a pending one gives
//! no identity unless `CLERK_TREAT_PENDING_AS_SIGNED_OUT=false`. An opaque NextAuth value is
//! asked about at the origin only when next-auth could have generated it, within the client
//! address's cap.
//!
//! Built once per isolate with every key derived and imported up front. Failure is anonymity:
//! nothing here can fail a request; a bad cookie, an unreachable JWKS or a misconfiguration
//! degrades to a weaker identity and is logged without any cookie, token or secret value.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use worker::kv::KvStore;

use super::cache::VerifiedCache;
use super::clerk::{
    is_handshake_eligible, session_token_from_request, ClerkRequestState, ClerkSession,
    ClerkValidation, HandshakeReason, InstanceType, PublishableKey, SignedOutReason,
};
use super::database_session::{
    fetch_database_session, is_database_session_candidate, DatabaseSessionFacts,
    DATABASE_SESSION_NEGATIVE_TTL_SECS, DATABASE_SESSION_TTL_SECS,
};
use super::jwks::{self, KeySource};
use super::legacy_id::LegacyIds;
use super::memo::{Recalled, ResolutionMemo, Reuse};
use super::nextauth::{
    NextAuthError, NextAuthOutcome, NextAuthSession, NextAuthVerifier, CLOCK_TOLERANCE_SECS,
};
use super::revocation;
use super::{Identity, Source};
use crate::budget;
use crate::clerk_api::fetch::FetchClerk;
use crate::config::{Config, DatabaseSessions, Phase, RateLimit};
use crate::cookies::Cookies;

mod clerk_id;

/// Backend API deadline for a user look-up: a page load is waiting on it.
const USER_LOOKUP_TIMEOUT_SECS: u64 = 3;
/// Minimum time between two log lines about rejected cookies (an attack must not flood logs).
const REJECTION_LOG_INTERVAL_SECS: u64 = 60;
/// A Clerk session's answer is reused at most this long (its token lives about a minute; the
/// signature memory of `jwks` is as long).
const CLERK_REUSE_SECS: u64 = 60;

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
    /// The base name of a NextAuth session cookie refused by a kill switch (revoked, or older
    /// than `NEXTAUTH_SESSIONS_NOT_BEFORE`): it is not forwarded, so the origin cannot renew it.
    pub killed_nextauth_cookie: Option<String>,
    /// A valid NextAuth JWT session came beside the Clerk session (counted as both).
    pub nextauth_beside_clerk: bool,
    /// How long the same `Cookie` and `Authorization` bytes give this very answer, when it may be
    /// remembered (see `memo`).
    pub reuse: Option<Reuse>,
}

impl Resolution {
    /// No identity looked at: for requests that do not need one.
    pub fn anonymous() -> Resolution {
        Resolution {
            identity: Identity::anonymous(),
            clerk: None,
            nextauth: None,
            killed_nextauth_cookie: None,
            nextauth_beside_clerk: false,
            reuse: None,
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

pub struct IdentityResolver {
    phase: Phase,
    nextauth: Option<NextAuthVerifier>,
    clerk: Option<ClerkContext>,
    legacy_id_claim: Option<String>,
    treat_pending_as_signed_out: bool,
    /// The Backend API, for user look-ups (`None` without `CLERK_SECRET_KEY`).
    clerk_api: Option<FetchClerk>,
    rate_limit: RateLimit,
    legacy_ids: RefCell<LegacyIds>,
    database_session_values: DatabaseSessions,
    sessions_not_before: Option<u64>,
    database_sessions: RefCell<VerifiedCache<Option<DatabaseSessionFacts>>>,
    last_rejection_log: Cell<u64>,
    last_lookup_log: Cell<u64>,
    /// Whole answers by the exact request bytes (see `memo`).
    memo: RefCell<ResolutionMemo>,
    /// `external_id`s learned from KV or Clerk so far (see [`Reuse::until_learning`]).
    external_ids_learned: Cell<u64>,
    /// Called when one is learned: answers handed elsewhere that stand only until then must go
    /// (see [`Self::on_learning`]).
    on_learning: Cell<Option<fn()>>,
}

/// An answer recalled for a request's exact `Cookie` and `Authorization` (see
/// [`IdentityResolver::recall`]).
pub struct Recall {
    pub answer: Rc<Recalled>,
    /// Until when (unix seconds) it stands on the clock: its tokens' expiry and, when a NextAuth
    /// session is involved, the revocation snapshot's next read; `None` when that is now. What
    /// ends it sooner is the caller's to apply: a revoke made on this isolate, and a newly
    /// learned `external_id` for an answer that stands only until then
    /// ([`IdentityResolver::on_learning`]).
    pub standing_until: Option<u64>,
}

/// What the NextAuth cookie beside a Clerk session says.
struct NextAuthBeside {
    /// Refused by a kill switch: not forwarded.
    killed: Option<String>,
    /// A valid JWT session.
    valid: bool,
    /// How long this stands (`None`: it may change, e.g. a token not valid yet).
    reuse: Option<Reuse>,
}

/// The parts of the request the resolver reads.
pub struct RequestFacts<'a> {
    pub cookie_header: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub dev_browser_in_query: bool,
    /// Where `GET /api/auth/session` is asked about database sessions (the origin's base URL).
    pub origin_base: &'a str,
    /// `CF-Connecting-IP`: what one address can make the worker ask is capped.
    pub client_address: Option<&'a str>,
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
                // Reported anyway: fixing one setting must not uncover another only later.
                if let Some(Err(error)) = config.clerk_jwt_key.as_deref().map(KeySource::from_pem) {
                    problems.push(format!("CLERK_JWT_KEY: {error}"));
                }
                None
            }
        });
        let clerk_api = config.clerk_secret_key.as_deref().map(|secret| {
            FetchClerk::new(&config.clerk_api_url.join(""), secret)
                .with_timeout(std::time::Duration::from_secs(USER_LOOKUP_TIMEOUT_SECS))
        });
        if clerk.is_some() && config.clerk_legacy_id_claim.is_none() && clerk_api.is_none() {
            problems.push(
                "CLERK_LEGACY_ID_CLAIM: unset and no CLERK_SECRET_KEY to look users up; Clerk users \
                 without a KV mapping are forwarded under their Clerk id"
                    .into(),
            );
        }
        IdentityResolver {
            phase: config.phase,
            nextauth,
            clerk,
            legacy_id_claim: config.clerk_legacy_id_claim.clone(),
            treat_pending_as_signed_out: config.clerk_treat_pending_as_signed_out,
            clerk_api,
            rate_limit: config.clerk_rate_limit,
            legacy_ids: RefCell::new(LegacyIds::new(4096)),
            database_session_values: config.database_sessions,
            sessions_not_before: config.nextauth_sessions_not_before,
            database_sessions: RefCell::new(VerifiedCache::new(1024)),
            last_rejection_log: Cell::new(0),
            last_lookup_log: Cell::new(0),
            memo: RefCell::new(ResolutionMemo::new()),
            external_ids_learned: Cell::new(0),
            on_learning: Cell::new(None),
        }
    }

    /// Has `forget` called whenever an `external_id` is learned, at that moment: whoever keeps
    /// answers by [`Recall::standing_until`] outside this resolver drops them there.
    pub fn on_learning(&self, forget: fn()) {
        self.on_learning.set(Some(forget));
    }

    /// The answer remembered for exactly this request's `Cookie` and `Authorization`, while it
    /// stands (see `memo`); `None`: resolve it. `kv_bound`: the revocation list is read from KV.
    pub fn recall(&self, request: &RequestFacts<'_>, kv_bound: bool, now: u64) -> Option<Recall> {
        if request.dev_browser_in_query {
            return None;
        }
        let memo = self.memo.borrow();
        if memo.is_empty() {
            return None;
        }
        let (answer, reuse) = memo.recall(
            request.cookie_header,
            request.authorization,
            now,
            revocation::kv::settled_version(kv_bound, now),
            self.external_ids_learned.get(),
        )?;
        let until = match reuse.revocation {
            Some(_) => reuse.until.min(revocation::kv::settled_until(kv_bound)),
            None => reuse.until,
        };
        Some(Recall {
            answer,
            standing_until: (until > now).then_some(until),
        })
    }

    /// Remembers `resolution` of `request`, with the identity headers built from it, when the
    /// resolver said how long it stands.
    pub fn remember(
        &self,
        request: &RequestFacts<'_>,
        resolution: &Resolution,
        headers: &str,
        now: u64,
    ) {
        let Some(reuse) = resolution.reuse else {
            return;
        };
        if request.dev_browser_in_query {
            return;
        }
        self.memo.borrow_mut().remember(
            request.cookie_header,
            request.authorization,
            Recalled {
                identity: resolution.identity.clone(),
                headers: headers.to_string(),
                nextauth_beside_clerk: resolution.nextauth_beside_clerk,
            },
            reuse,
            now,
        );
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
            let (identity, id_reuse) = self.clerk_identity(session, kv, now).await;
            // A revoked NextAuth cookie beside a Clerk session must not reach the origin either.
            let beside = self.nextauth_beside_clerk(&cookies, kv, now).await;
            let reuse = match (id_reuse, beside.reuse, &self.clerk) {
                (Some(id), Some(beside_reuse), Some(ctx)) => Some(
                    id.and(beside_reuse)
                        .ending(clerk_session_end(session, ctx, now)),
                ),
                _ => None,
            };
            return Resolution {
                identity,
                clerk: clerk_state,
                nextauth: None,
                killed_nextauth_cookie: beside.killed,
                nextauth_beside_clerk: beside.valid,
                reuse,
            };
        }
        if let Some(error) = clerk_state.as_ref().and_then(jwks::invalid_token_error) {
            self.log_rejection("clerk", &error.to_string(), now);
        }

        // No Clerk session, and none can appear later for the same bytes (a token rejected now
        // may be valid later, e.g. issued a little in the future; a handshake is no answer).
        let clerk_settled = matches!(
            clerk_state,
            None | Some(ClerkRequestState::SignedOut(
                SignedOutReason::SessionTokenAndUatMissing
            ))
        );
        let mut resolution = Resolution {
            identity: Identity::anonymous(),
            clerk: clerk_state,
            nextauth: None,
            killed_nextauth_cookie: None,
            nextauth_beside_clerk: false,
            reuse: None,
        };
        let Some(verifier) = &self.nextauth else {
            resolution.reuse = clerk_settled.then(|| Reuse::from(now));
            return resolution;
        };
        let mut outcome = verifier.session_from_cookies(&cookies, now);
        if let NextAuthOutcome::Session(session) = &outcome {
            let (iat, sub) = (session.iat, &session.sub);
            if let Some(refusal) =
                revocation::kv::check_session(iat, sub, self.sessions_not_before, kv, now).await
            {
                self.log_rejection("nextauth", &refusal.to_string(), now);
                resolution.killed_nextauth_cookie = Some(session.cookie_name.clone());
            }
        }
        let killed = resolution.killed_nextauth_cookie.is_some();
        if clerk_settled {
            resolution.reuse = nextauth_reuse(&outcome, killed, kv.is_some(), now);
        }
        if killed {
            outcome = NextAuthOutcome::NoCookie;
        }
        match outcome {
            NextAuthOutcome::NoCookie => {}
            NextAuthOutcome::Session(session) => {
                resolution.identity = Identity {
                    source: Source::NextAuth,
                    user_id: Some(session.sub.clone()),
                    clerk_user_id: None,
                    email: session.email.clone(),
                    session_id: None,
                    session_status: None,
                };
                resolution.nextauth = Some(session);
            }
            NextAuthOutcome::DatabaseSession { cookie_name, token }
                if is_database_session_candidate(self.database_session_values, &token) =>
            {
                if let Some(facts) = self
                    .database_session(&cookie_name, &token, request, now)
                    .await
                {
                    resolution.identity = Identity {
                        source: Source::NextAuth,
                        user_id: facts.user_id,
                        clerk_user_id: None,
                        email: facts.email,
                        session_id: None,
                        session_status: None,
                    };
                }
            }
            // A value next-auth could not have generated: nobody to ask about.
            NextAuthOutcome::DatabaseSession { .. } => {}
            NextAuthOutcome::Rejected(error) => {
                self.log_rejection("nextauth", &error.to_string(), now)
            }
        }
        resolution
    }

    /// What the NextAuth cookie beside a Clerk session says: whether it is a valid session
    /// (counted as both), refused by a kill switch (then not forwarded; only checked when such a
    /// cookie is there), and how long that stands.
    async fn nextauth_beside_clerk(
        &self,
        cookies: &Cookies<'_>,
        kv: Option<&KvStore>,
        now: u64,
    ) -> NextAuthBeside {
        let outcome = match &self.nextauth {
            Some(verifier) => verifier.session_from_cookies(cookies, now),
            None => NextAuthOutcome::NoCookie,
        };
        let NextAuthOutcome::Session(session) = &outcome else {
            // Beside a Clerk session an opaque database session is never asked about: its
            // value decides nothing, as if it were absent.
            let outcome = match outcome {
                NextAuthOutcome::DatabaseSession { .. } => NextAuthOutcome::NoCookie,
                other => other,
            };
            return NextAuthBeside {
                killed: None,
                valid: false,
                reuse: nextauth_reuse(&outcome, false, kv.is_some(), now),
            };
        };
        let killed = revocation::kv::check_session(
            session.iat,
            &session.sub,
            self.sessions_not_before,
            kv,
            now,
        )
        .await
        .map(|_| session.cookie_name.clone());
        NextAuthBeside {
            reuse: nextauth_reuse(&outcome, killed.is_some(), kv.is_some(), now),
            killed,
            valid: true,
        }
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

    /// Asks the origin (`GET /api/auth/session` with only that cookie) about an opaque
    /// database-session token; remembers the answer briefly.
    async fn database_session(
        &self,
        cookie_name: &str,
        token: &str,
        request: &RequestFacts<'_>,
        now: u64,
    ) -> Option<DatabaseSessionFacts> {
        let key = VerifiedCache::<()>::key(&[cookie_name, token]);
        if let Some(known) = self.database_sessions.borrow_mut().get(&key, now) {
            return known;
        }
        // Made-up values cost the origin a request each: capped per client address.
        let address = request.client_address.unwrap_or("");
        if budget::client_may_call(address, now * 1000).is_err() {
            self.log_rejection(
                "nextauth database session",
                "client address over its look-up cap",
                now,
            );
            return None;
        }
        let facts = fetch_database_session(cookie_name, token, request.origin_base).await;
        let (facts, ttl) = match facts {
            Ok(Some(facts)) => (Some(facts), DATABASE_SESSION_TTL_SECS),
            Ok(None) => (None, DATABASE_SESSION_NEGATIVE_TTL_SECS),
            Err(reason) => {
                self.log_rejection("nextauth database session", &reason, now);
                (None, DATABASE_SESSION_NEGATIVE_TTL_SECS / 2)
            }
        };
        self.database_sessions
            .borrow_mut()
            .insert(key, facts.clone(), now + ttl, now);
        facts
    }

    fn log_rejection(&self, kind: &str, reason: &str, now: u64) {
        // The console is the runtime's: host tests resolve without one.
        if now >= self.last_rejection_log.get() + REJECTION_LOG_INTERVAL_SECS
            && cfg!(target_arch = "wasm32")
        {
            self.last_rejection_log.set(now);
            worker::console_log!("auth-bridge: {kind} session rejected: {reason} (further rejections muted for 60 s)");
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
}

/// How long the same `Cookie` bytes give the same answer about NextAuth, when they must
/// (`None`: resolved every time; see `memo`). `killed`: the session was refused by a kill switch.
/// - No session cookie: nothing can change that.
/// - A valid session: see [`nextauth_session_reuse`]. One refused by a kill switch is not
///   remembered: the memory keeps no cookie to withhold from the origin.
/// - A token refused for what it is (malformed, tampered, keyed with no secret of ours, expired,
///   no `sub`): the same bytes are refused the same way for as long as the keys are the same,
///   and they are this resolver's (a new configuration is a new resolver, with an empty memory);
///   an expired token never becomes valid again.
/// - A token refused only because its `nbf` is ahead becomes valid by itself: not remembered.
/// - An opaque database session is the origin's answer, with its own memory and per-address cap.
fn nextauth_reuse(
    outcome: &NextAuthOutcome,
    killed: bool,
    kv_bound: bool,
    now: u64,
) -> Option<Reuse> {
    match outcome {
        NextAuthOutcome::NoCookie => Some(Reuse::from(now)),
        NextAuthOutcome::Session(_) if killed => None,
        NextAuthOutcome::Session(session) => nextauth_session_reuse(session, kv_bound, now),
        NextAuthOutcome::Rejected(NextAuthError::NotYetValid) => None,
        NextAuthOutcome::Rejected(_) => Some(Reuse::from(now)),
        NextAuthOutcome::DatabaseSession { .. } => None,
    }
}

/// How long a valid NextAuth JWT session's answer stands: until its `exp` plus the tolerance,
/// and only under the revocation snapshot it was checked against (`None` while that snapshot is
/// not settled: the answer is not remembered). `kv_bound`: the snapshot is refreshed from KV.
fn nextauth_session_reuse(session: &NextAuthSession, kv_bound: bool, now: u64) -> Option<Reuse> {
    let version = revocation::kv::settled_version(kv_bound, now)?;
    let reuse = Reuse::from(now).under_revocation(version);
    Some(match session.exp {
        Some(exp) => reuse.ending(exp.saturating_add(CLOCK_TOLERANCE_SECS)),
        None => reuse,
    })
}

/// The first second at which a verified Clerk session's answer may differ: its expiry (with the
/// leeway), or, on a development instance, its `exp` itself (where Clerk's suffixed-cookie choice
/// turns from an expired suffixed token to the plain one); at most [`CLERK_REUSE_SECS`] away.
fn clerk_session_end(session: &ClerkSession, ctx: &ClerkContext, now: u64) -> u64 {
    let end = match ctx.publishable_key.instance_type() {
        InstanceType::Production => session.exp.saturating_add(ctx.validation.leeway),
        InstanceType::Development => session.exp,
    };
    end.min(now.saturating_add(CLERK_REUSE_SECS))
}

/// Whether a Clerk session gives an identity: an active one always; a pending one (a task
/// such as choosing an organization is unfinished) only with
/// `CLERK_TREAT_PENDING_AS_SIGNED_OUT=false`. A pending session is still a Clerk session: it
/// never leads to a handshake (no loop) nor to a NextAuth identity.
pub fn session_gives_identity(session: &ClerkSession, treat_pending_as_signed_out: bool) -> bool {
    session.is_active() || !treat_pending_as_signed_out
}

#[cfg(test)]
#[path = "resolver_memo_tests.rs"]
pub(crate) mod memo_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A verified session of `user_1` / `sess_1` with these claims (shared with `memo_tests`).
    pub(super) fn session(claims: Value) -> ClerkSession {
        let claims = super::super::clerk::ClerkClaims::parse(claims.to_string()).unwrap();
        ClerkSession {
            user_id: "user_1".into(),
            session_id: Some("sess_1".into()),
            exp: 0,
            iat: 0,
            claims: claims.into(),
        }
    }

    #[test]
    fn pending_sessions_are_signed_out_by_default() {
        let pending = session(json!({"sts": "pending"}));
        assert_eq!(pending.status(), "pending");
        assert!(!session_gives_identity(&pending, true));
        assert!(session_gives_identity(&pending, false));
        let active = session(json!({"sts": "active"}));
        assert!(session_gives_identity(&active, true));
        // Version-1 tokens carry no status: active.
        let v1 = session(json!({}));
        assert_eq!(v1.status(), "active");
        assert!(session_gives_identity(&v1, true));
        // A status that is not a plain word is not active and never reaches a header as is.
        let odd = session(json!({"sts": "act ive\r\n"}));
        assert_eq!(odd.status(), "invalid");
        assert!(!session_gives_identity(&odd, true));
        assert!(!session_gives_identity(&session(json!({"sts": 1})), true));
    }
}
