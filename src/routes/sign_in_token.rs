//! `POST /__auth-bridge/sign-in-token`: signs a NextAuth user into Clerk (trickle migration).
//!
//! The order of the checks is the contract's: a cross-site request is refused (`403`) before
//! anything is read; outside `migrate` nothing is written to Clerk (`409`); a Clerk session
//! needs nothing (`204`); without a NextAuth session there is nobody to migrate (`401`).
//! Then the user is found, linked or created by the shared [`Migrator`] and a short-lived
//! sign-in token is minted (`200 {"token","clerk_user_id"}`).
//!
//! Cost per request, in Backend API calls:
//! * a user already mapped in KV (`map:l2c:`) costs two calls: Clerk confirms the mapping
//!   (search by `external_id`, exact match on that user), then the token;
//! * a fresh user costs the migration (one `POST /users`; look-ups only when Clerk answers
//!   `form_identifier_exists`) plus the token. Concurrent requests for the
//!   same legacy id in one isolate share one migration ([`Coalescer`]) and mint one token each
//!   (tokens are single use), so a burst of tabs creates one user without a burst of lookups.
//!
//! A `429` from Clerk closes a per-isolate gate until its `Retry-After` has passed: requests in
//! between are answered `429` with the remaining time without calling Clerk. So does the
//! shared budget (`CLERK_RATE_LIMIT`, see `budget`): the token is an interactive call, the
//! migration a trickle call. One user gets at most `SIGN_IN_TOKENS_PER_MINUTE` tokens a minute
//! in an isolate; beyond that the answer is `429` with the time until the next one.
//!
//! Whether the session's email counts as verified decides whether an existing Clerk account
//! with that address may be linked, so it is never assumed: see [`email_verified_in_claims`].
//! The token is returned to the browser and to nobody else: never logged.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::Duration;

use serde_json::{json, Map, Value};
use worker::kv::KvStore;
use worker::{console_log, Delay, Env, Request};

use crate::budget::Priority;
use crate::clerk_api::fetch::FetchClerk;
use crate::clerk_api::{ClerkApi, ClerkError, ClerkUser, SignInToken, UserQuery};
use crate::config::RateLimit;
use crate::identity::clerk::ClerkRequestState;
use crate::identity::nextauth::NextAuthSession;
use crate::identity::resolver::Resolution;
use crate::identity::{Identity, Source};
use crate::isolate::{self, Isolate};
use crate::migration::kv::KvLedgerStore;
use crate::migration::{ledger, Migrator, Mode, Outcome, Store, TrickleUser};

/// Lifetime of a minted sign-in token: the browser uses it at once.
pub const TOKEN_EXPIRES_IN_SECS: u32 = 120;
/// Backend API deadline for the trickle: the browser is waiting.
const CLERK_TIMEOUT_SECS: u64 = 8;
/// `Retry-After` when Clerk failed without saying how long to wait.
pub const DEFAULT_UNAVAILABLE_RETRY_SECS: u32 = 5;
/// `Retry-After` when Clerk rate-limited without a usable header (its windows are 10 s).
pub const DEFAULT_RATE_LIMIT_RETRY_SECS: u32 = 10;
/// Backend API calls a trickle migration may cost (find by id, find by email, create or link).
const TRICKLE_MIGRATION_COST: u32 = 3;
/// `Retry-After` on a misconfiguration: nothing changes until a redeploy.
const MISCONFIGURED_RETRY_SECS: u32 = 300;

/// Clerk error codes meaning the worker's own credentials were refused (an operator problem,
/// not the user's).
const CREDENTIAL_ERROR_CODES: &[&str] = &[
    "clerk_key_invalid",
    "could_not_authenticate_request",
    "authentication_invalid",
    "authorization_header_format_invalid",
    "authorization_invalid",
];

/// Whether a `POST` comes from a page of this origin. Browsers send `Sec-Fetch-Site`; only
/// `same-origin` passes (`same-site` is a sibling subdomain, which may be less trusted). Older
/// browsers send only `Origin` on cross-origin requests, which must then be ours; a request
/// with neither is not from a browser page (a form post from another site always has one).
pub fn is_same_origin_request(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    own_origin: &str,
) -> bool {
    if let Some(site) = sec_fetch_site {
        return site.trim().eq_ignore_ascii_case("same-origin");
    }
    match origin {
        None => true,
        Some(origin) => {
            let origin = origin.trim().trim_end_matches('/');
            !own_origin.is_empty() && origin.eq_ignore_ascii_case(own_origin)
        }
    }
}

/// Whether the session itself proves the email address. NextAuth's JWT carries no such fact by
/// default, so the answer is "no" unless the app put one there: a boolean `email_verified`
/// claim (OIDC's name) set to `true`, or `emailVerified` (the NextAuth adapters' column,
/// a date) with a value. An unverified address is still migrated — created `reserved` — but
/// never used to take over an existing Clerk account that has it (the Migrator skips the link).
pub fn email_verified_in_claims(claims: &Map<String, Value>) -> bool {
    let truthy = |v: &Value| match v {
        Value::Bool(b) => *b,
        Value::String(s) => !s.trim().is_empty() && s != "false",
        Value::Number(n) => n.as_f64().is_some_and(|x| x > 0.0),
        _ => false,
    };
    claims.get("email_verified") == Some(&Value::Bool(true))
        || claims.get("emailVerified").is_some_and(truthy)
}

/// The trickle's view of a JWT session.
pub fn trickle_user_from_session(session: &NextAuthSession) -> TrickleUser {
    TrickleUser {
        legacy_id: session.sub.clone(),
        email: session.email.clone().filter(|e| !e.trim().is_empty()),
        email_verified: email_verified_in_claims(&session.claims),
        name: session.name.clone().filter(|n| !n.trim().is_empty()),
        image: session.picture.clone().filter(|p| !p.trim().is_empty()),
    }
}

/// The trickle's view of a database session the origin vouched for: only the id and email
/// are known, and the email's verification is not.
pub fn trickle_user_from_identity(identity: &Identity) -> Option<TrickleUser> {
    if identity.source != Source::NextAuth {
        return None;
    }
    Some(TrickleUser {
        legacy_id: identity.user_id.clone().filter(|id| !id.is_empty())?,
        email: identity.email.clone(),
        ..TrickleUser::default()
    })
}

/// Why the gate is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateReason {
    RateLimited,
    Unavailable,
}

/// "Do not call Clerk before": closed by a `429` (or a `5xx` with `Retry-After`) for as long
/// as Clerk asked. Per isolate: each isolate learns of Clerk's limit from its own calls.
#[derive(Debug, Default)]
pub struct CallGate {
    until_ms: Cell<u64>,
    reason: Cell<Option<GateReason>>,
}

impl CallGate {
    pub const fn new() -> CallGate {
        CallGate {
            until_ms: Cell::new(0),
            reason: Cell::new(None),
        }
    }

    /// Closes the gate for `secs` from `now_ms`; a gate only ever extends.
    pub fn hold(&self, now_ms: u64, secs: u32, reason: GateReason) {
        let until = now_ms + u64::from(secs) * 1000;
        if until > self.until_ms.get() {
            self.until_ms.set(until);
            self.reason.set(Some(reason));
        }
    }

    /// While closed: the whole seconds left (at least 1) and why.
    pub fn closed_for(&self, now_ms: u64) -> Option<(u32, GateReason)> {
        let until = self.until_ms.get();
        if now_ms >= until {
            return None;
        }
        let secs = (until - now_ms).div_ceil(1000).min(u64::from(u32::MAX)) as u32;
        Some((secs, self.reason.get().unwrap_or(GateReason::RateLimited)))
    }

    /// Closes the gate if `outcome` is Clerk asking to wait.
    pub fn note(&self, now_ms: u64, outcome: &Outcome) {
        if let Outcome::Retry { after_secs, code } = outcome {
            match (code.as_str(), after_secs) {
                ("rate_limited", after) => self.hold(
                    now_ms,
                    after.unwrap_or(DEFAULT_RATE_LIMIT_RETRY_SECS),
                    GateReason::RateLimited,
                ),
                ("clerk_unavailable", Some(after)) => {
                    self.hold(now_ms, *after, GateReason::Unavailable)
                }
                _ => {}
            }
        }
    }
}

/// The result of one exchange: a token, or the outcome that prevented one.
#[derive(Debug)]
pub struct Exchange {
    pub result: Result<(String, SignInToken), Outcome>,
    /// Backend API calls made by the exchange itself (the mapping check and the token); the
    /// migration's calls are counted by whoever ran it.
    pub calls: u32,
}

/// Whether Clerk's answer to a search by `external_id` shows the mapped user holding exactly
/// this legacy id (a list is searched, never its first element trusted).
pub fn mapping_confirmed(users: &[ClerkUser], legacy_id: &str, clerk_id: &str) -> bool {
    users
        .iter()
        .any(|u| u.id == clerk_id && u.external_id.as_deref() == Some(legacy_id))
}

/// A legacy id ↔ Clerk id mapping is known: Clerk confirms it, then the token. A mapping whose Clerk
/// user is gone (`404`) falls through to a full migration, which rewrites it.
pub async fn exchange<C, S, F>(
    clerk: &C,
    store: &S,
    legacy_id: &str,
    expires_in_seconds: u32,
    migrate: impl FnOnce() -> F,
) -> Exchange
where
    C: ClerkApi,
    S: Store,
    F: Future<Output = Outcome>,
{
    let mut calls = 0;
    let mapped = store
        .get(&ledger::legacy_to_clerk_key(legacy_id))
        .await
        .ok()
        .flatten()
        .filter(|id| !id.is_empty());
    if let Some(clerk_id) = mapped {
        // KV is a cache: before a token lets this person into that account, Clerk must still
        // show that very user holding this legacy id. Otherwise the migration decides afresh.
        calls += 1;
        let confirmed = match clerk
            .find_users(&UserQuery::by_external_id(legacy_id))
            .await
        {
            Ok(users) => mapping_confirmed(&users, legacy_id, &clerk_id),
            Err(e) => {
                return Exchange {
                    result: Err(Outcome::from_error(&e)),
                    calls,
                }
            }
        };
        if confirmed {
            calls += 1;
            match clerk
                .create_sign_in_token(&clerk_id, expires_in_seconds)
                .await
            {
                Ok(token) => {
                    return Exchange {
                        result: Ok((clerk_id, token)),
                        calls,
                    }
                }
                Err(ClerkError::Api { status: 404, .. }) => {}
                Err(e) => {
                    return Exchange {
                        result: Err(Outcome::from_error(&e)),
                        calls,
                    }
                }
            }
        }
    }
    let outcome = migrate().await;
    let Some(clerk_id) = outcome.clerk_id().map(str::to_owned) else {
        return Exchange {
            result: Err(outcome),
            calls,
        };
    };
    calls += 1;
    let result = match clerk
        .create_sign_in_token(&clerk_id, expires_in_seconds)
        .await
    {
        Ok(token) => Ok((clerk_id, token)),
        Err(e) => Err(Outcome::from_error(&e)),
    };
    Exchange { result, calls }
}

/// What the endpoint answers, before it becomes a Response.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u32>,
}

impl Answer {
    fn error(status: u16, body: Value, retry_after: Option<u32>) -> Answer {
        Answer {
            status,
            body,
            retry_after,
        }
    }

    pub fn rate_limited(secs: u32) -> Answer {
        Answer::error(
            429,
            json!({"error": "rate_limited", "retry_after": secs}),
            Some(secs),
        )
    }

    pub fn unavailable(code: &str, secs: u32) -> Answer {
        Answer::error(
            503,
            json!({"error": "clerk_unavailable", "code": code, "retry_after": secs}),
            Some(secs),
        )
    }

    pub fn misconfigured(setting: &str) -> Answer {
        Answer::error(
            503,
            json!({"error": "misconfigured", "setting": setting}),
            Some(MISCONFIGURED_RETRY_SECS),
        )
    }
}

/// The answer for a failed exchange. Messages stay in the log: a `Skipped` reason names
/// another person's Clerk account, which the browser must not learn.
pub fn answer_for_outcome(outcome: &Outcome) -> Answer {
    match outcome {
        Outcome::Retry { after_secs, code } if code == "rate_limited" => {
            Answer::rate_limited(after_secs.unwrap_or(DEFAULT_RATE_LIMIT_RETRY_SECS))
        }
        Outcome::Retry { after_secs, code } => {
            Answer::unavailable(code, after_secs.unwrap_or(DEFAULT_UNAVAILABLE_RETRY_SECS))
        }
        Outcome::Failed { code, .. } if CREDENTIAL_ERROR_CODES.contains(&code.as_str()) => {
            Answer::misconfigured("CLERK_SECRET_KEY")
        }
        // A binding the proof rules refuse (see `migration::proof`): a stable code, no guess.
        Outcome::Failed { code, .. } if crate::migration::proof::is_refusal_code(code) => {
            Answer::error(422, json!({"error": "link_refused", "code": code}), None)
        }
        Outcome::Failed { code, .. } => Answer::error(
            422,
            json!({"error": "migration_failed", "code": code}),
            None,
        ),
        Outcome::Skipped { .. } => Answer::error(
            422,
            json!({"error": "migration_skipped", "code": "identifier_in_use_unverified"}),
            None,
        ),
        // Not reached in `migrate`; a success without a token would be a bug, said plainly.
        Outcome::WouldCreate | Outcome::WouldLink { .. } => {
            Answer::error(409, json!({"error": "not_migrating"}), None)
        }
        Outcome::Created { .. } | Outcome::Linked { .. } | Outcome::AlreadyMigrated { .. } => {
            Answer::unavailable("token_missing", DEFAULT_UNAVAILABLE_RETRY_SECS)
        }
    }
}

mod coalescer;
pub use coalescer::{Coalescer, Step, DONE_TTL_MS, LEAD_TIMEOUT_MS};

// ---------------------------------------------------------------------------------------------
// Glue.

thread_local! {
    static GATE: CallGate = const { CallGate::new() };
    static COALESCER: RefCell<Coalescer> = RefCell::new(Coalescer::new());
}

/// Frees the slot if the leading request is dropped mid-migration.
struct Leading(Option<String>);

impl Drop for Leading {
    fn drop(&mut self) {
        if let Some(key) = self.0.take() {
            COALESCER.with(|c| c.borrow_mut().abandon(&key));
        }
    }
}

/// The migration of `user`, or the outcome of the one another request in this isolate is
/// running. The leader asks the budget first and counts its calls against it.
async fn coalesced_migration(
    clerk: FetchClerk,
    kv: KvStore,
    limit: RateLimit,
    user: TrickleUser,
) -> Outcome {
    let key = user.legacy_id.clone();
    let mut pause_ms = 20;
    let mut waiting = false;
    loop {
        match COALESCER.with(|c| c.borrow_mut().step(&key, isolate::now_ms(), waiting)) {
            Step::Lead => break,
            Step::Use(outcome) => return outcome,
            Step::Wait => {
                waiting = true;
                Delay::from(Duration::from_millis(pause_ms)).await;
                pause_ms = (pause_ms * 2).min(200);
            }
        }
    }
    let mut leading = Leading(Some(key.clone()));
    // The trickle leaves a share of the budget to calls people wait on (handshakes, tokens).
    if let Err(secs) = crate::budget::admit(
        Some(&kv),
        limit,
        Priority::Trickle,
        isolate::now_ms(),
        TRICKLE_MIGRATION_COST,
    )
    .await
    {
        return Outcome::Retry {
            after_secs: Some(secs),
            code: "rate_limited".into(),
        };
    }
    // By reference, as the batch consumer does: one instance of the Migrator in the wasm.
    let store = KvLedgerStore::new(kv.clone());
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    let migration = migrator.migrate_trickle(&user).await;
    crate::budget::record_calls(Some(&kv), isolate::now_ms(), migration.calls).await;
    leading.0 = None;
    COALESCER.with(|c| {
        c.borrow_mut()
            .finish(&key, &migration.outcome, isolate::now_ms())
    });
    migration.outcome
}

fn respond(answer: Answer) -> web_sys::Response {
    let response = super::json(answer.status, &answer.body);
    if let Some(secs) = answer.retry_after {
        let _ = response.headers().set("retry-after", &secs.to_string());
    }
    response
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

pub async fn handle(
    req: &Request,
    env: &Env,
    isolate: &Isolate,
    resolution: &Resolution,
) -> web_sys::Response {
    let own_origin = req
        .url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    if !is_same_origin_request(
        header(req, "sec-fetch-site").as_deref(),
        header(req, "origin").as_deref(),
        &own_origin,
    ) {
        return super::json(403, &json!({"error": "cross_site_request"}));
    }
    let config = &isolate.config;
    if !config.phase.writes_to_clerk() {
        return super::json(
            409,
            &json!({"error": "not_migrating", "phase": config.phase.as_str()}),
        );
    }
    // Any verified Clerk session needs no token: a pending one (its task unfinished) or one
    // whose identity could not be established right now included.
    if resolution.identity.source == Source::Clerk
        || matches!(resolution.clerk, Some(ClerkRequestState::SignedIn(_)))
    {
        return super::empty(204);
    }
    let user = match &resolution.nextauth {
        Some(session) => Some(trickle_user_from_session(session)),
        None => trickle_user_from_identity(&resolution.identity),
    };
    let Some(user) = user else {
        return super::json(401, &json!({"error": "no_nextauth_session"}));
    };
    let Some(secret_key) = config.clerk_secret_key.as_deref() else {
        return respond(Answer::misconfigured("CLERK_SECRET_KEY"));
    };
    let Some(kv) = isolate::kv(env) else {
        return respond(Answer::misconfigured(isolate::KV_BINDING));
    };

    let now_ms = isolate::now_ms();
    if let Some((secs, reason)) = GATE.with(|gate| gate.closed_for(now_ms)) {
        return respond(match reason {
            GateReason::RateLimited => Answer::rate_limited(secs),
            GateReason::Unavailable => Answer::unavailable("clerk_unavailable", secs),
        });
    }
    // A few tokens a minute per person (tabs, retries); a script asking in a loop waits.
    if let Err(secs) = crate::budget::user_may_mint(&user.legacy_id, now_ms) {
        return respond(Answer::rate_limited(secs));
    }
    let limit = config.clerk_rate_limit;
    if let Err(secs) =
        crate::budget::admit(Some(&kv), limit, Priority::Interactive, now_ms, 1).await
    {
        return respond(Answer::rate_limited(secs));
    }

    let clerk = FetchClerk::new(&config.clerk_api_url.join(""), secret_key)
        .with_timeout(Duration::from_secs(CLERK_TIMEOUT_SECS));
    let store = KvLedgerStore::new(kv.clone());
    let legacy_id = user.legacy_id.clone();
    let migration = {
        let (clerk, kv) = (clerk.clone(), kv.clone());
        move || coalesced_migration(clerk, kv, limit, user)
    };
    let done = exchange(&clerk, &store, &legacy_id, TOKEN_EXPIRES_IN_SECS, migration).await;
    let finished_ms = isolate::now_ms();
    crate::budget::record_calls(Some(&kv), finished_ms, done.calls).await;

    match done.result {
        Ok((clerk_id, token)) => super::json(
            200,
            &json!({"token": token.token.expose(), "clerk_user_id": clerk_id}),
        ),
        Err(outcome) => {
            GATE.with(|gate| gate.note(finished_ms, &outcome));
            match &outcome {
                Outcome::Failed { code, message } => {
                    console_log!(
                        "auth-bridge: sign-in token for a NextAuth user failed: {code}: {message}"
                    )
                }
                Outcome::Skipped { reason } => {
                    console_log!("auth-bridge: sign-in token not issued: {reason}")
                }
                Outcome::Retry { code, .. } => {
                    console_log!("auth-bridge: sign-in token deferred: {code}")
                }
                _ => {}
            }
            respond(answer_for_outcome(&outcome))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clerk_api::memory::MemoryClerk;
    use crate::clerk_api::{CreateUser, IdentificationStatus};
    use crate::migration::MemoryStore;
    use futures::executor::block_on;
    use std::cell::Cell;

    #[test]
    fn same_origin_rules() {
        let own = "https://app.example.com";
        assert!(is_same_origin_request(Some("same-origin"), None, own));
        assert!(is_same_origin_request(
            Some("same-origin"),
            Some("https://evil.example"),
            own
        ));
        assert!(!is_same_origin_request(Some("cross-site"), Some(own), own));
        assert!(!is_same_origin_request(Some("same-site"), Some(own), own));
        assert!(!is_same_origin_request(Some("none"), None, own));
        assert!(is_same_origin_request(None, Some(own), own));
        assert!(is_same_origin_request(
            None,
            Some("HTTPS://APP.example.com/"),
            own
        ));
        assert!(!is_same_origin_request(
            None,
            Some("https://app.example.com.evil.example"),
            own
        ));
        assert!(!is_same_origin_request(None, Some("null"), own));
        assert!(!is_same_origin_request(
            None,
            Some("http://app.example.com"),
            own
        ));
        assert!(is_same_origin_request(None, None, own));
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn email_is_verified_only_when_the_session_says_so() {
        assert!(!email_verified_in_claims(&claims(
            json!({"email": "a@example.com"})
        )));
        assert!(email_verified_in_claims(&claims(
            json!({"email_verified": true})
        )));
        assert!(!email_verified_in_claims(&claims(
            json!({"email_verified": "true"})
        )));
        assert!(!email_verified_in_claims(&claims(
            json!({"email_verified": false})
        )));
        assert!(email_verified_in_claims(&claims(
            json!({"emailVerified": "2024-01-02T03:04:05.000Z"})
        )));
        assert!(!email_verified_in_claims(&claims(
            json!({"emailVerified": null})
        )));
        assert!(!email_verified_in_claims(&claims(
            json!({"emailVerified": ""})
        )));
    }

    #[test]
    fn database_session_identity_is_migrated_unverified() {
        let identity = Identity {
            source: Source::NextAuth,
            user_id: Some("42".into()),
            clerk_user_id: None,
            email: Some("db@example.com".into()),
            session_id: None,
            session_status: None,
        };
        let user = trickle_user_from_identity(&identity).unwrap();
        assert_eq!(user.legacy_id, "42");
        assert!(!user.email_verified);
        assert!(trickle_user_from_identity(&Identity::anonymous()).is_none());
    }

    #[test]
    fn gate_holds_for_retry_after_and_only_extends() {
        let gate = CallGate::new();
        assert_eq!(gate.closed_for(0), None);
        gate.note(
            1_000,
            &Outcome::Retry {
                after_secs: Some(7),
                code: "rate_limited".into(),
            },
        );
        assert_eq!(gate.closed_for(1_000), Some((7, GateReason::RateLimited)));
        assert_eq!(gate.closed_for(7_500), Some((1, GateReason::RateLimited)));
        gate.hold(2_000, 1, GateReason::Unavailable);
        assert_eq!(gate.closed_for(2_000), Some((6, GateReason::RateLimited)));
        assert_eq!(gate.closed_for(8_000), None);
        // A 5xx without Retry-After does not close it; other retries neither.
        gate.note(
            9_000,
            &Outcome::Retry {
                after_secs: None,
                code: "clerk_unavailable".into(),
            },
        );
        gate.note(
            9_000,
            &Outcome::Retry {
                after_secs: Some(2),
                code: "identifier_exists_not_found".into(),
            },
        );
        assert_eq!(gate.closed_for(9_000), None);
        gate.note(
            9_000,
            &Outcome::Retry {
                after_secs: Some(3),
                code: "clerk_unavailable".into(),
            },
        );
        assert_eq!(gate.closed_for(9_000), Some((3, GateReason::Unavailable)));
    }

    fn user(id: &str, email: &str, verified: bool) -> TrickleUser {
        TrickleUser {
            legacy_id: id.into(),
            email: Some(email.into()),
            email_verified: verified,
            name: Some("Ada Lovelace".into()),
            image: None,
        }
    }

    /// Runs one exchange with a real Migrator over the in-memory Clerk and store; returns it
    /// with the migration's own call count.
    fn run(clerk: &MemoryClerk, store: &MemoryStore, u: &TrickleUser) -> (Exchange, u32) {
        let migration_calls = Cell::new(0);
        let ex = block_on(exchange(clerk, store, &u.legacy_id, 120, || async {
            let m = Migrator::new(clerk, store, Mode::Migrate)
                .migrate_trickle(u)
                .await;
            migration_calls.set(m.calls);
            m.outcome
        }));
        (ex, migration_calls.get())
    }

    #[test]
    fn fresh_user_is_created_once_and_a_repeat_costs_two_calls() {
        let clerk = MemoryClerk::new(None);
        let store = MemoryStore::new();
        let u = user("legacy-1", "ada@example.com", false);
        let (first, migration_calls) = run(&clerk, &store, &u);
        let (clerk_id, token) = first.result.expect("token");
        assert_eq!(token.user_id, clerk_id);
        assert_eq!(
            migration_calls, 1,
            "create first: no look-up for a fresh user"
        );
        assert_eq!(first.calls, 1, "the token");
        let created = clerk.user_by_external_id("legacy-1").unwrap();
        assert_eq!(created.id, clerk_id);
        assert_eq!(
            store
                .peek(&ledger::clerk_to_legacy_key(&clerk_id))
                .as_deref(),
            Some("legacy-1")
        );

        let before = clerk.request_log.borrow().len();
        let (again, migration_calls) = run(&clerk, &store, &u);
        assert_eq!(again.result.expect("token").0, clerk_id);
        assert_eq!(migration_calls, 0, "the mapping skips the migration");
        assert_eq!(again.calls, 2, "Clerk confirms the mapping, then the token");
        assert_eq!(clerk.request_log.borrow().len() - before, 2);
        assert_eq!(clerk.user_count(), 1);
    }

    #[test]
    fn a_stale_mapping_falls_back_to_the_migration() {
        let clerk = MemoryClerk::new(None);
        let store = MemoryStore::new();
        block_on(ledger::remember_mapping(&store, "legacy-2", "user_gone")).unwrap();
        let (ex, migration_calls) = run(&clerk, &store, &user("legacy-2", "b@example.com", true));
        let (clerk_id, _) = ex.result.expect("token");
        assert_ne!(clerk_id, "user_gone");
        assert_eq!(ex.calls, 2, "the unconfirmed mapping and the new token");
        assert_eq!(migration_calls, 1);
        assert_eq!(
            store
                .peek(&ledger::legacy_to_clerk_key("legacy-2"))
                .as_deref(),
            Some(clerk_id.as_str())
        );
    }

    #[test]
    fn a_mapping_clerk_does_not_confirm_never_gets_a_token_for_that_account() {
        // KV says legacy-3 is user X, but X holds another person's legacy id in Clerk (the
        // mapping went stale, or KV was written by someone else): no token for X.
        let clerk = MemoryClerk::new(None);
        let store = MemoryStore::new();
        let other = block_on(clerk.create_user(&CreateUser {
            external_id: Some("someone-else".into()),
            email_address: vec!["victim@example.com".into()],
            skip_password_requirement: Some(true),
            ..CreateUser::default()
        }))
        .unwrap();
        block_on(ledger::remember_mapping(&store, "legacy-3", &other.id)).unwrap();
        let (ex, _) = run(&clerk, &store, &user("legacy-3", "c@example.com", true));
        let (clerk_id, token) = ex.result.expect("token");
        assert_ne!(clerk_id, other.id);
        assert_ne!(token.user_id, other.id);
        assert_eq!(
            clerk.user_by_external_id("legacy-3").map(|u| u.id),
            Some(clerk_id)
        );
    }

    #[test]
    fn mapping_confirmation_needs_that_user_with_exactly_that_id() {
        let u = |id: &str, ext: Option<&str>| -> ClerkUser {
            serde_json::from_value(json!({"id": id, "external_id": ext})).unwrap()
        };
        let answer = [u("user_a", Some("alice")), u("user_b", Some("+alice"))];
        assert!(mapping_confirmed(&answer, "+alice", "user_b"));
        assert!(!mapping_confirmed(&answer, "+alice", "user_a"));
        assert!(!mapping_confirmed(&[u("user_b", None)], "+alice", "user_b"));
        assert!(!mapping_confirmed(&[], "alice", "user_a"));
    }

    #[test]
    fn unverified_session_email_does_not_take_over_an_existing_account() {
        let clerk = MemoryClerk::new(None);
        let store = MemoryStore::new();
        clerk.seed(&CreateUser {
            email_address: vec!["owner@example.com".into()],
            email_address_identification_status: vec![IdentificationStatus::Verified],
            skip_password_requirement: Some(true),
            ..CreateUser::default()
        });
        let (ex, _) = run(
            &clerk,
            &store,
            &user("legacy-3", "owner@example.com", false),
        );
        let outcome = ex.result.expect_err("no token for an unverified claim");
        let answer = answer_for_outcome(&outcome);
        assert_eq!(answer.status, 422);
        assert_eq!(answer.body["error"], "link_refused");
        assert_eq!(answer.body["code"], "link_email_unverified_legacy");
        assert!(!answer.body.to_string().contains("user_"), "{answer:?}");
        assert_eq!(clerk.user_count(), 1);

        let (ex, _) = run(&clerk, &store, &user("legacy-3", "owner@example.com", true));
        let (clerk_id, _) = ex.result.expect("a verified session email links");
        assert_eq!(
            clerk.user_by_external_id("legacy-3").map(|u| u.id),
            Some(clerk_id)
        );
        assert_eq!(clerk.user_count(), 1);
    }

    #[test]
    fn clerk_rate_limit_becomes_429_with_retry_after() {
        let clerk = MemoryClerk::new(Some((1, 10_000)));
        let store = MemoryStore::new();
        let (ex, _) = run(&clerk, &store, &user("legacy-4", "c@example.com", true));
        let outcome = ex.result.expect_err("the token, second call, is refused");
        let answer = answer_for_outcome(&outcome);
        assert_eq!(answer.status, 429);
        let secs = answer.retry_after.expect("Retry-After");
        assert!((1..=10).contains(&secs), "{secs}");
        assert_eq!(answer.body["retry_after"], secs);
    }

    #[test]
    fn answers_for_failures() {
        let a = answer_for_outcome(&Outcome::Retry {
            after_secs: None,
            code: "timeout".into(),
        });
        assert_eq!(
            (a.status, a.retry_after),
            (503, Some(DEFAULT_UNAVAILABLE_RETRY_SECS))
        );
        let a = answer_for_outcome(&Outcome::Failed {
            code: "external_id_conflict".into(),
            message: "the Clerk user user_9 …".into(),
        });
        assert_eq!(a.status, 422);
        assert_eq!(a.body["code"], "external_id_conflict");
        assert!(!a.body.to_string().contains("user_9"));
        let a = answer_for_outcome(&Outcome::Failed {
            code: "clerk_key_invalid".into(),
            message: String::new(),
        });
        assert_eq!(a.status, 503);
        assert_eq!(a.body["setting"], "CLERK_SECRET_KEY");
    }
}
