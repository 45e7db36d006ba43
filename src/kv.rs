//! Workers KV, as every layer uses it: the binding, string writes and text reads. A leaf: it
//! knows nothing of what is stored, so the resolver, the batch, the budget and the routes all
//! reach KV without going through the isolate's state.

use worker::kv::KvStore;
use worker::Env;

/// Name of the KV binding (wrangler.toml).
pub const BINDING: &str = "AUTH_BRIDGE_KV";

/// The KV namespace, when bound.
pub fn namespace(env: &Env) -> Option<KvStore> {
    env.kv(BINDING).ok()
}

/// A KV write of a string, handed to the runtime as that JS string.
///
/// `KvStore::put` takes any `Serialize` value and converts it with `serde_wasm_bindgen` (its
/// impl for `str` cannot be reached: `put` wants a sized value), which also links in the
/// formatting of floats for values that serialise as numbers; every put here is a string.
pub fn put(
    kv: &KvStore,
    key: &str,
    value: &str,
) -> Result<worker::kv::PutOptionsBuilder, worker::kv::KvError> {
    kv.put(key, Text(value))
}

/// A text value read from KV: `None` when the key is missing or unreadable.
pub async fn get_text(kv: &KvStore, key: &str) -> Option<String> {
    kv.get(key).text().await.ok().flatten()
}

/// A JSON value read from KV ([`get_text`]'s answer): `None` when the key was missing,
/// unreadable or does not parse (callers fall back to a default: a fresh state, no pause,
/// empty stats). Not async itself, so each type costs only its parser, not a future.
pub fn json<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    serde_json::from_str(&text?).ok()
}

struct Text<'a>(&'a str);

impl worker::kv::ToRawKvValue for Text<'_> {
    fn raw_kv_value(&self) -> Result<wasm_bindgen::JsValue, worker::kv::KvError> {
        Ok(wasm_bindgen::JsValue::from_str(self.0))
    }
}
