//! Endpoints answered by the worker itself, under `/__auth-bridge/`.

use worker::{Env, Request};

use crate::identity::resolver::Resolution;
use crate::isolate::Isolate;

pub const PREFIX: &str = "/__auth-bridge/";

pub async fn handle(
    req: &Request,
    _env: &Env,
    _isolate: &Isolate,
    _resolution: &Resolution,
) -> web_sys::Response {
    let _ = req;
    plain(404, "Not Found")
}

/// A short plain-text answer. Worker-made responses are never cacheable.
pub fn plain(status: u16, body: &str) -> web_sys::Response {
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    let headers = web_sys::Headers::new().expect("Headers::new");
    let _ = headers.set("content-type", "text/plain; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    init.set_headers(&headers);
    web_sys::Response::new_with_opt_str_and_init(Some(body), &init).expect("Response::new")
}
