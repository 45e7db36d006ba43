//! Clerk's handshake for page loads, at the edge.
//!
//! Two halves, as in @clerk/backend (`tokens/handshake`, `tokens/request`):
//!
//! - **Out**: a `GET` page load whose Clerk cookies fail the request-state rules (the resolver
//!   says `NeedsHandshake`) is sent with a `307` to
//!   `https://<Frontend API>/v1/client/handshake?redirect_url=…&__clerk_api_version=…&suffixed_cookies=…&__clerk_hs_reason=…&format=nonce`
//!   (plus `__session` and, on development instances, `__clerk_db_jwt`), with the
//!   `__clerk_redirect_count` loop guard: after three redirects the request is forwarded signed
//!   out of Clerk instead.
//! - **Back**: a request carrying `__clerk_handshake_nonce` (query or cookie) or
//!   `__clerk_handshake` (query or cookie) is resolved — the nonce through
//!   `GET {CLERK_API_URL}/v1/clients/handshake_payload`, the token by its RS256 signature — and
//!   its cookie directives are sent back as `Set-Cookie` on a `307` to the clean URL (handshake
//!   parameters removed), once the new session token in them verifies.
//!
//! Everything that decides (URLs, directive parsing, the loop guard, Clerk's suffixed-cookie
//! choice) is pure and tested on the host; [`resolve`] and [`redirect`] are the glue. Deviations
//! from Clerk's behaviour are listed in `docs/HANDSHAKE.md`. No token, nonce or cookie value is
//! ever logged.

use serde::Deserialize;
use serde_json::{Map, Value};
use worker::Url;

use crate::cookies::Cookies;
use crate::identity::clerk::{
    HandshakeReason, PublishableKey, SignatureVerifier, UntrustedClerkToken, DEV_BROWSER_COOKIE,
    DEV_BROWSER_QUERY_PARAM, SESSION_COOKIE,
};

mod edge;
pub use edge::{redirect, resolve};

/// Handshake token (query parameter and cookie).
pub const HANDSHAKE_PARAM: &str = "__clerk_handshake";
/// Handshake nonce (query parameter and cookie), resolved through the Backend API.
pub const HANDSHAKE_NONCE_PARAM: &str = "__clerk_handshake_nonce";
/// Loop guard cookie: how many handshake redirects happened in the last two seconds.
pub const REDIRECT_COUNT_COOKIE: &str = "__clerk_redirect_count";
/// Query parameters Clerk removes from the URL after a handshake.
const HANDSHAKE_HELP_PARAM: &str = "__clerk_help";
const LEGACY_DEV_BROWSER_PARAM: &str = "__dev_session";
/// `__clerk_api_version` sent to the Frontend API (@clerk/backend's `SUPPORTED_BAPI_VERSION`).
pub const SUPPORTED_BAPI_VERSION: &str = "2026-05-12";
/// Clerk gives up after this many handshake redirects (`handshakeRedirectLoopCounter === 3`).
pub const MAX_HANDSHAKE_REDIRECTS: u32 = 3;
/// Bounds on what a handshake may set: Clerk sends a handful of cookies.
pub(crate) const MAX_DIRECTIVES: usize = 32;
pub(crate) const MAX_DIRECTIVE_LEN: usize = 8 * 1024;

// ---------------------------------------------------------------------------------------------
// Pure: reading the request
// ---------------------------------------------------------------------------------------------

/// What carries the handshake result back to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carrier {
    Nonce(String),
    Token(String),
}

/// A handshake result found on a request, and whether it came in the URL (else in a cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returning {
    pub carrier: Carrier,
    pub in_query: bool,
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    // URLSearchParams.get: the first value; Clerk treats "" as absent (`get(..) || cookie`).
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Clerk's `initHandshakeValues`: the nonce wins over the token; the query wins over the cookie.
pub fn returning_handshake(url: &Url, cookies: &Cookies<'_>) -> Option<Returning> {
    let cookie = |name: &str| {
        cookies
            .get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let pick = |name: &str| match query_param(url, name) {
        Some(v) => Some((v, true)),
        None => cookie(name).map(|v| (v, false)),
    };
    if let Some((nonce, in_query)) = pick(HANDSHAKE_NONCE_PARAM) {
        return Some(Returning {
            carrier: Carrier::Nonce(nonce),
            in_query,
        });
    }
    pick(HANDSHAKE_PARAM).map(|(token, in_query)| Returning {
        carrier: Carrier::Token(token),
        in_query,
    })
}

/// Longest handshake nonce worth a Backend API call.
pub const MAX_NONCE_LEN: usize = 256;

/// Whether `nonce` could be a handshake nonce at all. @clerk/backend treats the nonce as opaque
/// and the Frontend API issues it as a URL-safe random identifier; a value with anything else
/// (spaces, `%`, quotes, control characters) or of an absurd length cannot be one, and is not
/// worth spending the Backend API budget on.
pub fn is_plausible_nonce(nonce: &str) -> bool {
    (1..=MAX_NONCE_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// `Number(cookie) || 0`.
pub fn redirect_count(cookies: &Cookies<'_>) -> u32 {
    cookies
        .get(REDIRECT_COUNT_COOKIE)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0)
}

/// The loop guard cookie for the next redirect (Clerk's exact attributes).
pub fn redirect_count_cookie(count: u32) -> String {
    format!(
        "{REDIRECT_COUNT_COOKIE}={}; SameSite=Lax; HttpOnly; Max-Age=2",
        count.saturating_add(1)
    )
}

/// @clerk/backend `usesSuffixedCookies`, needed for the `suffixed_cookies` parameter and the
/// dev-browser cookie choice.
pub fn uses_suffixed_cookies(cookies: &Cookies<'_>, pk: &PublishableKey, now: u64) -> bool {
    crate::identity::clerk::request_uses_suffixed_cookies(&|name| cookies.get(name), pk, now)
}

/// Everything the outbound redirect needs from the request.
pub struct OutboundFacts<'a> {
    pub url: &'a Url,
    pub cookies: &'a Cookies<'a>,
    pub authorization: Option<&'a str>,
    pub now: u64,
}

/// `Bearer <t>` or a bare token, as Clerk's `parseAuthorizationHeader` reads it.
fn token_in_header(header: Option<&str>) -> Option<&str> {
    let header = header.filter(|h| !h.is_empty())?;
    let mut words = header.splitn(2, ' ');
    let scheme = words.next()?;
    match words
        .next()
        .map(|rest| rest.split(' ').next().unwrap_or(""))
    {
        None | Some("") => Some(scheme),
        Some(token) if scheme == "Bearer" => Some(token),
        Some(_) => None,
    }
}

/// The Frontend API handshake URL, parameter for parameter as `buildRedirectToHandshake`.
pub fn handshake_url(
    pk: &PublishableKey,
    facts: &OutboundFacts<'_>,
    reason: HandshakeReason,
) -> String {
    let suffixed = uses_suffixed_cookies(facts.cookies, pk, facts.now);
    let cookie = |name: &str| {
        let name = if suffixed {
            pk.suffixed_cookie_name(name)
        } else {
            name.to_string()
        };
        facts.cookies.get(&name).filter(|v| !v.is_empty())
    };
    let mut redirect_url = facts.url.clone();
    remove_params(
        &mut redirect_url,
        &[DEV_BROWSER_QUERY_PARAM, LEGACY_DEV_BROWSER_PARAM],
    );
    let session_token = cookie(SESSION_COOKIE).or_else(|| token_in_header(facts.authorization));
    let dev_browser = query_param(facts.url, DEV_BROWSER_QUERY_PARAM)
        .or_else(|| cookie(DEV_BROWSER_COOKIE).map(str::to_string));

    let mut url = format!("https://{}/v1/client/handshake", pk.frontend_api());
    let mut query = form_urlencoded_pairs();
    query.append_pair("redirect_url", redirect_url.as_str());
    query.append_pair("__clerk_api_version", SUPPORTED_BAPI_VERSION);
    query.append_pair("suffixed_cookies", if suffixed { "true" } else { "false" });
    query.append_pair("__clerk_hs_reason", reason.as_str());
    query.append_pair("format", "nonce");
    if let Some(token) = session_token {
        query.append_pair(SESSION_COOKIE, token);
    }
    if pk.is_development() {
        if let Some(db) = dev_browser.as_deref() {
            query.append_pair(DEV_BROWSER_QUERY_PARAM, db);
        }
    }
    url.push('?');
    url.push_str(&query.finish());
    url
}

fn form_urlencoded_pairs() -> worker::url::form_urlencoded::Serializer<'static, String> {
    worker::url::form_urlencoded::Serializer::new(String::new())
}

/// Removes every occurrence of `names` from the query, re-serialising it as `URLSearchParams`
/// does; a URL without any of them is left byte for byte as it was.
fn remove_params(url: &mut Url, names: &[&str]) {
    if !url.query_pairs().any(|(k, _)| names.contains(&k.as_ref())) {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !names.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

/// The URL the browser goes back to after a handshake: Clerk's list of handshake parameters
/// removed (`__clerk_handshake`, `__clerk_help`, `__clerk_db_jwt`, `__clerk_handshake_nonce`).
pub fn clean_url(url: &Url) -> String {
    let mut clean = url.clone();
    remove_params(
        &mut clean,
        &[
            HANDSHAKE_PARAM,
            HANDSHAKE_HELP_PARAM,
            DEV_BROWSER_QUERY_PARAM,
            HANDSHAKE_NONCE_PARAM,
        ],
    );
    clean.into()
}

// ---------------------------------------------------------------------------------------------
// Pure: cookie directives
// ---------------------------------------------------------------------------------------------

/// `getCookieName`: the part before the first `=` of the first `;`-segment.
pub fn directive_name(directive: &str) -> &str {
    let first = directive.split(';').next().unwrap_or("");
    first.split('=').next().unwrap_or("").trim()
}

/// `getCookieValue`: the part after the first `=` of the first `;`-segment.
pub fn directive_value(directive: &str) -> &str {
    let first = directive.split(';').next().unwrap_or("");
    first.split_once('=').map_or("", |(_, v)| v.trim())
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Keeps the directives that are well-formed `Set-Cookie` values: a token name, no control
/// characters (no header splitting), bounded in size and number.
pub fn sanitize_directives(directives: Vec<String>) -> Vec<String> {
    directives
        .into_iter()
        .filter(|d| {
            let name = directive_name(d);
            d.len() <= MAX_DIRECTIVE_LEN
                && d.contains('=')
                && !name.is_empty()
                && name.bytes().all(is_token_char)
                && !d.bytes().any(|b| b.is_ascii_control() && b != b'\t')
        })
        .take(MAX_DIRECTIVES)
        .collect()
}

/// The new session token among the directives: the last `__session*` cookie, as Clerk reads
/// it; `None` when there is none or it is emptied (a signed-out handshake).
pub fn session_from_directives(directives: &[String]) -> Option<&str> {
    directives
        .iter()
        .filter(|d| directive_name(d).starts_with(SESSION_COOKIE))
        .map(|d| directive_value(d))
        .next_back()
        .filter(|v| !v.is_empty())
}

/// Whether some directive already sets (or clears) the cookie `name`.
fn directs(directives: &[String], name: &str) -> bool {
    directives.iter().any(|d| directive_name(d) == name)
}

/// What the response to a resolved handshake carries besides the handshake's own directives:
/// the dev-browser token from the query (development), and the deletion of a handshake cookie
/// that would otherwise be resolved again on the next request.
pub fn extra_directives(
    directives: &[String],
    returning: &Returning,
    dev_browser_in_query: Option<&str>,
    is_development: bool,
) -> Vec<String> {
    let mut extra = Vec::new();
    if is_development {
        if let Some(db) = dev_browser_in_query.filter(|db| is_cookie_value(db)) {
            if !directs(directives, DEV_BROWSER_COOKIE) {
                extra.push(format!("{DEV_BROWSER_COOKIE}={db}; Path=/; SameSite=Lax"));
            }
        }
    }
    if !returning.in_query {
        let name = match returning.carrier {
            Carrier::Nonce(_) => HANDSHAKE_NONCE_PARAM,
            Carrier::Token(_) => HANDSHAKE_PARAM,
        };
        if !directs(directives, name) {
            extra.push(format!("{name}=; Path=/; Max-Age=0"));
        }
    }
    extra
}

fn is_cookie_value(value: &str) -> bool {
    value.len() <= MAX_DIRECTIVE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',' && b != b'"' && b != b'\\')
}

#[derive(Deserialize)]
struct HandshakePayload {
    #[serde(default)]
    directives: Vec<Value>,
}

/// `{"directives":[…]}` from `GET /v1/clients/handshake_payload`; non-strings are dropped.
pub fn parse_payload(body: &[u8]) -> Option<Vec<String>> {
    let payload: HandshakePayload = crate::json::from_slice(body).ok()?;
    Some(
        payload
            .directives
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    )
}

/// Why a handshake could not be resolved. Carries no token or nonce material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// No Clerk configuration, keys or secret key to resolve it with.
    NotConfigured,
    /// The handshake token failed its header or signature checks.
    InvalidToken(String),
    /// The handshake token's payload has no `handshake` array, or has expired.
    InvalidPayload,
    /// The Backend API could not give the payload for the nonce.
    Payload(String),
    /// The session token set by the handshake did not verify.
    InvalidSession(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotConfigured => f.write_str("Clerk is not configured for handshakes"),
            Self::InvalidToken(e) => write!(f, "handshake token rejected: {e}"),
            Self::InvalidPayload => f.write_str("handshake token payload is unusable"),
            Self::Payload(e) => write!(f, "handshake payload unavailable: {e}"),
            Self::InvalidSession(e) => write!(f, "handshake session token rejected: {e}"),
        }
    }
}

/// The directives in a verified handshake token's claims (`handshake: [...]`). Clerk does not
/// check `exp` here; when the token has one, we do (with the session leeway).
pub fn token_directives(
    claims: &Map<String, Value>,
    now: u64,
    leeway: u64,
) -> Result<Vec<String>, HandshakeError> {
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_u64().ok_or(HandshakeError::InvalidPayload)?;
        if exp.saturating_add(leeway) <= now {
            return Err(HandshakeError::InvalidPayload);
        }
    }
    let list = claims
        .get("handshake")
        .and_then(Value::as_array)
        .ok_or(HandshakeError::InvalidPayload)?;
    Ok(list
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    const FAPI: &str = "clerk.example.com";

    fn pk(live: bool) -> PublishableKey {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{FAPI}$"));
        let prefix = if live { "pk_live_" } else { "pk_test_" };
        PublishableKey::parse(&format!("{prefix}{encoded}")).unwrap()
    }

    fn jwt(claims: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims);
        format!("{h}.{p}.c2ln")
    }

    fn query(url: &str) -> Vec<(String, String)> {
        Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn handshake_url_has_clerk_parameters_in_clerk_order() {
        let url = Url::parse("https://app.example.com/dash?tab=1&__clerk_db_jwt=x").unwrap();
        let cookies = Cookies::parse("__client_uat=1700000000");
        let facts = OutboundFacts {
            url: &url,
            cookies: &cookies,
            authorization: None,
            now: 1_700_000_100,
        };
        let built = handshake_url(
            &pk(true),
            &facts,
            HandshakeReason::ClientUatWithoutSessionToken,
        );
        assert!(built.starts_with("https://clerk.example.com/v1/client/handshake?"));
        assert_eq!(
            query(&built),
            vec![
                (
                    "redirect_url".into(),
                    "https://app.example.com/dash?tab=1".into()
                ),
                ("__clerk_api_version".into(), SUPPORTED_BAPI_VERSION.into()),
                ("suffixed_cookies".into(), "false".into()),
                (
                    "__clerk_hs_reason".into(),
                    "client-uat-but-no-session-token".into()
                ),
                ("format".into(), "nonce".into()),
            ]
        );
    }

    #[test]
    fn handshake_url_carries_session_and_dev_browser_on_development() {
        let url = Url::parse("https://app.example.com/").unwrap();
        let token = jwt(r#"{"iss":"https://clerk.example.com","iat":5}"#);
        let header = format!("__session={token}; __client_uat=9; __clerk_db_jwt=dvb_1");
        let cookies = Cookies::parse(&header);
        let facts = OutboundFacts {
            url: &url,
            cookies: &cookies,
            authorization: None,
            now: 10,
        };
        let dev = query(&handshake_url(
            &pk(false),
            &facts,
            HandshakeReason::SessionTokenIatBeforeClientUat,
        ));
        assert!(dev.contains(&("__session".into(), token.clone())));
        assert!(dev.contains(&("__clerk_db_jwt".into(), "dvb_1".into())));
        let live = query(&handshake_url(
            &pk(true),
            &facts,
            HandshakeReason::SessionTokenIatBeforeClientUat,
        ));
        assert!(!live.iter().any(|(k, _)| k == "__clerk_db_jwt"));
    }

    #[test]
    fn dev_browser_from_query_wins_and_is_dropped_from_redirect_url() {
        let url = Url::parse("https://app.example.com/p?__clerk_db_jwt=fromquery").unwrap();
        let cookies = Cookies::parse("__clerk_db_jwt=fromcookie");
        let facts = OutboundFacts {
            url: &url,
            cookies: &cookies,
            authorization: None,
            now: 0,
        };
        let q = query(&handshake_url(
            &pk(false),
            &facts,
            HandshakeReason::DevBrowserSync,
        ));
        assert_eq!(
            q[0],
            ("redirect_url".into(), "https://app.example.com/p".into())
        );
        assert!(q.contains(&("__clerk_db_jwt".into(), "fromquery".into())));
    }

    #[test]
    fn suffixed_cookies_follow_clerk() {
        let key = pk(true);
        let suffixed_uat = key.suffixed_cookie_name("__client_uat");
        let none = Cookies::parse("__client_uat=5");
        assert!(!uses_suffixed_cookies(&none, &key, 0));
        let header = format!("{suffixed_uat}=5");
        let only_suffixed = Cookies::parse(&header);
        assert!(uses_suffixed_cookies(&only_suffixed, &key, 0));
        // A plain session from another instance: ours are the suffixed ones.
        let other = format!(
            "__session={}",
            jwt(r#"{"iss":"https://other.example.com"}"#)
        );
        assert!(uses_suffixed_cookies(&Cookies::parse(&other), &key, 0));
        let mine = format!(
            "__session={}",
            jwt(r#"{"iss":"https://clerk.example.com"}"#)
        );
        assert!(!uses_suffixed_cookies(&Cookies::parse(&mine), &key, 0));
    }

    #[test]
    fn clean_url_removes_only_handshake_parameters() {
        let url = Url::parse(
            "https://app.example.com/a?x=1&__clerk_handshake=t&__clerk_handshake_nonce=n&__clerk_help=1&__clerk_db_jwt=d&y=2",
        )
        .unwrap();
        assert_eq!(clean_url(&url), "https://app.example.com/a?x=1&y=2");
        let only = Url::parse("https://app.example.com/a?__clerk_handshake_nonce=n").unwrap();
        assert_eq!(clean_url(&only), "https://app.example.com/a");
        let untouched = Url::parse("https://app.example.com/a?q=a%20b").unwrap();
        assert_eq!(clean_url(&untouched), "https://app.example.com/a?q=a%20b");
    }

    #[test]
    fn returning_handshake_prefers_nonce_and_query() {
        let url = Url::parse("https://a.example/?__clerk_handshake=tok").unwrap();
        let cookies = Cookies::parse("__clerk_handshake_nonce=cn");
        assert_eq!(
            returning_handshake(&url, &cookies),
            Some(Returning {
                carrier: Carrier::Nonce("cn".into()),
                in_query: false
            })
        );
        let url = Url::parse("https://a.example/?__clerk_handshake_nonce=qn").unwrap();
        assert_eq!(
            returning_handshake(&url, &cookies).unwrap(),
            Returning {
                carrier: Carrier::Nonce("qn".into()),
                in_query: true
            }
        );
        let plain = Url::parse("https://a.example/?__clerk_handshake=").unwrap();
        assert_eq!(returning_handshake(&plain, &Cookies::parse("")), None);
    }

    #[test]
    fn only_nonce_shaped_values_are_worth_a_call() {
        assert!(is_plausible_nonce("3kT9xQ2mZb7LwV4pN8rC1yH6dF5sJ0aE"));
        assert!(is_plausible_nonce("nonce_2abc-DEF.1~x"));
        for bad in [
            "",
            "a b",
            "a%20b",
            "\"quoted\"",
            "semi;colon",
            "line\nbreak",
            "ünïcode",
            &"x".repeat(MAX_NONCE_LEN + 1),
        ] {
            assert!(!is_plausible_nonce(bad), "{bad:?}");
        }
    }

    #[test]
    fn redirect_count_and_cookie() {
        assert_eq!(redirect_count(&Cookies::parse("")), 0);
        assert_eq!(
            redirect_count(&Cookies::parse("__clerk_redirect_count=2")),
            2
        );
        assert_eq!(
            redirect_count(&Cookies::parse("__clerk_redirect_count=x")),
            0
        );
        assert_eq!(
            redirect_count_cookie(2),
            "__clerk_redirect_count=3; SameSite=Lax; HttpOnly; Max-Age=2"
        );
    }

    #[test]
    fn directives_are_parsed_and_sanitised() {
        let directives = sanitize_directives(vec![
            "__session=abc; Path=/; Secure".into(),
            "__client_uat=17; Path=/".into(),
            "bad\r\nSet-Cookie: x=y".into(),
            "=novalue".into(),
            "noequals".into(),
            "na me=1".into(),
        ]);
        assert_eq!(directives.len(), 2);
        assert_eq!(directive_name(&directives[0]), "__session");
        assert_eq!(session_from_directives(&directives), Some("abc"));
        let signed_out = vec!["__session=; Max-Age=0".to_string()];
        assert_eq!(session_from_directives(&signed_out), None);
        let last_wins = vec!["__session=a".to_string(), "__session_x=b".to_string()];
        assert_eq!(session_from_directives(&last_wins), Some("b"));
    }

    #[test]
    fn extra_directives_set_dev_browser_and_clear_cookie_carriers() {
        let by_cookie = Returning {
            carrier: Carrier::Nonce("n".into()),
            in_query: false,
        };
        let extra = extra_directives(&[], &by_cookie, Some("dvb"), true);
        assert_eq!(
            extra,
            vec![
                "__clerk_db_jwt=dvb; Path=/; SameSite=Lax".to_string(),
                "__clerk_handshake_nonce=; Path=/; Max-Age=0".to_string()
            ]
        );
        let by_query = Returning {
            carrier: Carrier::Token("t".into()),
            in_query: true,
        };
        let already = vec!["__clerk_db_jwt=other; Path=/".to_string()];
        assert!(extra_directives(&already, &by_query, Some("dvb"), true).is_empty());
        assert!(extra_directives(&[], &by_query, Some("dvb"), false).is_empty());
        assert!(extra_directives(&[], &by_query, Some("a;b"), true).is_empty());
    }

    #[test]
    fn token_payload_and_payload_body() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"handshake":["__session=a",1,"__client_uat=2"],"exp":100}"#)
                .unwrap();
        assert_eq!(token_directives(&claims, 50, 5).unwrap().len(), 2);
        assert_eq!(
            token_directives(&claims, 105, 5),
            Err(HandshakeError::InvalidPayload)
        );
        let missing: Map<String, Value> = serde_json::from_str(r#"{"sub":"x"}"#).unwrap();
        assert_eq!(
            token_directives(&missing, 0, 5),
            Err(HandshakeError::InvalidPayload)
        );
        assert_eq!(
            parse_payload(br#"{"directives":["a=1",null]}"#),
            Some(vec!["a=1".to_string()])
        );
        assert_eq!(parse_payload(b"nope"), None);
    }

    #[test]
    fn bearer_header_like_clerk() {
        assert_eq!(token_in_header(Some("Bearer abc")), Some("abc"));
        assert_eq!(token_in_header(Some("abc")), Some("abc"));
        assert_eq!(token_in_header(Some("Basic abc")), None);
        assert_eq!(token_in_header(None), None);
    }
}
