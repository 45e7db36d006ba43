//! Typed Backend API errors and the pure mapping from an HTTP answer (status, `Retry-After`,
//! body bytes) to a [`ClerkError`]. Robust to garbage: bodies are read only up to
//! [`MAX_ERROR_BODY`] bytes and messages are truncated, so a hostile or broken upstream cannot
//! bloat logs or failure records.

use serde::Deserialize;
use std::fmt;

/// Error bodies larger than this are not parsed.
pub const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest message kept from Clerk (characters).
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Used when a 429 carries no usable `Retry-After`; Clerk's windows are 10 s.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 10;
/// Upper bound on any `Retry-After` we honour, so a bogus header cannot stall the batch forever.
pub const MAX_RETRY_AFTER_SECS: u32 = 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClerkError {
    /// A 4xx answer other than 429, with Clerk's first error.
    Api {
        status: u16,
        code: String,
        message: String,
        long_message: Option<String>,
        /// `meta.param_name`: which request field the error is about.
        param: Option<String>,
    },
    /// 429.
    RateLimited { retry_after_secs: u32 },
    /// 5xx.
    Unavailable {
        status: u16,
        retry_after_secs: Option<u32>,
    },
    /// The request took longer than the caller's deadline.
    Timeout,
    /// The request did not complete (connection error, unreadable response).
    Network(String),
    /// The request was never sent: the caller's budget refused it (a batch page that stopped).
    NotSent,
}

impl ClerkError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClerkError::Api { status, .. } => *status == 409 || *status == 408,
            _ => true,
        }
    }

    /// Seconds to wait before retrying, when Clerk said so (429 always does, defaulted).
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ClerkError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ClerkError::Unavailable {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        }
    }

    /// A short stable code for failure records and metrics.
    pub fn code(&self) -> &str {
        match self {
            ClerkError::Api { code, .. } => code,
            ClerkError::RateLimited { .. } => "rate_limited",
            ClerkError::Unavailable { .. } => "clerk_unavailable",
            ClerkError::Timeout => "timeout",
            ClerkError::Network(_) => "network_error",
            ClerkError::NotSent => "not_sent",
        }
    }

    /// `422 form_identifier_exists`: an email, phone, username (or external id) is taken.
    pub fn is_identifier_exists(&self) -> bool {
        matches!(self, ClerkError::Api { status: 422, code, .. } if code == "form_identifier_exists")
    }

    /// `param` of an [`ClerkError::Api`], if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            ClerkError::Api { param, .. } => param.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for ClerkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClerkError::Api {
                status,
                code,
                message,
                long_message,
                param,
            } => {
                write!(f, "Clerk {status} {code}: ")?;
                f.write_str(long_message.as_deref().unwrap_or(message))?;
                if let Some(p) = param {
                    write!(f, " (param {p})")?;
                }
                Ok(())
            }
            ClerkError::RateLimited { retry_after_secs } => {
                write!(f, "Clerk rate limit hit, retry after {retry_after_secs}s")
            }
            ClerkError::Unavailable {
                status,
                retry_after_secs,
            } => {
                write!(f, "Clerk unavailable ({status})")?;
                if let Some(s) = retry_after_secs {
                    write!(f, ", retry after {s}s")?;
                }
                Ok(())
            }
            ClerkError::Timeout => f.write_str("Clerk request timed out"),
            ClerkError::Network(m) => write!(f, "Clerk request failed: {m}"),
            ClerkError::NotSent => f.write_str("Clerk request not sent: no budget for it"),
        }
    }
}

impl std::error::Error for ClerkError {}

/// One entry of Clerk's `{"errors": [...]}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkErrorItem {
    pub code: String,
    pub message: String,
    pub long_message: Option<String>,
    pub param: Option<String>,
}

#[derive(Deserialize)]
struct RawErrors {
    errors: Vec<RawError>,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    long_message: Option<String>,
    #[serde(default)]
    meta: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses a `ClerkErrors` body. `None` for anything that is not one (HTML, truncated JSON,
/// over [`MAX_ERROR_BODY`]). Strings are truncated to [`MAX_MESSAGE_CHARS`].
pub fn parse_clerk_errors(body: &[u8]) -> Option<Vec<ClerkErrorItem>> {
    if body.len() > MAX_ERROR_BODY {
        return None;
    }
    let raw: RawErrors = crate::json::from_slice(body).ok()?;
    let items: Vec<ClerkErrorItem> = raw
        .errors
        .into_iter()
        .map(|e| {
            let param = e.meta.as_ref().and_then(|m| {
                ["param_name", "param", "name"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(|v| v.as_str()))
                    .map(|s| truncate(s, 100))
            });
            ClerkErrorItem {
                code: truncate(e.code.as_deref().unwrap_or("unknown"), 100),
                message: truncate(e.message.as_deref().unwrap_or(""), MAX_MESSAGE_CHARS),
                long_message: e
                    .long_message
                    .filter(|s| !s.is_empty())
                    .map(|s| truncate(&s, MAX_MESSAGE_CHARS)),
                param,
            }
        })
        .collect();
    (!items.is_empty()).then_some(items)
}

/// `Retry-After` as delta-seconds (the form Clerk sends), clamped to
/// 1..=[`MAX_RETRY_AFTER_SECS`]. HTTP-dates and junk give `None`.
pub fn parse_retry_after(value: Option<&str>) -> Option<u32> {
    let v = value?.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = v.parse().ok()?;
    Some(secs.clamp(1, MAX_RETRY_AFTER_SECS as u64) as u32)
}

/// Maps a non-2xx answer to a [`ClerkError`]. `retry_after` is the raw `Retry-After` header.
pub fn error_from_response(status: u16, retry_after: Option<&str>, body: &[u8]) -> ClerkError {
    let retry_after_secs = parse_retry_after(retry_after);
    match status {
        429 => ClerkError::RateLimited {
            retry_after_secs: retry_after_secs.unwrap_or(DEFAULT_RETRY_AFTER_SECS),
        },
        500..=599 => ClerkError::Unavailable {
            status,
            retry_after_secs,
        },
        _ => match parse_clerk_errors(body).and_then(|v| v.into_iter().next()) {
            Some(item) => ClerkError::Api {
                status,
                code: item.code,
                message: item.message,
                long_message: item.long_message,
                param: item.param,
            },
            None => ClerkError::Api {
                status,
                code: format!("http_{status}"),
                message: "unexpected response body".into(),
                long_message: None,
                param: None,
            },
        },
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_exists_body_is_typed_with_param() {
        let body = br#"{"errors":[{"message":"That email address is taken. Please try another.","long_message":"That email address is taken. Please try another.","code":"form_identifier_exists","meta":{"param_name":"email_address"}}],"clerk_trace_id":"abc"}"#;
        let e = error_from_response(422, None, body);
        assert!(e.is_identifier_exists());
        assert_eq!(e.param(), Some("email_address"));
        assert!(!e.is_retryable());
        assert_eq!(e.code(), "form_identifier_exists");
    }

    #[test]
    fn rate_limit_honours_retry_after_or_defaults() {
        assert_eq!(
            error_from_response(429, Some(" 7 "), b"").retry_after(),
            Some(7)
        );
        assert_eq!(
            error_from_response(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"").retry_after(),
            Some(DEFAULT_RETRY_AFTER_SECS)
        );
        assert_eq!(
            error_from_response(429, Some("999999999"), b"{}").retry_after(),
            Some(MAX_RETRY_AFTER_SECS)
        );
        assert!(error_from_response(429, None, b"").is_retryable());
    }

    #[test]
    fn server_errors_are_retryable_unavailable() {
        let e = error_from_response(503, Some("3"), b"<html>oops</html>");
        assert_eq!(
            e,
            ClerkError::Unavailable {
                status: 503,
                retry_after_secs: Some(3)
            }
        );
        assert!(e.is_retryable());
    }

    #[test]
    fn garbage_and_huge_bodies_do_not_panic() {
        let e = error_from_response(400, None, b"\xff\xfe not json");
        assert_eq!(e.code(), "http_400");
        let huge = vec![b'{'; MAX_ERROR_BODY + 1];
        assert_eq!(error_from_response(422, None, &huge).code(), "http_422");
        assert_eq!(
            error_from_response(422, None, br#"{"errors":[]}"#).code(),
            "http_422"
        );
        let long = format!(
            r#"{{"errors":[{{"code":"x","message":"{}"}}]}}"#,
            "é".repeat(5000)
        );
        match error_from_response(422, None, long.as_bytes()) {
            ClerkError::Api { message, .. } => {
                assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1)
            }
            other => panic!("{other:?}"),
        }
    }
}
