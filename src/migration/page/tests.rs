//! Host tests of a page: look-ups, creates, completions and refusals over the in-memory Clerk,
//! faults and their tries, 429s, redeliveries, a grant for every call and never more calls out
//! than a Worker's connections, and the Queue messages' shape.

use super::*;
use crate::clerk_api::memory::{Fault, MemoryClerk};
use crate::clerk_api::{
    CreateUser, IdentificationStatus, SignInToken, UpdateUser, UpdateUserMetadata,
};
use crate::migration::record::parse_line;
use crate::migration::store::MemoryStore;
use futures::executor::block_on;
use std::cell::Cell;

/// Grants `left` calls (then stops the page, like a pause), on a clock that moves only when
/// the page sleeps.
struct Grants {
    left: Cell<u32>,
    granted: Cell<u32>,
    now: Cell<u64>,
}

impl Grants {
    fn free() -> Self {
        Self::stopping_after(u32::MAX)
    }
    fn stopping_after(grants: u32) -> Self {
        Grants {
            left: Cell::new(grants),
            granted: Cell::new(0),
            now: Cell::new(0),
        }
    }
}

impl Spender for Grants {
    async fn grant(&self) -> bool {
        match self.left.get() {
            0 => false,
            n => {
                self.left.set(n - 1);
                self.granted.set(self.granted.get() + 1);
                true
            }
        }
    }
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
    async fn sleep(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }
}

fn rec(i: usize, verified: bool) -> ImportRecord {
    parse_line(&format!(
        r#"{{"id":"L{i}","email":"u{i}@example.com","email_verified":{verified},"name":"User {i}"}}"#
    ))
    .unwrap()
}

fn page(n: usize) -> Vec<ImportRecord> {
    (0..n).map(|i| rec(i, true)).collect()
}

fn run(clerk: &MemoryClerk, store: &MemoryStore, records: &[ImportRecord]) -> PageResult {
    let migrator = Migrator::new(clerk, store, Mode::Migrate);
    block_on(migrate_page(&migrator, clerk, &Grants::free(), records))
}

#[test]
fn pages_with_handed_back_records_wait_until_they_are_due() {
    let m = |i: usize| QueueMessage {
        import_id: "i".into(),
        record: format!("r{i}"),
        attempts: 1,
    };
    let planned = [0, 0, 30];
    let cut = paginate((0..5).map(m).collect(), &[2, 2, 1]);
    let pages: Vec<(u32, PageMessage)> = cut.into_iter().map(|(i, p)| (planned[i], p)).collect();
    // Two handed-back records: one due 10.2 s from now, one in the past; three fresh ones.
    let mut held = pages.clone();
    hold_until_due(&mut held, &[110_200, 90_000], 100_000);
    let delays: Vec<u32> = held.iter().map(|(d, _)| *d).collect();
    assert_eq!(
        delays,
        vec![11, 0, 30],
        "due later: waits; planned later: keeps its plan"
    );
    let mut fresh = pages.clone();
    hold_until_due(&mut fresh, &[], 100_000);
    assert_eq!(fresh, pages);
}

#[test]
fn a_tail_page_sends_its_retries_as_tail_pages_delayed_by_their_backoff() {
    let m = |i: usize| QueueMessage {
        import_id: "i".into(),
        record: format!("r{i}"),
        attempts: 1,
    };
    let mut back: Vec<(u64, QueueMessage)> = (0..150).map(|i| (105_000, m(i))).collect();
    back.push((100_200, m(150)));
    let pages = tail_pages(back, 100_000);
    let shape: Vec<(u32, usize, bool)> = pages
        .iter()
        .map(|(d, p)| (*d, p.items.len(), p.tail))
        .collect();
    assert_eq!(shape, vec![(1, 1, true), (5, 100, true), (5, 50, true)]);
    // A page that is not a tail page is sent as before: no new field in the message.
    let plain = serde_json::to_string(&PageMessage {
        items: vec![m(0)],
        tail: false,
    })
    .unwrap();
    assert!(!plain.contains("tail"), "{plain}");
    let back: PageMessage = serde_json::from_str(&plain).unwrap();
    assert!(!back.tail);
}

#[test]
fn a_fresh_page_costs_one_call_per_user_plus_one_lookup() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let result = run(&clerk, &store, &page(100));
    assert_eq!(
        result.calls, 101,
        "the look-up by external id, then a create each"
    );
    assert!(result
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Created { .. })));
    assert_eq!(clerk.user_count(), 100);
    assert_eq!(clerk.request_log.borrow().len(), 101);
    assert_eq!(result.rate_limited_secs, None);
}

#[test]
fn existing_users_are_completed_linked_or_refused_never_duplicated() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let records = vec![rec(0, true), rec(1, true), rec(2, false), rec(3, true)];
    // L0 migrated before (found by external id); L1 and L2 signed up in Clerk with their
    // emails (verified there); L3's email belongs to another legacy user's Clerk account.
    clerk.seed(&records[0].to_create_user());
    for r in &records[1..3] {
        let mut body = r.to_create_user();
        body.external_id = None;
        clerk.seed(&body);
    }
    let mut other = records[3].to_create_user();
    other.external_id = Some("someone-else".into());
    clerk.seed(&other);

    let result = run(&clerk, &store, &records);
    assert!(matches!(
        result.outcomes[0],
        Outcome::AlreadyMigrated { .. }
    ));
    assert!(matches!(result.outcomes[1], Outcome::Linked { .. }));
    assert!(
        matches!(&result.outcomes[2], Outcome::Failed { code, .. } if code == "link_email_unverified_legacy"),
        "{:?}",
        result.outcomes[2]
    );
    assert!(
        matches!(&result.outcomes[3], Outcome::Failed { code, .. } if code == "external_id_conflict"),
        "{:?}",
        result.outcomes[3]
    );
    assert_eq!(clerk.user_count(), 4, "nobody created");
    assert_eq!(
        clerk
            .user_by_external_id("L1")
            .unwrap()
            .email_addresses
            .len(),
        1
    );
    assert!(clerk.user_by_external_id("someone-else").is_some());
    assert!(
        clerk.user_by_external_id("L3").is_none(),
        "two legacy users never merge"
    );
    assert!(
        clerk.user_by_external_id("L2").is_none(),
        "no link without proof"
    );
}

#[test]
fn escaped_ids_only_bind_their_exact_user() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    // A Clerk user "alice" exists; the legacy user "+alice" is someone else.
    let alice =
        parse_line(r#"{"id":"alice","email":"alice@example.com","email_verified":true}"#).unwrap();
    clerk.seed(&alice.to_create_user());
    let plus =
        parse_line(r#"{"id":"+alice","email":"plus@example.com","email_verified":true}"#).unwrap();
    let minus =
        parse_line(r#"{"id":"-5","email":"m5@example.com","email_verified":true}"#).unwrap();
    let result = run(&clerk, &store, &[plus, minus]);
    assert!(
        matches!(result.outcomes[0], Outcome::Created { .. }),
        "{result:?}"
    );
    assert!(
        matches!(result.outcomes[1], Outcome::Created { .. }),
        "{result:?}"
    );
    assert_eq!(
        clerk.user_by_external_id("alice").unwrap().email_addresses[0].email_address,
        "alice@example.com"
    );
    assert_eq!(clerk.user_count(), 3);
}

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

#[test]
fn observe_only_looks_up() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let records = page(5);
    let mut body = records[1].to_create_user();
    body.external_id = None;
    clerk.seed(&body);
    let migrator = Migrator::new(&clerk, &store, Mode::Observe);
    let result = block_on(migrate_page(
        &migrator,
        &clerk,
        &Grants::stopping_after(2),
        &records,
    ));
    assert_eq!(result.calls, 2);
    assert!(matches!(result.outcomes[1], Outcome::WouldLink { .. }));
    assert_eq!(
        result
            .outcomes
            .iter()
            .filter(|o| **o == Outcome::WouldCreate)
            .count(),
        4
    );
    assert_eq!(clerk.user_count(), 1);
}

#[test]
fn pages_are_cut_by_records_and_bytes() {
    let msg = |i: usize, len: usize| QueueMessage {
        import_id: "imp".into(),
        record: "x".repeat(len) + &i.to_string(),
        attempts: 0,
    };
    let small: Vec<QueueMessage> = (0..250).map(|i| msg(i, 10)).collect();
    let pages = paginate(small, &[100, 100, 50]);
    assert_eq!(
        pages
            .iter()
            .map(|(i, p)| (*i, p.items.len()))
            .collect::<Vec<_>>(),
        vec![(0, 100), (1, 100), (2, 50)]
    );
    let big: Vec<QueueMessage> = (0..10).map(|i| msg(i, 30 * 1024)).collect();
    let pages = paginate(big, &[10]);
    assert!(pages.iter().all(|(i, p)| *i == 0 && p.items.len() <= 3));
    assert_eq!(pages.iter().map(|(_, p)| p.items.len()).sum::<usize>(), 10);
    let json = serde_json::to_string(&pages[0].1).unwrap();
    assert!(json.len() < 128 * 1024);
}

#[test]
fn a_page_of_people_already_in_clerk_pays_once_for_creates_refused_as_taken() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let records = page(30);
    // Everyone signed up in Clerk with the same email, verified there.
    for r in &records {
        let mut body = r.to_create_user();
        body.external_id = None;
        clerk.seed(&body);
    }
    let result = run(&clerk, &store, &records);
    assert!(
        result
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Linked { .. })),
        "{:?}",
        result.outcomes
    );
    assert_eq!(clerk.user_count(), 30, "nobody created");
    // The look-up by external id; the first create, refused as taken; one look-up of its email
    // and of the 29 records not tried yet; a link each.
    assert_eq!(result.calls, 1 + 1 + 1 + 30);
    for r in &records {
        assert!(clerk.user_by_external_id(&r.id).is_some(), "{}", r.id);
    }
}

#[test]
fn an_unverified_copy_of_the_email_in_clerk_is_never_linked() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    // Legacy users, all with an email their app verified.
    let records = page(5);
    // Someone signed up in Clerk first with copies of their addresses, never verified: as is,
    // in another case, next to a verified address of their own, and on an account that
    // another legacy user's migration already owns. L4 signed up for real (verified).
    let copy = |email: &str, own: Option<&str>, external_id: Option<&str>| {
        let mut body = CreateUser {
            external_id: external_id.map(str::to_owned),
            skip_password_requirement: Some(true),
            ..CreateUser::default()
        };
        for (address, status) in own
            .map(|o| (o, IdentificationStatus::Verified))
            .into_iter()
            .chain([(email, IdentificationStatus::Reserved)])
        {
            body.email_address.push(address.to_owned());
            body.email_address_identification_status.push(status);
        }
        clerk.seed(&body).id
    };
    let copies = [
        copy("u0@example.com", None, None),
        copy("U1@EXAMPLE.com", None, None),
        copy("u2@example.com", Some("mallory@example.com"), None),
        copy("u3@example.com", None, Some("someone-else")),
    ];
    let mut real = records[4].to_create_user();
    real.external_id = None;
    let real = clerk.seed(&real).id;
    let before: Vec<ClerkUser> = copies.iter().map(|id| clerk.user(id).unwrap()).collect();

    let result = run(&clerk, &store, &records);
    for (i, o) in result.outcomes.iter().take(3).enumerate() {
        assert!(
            matches!(o, Outcome::Failed { code, .. } if code == "link_email_unverified_in_clerk"),
            "{i}: {o:?}"
        );
    }
    assert!(
        matches!(&result.outcomes[3], Outcome::Failed { code, .. } if code == "external_id_conflict"),
        "{:?}",
        result.outcomes[3]
    );
    assert!(
        matches!(&result.outcomes[4], Outcome::Linked { clerk_id } if *clerk_id == real),
        "{:?}",
        result.outcomes[4]
    );
    // The copies' accounts are as they were, none got a legacy id, and nobody was created
    // next to them.
    let after: Vec<ClerkUser> = copies.iter().map(|id| clerk.user(id).unwrap()).collect();
    assert_eq!(before, after);
    for r in &records[..4] {
        assert!(clerk.user_by_external_id(&r.id).is_none(), "{}", r.id);
    }
    assert_eq!(clerk.user_count(), 5);
}

/// Counts `POST /users` per `external_id`.
struct CountsCreates<'a> {
    inner: &'a MemoryClerk,
    creates: std::cell::RefCell<std::collections::HashMap<String, u32>>,
}

impl CountsCreates<'_> {
    fn creates_of(&self, external_id: &str) -> u32 {
        self.creates.borrow().get(external_id).copied().unwrap_or(0)
    }
}

impl ClerkApi for CountsCreates<'_> {
    async fn find_users(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError> {
        self.inner.find_users(q).await
    }
    async fn create_user(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError> {
        let key = body.external_id.clone().unwrap_or_default();
        *self.creates.borrow_mut().entry(key).or_default() += 1;
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
fn an_unanswered_create_without_email_is_looked_up_by_external_id_before_any_second_create() {
    let memory = MemoryClerk::default();
    // No protection from Clerk's uniqueness of external ids: only the page's own rule stands
    // between an unanswered create and a duplicate.
    memory.set_unique_external_id(false);
    let clerk = CountsCreates {
        inner: &memory,
        creates: Default::default(),
    };
    let store = MemoryStore::new();
    // People with a username and no email: no `form_identifier_exists` for an email.
    let records: Vec<ImportRecord> = (0..20)
        .map(|i| parse_line(&format!(r#"{{"id":"N{i}","username":"user_{i:04}"}}"#)).unwrap())
        .collect();
    // Request 0 is the look-up; N2's create times out after Clerk wrote the user, N4's is
    // answered 500 (nothing written), N6's connection drops before anything is written.
    memory.set_fault_hook(|n| match n {
        3 => Some(Fault::TimeoutAfterWrite),
        5 => Some(Fault::ServerError),
        7 => Some(Fault::Timeout),
        _ => None,
    });
    let migrator = Migrator::new(&clerk, &store, Mode::Migrate);
    let first = block_on(migrate_page(&migrator, &clerk, &Grants::free(), &records));
    assert!(
        matches!(&first.outcomes[2], Outcome::Retry { code, .. } if code == "timeout"),
        "{:?}",
        first.outcomes[2]
    );
    assert_eq!(
        clerk.creates_of("N2"),
        1,
        "an unanswered create is not sent again"
    );
    assert_eq!(clerk.creates_of("N6"), 1);
    assert!(matches!(first.outcomes[4], Outcome::Created { .. }));
    assert_eq!(
        clerk.creates_of("N4"),
        2,
        "an answered 500 is tried again in the page"
    );
    assert_eq!(memory.user_count(), 19);

    // The next delivery of N2 and N6 starts with the look-up by external id: N2's user is
    // found, N6 is created once.
    let again = block_on(migrate_page(
        &migrator,
        &clerk,
        &Grants::free(),
        &[records[2].clone(), records[6].clone()],
    ));
    assert!(
        matches!(again.outcomes[0], Outcome::AlreadyMigrated { .. }),
        "{:?}",
        again.outcomes[0]
    );
    assert!(matches!(again.outcomes[1], Outcome::Created { .. }));
    assert_eq!(clerk.creates_of("N2"), 1);
    assert_eq!(clerk.creates_of("N6"), 2);
    assert_eq!(memory.user_count(), 20);
    assert!(memory.duplicate_external_ids().is_empty());
}

#[test]
fn a_user_the_look_up_lags_behind_is_never_created_twice() {
    let memory = MemoryClerk::default();
    memory.set_unique_external_id(false);
    // Clerk's search shows a user a while after its write; uniqueness checks see it at once.
    memory.set_search_lag(60_000);
    memory.set_now(1_000_000);
    let store = MemoryStore::new();
    let with_email = rec(0, true);
    let without = parse_line(r#"{"id":"N1","username":"user_0001"}"#).unwrap();
    let records = vec![with_email, without];
    // A delivery creates both, its outcomes are lost (a crash before writing them).
    run(&memory, &store, &records);
    assert_eq!(memory.user_count(), 2);
    // Redelivered at once: the look-up by external id does not show them yet. The creates are
    // refused as taken (the email, the username): nobody twice; the records wait.
    let again = run(&memory, &store, &records);
    assert_eq!(memory.user_count(), 2);
    assert!(memory.duplicate_external_ids().is_empty());
    assert!(
        again
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Retry { .. })),
        "{:?}",
        again.outcomes
    );
    // Once Clerk's search caught up, both are found by external id.
    memory.set_now(1_000_000 + 60_000);
    let later = run(&memory, &store, &records);
    assert!(later
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::AlreadyMigrated { .. })));
    assert_eq!(later.calls, 1);
}

#[test]
fn a_digest_refused_before_the_email_was_found_taken_still_links_without_it() {
    let clerk = MemoryClerk::default();
    let store = MemoryStore::new();
    let record = parse_line(
        r#"{"id":"L0","email":"u0@example.com","email_verified":true,"password_digest":"not-bcrypt","password_hasher":"bcrypt"}"#,
    )
    .unwrap();
    let mut native = rec(0, true).to_create_user();
    native.external_id = None;
    let native = clerk.seed(&native).id;
    let result = run(&clerk, &store, &[record]);
    assert!(
        matches!(&result.outcomes[0], Outcome::Linked { clerk_id } if *clerk_id == native),
        "{:?}",
        result.outcomes[0]
    );
    // The look-up by external id, the create refused for its digest, the create without it
    // refused as taken, the email's look-up, and the link: refused with the digest, then
    // made without it.
    assert_eq!(result.calls, 6);
    assert!(!clerk.user(&native).unwrap().password_enabled);
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
