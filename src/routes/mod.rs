//! Endpoints answered by the worker itself, under `/__auth-bridge/`. This module only routes;
//! each endpoint lives in its own file, and the answers are built by [`crate::respond`].
//!
//! Every answer made here carries `Cache-Control: no-store` (they depend on who asks), except
//! the public key set `jwks.json`.

use std::cell::RefCell;

use subtle::ConstantTimeEq;
use worker::{Env, Request};

pub use crate::respond::{empty, json, plain, typed};

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
