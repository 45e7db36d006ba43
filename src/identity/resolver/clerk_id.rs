//! The id a Clerk session is forwarded under (part of the resolver): Clerk's `external_id` when
//! the user has one, else the Clerk id — from the session's claim when configured, the
//! isolate's cache, KV's mapping, then Clerk itself within the budget (see `legacy_id` for the
//! order and why an unanswerable look-up gives no identity).

use worker::kv::KvStore;

use super::{session_gives_identity, IdentityResolver, REJECTION_LOG_INTERVAL_SECS};
use crate::budget::{self, Priority};
use crate::identity::clerk::ClerkSession;
use crate::identity::legacy_id::{self, Cached, Known};
use crate::identity::memo::Reuse;
use crate::identity::{Identity, Source};
use crate::migration::ledger::clerk_to_legacy_key;

/// The isolate's cached answer about the id to forward for a Clerk session.
pub(super) enum CachedId {
    /// This id, standing as long as the reuse says.
    Found(String, Reuse),
    /// A look-up just failed: no identity.
    Unavailable,
    /// Nothing cached: ask KV, then Clerk.
    Ask,
}

impl IdentityResolver {
    /// The identity of a Clerk session: no identity for a pending session (unless
    /// `CLERK_TREAT_PENDING_AS_SIGNED_OUT=false`); otherwise forwarded under Clerk's
    /// `external_id` when it has one, else its Clerk id (see `legacy_id`). When neither the
    /// claim, the caches, KV nor Clerk can say which, no identity (never a guess). With it, how
    /// long the id stands (`None` for no identity, or an id that was a fallback).
    pub(super) async fn clerk_identity(
        &self,
        session: &ClerkSession,
        kv: Option<&KvStore>,
        now: u64,
    ) -> (Identity, Option<Reuse>) {
        if !session_gives_identity(session, self.treat_pending_as_signed_out) {
            return (Identity::anonymous(), None);
        }
        let from_claim = self
            .legacy_id_claim
            .as_deref()
            .and_then(|claim| legacy_id::id_from_claim(session.claims.value_of(claim)));
        let (user_id, reuse) = match from_claim {
            Some(id) => (id, Some(Reuse::from(now))),
            None => match self.cached_id(session, now) {
                CachedId::Found(id, reuse) => (id, Some(reuse)),
                CachedId::Unavailable => return (Identity::anonymous(), None),
                // Learned now (and cached): remembered from the next request on.
                CachedId::Ask => match self.forwarded_id(session, kv, now).await {
                    Some(id) => (id, None),
                    None => return (Identity::anonymous(), None),
                },
            },
        };
        let email = ["email", "primary_email", "primaryEmail"]
            .iter()
            .find_map(|name| session.claims.get(name).and_then(|v| v.as_str()))
            .map(str::to_string);
        let identity = Identity {
            source: Source::Clerk,
            user_id: Some(user_id),
            clerk_user_id: Some(session.user_id.clone()),
            email,
            session_id: session.session_id.clone(),
            session_status: Some(session.status().to_string()),
        };
        (identity, reuse)
    }

    /// What the isolate's cache says about the id to forward for a session without the claim,
    /// and until when it says so.
    pub(super) fn cached_id(&self, session: &ClerkSession, now: u64) -> CachedId {
        let clerk_id = session.user_id.as_str();
        let sid = session.session_id.as_deref().unwrap_or("");
        let (cached, until) = self
            .legacy_ids
            .borrow_mut()
            .cached_until(clerk_id, sid, now);
        let reuse = Reuse::from(now).ending(until);
        match cached {
            Cached::Known(Known::Legacy(id)) => CachedId::Found(id, reuse),
            // An external_id learned for the user meanwhile would be found first.
            Cached::Known(Known::ClerkBorn) => CachedId::Found(
                clerk_id.to_string(),
                reuse.until_learning(self.external_ids_learned.get()),
            ),
            Cached::Unavailable => CachedId::Unavailable,
            Cached::Ask => CachedId::Ask,
        }
    }

    /// The id to forward when the isolate's cache has no answer: KV's mapping, then Clerk
    /// (within the budget). `None` when nothing can tell.
    async fn forwarded_id(
        &self,
        session: &ClerkSession,
        kv: Option<&KvStore>,
        now: u64,
    ) -> Option<String> {
        let clerk_id = session.user_id.as_str();
        let sid = session.session_id.as_deref().unwrap_or("");
        if let Some(kv) = kv {
            match kv.get(&clerk_to_legacy_key(clerk_id)).text().await {
                Ok(Some(id)) if legacy_id::is_forwardable_id(&id) => {
                    let known = Known::Legacy(id.clone());
                    self.learned(&known);
                    self.legacy_ids
                        .borrow_mut()
                        .remember(clerk_id, sid, &known, now);
                    return Some(id);
                }
                Ok(_) => {}
                Err(error) => self.log_lookup(&format!("KV read failed: {error}"), now),
            }
        }
        let Some(api) = &self.clerk_api else {
            // Nobody to ask (reported as a configuration problem at start).
            return Some(clerk_id.to_string());
        };
        let now_ms = now * 1000;
        if let Err(secs) =
            budget::admit(kv, self.rate_limit, Priority::Interactive, now_ms, 1).await
        {
            self.legacy_ids
                .borrow_mut()
                .remember_unavailable(clerk_id, now);
            self.log_lookup(
                &format!(
                    "Backend API budget spent for {secs} s; session forwarded without identity"
                ),
                now,
            );
            return None;
        }
        let mut answer = api.get_user(clerk_id).await;
        let mut calls = 1;
        // A fast transient failure (a 5xx, a dropped connection) is tried once more at once:
        // the person is waiting, and the alternative is no identity for a few seconds.
        if answer.as_ref().is_err_and(legacy_id::worth_one_retry) {
            answer = api.get_user(clerk_id).await;
            calls += 1;
        }
        budget::record_calls(kv, now_ms, calls).await;
        let known = legacy_id::answer_from_lookup(clerk_id, answer);
        match known {
            Ok(known) => {
                if let (Known::Legacy(legacy), Some(kv)) = (&known, kv) {
                    // Written only from Clerk's re-checked answer.
                    let put = crate::kv::put(kv, &clerk_to_legacy_key(clerk_id), legacy);
                    if let Err(error) = match put {
                        Ok(put) => put.execute().await,
                        Err(error) => Err(error),
                    } {
                        self.log_lookup(&format!("KV write failed: {error}"), now);
                    }
                }
                self.learned(&known);
                self.legacy_ids
                    .borrow_mut()
                    .remember(clerk_id, sid, &known, now);
                Some(match known {
                    Known::Legacy(legacy) => legacy,
                    Known::ClerkBorn => clerk_id.to_string(),
                })
            }
            Err(reason) => {
                self.legacy_ids
                    .borrow_mut()
                    .remember_unavailable(clerk_id, now);
                self.log_lookup(
                    &format!("user look-up failed ({reason}); session forwarded without identity"),
                    now,
                );
                None
            }
        }
    }

    /// Counts a learned `external_id` (see [`Reuse::until_learning`]).
    pub(super) fn learned(&self, known: &Known) {
        if matches!(known, Known::Legacy(_)) {
            self.external_ids_learned
                .set(self.external_ids_learned.get().wrapping_add(1));
            if let Some(forget) = self.on_learning.get() {
                forget();
            }
        }
    }

    fn log_lookup(&self, message: &str, now: u64) {
        if now >= self.last_lookup_log.get() + REJECTION_LOG_INTERVAL_SECS
            && cfg!(target_arch = "wasm32")
        {
            self.last_lookup_log.set(now);
            worker::console_error!(
                "auth-bridge: Clerk external_id: {message} (further messages muted for 60 s)"
            );
        }
    }
}
