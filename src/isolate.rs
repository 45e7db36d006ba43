//! Everything built once per isolate: the configuration, the identity resolver (derived NextAuth
//! keys, parsed Clerk keys), the assertion signer. Workers reuse an isolate for many requests,
//! so none of this is paid per request.
//!
//! Only the glue reads it (the gateway, the handshake, the routes, the batch's cron and
//! consumer); the layers below get what they need passed in, and the runtime helpers they share
//! live in [`crate::kv`], [`crate::clock`] and [`crate::outbound`], so none of them imports
//! this module and imports flow one way.

use std::cell::OnceCell;
use std::rc::Rc;

use worker::kv::KvStore;
use worker::{console_error, Env, Queue};

use crate::config::Config;
use crate::identity::assertion::AssertionSigner;
use crate::identity::no_session::SessionCookieNames;
use crate::identity::resolver::IdentityResolver;

/// Name of the Queue producer binding (wrangler.toml).
pub const QUEUE_BINDING: &str = "IMPORT_QUEUE";

pub struct Isolate {
    pub config: Config,
    pub identity: IdentityResolver,
    pub assertion: Option<AssertionSigner>,
    /// The KV namespace, looked up once (the binding lives as long as the isolate).
    pub kv: Option<KvStore>,
    /// The import Queue's producer, looked up once (the cron and the queue consumer send to it).
    pub import_queue: Option<Queue>,
    /// `ORIGIN_URL` as a string (where database sessions are asked about), once.
    pub origin_base: Option<String>,
    /// The forward of requests that can only be anonymous (see `fast_path`), when allowed.
    pub forward_plan: Option<String>,
    /// The cookie names the resolver reads, for the JS entry's question about a request's
    /// cookies (`gateway::cookies_hold_no_session`).
    pub session_cookie_names: SessionCookieNames,
    /// Every configuration problem, for the log (once) and the admin status. Never holds values.
    pub problems: Vec<String>,
}

thread_local! {
    static ISOLATE: OnceCell<Rc<Isolate>> = const { OnceCell::new() };
}

impl Isolate {
    /// The isolate's state, built on first use.
    pub fn get(env: &Env) -> Rc<Isolate> {
        ISOLATE.with(|cell| cell.get_or_init(|| Rc::new(Isolate::build(env))).clone())
    }

    /// The isolate's state if a request has built it already (nothing to build it from here).
    pub fn built() -> Option<Rc<Isolate>> {
        ISOLATE.with(|cell| cell.get().cloned())
    }

    fn build(env: &Env) -> Isolate {
        let config = Config::from_lookup(|name| {
            env.var(name)
                .ok()
                .map(|v| v.to_string())
                .or_else(|| env.secret(name).ok().map(|v| v.to_string()))
        });
        let mut problems: Vec<String> = config.problems.iter().map(|p| p.to_string()).collect();
        let kv = crate::kv::namespace(env);
        if kv.is_none() {
            problems.push(format!(
                "{}: KV binding missing; migration state cannot be kept",
                crate::kv::BINDING
            ));
        }
        let identity = IdentityResolver::new(&config, kv.clone(), &mut problems);
        // Sessions handed to the JS entry whose answer stands only until an `external_id` is
        // learned go at that moment.
        identity.on_learning(crate::fast_path::forget_sessions);
        let assertion = AssertionSigner::from_config(&config, &mut problems);
        let clerk_development = identity
            .clerk()
            .is_some_and(|clerk| clerk.publishable_key.is_development());
        let forward_plan = crate::fast_path::plan(&config, clerk_development, assertion.is_some());
        for problem in &problems {
            console_error!("auth-bridge config: {problem}");
        }
        Isolate {
            origin_base: config.origin_url.as_ref().map(|o| o.join("")),
            forward_plan,
            session_cookie_names: SessionCookieNames::of(&identity),
            config,
            identity,
            assertion,
            kv,
            import_queue: env.queue(QUEUE_BINDING).ok(),
            problems,
        }
    }
}
