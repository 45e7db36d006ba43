//! RS256 signature checks with the runtime's native crypto, far faster than RSA compiled to wasm:
//! node:crypto's synchronous `verify` when the runtime offers it (`nodejs_compat`, see
//! `rs256.js`), so a cold token awaits nothing; otherwise WebCrypto (`crypto.subtle`), whose
//! answer is a promise.
//!
//! Keys are imported once per isolate and kept in a thread-local list, found by comparing the
//! key itself (Workers isolates are single-threaded, so a thread-local is an isolate-local); a
//! cold verification is then one `verify` call. `crypto.subtle` is read from `js_sys::global()`
//! (workerd has no `window`) once per isolate.

use std::cell::{OnceCell, RefCell};

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use super::clerk::RsaPublicKey;

const RSASSA_PKCS1_V1_5: &str = "RSASSA-PKCS1-v1_5";

/// Clerk publishes one or two signing keys; the bound only guards against a runaway JWKS.
const MAX_IMPORTED_KEYS: usize = 32;

#[wasm_bindgen(module = "/src/identity/rs256.js")]
extern "C" {
    /// node:crypto's key object for JWK `n` and `e`, or `null` without node:crypto.
    #[wasm_bindgen(js_name = rs256Key)]
    fn rs256_key(n: &str, e: &str) -> JsValue;

    /// node:crypto's RSASSA-PKCS1-v1_5 / SHA-256 verify, answered at once.
    #[wasm_bindgen(js_name = rs256Verify)]
    fn rs256_verify(key: &JsValue, signature: &[u8], data: &[u8]) -> bool;
}

thread_local! {
    /// Keys made for [`verify_rs256_now`] (`null`: the runtime has no node:crypto).
    static SYNC_KEYS: RefCell<Vec<(RsaPublicKey, JsValue)>> = const { RefCell::new(Vec::new()) };
    static IMPORTED_KEYS: RefCell<Vec<(RsaPublicKey, CryptoKey)>> = const { RefCell::new(Vec::new()) };
    static SUBTLE: OnceCell<Result<SubtleCrypto, WebCryptoError>> = const { OnceCell::new() };
}

/// Why WebCrypto could not be used. Holds no key or token material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebCryptoError {
    /// `globalThis.crypto.subtle` is missing (not a Workers / browser runtime).
    Unavailable,
    /// `importKey` rejected the key.
    ImportFailed,
}

impl std::fmt::Display for WebCryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "WebCrypto (crypto.subtle) is not available",
            Self::ImportFailed => "WebCrypto refused to import the RSA public key",
        })
    }
}

impl std::error::Error for WebCryptoError {}

/// `crypto.subtle`, looked up once per isolate.
pub(crate) fn subtle() -> Result<SubtleCrypto, WebCryptoError> {
    SUBTLE.with(|cell| cell.get_or_init(look_up_subtle).clone())
}

fn look_up_subtle() -> Result<SubtleCrypto, WebCryptoError> {
    let global = js_sys::global();
    let crypto = Reflect::get(&global, &JsValue::from_str("crypto"))
        .map_err(|_| WebCryptoError::Unavailable)?;
    if !crypto.is_object() {
        return Err(WebCryptoError::Unavailable);
    }
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle"))
        .map_err(|_| WebCryptoError::Unavailable)?;
    if !subtle.is_object() {
        return Err(WebCryptoError::Unavailable);
    }
    // workerd's classes are not necessarily the ones web-sys checks `instanceof` against.
    Ok(subtle.unchecked_into())
}

fn set(target: &Object, name: &str, value: &JsValue) -> Result<(), WebCryptoError> {
    Reflect::set(target, &JsValue::from_str(name), value)
        .map(|_| ())
        .map_err(|_| WebCryptoError::ImportFailed)
}

/// The `CryptoKey` for `key`, imported on first use and then reused for the isolate's lifetime.
pub async fn import_rs256_key(key: &RsaPublicKey) -> Result<CryptoKey, WebCryptoError> {
    if let Some(imported) = IMPORTED_KEYS.with(|keys| known_key(keys, key)) {
        return Ok(imported);
    }

    let jwk = Object::new();
    set(&jwk, "kty", &JsValue::from_str("RSA"))?;
    set(&jwk, "n", &JsValue::from_str(&key.n_base64url()))?;
    set(&jwk, "e", &JsValue::from_str(&key.e_base64url()))?;
    set(&jwk, "alg", &JsValue::from_str("RS256"))?;
    set(&jwk, "ext", &JsValue::TRUE)?;

    let algorithm = Object::new();
    set(&algorithm, "name", &JsValue::from_str(RSASSA_PKCS1_V1_5))?;
    set(&algorithm, "hash", &JsValue::from_str("SHA-256"))?;

    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle()?
        .import_key_with_object("jwk", &jwk, &algorithm, false, &usages)
        .map_err(|_| WebCryptoError::ImportFailed)?;
    let imported: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|_| WebCryptoError::ImportFailed)?
        .unchecked_into();

    IMPORTED_KEYS.with(|keys| {
        if known_key(keys, key).is_none() {
            keep_key(keys, key, imported.clone());
        }
    });
    Ok(imported)
}

/// The runtime's key made earlier for `key`, if any.
fn known_key<T: Clone>(keys: &RefCell<Vec<(RsaPublicKey, T)>>, key: &RsaPublicKey) -> Option<T> {
    keys.borrow()
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, made)| made.clone())
}

/// Keeps the runtime's key made for `key`; a list grown to [`MAX_IMPORTED_KEYS`] starts over.
fn keep_key<T>(keys: &RefCell<Vec<(RsaPublicKey, T)>>, key: &RsaPublicKey, made: T) {
    let mut keys = keys.borrow_mut();
    if keys.len() >= MAX_IMPORTED_KEYS {
        keys.clear();
    }
    keys.push((key.clone(), made));
}

/// RSASSA-PKCS1-v1_5 / SHA-256 over `signing_input`, answered at once by node:crypto; `None`
/// when the runtime does not offer it (then [`verify_rs256`] answers). Any failure is `false`.
pub fn verify_rs256_now(
    key: &RsaPublicKey,
    signing_input: &[u8],
    signature: &[u8],
) -> Option<bool> {
    let sync_key = SYNC_KEYS.with(|keys| {
        known_key(keys, key).unwrap_or_else(|| {
            let made = rs256_key(&key.n_base64url(), &key.e_base64url());
            keep_key(keys, key, made.clone());
            made
        })
    });
    if sync_key.is_null() {
        return None;
    }
    Some(signature.len() == key.modulus_len() && rs256_verify(&sync_key, signature, signing_input))
}

/// RSASSA-PKCS1-v1_5 / SHA-256 over `signing_input` with WebCrypto. Any failure (bad key, wrong signature
/// length, missing WebCrypto) is `false`: a signature that cannot be checked is not valid.
pub async fn verify_rs256(key: &RsaPublicKey, signing_input: &[u8], signature: &[u8]) -> bool {
    if signature.len() != key.modulus_len() {
        return false;
    }
    let Ok(crypto_key) = import_rs256_key(key).await else {
        return false;
    };
    let Ok(subtle) = subtle() else {
        return false;
    };
    // WebCrypto copies both buffers synchronously, so views into wasm memory are fine here.
    let Ok(promise) = subtle.verify_with_str_and_u8_array_and_u8_array(
        RSASSA_PKCS1_V1_5,
        &crypto_key,
        signature,
        signing_input,
    ) else {
        return false;
    };
    matches!(JsFuture::from(promise).await, Ok(result) if result.as_bool() == Some(true))
}
