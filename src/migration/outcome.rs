//! What a migration ends with: its [`Outcome`] (the ledger's verdict on the record), the calls
//! it cost, the warnings it leaves for the operator, and how Clerk's errors map onto them.

use super::proof::{self, Identifier};
use crate::clerk_api::ClerkError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new Clerk user was created.
    Created { clerk_id: String },
    /// An existing Clerk user holding the legacy email verified (proven on both sides, see
    /// [`proof`]) got this legacy id as `external_id`.
    Linked { clerk_id: String },
    /// A Clerk user with this `external_id` exists (missing fields were completed).
    AlreadyMigrated { clerk_id: String },
    /// Observe mode: a user would be created.
    WouldCreate,
    /// Observe mode: this Clerk user would be linked.
    WouldLink { clerk_id: String },
    /// Deliberately not migrated; retrying will not change that. (The migrator itself no
    /// longer skips: a refused link is a `Failed` with a [`proof::Refusal`] code.)
    Skipped { reason: String },
    /// Clerk refused, or the data conflicts (a [`proof::Refusal`] code); needs a person.
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

/// Something left behind while the user was migrated (a refused password digest, a taken
/// username): the operator follows up; the person is not blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationWarning {
    /// Clerk's error code (`form_password_digest_invalid_code`, …) or ours.
    pub code: String,
    /// What was left out and why. Never holds the digest.
    pub message: String,
}

/// An outcome, the number of Backend API calls it cost (for the pacer's accounting) and the
/// warnings of a migration that succeeded with something left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub outcome: Outcome,
    pub calls: u32,
    pub warnings: Vec<MigrationWarning>,
}

/// Whether Clerk refused the password digest or its hasher (OpenAPI `CreateUser` /
/// `UpdateUser`, error catalogue `forms.go`): `form_password_digest_invalid_code` ("not valid
/// for the provided password_hasher"), or any 422 naming `password_digest` /
/// `password_hasher` (`form_param_value_invalid` for an unknown hasher,
/// `form_conditional_param_missing`, …). Retrying the same digest cannot succeed.
pub fn is_digest_rejection(e: &ClerkError) -> bool {
    match e {
        ClerkError::Api {
            status: 422,
            code,
            param,
            ..
        } => {
            code == "form_password_digest_invalid_code"
                || matches!(
                    param.as_deref(),
                    Some("password_digest" | "password_hasher")
                )
        }
        _ => false,
    }
}

pub(super) fn digest_warning(e: &ClerkError, hasher: Option<&str>) -> MigrationWarning {
    MigrationWarning {
        code: e.code().to_owned(),
        message: format!(
            "Clerk refused the password digest (hasher {}); the user was migrated without a \
             password and signs in another way until they set one",
            hasher.unwrap_or("unknown")
        ),
    }
}

pub(super) fn taken_warning(identifier: Identifier) -> MigrationWarning {
    MigrationWarning {
        code: format!("{}_taken", identifier.name()),
        message: format!(
            "another Clerk user holds this {}; it proves nothing, so it was not linked and the \
             user was migrated without it",
            identifier.name()
        ),
    }
}

/// A refusal as an outcome: permanent (the batch lists it as failed), with the stable code.
pub(super) fn refused(
    refusal: proof::Refusal,
    clerk_id: &str,
    identifier: Option<Identifier>,
) -> Outcome {
    let what = identifier.map_or("external id", Identifier::name);
    Outcome::Failed {
        code: refusal.code().to_owned(),
        message: format!("{} (Clerk user {clerk_id}, by {what})", refusal.explain()),
    }
}
