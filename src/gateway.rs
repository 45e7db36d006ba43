//! One request, start to end: strip forged identity headers, resolve the identity, answer
//! `/__auth-bridge/*` here, forward everything else to the origin.
//!
//! This is glue: it reads the environment and calls the pure modules. Nothing in it may turn an
//! ordinary request into a 500; any failure on the way degrades to anonymity or a clear 502.
//!
//! Built for the common request, which is a page or an asset with or without a session: the
//! request is read in one call into JS ([`InboundRequest`]), the URL is only parsed when a rare
//! branch needs it (handshake, `clerk-only` sign-in routes, route mode), a `worker::Request` is
//! only built for the routes and handshakes that take one, and the origin's pending answer is
//! handed back without awaiting it here ([`Reply::Origin`]); with nothing to await on the way
//! (no Clerk signature to check, no KV read), the whole request runs synchronously.

use std::borrow::Cow;
use std::cell::OnceCell;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsCast;
use worker::{Context, Env, MessageBatch, Url};

use crate::config::Phase;
use crate::identity::clerk::{ClerkRequestState, DEV_BROWSER_QUERY_PARAM};
use crate::identity::resolver::{RequestFacts, Resolution};
use crate::identity::{Identity, Source, ANONYMOUS_IDENTITY_HEADERS};
use crate::isolate::Isolate;
use crate::proxy::InboundRequest;
use crate::{convergence, handshake, phase, proxy, routes};

/// What a request gets back.
pub enum Reply {
    /// An answer made here (bridge routes, redirects, refusals).
    Response(web_sys::Response),
    /// The origin's answer, still pending; it never rejects (see [`proxy::forward`]).
    Origin(js_sys::Promise),
}

impl Reply {
    /// The value the runtime awaits: a response, or a promise of one.
    pub fn into_js(self) -> wasm_bindgen::JsValue {
        match self {
            Reply::Response(response) => response.into(),
            Reply::Origin(pending) => pending.into(),
        }
    }
}

pub async fn handle(req: web_sys::Request, env: Env, ctx: Context) -> Reply {
    let packed = InboundRequest::read(&req);
    let Some(inbound) = InboundRequest::parse(&packed) else {
        worker::console_error!("auth-bridge: the request could not be read");
        return Reply::Response(crate::respond::plain(
            502,
            "Bad Gateway: unreadable request\n",
        ));
    };
    if let Some(refused) = proxy::refuse_loop(inbound.via) {
        return Reply::Response(refused);
    }
    let isolate = Isolate::get(&env);
    let now_ms = crate::clock::now_ms();
    crate::fast_path::keep_current(
        isolate.forward_plan.as_deref(),
        &isolate.session_cookie_names,
        now_ms,
    );
    let config = &isolate.config;
    // Parsed on first use only: most requests never need more than the path and the query.
    let parsed = OnceCell::new();
    let url = || parsed.get_or_init(|| Url::parse(inbound.url).ok()).as_ref();
    let path = match inbound.plain_path() {
        Some(plain) => Some(plain),
        None => url().map(Url::path),
    };
    let request_origin;
    let origin_base = match &isolate.origin_base {
        Some(base) => base.as_str(),
        None => {
            request_origin = url()
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            request_origin.as_str()
        }
    };
    let facts = RequestFacts {
        cookie_header: inbound.cookie,
        authorization: inbound.authorization,
        dev_browser_in_query: inbound.has_query_param(DEV_BROWSER_QUERY_PARAM),
        origin_base,
        // Only look-ups about cookies are capped per address: no cookie, nothing to read.
        client_address: inbound.cookie.and(inbound.client_address),
    };
    let kv = isolate.kv.as_ref();
    let now = now_ms / 1000;
    let bridge_route = path.is_some_and(|p| p.starts_with(routes::PREFIX));
    if !bridge_route && may_return_from_handshake(&inbound, &isolate) {
        if let Some(u) = url() {
            let request = worker::Request::from(Clone::clone(&req));
            if let Some(response) =
                out_of_line(handshake::resolve(&request, u, &isolate, now)).await
            {
                return Reply::Response(response);
            }
        }
    }
    if !bridge_route && config.phase == Phase::ClerkOnly {
        if let Some(response) = url().and_then(|u| phase::clerk_only_redirect(config, u)) {
            return Reply::Response(response);
        }
    }
    // Worker endpoints other than the sign-in token need no identity (the admin API's bearer
    // token is not a session token and must not be read as one).
    let needs_identity = !bridge_route || path == Some(routes::SIGN_IN_TOKEN_PATH);
    let resolves = needs_identity && (bridge_route || !carries_no_identity(&inbound, &isolate));
    // A page's further requests carry the same cookies: the answer they got, while it stands.
    let recalled = match resolves && !bridge_route {
        true => isolate.identity.recall(&facts, kv.is_some(), now),
        false => None,
    };
    let fresh;
    let (identity, packed_identity, nextauth_beside_clerk) = match &recalled {
        Some(recalled) => (
            &recalled.answer.identity,
            recalled.answer.headers.as_str(),
            recalled.answer.nextauth_beside_clerk,
        ),
        None => {
            let resolution = if resolves {
                isolate.identity.resolve(&facts, kv, now).await
            } else {
                Resolution::anonymous()
            };
            if bridge_route {
                let request = worker::Request::from(req);
                return Reply::Response(
                    out_of_line(routes::handle(request, &env, &isolate, &resolution)).await,
                );
            }
            if matches!(resolution.clerk, Some(ClerkRequestState::NeedsHandshake(_))) {
                if let Some(u) = url() {
                    let request = worker::Request::from(Clone::clone(&req));
                    if let Some(response) =
                        handshake::redirect(&request, u, &resolution, &isolate, now)
                    {
                        return Reply::Response(response);
                    }
                }
            }
            let killed_cookie = resolution
                .killed_nextauth_cookie
                .as_deref()
                .zip(inbound.cookie);
            let packed = match killed_cookie {
                // The common anonymous request: nothing to build.
                None if resolution.identity.source == Source::Anonymous => {
                    Cow::Borrowed(ANONYMOUS_IDENTITY_HEADERS)
                }
                _ => {
                    let mut packed = String::with_capacity(128);
                    resolution.identity.push_headers(&mut packed);
                    if let Some((killed, cookies)) = killed_cookie {
                        // A revoked session must not reach the origin either: its NextAuth
                        // would renew it.
                        let kept = crate::cookies::without_session_cookies(cookies, &[killed]);
                        crate::packed_headers::push(&mut packed, "cookie", &kept);
                    }
                    Cow::Owned(packed)
                }
            };
            isolate.identity.remember(&facts, &resolution, &packed, now);
            fresh = (resolution, packed);
            (&fresh.0.identity, &*fresh.1, fresh.0.nextauth_beside_clerk)
        }
    };
    let kind = convergence::kind_of(identity.source, nextauth_beside_clerk);
    convergence::kv::record(kind, identity.user_id.as_deref(), kv, &ctx, now);
    // Cookies seen again (a page's further requests): while the answer stands, they get the
    // same forward from the JS entry. Not on first sight: most fresh tokens never come back.
    if let Some(until) = recalled.as_ref().and_then(|r| r.standing_until) {
        if isolate.forward_plan.is_some() && forward_only(&inbound, &isolate, identity) {
            crate::fast_path::remember_session(
                inbound.cookie,
                inbound.authorization,
                packed_identity,
                until.saturating_mul(1000),
                kind,
            );
        }
    }

    let mut with_assertion;
    let mut identity_headers = packed_identity;
    if let Some(signer) = &isolate.assertion {
        let audience = config
            .origin_url
            .as_ref()
            .map(|o| o.host().to_string())
            .or_else(|| url().and_then(crate::identity::assertion::request_audience))
            .unwrap_or_default();
        let assertion = signer.sign(identity, &audience, config.phase, now);
        if let Some(assertion) = assertion.await {
            with_assertion = identity_headers.to_string();
            crate::packed_headers::push(&mut with_assertion, "x-auth-assertion", &assertion);
            identity_headers = &with_assertion;
        }
    }
    let pending = proxy::forward(&req, &inbound, config, identity_headers);
    let source = identity.source;
    if !crate::inject::may_inject(config, source) {
        return Reply::Origin(pending);
    }
    let response: web_sys::Response = match wasm_bindgen_futures::JsFuture::from(pending).await {
        Ok(response) => response.unchecked_into(),
        // `proxy::forward` resolves failures to a 502; a rejection cannot happen.
        Err(_) => crate::respond::plain(502, "Bad Gateway: the origin could not be reached\n"),
    };
    Reply::Response(crate::inject::maybe_inject(
        response,
        config,
        source,
        inbound.method,
    ))
}

/// Asked by the JS entry (`src/proxy.js` `forwardOnPlan`) about a request it would forward on
/// the worker's plan but for its cookies (no `Authorization`, a plain URL, no remembered
/// session, and one of the plan's cookie marks in its `Cookie` header): whether this worker
/// would give it that very forward, the anonymous one. So it would when no cookie is one the
/// resolver reads (`identity::no_session`) and none carries a handshake back; the plan itself
/// stands only where an anonymous request gets nothing but the forward (`fast_path::plan`).
/// `false` (the worker takes it) before any request built this isolate's state, or without a
/// plan.
#[wasm_bindgen(js_name = cookiesHoldNoSession)]
pub fn cookies_hold_no_session(cookie: &str) -> bool {
    Isolate::built().is_some_and(|isolate| {
        isolate.forward_plan.is_some()
            && !cookie.contains(handshake::HANDSHAKE_PARAM)
            && isolate.session_cookie_names.none_in(cookie)
    })
}

/// Runs a rarely taken branch (the bridge's own routes, a handshake's return) as a boxed future:
/// its states are polled through one dynamic call instead of being inlined into `handle`'s state
/// machine, which keeps that machine (and the code every proxied request runs) small.
fn out_of_line<'a, T>(
    future: impl std::future::Future<Output = T> + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>> {
    Box::pin(future)
}

/// Whether the request has nothing an identity could come from, so that resolving would only
/// conclude "anonymous": no cookie, no `Authorization`, and no Clerk development instance (whose
/// cookieless page loads get the dev-browser handshake).
fn carries_no_identity(inbound: &InboundRequest<'_>, isolate: &Isolate) -> bool {
    inbound.cookie.is_none()
        && inbound.authorization.is_none()
        && isolate
            .identity
            .clerk()
            .is_none_or(|clerk| !clerk.publishable_key.is_development())
}

/// Whether every request with this request's cookies, whose URL the plan takes (see
/// `fast_path`), gets nothing but the forward with its identity: no injection into the answer,
/// and no handshake to resolve from its cookies.
fn forward_only(inbound: &InboundRequest<'_>, isolate: &Isolate, identity: &Identity) -> bool {
    !crate::inject::may_inject(&isolate.config, identity.source)
        && !inbound
            .cookie
            .is_some_and(|c| c.contains(handshake::HANDSHAKE_PARAM))
}

/// Whether the request may carry a handshake result back from Clerk (a necessary condition of
/// [`handshake::resolve`], checked on the raw request so ordinary requests skip it): Clerk is
/// configured, the method is `GET`/`HEAD`, and the handshake parameter's name appears in the query
/// (or the query is percent-encoded) or in the cookies.
fn may_return_from_handshake(inbound: &InboundRequest<'_>, isolate: &Isolate) -> bool {
    isolate.identity.clerk().is_some()
        && matches!(inbound.method, "GET" | "HEAD")
        && (inbound
            .query()
            .is_some_and(|q| q.contains(handshake::HANDSHAKE_PARAM) || q.contains('%'))
            || inbound
                .cookie
                .is_some_and(|c| c.contains(handshake::HANDSHAKE_PARAM)))
}

/// Cron Trigger: the batch pacer.
pub async fn tick(scheduled_time: f64, env: Env) {
    crate::batch::tick::tick(scheduled_time, &env).await;
}

/// Queue consumers for `auth-bridge-import` and its dead-letter queue.
pub async fn consume(batch: MessageBatch<serde_json::Value>, env: Env) {
    crate::batch::consume::consume(batch, &env).await;
}
