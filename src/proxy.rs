//! Forwarding to the origin: header hygiene, the upstream URL, and a streamed pass-through.
//!
//! The request body and the response body are handed over as streams, never read: the origin's
//! answer (status, every `Set-Cookie`, redirects, streaming bodies) comes back untouched.

use wasm_bindgen::prelude::wasm_bindgen;

use crate::config::{BaseUrl, Config};

#[wasm_bindgen(module = "/src/proxy.js")]
extern "C" {
    /// Method, URL and the headers [`InboundRequest::parse`] reads, in one crossing.
    #[wasm_bindgen(js_name = requestFacts)]
    fn request_facts(request: &web_sys::Request) -> String;

    /// The forward itself, in one crossing with one string (see `src/proxy.js`).
    #[wasm_bindgen(js_name = forward)]
    fn forward_js(request: &web_sys::Request, packed: &str) -> js_sys::Promise;
}

/// Prefix of every identity header; inbound copies are removed so nobody can forge them.
pub const IDENTITY_HEADER_PREFIX: &str = "x-auth-";

/// Whether a client-sent header must be dropped before the request goes anywhere.
pub fn is_forgeable_identity_header(name: &str) -> bool {
    name.len() >= IDENTITY_HEADER_PREFIX.len()
        && name[..IDENTITY_HEADER_PREFIX.len()].eq_ignore_ascii_case(IDENTITY_HEADER_PREFIX)
}

/// Appends the URL the request goes to: the origin's scheme, host and path prefix with the
/// request's own path and query; or, in route mode (no `ORIGIN_URL`), the request's URL
/// unchanged.
pub fn push_upstream_url(out: &mut String, request_url: &str, origin: Option<&BaseUrl>) {
    match origin {
        Some(origin) => origin.push_join(out, path_onward(request_url)),
        None => out.push_str(request_url),
    }
}

/// Everything after the authority: path and query (the fragment never reaches a server); `/`
/// when the URL has no path.
fn path_onward(url: &str) -> &str {
    let after_scheme = after_scheme(url);
    after_scheme.find('/').map_or("/", |at| &after_scheme[at..])
}

/// The URL after its first `://` (all of it when there is none). A byte scan: `split_once` with
/// a string pattern sets up a two-way searcher, more work than the few bytes of a scheme.
fn after_scheme(url: &str) -> &str {
    url.as_bytes()
        .windows(3)
        .position(|w| w == b"://")
        .map_or(url, |at| &url[at + 3..])
}

/// What the worker reads from every request, borrowed from the one string `src/proxy.js` packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundRequest<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub via: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// `cf-connecting-ip`: the client's address, as Cloudflare saw it.
    pub client_address: Option<&'a str>,
}

impl<'a> InboundRequest<'a> {
    /// Reads the packed facts of `request` (one JS call).
    pub fn read(request: &web_sys::Request) -> String {
        request_facts(request)
    }

    /// Splits the packed facts: `method NUL url (NUL ('+' value | '-'))*` for `via`, `cookie`,
    /// `authorization`, `cf-connecting-ip`. `None` when the string is not in that shape.
    pub fn parse(packed: &'a str) -> Option<InboundRequest<'a>> {
        let mut fields = packed.split('\0');
        let method = fields.next()?;
        let url = fields.next()?;
        let mut header = || match fields.next()?.split_at_checked(1)? {
            ("+", value) => Some(Some(value)),
            ("-", "") => Some(None),
            _ => None,
        };
        let via = header()?;
        let cookie = header()?;
        let authorization = header()?;
        let client_address = header()?;
        Some(InboundRequest {
            method,
            url,
            via,
            cookie,
            authorization,
            client_address,
        })
    }

    /// The path of the URL (`/` when it has none), without query or fragment.
    pub fn path(&self) -> &'a str {
        let from_path = path_onward(self.url);
        let end = from_path.find(['?', '#']).unwrap_or(from_path.len());
        &from_path[..end]
    }

    /// The raw query (without `?`), if any.
    pub fn query(&self) -> Option<&'a str> {
        let (_, rest) = self.url.split_once('?')?;
        Some(rest.split_once('#').map_or(rest, |(q, _)| q))
    }

    /// [`Self::path`] when it is already in the form a URL parser would give it, so it can be
    /// compared as is (no percent-escapes, dot segments, backslashes or non-ASCII to
    /// normalise); `None` otherwise. One pass over its bytes.
    pub fn plain_path(&self) -> Option<&'a str> {
        let path = self.path();
        let mut after_slash = false;
        for b in path.bytes() {
            if !b.is_ascii_graphic() || b == b'%' || b == b'\\' || (after_slash && b == b'.') {
                return None;
            }
            after_slash = b == b'/';
        }
        Some(path)
    }

    /// Whether the query has a parameter named `name` (after form-decoding, as
    /// `Url::query_pairs` compares it).
    pub fn has_query_param(&self, name: &str) -> bool {
        self.query().is_some_and(|query| {
            form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == name)
        })
    }
}

/// Forwards the request to the origin with the identity headers (`name NUL value NUL ...`, see
/// [`crate::packed_headers::push`]). The promise resolves to the origin's response as it came
/// (streamed), or to a `502` with a short reason when the origin cannot be reached; it never
/// rejects.
pub fn forward(
    req: &web_sys::Request,
    inbound: &InboundRequest<'_>,
    config: &Config,
    identity_headers: &str,
) -> js_sys::Promise {
    forward_js(
        req,
        &forward_instructions(inbound, config, identity_headers),
    )
}

/// What `src/proxy.js` `forward` takes, in one string: `url NUL forwarded-proto NUL via`, then
/// the identity headers (`name NUL value ...`, see [`crate::packed_headers::push`]). No part holds a
/// NUL: URLs are percent-encoded, a header value cannot carry one, and identity values are
/// packed so that they cannot either.
pub fn forward_instructions(
    inbound: &InboundRequest<'_>,
    config: &Config,
    identity_headers: &str,
) -> String {
    let origin = config.origin_url.as_ref();
    // One allocation: the URL, at most `\0https\0`, the via hops, `\0` and the identity headers.
    let mut packed = String::with_capacity(
        origin.map_or(0, |o| o.origin.len() + o.path.len())
            + inbound.url.len()
            + inbound.via.map_or(0, str::len)
            + identity_headers.len()
            + 32,
    );
    push_upstream_url(&mut packed, inbound.url, origin);
    // The origin is reached under another name: tell it the one the browser used.
    packed.push_str(match (origin, inbound.url.starts_with("https:")) {
        (None, _) => "\0",
        (Some(_), true) => "\0https",
        (Some(_), false) => "\0http",
    });
    packed.push('\0');
    crate::via::push_via_with_bridge(&mut packed, inbound.via);
    if !identity_headers.is_empty() {
        packed.push('\0');
        packed.push_str(identity_headers);
    }
    packed
}

pub use crate::via::{via_lists_bridge, via_with_bridge, VIA_NAME};

/// A `508` for a request that already passed through this worker (see [`VIA_NAME`]); checked
/// before anything else, since identity resolution may itself call the origin.
pub fn refuse_loop(via: Option<&str>) -> Option<web_sys::Response> {
    if !via_lists_bridge(via?) {
        return None;
    }
    worker::console_error!(
        "auth-bridge: request loop (the upstream URL leads back to this worker)"
    );
    Some(crate::respond::plain(
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

    fn upstream_url(request_url: &str, origin: Option<&BaseUrl>) -> String {
        let mut url = String::new();
        push_upstream_url(&mut url, request_url, origin);
        url
    }

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
    fn packed_request_facts_are_split_in_order() {
        let packed = "POST\0https://app.example.com/a?b=1\0-\0+a=1; b=2\0+\0+203.0.113.7";
        let inbound = InboundRequest::parse(packed).unwrap();
        assert_eq!(inbound.method, "POST");
        assert_eq!(inbound.url, "https://app.example.com/a?b=1");
        assert_eq!(inbound.via, None);
        assert_eq!(inbound.cookie, Some("a=1; b=2"));
        // Present but empty is not absent.
        assert_eq!(inbound.authorization, Some(""));
        assert_eq!(inbound.client_address, Some("203.0.113.7"));
        for broken in ["", "GET", "GET\0/", "GET\0/\0-\0-\0-", "GET\0/\0x\0-\0-\0-"] {
            assert_eq!(InboundRequest::parse(broken), None, "{broken:?}");
        }
    }

    fn inbound(url: &str) -> InboundRequest<'_> {
        InboundRequest {
            method: "GET",
            url,
            via: None,
            cookie: None,
            authorization: None,
            client_address: None,
        }
    }

    #[test]
    fn path_and_query_from_the_raw_url() {
        let r = inbound("https://app.example.com/__auth-bridge/x?y=1&z#f");
        assert_eq!(r.path(), "/__auth-bridge/x");
        assert_eq!(r.query(), Some("y=1&z"));
        assert_eq!(inbound("http://h:8787").path(), "/");
        assert_eq!(inbound("http://h:8787").query(), None);
        assert_eq!(inbound("http://h/?").query(), Some(""));
    }

    #[test]
    fn paths_a_parser_would_rewrite_are_not_plain() {
        assert!(inbound("https://a.example/x/y.css?q=%20")
            .plain_path()
            .is_some());
        for url in [
            "https://a.example/x/%2e%2e/__auth-bridge/",
            "https://a.example/x/../y",
            "https://a.example/x\\y",
            "https://a.example/caf\u{e9}",
        ] {
            assert!(inbound(url).plain_path().is_none(), "{url}");
        }
        // Where the raw path is plain, it is the parsed path.
        for url in [
            "https://a.example/__auth-bridge/status?x",
            "http://h:1/a/b;c",
        ] {
            let parsed = worker::Url::parse(url).unwrap();
            assert_eq!(inbound(url).path(), parsed.path());
        }
    }

    #[test]
    fn query_parameters_are_compared_decoded() {
        assert!(inbound("https://a/?__clerk_db_jwt=x").has_query_param("__clerk_db_jwt"));
        assert!(inbound("https://a/?a=1&__clerk%5Fdb_jwt").has_query_param("__clerk_db_jwt"));
        assert!(!inbound("https://a/?x=__clerk_db_jwt").has_query_param("__clerk_db_jwt"));
        assert!(!inbound("https://a/").has_query_param("__clerk_db_jwt"));
    }

    #[test]
    fn forward_instructions_are_url_proto_via_then_identity() {
        let mut config = crate::config::Config::from_lookup(|name| {
            (name == "ORIGIN_URL").then(|| "http://127.0.0.1:9000".to_string())
        });
        let mut request = inbound("https://app.example.com/a?b=1");
        let packed = forward_instructions(&request, &config, "x-auth-source\0anonymous");
        assert_eq!(
            packed,
            "http://127.0.0.1:9000/a?b=1\0https\x001.1 auth-bridge\0x-auth-source\0anonymous"
        );
        request.via = Some(" 1.1 cdn ");
        request.url = "http://app.example.com/";
        assert_eq!(
            forward_instructions(&request, &config, ""),
            "http://127.0.0.1:9000/\0http\x001.1 cdn, 1.1 auth-bridge"
        );
        // Route mode: the request's own URL, no x-forwarded-* pair.
        config.origin_url = None;
        assert_eq!(
            forward_instructions(&request, &config, "x-auth-source\0nextauth"),
            "http://app.example.com/\0\x001.1 cdn, 1.1 auth-bridge\0x-auth-source\0nextauth"
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
