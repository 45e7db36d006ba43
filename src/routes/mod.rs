//! Endpoints answered by the worker itself, under `/__auth-bridge/`. This module only routes and
//! owns the response helpers; each endpoint lives in its own file.
//!
//! Every answer made here carries `Cache-Control: no-store` (they depend on who asks), except
//! the public key set `jwks.json`.

use std::cell::RefCell;

use subtle::ConstantTimeEq;
use worker::{Env, Request};

use crate::identity::resolver::Resolution;
use crate::isolate::Isolate;

pub mod admin;
pub mod client_js;
pub mod guard;
pub mod jwks;
pub mod sign_in_token;

pub const PREFIX: &str = "/__auth-bridge/";
/// The one worker endpoint that acts on the caller's sessions.
pub const SIGN_IN_TOKEN_PATH: &str = "/__auth-bridge/sign-in-token";

thread_local! {
    static ADMIN_GUARD: RefCell<guard::FailureGuard> = RefCell::new(guard::FailureGuard::default());
}

pub async fn handle(
    req: Request,
    env: &Env,
    isolate: &Isolate,
    resolution: &Resolution,
) -> web_sys::Response {
    let path = req.path();
    let route = &path[PREFIX.len()..];
    let method = req.method().to_string();
    match route {
        "sign-in-token" => match method.as_str() {
            "POST" => sign_in_token::handle(&req, env, isolate, resolution).await,
            _ => method_not_allowed("POST"),
        },
        "client.js" => match method.as_str() {
            "GET" | "HEAD" => client_js::handle(),
            _ => method_not_allowed("GET, HEAD"),
        },
        "jwks.json" => match method.as_str() {
            "GET" | "HEAD" => jwks::handle(isolate).await,
            _ => method_not_allowed("GET, HEAD"),
        },
        admin_route if admin_route == "admin" || admin_route.starts_with("admin/") => {
            // The read-only dashboard also takes HTTP Basic, so a browser can open it.
            let dashboard = matches!(admin_route, "admin" | "admin/")
                && matches!(method.as_str(), "GET" | "HEAD");
            match admin_access(&req, isolate, dashboard) {
                AdminAccess::Granted => {
                    admin::handle(req, env, isolate, &admin_route["admin".len()..]).await
                }
                AdminAccess::Disabled => plain(404, "Not Found\n"),
                AdminAccess::Throttled(retry_after) => {
                    let response = json(429, &serde_json::json!({"error": "too_many_attempts"}));
                    let _ = response
                        .headers()
                        .set("retry-after", &retry_after.to_string());
                    response
                }
                AdminAccess::Denied => {
                    let response = json(401, &serde_json::json!({"error": "unauthorized"}));
                    let challenge = if dashboard {
                        guard::BASIC_CHALLENGE
                    } else {
                        "Bearer"
                    };
                    let _ = response.headers().set("www-authenticate", challenge);
                    response
                }
            }
        }
        _ => plain(404, "Not Found\n"),
    }
}

enum AdminAccess {
    Granted,
    Denied,
    /// Too many wrong tokens from this address lately: refused without comparing.
    Throttled(u64),
    /// No admin token configured: the admin API does not exist.
    Disabled,
}

fn admin_access(req: &Request, isolate: &Isolate, basic_allowed: bool) -> AdminAccess {
    let Some(expected) = isolate.config.admin_token.as_deref() else {
        return AdminAccess::Disabled;
    };
    let address = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_default();
    let now = crate::clock::now_secs();
    if let Some(retry_after) = ADMIN_GUARD.with(|g| g.borrow().refused(&address, now)) {
        return AdminAccess::Throttled(retry_after);
    }
    let header = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .unwrap_or_default();
    let presented = guard::presented_token(&header, basic_allowed).unwrap_or_default();
    if bearer_matches(&presented, expected) {
        ADMIN_GUARD.with(|g| g.borrow_mut().record_success(&address));
        AdminAccess::Granted
    } else {
        ADMIN_GUARD.with(|g| g.borrow_mut().record_failure(&address, now));
        AdminAccess::Denied
    }
}

/// Constant-time comparison: the time taken does not depend on how much of the token matched.
pub fn bearer_matches(presented: &str, expected: &str) -> bool {
    !presented.is_empty()
        && presented.len() == expected.len()
        && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn response(status: u16, content_type: Option<&str>, body: Option<&str>) -> web_sys::Response {
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    let headers = web_sys::Headers::new().expect("an empty Headers can always be made");
    if let Some(content_type) = content_type {
        let _ = headers.set("content-type", content_type);
    }
    let _ = headers.set("cache-control", "no-store");
    init.set_headers(&headers);
    web_sys::Response::new_with_opt_str_and_init(body, &init)
        .expect("status codes used here are valid and the body is a string")
}

/// A short plain-text answer.
pub fn plain(status: u16, body: &str) -> web_sys::Response {
    response(status, Some("text/plain; charset=utf-8"), Some(body))
}

/// A JSON answer.
pub fn json(status: u16, value: &serde_json::Value) -> web_sys::Response {
    response(status, Some("application/json"), Some(&value.to_string()))
}

/// An answer without a body (`204`).
pub fn empty(status: u16) -> web_sys::Response {
    response(status, None, None)
}

/// A body of another type (`application/x-ndjson`, `text/html`, `text/javascript`).
pub fn typed(status: u16, content_type: &str, body: &str) -> web_sys::Response {
    response(status, Some(content_type), Some(body))
}

fn method_not_allowed(allow: &str) -> web_sys::Response {
    let response = plain(405, "Method Not Allowed\n");
    let _ = response.headers().set("allow", allow);
    response
}

#[cfg(test)]
mod tests {
    use super::bearer_matches;

    #[test]
    fn bearer_comparison() {
        assert!(bearer_matches("0123456789abcdef", "0123456789abcdef"));
        assert!(!bearer_matches("0123456789abcdeX", "0123456789abcdef"));
        assert!(!bearer_matches("0123456789abcde", "0123456789abcdef"));
        assert!(!bearer_matches("", ""));
    }
}
