//! Who a page's records are bound to, and what it costs: creates, completions and links under
//! the two-sided email rule, escaped ids, refusals, and never a user created twice.

use super::*;

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
