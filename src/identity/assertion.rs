//! `x-auth-assertion`: a short-lived compact JWS over the identity headers, so the origin can
//! prove they came from this worker and not from a client that found a way around it.
//!
//! Two ways to sign, the key winning when both are configured:
//! - ES256 with `AUTH_BRIDGE_ASSERTION_KEY` (PKCS#8 PEM, P-256), through WebCrypto; the header
//!   carries `kid`, the RFC 7638 thumbprint of the public key, and `GET /__auth-bridge/jwks.json`
//!   serves the public keys (current, and `AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS` during a
//!   rotation), so the origin verifies without holding any secret;
//! - HS256 with `AUTH_BRIDGE_ASSERTION_SECRET`, a secret shared with the origin.
//!
//! Claims: `iss` = `auth-bridge`, `aud` = the origin's host, `sub` (= `x-auth-user-id`),
//! `clerk_user_id` and `legacy_user_id` when known, `source`, `phase`, `iat`, `exp` = `iat` +
//! 60 s, plus the other headers' facts (`user_id`, `email`, `session_id`, `session_status`).
//!
//! Cost: one ECDSA P-256 signature per forwarded request, native code in workerd. Measured with
//! `scripts/assertion-cost.mjs`, it is within the noise of a request through Miniflare (p50 of
//! a request with a new session: 1.81 ms ES256, 1.72 ms HS256, 1.77 ms without an assertion),
//! so every assertion is signed fresh rather than reused.
//!
//! The pure part (claims, header, PEM checks, JWK and `kid`) is tested on the host; the
//! WebCrypto glue imports each key once per isolate. A key WebCrypto refuses is a
//! configuration problem (in the admin status), never a 500: the worker falls back to HS256
//! when a secret is set, else forwards without an assertion (which the origin must refuse).

use std::cell::RefCell;
use std::rc::Rc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Identity, Source};
use crate::config::{Config, Phase};

/// Issuer claim of every assertion.
pub const ISSUER: &str = "auth-bridge";
/// Lifetime of an assertion: long enough for the origin to read it, too short to replay.
pub const LIFETIME_SECS: u64 = 60;

/// The claims of an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub aud: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub: Option<String>,
    pub source: String,
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub clerk_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub legacy_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_status: Option<String>,
    pub iat: u64,
    pub exp: u64,
}

/// The audience in route mode (no `ORIGIN_URL`): the request's host as its `Host` header
/// carries it, a non-default port included — the same form the host of `ORIGIN_URL` takes, and
/// what an origin compares `aud` with.
pub fn request_audience(url: &worker::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// The claims for `identity`, addressed to `audience` (the origin's host), at `now`.
pub fn claims_for(identity: &Identity, audience: &str, phase: Phase, now: u64) -> AssertionClaims {
    // The legacy id is known for NextAuth sessions, and for Clerk users whose app id is not
    // their Clerk id (migrated users, forwarded with their legacy id).
    let legacy_user_id = match identity.source {
        Source::NextAuth => identity.user_id.clone(),
        Source::Clerk => identity
            .user_id
            .clone()
            .filter(|id| Some(id) != identity.clerk_user_id.as_ref()),
        Source::Anonymous => None,
    };
    AssertionClaims {
        iss: ISSUER.to_string(),
        aud: audience.to_string(),
        sub: identity.user_id.clone(),
        source: identity.source.as_str().to_string(),
        phase: phase.as_str().to_string(),
        user_id: identity.user_id.clone(),
        clerk_user_id: identity.clerk_user_id.clone(),
        legacy_user_id,
        email: identity.email.clone(),
        session_id: identity.session_id.clone(),
        session_status: identity.session_status.clone(),
        iat: now,
        exp: now + LIFETIME_SECS,
    }
}

/// `base64url(header).base64url(claims)`, the bytes a JWS signature covers.
pub fn signing_input(header: &Value, claims: &AssertionClaims) -> String {
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

pub fn hs256_header() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

pub fn es256_header(kid: &str) -> Value {
    json!({"alg": "ES256", "kid": kid, "typ": "JWT"})
}

/// A complete HS256 assertion.
pub fn sign_hs256(secret: &[u8], claims: &AssertionClaims) -> String {
    let input = signing_input(&hs256_header(), claims);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// What kind of PEM a key setting holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `-----BEGIN PRIVATE KEY-----` (WebCrypto's `pkcs8`).
    Pkcs8,
    /// `-----BEGIN PUBLIC KEY-----` (WebCrypto's `spki`), accepted for the previous key only.
    Spki,
}

impl KeyFormat {
    pub fn webcrypto_name(self) -> &'static str {
        match self {
            KeyFormat::Pkcs8 => "pkcs8",
            KeyFormat::Spki => "spki",
        }
    }
}

/// ecPublicKey (1.2.840.10045.2.1) and prime256v1 / P-256 (1.2.840.10045.3.1.7), DER-encoded.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Decodes a PEM key and checks it is a P-256 key of an accepted kind. The error names the
/// problem, never the key. WebCrypto does the full parse; this catches the common mistakes
/// (another curve, an RSA key, a SEC1 `EC PRIVATE KEY`, a truncated paste) before any request.
pub fn parse_pem(pem: &str, accept_public: bool) -> Result<(KeyFormat, Vec<u8>), String> {
    // Secrets pasted through a dashboard sometimes arrive with literal `\n`.
    let pem = pem.trim().replace("\\n", "\n");
    if pem.contains("BEGIN EC PRIVATE KEY") {
        return Err(
            "a SEC1 EC PRIVATE KEY; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)".into(),
        );
    }
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        return Err("an encrypted private key; give the unencrypted PKCS#8 PEM".into());
    }
    let (format, label) = if pem.contains("-----BEGIN PRIVATE KEY-----") {
        (KeyFormat::Pkcs8, "PRIVATE KEY")
    } else if accept_public && pem.contains("-----BEGIN PUBLIC KEY-----") {
        (KeyFormat::Spki, "PUBLIC KEY")
    } else if accept_public {
        return Err(
            "not a PEM key (-----BEGIN PRIVATE KEY----- or -----BEGIN PUBLIC KEY-----)".into(),
        );
    } else {
        return Err("not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)".into());
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or("the PEM has no END line")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| "the PEM body is not valid base64".to_string())?;
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    if der.first() != Some(&0x30) || !contains(OID_EC_PUBLIC_KEY) {
        return Err("not an elliptic-curve key (ES256 needs a P-256 key)".into());
    }
    if !contains(OID_P256) {
        return Err("an elliptic-curve key on another curve (ES256 needs P-256)".into());
    }
    Ok((format, der))
}

/// A P-256 public key as a JWK's coordinates (base64url, 32 bytes each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcPublicJwk {
    pub x: String,
    pub y: String,
}

impl EcPublicJwk {
    /// Checks the coordinates WebCrypto exported.
    pub fn new(x: &str, y: &str) -> Option<EcPublicJwk> {
        let ok = |c: &str| URL_SAFE_NO_PAD.decode(c).is_ok_and(|b| b.len() == 32);
        (ok(x) && ok(y)).then(|| EcPublicJwk {
            x: x.to_string(),
            y: y.to_string(),
        })
    }

    /// RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order, no spaces.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.x, self.y
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The public JWK as `jwks.json` lists it.
    pub fn to_json(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.thumbprint(),
            "alg": "ES256",
            "use": "sig",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Glue: the signer built once per isolate, WebCrypto for ES256.
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// Problems found after start (WebCrypto refused a key), for the admin status.
    static RUNTIME_PROBLEMS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Configuration problems found while importing keys (none until the first import).
pub fn runtime_problems() -> Vec<String> {
    RUNTIME_PROBLEMS.with(|p| p.borrow().clone())
}

fn report_runtime_problem(problem: String) {
    worker::console_error!("auth-bridge config: {problem}");
    RUNTIME_PROBLEMS.with(|p| {
        let mut p = p.borrow_mut();
        if !p.contains(&problem) && p.len() < 8 {
            p.push(problem);
        }
    });
}

/// The ES256 keys once imported.
struct Es256Keys {
    signing: web_sys::CryptoKey,
    kid: String,
    /// `{"keys":[current, previous?]}`.
    jwks: Value,
}

struct Es256 {
    current: Vec<u8>,
    previous: Option<(KeyFormat, Vec<u8>)>,
    /// `None` until the first use; then the keys or why they could not be imported.
    imported: RefCell<Option<Result<Rc<Es256Keys>, String>>>,
}

/// Signs assertions; built once per isolate.
pub struct AssertionSigner {
    es256: Option<Es256>,
    hs256: Option<Vec<u8>>,
}

impl AssertionSigner {
    /// The signer the configuration asks for, if any. PEM mistakes become problems here.
    pub fn from_config(config: &Config, problems: &mut Vec<String>) -> Option<AssertionSigner> {
        let hs256 = config
            .assertion_secret
            .as_ref()
            .map(|s| s.as_bytes().to_vec());
        let es256 = config.assertion_key.as_deref().and_then(|pem| {
            let current = match parse_pem(pem, false) {
                Ok((_, der)) => der,
                Err(why) => {
                    problems.push(format!(
                        "AUTH_BRIDGE_ASSERTION_KEY: {why}{}",
                        fallback(&hs256)
                    ));
                    return None;
                }
            };
            let previous =
                config.assertion_key_previous.as_deref().and_then(|pem| {
                    match parse_pem(pem, true) {
                        Ok(previous) => Some(previous),
                        Err(why) => {
                            problems.push(format!(
                            "AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS: {why}; not listed in jwks.json"
                        ));
                            None
                        }
                    }
                });
            Some(Es256 {
                current,
                previous,
                imported: RefCell::new(None),
            })
        });
        (es256.is_some() || hs256.is_some()).then_some(AssertionSigner { es256, hs256 })
    }

    /// An HS256-only signer (tests, and callers that only have a secret).
    pub fn hs256(secret: &str) -> AssertionSigner {
        AssertionSigner {
            es256: None,
            hs256: Some(secret.as_bytes().to_vec()),
        }
    }

    /// The assertion for `identity`; `None` when no usable key is left.
    pub async fn sign(
        &self,
        identity: &Identity,
        audience: &str,
        phase: Phase,
        now: u64,
    ) -> Option<String> {
        if let Some(es256) = &self.es256 {
            if let Some(token) = es256.sign(identity, audience, phase, now).await {
                return Some(token);
            }
        }
        let secret = self.hs256.as_deref()?;
        Some(sign_hs256(
            secret,
            &claims_for(identity, audience, phase, now),
        ))
    }

    /// `{"keys":[…]}` for `jwks.json`: `Ok(None)` when ES256 is not configured, `Err` when
    /// the key is configured but unusable.
    pub async fn jwks(&self) -> Result<Option<Value>, String> {
        match &self.es256 {
            None => Ok(None),
            Some(es256) => es256.keys().await.map(|k| Some(k.jwks.clone())),
        }
    }
}

fn fallback(hs256: &Option<Vec<u8>>) -> &'static str {
    if hs256.is_some() {
        "; signing with AUTH_BRIDGE_ASSERTION_SECRET (HS256) instead"
    } else {
        "; x-auth-assertion is not sent"
    }
}

impl Es256 {
    async fn sign(
        &self,
        identity: &Identity,
        audience: &str,
        phase: Phase,
        now: u64,
    ) -> Option<String> {
        let keys = self.keys().await.ok()?;
        let claims = claims_for(identity, audience, phase, now);
        let input = signing_input(&es256_header(&keys.kid), &claims);
        let signature = match webcrypto_sign(&keys.signing, input.as_bytes()).await {
            Ok(s) => s,
            Err(why) => {
                worker::console_error!("auth-bridge: ES256 signing failed: {why}");
                return None;
            }
        };
        Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The imported keys, importing them on first use (a refusal is remembered, not retried).
    async fn keys(&self) -> Result<Rc<Es256Keys>, String> {
        if let Some(known) = self.imported.borrow().as_ref() {
            return known.clone();
        }
        let result = self.import().await.map(Rc::new);
        if let Err(why) = &result {
            report_runtime_problem(format!("AUTH_BRIDGE_ASSERTION_KEY: {why}"));
        }
        *self.imported.borrow_mut() = Some(result.clone());
        result
    }

    async fn import(&self) -> Result<Es256Keys, String> {
        let (signing, current) = webcrypto_import(KeyFormat::Pkcs8, &self.current)
            .await
            .map_err(|_| {
                "WebCrypto refused the key (is it a P-256 PKCS#8 private key?)".to_string()
            })?;
        let mut keys = vec![current.to_json()];
        if let Some((format, der)) = &self.previous {
            match webcrypto_import(*format, der).await {
                Ok((_, previous)) if previous != current => keys.push(previous.to_json()),
                Ok(_) => {}
                Err(_) => report_runtime_problem(
                    "AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS: WebCrypto refused the key; not listed in jwks.json".into(),
                ),
            }
        }
        Ok(Es256Keys {
            signing,
            kid: current.thumbprint(),
            jwks: json!({ "keys": keys }),
        })
    }
}

fn ecdsa_params(with_curve: bool) -> Result<js_sys::Object, String> {
    let set = |o: &js_sys::Object, k: &str, v: &str| {
        js_sys::Reflect::set(o, &k.into(), &v.into())
            .map(|_| ())
            .map_err(|_| "cannot build WebCrypto parameters".to_string())
    };
    let params = js_sys::Object::new();
    set(&params, "name", "ECDSA")?;
    if with_curve {
        set(&params, "namedCurve", "P-256")?;
    } else {
        set(&params, "hash", "SHA-256")?;
    }
    Ok(params)
}

/// Imports a key (extractable, so its public coordinates can be exported for the JWKS) and
/// returns it with its public JWK.
async fn webcrypto_import(
    format: KeyFormat,
    der: &[u8],
) -> Result<(web_sys::CryptoKey, EcPublicJwk), String> {
    use wasm_bindgen::JsCast;
    let subtle = super::webcrypto::subtle().map_err(|e| e.to_string())?;
    let usage = match format {
        KeyFormat::Pkcs8 => "sign",
        KeyFormat::Spki => "verify",
    };
    let data = js_sys::Uint8Array::from(der);
    let promise = subtle
        .import_key_with_object(
            format.webcrypto_name(),
            &data,
            &ecdsa_params(true)?,
            true,
            &js_sys::Array::of1(&usage.into()),
        )
        .map_err(|_| "importKey threw".to_string())?;
    let key: web_sys::CryptoKey = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|_| "importKey refused the key".to_string())?
        .unchecked_into();
    let exported = subtle
        .export_key("jwk", &key)
        .map_err(|_| "exportKey threw".to_string())?;
    let jwk = wasm_bindgen_futures::JsFuture::from(exported)
        .await
        .map_err(|_| "exportKey failed".to_string())?;
    let coordinate = |name: &str| {
        js_sys::Reflect::get(&jwk, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let public = EcPublicJwk::new(&coordinate("x"), &coordinate("y"))
        .ok_or("the exported key has no P-256 coordinates")?;
    Ok((key, public))
}

/// ECDSA P-256 / SHA-256; WebCrypto returns `r ‖ s` (64 bytes), which is JWS's encoding.
async fn webcrypto_sign(key: &web_sys::CryptoKey, input: &[u8]) -> Result<Vec<u8>, String> {
    let subtle = super::webcrypto::subtle().map_err(|e| e.to_string())?;
    let promise = subtle
        .sign_with_object_and_u8_array(&ecdsa_params(false)?, key, input)
        .map_err(|_| "sign threw".to_string())?;
    let signature = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|_| "sign failed".to_string())?;
    let bytes = js_sys::Uint8Array::new(&signature).to_vec();
    if bytes.len() != 64 {
        return Err(format!("unexpected signature length {}", bytes.len()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};
    use jwt_compact::alg::{Hs256, Hs256Key};
    use jwt_compact::{AlgorithmExt, TimeOptions, UntrustedToken, ValidationError};

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn route_mode_audience_keeps_a_non_default_port_like_the_host_header() {
        let aud = |u: &str| request_audience(&worker::Url::parse(u).unwrap());
        assert_eq!(
            aud("http://127.0.0.1:8787/x?y=1").as_deref(),
            Some("127.0.0.1:8787")
        );
        assert_eq!(
            aud("https://app.example.com/").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(
            aud("https://app.example.com:443/").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(aud("http://[::1]:3000/").as_deref(), Some("[::1]:3000"));
    }

    fn nextauth() -> Identity {
        Identity {
            source: Source::NextAuth,
            user_id: Some("legacy-42".into()),
            clerk_user_id: None,
            email: Some("ada@example.com".into()),
            session_id: None,
            session_status: None,
        }
    }

    /// What the test reads back: the claims besides the times, which jwt-compact keeps apart.
    #[derive(Debug, Clone, Deserialize)]
    struct Facts {
        iss: String,
        aud: String,
        sub: Option<String>,
        source: String,
        phase: String,
        user_id: Option<String>,
        clerk_user_id: Option<String>,
        legacy_user_id: Option<String>,
        email: Option<String>,
    }

    /// Verifies with jwt-compact (an independent HS256 implementation): `(facts, iat, exp)`.
    fn verify_hs256(
        token: &str,
        secret: &str,
        now: u64,
    ) -> Result<(Facts, u64, u64), ValidationError> {
        let untrusted = UntrustedToken::new(token).expect("compact JWS");
        let at = Utc.timestamp_opt(now as i64, 0).unwrap();
        let options = TimeOptions::new(Duration::zero(), move || at);
        let token = Hs256
            .validator::<Facts>(&Hs256Key::new(secret.as_bytes()))
            .validate(&untrusted)?;
        let claims = token.claims();
        claims.validate_expiration(&options)?;
        let iat = claims.issued_at.expect("iat").timestamp() as u64;
        let exp = claims.expiration.expect("exp").timestamp() as u64;
        Ok((claims.custom.clone(), iat, exp))
    }

    #[test]
    fn hs256_assertion_carries_the_identity_and_expires_in_60_seconds() {
        let claims = claims_for(&nextauth(), "app.example.com", Phase::Migrate, NOW);
        let token = sign_hs256(b"origin-shared-secret", &claims);
        let (got, iat, exp) = verify_hs256(&token, "origin-shared-secret", NOW).unwrap();
        assert_eq!(got.aud, "app.example.com");
        assert_eq!(got.iss, ISSUER);
        assert_eq!(got.source, "nextauth");
        assert_eq!(got.phase, "migrate");
        assert_eq!(got.sub.as_deref(), Some("legacy-42"));
        assert_eq!(got.legacy_user_id.as_deref(), Some("legacy-42"));
        assert_eq!(got.user_id.as_deref(), Some("legacy-42"));
        assert_eq!(got.email.as_deref(), Some("ada@example.com"));
        assert_eq!(got.clerk_user_id, None);
        assert_eq!((iat, exp - iat), (NOW, 60));
        assert_eq!(UntrustedToken::new(&token).unwrap().algorithm(), "HS256");
    }

    #[test]
    fn hs256_fails_with_another_secret_or_after_expiry() {
        let claims = claims_for(&nextauth(), "app.example.com", Phase::Migrate, NOW);
        let token = sign_hs256(b"origin-shared-secret", &claims);
        assert!(verify_hs256(&token, "another-secret", NOW).is_err());
        assert!(matches!(
            verify_hs256(&token, "origin-shared-secret", NOW + 61),
            Err(ValidationError::Expired)
        ));
    }

    #[test]
    fn legacy_user_id_only_when_the_app_id_is_a_legacy_id() {
        let migrated = Identity {
            source: Source::Clerk,
            user_id: Some("legacy-7".into()),
            clerk_user_id: Some("user_2abc".into()),
            email: None,
            session_id: Some("sess_1".into()),
            session_status: Some("active".into()),
        };
        let c = claims_for(&migrated, "h", Phase::ClerkOnly, NOW);
        assert_eq!(c.sub.as_deref(), Some("legacy-7"));
        assert_eq!(c.legacy_user_id.as_deref(), Some("legacy-7"));
        assert_eq!(c.clerk_user_id.as_deref(), Some("user_2abc"));
        assert_eq!(c.phase, "clerk-only");
        let born_in_clerk = Identity {
            user_id: Some("user_2abc".into()),
            ..migrated
        };
        let c = claims_for(&born_in_clerk, "h", Phase::Migrate, NOW);
        assert_eq!(c.sub.as_deref(), Some("user_2abc"));
        assert_eq!(c.legacy_user_id, None);
    }

    #[test]
    fn absent_facts_are_absent_claims() {
        let claims = claims_for(&Identity::anonymous(), "h", Phase::Observe, NOW);
        let token = sign_hs256(b"k", &claims);
        let payload = token.split('.').nth(1).unwrap();
        let json = URL_SAFE_NO_PAD.decode(payload).unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["aud", "exp", "iat", "iss", "phase", "source"]);
    }

    #[test]
    fn es256_header_carries_the_kid() {
        let input = signing_input(
            &es256_header("abc"),
            &claims_for(&nextauth(), "h", Phase::Migrate, NOW),
        );
        let header = input.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": "abc", "typ": "JWT"}));
    }

    // A P-256 key made with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    // (test material only); its x/y and RFC 7638 thumbprint as `jose` computes them.
    pub const TEST_PKCS8: &str = include_str!("../../tests/fixtures/assertion-es256.pem");
    pub const TEST_SPKI: &str = include_str!("../../tests/fixtures/assertion-es256.pub.pem");
    const TEST_X: &str = include_str!("../../tests/fixtures/assertion-es256.x");
    const TEST_Y: &str = include_str!("../../tests/fixtures/assertion-es256.y");
    const TEST_KID: &str = include_str!("../../tests/fixtures/assertion-es256.kid");

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        let jwk = EcPublicJwk::new(TEST_X.trim(), TEST_Y.trim()).unwrap();
        assert_eq!(jwk.thumbprint(), TEST_KID.trim());
        let listed = jwk.to_json();
        assert_eq!(listed["kid"], TEST_KID.trim());
        assert_eq!(listed["kty"], "EC");
        assert_eq!(listed["crv"], "P-256");
        assert_eq!(listed["alg"], "ES256");
        assert!(listed.get("d").is_none(), "a public JWK never carries d");
        assert_eq!(EcPublicJwk::new("short", TEST_Y.trim()), None);
    }

    #[test]
    fn pem_keys_are_checked_before_use() {
        assert_eq!(parse_pem(TEST_PKCS8, false).unwrap().0, KeyFormat::Pkcs8);
        assert_eq!(
            parse_pem(&TEST_PKCS8.replace('\n', "\\n"), false)
                .unwrap()
                .0,
            KeyFormat::Pkcs8
        );
        assert_eq!(parse_pem(TEST_SPKI, true).unwrap().0, KeyFormat::Spki);
        assert!(
            parse_pem(TEST_SPKI, false).is_err(),
            "the signing key must be private"
        );
        let rsa = include_str!("../../tests/fixtures/assertion-rsa.pem");
        assert!(parse_pem(rsa, false)
            .unwrap_err()
            .contains("not an elliptic-curve key"));
        let p384 = include_str!("../../tests/fixtures/assertion-p384.pem");
        assert!(parse_pem(p384, false)
            .unwrap_err()
            .contains("another curve"));
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
        assert!(parse_pem(sec1, false).unwrap_err().contains("PKCS#8"));
        let truncated = &TEST_PKCS8[..TEST_PKCS8.len() - 30];
        assert!(parse_pem(truncated, false).is_err());
        assert!(parse_pem(
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----",
            false
        )
        .is_err());
        assert!(parse_pem("not a key", false).is_err());
        // Errors never echo the key.
        let err = parse_pem(&TEST_PKCS8.replace("PRIVATE KEY", "PRIVATE KEZ"), false).unwrap_err();
        assert!(!err.contains("MIG"), "{err}");
    }

    #[test]
    fn misconfigured_keys_are_problems_not_panics() {
        let config = Config::from_pairs;
        let mut problems = Vec::new();
        let signer = AssertionSigner::from_config(
            &config(&[
                ("AUTH_BRIDGE_ASSERTION_KEY", "garbage"),
                ("AUTH_BRIDGE_ASSERTION_SECRET", "s"),
            ]),
            &mut problems,
        )
        .expect("falls back to HS256");
        assert!(signer.es256.is_none() && signer.hs256.is_some());
        assert!(
            problems[0].starts_with("AUTH_BRIDGE_ASSERTION_KEY: "),
            "{problems:?}"
        );
        assert!(problems[0].contains("(HS256) instead"));

        let mut problems = Vec::new();
        assert!(AssertionSigner::from_config(
            &config(&[("AUTH_BRIDGE_ASSERTION_KEY", "garbage")]),
            &mut problems
        )
        .is_none());
        assert!(problems[0].contains("not sent"));

        let mut problems = Vec::new();
        let signer = AssertionSigner::from_config(
            &config(&[
                ("AUTH_BRIDGE_ASSERTION_KEY", TEST_PKCS8),
                ("AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS", "nope"),
            ]),
            &mut problems,
        )
        .unwrap();
        assert!(signer.es256.as_ref().unwrap().previous.is_none());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("AUTH_BRIDGE_ASSERTION_KEY_PREVIOUS: "));
    }
}
