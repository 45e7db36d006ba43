//! Host tests of the Migrator and ledger against the in-memory Clerk and store.

use auth_bridge::clerk_api::memory::{Fault, MemoryClerk};
use auth_bridge::clerk_api::{ClerkApi, CreateUser, IdentificationStatus, UserQuery};
use auth_bridge::migration::ledger::{self, RecordState};
use auth_bridge::migration::migrator::{CallGate, PageMigration};
use auth_bridge::migration::{
    parse_line, verdict, MemoryStore, Migrator, Mode, Outcome, TrickleUser,
};
use futures::executor::block_on;
use futures::future::LocalBoxFuture;
use serde_json::json;

mod adversarial;

fn rec(v: serde_json::Value) -> auth_bridge::migration::ImportRecord {
    parse_line(&v.to_string()).unwrap()
}

/// A bcrypt digest of the shape Clerk accepts.
const BCRYPT: &str = "$2b$10$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0";

#[test]
fn creates_then_finds_by_external_id_and_remembers_both_directions() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let r = rec(json!({"id": "L1", "email": "a@example.com", "email_verified": true}));
    let first = block_on(m.migrate_record(&r));
    let Outcome::Created { clerk_id } = &first.outcome else {
        panic!("{first:?}")
    };
    assert_eq!(first.calls, 1, "create first: a fresh user costs one call");
    assert_eq!(
        store
            .peek(&ledger::clerk_to_legacy_key(clerk_id))
            .as_deref(),
        Some("L1")
    );
    assert_eq!(
        store.peek(&ledger::legacy_to_clerk_key("L1")).as_deref(),
        Some(clerk_id.as_str())
    );
    let again = block_on(m.migrate_record(&r));
    assert_eq!(
        again.outcome,
        Outcome::AlreadyMigrated {
            clerk_id: clerk_id.clone()
        }
    );
    assert_eq!(
        again.calls, 2,
        "the refused create, then the exact external-id look-up"
    );
    assert_eq!(clerk.user_count(), 1);
}

#[test]
fn links_a_clerk_native_user_by_verified_email_and_completes_fields() {
    let clerk = MemoryClerk::default();
    let native = clerk.seed(&CreateUser {
        email_address: vec!["ada@example.com".into()],
        first_name: Some("Augusta".into()),
        ..CreateUser::default()
    });
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let r = rec(
        json!({"id": "L1", "email": "Ada@Example.com", "email_verified": true,
        "name": "Ada Lovelace", "password_digest": BCRYPT, "password_hasher": "bcrypt",
        "public_metadata": {"plan": "pro"}}),
    );
    let out = block_on(m.migrate_record(&r));
    assert_eq!(
        out.outcome,
        Outcome::Linked {
            clerk_id: native.id.clone()
        }
    );
    let u = clerk.user_by_external_id("L1").unwrap();
    assert_eq!(u.id, native.id);
    assert_eq!(
        u.first_name.as_deref(),
        Some("Augusta"),
        "never overwritten"
    );
    assert_eq!(u.last_name.as_deref(), Some("Lovelace"));
    assert!(u.password_enabled);
    assert_eq!(u.public_metadata["plan"], "pro");
    assert_eq!(clerk.user_count(), 1);
}

#[test]
fn unproven_email_match_is_refused_and_other_external_id_is_a_conflict() {
    let clerk = MemoryClerk::default();
    clerk.seed(&CreateUser {
        email_address: vec!["n@example.com".into()],
        ..CreateUser::default()
    });
    clerk.seed(&CreateUser {
        external_id: Some("L9".into()),
        email_address: vec!["c@example.com".into()],
        ..CreateUser::default()
    });
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let out = block_on(m.migrate_record(&rec(json!({"id": "L1", "email": "n@example.com"}))));
    assert!(
        matches!(out.outcome, Outcome::Failed { ref code, .. } if code == "link_email_unverified_legacy"),
        "{out:?}"
    );
    let out = block_on(m.migrate_record(&rec(
        json!({"id": "L2", "email": "c@example.com", "email_verified": true}),
    )));
    match out.outcome {
        Outcome::Failed { code, message } => {
            assert_eq!(code, "external_id_conflict");
            assert!(
                message.contains("user_"),
                "the operator learns which user: {message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(clerk.user_count(), 2);
    assert!(clerk.user_by_external_id("L1").is_none());
    assert!(clerk.user_by_external_id("L2").is_none());
    assert_eq!(store.write_count(), 0, "no mapping for a refusal");
}

#[test]
fn unverified_email_is_created_reserved() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    block_on(m.migrate_record(&rec(json!({"id": "L1", "email": "u@example.com"}))));
    let u = clerk.user_by_external_id("L1").unwrap();
    assert!(u.email_addresses[0].reserved);
    assert!(!u.email_addresses[0].is_verified());
    let _ = IdentificationStatus::Reserved;
}

#[test]
fn observe_mode_writes_nothing() {
    let clerk = MemoryClerk::default();
    let native = clerk.seed(&CreateUser {
        email_address: vec!["n@example.com".into()],
        ..CreateUser::default()
    });
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Observe);
    let a = block_on(m.migrate_record(&rec(json!({"id": "L1", "email": "x@example.com"}))));
    assert_eq!(a.outcome, Outcome::WouldCreate);
    let b = block_on(m.migrate_record(&rec(
        json!({"id": "L2", "email": "n@example.com", "email_verified": true}),
    )));
    assert_eq!(
        b.outcome,
        Outcome::WouldLink {
            clerk_id: native.id
        }
    );
    let (c, token) = block_on(m.sign_in(
        &TrickleUser {
            legacy_id: "L3".into(),
            email: Some("y@example.com".into()),
            ..TrickleUser::default()
        },
        60,
    ));
    assert_eq!(c.outcome, Outcome::WouldCreate);
    assert!(token.is_none());
    assert_eq!(clerk.user_count(), 1);
    assert_eq!(store.write_count(), 0);
}

#[test]
fn a_create_that_timed_out_after_writing_is_recovered_without_duplicate() {
    let clerk = MemoryClerk::default();
    // Request #0 (the create) succeeds in Clerk but the answer is lost.
    clerk.set_fault_hook(|n| (n == 0).then_some(Fault::TimeoutAfterWrite));
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let r = rec(json!({"id": "L1", "email": "a@example.com", "email_verified": true}));
    let first = block_on(m.migrate_record(&r));
    assert!(matches!(first.outcome, Outcome::Retry { .. }), "{first:?}");
    let second = block_on(m.migrate_record(&r));
    assert!(
        matches!(second.outcome, Outcome::AlreadyMigrated { .. }),
        "{second:?}"
    );
    assert_eq!(clerk.user_count(), 1);
}

#[test]
fn racing_creator_hidden_by_search_lag_gives_retry_then_one_user() {
    // The winner of a race was created a moment ago; Clerk's search does not show it yet, so
    // our lookups miss and our create hits form_identifier_exists.
    let clerk = MemoryClerk::default();
    clerk.set_search_lag(1000);
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let r = rec(json!({"id": "L1", "email": "a@example.com", "email_verified": true}));
    clerk.set_now(10_000);
    clerk.seed(&r.to_create_user());
    clerk.set_now(10_500);
    let out = block_on(m.migrate_record(&r));
    assert!(
        matches!(out.outcome, Outcome::Retry { ref code, .. } if code == "identifier_exists_not_found"),
        "{out:?}"
    );
    assert_eq!(out.calls, 3, "create, external id, email");
    clerk.set_now(13_000);
    let out = block_on(m.migrate_record(&r));
    assert!(
        matches!(out.outcome, Outcome::AlreadyMigrated { .. }),
        "{out:?}"
    );
    assert_eq!(clerk.user_count(), 1);
}

#[test]
fn trickle_merges_the_stored_import_record_and_mints_a_token() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let stored = rec(
        json!({"id": "L1", "email": "a@example.com", "email_verified": true,
        "password_digest": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
        "password_hasher": "argon2id",
        "created_at": "2019-05-01T00:00:00Z", "private_metadata": {"tier": 2}}),
    );
    block_on(ledger::store_import(
        &store,
        "0000000000001-00000001",
        &[stored],
        1,
    ))
    .unwrap();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let (out, token) = block_on(m.sign_in(
        &TrickleUser {
            legacy_id: "L1".into(),
            email: Some("a@example.com".into()),
            email_verified: true,
            name: Some("Ada Lovelace".into()),
            image: None,
        },
        300,
    ));
    assert!(matches!(out.outcome, Outcome::Created { .. }), "{out:?}");
    assert_eq!(out.calls, 2, "the create and the token");
    assert!(out.warnings.is_empty(), "{out:?}");
    let token = token.unwrap();
    let u = clerk.user_by_external_id("L1").unwrap();
    assert_eq!(token.user_id, u.id);
    assert!(u.password_enabled);
    assert_eq!(u.created_at, 1_556_668_800_000);
    assert_eq!(u.private_metadata["tier"], 2);
    assert_eq!(u.first_name.as_deref(), Some("Ada"));
}

#[test]
fn batch_after_trickle_completes_the_digest() {
    let clerk = MemoryClerk::default();
    clerk.set_now(1_700_000_000_000);
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let t = TrickleUser {
        legacy_id: "L1".into(),
        email: Some("a@example.com".into()),
        email_verified: true,
        ..TrickleUser::default()
    };
    let (o, _) = block_on(m.sign_in(&t, 60));
    assert!(matches!(o.outcome, Outcome::Created { .. }));
    assert!(!clerk.user_by_external_id("L1").unwrap().password_enabled);
    let r = rec(
        json!({"id": "L1", "email": "a@example.com", "password_digest": BCRYPT,
        "password_hasher": "bcrypt", "created_at": "2018-01-01T00:00:00Z"}),
    );
    let out = block_on(m.migrate_record(&r));
    assert!(matches!(out.outcome, Outcome::AlreadyMigrated { .. }));
    let u = clerk.user_by_external_id("L1").unwrap();
    assert!(u.password_enabled);
    assert_eq!(u.created_at, 1_514_764_800_000);
    assert_eq!(clerk.user_count(), 1);
}

#[test]
fn rate_limit_and_faults_become_retries_with_retry_after() {
    let clerk = MemoryClerk::new(Some((1, 10_000)));
    // Someone else spent the window.
    block_on(clerk.find_users(&UserQuery::by_email("x@example.com"))).unwrap();
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let out = block_on(m.migrate_record(&rec(json!({"id": "L1", "email": "a@example.com"}))));
    match out.outcome {
        Outcome::Retry { after_secs, code } => {
            assert_eq!(code, "rate_limited");
            assert_eq!(after_secs, Some(10));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn store_failure_after_success_asks_for_a_retry() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    store.fail_writes(true);
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let out = block_on(m.migrate_record(&rec(json!({"id": "L1", "email": "a@example.com"}))));
    assert!(matches!(out.outcome, Outcome::Retry { ref code, .. } if code == "store_unavailable"));
}

#[test]
fn ledger_counts_reconcile_under_redelivery_and_never_demote() {
    let store = MemoryStore::new();
    let records: Vec<_> = (0..1200)
        .map(|i| rec(json!({"id": format!("L{i}"), "email": format!("u{i}@example.com")})))
        .collect();
    let meta = block_on(ledger::store_import(&store, "imp1", &records, 0)).unwrap();
    assert_eq!(meta.buckets, 3);
    let mut cursor = ledger::BacklogCursor::default();
    let mut taken = Vec::new();
    loop {
        let imports = block_on(ledger::list_imports(&store)).unwrap();
        let batch = block_on(ledger::take_backlog(&store, &imports, &mut cursor, 250)).unwrap();
        if batch.is_empty() {
            break;
        }
        taken.extend(batch);
    }
    assert_eq!(taken.len(), 1200);
    let mut ids: Vec<_> = taken
        .iter()
        .map(|m| parse_line(&m.record).unwrap().id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1200, "each record exactly once");

    let migrated = Outcome::Created {
        clerk_id: "user_1".into(),
    };
    let failed = Outcome::Failed {
        code: "x".into(),
        message: "y".into(),
    };
    for _ in 0..2 {
        block_on(verdict::record_outcome(&store, "imp1", "L0", &migrated, 1)).unwrap();
    }
    let kept = block_on(verdict::record_outcome(&store, "imp1", "L0", &failed, 2)).unwrap();
    assert_eq!(kept, Some(RecordState::Migrated));
    block_on(verdict::record_outcome(&store, "imp1", "L1", &failed, 2)).unwrap();
    let retry = Outcome::Retry {
        after_secs: None,
        code: "timeout".into(),
    };
    assert_eq!(
        block_on(verdict::record_outcome(&store, "imp1", "L2", &retry, 2)).unwrap(),
        None
    );
    let t = block_on(ledger::tally(&store)).unwrap();
    assert_eq!(
        (t.accepted, t.migrated, t.failed, t.pending),
        (1200, 1, 1, 1198)
    );
    let f = block_on(ledger::failures(&store, 10)).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].legacy_id, "L1");
}
