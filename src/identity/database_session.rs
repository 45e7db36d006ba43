//! NextAuth database sessions: an opaque session cookie (next-auth with a database adapter) is
//! not a token the worker can read, so the origin's own `GET /api/auth/session` is asked about
//! it, with only that cookie. Only values next-auth could have generated are asked about (see
//! `NEXTAUTH_DATABASE_SESSIONS`); the resolver caps the look-ups per client address and
//! remembers each answer for the times below.

use serde::Deserialize;

use crate::config::DatabaseSessions;

/// How long the origin's answer about a database session is reused.
pub const DATABASE_SESSION_TTL_SECS: u64 = 30;
/// How long "no such session" (or an origin that could not answer) is reused: long enough
/// that repeating a made-up value costs the origin nothing, short enough to forget a mistake.
pub const DATABASE_SESSION_NEGATIVE_TTL_SECS: u64 = 10;
/// Largest `GET /api/auth/session` answer read (next-auth's is a few hundred bytes).
const DATABASE_SESSION_MAX_BODY: usize = 64 * 1024;

/// Facts of a database session, as the origin answered them.
#[derive(Clone)]
pub struct DatabaseSessionFacts {
    pub user_id: Option<String>,
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct SessionAnswer {
    user: Option<SessionUser>,
}

#[derive(Deserialize)]
struct SessionUser {
    id: Option<serde_json::Value>,
    email: Option<String>,
}

/// `Ok(None)`: the origin says there is no session. `Err`: the origin could not answer.
pub async fn fetch_database_session(
    cookie_name: &str,
    token: &str,
    origin_base: &str,
) -> Result<Option<DatabaseSessionFacts>, String> {
    let headers = worker::Headers::new();
    headers
        .set("cookie", &format!("{cookie_name}={token}"))
        .map_err(|e| e.to_string())?;
    headers
        .set("accept", "application/json")
        .map_err(|e| e.to_string())?;
    // Marks the hop, so a session URL that leads back to this worker is refused, not recursed.
    headers
        .set("via", &crate::via::via_with_bridge(None))
        .map_err(|e| e.to_string())?;
    let url = format!("{}/api/auth/session", origin_base.trim_end_matches('/'));
    let request = crate::outbound::request(&url, worker::Method::Get, &headers, None, true)
        .map_err(|e| e.to_string())?;
    let mut response = worker::Fetch::Request(request)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status_code() != 200 {
        return Err(format!("origin answered {}", response.status_code()));
    }
    let body = crate::capped_body::read_capped(&mut response, DATABASE_SESSION_MAX_BODY)
        .await
        .map_err(|e| format!("session answer: {e}"))?;
    // next-auth answers `{}` (or `null`) when there is no session.
    let answer: Option<SessionAnswer> =
        crate::json::from_slice(&body).map_err(|_| "session answer is not JSON".to_string())?;
    Ok(answer
        .and_then(|a| a.user)
        .map(|user| DatabaseSessionFacts {
            user_id: user.id.and_then(|id| match id {
                serde_json::Value::String(s) if !s.is_empty() => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
            email: user.email,
        }))
}

/// Whether an opaque NextAuth cookie value is worth asking the origin about. next-auth
/// generates database-session tokens with `randomUUID()` (or, without it, 32 random bytes in
/// hex); anything else is not one of its tokens unless `NEXTAUTH_DATABASE_SESSIONS=any`.
pub fn is_database_session_candidate(mode: DatabaseSessions, value: &str) -> bool {
    match mode {
        DatabaseSessions::Off => false,
        DatabaseSessions::Any => !value.is_empty() && value.len() <= 4096,
        DatabaseSessions::NextAuthShaped => is_uuid(value) || is_hex_token(value),
    }
}

fn is_uuid(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_hex_token(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_next_auth_shaped_values_go_to_the_origin() {
        let mode = DatabaseSessions::NextAuthShaped;
        assert!(is_database_session_candidate(
            mode,
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        ));
        assert!(is_database_session_candidate(mode, &"a1".repeat(32)));
        for bad in [
            "",
            "made-up",
            "3f2504e0-4f89-11d3-9a0c-0305e82c330",
            "3f2504e0x4f89-11d3-9a0c-0305e82c3301",
            "g3f2504e-4f89-11d3-9a0c-0305e82c3301",
            &"a1".repeat(31),
            &"zz".repeat(32),
        ] {
            assert!(!is_database_session_candidate(mode, bad), "{bad}");
        }
        assert!(is_database_session_candidate(
            DatabaseSessions::Any,
            "made-up"
        ));
        assert!(!is_database_session_candidate(
            DatabaseSessions::Off,
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        ));
    }
}
