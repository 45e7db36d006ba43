//! Pure helpers for the Fetch glue: URLs (with repeated query keys, percent-encoded), JSON
//! bodies, and parsing of successful responses.

use super::error::ClerkError;
use super::model::{ClerkUser, SignInToken, UserQuery};
use serde::Serialize;

/// Sent as `Clerk-API-Version`; the request and response models follow this version.
pub const API_VERSION: &str = "2026-05-12";
/// Successful bodies larger than this are refused rather than parsed.
pub const MAX_RESPONSE_BODY: usize = 4 * 1024 * 1024;

/// `{base}/v1` whether or not `base` already ends in `/v1` or a slash.
fn api_root(base: &str) -> String {
    let b = base.trim_end_matches('/');
    if b.ends_with("/v1") {
        b.to_owned()
    } else {
        format!("{b}/v1")
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters, so `+`, `@`, `&`, `/`
/// in emails and ids survive as data.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query string of a [`UserQuery`], keys repeated per value (`external_id=a&external_id=b`).
/// Values go out as the query holds them: the constructors have already escaped ids (a `+`
/// becomes `%2B` on the wire, never a space).
pub fn user_query_string(q: &UserQuery) -> String {
    let mut parts = Vec::new();
    let lists: [(&str, &Vec<String>); 5] = [
        ("external_id", &q.external_id),
        ("user_id", &q.user_id),
        ("email_address", &q.email_address),
        ("phone_number", &q.phone_number),
        ("username", &q.username),
    ];
    for (key, values) in lists {
        for v in values {
            parts.push(format!("{key}={}", percent_encode(v)));
        }
    }
    if let Some(limit) = q.limit {
        parts.push(format!("limit={limit}"));
    }
    parts.join("&")
}

/// `GET /v1/users?...`
pub fn users_url(base: &str, q: &UserQuery) -> String {
    let qs = user_query_string(q);
    if qs.is_empty() {
        format!("{}/users", api_root(base))
    } else {
        format!("{}/users?{qs}", api_root(base))
    }
}

/// `POST /v1/users`
pub fn create_user_url(base: &str) -> String {
    format!("{}/users", api_root(base))
}

/// `PATCH /v1/users/{id}`
pub fn user_url(base: &str, user_id: &str) -> String {
    format!("{}/users/{}", api_root(base), percent_encode(user_id))
}

/// `PATCH /v1/users/{id}/metadata`
pub fn user_metadata_url(base: &str, user_id: &str) -> String {
    format!("{}/metadata", user_url(base, user_id))
}

/// `POST /v1/sign_in_tokens`
pub fn sign_in_tokens_url(base: &str) -> String {
    format!("{}/sign_in_tokens", api_root(base))
}

/// JSON body of any request model.
pub fn json_body<T: Serialize>(body: &T) -> String {
    // Serialising our own plain structs cannot fail.
    serde_json::to_string(body).unwrap_or_else(|_| "{}".into())
}

/// Body of `POST /v1/sign_in_tokens`.
pub fn sign_in_token_body(user_id: &str, expires_in_seconds: u32) -> String {
    serde_json::json!({ "user_id": user_id, "expires_in_seconds": expires_in_seconds.max(1) })
        .to_string()
}

fn parse_ok<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ClerkError> {
    if body.len() > MAX_RESPONSE_BODY {
        return Err(ClerkError::Network(format!("{what} response too large")));
    }
    crate::json::from_slice(body).map_err(|e| {
        // serde's message names the position, never echoes the body.
        ClerkError::Network(format!("malformed {what} response: {e}"))
    })
}

/// A 2xx `User` body.
pub fn parse_user(body: &[u8]) -> Result<ClerkUser, ClerkError> {
    parse_ok(body, "user")
}

/// A 2xx `GET /users` body (a bare array).
pub fn parse_user_list(body: &[u8]) -> Result<Vec<ClerkUser>, ClerkError> {
    parse_ok(body, "user list")
}

/// A 2xx `SignInToken` body.
pub fn parse_sign_in_token(body: &[u8]) -> Result<SignInToken, ClerkError> {
    parse_ok(body, "sign-in token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_repeats_keys_and_encodes_values() {
        let q = UserQuery {
            external_id: vec!["a b".into(), "c&d".into()],
            email_address: vec!["x+tag@example.com".into()],
            limit: Some(2),
            ..UserQuery::default()
        };
        assert_eq!(
            users_url("https://api.clerk.com/", &q),
            "https://api.clerk.com/v1/users?external_id=a%20b&external_id=c%26d&email_address=x%2Btag%40example.com&limit=2"
        );
        assert_eq!(
            users_url("http://127.0.0.1:8787/v1", &UserQuery::default()),
            "http://127.0.0.1:8787/v1/users"
        );
    }

    #[test]
    fn signed_ids_are_escaped_so_clerk_reads_them_as_data() {
        // `+alice` must not be read as "include alice", nor `-5` as "everyone but 5".
        let q = UserQuery::by_external_ids(["+alice", "-5", "plain"]);
        assert_eq!(q.external_id, ["++alice", "+-5", "+plain"]);
        assert_eq!(
            user_query_string(&q),
            "external_id=%2B%2Balice&external_id=%2B-5&external_id=%2Bplain&limit=10"
        );
        assert_eq!(
            user_query_string(&UserQuery::by_user_id("-user_1")),
            "user_id=%2B-user_1&limit=10"
        );
        // Emails carry no markers; a `+` in one is data and is percent-encoded.
        assert_eq!(
            user_query_string(&UserQuery::by_email("+a@example.com")),
            "email_address=%2Ba%40example.com&limit=10"
        );
        let page: Vec<String> = (0..100).map(|i| format!("L{i}")).collect();
        let q = UserQuery::by_external_ids(page.iter().map(String::as_str));
        assert_eq!(
            q.limit,
            Some(200),
            "never cut short by the default page of 10"
        );
    }

    #[test]
    fn paths_encode_ids() {
        assert_eq!(
            user_metadata_url("https://api.clerk.com", "user_1/../x"),
            "https://api.clerk.com/v1/users/user_1%2F..%2Fx/metadata"
        );
        assert_eq!(
            sign_in_tokens_url("https://api.clerk.com"),
            "https://api.clerk.com/v1/sign_in_tokens"
        );
    }

    #[test]
    fn sign_in_token_round_trip() {
        let b: serde_json::Value = serde_json::from_str(&sign_in_token_body("user_1", 0)).unwrap();
        assert_eq!(b["expires_in_seconds"], 1);
        let t = parse_sign_in_token(
            br#"{"object":"sign_in_token","id":"sit_1","token":"tok","status":"pending","user_id":"user_1","url":null,"created_at":1,"updated_at":1}"#,
        )
        .unwrap();
        assert_eq!(t.token.expose(), "tok");
        assert!(parse_user_list(b"{}").is_err());
        assert_eq!(parse_user_list(b"[]").unwrap().len(), 0);
    }
}
