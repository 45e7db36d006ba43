//! The admin API under `/__auth-bridge/admin` (bearer token checked by the router).

use worker::{Env, Request};

use crate::isolate::Isolate;

/// `route` is what follows `/__auth-bridge/admin` (empty, or `/status`, `/imports`, …).
pub async fn handle(
    _req: Request,
    _env: &Env,
    _isolate: &Isolate,
    _route: &str,
) -> web_sys::Response {
    super::plain(404, "Not Found\n")
}
