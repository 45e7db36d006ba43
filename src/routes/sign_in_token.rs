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
//!
//! Here: the exchange (mapping, migration, token), the answers for its outcomes and the glue to
//! `worker`. Apart, pure and tested on the host: `caller` (who asks, and as which legacy user),
//! `gate` (Clerk's `Retry-After`) and `coalescer` (one migration per legacy id at a time).

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use worker::kv::KvStore;
use worker::{console_log, Delay, Env, Request};

use crate::budget::Priority;
use crate::clerk_api::fetch::FetchClerk;
use crate::clerk_api::{ClerkApi, ClerkError, ClerkUser, SignInToken, UserQuery};
use crate::config::RateLimit;
use crate::identity::clerk::ClerkRequestState;
use crate::identity::resolver::Resolution;
use crate::identity::Source;
use crate::isolate::Isolate;
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

mod caller;
mod gate;
pub use caller::{
    email_verified_in_claims, is_same_origin_request, trickle_user_from_identity,
    trickle_user_from_session,
};
pub use gate::{CallGate, GateReason};

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
        match COALESCER.with(|c| c.borrow_mut().step(&key, crate::clock::now_ms(), waiting)) {
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
        crate::clock::now_ms(),
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
    crate::budget::record_calls(Some(&kv), crate::clock::now_ms(), migration.calls).await;
    leading.0 = None;
    COALESCER.with(|c| {
        c.borrow_mut()
            .finish(&key, &migration.outcome, crate::clock::now_ms())
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
    let Some(kv) = crate::kv::namespace(env) else {
        return respond(Answer::misconfigured(crate::kv::BINDING));
    };

    let now_ms = crate::clock::now_ms();
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
    let finished_ms = crate::clock::now_ms();
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
mod tests;
