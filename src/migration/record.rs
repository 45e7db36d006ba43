//! The import record (one JSON object per NDJSON line, see SPEC "Import record"): strict
//! parsing with messages that name the field (never its value: a line may hold a password
//! digest), and the mapping to Clerk's `POST /users` body and to the `PATCH` that completes a
//! Clerk user found by id or email without overwriting anything already there.

use crate::clerk_api::{
    ClerkUser, CreateUser, IdentificationStatus, SecretString, UpdateUser, UpdateUserMetadata,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Longest accepted line, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Longest accepted legacy id (it becomes part of KV keys, which are capped at 512 bytes).
pub const MAX_ID_CHARS: usize = 256;

/// `password_hasher` values Clerk accepts (OpenAPI `PasswordHasher`).
pub const PASSWORD_HASHERS: &[&str] = &[
    "argon2i",
    "argon2id",
    "bcrypt",
    "bcrypt_sha256_django",
    "ldap_ssha",
    "md5",
    "md5_phpass",
    "pbkdf2_sha1",
    "pbkdf2_sha256",
    "pbkdf2_sha256_django",
    "pbkdf2_sha512",
    "pbkdf2_sha512_hex",
    "phpass",
    "scrypt_firebase",
    "scrypt_werkzeug",
    "sha256",
    "sha512_symfony",
];

const FIELDS: &[&str] = &[
    "id",
    "email",
    "email_verified",
    "name",
    "first_name",
    "last_name",
    "image",
    "username",
    "phone",
    "password_digest",
    "password_hasher",
    "created_at",
    "public_metadata",
    "private_metadata",
];

/// A rejected line: `line` is 1-based, `error` names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PasswordDigest {
    pub digest: SecretString,
    pub hasher: String,
}

/// A validated import record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportRecord {
    pub id: String,
    pub email: Option<String>,
    /// Absent, `false`, `null` and `0` all mean "not verified": an address is created verified
    /// only on evidence.
    pub email_verified: bool,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Kept and validated, but not sent: `POST /users` has no image field.
    pub image: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    pub password: Option<PasswordDigest>,
    /// RFC 3339 as given.
    pub created_at: Option<String>,
    pub public_metadata: Option<Map<String, Value>>,
    pub private_metadata: Option<Map<String, Value>>,
}

/// Parses one NDJSON line (without its newline).
pub fn parse_line(line: &str) -> Result<ImportRecord, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!(
            "line is {} bytes, over the {MAX_LINE_BYTES}-byte limit",
            line.len()
        ));
    }
    let value: Value = serde_json::from_str(line).map_err(|e| {
        // serde's message gives line/column, never the content.
        format!("not valid JSON: {e}")
    })?;
    let Value::Object(mut obj) = value else {
        return Err("a record must be a JSON object".into());
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field `{}`",
            unknown.chars().take(64).collect::<String>()
        ));
    }

    let id = match obj.remove("id") {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        None | Some(Value::Null) => return Err("`id` is required".into()),
        Some(_) => return Err("`id` must be a string or an integer".into()),
    };
    if id.trim().is_empty() {
        return Err("`id` must not be empty".into());
    }
    if id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
        return Err(format!(
            "`id` must be at most {MAX_ID_CHARS} printable characters"
        ));
    }

    let email = opt_string(&mut obj, "email")?;
    if let Some(e) = &email {
        if !looks_like_email(e) {
            return Err("`email` is not a valid email address".into());
        }
    }
    let email_verified = match obj.remove("email_verified") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => {
            if parse_rfc3339_ms(&s).is_none() {
                return Err("`email_verified` must be a boolean or an RFC 3339 timestamp".into());
            }
            true
        }
        Some(Value::Number(n)) => match n.as_f64() {
            Some(0.0) => false,
            Some(x) if x > 0.0 => true,
            _ => return Err("`email_verified` must not be negative".into()),
        },
        Some(_) => {
            return Err("`email_verified` must be a boolean or a timestamp".into());
        }
    };
    let name = opt_string(&mut obj, "name")?;
    let first_name = opt_string(&mut obj, "first_name")?;
    let last_name = opt_string(&mut obj, "last_name")?;
    let image = opt_string(&mut obj, "image")?;
    let username = opt_string(&mut obj, "username")?;
    let phone = opt_string(&mut obj, "phone")?;
    if let Some(p) = &phone {
        if !looks_like_e164(p) {
            return Err("`phone` must be in E.164 form, e.g. +15551234567".into());
        }
    }
    if email.is_none() && phone.is_none() && username.is_none() {
        return Err("`email` is required (unless `phone` or `username` is given)".into());
    }

    let digest = opt_string(&mut obj, "password_digest")?;
    let hasher = opt_string(&mut obj, "password_hasher")?;
    let password = match (digest, hasher) {
        (None, None) => None,
        (Some(_), None) => return Err("`password_digest` needs `password_hasher`".into()),
        (None, Some(_)) => return Err("`password_hasher` needs `password_digest`".into()),
        (Some(d), Some(h)) => {
            if !PASSWORD_HASHERS.contains(&h.as_str()) {
                return Err(format!(
                    "`password_hasher` is not one of Clerk's hashers ({})",
                    PASSWORD_HASHERS.join(", ")
                ));
            }
            Some(PasswordDigest {
                digest: SecretString::new(d),
                hasher: h,
            })
        }
    };

    let created_at = opt_string(&mut obj, "created_at")?;
    if let Some(c) = &created_at {
        if parse_rfc3339_ms(c).is_none() {
            return Err(
                "`created_at` must be an RFC 3339 timestamp, e.g. 2021-04-01T12:00:00Z".into(),
            );
        }
    }
    let public_metadata = opt_object(&mut obj, "public_metadata")?;
    let private_metadata = opt_object(&mut obj, "private_metadata")?;

    Ok(ImportRecord {
        id,
        email,
        email_verified,
        name,
        first_name,
        last_name,
        image,
        username,
        phone,
        password,
        created_at,
        public_metadata,
        private_metadata,
    })
}

/// Parses an NDJSON body: blank lines are ignored, a repeated `id` is rejected on its later
/// line. Returns the accepted records and the rejected lines.
pub fn parse_ndjson(body: &str) -> (Vec<ImportRecord>, Vec<LineError>) {
    let mut seen = std::collections::HashMap::new();
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    for (i, raw) in body.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        match parse_line(line) {
            Ok(rec) => match seen.get(&rec.id) {
                Some(first) => rejected.push(LineError {
                    line: n,
                    error: format!("duplicate `id` (first seen on line {first})"),
                }),
                None => {
                    seen.insert(rec.id.clone(), n);
                    records.push(rec);
                }
            },
            Err(error) => rejected.push(LineError { line: n, error }),
        }
    }
    (records, rejected)
}

fn opt_string(obj: &mut Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{field}` must be a string")),
    }
}

fn opt_object(
    obj: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<Map<String, Value>>, String> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("`{field}` must be a JSON object")),
    }
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 320
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn looks_like_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Unix milliseconds of an RFC 3339 date-time (`2021-04-01T12:00:00.5+02:00`), or `None`.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        millis = format!("{frac:0<3}").parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *c == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_min * 60;
    Some(secs * 1000 + millis)
}

impl ImportRecord {
    /// `first_name` / `last_name`, splitting `name` at its first space when neither is given.
    pub fn names(&self) -> (Option<String>, Option<String>) {
        if self.first_name.is_some() || self.last_name.is_some() {
            return (self.first_name.clone(), self.last_name.clone());
        }
        match self.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => match n.split_once(char::is_whitespace) {
                Some((first, rest)) if !rest.trim().is_empty() => {
                    (Some(first.to_owned()), Some(rest.trim().to_owned()))
                }
                _ => (Some(n.to_owned()), None),
            },
            _ => (None, None),
        }
    }

    /// The `POST /users` body. The legacy id becomes `external_id`; an email is created
    /// verified only when the record says so, otherwise `reserved`. Phone numbers carry no
    /// verification evidence in the record, so they are always created `reserved`.
    pub fn to_create_user(&self) -> CreateUser {
        let (first_name, last_name) = self.names();
        let mut body = CreateUser {
            external_id: Some(self.id.clone()),
            first_name,
            last_name,
            username: self.username.clone(),
            created_at: self.created_at.clone(),
            public_metadata: self.public_metadata.clone(),
            private_metadata: self.private_metadata.clone(),
            ..CreateUser::default()
        };
        if let Some(email) = &self.email {
            body.email_address = vec![email.clone()];
            body.email_address_identification_status = vec![if self.email_verified {
                IdentificationStatus::Verified
            } else {
                IdentificationStatus::Reserved
            }];
        }
        if let Some(phone) = &self.phone {
            body.phone_number = vec![phone.clone()];
            body.phone_number_identification_status = vec![IdentificationStatus::Reserved];
        }
        match &self.password {
            Some(p) => {
                body.password_digest = Some(p.digest.clone());
                body.password_hasher = Some(p.hasher.clone());
            }
            None => body.skip_password_requirement = Some(true),
        }
        body
    }

    /// What a found Clerk user lacks and this record has: `external_id` when unset, names when
    /// empty, username when unset, the digest when the user has no password, `created_at`
    /// when the record's sign-up predates the Clerk user (i.e. Clerk's value is the migration
    /// date), and metadata keys that are absent. Never overwrites a present value.
    pub fn completion_for(&self, user: &ClerkUser) -> (UpdateUser, UpdateUserMetadata) {
        let empty = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        let (first_name, last_name) = self.names();
        let mut patch = UpdateUser::default();
        if user.external_id.is_none() {
            patch.external_id = Some(self.id.clone());
        }
        if empty(&user.first_name) {
            patch.first_name = first_name;
        }
        if empty(&user.last_name) {
            patch.last_name = last_name;
        }
        if empty(&user.username) {
            patch.username = self.username.clone();
        }
        if let (false, Some(p)) = (user.password_enabled, &self.password) {
            patch.password_digest = Some(p.digest.clone());
            patch.password_hasher = Some(p.hasher.clone());
        }
        if let Some(c) = &self.created_at {
            if parse_rfc3339_ms(c).is_some_and(|ms| user.created_at == 0 || ms < user.created_at) {
                patch.created_at = Some(c.clone());
            }
        }
        let missing = |have: &Map<String, Value>, want: &Option<Map<String, Value>>| {
            let m: Map<String, Value> = want
                .iter()
                .flatten()
                .filter(|(k, _)| !have.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!m.is_empty()).then_some(m)
        };
        let metadata = UpdateUserMetadata {
            public_metadata: missing(&user.public_metadata, &self.public_metadata),
            private_metadata: missing(&user.private_metadata, &self.private_metadata),
        };
        (patch, metadata)
    }

    /// Fills fields this record lacks from `other` (used to merge a sign-in's session facts
    /// into a stored import record, where the stored record wins).
    pub fn fill_from(&mut self, other: &ImportRecord) {
        fn fill<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
        if self.email.is_none() {
            self.email.clone_from(&other.email);
            self.email_verified = other.email_verified;
        }
        fill(&mut self.name, &other.name);
        fill(&mut self.first_name, &other.first_name);
        fill(&mut self.last_name, &other.last_name);
        fill(&mut self.image, &other.image);
        fill(&mut self.username, &other.username);
        fill(&mut self.phone, &other.phone);
        fill(&mut self.password, &other.password);
        fill(&mut self.created_at, &other.created_at);
        fill(&mut self.public_metadata, &other.public_metadata);
        fill(&mut self.private_metadata, &other.private_metadata);
    }

    /// The record as one NDJSON line in the import format (for storage in KV; it contains the
    /// digest, so it must never be logged). `parse_line` reads it back.
    pub fn to_line(&self) -> String {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        let s = |v: &Option<String>| v.clone().map(Value::String);
        put("id", Some(Value::String(self.id.clone())));
        put("email", s(&self.email));
        put("email_verified", Some(Value::Bool(self.email_verified)));
        put("name", s(&self.name));
        put("first_name", s(&self.first_name));
        put("last_name", s(&self.last_name));
        put("image", s(&self.image));
        put("username", s(&self.username));
        put("phone", s(&self.phone));
        if let Some(p) = &self.password {
            put(
                "password_digest",
                Some(Value::String(p.digest.expose().to_owned())),
            );
            put("password_hasher", Some(Value::String(p.hasher.clone())));
        }
        put("created_at", s(&self.created_at));
        put(
            "public_metadata",
            self.public_metadata.clone().map(Value::Object),
        );
        put(
            "private_metadata",
            self.private_metadata.clone().map(Value::Object),
        );
        Value::Object(m).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> ImportRecord {
        parse_line(&v.to_string()).unwrap()
    }
    fn err(v: Value) -> String {
        parse_line(&v.to_string()).unwrap_err()
    }

    #[test]
    fn minimal_and_numeric_id() {
        let r = ok(json!({"id": 42, "email": "a@example.com"}));
        assert_eq!(r.id, "42");
        assert!(!r.email_verified);
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(json!({"email": "a@example.com"})).contains("`id`"));
        assert!(err(json!({"id": "1"})).contains("`email`"));
        assert!(
            err(json!({"id": "1", "email": "a@example.com", "avatar": "x"}))
                .contains("unknown field `avatar`")
        );
        assert!(err(json!({"id": "1", "email": "nope"})).contains("`email`"));
        assert!(
            err(json!({"id": "1", "email": "a@b.co", "created_at": "yesterday"}))
                .contains("`created_at`")
        );
        assert!(
            err(json!({"id": "1", "email": "a@b.co", "public_metadata": [1]}))
                .contains("`public_metadata`")
        );
        assert!(err(json!({"id": "1", "phone": "555-1234"})).contains("`phone`"));
        assert!(parse_line("[1,2]").unwrap_err().contains("object"));
        assert!(parse_line("{").unwrap_err().contains("JSON"));
    }

    #[test]
    fn password_fields_go_together_and_never_leak_into_errors() {
        let e = err(json!({"id": "1", "email": "a@b.co", "password_digest": "$2a$SECRETHASH"}));
        assert!(e.contains("`password_hasher`"));
        assert!(!e.contains("SECRETHASH"));
        let e = err(
            json!({"id": "1", "email": "a@b.co", "password_digest": "$2a$SECRETHASH", "password_hasher": "rot13"}),
        );
        assert!(e.contains("not one of Clerk's hashers") && !e.contains("SECRETHASH"));
        let r = ok(
            json!({"id": "1", "email": "a@b.co", "password_digest": "$2a$SECRETHASH", "password_hasher": "bcrypt"}),
        );
        assert!(!format!("{r:?}").contains("SECRETHASH"));
    }

    #[test]
    fn email_verified_forms() {
        let v = |x: Value| {
            ok(json!({"id": "1", "email": "a@b.co", "email_verified": x})).email_verified
        };
        assert!(v(json!(true)));
        assert!(!v(json!(false)));
        assert!(!v(Value::Null));
        assert!(v(json!("2020-01-02T03:04:05.678Z")));
        assert!(v(json!(1_600_000_000_000u64)));
        assert!(!v(json!(0)));
        assert!(
            err(json!({"id": "1", "email": "a@b.co", "email_verified": "yes"}))
                .contains("`email_verified`")
        );
    }

    #[test]
    fn long_lines_are_refused_clearly() {
        let line = format!(
            r#"{{"id":"1","email":"a@b.co","name":"{}"}}"#,
            "x".repeat(MAX_LINE_BYTES)
        );
        assert!(parse_line(&line).unwrap_err().contains("byte limit"));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2000-03-01T00:00:00.25+01:00"),
            Some(951_865_200_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T12:00:00Z"),
            Some(1_709_208_000_000)
        );
        assert_eq!(parse_rfc3339_ms("2023-02-29T12:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("2023-13-01T12:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("2023-01-01T12:00:00"), None);
        assert_eq!(parse_rfc3339_ms("2023-01-01T12:00:00+0100"), None);
    }

    #[test]
    fn ndjson_reports_lines_and_duplicates() {
        let body = "{\"id\":\"1\",\"email\":\"a@b.co\"}\r\n\n{\"id\":\"2\"}\n{\"id\":\"1\",\"email\":\"c@b.co\"}\n";
        let (recs, rej) = parse_ndjson(body);
        assert_eq!(recs.len(), 1);
        assert_eq!(rej.len(), 2);
        assert_eq!(rej[0].line, 3);
        assert_eq!(rej[1].line, 4);
        assert!(rej[1].error.contains("line 1"));
        assert_eq!(serde_json::to_value(&rej[0]).unwrap()["line"], json!(3));
    }

    #[test]
    fn create_body_respects_verification_and_splits_name() {
        let r = ok(
            json!({"id": "u1", "email": "a@b.co", "name": "Ada King Lovelace", "phone": "+15551234567"}),
        );
        let c = r.to_create_user();
        assert_eq!(c.external_id.as_deref(), Some("u1"));
        assert_eq!(
            c.email_address_identification_status,
            vec![IdentificationStatus::Reserved]
        );
        assert_eq!(
            c.phone_number_identification_status,
            vec![IdentificationStatus::Reserved]
        );
        assert_eq!(c.first_name.as_deref(), Some("Ada"));
        assert_eq!(c.last_name.as_deref(), Some("King Lovelace"));
        assert_eq!(c.skip_password_requirement, Some(true));
        assert!(c.password_digest.is_none());

        let r = ok(
            json!({"id": "u1", "email": "a@b.co", "email_verified": true, "name": "Ada Lovelace", "last_name": "L",
                          "password_digest": "d", "password_hasher": "argon2id"}),
        );
        let c = r.to_create_user();
        assert_eq!(
            c.email_address_identification_status,
            vec![IdentificationStatus::Verified]
        );
        assert_eq!(c.first_name, None, "explicit names win over the split");
        assert_eq!(c.last_name.as_deref(), Some("L"));
        assert_eq!(c.skip_password_requirement, None);
        assert_eq!(c.password_hasher.as_deref(), Some("argon2id"));
    }

    #[test]
    fn completion_never_overwrites() {
        let r = ok(
            json!({"id": "u1", "email": "a@b.co", "name": "Ada Lovelace", "username": "ada",
            "password_digest": "d", "password_hasher": "bcrypt", "created_at": "2019-01-01T00:00:00Z",
            "public_metadata": {"plan": "free", "team": "x"}}),
        );
        let mut user = ClerkUser {
            id: "user_1".into(),
            first_name: Some("Augusta".into()),
            password_enabled: true,
            created_at: 1_700_000_000_000,
            ..ClerkUser::default()
        };
        user.public_metadata.insert("plan".into(), json!("pro"));
        let (p, m) = r.completion_for(&user);
        assert_eq!(p.external_id.as_deref(), Some("u1"));
        assert_eq!(p.first_name, None);
        assert_eq!(p.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(p.username.as_deref(), Some("ada"));
        assert!(p.password_digest.is_none(), "user already has a password");
        assert_eq!(p.created_at.as_deref(), Some("2019-01-01T00:00:00Z"));
        assert_eq!(
            m.public_metadata.unwrap(),
            json!({"team": "x"}).as_object().unwrap().clone()
        );
        assert!(m.private_metadata.is_none());

        user.external_id = Some("u1".into());
        user.last_name = Some("L".into());
        user.username = Some("ada".into());
        user.created_at = 1_500_000_000_000;
        user.public_metadata.insert("team".into(), json!("y"));
        let (p, m) = r.completion_for(&user);
        assert!(p.is_empty(), "{p:?}");
        assert!(m.is_empty());
    }

    #[test]
    fn stored_line_round_trips() {
        let r = ok(
            json!({"id": "u1", "email": "a@b.co", "email_verified": "2020-01-01T00:00:00Z",
            "password_digest": "d", "password_hasher": "bcrypt", "private_metadata": {"k": 1}}),
        );
        assert_eq!(parse_line(&r.to_line()).unwrap(), r);
    }
}
