//! `GET /__auth-bridge/jwks.json`: the public keys that verify ES256 `x-auth-assertion`s
//! (current and, during a rotation, previous), for anyone — they are public by design. Cached
//! by clients and CDNs for five minutes: a rotation keeps the previous key listed longer than
//! that.

use serde_json::json;

use super::{json, plain};
use crate::isolate::Isolate;

/// `Cache-Control` of the key set.
pub const CACHE_CONTROL: &str = "public, max-age=300";

pub async fn handle(isolate: &Isolate) -> web_sys::Response {
    let Some(signer) = &isolate.assertion else {
        return plain(404, "Not Found: AUTH_BRIDGE_ASSERTION_KEY is not set\n");
    };
    match signer.jwks().await {
        Ok(Some(keys)) => {
            let response = json(200, &keys);
            let _ = response.headers().set("cache-control", CACHE_CONTROL);
            response
        }
        Ok(None) => plain(404, "Not Found: AUTH_BRIDGE_ASSERTION_KEY is not set\n"),
        // A configuration problem (named in admin/status), not a server error.
        Err(_) => {
            let response = json(
                503,
                &json!({
                    "error": "assertion_key_unusable",
                    "message": "AUTH_BRIDGE_ASSERTION_KEY could not be imported; see admin/status",
                }),
            );
            let _ = response.headers().set("retry-after", "300");
            response
        }
    }
}
