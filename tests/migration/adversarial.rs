//! Adversarial: a person is bound only to what Clerk and the legacy data both prove.

use super::*;

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
