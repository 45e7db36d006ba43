//! Faults and their tries: transient errors tried again after a pause, a Clerk in trouble
//! backed off, 429s, redeliveries after a partial run, and a value Clerk refuses for good.

use super::*;

#[test]
fn answered_transient_errors_are_tried_again_in_the_page_after_a_pause() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    // Request 0 is the look-up; 4 and 6 are creates (L3's, L5's): a 500, tried again at the
    // end of the page, and a timeout after Clerk wrote the user, which waits for its
    // backoff (its next page finds the user by its look-up).
    clerk.set_fault_hook(|n| match n {
        4 => Some(Fault::ServerError),
        6 => Some(Fault::TimeoutAfterWrite),
        _ => None,
    });
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    let grants = Grants::free();
    let result = block_on(migrate_page(&migrator, &clerk, &grants, &page(10)));
    assert!(matches!(result.outcomes[3], Outcome::Created { .. }));
    assert!(
        matches!(&result.outcomes[5], Outcome::Retry { code, .. } if code == "timeout"),
        "{:?}",
        result.outcomes[5]
    );
    let created = result.outcomes.iter().filter(|o| o.clerk_id().is_some());
    assert_eq!(created.count(), 9);
    assert_eq!(result.calls, 1 + 10 + 1);
    assert!(grants.now.get() >= RETRY_PAUSE_MS, "the retry waited");
    // The timed-out record's next page finds its user: nobody twice.
    let again = run(&clerk, &store, &page(10)[5..6]);
    assert!(matches!(again.outcomes[0], Outcome::AlreadyMigrated { .. }));
    assert_eq!(clerk.user_count(), 10);
    assert!(clerk.duplicate_external_ids().is_empty());
}

#[test]
fn a_record_that_keeps_failing_is_left_pending_after_its_tries() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    // Request 0 is the look-up, 1..=10 the creates in order: L4's is 5, and its two tries
    // again (11, 12) fail too.
    clerk.set_fault_hook(|n| matches!(n, 5 | 11 | 12).then_some(Fault::ServerError));
    let result = run(&clerk, &store, &page(10));
    assert!(
        matches!(&result.outcomes[4], Outcome::Retry { code, .. } if code == "clerk_unavailable"),
        "{:?}",
        result.outcomes[4]
    );
    assert_eq!(clerk.user_count(), 9);
    assert_eq!(result.calls, 1 + 10 + 2);
}

#[test]
fn a_clerk_in_trouble_gets_the_backoff_not_more_calls() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    // Half the creates fail: the page does not try them again (they wait for their
    // backoff, pending), and the other half are created.
    clerk.set_fault_hook(|n| (n >= 1 && n % 2 == 0).then_some(Fault::ServerError));
    let result = run(&clerk, &store, &page(20));
    let pending = result
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Retry { code, .. } if code == "clerk_unavailable"))
        .count();
    assert!(pending >= 8, "{:?}", result.outcomes);
    assert_eq!(clerk.user_count(), 20 - pending);
    assert!(result.calls <= 1 + 20 + 3, "{}", result.calls);
}

#[test]
fn a_429_stops_the_page_and_asks_for_its_retry_after() {
    let clerk = MemoryClerk::new(Some((5, 10_000)));
    let store = MemoryStore::new();
    let result = run(&clerk, &store, &page(10));
    // The look-up and four creates fit; the sixth call is refused.
    assert_eq!(result.rate_limited_secs, Some(10));
    let created = result
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Created { .. }))
        .count();
    assert_eq!(created, 4);
    assert!(result.outcomes.iter().all(|o| match o {
        Outcome::Created { .. } => true,
        Outcome::Retry { code, after_secs } => code == RATE_LIMITED && after_secs.is_some(),
        _ => false,
    }));
}

#[test]
fn a_page_redelivered_after_a_partial_run_creates_nobody_twice() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let records = page(30);
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    // The first delivery stops after the look-up and ten creates (a crash, a pause): its
    // outcomes are never written.
    let first = block_on(migrate_page(
        &migrator,
        &clerk,
        &Grants::stopping_after(11),
        &records,
    ));
    let created_first = clerk.user_count();
    assert_eq!(created_first, 10);
    assert!(first
        .outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Retry { code, .. } if code == DEFERRED)));
    // A create whose answer was lost (the user exists, the caller does not know).
    let base = clerk.request_log.borrow().len() as u64;
    clerk.set_fault_hook(move |n| (n == base + 3).then_some(Fault::TimeoutAfterWrite));
    let second = run(&clerk, &store, &records);
    let third = run(&clerk, &store, &records);
    assert_eq!(clerk.user_count(), 30);
    assert!(clerk.duplicate_external_ids().is_empty());
    for o in second.outcomes.iter().take(10) {
        assert!(matches!(o, Outcome::AlreadyMigrated { .. }), "{o:?}");
    }
    assert!(third
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::AlreadyMigrated { .. })));
    assert_eq!(third.calls, 1, "everyone found by one look-up");
}

/// Refuses for good any look-up that carries `bad`.
struct RefusesValue<'a> {
    inner: &'a MemoryClerk,
    bad: &'a str,
}

impl ClerkApi for RefusesValue<'_> {
    async fn find_users(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError> {
        if q.email_address.iter().any(|e| e == self.bad) {
            return Err(ClerkError::Api {
                status: 422,
                code: "form_param_format_invalid".into(),
                message: "invalid".into(),
                long_message: None,
                param: Some("email_address".into()),
            });
        }
        self.inner.find_users(q).await
    }
    async fn create_user(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError> {
        self.inner.create_user(body).await
    }
    async fn update_user(&self, id: &str, b: &UpdateUser) -> Result<ClerkUser, ClerkError> {
        self.inner.update_user(id, b).await
    }
    async fn update_user_metadata(
        &self,
        id: &str,
        b: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError> {
        self.inner.update_user_metadata(id, b).await
    }
    async fn create_sign_in_token(&self, id: &str, secs: u32) -> Result<SignInToken, ClerkError> {
        self.inner.create_sign_in_token(id, secs).await
    }
}

#[test]
fn a_value_clerk_refuses_fails_alone_and_the_page_goes_on() {
    let memory = MemoryClerk::default();
    // Everyone signed up in Clerk with the same verified email: every create is refused as
    // taken, and the emails are looked up.
    for r in page(16) {
        let mut body = r.to_create_user();
        body.external_id = None;
        memory.seed(&body);
    }
    let clerk = RefusesValue {
        inner: &memory,
        bad: "u5@example.com",
    };
    let store = MemoryStore::new();
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    let result = block_on(migrate_page(&migrator, &clerk, &Grants::free(), &page(16)));
    for (i, o) in result.outcomes.iter().enumerate() {
        if i == 5 {
            assert!(
                matches!(o, Outcome::Failed { code, .. } if code == "form_param_format_invalid"),
                "{o:?}"
            );
        } else {
            assert!(matches!(o, Outcome::Linked { .. }), "{i}: {o:?}");
        }
    }
    assert_eq!(memory.user_count(), 16);
    // The look-up by external id; the first create, refused as taken; its email's look-up
    // with the fifteen not tried yet (1 refused + 2 × log2(16) halvings); 15 links. L5, not
    // tried yet when the look-up of its email failed, is tried like any record: its create
    // refused as taken, then its own look-ups (by external id, and by email: refused).
    assert_eq!(result.calls, 1 + 1 + 9 + 15 + 3);
}
