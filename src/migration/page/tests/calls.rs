//! Calls on the wire: a grant for every call just before it is sent, none for records that
//! need no call, and never more calls out than a Worker's connections.

use super::*;

#[test]
fn records_that_need_no_call_take_no_grant() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let mut records = page(30);
    run(&clerk, &store, &records[..20]);
    // Twenty already complete, one refused (its email is held by an unverified user),
    // nine to create.
    let mut native = rec(20, true).to_create_user();
    native.external_id = None;
    clerk.seed(&native);
    records[20] = rec(20, false);
    let grants = Grants::free();
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    let result = block_on(migrate_page(&migrator, &clerk, &grants, &records));
    assert_eq!(
        result.calls,
        1 + 1 + 1 + 9,
        "the look-up, the create refused as taken, its email's look-up and nine creates"
    );
    assert_eq!(
        grants.granted.get(),
        12,
        "a grant for each call, none for the others"
    );
    assert!(matches!(&result.outcomes[20], Outcome::Failed { .. }));
}

/// Ready after `0` more polls, waking its task each time: a call out on the network.
struct Polls(u32);

impl std::future::Future for Polls {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// Clerk answering each call after a few polls (a number of its own, so answers come back out
/// of order), counting the calls out at once; each call must leave with the one grant just
/// given for it.
struct OnTheWire<'a> {
    inner: &'a MemoryClerk,
    grants: &'a Grants,
    sent: Cell<u32>,
    look_ups: Cell<u32>,
    out: Cell<usize>,
    most_out: Cell<usize>,
}

impl<'a> OnTheWire<'a> {
    fn new(inner: &'a MemoryClerk, grants: &'a Grants) -> Self {
        Self {
            inner,
            grants,
            sent: Cell::new(0),
            look_ups: Cell::new(0),
            out: Cell::new(0),
            most_out: Cell::new(0),
        }
    }

    async fn send<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        assert_eq!(
            self.grants.granted.get(),
            self.sent.get() + 1,
            "a call leaves with the grant just given for it"
        );
        self.sent.set(self.sent.get() + 1);
        self.out.set(self.out.get() + 1);
        self.most_out.set(self.most_out.get().max(self.out.get()));
        Polls(1 + self.sent.get() * 7 % 5).await;
        let answer = call.await;
        self.out.set(self.out.get() - 1);
        answer
    }
}

impl ClerkApi for OnTheWire<'_> {
    async fn find_users(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError> {
        self.look_ups.set(self.look_ups.get() + 1);
        self.send(self.inner.find_users(q)).await
    }
    async fn create_user(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError> {
        self.send(self.inner.create_user(body)).await
    }
    async fn update_user(&self, id: &str, b: &UpdateUser) -> Result<ClerkUser, ClerkError> {
        self.send(self.inner.update_user(id, b)).await
    }
    async fn update_user_metadata(
        &self,
        id: &str,
        b: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError> {
        self.send(self.inner.update_user_metadata(id, b)).await
    }
    async fn create_sign_in_token(&self, id: &str, secs: u32) -> Result<SignInToken, ClerkError> {
        self.send(self.inner.create_sign_in_token(id, secs)).await
    }
}

/// People who signed up in Clerk already (with the same verified email, no legacy id): every
/// `every`-th record of `records`.
fn signed_up_in_clerk(clerk: &MemoryClerk, records: &[ImportRecord], every: usize) {
    for r in records.iter().step_by(every) {
        let mut body = r.to_create_user();
        body.external_id = None;
        clerk.seed(&body);
    }
}

#[test]
fn a_page_never_has_more_calls_out_than_a_workers_connections_and_keeps_them_busy() {
    let memory = MemoryClerk::default();
    let records = page(100);
    signed_up_in_clerk(&memory, &records, 17);
    // Some creates answered 500, tried again after a pause while the others go on.
    memory.set_fault_hook(|n| (n % 23 == 7).then_some(Fault::ServerError));
    let grants = Grants::free();
    let clerk = OnTheWire::new(&memory, &grants);
    let store = MemoryStore::new();
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    let result = block_on(migrate_page(&migrator, &clerk, &grants, &records));
    assert!(
        result
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Created { .. } | Outcome::Linked { .. })),
        "{:?}",
        result.outcomes
    );
    assert_eq!(memory.user_count(), 100);
    assert_eq!(
        clerk.most_out.get(),
        6,
        "as many calls out as a Worker invocation's six connections, never more: the next \
         record starts as soon as one is free"
    );
    assert_eq!(result.calls, clerk.sent.get());
    assert_eq!(
        grants.granted.get(),
        clerk.sent.get(),
        "no grant left unsent"
    );
}

#[test]
fn every_call_a_record_makes_is_granted_just_before_it_is_sent() {
    let memory = MemoryClerk::default();
    // Calls beyond a create: people who signed up in Clerk (the create refused as taken, the
    // look-up of their emails, the link), people whose username someone else holds (their own
    // look-ups, a create without it), and creates answered 500 and tried again.
    let mut records = page(40);
    for (i, r) in records.iter_mut().enumerate().skip(3).step_by(5) {
        *r = parse_line(&format!(
            r#"{{"id":"L{i}","email":"u{i}@example.com","email_verified":true,"username":"user_{i:04}"}}"#
        ))
        .unwrap();
        memory.seed(&CreateUser {
            username: Some(format!("user_{i:04}")),
            email_address: vec![format!("other{i}@example.com")],
            ..CreateUser::default()
        });
    }
    signed_up_in_clerk(&memory, &records, 5);
    memory.set_fault_hook(|n| (n % 11 == 5).then_some(Fault::ServerError));
    let grants = Grants::free();
    let clerk = OnTheWire::new(&memory, &grants);
    let store = MemoryStore::new();
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    let result = block_on(migrate_page(&migrator, &clerk, &grants, &records));
    let linked = result
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Linked { .. }))
        .count();
    assert_eq!(linked, 8, "{:?}", result.outcomes);
    assert!(result.outcomes.iter().all(|o| o.clerk_id().is_some()));
    assert!(
        clerk.sent.get() > 1 + 40 + 8,
        "records made calls beyond their create: {}",
        clerk.sent.get()
    );
    assert_eq!(grants.granted.get(), clerk.sent.get());
}

#[test]
fn a_call_the_page_has_no_grant_for_is_never_sent_and_its_record_waits() {
    // Someone who signed up in Clerk: the look-up by external id, the create (refused as
    // taken), the look-up of the email, the link. The grants end before each of them.
    for grants_left in 0..=4u32 {
        let memory = MemoryClerk::default();
        let records = page(1);
        signed_up_in_clerk(&memory, &records, 1);
        let grants = Grants::stopping_after(grants_left);
        let clerk = OnTheWire::new(&memory, &grants);
        let store = MemoryStore::new();
        let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
        let result = block_on(migrate_page(&migrator, &clerk, &grants, &records));
        assert_eq!(clerk.sent.get(), grants_left);
        assert_eq!(result.calls, grants_left);
        let outcome = &result.outcomes[0];
        if grants_left == 4 {
            assert!(matches!(outcome, Outcome::Linked { .. }), "{outcome:?}");
        } else {
            assert!(
                matches!(outcome, Outcome::Retry { code, .. } if code == DEFERRED),
                "{grants_left}: {outcome:?}"
            );
            assert!(memory.user_by_external_id("L0").is_none());
        }
    }
}

#[test]
fn creates_out_when_their_emails_are_found_taken_share_one_look_up() {
    let memory = MemoryClerk::default();
    let records = page(30);
    signed_up_in_clerk(&memory, &records, 1);
    let grants = Grants::free();
    let clerk = OnTheWire::new(&memory, &grants);
    let store = MemoryStore::new();
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    let result = block_on(migrate_page(&migrator, &clerk, &grants, &records));
    assert!(result
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Linked { .. })));
    assert_eq!(memory.user_count(), 30, "nobody created");
    // The look-up by external id and one of the emails: the creates out when the first came
    // back refused as taken, and those started while the look-up was out, wait for it.
    assert_eq!(clerk.look_ups.get(), 2);
    let refused_creates = result.calls - 2 - 30;
    assert!(
        (1..=2 * CONNECTIONS_PER_INVOCATION as u32).contains(&refused_creates),
        "{refused_creates} creates refused as taken"
    );
}
