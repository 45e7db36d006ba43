//! Everything built once per isolate: the configuration, the identity resolver (derived NextAuth
//! keys, parsed Clerk keys), the assertion signer. Workers reuse an isolate for many requests,
//! so none of this is paid per request.

use std::cell::OnceCell;
use std::rc::Rc;

use worker::kv::KvStore;
use worker::{console_error, Env, Queue};

use crate::config::Config;
use crate::identity::assertion::AssertionSigner;
use crate::identity::resolver::IdentityResolver;

/// Name of the KV binding (wrangler.toml).
pub const KV_BINDING: &str = "AUTH_BRIDGE_KV";
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

    fn build(env: &Env) -> Isolate {
        let config = Config::from_lookup(|name| {
            env.var(name)
                .ok()
                .map(|v| v.to_string())
                .or_else(|| env.secret(name).ok().map(|v| v.to_string()))
        });
        let mut problems: Vec<String> = config.problems.iter().map(|p| p.to_string()).collect();
        let kv = kv(env);
        if kv.is_none() {
            problems.push(format!(
                "{KV_BINDING}: KV binding missing; migration state cannot be kept"
            ));
        }
        let identity = IdentityResolver::new(&config, kv.clone(), &mut problems);
        let assertion = AssertionSigner::from_config(&config, &mut problems);
        for problem in &problems {
            console_error!("auth-bridge config: {problem}");
        }
        Isolate {
            origin_base: config.origin_url.as_ref().map(|o| o.join("")),
            config,
            identity,
            assertion,
            kv,
            import_queue: env.queue(QUEUE_BINDING).ok(),
            problems,
        }
    }
}

/// The KV namespace, when bound.
pub fn kv(env: &Env) -> Option<KvStore> {
    env.kv(KV_BINDING).ok()
}

/// A KV write of a string, handed to the runtime as that JS string.
///
/// `KvStore::put` takes any `Serialize` value and converts it with `serde_wasm_bindgen` (its
/// impl for `str` cannot be reached: `put` wants a sized value), which also links in the
/// formatting of floats for values that serialise as numbers; every put here is a string.
pub fn kv_put(
    kv: &KvStore,
    key: &str,
    value: &str,
) -> Result<worker::kv::PutOptionsBuilder, worker::kv::KvError> {
    kv.put(key, KvText(value))
}

/// A text value read from KV: `None` when the key is missing or unreadable.
pub async fn kv_get_text(kv: &KvStore, key: &str) -> Option<String> {
    kv.get(key).text().await.ok().flatten()
}

/// A JSON value read from KV ([`kv_get_text`]'s answer): `None` when the key was missing,
/// unreadable or does not parse (callers fall back to a default: a fresh state, no pause,
/// empty stats). Not async itself, so each type costs only its parser, not a future.
pub fn kv_json<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    serde_json::from_str(&text?).ok()
}

struct KvText<'a>(&'a str);

impl worker::kv::ToRawKvValue for KvText<'_> {
    fn raw_kv_value(&self) -> Result<wasm_bindgen::JsValue, worker::kv::KvError> {
        Ok(wasm_bindgen::JsValue::from_str(self.0))
    }
}

/// Unix time in seconds, from the JS clock (`SystemTime` panics on wasm32).
pub fn now_secs() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// An outgoing subrequest (no Cloudflare `cf` options), built on `web_sys` directly: worker's
/// `Request::new_with_init` converts its `CfProperties` to a JS object on every call, about 11 KB
/// of wasm for options this worker always leaves at their defaults. Redirects are followed unless
/// `manual_redirect`.
pub fn outbound_request(
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
