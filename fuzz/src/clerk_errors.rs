//! `clerk_errors`: Backend API error answers. Layout: `[status (u16 BE), Retry-After line \n,
//! body…]`; without a `\n` there is no `Retry-After` and the rest is the body.

use auth_bridge::clerk_api::error::{
    error_from_response, parse_clerk_errors, parse_retry_after, ClerkError,
    DEFAULT_RETRY_AFTER_SECS, MAX_MESSAGE_CHARS, MAX_RETRY_AFTER_SECS,
};

pub fn run(data: &[u8]) {
    check_items(data);
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]);
    let rest = &data[2..];
    let (retry_after, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (Some(String::from_utf8_lossy(&rest[..at])), &rest[at + 1..]),
        None => (None, rest),
    };
    let retry_after = retry_after.as_deref();
    check_items(body);

    let parsed_retry = parse_retry_after(retry_after);
    if let Some(secs) = parsed_retry {
        assert!((1..=MAX_RETRY_AFTER_SECS).contains(&secs));
    }

    let error = error_from_response(status, retry_after, body);
    match &error {
        ClerkError::RateLimited { retry_after_secs } => {
            assert_eq!(status, 429);
            assert_eq!(
                *retry_after_secs,
                parsed_retry.unwrap_or(DEFAULT_RETRY_AFTER_SECS)
            );
        }
        ClerkError::Unavailable {
            status: s,
            retry_after_secs,
        } => {
            assert!((500..=599).contains(&status) && *s == status);
            assert_eq!(*retry_after_secs, parsed_retry);
        }
        ClerkError::Api {
            status: s, code, ..
        } => {
            assert!(*s == status && status != 429 && !(500..=599).contains(&status));
            match parse_clerk_errors(body) {
                Some(items) => assert_eq!(code, &items[0].code),
                None => assert_eq!(code, &format!("http_{status}")),
            }
            assert_eq!(error.is_retryable(), status == 408 || status == 409);
        }
        other => panic!("unexpected variant {other:?}"),
    }
    if let Some(secs) = error.retry_after() {
        assert!(secs <= MAX_RETRY_AFTER_SECS);
    }
    // Whatever the body, the message stays short enough for a log line or a failure record.
    let shown = error.to_string();
    assert!(
        shown.chars().count() <= 2 * MAX_MESSAGE_CHARS + 300,
        "Display is {} characters",
        shown.chars().count()
    );
}

fn check_items(body: &[u8]) {
    if let Some(items) = parse_clerk_errors(body) {
        assert!(!items.is_empty());
        for item in &items {
            assert!(item.code.chars().count() <= 101);
            assert!(item.message.chars().count() <= MAX_MESSAGE_CHARS + 1);
            if let Some(long) = &item.long_message {
                assert!(!long.is_empty() && long.chars().count() <= MAX_MESSAGE_CHARS + 1);
            }
            if let Some(param) = &item.param {
                assert!(param.chars().count() <= 101);
            }
        }
    }
}
