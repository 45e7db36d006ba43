//! Host tests of the exchange (with a real Migrator over the in-memory Clerk and store) and of
//! the answers for its outcomes.

use super::*;
use crate::clerk_api::memory::MemoryClerk;
use crate::clerk_api::{CreateUser, IdentificationStatus};
use crate::migration::MemoryStore;
use futures::executor::block_on;
use std::cell::Cell;

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
