//! Forwarding to the origin: header hygiene, the upstream URL, and a streamed pass-through.
//!
//! The request body and the response body are handed over as streams, never read: the origin's
//! answer (status, every `Set-Cookie`, redirects, streaming bodies) comes back untouched.

use wasm_bindgen::JsCast;

use crate::config::{BaseUrl, Config};

/// Prefix of every identity header; inbound copies are removed so nobody can forge them.
pub const IDENTITY_HEADER_PREFIX: &str = "x-auth-";

/// Whether a client-sent header must be dropped before the request goes anywhere.
pub fn is_forgeable_identity_header(name: &str) -> bool {
    name.len() >= IDENTITY_HEADER_PREFIX.len()
        && name[..IDENTITY_HEADER_PREFIX.len()].eq_ignore_ascii_case(IDENTITY_HEADER_PREFIX)
}

/// The URL the request goes to: the origin's scheme, host and path prefix with the request's own
/// path and query; or, in route mode (no `ORIGIN_URL`), the request's URL unchanged.
pub fn upstream_url(request_url: &str, origin: Option<&BaseUrl>) -> String {
    let Some(origin) = origin else {
        return request_url.to_string();
    };
    // Everything after the authority: path, query (the fragment never reaches a server).
    let after_scheme = request_url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(request_url);
    let path_and_query = match after_scheme.find('/') {
        Some(at) => &after_scheme[at..],
        None => "/",
    };
    origin.join(path_and_query)
}

/// Forwards the request to the origin with the identity headers and returns the origin's
/// response as it came (streamed). An unreachable origin is a `502` with a short reason.
pub async fn forward(
    req: &web_sys::Request,
    config: &Config,
    identity_headers: &[(&'static str, String)],
) -> web_sys::Response {
    match try_forward(req, config, identity_headers).await {
        Ok(response) => response,
        Err(reason) => {
            worker::console_error!("auth-bridge: origin unreachable: {reason}");
            crate::routes::plain(502, "Bad Gateway: the origin could not be reached\n")
        }
    }
}

async fn try_forward(
    req: &web_sys::Request,
    config: &Config,
    identity_headers: &[(&'static str, String)],
) -> Result<web_sys::Response, String> {
    let js = |e: wasm_bindgen::JsValue| format!("{e:?}");
    let headers = web_sys::Headers::new_with_headers(&req.headers()).map_err(js)?;
    let names: Vec<String> = worker::Headers(headers.clone()).keys().collect();
    for name in names.iter().filter(|n| is_forgeable_identity_header(n)) {
        headers.delete(name).map_err(js)?;
    }
    let url = upstream_url(&req.url(), config.origin_url.as_ref());
    if config.origin_url.is_some() {
        // The origin is reached under another name: tell it the one the browser used.
        if let Some(host) = headers.get("host").map_err(js)? {
            headers.set("x-forwarded-host", &host).map_err(js)?;
        }
        let proto = if req.url().starts_with("https:") {
            "https"
        } else {
            "http"
        };
        headers.set("x-forwarded-proto", proto).map_err(js)?;
        headers.delete("host").map_err(js)?;
    }
    headers
        .set(
            "via",
            &via_with_bridge(headers.get("via").map_err(js)?.as_deref()),
        )
        .map_err(js)?;
    for (name, value) in identity_headers {
        headers.set(name, value).map_err(js)?;
    }

    let init = web_sys::RequestInit::new();
    let method = req.method();
    init.set_method(&method);
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if !method_has_no_body(&method) {
        if let Some(body) = req.body() {
            init.set_body(&body);
        }
    }
    let upstream = web_sys::Request::new_with_str_and_init(&url, &init).map_err(js)?;
    // The global fetch, and its response returned as it is: no rebuilt headers or body, and the
    // origin's status text kept.
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let response = wasm_bindgen_futures::JsFuture::from(global.fetch_with_request(&upstream))
        .await
        .map_err(js)?;
    Ok(response.unchecked_into())
}

pub use crate::via::{via_lists_bridge, via_with_bridge, VIA_NAME};

/// A `508` for a request that already passed through this worker (see [`VIA_NAME`]); checked
/// before anything else, since identity resolution may itself call the origin.
pub fn refuse_loop(req: &web_sys::Request) -> Option<web_sys::Response> {
    let via = req.headers().get("via").ok().flatten()?;
    if !via_lists_bridge(&via) {
        return None;
    }
    worker::console_error!(
        "auth-bridge: request loop (the upstream URL leads back to this worker)"
    );
    Some(crate::routes::plain(
        508,
        "Loop Detected: the upstream URL leads back to auth-bridge\n",
    ))
}

/// Methods whose requests carry no body; a stream must not be attached to them.
pub fn method_has_no_body(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_recognised_in_any_case() {
        for name in [
            "x-auth-user-id",
            "X-Auth-Source",
            "X-AUTH-ASSERTION",
            "x-auth-",
        ] {
            assert!(is_forgeable_identity_header(name), "{name}");
        }
        for name in [
            "x-authorization",
            "authorization",
            "x-aut",
            "cookie",
            "x-forwarded-auth-x",
        ] {
            assert!(!is_forgeable_identity_header(name), "{name}");
        }
    }

    #[test]
    fn upstream_keeps_path_and_query() {
        let origin = BaseUrl::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            upstream_url("https://app.example.com/a/b?x=1&y=%20", Some(&origin)),
            "http://127.0.0.1:9000/a/b?x=1&y=%20"
        );
        assert_eq!(
            upstream_url("https://app.example.com", Some(&origin)),
            "http://127.0.0.1:9000/"
        );
        let prefixed = BaseUrl::parse("https://internal.example.com/app/").unwrap();
        assert_eq!(
            upstream_url("https://app.example.com/?q", Some(&prefixed)),
            "https://internal.example.com/app/?q"
        );
    }

    #[test]
    fn route_mode_forwards_to_the_request_url() {
        assert_eq!(
            upstream_url("https://app.example.com/x?y", None),
            "https://app.example.com/x?y"
        );
    }

    #[test]
    fn bodiless_methods() {
        assert!(method_has_no_body("GET"));
        assert!(method_has_no_body("HEAD"));
        assert!(!method_has_no_body("POST"));
        assert!(!method_has_no_body("DELETE"));
    }
}
