//! Which id a Clerk user is forwarded under (`x-auth-user-id`), decided on Clerk's facts only
//! (pure; the glue is in `resolver.rs`).
//!
//! Clerk is the truth: a user whose `external_id` is set (by the migration, another import
//! tool or the dashboard) is forwarded under it, and a user without one under its Clerk id.
//! The facts come, in this order, from
//!
//! 1. the session claim named by `CLERK_LEGACY_ID_CLAIM` (signed by Clerk, so networkless and
//!    the same on every isolate: the recommended setting, a claim `{{user.external_id ||
//!    user.id}}` in the session token template);
//! 2. this isolate's cache of earlier answers ([`LegacyIds`]);
//! 3. the KV mapping `map:c2l:`, written only from Clerk answers that were re-checked;
//! 4. `GET /v1/users/{id}`, re-checked by [`answer_from_user`] (within the budget).
//!
//! When none of them can answer (Clerk down, the budget spent), the session gets **no**
//! identity rather than a guess: forwarding the Clerk id of a migrated user would hand the
//! origin a second id for one person, which it might then store.
//!
//! A "no `external_id`" answer is cached per session (`sid`), not per user: a migration always
//! ends in a new session (the sign-in token), so a freshly migrated user is looked up again at
//! once and never forwarded under its Clerk id because of an answer older than its migration.

use serde_json::Value;

use super::cache::ExpiringMap;
use crate::clerk_api::{ClerkError, ClerkUser};

/// How long a user's `external_id` is reused in the isolate. Clerk keeps it; the worker never
/// changes it once set.
pub const KNOWN_TTL_SECS: u64 = 3600;
/// How long "this session's user has no `external_id`" is reused: a session of a user born in
/// Clerk asks again this often.
pub const CLERK_BORN_TTL_SECS: u64 = 600;
/// After a failed look-up, how long the user's sessions get no identity before asking again
/// (so an outage or a spent budget is not answered by a burst of calls).
pub const UNAVAILABLE_TTL_SECS: u64 = 5;
/// Longest id accepted from a claim or from Clerk (Clerk's `external_id` is far shorter).
pub const MAX_ID_LEN: usize = 512;

/// A Clerk fact about one user's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Clerk holds this `external_id`: forward it.
    Legacy(String),
    /// Clerk holds no `external_id`: the user was born in Clerk, forward its Clerk id.
    ClerkBorn,
}

/// What the isolate's cache says about a session's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Known(Known),
    /// A look-up just failed: no identity for a few seconds.
    Unavailable,
    /// Nothing usable: read KV, then ask Clerk.
    Ask,
}

/// Whether `id` can go into a header: non-empty, bounded, visible ASCII or spaces inside.
pub fn is_forwardable_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.trim() == id
        && id.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// The id carried by the configured claim's value, when the token has one that can be
/// forwarded. `{{user.external_id || user.id}}` gives the Clerk id for users born in Clerk:
/// forwarded as it is.
pub fn id_from_claim(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(id)) if is_forwardable_id(&id) => Some(id),
        _ => None,
    }
}

/// Re-checks Clerk's answer to `GET /v1/users/{requested}`: it must be that very user; its
/// `external_id`, when set, must be forwardable.
pub fn answer_from_user(requested: &str, user: &ClerkUser) -> Result<Known, &'static str> {
    if user.id != requested {
        return Err("Clerk answered with another user");
    }
    match user.external_id.as_deref() {
        None | Some("") => Ok(Known::ClerkBorn),
        Some(id) if is_forwardable_id(id) => Ok(Known::Legacy(id.to_owned())),
        Some(_) => Err("external_id cannot be forwarded"),
    }
}

/// Clerk's whole answer to `GET /v1/users/{requested}`: the user re-checked, or `404` — Clerk
/// has no such user (deleted while a session token of it lives on, at most a minute), so it
/// holds no `external_id` either. Anything else says nothing.
pub fn answer_from_lookup(
    requested: &str,
    answer: Result<ClerkUser, ClerkError>,
) -> Result<Known, String> {
    match answer {
        Ok(user) => answer_from_user(requested, &user).map_err(str::to_string),
        Err(ClerkError::Api { status: 404, .. }) => Ok(Known::ClerkBorn),
        Err(error) => Err(error.to_string()),
    }
}

/// Whether a failed look-up is worth one immediate retry: a fast transient failure (5xx
/// without `Retry-After`, a dropped connection). Not a timeout (the page already waited), not
/// a 429 (Clerk asked to wait), not a 4xx (it would answer the same).
pub fn worth_one_retry(error: &ClerkError) -> bool {
    matches!(
        error,
        ClerkError::Unavailable {
            retry_after_secs: None,
            ..
        } | ClerkError::Network(_)
    )
}

/// The isolate's answers, each with its own lifetime (see the constants).
pub struct LegacyIds {
    /// By Clerk user id (the keys are Clerk ids, not secrets: no digest per request).
    legacy: ExpiringMap<String, String>,
    /// By [`session_key`].
    clerk_born: ExpiringMap<String, ()>,
    /// By Clerk user id.
    unavailable: ExpiringMap<String, ()>,
}

/// One key per (user, session): the user id's length first, so no two pairs share a key.
fn session_key(clerk_id: &str, session_id: &str) -> String {
    format!("{}:{clerk_id}{session_id}", clerk_id.len())
}

impl LegacyIds {
    pub fn new(capacity: usize) -> LegacyIds {
        LegacyIds {
            legacy: ExpiringMap::new(capacity),
            clerk_born: ExpiringMap::new(capacity),
            unavailable: ExpiringMap::new(capacity / 4 + 1),
        }
    }

    /// What this isolate knows of the legacy id of `clerk_id` (for `session_id`), and the
    /// second that answer ends (`now` for [`Cached::Ask`]).
    pub fn cached_until(&mut self, clerk_id: &str, session_id: &str, now: u64) -> (Cached, u64) {
        if let Some((legacy, until)) = self.legacy.get_until(clerk_id, now) {
            return (Cached::Known(Known::Legacy(legacy)), until);
        }
        if let Some(((), until)) = self
            .clerk_born
            .get_until(&session_key(clerk_id, session_id), now)
        {
            return (Cached::Known(Known::ClerkBorn), until);
        }
        if let Some(((), until)) = self.unavailable.get_until(clerk_id, now) {
            return (Cached::Unavailable, until);
        }
        (Cached::Ask, now)
    }

    pub fn remember(&mut self, clerk_id: &str, session_id: &str, known: &Known, now: u64) {
        match known {
            Known::Legacy(legacy) => self.legacy.insert(
                clerk_id.to_owned(),
                legacy.clone(),
                now + KNOWN_TTL_SECS,
                now,
            ),
            Known::ClerkBorn => self.clerk_born.insert(
                session_key(clerk_id, session_id),
                (),
                now + CLERK_BORN_TTL_SECS,
                now,
            ),
        }
    }

    pub fn remember_unavailable(&mut self, clerk_id: &str, now: u64) {
        self.unavailable
            .insert(clerk_id.to_owned(), (), now + UNAVAILABLE_TTL_SECS, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl LegacyIds {
        fn cached(&mut self, clerk_id: &str, session_id: &str, now: u64) -> Cached {
            self.cached_until(clerk_id, session_id, now).0
        }
    }

    fn user(id: &str, external_id: Option<&str>) -> ClerkUser {
        serde_json::from_value(serde_json::json!({"id": id, "external_id": external_id})).unwrap()
    }

    fn claims(json: &str) -> serde_json::Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_claim_is_used_as_it_is_even_when_it_is_the_clerk_id() {
        let c = claims(r#"{"sub":"user_1","legacy_id":"user_1","ext":"42","n":5,"e":""}"#);
        assert_eq!(
            id_from_claim(c.get("legacy_id").cloned()).as_deref(),
            Some("user_1")
        );
        assert_eq!(id_from_claim(c.get("ext").cloned()).as_deref(), Some("42"));
        assert_eq!(id_from_claim(c.get("n").cloned()), None);
        assert_eq!(id_from_claim(c.get("e").cloned()), None);
        assert_eq!(id_from_claim(c.get("missing").cloned()), None);
        let bad = claims(r#"{"x":"a\r\nb"}"#);
        assert_eq!(id_from_claim(bad.get("x").cloned()), None);
    }

    #[test]
    fn clerk_answers_are_rechecked() {
        assert_eq!(
            answer_from_user("user_1", &user("user_1", Some("legacy-9"))),
            Ok(Known::Legacy("legacy-9".into()))
        );
        assert_eq!(
            answer_from_user("user_1", &user("user_1", None)),
            Ok(Known::ClerkBorn)
        );
        assert_eq!(
            answer_from_user("user_1", &user("user_1", Some(""))),
            Ok(Known::ClerkBorn)
        );
        assert!(answer_from_user("user_1", &user("user_2", Some("legacy-9"))).is_err());
        assert!(answer_from_user("user_1", &user("user_1", Some("a\nb"))).is_err());
    }

    #[test]
    fn a_user_clerk_does_not_have_holds_no_external_id_and_failures_say_nothing() {
        let gone = ClerkError::Api {
            status: 404,
            code: "resource_not_found".into(),
            message: "not found".into(),
            long_message: None,
            param: None,
        };
        assert_eq!(
            answer_from_lookup("user_1", Err(gone)),
            Ok(Known::ClerkBorn)
        );
        assert!(answer_from_lookup("user_1", Err(ClerkError::Timeout)).is_err());
        assert!(answer_from_lookup(
            "user_1",
            Err(ClerkError::Unavailable {
                status: 503,
                retry_after_secs: None
            })
        )
        .is_err());
        assert!(answer_from_lookup(
            "user_1",
            Err(ClerkError::RateLimited {
                retry_after_secs: 1
            })
        )
        .is_err());
        assert_eq!(
            answer_from_lookup("user_1", Ok(user("user_1", Some("L")))),
            Ok(Known::Legacy("L".into()))
        );
    }

    #[test]
    fn only_fast_transient_failures_are_retried() {
        assert!(worth_one_retry(&ClerkError::Unavailable {
            status: 502,
            retry_after_secs: None
        }));
        assert!(worth_one_retry(&ClerkError::Network("reset".into())));
        assert!(!worth_one_retry(&ClerkError::Unavailable {
            status: 503,
            retry_after_secs: Some(5)
        }));
        assert!(!worth_one_retry(&ClerkError::Timeout));
        assert!(!worth_one_retry(&ClerkError::RateLimited {
            retry_after_secs: 1
        }));
    }

    #[test]
    fn an_external_id_is_kept_per_user_for_every_session() {
        let mut ids = LegacyIds::new(16);
        assert_eq!(ids.cached("user_1", "sess_a", 0), Cached::Ask);
        ids.remember("user_1", "sess_a", &Known::Legacy("legacy-9".into()), 0);
        assert_eq!(
            ids.cached("user_1", "sess_b", 10),
            Cached::Known(Known::Legacy("legacy-9".into()))
        );
        assert_eq!(ids.cached("user_1", "sess_b", KNOWN_TTL_SECS), Cached::Ask);
    }

    #[test]
    fn no_external_id_is_remembered_only_for_that_session() {
        // A user born in Clerk, later migrated (linked): the new session (from the sign-in
        // token) is asked about again, so it is never forwarded under the Clerk id.
        let mut ids = LegacyIds::new(16);
        ids.remember("user_1", "sess_old", &Known::ClerkBorn, 0);
        assert_eq!(
            ids.cached("user_1", "sess_old", 1),
            Cached::Known(Known::ClerkBorn)
        );
        assert_eq!(ids.cached("user_1", "sess_new", 1), Cached::Ask);
        assert_eq!(
            ids.cached("user_1", "sess_old", CLERK_BORN_TTL_SECS),
            Cached::Ask
        );
    }

    #[test]
    fn a_failure_holds_the_user_briefly_and_a_known_id_wins_over_it() {
        let mut ids = LegacyIds::new(16);
        ids.remember_unavailable("user_1", 100);
        assert_eq!(ids.cached("user_1", "s", 101), Cached::Unavailable);
        assert_eq!(
            ids.cached("user_1", "s", 100 + UNAVAILABLE_TTL_SECS),
            Cached::Ask
        );
        ids.remember_unavailable("user_1", 200);
        ids.remember("user_1", "s", &Known::Legacy("L".into()), 200);
        assert_eq!(
            ids.cached("user_1", "s", 201),
            Cached::Known(Known::Legacy("L".into()))
        );
    }

    #[test]
    fn session_answers_never_cross_users_or_sessions() {
        // ("ab", "c") and ("a", "bc") join to the same bytes; they must stay apart.
        let mut ids = LegacyIds::new(16);
        ids.remember("ab", "c", &Known::ClerkBorn, 0);
        assert_eq!(ids.cached("a", "bc", 1), Cached::Ask);
        assert_eq!(ids.cached("ab", "c", 1), Cached::Known(Known::ClerkBorn));
    }

    #[test]
    fn answers_stay_bounded() {
        let mut ids = LegacyIds::new(4);
        for i in 0..50 {
            ids.remember(
                &format!("user_{i}"),
                "s",
                &Known::Legacy(format!("L{i}")),
                0,
            );
            assert!(ids.legacy.len() <= 4);
        }
        assert_eq!(
            ids.cached("user_49", "s", 1),
            Cached::Known(Known::Legacy("L49".into()))
        );
    }
}
