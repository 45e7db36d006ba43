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

/// The escaped form of an id for the `external_id` / `user_id` filters of `GET /v1/users`.
///
/// Clerk reads a leading `+` or `-` in those values as an include / exclude marker: a bare
/// `+alice` asks for `alice`, and `-5` asks for *everyone except* `5`. Prefixing every value
/// with one `+` ("include") makes the rest of it data, whatever it starts with.
pub fn escape_id_filter(id: &str) -> String {
    format!("+{id}")
}

/// Filters for `GET /v1/users`. Each list becomes repeated query keys. Clerk combines different
/// filters with AND, so the migrator asks one question at a time.
///
/// The lists hold *wire* values: `external_id` and `user_id` entries are already escaped with
/// [`escape_id_filter`] by the constructors. Build queries with the constructors, never with
/// raw ids in a struct literal. An answer is a set of candidates, not a verdict: every user
/// must be re-checked for an exact match (see `migration::proof`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    pub external_id: Vec<String>,
    pub user_id: Vec<String>,
    pub email_address: Vec<String>,
    pub phone_number: Vec<String>,
    pub username: Vec<String>,
    pub limit: Option<u32>,
}

impl UserQuery {
    /// Users whose `external_id` is exactly `id` (escaped; see [`escape_id_filter`]).
    pub fn by_external_id(id: &str) -> Self {
        Self::by_external_ids([id])
    }
    /// One query for many legacy ids (Clerk accepts up to 100 values per key).
    pub fn by_external_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let external_id: Vec<String> = ids.into_iter().map(escape_id_filter).collect();
        Self {
            limit: Some(page_limit(external_id.len())),
            external_id,
            ..Self::default()
        }
    }
    /// Users with this Clerk id (escaped like external ids).
    pub fn by_user_id(id: &str) -> Self {
        Self {
            user_id: vec![escape_id_filter(id)],
            limit: Some(page_limit(1)),
            ..Self::default()
        }
    }
    pub fn by_email(email: &str) -> Self {
        Self::by_emails([email])
    }
    /// One query for many addresses (verified or not: Clerk's search finds both).
    pub fn by_emails<'a>(emails: impl IntoIterator<Item = &'a str>) -> Self {
        let email_address: Vec<String> = emails.into_iter().map(str::to_owned).collect();
        Self {
            limit: Some(page_limit(email_address.len())),
            email_address,
            ..Self::default()
        }
    }
    pub fn by_phone(phone: &str) -> Self {
        Self {
            phone_number: vec![phone.to_owned()],
            limit: Some(page_limit(1)),
            ..Self::default()
        }
    }
    pub fn by_username(username: &str) -> Self {
        Self {
            username: vec![username.to_owned()],
            limit: Some(page_limit(1)),
            ..Self::default()
        }
    }
}

/// A `limit` large enough that an answer is never cut short by Clerk's default page of 10:
/// a truncated answer could hide the one exact match (or a second, conflicting one). Each
/// value should match at most one user; the slack shows duplicates when Clerk has them.
fn page_limit(values: usize) -> u32 {
    values.saturating_mul(2).clamp(10, 500) as u32
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClerkPhoneNumber {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub phone_number: String,
    #[serde(default)]
    pub reserved: bool,
    #[serde(default)]
    pub verification: Option<Verification>,
}

impl ClerkPhoneNumber {
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
    #[serde(default, deserialize_with = "null_as_default")]
    pub phone_numbers: Vec<ClerkPhoneNumber>,
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
        self.email(email).is_some()
    }

    /// This user's entry for `email` (case-insensitive), verified or not.
    pub fn email(&self, email: &str) -> Option<&ClerkEmailAddress> {
        let email = email.trim();
        self.email_addresses
            .iter()
            .find(|e| e.email_address.trim().eq_ignore_ascii_case(email))
    }

    /// Whether this user holds `email` *and* Clerk has it verified.
    pub fn has_verified_email(&self, email: &str) -> bool {
        self.email(email)
            .is_some_and(ClerkEmailAddress::is_verified)
    }

    /// This user's entry for `phone` (E.164, compared exactly).
    pub fn phone(&self, phone: &str) -> Option<&ClerkPhoneNumber> {
        let phone = phone.trim();
        self.phone_numbers
            .iter()
            .find(|p| p.phone_number.trim() == phone)
    }

    /// Whether this user's username is `username` (Clerk compares them without case).
    pub fn has_username(&self, username: &str) -> bool {
        self.username
            .as_deref()
            .is_some_and(|u| u.trim().eq_ignore_ascii_case(username.trim()))
    }

    /// `external_id`, with Clerk's `null` and an empty string both meaning "none".
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref().filter(|x| !x.is_empty())
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
