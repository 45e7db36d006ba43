//! The worker's own answers (endpoints, refusals, gateway errors): a status, a content type
//! and a short body, always with `Cache-Control: no-store`. A leaf: anything that answers by
//! itself builds its response here, without depending on the routes.

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
