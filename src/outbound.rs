//! Outgoing subrequests (Clerk's APIs, the origin's session endpoint, JWKS), built on `web_sys`
//! directly.

/// An outgoing subrequest with no Cloudflare `cf` options: worker's `Request::new_with_init`
/// converts its `CfProperties` to a JS object on every call, about 11 KB of wasm for options
/// this worker always leaves at their defaults. Redirects are followed unless `manual_redirect`.
pub fn request(
    url: &str,
    method: worker::Method,
    headers: &worker::Headers,
    body: Option<&wasm_bindgen::JsValue>,
    manual_redirect: bool,
) -> worker::Result<worker::Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    init.set_headers(headers.as_ref());
    if manual_redirect {
        init.set_redirect(web_sys::RequestRedirect::Manual);
    }
    if let Some(body) = body {
        init.set_body(body);
    }
    web_sys::Request::new_with_str_and_init(url, &init)
        .map(worker::Request::from)
        .map_err(|e| {
            worker::Error::JsError(
                e.as_string()
                    .unwrap_or_else(|| "invalid URL or options for Request".to_string()),
            )
        })
}
