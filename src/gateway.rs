//! One request, start to end: strip forged identity headers, resolve the identity, answer
//! `/__auth-bridge/*` here, forward everything else to the origin.
//!
//! This is glue: it reads the environment and calls the pure modules. Nothing in it may turn an
//! ordinary request into a 500; any failure on the way degrades to anonymity or a clear 502.

use worker::{Context, Env, MessageBatch, Request};

use crate::identity::resolver::{RequestFacts, Resolution};
use crate::isolate::{self, Isolate};
use crate::{convergence, handshake, phase, proxy, routes};

pub async fn handle(req: Request, env: Env, ctx: Context) -> web_sys::Response {
    if let Some(refused) = proxy::refuse_loop(req.inner()) {
        return refused;
    }
    let isolate = Isolate::get(&env);
    let config = &isolate.config;
    let url = req.url().ok();
    let request_origin = url
        .as_ref()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let origin_base = config
        .origin_url
        .as_ref()
        .map(|o| o.join(""))
        .unwrap_or(request_origin);
    let headers = req.headers();
    let cookie_header = headers.get("cookie").ok().flatten();
    let authorization = headers.get("authorization").ok().flatten();
    let dev_browser_in_query = url.as_ref().is_some_and(|u| {
        u.query_pairs()
            .any(|(k, _)| k == crate::identity::clerk::DEV_BROWSER_QUERY_PARAM)
    });
    // Only look-ups about cookies are capped per address: no cookie, nothing to read.
    let client_address = cookie_header
        .as_ref()
        .and_then(|_| headers.get("cf-connecting-ip").ok().flatten());
    let facts = RequestFacts {
        cookie_header: cookie_header.as_deref(),
        authorization: authorization.as_deref(),
        dev_browser_in_query,
        origin_base: &origin_base,
        client_address: client_address.as_deref(),
    };
    let kv = isolate.kv.clone();
    let now = isolate::now_secs();
    let bridge_route = url
        .as_ref()
        .is_some_and(|u| u.path().starts_with(routes::PREFIX));
    if let (Some(u), false) = (&url, bridge_route) {
        if let Some(response) = handshake::resolve(&req, u, &isolate, now).await {
            return response;
        }
    }
    // Worker endpoints other than the sign-in token need no identity (the admin API's bearer
    // token is not a session token and must not be read as one).
    let needs_identity = !bridge_route
        || url
            .as_ref()
            .is_some_and(|u| u.path() == routes::SIGN_IN_TOKEN_PATH);
    let resolution = if needs_identity {
        isolate.identity.resolve(&facts, kv.as_ref(), now).await
    } else {
        Resolution::anonymous()
    };

    if bridge_route {
        return routes::handle(req, &env, &isolate, &resolution).await;
    }
    if let Some(u) = &url {
        let redirect = phase::clerk_only_redirect(config, u)
            .or_else(|| handshake::redirect(&req, u, &resolution, &isolate, now));
        if let Some(response) = redirect {
            return response;
        }
    }
    convergence::record(&isolate, &resolution, facts.cookie_header, kv, &ctx, now);

    let mut identity_headers = resolution.identity.headers();
    if let (Some(killed), Some(cookies)) = (&resolution.killed_nextauth_cookie, &cookie_header) {
        // A revoked session must not reach the origin either: its NextAuth would renew it.
        let kept = crate::cookies::without_session_cookies(cookies, &[killed.as_str()]);
        identity_headers.push(("cookie", kept));
    }
    if let Some(signer) = &isolate.assertion {
        let audience = config
            .origin_url
            .as_ref()
            .map(|o| o.host().to_string())
            .or_else(|| url.as_ref().and_then(|u| u.host_str().map(str::to_string)))
            .unwrap_or_default();
        let assertion = signer.sign(&resolution.identity, &audience, config.phase, now);
        if let Some(assertion) = assertion.await {
            identity_headers.push(("x-auth-assertion", assertion));
        }
    }
    let response = proxy::forward(req.inner(), config, &identity_headers).await;
    crate::inject::maybe_inject(
        response,
        config,
        resolution.identity.source,
        &req.inner().method(),
    )
}

/// Cron Trigger: the batch pacer.
pub async fn tick(scheduled_time: f64, env: Env) {
    crate::batch::tick::tick(scheduled_time, &env).await;
}

/// Queue consumers for `auth-bridge-import` and its dead-letter queue.
pub async fn consume(batch: MessageBatch<serde_json::Value>, env: Env) {
    crate::batch::consume::consume(batch, &env).await;
}
