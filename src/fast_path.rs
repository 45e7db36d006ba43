//! Requests forwarded by the JS entry: those that can only be anonymous, and those carrying
//! cookies the worker has resolved before and whose answer still stands.
//!
//! A request with no `Authorization` and no `Via`, outside `/__auth-bridge/`, with a path a URL
//! parser would leave as it is and a query without `%` or `__clerk`, and with no `Cookie`,
//! resolves to "anonymous" and is forwarded with the same headers on every request of an
//! isolate: when the configuration allows it ([`plan`]), the worker hands `src/proxy.js` that
//! forward once, and the JS entry forwards such requests itself (`forwardOnPlan`), through the
//! same `send` as every other forward. Measured in workerd (per-request CPU against a no-op JS
//! worker, load about 4): an anonymous request 1.24-1.29x without the plan, 1.09-1.13x with it;
//! a request that enters wasm after one that did not costs about 5-15 us more (the wasm path's
//! code and memory are no longer hot), which a longer warm-up does not remove.
//!
//! The same holds with a `Cookie` none of whose cookies the worker reads (consent, analytics,
//! preferences: most anonymous page loads carry some). The plan comes with the names the
//! worker reads ([`SessionCookieNames`]): a header containing none of them, but as Clerk's
//! signed-out `__client_uat=0` pairs, is forwarded on the plan without entering wasm. Otherwise
//! the JS entry asks the worker through one synchronous export, `cookiesHoldNoSession`
//! (`crate::gateway`), and forwards on the plan when it says so (a deleted cookie, say);
//! anything else goes through the worker. Measured with `scripts/bench` (`other cold`,
//! alternating builds): 40-50 us over the anonymous request through the worker's whole path;
//! 20-26 us with the export asking the resolver's readers; 16-21 us with it scanning the
//! cookies in place against names gathered once (entering wasm and passing one string costs
//! most of the rest); 3-18 us with the names scanned in JS, within the noise of the JS
//! reference's own cost. Clerk's signed-out visitors (`signed-out cold`), which went through
//! the worker's whole path before (116-156 us), cost -7-48 us with their pairs read in JS.
//!
//! No plan when anything else could apply to such a request: signed assertions, a Clerk
//! development instance (its cookieless page loads get the dev-browser handshake), the
//! `clerk-only` phase (its sign-in redirects). The JS side stays conservative: a request it is
//! unsure of goes through the worker as before.
//!
//! Sessions ([`remember_session`]): when the same `Cookie` and `Authorization` come a second
//! time (a page's further requests) and the resolver's remembered answer stands
//! (`Recall::standing_until`: the tokens' expiry, the revocation snapshot's next read), the
//! worker hands that exact pair and its identity headers to the JS entry, which forwards
//! further such requests itself until then — only when the answer gets nothing but that
//! forward (no injection, no handshake in the cookies). What ends an answer before its time
//! forgets them all at once ([`forget_sessions`]): a revoke on this isolate, and an
//! `external_id` learned while a Clerk user's answer said "none". Measured with
//! `scripts/bench` (two runs each, the same build with and without them): a repeated
//! session's identity cost fell from 45-61 us to 13-24 us per request; a fresh token's rose by
//! up to about 10 us (its wasm path now runs colder).
//!
//! Every request forwarded on the plan is counted as the worker counts it (anonymous, or the
//! session's kind): a plan, and the sessions within it, end at the end of the convergence
//! bucket and at most [`PLAN_MS`] after it was made, and the first request the worker sees after
//! that hands the counts over (recorded in the bucket the plan was made in, where the sessions'
//! users were counted when they were handed over) and installs the next plan.

use std::cell::Cell;

use wasm_bindgen::prelude::wasm_bindgen;

use crate::config::{Config, Phase};
use crate::convergence::{self, Kind, BUCKET_SECS, FLUSH_INTERVAL_SECS};
use crate::identity::no_session::SessionCookieNames;

#[wasm_bindgen(module = "/src/proxy.js")]
extern "C" {
    /// Installs the plan (see [`plan`]), ending at `until` (ms), with the marks of a `Cookie`
    /// header the worker is asked about and those a signed-out visitor carries as `0`
    /// ([`SessionCookieNames`]).
    #[wasm_bindgen(js_name = installForwardPlan)]
    fn install_forward_plan(plan: &str, until: f64, cookie_marks: &str, signed_out_marks: &str);

    /// The number of requests forwarded on the plan since the last call.
    #[wasm_bindgen(js_name = takeForwardedOnPlan)]
    fn take_forwarded_on_plan() -> f64;

    /// Remembers a session for the plan's life (see [`remember_session`]).
    #[wasm_bindgen(js_name = rememberSession)]
    fn remember_session_js(
        cookie: Option<&str>,
        authorization: Option<&str>,
        identity_headers: &str,
        until: f64,
        kind: u32,
    );

    /// Forgets every remembered session.
    #[wasm_bindgen(js_name = forgetSessions)]
    fn forget_sessions_js();

    /// Requests forwarded on remembered sessions since the last call, per kind (see
    /// [`session_hits`]).
    #[wasm_bindgen(js_name = takeSessionHits)]
    fn take_session_hits() -> String;
}

/// Longest life of a plan: its requests reach the convergence counts (and KV) about as soon as
/// the worker's own requests do.
pub const PLAN_MS: u64 = FLUSH_INTERVAL_SECS * 1000;

/// The forward of a request that can only be anonymous, as `src/proxy.js` `installForwardPlan`
/// takes it: `base NUL via NUL identity headers` (base: the origin's scheme, host and path
/// prefix, empty in route mode; the identity headers packed as
/// [`crate::packed_headers::push`] packs them). `None` when such a request may get more
/// than that forward (see the module documentation).
pub fn plan(config: &Config, clerk_development: bool, signs_assertions: bool) -> Option<String> {
    if signs_assertions || clerk_development || config.phase == Phase::ClerkOnly {
        return None;
    }
    let mut plan = config
        .origin_url
        .as_ref()
        .map_or(String::new(), |o| o.join(""));
    plan.push('\0');
    crate::via::push_via_with_bridge(&mut plan, None);
    plan.push('\0');
    plan.push_str(crate::identity::ANONYMOUS_IDENTITY_HEADERS);
    Some(plan)
}

/// When a plan made at `now_ms` ends: at the end of its convergence bucket, at most [`PLAN_MS`]
/// later.
pub fn plan_end(now_ms: u64) -> u64 {
    let bucket_end_ms = (now_ms / 1000 / BUCKET_SECS + 1) * BUCKET_SECS * 1000;
    bucket_end_ms.min(now_ms + PLAN_MS)
}

#[derive(Clone, Copy)]
struct Installed {
    /// When it was made (unix seconds): the bucket its requests are counted in.
    made: u64,
    /// When it ends (unix ms).
    until: u64,
}

thread_local! {
    static INSTALLED: Cell<Option<Installed>> = const { Cell::new(None) };
}

/// Called on every request the worker sees: once the installed plan has ended (or none was
/// installed in this instance), counts the requests forwarded on it and installs the next one,
/// with the marks of the cookies the worker reads (`cookie_names`).
pub fn keep_current(plan: Option<&str>, cookie_names: &SessionCookieNames, now_ms: u64) {
    let Some(plan) = plan else {
        return;
    };
    let installed = INSTALLED.get();
    if installed.is_some_and(|p| now_ms < p.until) {
        return;
    }
    let now = now_ms / 1000;
    let made = installed.map_or(now, |p| p.made);
    let forwarded = take_forwarded_on_plan() as u64;
    if forwarded > 0 {
        convergence::kv::record_forwarded(Kind::Anonymous, forwarded, made);
    }
    if installed.is_some() {
        for (kind, count) in session_hits(&take_session_hits()) {
            convergence::kv::record_forwarded(kind, count, made);
        }
    }
    let until = plan_end(now_ms);
    install_forward_plan(
        plan,
        until as f64,
        cookie_names.marks(),
        cookie_names.signed_out_marks(),
    );
    INSTALLED.set(Some(Installed { made: now, until }));
}

/// The convergence kinds in the order `src/proxy.js` counts them.
const SESSION_KINDS: [Kind; 4] = [
    Kind::NextAuthOnly,
    Kind::ClerkOnly,
    Kind::Both,
    Kind::Anonymous,
];

/// Hands `src/proxy.js` an answer the worker resolved for a request carrying a session (or
/// other cookies): further requests with exactly this `Cookie` and `Authorization` that the
/// plan could take are forwarded with `identity_headers` (packed as
/// [`crate::packed_headers::push`] packs them) without entering wasm, and counted as `kind`,
/// until `until_ms` and the plan's end, whichever comes first. The caller vouches that the
/// answer stands until then and that such a request gets nothing but that forward. Nothing
/// without a plan: the next plan starts with no sessions.
pub fn remember_session(
    cookie: Option<&str>,
    authorization: Option<&str>,
    identity_headers: &str,
    until_ms: u64,
    kind: Kind,
) {
    let Some(installed) = INSTALLED.get() else {
        return;
    };
    let until = until_ms.min(installed.until);
    let index = SESSION_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
    remember_session_js(
        cookie,
        authorization,
        identity_headers,
        until as f64,
        index as u32,
    );
}

/// Forgets every session handed to `src/proxy.js`: an answer changed before its time (a revoke
/// or its lifting on this isolate, an `external_id` learned).
pub fn forget_sessions() {
    forget_sessions_js();
}

/// `takeSessionHits`'s counts (`"n0 n1 n2 n3"`, in `SESSION_KINDS` order) as the kinds with
/// requests; anything unreadable counts nothing.
pub fn session_hits(counts: &str) -> Vec<(Kind, u64)> {
    SESSION_KINDS
        .iter()
        .zip(counts.split(' '))
        .filter_map(|(kind, n)| n.parse::<u64>().ok().filter(|n| *n > 0).map(|n| (*kind, n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_pairs(vars)
    }

    #[test]
    fn the_plan_is_the_anonymous_forward() {
        let origin = config(&[("ORIGIN_URL", "http://127.0.0.1:9000/app/")]);
        assert_eq!(
            plan(&origin, false, false).as_deref(),
            Some("http://127.0.0.1:9000/app\x001.1 auth-bridge\0x-auth-source\0anonymous")
        );
        // Route mode: no base, the request's own URL.
        assert_eq!(
            plan(&config(&[]), false, false).as_deref(),
            Some("\x001.1 auth-bridge\0x-auth-source\0anonymous")
        );
    }

    #[test]
    fn no_plan_when_a_cookieless_request_may_get_more() {
        let origin = config(&[("ORIGIN_URL", "http://127.0.0.1:9000")]);
        assert!(plan(&origin, true, false).is_none(), "Clerk development");
        assert!(plan(&origin, false, true).is_none(), "signed assertions");
        let clerk_only = config(&[
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("MIGRATION_PHASE", "clerk-only"),
        ]);
        assert!(plan(&clerk_only, false, false).is_none(), "clerk-only");
        for phase in ["observe", "migrate"] {
            let c = config(&[("ORIGIN_URL", "http://x"), ("MIGRATION_PHASE", phase)]);
            assert!(plan(&c, false, false).is_some(), "{phase}");
        }
    }

    #[test]
    fn session_hits_are_read_in_the_order_proxy_js_counts_them() {
        assert_eq!(
            session_hits("3 0 2 5"),
            vec![
                (Kind::NextAuthOnly, 3),
                (Kind::Both, 2),
                (Kind::Anonymous, 5)
            ]
        );
        assert_eq!(session_hits("0 7"), vec![(Kind::ClerkOnly, 7)]);
        assert!(session_hits("").is_empty());
        assert!(session_hits("x -1 1.5 0").is_empty());
    }

    #[test]
    fn a_plan_ends_within_its_bucket_and_its_flush_interval() {
        let bucket_ms = BUCKET_SECS * 1000;
        let start = 1_700_000_400 / BUCKET_SECS * bucket_ms;
        assert_eq!(plan_end(start), start + PLAN_MS);
        assert_eq!(plan_end(start + bucket_ms - 1_000), start + bucket_ms);
        assert_eq!(plan_end(start + bucket_ms - 1), start + bucket_ms);
        for at in [
            start,
            start + 1,
            start + bucket_ms / 2,
            start + bucket_ms - 1,
        ] {
            let end = plan_end(at);
            assert!(
                end > at && end <= start + bucket_ms && end <= at + PLAN_MS,
                "{at}"
            );
        }
    }
}
