//! The one find-or-link-or-create state machine, shared by the trickle (a signed-in NextAuth
//! user) and the batch (an import record).
//!
//! For a legacy user `L`, in `migrate`:
//! 1. `POST /users` with `external_id = L` first — a fresh user costs this one call
//!    (`Created`). Clerk keeps `external_id`, emails, phones and usernames unique, so a racing
//!    caller (trickle vs batch, another isolate, a redelivered message) gets
//!    `422 form_identifier_exists` instead of a duplicate.
//! 2. Only then look up: `GET /users?external_id=+L` (escaped: Clerk reads a leading `+`/`-`
//!    as a marker), re-checked for an exact match by [`proof`] — found: complete missing fields
//!    (`AlreadyMigrated`).
//! 3. Otherwise the identifier Clerk named (then the others): its holder is judged by
//!    [`proof`]: linked only when both sides prove the email verified; anything else is a
//!    `Failed` outcome with a stable refusal code, never a guess. A taken username or phone
//!    that proves nothing does not block the person: they are created without it, with a
//!    warning.
//! 4. A password digest Clerk refuses never blocks a user either: they are migrated without
//!    it and a warning with Clerk's code is kept for the operator ([`ledger::record_warning`]).
//!
//! The batch's page ([`super::page`]) runs the same steps with its look-ups shared by up to 100
//! records ([`Migrator::migrate_in_page`]): a create that finds the email taken is handed back,
//! so that the page looks up all its taken emails in one call, then judged on the answer.
//!
//! `observe` asks the same questions with reads only (lookups first, no create).
//!
//! Clerk answers every question; the store only remembers answers afterwards
//! (`map:l2c:` / `map:c2l:`, see [`super::ledger`]), written only for a user whose answer was
//! re-checked here, so a stale KV read costs a call, never a duplicate or a wrong binding.

pub use super::counted::CallGate;
pub use super::outcome::{Migration, MigrationWarning, Outcome};

use super::counted::Counted;
use super::ledger;
use super::outcome::{digest_warning, is_digest_rejection, refused, taken_warning};
use super::proof::{self, Binding, Decision, Identifier, LegacyFacts};
use super::record::ImportRecord;
use super::store::Store;
use crate::clerk_api::{
    ClerkApi, ClerkError, ClerkUser, CreateUser, SignInToken, UpdateUser, UserQuery,
};

/// `MIGRATION_PHASE` as the migrator sees it: `observe` is a dry run (reads only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Observe,
    Migrate,
}

/// What a NextAuth session tells us about its user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrickleUser {
    /// The session's `sub`.
    pub legacy_id: String,
    pub email: Option<String>,
    /// Whether the session's email may be trusted as verified. NextAuth's JWT does not say;
    /// set it from the app's providers (OAuth / email-link sign-ins prove the address).
    pub email_verified: bool,
    pub name: Option<String>,
    pub image: Option<String>,
}

impl TrickleUser {
    pub fn to_record(&self) -> ImportRecord {
        ImportRecord {
            id: self.legacy_id.clone(),
            email: self.email.clone(),
            email_verified: self.email_verified,
            name: self.name.clone(),
            image: self.image.clone(),
            ..ImportRecord::default()
        }
    }
}

/// Most `POST /users` attempts for one migration: the first, one without a refused digest,
/// one without a taken username, one without a taken phone.
const MAX_CREATES: usize = 4;

fn identifier_query(identifier: Identifier, value: &str) -> UserQuery {
    match identifier {
        Identifier::Email => UserQuery::by_email(value),
        Identifier::Phone => UserQuery::by_phone(value),
        Identifier::Username => UserQuery::by_username(value),
    }
}

/// The identifiers to look up after Clerk said one is taken: the one it named first.
fn lookup_order(named: Option<&str>) -> Vec<Identifier> {
    let first = named.and_then(Identifier::from_clerk_param);
    first
        .into_iter()
        .chain(Identifier::ALL.into_iter().filter(|i| Some(*i) != first))
        .collect()
}

/// One migration's running state: what was left out so far.
#[derive(Default)]
struct Run {
    warnings: Vec<MigrationWarning>,
    digest_refused: bool,
}

impl Run {
    fn warn(&mut self, w: MigrationWarning) {
        if !self.warnings.iter().any(|x| x.code == w.code) {
            self.warnings.push(w);
        }
    }
}

/// What [`Migrator::migrate_in_page`] did.
#[derive(Debug)]
pub enum PageMigration {
    /// Settled: found, linked, created, refused, or to retry.
    Done(Migration),
    /// Clerk answered `form_identifier_exists` for the email after `calls` calls (in
    /// `observe`, which creates nothing: the email may be taken): nobody was created, and the
    /// holder is still to be looked up.
    EmailTaken { calls: u32 },
}

impl PageMigration {
    /// Backend API calls made.
    pub fn calls(&self) -> u32 {
        match self {
            PageMigration::Done(m) => m.calls,
            PageMigration::EmailTaken { calls } => *calls,
        }
    }
}

/// What the create path concluded.
enum Created {
    Done(Outcome),
    /// The email is taken, and the caller looks its holder up ([`Defer::TakenEmail`]).
    EmailTaken,
}

impl Created {
    fn into_outcome(self) -> Outcome {
        match self {
            Created::Done(outcome) => outcome,
            // Only answered when deferred; were it otherwise, the holder is not found yet.
            Created::EmailTaken => Outcome::Retry {
                after_secs: Some(2),
                code: "identifier_exists_not_found".into(),
            },
        }
    }
}

/// Whether the create path looks up the holder of a taken email itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Defer {
    Nothing,
    /// The caller looks the holder up (a page, for many records in one call).
    TakenEmail,
}

/// What the look-ups after a `form_identifier_exists` concluded.
enum Resolved {
    Done(Outcome),
    /// Only a username / phone that proves nothing is in the way: create without it.
    CreateWithout(Identifier),
}

pub struct Migrator<C, S> {
    clerk: C,
    store: S,
    mode: Mode,
}

impl<C: ClerkApi, S: Store> Migrator<C, S> {
    pub fn new(clerk: C, store: S, mode: Mode) -> Self {
        Self { clerk, store, mode }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Batch path: one import record.
    pub async fn migrate_record(&self, rec: &ImportRecord) -> Migration {
        let api = Counted::new(&self.clerk, None);
        let mut run = Run::default();
        let outcome = match self.run(&api, rec, &mut run).await {
            Ok(o) => o,
            Err(e) => Outcome::from_error(&e),
        };
        self.finish(rec, outcome, run, api.calls.get()).await
    }

    /// Remembers a success (mapping, warnings) and reports the migration.
    async fn finish(
        &self,
        rec: &ImportRecord,
        outcome: Outcome,
        run: Run,
        calls: u32,
    ) -> Migration {
        let warnings = if outcome.clerk_id().is_some() {
            run.warnings
        } else {
            Vec::new()
        };
        let outcome = self.remember(rec, outcome, &warnings).await;
        Migration {
            outcome,
            calls,
            warnings,
        }
    }

    /// Batch path with the look-ups already done for a whole page: `candidates` are the users
    /// that the page's multi-value queries answered (by escaped external ids, and by the emails
    /// it looked up), judged for this record by [`proof::decide`]: a bound user is completed
    /// (or linked), a refusal fails with its code. A record nobody holds is created
    /// first (one `POST /users` with its `external_id`: the whole cost of a fresh user). While
    /// the page has not looked this record's email up (`email_looked_up` false), a create that
    /// Clerk refuses because the email is taken is handed back
    /// ([`PageMigration::EmailTaken`]): the page looks up all such emails in one call and runs
    /// the record again with the holders among `candidates`, to be judged like any candidate
    /// (a link only on an email verified on both sides). A taken phone, username or external
    /// id is resolved here, by this record's own look-ups. Every call it makes is admitted by
    /// `gate` first (the page's budget): one refused ends the record as [`ClerkError::NotSent`].
    pub async fn migrate_in_page(
        &self,
        rec: &ImportRecord,
        candidates: &[ClerkUser],
        email_looked_up: bool,
        gate: &dyn CallGate,
    ) -> PageMigration {
        let api = Counted::new(&self.clerk, Some(gate));
        let mut run = Run::default();
        let defer = if email_looked_up {
            Defer::Nothing
        } else {
            Defer::TakenEmail
        };
        let outcome = match self.judge(&api, rec, candidates, &mut run, defer).await {
            Ok(Created::EmailTaken) => {
                return PageMigration::EmailTaken {
                    calls: api.calls.get(),
                }
            }
            Ok(Created::Done(outcome)) => outcome,
            Err(e) => Outcome::from_error(&e),
        };
        PageMigration::Done(self.finish(rec, outcome, run, api.calls.get()).await)
    }

    /// [`proof::decide`] over `candidates`, then completes, refuses or creates.
    async fn judge(
        &self,
        api: &Counted<'_, C>,
        rec: &ImportRecord,
        candidates: &[ClerkUser],
        run: &mut Run,
        defer: Defer,
    ) -> Result<Created, ClerkError> {
        let observe = self.mode == Mode::Observe;
        match proof::decide(&LegacyFacts::of(rec), candidates) {
            Decision::Bound { user, by } if observe => Ok(Created::Done(match by {
                Binding::ExternalId => Outcome::AlreadyMigrated { clerk_id: user.id },
                Binding::VerifiedEmail => Outcome::WouldLink { clerk_id: user.id },
            })),
            Decision::Bound { user, by } => self
                .complete(api, rec, user, by == Binding::VerifiedEmail, run)
                .await
                .map(Created::Done),
            // `observe` cannot learn from a create that the email is taken: it has the page
            // look the email up first.
            Decision::Refused {
                identifier: Some(Identifier::Username | Identifier::Phone),
                ..
            }
            | Decision::NoMatch
                if observe =>
            {
                Ok(if defer == Defer::TakenEmail && rec.email.is_some() {
                    Created::EmailTaken
                } else {
                    Created::Done(Outcome::WouldCreate)
                })
            }
            // A taken username or phone is left out by the create path, not refused.
            Decision::Refused {
                identifier: Some(Identifier::Username | Identifier::Phone),
                ..
            }
            | Decision::NoMatch => self.create_path(api, rec, run, defer).await,
            Decision::Refused {
                refusal,
                clerk_id,
                identifier,
            } => Ok(Created::Done(refused(refusal, &clerk_id, identifier))),
        }
    }

    /// Trickle path: the session's facts, merged under any stored import record for the same
    /// legacy id (the record wins: it carries the digest, `created_at`, names, metadata).
    /// A store that cannot be read only means those extras wait for the batch.
    pub async fn migrate_trickle(&self, user: &TrickleUser) -> Migration {
        let session = user.to_record();
        let rec = match ledger::find_import_record(&self.store, &user.legacy_id).await {
            Ok(Some(mut stored)) => {
                stored.fill_from(&session);
                stored
            }
            _ => session,
        };
        self.migrate_record(&rec).await
    }

    /// Trickle path plus a sign-in token for the resulting Clerk user (`migrate` only).
    pub async fn sign_in(
        &self,
        user: &TrickleUser,
        expires_in_seconds: u32,
    ) -> (Migration, Option<SignInToken>) {
        let mut m = self.migrate_trickle(user).await;
        let Some(clerk_id) = m.outcome.clerk_id().map(str::to_owned) else {
            return (m, None);
        };
        if self.mode == Mode::Observe {
            return (m, None);
        }
        m.calls += 1;
        match self
            .clerk
            .create_sign_in_token(&clerk_id, expires_in_seconds)
            .await
        {
            Ok(t) => (m, Some(t)),
            Err(e) => {
                m.outcome = Outcome::from_error(&e);
                (m, None)
            }
        }
    }

    async fn run(
        &self,
        api: &Counted<'_, C>,
        rec: &ImportRecord,
        run: &mut Run,
    ) -> Result<Outcome, ClerkError> {
        Ok(self
            .create_path(api, rec, run, Defer::Nothing)
            .await?
            .into_outcome())
    }

    /// The create path: `POST /users`, and on `form_identifier_exists` the look-ups that
    /// resolve it (the email's holder left to the caller when `defer` says so).
    async fn create_path(
        &self,
        api: &Counted<'_, C>,
        rec: &ImportRecord,
        run: &mut Run,
        defer: Defer,
    ) -> Result<Created, ClerkError> {
        if self.mode == Mode::Observe {
            return self.observe(api, rec).await.map(Created::Done);
        }
        let facts = LegacyFacts::of(rec);
        let mut body = rec.to_create_user();
        for _ in 0..MAX_CREATES {
            let err = match api.create(&body).await {
                Ok(user) => {
                    // Re-checked like any answer: the user we bind must carry this legacy id.
                    if user.external_id() != Some(rec.id.as_str()) {
                        return Ok(Created::Done(Outcome::Failed {
                            code: "clerk_answer_mismatch".into(),
                            message: format!(
                                "Clerk created user {} without the legacy id as external_id",
                                user.id
                            ),
                        }));
                    }
                    return Ok(Created::Done(Outcome::Created { clerk_id: user.id }));
                }
                Err(e) => e,
            };
            if is_digest_rejection(&err) && body.password_digest.is_some() {
                run.warn(digest_warning(&err, body.password_hasher.as_deref()));
                run.digest_refused = true;
                body.password_digest = None;
                body.password_hasher = None;
                body.skip_password_requirement = Some(true);
                continue;
            }
            if !err.is_identifier_exists() {
                // Clerk refused the body for good (e.g. a session with no identifier to create
                // with): the person may still exist already, bound by the legacy id.
                if matches!(err, ClerkError::Api { .. }) && !err.is_retryable() {
                    let found = api.find(&UserQuery::by_external_id(&rec.id)).await?;
                    if let Decision::Bound { user, .. } = proof::by_external_id(&rec.id, &found) {
                        let outcome = self.complete(api, rec, user, false, run).await?;
                        return Ok(Created::Done(outcome));
                    }
                }
                return Err(err);
            }
            // Someone holds one of our identifiers: this person (a racing caller, an earlier
            // run) or somebody else.
            if defer == Defer::TakenEmail
                && err.param() == Some(Identifier::Email.clerk_param())
                && !body.email_address.is_empty()
            {
                return Ok(Created::EmailTaken);
            }
            match self
                .resolve_existing(api, rec, &facts, &body, err.param(), run)
                .await?
            {
                Resolved::Done(outcome) => return Ok(Created::Done(outcome)),
                Resolved::CreateWithout(identifier) => {
                    run.warn(taken_warning(identifier));
                    match identifier {
                        Identifier::Username => body.username = None,
                        Identifier::Phone => {
                            body.phone_number.clear();
                            body.phone_number_identification_status.clear();
                        }
                        Identifier::Email => {}
                    }
                }
            }
        }
        Ok(Created::Done(Outcome::Retry {
            after_secs: Some(2),
            code: "identifier_exists_not_found".into(),
        }))
    }

    /// After `form_identifier_exists`: the exact external-id match first, then the holders of
    /// the identifiers (the one Clerk named first), judged by [`proof`].
    async fn resolve_existing(
        &self,
        api: &Counted<'_, C>,
        rec: &ImportRecord,
        facts: &LegacyFacts<'_>,
        body: &CreateUser,
        named: Option<&str>,
        run: &mut Run,
    ) -> Result<Resolved, ClerkError> {
        let found = api.find(&UserQuery::by_external_id(&rec.id)).await?;
        match proof::by_external_id(&rec.id, &found) {
            Decision::Bound { user, .. } => {
                return Ok(Resolved::Done(
                    self.complete(api, rec, user, false, run).await?,
                ))
            }
            Decision::Refused {
                refusal, clerk_id, ..
            } => return Ok(Resolved::Done(refused(refusal, &clerk_id, None))),
            Decision::NoMatch => {}
        }
        // A username or phone proves nothing; when the person has another identifier to be
        // created with, someone else holding it must not block them.
        let still_has = |i: Identifier| match i {
            Identifier::Email => !body.email_address.is_empty(),
            Identifier::Phone => !body.phone_number.is_empty(),
            Identifier::Username => body.username.is_some(),
        };
        if let Some(i @ (Identifier::Username | Identifier::Phone)) =
            named.and_then(Identifier::from_clerk_param)
        {
            let other_left = Identifier::ALL
                .into_iter()
                .any(|o| o != i && o != Identifier::Username && still_has(o));
            if still_has(i) && other_left {
                return Ok(Resolved::CreateWithout(i));
            }
        }
        for identifier in lookup_order(named) {
            let Some(value) = identifier.value(facts) else {
                continue;
            };
            if !still_has(identifier) {
                continue;
            }
            let found = api.find(&identifier_query(identifier, value)).await?;
            match proof::by_identifier(facts, identifier, &found) {
                Decision::NoMatch => continue,
                Decision::Bound { user, by } => {
                    let linking = by == Binding::VerifiedEmail;
                    return Ok(Resolved::Done(
                        self.complete(api, rec, user, linking, run).await?,
                    ));
                }
                Decision::Refused {
                    refusal,
                    clerk_id,
                    identifier,
                } => return Ok(Resolved::Done(refused(refusal, &clerk_id, identifier))),
            }
        }
        // Clerk says taken but will not show it yet (its search lags writes).
        Ok(Resolved::Done(Outcome::Retry {
            after_secs: Some(2),
            code: "identifier_exists_not_found".into(),
        }))
    }

    /// `observe`: the same decisions from reads only.
    async fn observe(
        &self,
        api: &Counted<'_, C>,
        rec: &ImportRecord,
    ) -> Result<Outcome, ClerkError> {
        let facts = LegacyFacts::of(rec);
        let found = api.find(&UserQuery::by_external_id(&rec.id)).await?;
        match proof::by_external_id(&rec.id, &found) {
            Decision::Bound { user, .. } => {
                return Ok(Outcome::AlreadyMigrated { clerk_id: user.id })
            }
            Decision::Refused {
                refusal, clerk_id, ..
            } => return Ok(refused(refusal, &clerk_id, None)),
            Decision::NoMatch => {}
        }
        for identifier in Identifier::ALL {
            let Some(value) = identifier.value(&facts) else {
                continue;
            };
            let found = api.find(&identifier_query(identifier, value)).await?;
            match proof::by_identifier(&facts, identifier, &found) {
                Decision::NoMatch => continue,
                Decision::Bound {
                    user,
                    by: Binding::ExternalId,
                } => return Ok(Outcome::AlreadyMigrated { clerk_id: user.id }),
                Decision::Bound { user, .. } => {
                    return Ok(Outcome::WouldLink { clerk_id: user.id })
                }
                // A username or phone in the way would be left out, not refused.
                Decision::Refused {
                    identifier: Some(Identifier::Username | Identifier::Phone),
                    ..
                } if facts.email.is_some() => continue,
                Decision::Refused {
                    refusal,
                    clerk_id,
                    identifier,
                } => return Ok(refused(refusal, &clerk_id, identifier)),
            }
        }
        Ok(Outcome::WouldCreate)
    }

    /// Completes a bound user's missing fields (never overwriting) and, when `linking`, gives
    /// it the legacy id. What Clerk refuses and proves nothing (a taken username, a refused
    /// digest) is left out with a warning.
    async fn complete(
        &self,
        api: &Counted<'_, C>,
        rec: &ImportRecord,
        user: ClerkUser,
        linking: bool,
        run: &mut Run,
    ) -> Result<Outcome, ClerkError> {
        let clerk_id = user.id.clone();
        let (mut patch, metadata) = rec.completion_for(&user);
        if run.digest_refused {
            patch.password_digest = None;
            patch.password_hasher = None;
        }
        for _ in 0..3 {
            if patch.is_empty() {
                break;
            }
            let err = match api.update(&clerk_id, &patch).await {
                Ok(updated) => {
                    if linking && updated.external_id() != Some(rec.id.as_str()) {
                        return Ok(Outcome::Failed {
                            code: "clerk_answer_mismatch".into(),
                            message: format!(
                                "Clerk did not set the legacy id on user {}",
                                updated.id
                            ),
                        });
                    }
                    patch = UpdateUser::default();
                    break;
                }
                Err(e) => e,
            };
            if err.is_identifier_exists()
                && err.param() == Some("username")
                && patch.username.is_some()
            {
                run.warn(taken_warning(Identifier::Username));
                patch.username = None;
            } else if is_digest_rejection(&err) && patch.password_digest.is_some() {
                run.warn(digest_warning(&err, patch.password_hasher.as_deref()));
                run.digest_refused = true;
                patch.password_digest = None;
                patch.password_hasher = None;
            } else if err.is_identifier_exists() && err.param() == Some("external_id") {
                // Someone gave this legacy id to another Clerk user in between: the next
                // attempt finds that user by external id.
                return Ok(Outcome::Retry {
                    after_secs: Some(1),
                    code: "external_id_taken_meanwhile".into(),
                });
            } else {
                return Err(err);
            }
        }
        if !patch.is_empty() {
            return Ok(Outcome::Retry {
                after_secs: Some(2),
                code: "completion_incomplete".into(),
            });
        }
        if !metadata.is_empty() {
            api.update_metadata(&clerk_id, &metadata).await?;
        }
        Ok(if linking {
            Outcome::Linked { clerk_id }
        } else {
            Outcome::AlreadyMigrated { clerk_id }
        })
    }

    /// Records legacy id ↔ Clerk id (and the warnings) after a success. A write failure turns
    /// the outcome into a retry: the identity layer needs the mapping, and re-running costs
    /// one lookup.
    async fn remember(
        &self,
        rec: &ImportRecord,
        outcome: Outcome,
        warnings: &[MigrationWarning],
    ) -> Outcome {
        let Some(clerk_id) = outcome.clerk_id() else {
            return outcome;
        };
        if self.mode == Mode::Observe {
            return outcome;
        }
        let mut stored = ledger::remember_mapping(&self.store, &rec.id, clerk_id).await;
        for w in warnings {
            if stored.is_err() {
                break;
            }
            stored = ledger::record_warning(
                &self.store,
                &ledger::WarningRecord {
                    legacy_id: rec.id.clone(),
                    clerk_id: Some(clerk_id.to_owned()),
                    code: w.code.clone(),
                    message: w.message.clone(),
                },
            )
            .await;
        }
        match stored {
            Ok(()) => outcome,
            Err(_) => Outcome::Retry {
                after_secs: None,
                code: "store_unavailable".into(),
            },
        }
    }
}
