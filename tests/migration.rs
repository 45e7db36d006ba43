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

// ---- Adversarial: a person is bound only to what Clerk and the legacy data both prove ----

fn session(id: &str, email: &str, verified: bool) -> TrickleUser {
    TrickleUser {
        legacy_id: id.into(),
        email: Some(email.into()),
        email_verified: verified,
        ..TrickleUser::default()
    }
}

fn seed_with_id(clerk: &MemoryClerk, external_id: &str, email: &str) -> String {
    clerk
        .seed(&CreateUser {
            external_id: Some(external_id.into()),
            email_address: vec![email.into()],
            ..CreateUser::default()
        })
        .id
}

#[test]
fn a_legacy_id_starting_with_plus_never_gets_another_persons_account() {
    // Clerk reads `external_id=+alice` as "alice": an unescaped look-up finds Alice.
    let clerk = MemoryClerk::default();
    let alice = seed_with_id(&clerk, "alice", "alice@example.com");
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let attacker = session("+alice", "mallory@example.com", true);
    for _ in 0..2 {
        let (out, token) = block_on(m.sign_in(&attacker, 60));
        let own = clerk
            .user_by_external_id("+alice")
            .expect("a user of its own");
        assert_eq!(out.outcome.clerk_id(), Some(own.id.as_str()), "{out:?}");
        assert_ne!(own.id, alice);
        assert_eq!(token.unwrap().user_id, own.id);
    }
    assert_eq!(
        clerk.user(&alice).unwrap().external_id.as_deref(),
        Some("alice"),
        "Alice's account keeps her legacy id"
    );
    assert_eq!(store.peek(&ledger::clerk_to_legacy_key(&alice)), None);
    // The second run went through the look-up after `form_identifier_exists`, escaped.
    let m2 = Migrator::new(&clerk, MemoryStore::new(), Mode::Migrate);
    let again = block_on(m2.migrate_record(&rec(
        json!({"id": "+alice", "email": "mallory@example.com"}),
    )));
    assert_eq!(
        again.outcome,
        Outcome::AlreadyMigrated {
            clerk_id: clerk.user_by_external_id("+alice").unwrap().id
        }
    );
    assert_eq!(
        again.calls, 2,
        "the refused create and one exact, escaped look-up"
    );
}

#[test]
fn a_legacy_id_starting_with_minus_is_not_everyone_else() {
    // `external_id=-5` asks Clerk for every user except "5".
    let clerk = MemoryClerk::default();
    let first = seed_with_id(&clerk, "victim", "victim@example.com");
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let r = rec(json!({"id": "-5", "email": "five@example.com", "email_verified": true}));
    let created = block_on(m.migrate_record(&r));
    let Outcome::Created { clerk_id } = created.outcome.clone() else {
        panic!("{created:?}")
    };
    assert_ne!(clerk_id, first);
    // A fresh store (another isolate): create is refused, the escaped look-up finds exactly -5.
    let other = MemoryStore::new();
    let m2 = Migrator::new(&clerk, &other, Mode::Migrate);
    let again = block_on(m2.migrate_record(&r));
    assert_eq!(
        again.outcome,
        Outcome::AlreadyMigrated {
            clerk_id: clerk_id.clone()
        }
    );
    assert_eq!(
        again.calls, 2,
        "the refused create and one exact, escaped look-up"
    );
    assert_eq!(
        other.peek(&ledger::legacy_to_clerk_key("-5")).as_deref(),
        Some(clerk_id.as_str())
    );
    assert_eq!(other.peek(&ledger::clerk_to_legacy_key(&first)), None);
    // Even in observe (reads only).
    let o = Migrator::new(&clerk, MemoryStore::new(), Mode::Observe);
    assert_eq!(
        block_on(o.migrate_record(&rec(json!({"id": "-7", "email": "seven@example.com"})))).outcome,
        Outcome::WouldCreate
    );
}

#[test]
fn an_unverified_copy_of_the_victims_email_is_never_linked() {
    // The attacker signed up in Clerk with the victim's address and never verified it.
    let clerk = MemoryClerk::default();
    let attacker = clerk
        .seed(&CreateUser {
            email_address: vec!["victim@example.com".into()],
            email_address_identification_status: vec![IdentificationStatus::Reserved],
            ..CreateUser::default()
        })
        .id;
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let (out, token) = block_on(m.sign_in(&session("V1", "victim@example.com", true), 60));
    assert!(token.is_none(), "no token for someone else's account");
    assert!(
        matches!(out.outcome, Outcome::Failed { ref code, .. } if code == "link_email_unverified_in_clerk"),
        "{out:?}"
    );
    assert_eq!(clerk.user(&attacker).unwrap().external_id, None);
    assert_eq!(store.write_count(), 0);
    assert_eq!(clerk.user_count(), 1);
    // The batch lists it as failed with the same code; observe predicts it.
    let o = Migrator::new(&clerk, MemoryStore::new(), Mode::Observe);
    let r = rec(json!({"id": "V1", "email": "victim@example.com", "email_verified": true}));
    assert!(matches!(
        block_on(o.migrate_record(&r)).outcome,
        Outcome::Failed { ref code, .. } if code == "link_email_unverified_in_clerk"
    ));
}

#[test]
fn an_external_id_set_elsewhere_wins_over_an_email_holder() {
    // Another import tool gave Clerk user A the legacy id; user B holds the legacy email,
    // verified, without an external id. The legacy user is A, never B.
    let clerk = MemoryClerk::default();
    let a = seed_with_id(&clerk, "L7", "old-address@example.com");
    let b = clerk
        .seed(&CreateUser {
            email_address: vec!["l7@example.com".into()],
            ..CreateUser::default()
        })
        .id;
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let (out, token) = block_on(m.sign_in(&session("L7", "l7@example.com", true), 60));
    assert_eq!(
        out.outcome,
        Outcome::AlreadyMigrated {
            clerk_id: a.clone()
        }
    );
    assert_eq!(token.unwrap().user_id, a);
    assert_eq!(clerk.user(&b).unwrap().external_id, None);
    assert_eq!(
        store.peek(&ledger::legacy_to_clerk_key("L7")).as_deref(),
        Some(a.as_str())
    );
}

#[test]
fn two_clerk_users_with_one_external_id_are_refused_not_guessed() {
    let clerk = MemoryClerk::default();
    clerk.set_unique_external_id(false);
    seed_with_id(&clerk, "L8", "first@example.com");
    seed_with_id(&clerk, "L8", "second@example.com");
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    // The session's email collides with the first one: create is refused, then the look-up
    // shows two users with this legacy id.
    let (out, token) = block_on(m.sign_in(&session("L8", "first@example.com", true), 60));
    assert!(token.is_none());
    assert!(
        matches!(out.outcome, Outcome::Failed { ref code, .. } if code == "external_id_ambiguous"),
        "{out:?}"
    );
    assert_eq!(store.write_count(), 0);
}

#[test]
fn a_rejected_password_digest_never_blocks_the_user() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let r = rec(
        json!({"id": "L1", "email": "a@example.com", "email_verified": true,
        "password_digest": "not-a-bcrypt-digest", "password_hasher": "bcrypt"}),
    );
    let out = block_on(m.migrate_record(&r));
    assert!(matches!(out.outcome, Outcome::Created { .. }), "{out:?}");
    assert_eq!(
        out.calls, 2,
        "the refused create and the one without the digest"
    );
    assert_eq!(out.warnings.len(), 1);
    assert_eq!(out.warnings[0].code, "form_password_digest_invalid_code");
    assert!(
        !out.warnings[0].message.contains("not-a-bcrypt"),
        "never the digest"
    );
    let u = clerk.user_by_external_id("L1").unwrap();
    assert!(!u.password_enabled);
    let (total, listed) = block_on(ledger::warnings(&store, 10)).unwrap();
    assert_eq!(total, 1);
    assert_eq!(listed[0].legacy_id, "L1");
    assert_eq!(listed[0].clerk_id.as_deref(), Some(u.id.as_str()));
    assert_eq!(listed[0].code, "form_password_digest_invalid_code");

    // The trickle with a stored record that carries a bad digest: a token, not a 422.
    let store = MemoryStore::new();
    let stored = rec(
        json!({"id": "L2", "email": "b@example.com", "email_verified": true,
        "password_digest": "$argon2id$v=19$abc", "password_hasher": "argon2id"}),
    );
    block_on(ledger::store_import(
        &store,
        "0000000000001-00000001",
        &[stored],
        1,
    ))
    .unwrap();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let (out, token) = block_on(m.sign_in(&session("L2", "b@example.com", true), 60));
    assert!(token.is_some(), "{out:?}");
    assert_eq!(out.warnings[0].code, "form_password_digest_invalid_code");

    // Completing an existing user: the digest is left out, the rest is completed.
    let existing = seed_with_id(&clerk, "L3", "c@example.com");
    let r = rec(
        json!({"id": "L3", "email": "c@example.com", "first_name": "Grace",
        "password_digest": "h", "password_hasher": "bcrypt"}),
    );
    let out = block_on(Migrator::new(&clerk, &store, Mode::Migrate).migrate_record(&r));
    assert_eq!(
        out.outcome,
        Outcome::AlreadyMigrated {
            clerk_id: existing.clone()
        }
    );
    assert_eq!(out.warnings[0].code, "form_password_digest_invalid_code");
    assert_eq!(
        clerk.user(&existing).unwrap().first_name.as_deref(),
        Some("Grace")
    );
}

#[test]
fn usernames_and_phones_never_link_and_never_block() {
    let clerk = MemoryClerk::default();
    let holder = clerk
        .seed(&CreateUser {
            email_address: vec!["grace@example.com".into()],
            username: Some("grace".into()),
            phone_number: vec!["+15551234567".into()],
            ..CreateUser::default()
        })
        .id;
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    // Another person with the same username and phone, and an email of their own: created
    // without them, with warnings.
    let r = rec(
        json!({"id": "L1", "email": "other@example.com", "email_verified": true,
        "username": "Grace", "phone": "+15551234567"}),
    );
    let out = block_on(m.migrate_record(&r));
    assert!(matches!(out.outcome, Outcome::Created { .. }), "{out:?}");
    let mut codes: Vec<&str> = out.warnings.iter().map(|w| w.code.as_str()).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["phone_taken", "username_taken"]);
    let created = clerk.user_by_external_id("L1").unwrap();
    assert_ne!(created.id, holder);
    assert_eq!(created.username, None);
    assert!(created.phone_numbers.is_empty());
    assert_eq!(clerk.user(&holder).unwrap().external_id, None);

    // Only a username, or only a phone: nothing to create with, and nothing proves a link.
    for (r, code) in [
        (
            json!({"id": "L2", "username": "grace"}),
            "link_username_not_proof",
        ),
        (
            json!({"id": "L3", "phone": "+15551234567"}),
            "link_phone_not_proof",
        ),
    ] {
        let out = block_on(m.migrate_record(&rec(r)));
        assert!(
            matches!(out.outcome, Outcome::Failed { code: ref c, .. } if c == code),
            "{out:?}"
        );
    }
    assert_eq!(clerk.user(&holder).unwrap().external_id, None);
}

#[test]
fn a_verified_link_still_works_and_costs_what_it_should() {
    let clerk = MemoryClerk::default();
    let native = clerk
        .seed(&CreateUser {
            email_address: vec!["ada@example.com".into()],
            ..CreateUser::default()
        })
        .id;
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let (out, token) = block_on(m.sign_in(&session("L1", "ADA@example.com", true), 60));
    assert_eq!(
        out.outcome,
        Outcome::Linked {
            clerk_id: native.clone()
        }
    );
    assert_eq!(token.unwrap().user_id, native);
    assert_eq!(
        out.calls, 5,
        "create (refused), external id, email, the link's patch, the token"
    );
    assert_eq!(
        clerk.user(&native).unwrap().external_id.as_deref(),
        Some("L1")
    );
}

#[test]
fn a_fresh_trickle_user_costs_two_calls() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let (out, token) = block_on(m.sign_in(&session("L1", "a@example.com", false), 60));
    assert!(token.is_some());
    assert_eq!(out.calls, 2, "the create and the token");
    assert_eq!(clerk.request_log.borrow().len(), 2);
}

/// Admits every call: a page whose budget never refuses.
struct Admit;

impl CallGate for Admit {
    fn admit(&self) -> LocalBoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}

#[test]
fn a_page_of_candidates_is_judged_per_record() {
    // What a batched consumer does: one escaped multi-value query for the page, then each
    // record judged against the same answer.
    let clerk = MemoryClerk::default();
    let done = seed_with_id(&clerk, "+P1", "p1@example.com");
    let native = clerk
        .seed(&CreateUser {
            email_address: vec!["p2@example.com".into()],
            ..CreateUser::default()
        })
        .id;
    let attacker = clerk
        .seed(&CreateUser {
            email_address: vec!["p3@example.com".into()],
            email_address_identification_status: vec![IdentificationStatus::Reserved],
            ..CreateUser::default()
        })
        .id;
    let records = [
        rec(json!({"id": "+P1", "email": "p1@example.com"})),
        rec(json!({"id": "P2", "email": "p2@example.com", "email_verified": true})),
        rec(json!({"id": "P3", "email": "p3@example.com", "email_verified": true})),
        rec(json!({"id": "-P4", "email": "p4@example.com"})),
    ];
    let mut page = block_on(clerk.find_users(&UserQuery::by_external_ids(
        records.iter().map(|r| r.id.as_str()),
    )))
    .unwrap();
    page.extend(
        block_on(clerk.find_users(&UserQuery::by_emails(
            records.iter().filter_map(|r| r.email.as_deref()),
        )))
        .unwrap(),
    );
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let outs: Vec<_> = records
        .iter()
        .map(
            |r| match block_on(m.migrate_in_page(r, &page, true, &Admit)) {
                PageMigration::Done(migration) => migration,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(outs[0].outcome, Outcome::AlreadyMigrated { clerk_id: done });
    assert_eq!(outs[0].calls, 0, "nothing to complete");
    assert_eq!(outs[1].outcome, Outcome::Linked { clerk_id: native });
    assert!(matches!(
        outs[2].outcome,
        Outcome::Failed { ref code, .. } if code == "link_email_unverified_in_clerk"
    ));
    assert!(
        matches!(outs[3].outcome, Outcome::Created { .. }),
        "{:?}",
        outs[3]
    );
    assert_eq!(outs[3].calls, 1);
    assert_eq!(clerk.user(&attacker).unwrap().external_id, None);
    assert_eq!(clerk.user_count(), 4);
}

#[test]
fn a_session_without_an_identifier_still_finds_its_migrated_user() {
    // A database session the origin vouched for may carry no email: nothing to create with,
    // but the batch may already have migrated this person.
    let clerk = MemoryClerk::default();
    let existing = seed_with_id(&clerk, "L1", "a@example.com");
    let store = MemoryStore::new();
    let m = Migrator::new(&clerk, &store, Mode::Migrate);
    let bare = TrickleUser {
        legacy_id: "L1".into(),
        ..TrickleUser::default()
    };
    let (out, token) = block_on(m.sign_in(&bare, 60));
    assert_eq!(
        out.outcome,
        Outcome::AlreadyMigrated {
            clerk_id: existing.clone()
        }
    );
    assert_eq!(token.unwrap().user_id, existing);
    // Someone unknown: Clerk's refusal stands.
    let (out, token) = block_on(m.sign_in(
        &TrickleUser {
            legacy_id: "L2".into(),
            ..TrickleUser::default()
        },
        60,
    ));
    assert!(token.is_none());
    assert!(
        matches!(out.outcome, Outcome::Failed { ref code, .. } if code == "form_param_missing"),
        "{out:?}"
    );
}
