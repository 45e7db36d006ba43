//! The one find-or-link-or-create state machine, shared by the trickle (a signed-in NextAuth
//! user) and the batch (an import record).
//!
//! For a legacy user `L`:
//! 1. `GET /users?external_id=L` — found: complete missing fields; done (`AlreadyMigrated`).
//! 2. `GET /users?email_address=E` (or phone, or username when there is no email) — found
//!    with another `external_id`: `Failed` (`external_id_conflict`; two legacy users are never
//!    merged); found without one: link (`PATCH external_id` + missing fields) if the legacy
//!    email is verified, else `Skipped` (linking on an unverified address would hand the
//!    account to whoever typed it).
//! 3. `POST /users` — `Created`. On `422 form_identifier_exists` someone raced us: look up
//!    again (external id, then the identifier Clerk named) and continue from 1 or 2, so two
//!    racing callers end with one Clerk user.
//!
//! Clerk answers every question; the store only remembers answers afterwards
//! (`map:l2c:` / `map:c2l:`, see [`super::ledger`]), so a stale KV read costs a call, never a
//! duplicate.

use super::ledger;
use super::record::ImportRecord;
use super::store::Store;
use crate::clerk_api::{
    ClerkApi, ClerkError, ClerkUser, CreateUser, SignInToken, UpdateUser, UpdateUserMetadata,
    UserQuery,
};
use std::cell::Cell;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new Clerk user was created.
    Created { clerk_id: String },
    /// An existing Clerk user (matched by email) got this legacy id as `external_id`.
    Linked { clerk_id: String },
    /// A Clerk user with this `external_id` exists (missing fields were completed).
    AlreadyMigrated { clerk_id: String },
    /// Observe mode: step 3 would create a user.
    WouldCreate,
    /// Observe mode: step 2 would link this Clerk user.
    WouldLink { clerk_id: String },
    /// Deliberately not migrated; retrying will not change that.
    Skipped { reason: String },
    /// Clerk refused, or the data conflicts; needs a person.
    Failed { code: String, message: String },
    /// Transient: try again, after `after_secs` when Clerk said so (429 / 503).
    Retry {
        after_secs: Option<u32>,
        code: String,
    },
}

impl Outcome {
    /// The Clerk user id when the legacy user now has one.
    pub fn clerk_id(&self) -> Option<&str> {
        match self {
            Outcome::Created { clerk_id }
            | Outcome::Linked { clerk_id }
            | Outcome::AlreadyMigrated { clerk_id } => Some(clerk_id),
            _ => None,
        }
    }

    /// A Backend API error as an outcome: retryable errors retry, the rest fail with Clerk's code.
    pub fn from_error(e: &ClerkError) -> Outcome {
        if e.is_retryable() {
            Outcome::Retry {
                after_secs: e.retry_after(),
                code: e.code().to_owned(),
            }
        } else {
            Outcome::Failed {
                code: e.code().to_owned(),
                message: e.to_string(),
            }
        }
    }
}

/// An outcome and the number of Backend API calls it cost (for the pacer's accounting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub outcome: Outcome,
    pub calls: u32,
}

/// Wraps the client to count calls for one migration.
struct Counted<'a, C> {
    inner: &'a C,
    calls: Cell<u32>,
}

impl<C: ClerkApi> Counted<'_, C> {
    fn tick(&self) {
        self.calls.set(self.calls.get() + 1);
    }
    async fn find_first(&self, q: &UserQuery) -> Result<Option<ClerkUser>, ClerkError> {
        self.tick();
        Ok(self.inner.find_users(q).await?.into_iter().next())
    }
    async fn create(&self, b: &CreateUser) -> Result<ClerkUser, ClerkError> {
        self.tick();
        self.inner.create_user(b).await
    }
    async fn update(&self, id: &str, b: &UpdateUser) -> Result<ClerkUser, ClerkError> {
        self.tick();
        self.inner.update_user(id, b).await
    }
    async fn update_metadata(
        &self,
        id: &str,
        b: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError> {
        self.tick();
        self.inner.update_user_metadata(id, b).await
    }
}

/// Which identifier matched in step 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ident {
    Email,
    Phone,
    Username,
}

impl Ident {
    fn name(self) -> &'static str {
        match self {
            Ident::Email => "email",
            Ident::Phone => "phone",
            Ident::Username => "username",
        }
    }
}

fn identifier_query(rec: &ImportRecord, param: Option<&str>) -> Option<(UserQuery, Ident)> {
    let by_email = rec
        .email
        .as_deref()
        .map(|e| (UserQuery::by_email(e), Ident::Email));
    let by_phone = rec
        .phone
        .as_deref()
        .map(|p| (UserQuery::by_phone(p), Ident::Phone));
    let by_username = rec
        .username
        .as_deref()
        .map(|u| (UserQuery::by_username(u), Ident::Username));
    match param {
        Some("phone_number") => by_phone,
        Some("username") => by_username,
        Some("email_address") => by_email,
        _ => by_email.or(by_phone).or(by_username),
    }
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
        let api = Counted {
            inner: &self.clerk,
            calls: Cell::new(0),
        };
        let outcome = match self.run(&api, rec).await {
            Ok(o) => o,
            Err(e) => Outcome::from_error(&e),
        };
        let outcome = self.remember(rec, outcome).await;
        Migration {
            outcome,
            calls: api.calls.get(),
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

    async fn run(&self, api: &Counted<'_, C>, rec: &ImportRecord) -> Result<Outcome, ClerkError> {
        if let Some(u) = api.find_first(&UserQuery::by_external_id(&rec.id)).await? {
            return self.complete(api, rec, u, false).await;
        }
        if let Some((q, ident)) = identifier_query(rec, None) {
            if let Some(u) = api.find_first(&q).await? {
                return self.link(api, rec, u, ident).await;
            }
        }
        if self.mode == Mode::Observe {
            return Ok(Outcome::WouldCreate);
        }
        match api.create(&rec.to_create_user()).await {
            Ok(u) => Ok(Outcome::Created { clerk_id: u.id }),
            Err(e) if e.is_identifier_exists() => {
                // A racing caller (trickle vs batch, or a redelivered message) got there first.
                if let Some(u) = api.find_first(&UserQuery::by_external_id(&rec.id)).await? {
                    return self.complete(api, rec, u, false).await;
                }
                if let Some((q, ident)) = identifier_query(rec, e.param()) {
                    if let Some(u) = api.find_first(&q).await? {
                        return self.link(api, rec, u, ident).await;
                    }
                }
                // Clerk says taken but will not show it yet (its search lags writes).
                Ok(Outcome::Retry {
                    after_secs: Some(2),
                    code: "identifier_exists_not_found".into(),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn link(
        &self,
        api: &Counted<'_, C>,
        rec: &ImportRecord,
        user: ClerkUser,
        ident: Ident,
    ) -> Result<Outcome, ClerkError> {
        match user.external_id.as_deref() {
            Some(own) if own == rec.id => self.complete(api, rec, user, false).await,
            Some(other) => Ok(Outcome::Failed {
                code: "external_id_conflict".into(),
                message: format!(
                    "the Clerk user {} with this {} already belongs to legacy user {other}; \
                     two legacy users are never merged",
                    user.id,
                    ident.name()
                ),
            }),
            None if ident != Ident::Email || !rec.email_verified => Ok(Outcome::Skipped {
                reason: format!(
                    "an existing Clerk user ({}) has this {}, but it is not verified in the \
                     legacy data; not linking automatically",
                    user.id,
                    ident.name()
                ),
            }),
            None => self.complete(api, rec, user, true).await,
        }
    }

    async fn complete(
        &self,
        api: &Counted<'_, C>,
        rec: &ImportRecord,
        user: ClerkUser,
        linking: bool,
    ) -> Result<Outcome, ClerkError> {
        let clerk_id = user.id.clone();
        if self.mode == Mode::Observe {
            return Ok(if linking {
                Outcome::WouldLink { clerk_id }
            } else {
                Outcome::AlreadyMigrated { clerk_id }
            });
        }
        let (mut patch, metadata) = rec.completion_for(&user);
        if !patch.is_empty() {
            match api.update(&clerk_id, &patch).await {
                Ok(_) => {}
                // A username taken by someone else must not block the link itself.
                Err(e)
                    if e.is_identifier_exists()
                        && e.param() == Some("username")
                        && patch.username.is_some() =>
                {
                    patch.username = None;
                    if !patch.is_empty() {
                        api.update(&clerk_id, &patch).await?;
                    }
                }
                Err(e) => return Err(e),
            }
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

    /// Records legacy id ↔ Clerk id after a success. A write failure turns the outcome into a
    /// retry: the identity layer needs the mapping, and re-running costs one lookup.
    async fn remember(&self, rec: &ImportRecord, outcome: Outcome) -> Outcome {
        let Some(clerk_id) = outcome.clerk_id() else {
            return outcome;
        };
        if self.mode == Mode::Observe {
            return outcome;
        }
        match ledger::remember_mapping(&self.store, &rec.id, clerk_id).await {
            Ok(()) => outcome,
            Err(_) => Outcome::Retry {
                after_secs: None,
                code: "store_unavailable".into(),
            },
        }
    }
}
