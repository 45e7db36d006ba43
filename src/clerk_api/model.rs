//! Request bodies and the parts of Clerk's responses the migration reads. Field names follow
//! the Backend API OpenAPI spec (version 2026-05-12) exactly; `None` / empty fields are left out
//! of request bodies because Clerk rejects unknown fields and treats `null` as "clear".

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// A string that must never reach a log: password digests, sign-in tokens and ticket URLs.
/// Serialises transparently (it has to reach Clerk) but `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The raw value, for the one place that needs it (a request body, a response to the
    /// browser). Never format it into a log line.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Filters for `GET /v1/users`. Each list becomes repeated query keys. Clerk combines different
/// filters with AND, so the migrator asks one question at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    pub external_id: Vec<String>,
    pub email_address: Vec<String>,
    pub phone_number: Vec<String>,
    pub username: Vec<String>,
    pub limit: Option<u32>,
}

impl UserQuery {
    pub fn by_external_id(id: &str) -> Self {
        Self {
            external_id: vec![id.to_owned()],
            ..Self::default()
        }
    }
    pub fn by_email(email: &str) -> Self {
        Self {
            email_address: vec![email.to_owned()],
            ..Self::default()
        }
    }
    pub fn by_phone(phone: &str) -> Self {
        Self {
            phone_number: vec![phone.to_owned()],
            ..Self::default()
        }
    }
    pub fn by_username(username: &str) -> Self {
        Self {
            username: vec![username.to_owned()],
            ..Self::default()
        }
    }
}

/// How Clerk creates an email address or phone number: `verified` (Clerk's default) or
/// `reserved` (unverified but usable for sign-in, and locked so no other user can claim it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentificationStatus {
    Verified,
    Reserved,
}

/// Body of `POST /v1/users`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_address: Vec<String>,
    /// Parallel to `email_address`; omitted means every address is created verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_address_identification_status: Vec<IdentificationStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_number: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_number_identification_status: Vec<IdentificationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_digest: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hasher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_password_requirement: Option<bool>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_metadata: Option<Map<String, Value>>,
}

/// Body of `PATCH /v1/users/{id}` — only the fields the migration ever completes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_digest: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hasher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl UpdateUser {
    /// True when sending it would change nothing (so the call can be saved).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Body of `PATCH /v1/users/{id}/metadata` (deep merge into what is there).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_metadata: Option<Map<String, Value>>,
}

impl UpdateUserMetadata {
    pub fn is_empty(&self) -> bool {
        self.public_metadata.as_ref().is_none_or(Map::is_empty)
            && self.private_metadata.as_ref().is_none_or(Map::is_empty)
    }
}

/// Clerk's `verification` object on an identification, reduced to what we read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClerkEmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub email_address: String,
    #[serde(default)]
    pub reserved: bool,
    #[serde(default)]
    pub verification: Option<Verification>,
}

impl ClerkEmailAddress {
    pub fn is_verified(&self) -> bool {
        self.verification
            .as_ref()
            .is_some_and(|v| v.status == "verified")
    }
}

/// The User object, reduced to the fields the migration reads. Lenient: missing or `null`
/// fields take their defaults, unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClerkUser {
    pub id: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub email_addresses: Vec<ClerkEmailAddress>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub password_enabled: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub public_metadata: Map<String, Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub private_metadata: Map<String, Value>,
    /// Unix milliseconds.
    #[serde(default)]
    pub created_at: i64,
}

impl ClerkUser {
    pub fn primary_email(&self) -> Option<&ClerkEmailAddress> {
        let primary = self.primary_email_address_id.as_deref()?;
        self.email_addresses
            .iter()
            .find(|e| e.id.as_deref() == Some(primary))
    }

    /// Clerk stores addresses lower-cased; compare without case.
    pub fn has_email(&self, email: &str) -> bool {
        self.email_addresses
            .iter()
            .any(|e| e.email_address.eq_ignore_ascii_case(email))
    }
}

/// Response of `POST /v1/sign_in_tokens`. `token` and `url` (which embeds the ticket) are
/// single-use credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInToken {
    pub id: String,
    pub token: SecretString,
    #[serde(default)]
    pub status: String,
    pub user_id: String,
    #[serde(default)]
    pub url: Option<SecretString>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_user_skips_absent_fields_and_uses_spec_names() {
        let body = CreateUser {
            external_id: Some("u1".into()),
            email_address: vec!["a@example.com".into()],
            email_address_identification_status: vec![IdentificationStatus::Reserved],
            skip_password_requirement: Some(true),
            ..CreateUser::default()
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "external_id": "u1",
                "email_address": ["a@example.com"],
                "email_address_identification_status": ["reserved"],
                "skip_password_requirement": true
            })
        );
    }

    #[test]
    fn secrets_serialise_but_never_debug_print() {
        let body = UpdateUser {
            password_digest: Some(SecretString::new("$2a$10$abcdefgh")),
            password_hasher: Some("bcrypt".into()),
            ..UpdateUser::default()
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains("$2a$10$abcdefgh"));
        let dbg = format!("{body:?}");
        assert!(!dbg.contains("abcdefgh"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
    }

    #[test]
    fn user_parses_leniently_with_nulls() {
        let u: ClerkUser = serde_json::from_value(json!({
            "id": "user_1", "object": "user", "external_id": null,
            "primary_email_address_id": "idn_1",
            "email_addresses": [
                {"id": "idn_1", "object": "email_address", "email_address": "A@Example.com",
                 "reserved": false, "verification": {"status": "verified", "strategy": "admin"}},
                {"id": "idn_2", "email_address": "b@example.com", "reserved": true, "verification": null}
            ],
            "private_metadata": null, "public_metadata": {"plan": "pro"},
            "password_enabled": true, "created_at": 1700000000000i64, "banned": false
        }))
        .unwrap();
        assert_eq!(u.primary_email().unwrap().email_address, "A@Example.com");
        assert!(u.primary_email().unwrap().is_verified());
        assert!(!u.email_addresses[1].is_verified());
        assert!(u.has_email("a@example.COM"));
        assert!(u.private_metadata.is_empty());
        assert_eq!(u.public_metadata["plan"], "pro");
    }

    #[test]
    fn create_user_rejects_unknown_fields_like_clerk() {
        let r: Result<CreateUser, _> = serde_json::from_value(json!({"image": "x"}));
        assert!(r.is_err());
    }
}
