//! The handshake at the edge (glue): [`resolve`] the way back (a nonce through the Backend API,
//! within the caps and the budget, or a signed token) and [`redirect`] the way out. Every
//! decision is made by the pure functions of the parent module.

use std::time::Duration;

use futures::future::{select, Either};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, Url};

use super::*;
use crate::identity::jwks;
use crate::identity::resolver::{ClerkContext, Resolution};
use crate::isolate::Isolate;

/// Longest wait for the handshake payload; a page load is waiting on it.
const PAYLOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest handshake payload body read: every directive at its largest, with room for JSON.
const MAX_PAYLOAD_BODY: usize = 2 * MAX_DIRECTIVES * MAX_DIRECTIVE_LEN;
/// Minimum time between two log lines about unresolved handshakes.
const FAILURE_LOG_INTERVAL_SECS: u64 = 10;

thread_local! {
    static LAST_FAILURE_LOG: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A `307` with `Cache-Control: no-store`, the `Location` and every `Set-Cookie`; the headers
/// Clerk's `resolveHandshake` adds for credentialed cross-origin callers come with `cors`.
fn redirect_response(location: &str, set_cookies: &[String], cors: bool) -> web_sys::Response {
    let init = web_sys::ResponseInit::new();
    init.set_status(307);
    if let Ok(headers) = web_sys::Headers::new() {
        let _ = headers.set("location", location);
        let _ = headers.set("cache-control", "no-store");
        if cors {
            let _ = headers.set("access-control-allow-origin", "null");
            let _ = headers.set("access-control-allow-credentials", "true");
        }
        for cookie in set_cookies {
            let _ = headers.append("set-cookie", cookie);
        }
        init.set_headers(&headers);
    }
    web_sys::Response::new_with_opt_str_and_init(None, &init)
        .unwrap_or_else(|_| crate::respond::plain(502, "Bad Gateway\n"))
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The way back: when the request carries a handshake result, resolves it and answers the
/// `307` to the clean URL with the handshake's cookies. `None` = nothing to resolve (or it
/// failed, and the request goes on as if there had been no handshake, as in Clerk).
pub async fn resolve(
    req: &Request,
    url: &Url,
    isolate: &Isolate,
    now: u64,
) -> Option<web_sys::Response> {
    let method = req.method();
    if !matches!(method, Method::Get | Method::Head) {
        return None;
    }
    let ctx = isolate.identity.clerk()?;
    let cookie_header = header(req, "cookie");
    let cookies = Cookies::parse(cookie_header.as_deref().unwrap_or(""));
    let returning = returning_handshake(url, &cookies)?;
    let count = redirect_count(&cookies);
    // A cookie that keeps coming back must not redirect forever.
    if !returning.in_query && count >= MAX_HANDSHAKE_REDIRECTS {
        return None;
    }
    let client_address = header(req, "cf-connecting-ip").unwrap_or_default();
    match directives_for(&returning, ctx, isolate, &client_address, now).await {
        Ok(directives) => {
            let db = query_param(url, DEV_BROWSER_QUERY_PARAM);
            let mut set_cookies = directives.clone();
            set_cookies.extend(extra_directives(
                &directives,
                &returning,
                db.as_deref(),
                ctx.publishable_key.is_development(),
            ));
            if !returning.in_query {
                set_cookies.push(redirect_count_cookie(count));
            }
            Some(redirect_response(&clean_url(url), &set_cookies, true))
        }
        Err(error) => {
            // Anyone can send a made-up nonce: one line per interval, not one per request.
            let due = LAST_FAILURE_LOG.with(|last| {
                let due = now >= last.get() + FAILURE_LOG_INTERVAL_SECS;
                if due {
                    last.set(now);
                }
                due
            });
            if due {
                worker::console_warn!(
                    "auth-bridge: handshake not resolved: {error} (further failures muted for {FAILURE_LOG_INTERVAL_SECS} s)"
                );
            }
            None
        }
    }
}

/// The verified directives of a returning handshake.
async fn directives_for(
    returning: &Returning,
    ctx: &ClerkContext,
    isolate: &Isolate,
    client_address: &str,
    now: u64,
) -> Result<Vec<String>, HandshakeError> {
    let keys = ctx.keys.as_ref().ok_or(HandshakeError::NotConfigured)?;
    let directives = match &returning.carrier {
        Carrier::Nonce(nonce) => {
            let secret = isolate
                .config
                .clerk_secret_key
                .as_deref()
                .ok_or(HandshakeError::NotConfigured)?;
            if !is_plausible_nonce(nonce) {
                return Err(HandshakeError::Payload("not a nonce".into()));
            }
            // Anyone can send a nonce: what one address can make us ask Clerk is capped, and
            // the call comes out of the shared budget.
            let now_ms = crate::clock::now_ms();
            crate::budget::client_may_call(client_address, now_ms).map_err(|secs| {
                HandshakeError::Payload(format!("client address over its cap for {secs} s"))
            })?;
            let kv = isolate.kv.as_ref();
            crate::budget::admit(
                kv,
                isolate.config.clerk_rate_limit,
                crate::budget::Priority::Interactive,
                now_ms,
                1,
            )
            .await
            .map_err(|secs| {
                HandshakeError::Payload(format!("Backend API budget spent for {secs} s"))
            })?;
            let payload =
                fetch_payload(&isolate.config.clerk_api_url.join(""), secret, nonce).await;
            crate::budget::record_calls(kv, crate::clock::now_ms(), 1).await;
            payload?
        }
        Carrier::Token(token) => {
            let untrusted = UntrustedClerkToken::parse(token)
                .map_err(|e| HandshakeError::InvalidToken(e.to_string()))?;
            keys.verify_signature(
                untrusted.kid(),
                untrusted.signing_input(),
                untrusted.signature(),
                now,
            )
            .await
            .map_err(|e| HandshakeError::InvalidToken(e.to_string()))?;
            token_directives(
                untrusted.unverified_claims().all(),
                now,
                ctx.validation.leeway,
            )?
        }
    };
    let directives = sanitize_directives(directives);
    if let Some(session) = session_from_directives(&directives) {
        jwks::verify_session(session, keys, &ctx.validation, now)
            .await
            .map_err(|e| HandshakeError::InvalidSession(e.to_string()))?;
    }
    Ok(directives)
}

/// `GET {api}/v1/clients/handshake_payload?nonce=…` with the secret key.
async fn fetch_payload(
    api_url: &str,
    secret: &str,
    nonce: &str,
) -> Result<Vec<String>, HandshakeError> {
    let network = |e: worker::Error| HandshakeError::Payload(format!("network: {e}"));
    let mut query = form_urlencoded_pairs();
    query.append_pair("nonce", nonce);
    let url = format!(
        "{}/v1/clients/handshake_payload?{}",
        api_url.trim_end_matches('/'),
        query.finish()
    );
    let headers = Headers::new();
    headers
        .set("authorization", &format!("Bearer {secret}"))
        .map_err(network)?;
    headers
        .set("clerk-api-version", crate::clerk_api::API_VERSION)
        .map_err(network)?;
    headers.set("accept", "application/json").map_err(network)?;
    let request =
        crate::outbound::request(&url, Method::Get, &headers, None, false).map_err(network)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let send = Box::pin(async move {
        let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = response.status_code();
        // Capped while it streams: a payload is a handful of cookies.
        let bytes = crate::capped_body::read_capped(&mut response, MAX_PAYLOAD_BODY).await;
        Ok::<_, worker::Error>((status, bytes))
    });
    match select(send, Box::pin(Delay::from(PAYLOAD_TIMEOUT))).await {
        Either::Left((Ok((200, Ok(body))), _)) => {
            parse_payload(&body).ok_or_else(|| HandshakeError::Payload("malformed body".into()))
        }
        Either::Left((Ok((200, Err(e))), _)) => Err(HandshakeError::Payload(e.to_string())),
        Either::Left((Ok((status, _)), _)) => Err(HandshakeError::Payload(format!(
            "Backend API answered {status}"
        ))),
        Either::Left((Err(e), _)) => Err(network(e)),
        Either::Right(_) => {
            controller.abort();
            Err(HandshakeError::Payload("timeout".into()))
        }
    }
}

/// The way out: the handshake redirect for a page load whose Clerk state needs one, with the
/// loop guard. `None` = forward (not a page load, no handshake needed, or the guard gave up —
/// then the request simply stays signed out of Clerk).
pub fn redirect(
    req: &Request,
    url: &Url,
    resolution: &Resolution,
    isolate: &Isolate,
    now: u64,
) -> Option<web_sys::Response> {
    let method = req.method().to_string();
    let reason = resolution.handshake_reason(
        &method,
        header(req, "sec-fetch-dest").as_deref(),
        header(req, "accept").as_deref(),
    )?;
    let ctx = isolate.identity.clerk()?;
    let cookie_header = header(req, "cookie");
    let cookies = Cookies::parse(cookie_header.as_deref().unwrap_or(""));
    let count = redirect_count(&cookies);
    if count >= MAX_HANDSHAKE_REDIRECTS {
        worker::console_log!(
            "auth-bridge: Clerk handshake redirect loop ({}); forwarding signed out of Clerk",
            reason.as_str()
        );
        return None;
    }
    let authorization = header(req, "authorization");
    let facts = OutboundFacts {
        url,
        cookies: &cookies,
        authorization: authorization.as_deref(),
        now,
    };
    let location = handshake_url(&ctx.publishable_key, &facts, reason);
    Some(redirect_response(
        &location,
        &[redirect_count_cookie(count)],
        false,
    ))
}
