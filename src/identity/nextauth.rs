//! NextAuth v4 and Auth.js (v5) session cookies: encrypted JWTs (compact JWE, `alg: dir`).
//!
//! Both libraries derive the content-encryption key from the secret with HKDF-SHA256:
//! - v4 (next-auth 4): salt empty, info `NextAuth.js Generated Encryption Key`, 32 bytes,
//!   `enc: A256GCM`, no `kid`; it tries its one secret, so with several we try each in order.
//! - v5 (@auth/core): salt = cookie name, info `Auth.js Generated Encryption Key (<name>)`,
//!   64 bytes for `A256CBC-HS512` (32 for `A256GCM`), and `kid` = RFC 7638 thumbprint of the
//!   key as an `oct` JWK, hashed with SHA-(8 × key length). The `kid` picks the secret; a token
//!   without `kid` is tried with the first secret only, and an unknown `kid` fails — as
//!   @auth/core's `decode` does.
//!
//! Claims follow jose's `jwtDecrypt` as both libraries call it: the payload must be a JSON
//! object; `iat`, `nbf`, `exp` must be numbers when present; `exp` and `nbf` are checked with a
//! 15 s tolerance; none is required; `iss`/`sub`/`aud` copied into the protected header must
//! equal the payload's. We add one rule of our own: the session must carry a string `sub`
//! (the legacy user id). Compressed (`zip`) or `crit` tokens are refused: neither library
//! produces them.
//!
//! Every key is derived once, in [`NextAuthVerifier::new`]; a decode is base64, one AEAD
//! check and a small JSON parse. A session cookie comes back with every request of its user:
//! each cookie name remembers the tokens it decoded to a valid session (by their exact text,
//! until `exp` + tolerance, at most an hour), so a repeated token costs one map look-up.

use std::fmt;
use std::sync::{Arc, Mutex};

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, InnerIvInit, KeyInit};
use aes::Aes256;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::cache::ExpiringMap;
use crate::cookies::{ChunkError, Cookies};

mod claims;

use claims::{check_claims, text, ReadClaims};

/// Seconds of clock skew allowed on `exp` and `nbf` (next-auth's `clockTolerance`).
pub const CLOCK_TOLERANCE_SECS: u64 = 15;
/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Longest value taken for an opaque database-session token (real ones are UUIDs or 64 hex).
pub const MAX_DATABASE_TOKEN_LEN: usize = 1024;
/// Decoded sessions remembered per cookie name (see `CookieScheme::recall`).
const REMEMBERED_SESSIONS: usize = 1024;
/// A remembered session is decoded again after this long even when its `exp` is later.
const REMEMBER_SECS: u64 = 3600;
/// Longest protected-header segment accepted (real ones are about 150 characters).
const MAX_HEADER_SEGMENT_LEN: usize = 2048;

/// Default session cookie names, in the order they are looked for (see [`NextAuthVerifier`]).
pub const DEFAULT_COOKIE_NAMES: [&str; 4] = [
    "__Secure-authjs.session-token",
    "authjs.session-token",
    "__Secure-next-auth.session-token",
    "next-auth.session-token",
];

const V4_INFO: &str = "NextAuth.js Generated Encryption Key";
/// The protected header next-auth 4 puts on every token, `{"alg":"dir","enc":"A256GCM"}`, as
/// it appears in the token: recognised by its exact text, it is not decoded and parsed again for
/// every fresh token (it reads as `A256GCM`, no `kid`, nothing replicated).
const V4_HEADER_SEGMENT: &str = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0";

/// Which library's key scheme opened the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAuthVersion {
    /// next-auth 4: HKDF without salt, A256GCM.
    V4,
    /// Auth.js / @auth/core: HKDF salted with the cookie name, usually A256CBC-HS512.
    V5,
}

/// A valid NextAuth / Auth.js JWT session, read through its [`SessionFacts`]. A shared handle:
/// the copy a cookie name remembers (see `CookieScheme::recall`) and the one handed out are
/// the same facts, so remembering a fresh token copies no claim and no string.
#[derive(Clone, PartialEq)]
pub struct NextAuthSession(Arc<SessionFacts>);

impl std::ops::Deref for NextAuthSession {
    type Target = SessionFacts;

    fn deref(&self) -> &SessionFacts {
        &self.0
    }
}

/// What a valid session token says.
#[derive(PartialEq)]
pub struct SessionFacts {
    /// The legacy user id.
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    /// Expiry (unix seconds), when the token has one.
    pub exp: Option<u64>,
    /// `iat` as the token says it (a number), when it has one.
    pub iat: Option<f64>,
    /// The cookie it came from (the base name, without a chunk suffix).
    pub cookie_name: String,
    pub version: NextAuthVersion,
    /// The decrypted claims, a JSON object: read in full only by [`SessionFacts::claims`].
    payload: String,
}

impl SessionFacts {
    /// Every claim, app-specific ones included (parsed from the payload on each call: the
    /// request path reads only the fields above).
    pub fn claims(&self) -> Map<String, Value> {
        // The payload was parsed as a JSON object when the token was decoded.
        serde_json::from_str(&self.payload).unwrap_or_default()
    }
}

// Apps keep OAuth access tokens in these claims: Debug shows claim names only.
impl fmt::Debug for NextAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextAuthSession")
            .field("sub", &self.sub)
            .field("exp", &self.exp)
            .field("cookie_name", &self.cookie_name)
            .field("version", &self.version)
            .field("claims", &self.claims().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What the request's cookies say about a NextAuth session.
#[derive(Clone, PartialEq)]
pub enum NextAuthOutcome {
    /// No session cookie at all.
    NoCookie,
    /// A valid JWT session.
    Session(NextAuthSession),
    /// An opaque token of the `database` session strategy; only the origin can validate it.
    DatabaseSession { cookie_name: String, token: String },
    /// A session cookie is present but unusable.
    Rejected(NextAuthError),
}

impl fmt::Debug for NextAuthOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextAuthOutcome::NoCookie => f.write_str("NoCookie"),
            NextAuthOutcome::Session(s) => f.debug_tuple("Session").field(s).finish(),
            NextAuthOutcome::DatabaseSession { cookie_name, .. } => f
                .debug_struct("DatabaseSession")
                .field("cookie_name", cookie_name)
                .finish_non_exhaustive(),
            NextAuthOutcome::Rejected(e) => f.debug_tuple("Rejected").field(e).finish(),
        }
    }
}

/// Why a session token was refused. Display is a short reason without token content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAuthError {
    /// No secret is configured.
    NoSecret,
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLarge,
    /// Not five dot-separated parts (or an unusable database-session value).
    Malformed,
    /// A part is not unpadded base64url.
    BadBase64,
    /// The protected header is not a JSON object.
    BadHeader,
    /// `alg` is not `dir`.
    UnsupportedAlgorithm,
    /// `enc` is neither `A256GCM` nor `A256CBC-HS512`, or not usable with this cookie's scheme.
    UnsupportedEncryption,
    /// A `zip` header is present.
    Compressed,
    /// A `crit` header is present.
    CriticalHeader,
    /// The encrypted-key part is not empty (it must be for `alg: dir`).
    UnexpectedEncryptedKey,
    BadIvLength,
    BadTagLength,
    /// No configured secret matches the `kid`.
    NoMatchingKey,
    /// Authentication tag mismatch (wrong secret or tampered token) or bad padding.
    DecryptionFailed,
    /// The plaintext is not UTF-8.
    NotUtf8,
    /// The plaintext is not a JSON object.
    ClaimsNotObject,
    /// A claim has the wrong type (`iat`, `nbf`, `exp`).
    InvalidClaim(&'static str),
    /// An `iss`, `sub` or `aud` header parameter differs from the claim.
    HeaderClaimMismatch(&'static str),
    /// `exp` is more than the tolerance in the past.
    Expired,
    /// `nbf` is more than the tolerance in the future.
    NotYetValid,
    /// No non-empty string `sub`.
    MissingSubject,
    /// The chunked cookie could not be reassembled.
    Chunks(ChunkError),
}

impl fmt::Display for NextAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self {
            NextAuthError::NoSecret => "no NextAuth secret configured",
            NextAuthError::TooLarge => "token too large",
            NextAuthError::Malformed => "not a compact JWE",
            NextAuthError::BadBase64 => "invalid base64url",
            NextAuthError::BadHeader => "invalid protected header",
            NextAuthError::UnsupportedAlgorithm => "alg is not dir",
            NextAuthError::UnsupportedEncryption => "unsupported enc",
            NextAuthError::Compressed => "compressed tokens are not accepted",
            NextAuthError::CriticalHeader => "crit header is not accepted",
            NextAuthError::UnexpectedEncryptedKey => "unexpected encrypted key",
            NextAuthError::BadIvLength => "invalid IV length",
            NextAuthError::BadTagLength => "invalid tag length",
            NextAuthError::NoMatchingKey => "no secret matches the kid",
            NextAuthError::DecryptionFailed => "decryption failed",
            NextAuthError::NotUtf8 => "claims are not UTF-8",
            NextAuthError::ClaimsNotObject => "claims are not a JSON object",
            NextAuthError::InvalidClaim(claim) => {
                return write!(f, "claim {claim} must be a number")
            }
            NextAuthError::HeaderClaimMismatch(claim) => {
                return write!(f, "header parameter {claim} differs from the claim")
            }
            NextAuthError::Expired => "token expired",
            NextAuthError::NotYetValid => "token not yet valid",
            NextAuthError::MissingSubject => "no sub claim",
            NextAuthError::Chunks(e) => return write!(f, "{e}"),
        };
        f.write_str(reason)
    }
}

impl std::error::Error for NextAuthError {}

impl From<ChunkError> for NextAuthError {
    fn from(e: ChunkError) -> Self {
        NextAuthError::Chunks(e)
    }
}

/// The two halves of an A256CBC-HS512 key, ready to use.
#[derive(Clone)]
struct CbcHs512Key {
    /// HMAC-SHA512 keyed with the first 32 bytes (its pads already absorbed).
    mac: Hmac<Sha512>,
    /// AES-256 with the last 32 bytes.
    cipher: Aes256,
}

/// The keys one secret yields for one Auth.js cookie name.
struct V5Key {
    cbc: CbcHs512Key,
    cbc_kid: String,
    gcm: Aes256Gcm,
    gcm_kid: String,
}

/// How the tokens of one cookie name are opened.
struct CookieScheme {
    name: String,
    /// Try the v4 keys (salt-independent).
    v4: bool,
    /// v5 keys for this cookie name, one per secret in order; empty when v5 is not tried.
    v5: Vec<V5Key>,
    /// Tokens of this cookie name already decoded, by their exact text, until they must be
    /// decoded again.
    // A Mutex only so the verifier stays `Sync` (tests keep one in a static); workers are
    // single-threaded and never contend for it.
    remembered: Mutex<ExpiringMap<Box<str>, Remembered>>,
}

/// A token that decoded to a valid session.
#[derive(Clone)]
struct Remembered {
    session: NextAuthSession,
    decoded_at: u64,
}

impl CookieScheme {
    fn new(name: &str, v4: bool, v5: Vec<V5Key>) -> CookieScheme {
        CookieScheme {
            name: name.to_owned(),
            v4,
            v5,
            remembered: Mutex::new(ExpiringMap::new(REMEMBERED_SESSIONS)),
        }
    }

    /// The session a token of this cookie decoded to earlier, while the checks that depend on
    /// time would still pass: a session valid at `decoded_at` stays valid (its `nbf` is behind)
    /// until `exp` + tolerance. The same token always decodes to the same claims under the same
    /// keys, so repeating the decryption would only repeat this answer.
    fn recall(&self, token: &str, now: u64) -> Option<NextAuthSession> {
        let hit = self.remembered.lock().ok()?.get(token, now)?;
        (hit.decoded_at <= now).then_some(hit.session)
    }

    /// Remembers a token that decoded to `session` at `now`: until `exp` plus the tolerance
    /// (when the claims check would refuse it), at most [`REMEMBER_SECS`].
    fn remember(&self, token: &str, session: &NextAuthSession, now: u64) {
        let by_exp = session
            .exp
            .map_or(u64::MAX, |exp| exp.saturating_add(CLOCK_TOLERANCE_SECS));
        let until = by_exp.min(now.saturating_add(REMEMBER_SECS));
        if let Ok(mut remembered) = self.remembered.lock() {
            let decoded = Remembered {
                session: session.clone(),
                decoded_at: now,
            };
            remembered.insert(token.into(), decoded, until, now);
        }
    }
}

/// Decodes NextAuth / Auth.js session cookies. Build it once per isolate: it derives every key.
///
/// Without an override it looks, in this order, for `__Secure-authjs.session-token`,
/// `authjs.session-token`, `__Secure-next-auth.session-token`, `next-auth.session-token`, and the
/// first one present decides (no fallback to the next when it is invalid). Auth.js comes first
/// because an app that moved from v4 to v5 leaves stale v4 cookies behind in browsers, while the
/// v5 cookie is the current sign-in; `__Secure-` comes first because only a secure origin can
/// set it. Not falling back keeps us in step with the app, which reads one cookie only: a user
/// whose current cookie is invalid is signed out there, and must not be signed in here by an
/// older cookie.
///
/// With an override the one name is read with both schemes (v5 salted with that name, and v4).
pub struct NextAuthVerifier {
    v4_keys: Vec<Aes256Gcm>,
    schemes: Vec<CookieScheme>,
}

impl fmt::Debug for NextAuthVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextAuthVerifier")
            .field("secrets", &self.v4_keys.len())
            .field(
                "cookies",
                &self
                    .schemes
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &str, okm: &mut [u8]) {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info.as_bytes(), okm)
        .expect("32 and 64 bytes are valid HKDF-SHA256 output lengths");
}

/// RFC 7638 thumbprint of `key` as an `oct` JWK: the members `k`, `kty` in lexicographic order,
/// no whitespace, hashed with SHA-256 for 32-byte keys and SHA-512 for 64-byte keys.
fn oct_jwk_thumbprint(key: &[u8]) -> String {
    let jwk = format!(r#"{{"k":"{}","kty":"oct"}}"#, URL_SAFE_NO_PAD.encode(key));
    match key.len() {
        64 => URL_SAFE_NO_PAD.encode(Sha512::digest(jwk.as_bytes())),
        _ => URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes())),
    }
}

fn v4_key(secret: &str) -> Aes256Gcm {
    let mut key = [0u8; 32];
    hkdf_sha256(secret.as_bytes(), b"", V4_INFO, &mut key);
    Aes256Gcm::new((&key).into())
}

fn v5_key(secret: &str, cookie_name: &str) -> V5Key {
    let info = format!("Auth.js Generated Encryption Key ({cookie_name})");
    let mut cbc_key = [0u8; 64];
    hkdf_sha256(
        secret.as_bytes(),
        cookie_name.as_bytes(),
        &info,
        &mut cbc_key,
    );
    let mut gcm_key = [0u8; 32];
    hkdf_sha256(
        secret.as_bytes(),
        cookie_name.as_bytes(),
        &info,
        &mut gcm_key,
    );
    let (mac_key, enc_key) = cbc_key.split_at(32);
    V5Key {
        cbc: CbcHs512Key {
            mac: <Hmac<Sha512> as Mac>::new_from_slice(mac_key).expect("HMAC takes any key length"),
            cipher: Aes256::new(enc_key.into()),
        },
        cbc_kid: oct_jwk_thumbprint(&cbc_key),
        gcm: Aes256Gcm::new((&gcm_key).into()),
        gcm_kid: oct_jwk_thumbprint(&gcm_key),
    }
}

/// Content encryption of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    A256Gcm,
    A256CbcHs512,
}

/// The checked protected header.
struct Header {
    enc: Enc,
    /// `None` when absent; `Some(None)` when present but not a string (matches no key).
    kid: Option<Option<String>>,
    /// Replicated `iss` / `sub` / `aud` header parameters, to compare with the claims.
    replicated: Vec<(&'static str, Value)>,
}

fn parse_header(segment: &str) -> Result<Header, NextAuthError> {
    if segment == V4_HEADER_SEGMENT {
        return Ok(Header {
            enc: Enc::A256Gcm,
            kid: None,
            replicated: Vec::new(),
        });
    }
    parse_header_json(segment)
}

fn parse_header_json(segment: &str) -> Result<Header, NextAuthError> {
    if segment.len() > MAX_HEADER_SEGMENT_LEN {
        return Err(NextAuthError::BadHeader);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| NextAuthError::BadBase64)?;
    let mut header: Map<String, Value> =
        crate::json::from_slice(&bytes).map_err(|_| NextAuthError::BadHeader)?;
    if header.contains_key("crit") {
        return Err(NextAuthError::CriticalHeader);
    }
    if header.contains_key("zip") {
        return Err(NextAuthError::Compressed);
    }
    if header.get("alg").and_then(Value::as_str) != Some("dir") {
        return Err(NextAuthError::UnsupportedAlgorithm);
    }
    let enc = match header.get("enc").and_then(Value::as_str) {
        Some("A256GCM") => Enc::A256Gcm,
        Some("A256CBC-HS512") => Enc::A256CbcHs512,
        _ => return Err(NextAuthError::UnsupportedEncryption),
    };
    let kid = header.remove("kid").map(|kid| match kid {
        Value::String(s) => Some(s),
        _ => None,
    });
    let replicated = ["iss", "sub", "aud"]
        .into_iter()
        .filter_map(|claim| header.remove(claim).map(|value| (claim, value)))
        .collect();
    Ok(Header {
        enc,
        kid,
        replicated,
    })
}

fn decode_part(part: &str) -> Result<Vec<u8>, NextAuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| NextAuthError::BadBase64)
}

/// RFC 7518 §5.2.2.2: check the tag over AAD || IV || ciphertext || AL, then CBC-decrypt.
fn decrypt_cbc_hs512(
    key: &CbcHs512Key,
    aad: &[u8],
    iv: &[u8],
    ciphertext: &mut [u8],
    tag: &[u8],
) -> Result<usize, NextAuthError> {
    let mut mac = key.mac.clone();
    mac.update(aad);
    mac.update(iv);
    mac.update(ciphertext);
    mac.update(&((aad.len() as u64) * 8).to_be_bytes());
    let expected = mac.finalize().into_bytes();
    if !bool::from(expected[..32].ct_eq(tag)) {
        return Err(NextAuthError::DecryptionFailed);
    }
    let decryptor = cbc::Decryptor::<Aes256>::inner_iv_init(key.cipher.clone(), iv.into());
    decryptor
        .decrypt_padded_mut::<Pkcs7>(ciphertext)
        .map(|plain| plain.len())
        .map_err(|_| NextAuthError::DecryptionFailed)
}

/// Whether a non-JWE session value can be handed on as a database-session token.
fn is_database_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_DATABASE_TOKEN_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b';' && b != b'"' && b != b'\\')
}

impl NextAuthVerifier {
    /// Derives every key for `secrets` (trimmed; empty entries ignored) and the cookie names:
    /// the four defaults, or only `cookie_name_override` when given.
    pub fn new(secrets: &[String], cookie_name_override: Option<&str>) -> Self {
        let secrets: Vec<&str> = secrets
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        let v4_keys = secrets.iter().map(|s| v4_key(s)).collect();
        let v5_keys = |name: &str| secrets.iter().map(|s| v5_key(s, name)).collect::<Vec<_>>();
        let schemes = match cookie_name_override
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(name) => vec![CookieScheme::new(name, true, v5_keys(name))],
            None => DEFAULT_COOKIE_NAMES
                .iter()
                .map(|&name| {
                    let v5 = name.ends_with("authjs.session-token");
                    CookieScheme::new(name, !v5, if v5 { v5_keys(name) } else { Vec::new() })
                })
                .collect(),
        };
        NextAuthVerifier { v4_keys, schemes }
    }

    /// Whether at least one secret is configured.
    pub fn has_secrets(&self) -> bool {
        !self.v4_keys.is_empty()
    }

    /// The session cookie names this verifier reads, in precedence order.
    pub fn cookie_names(&self) -> impl Iterator<Item = &str> {
        self.schemes.iter().map(|s| s.name.as_str())
    }

    /// Finds the session cookie in the request cookies and decodes it.
    pub fn session_from_cookies(&self, cookies: &Cookies<'_>, now: u64) -> NextAuthOutcome {
        // The first name with a non-empty value decides; an empty one is a deleted cookie.
        let found =
            self.schemes
                .iter()
                .find_map(|scheme| match cookies.session_value(&scheme.name) {
                    Ok(None) => None,
                    Ok(Some(value)) => Some(Ok((scheme, value))),
                    Err(e) => Some(Err(e)),
                });
        let (scheme, value) = match found {
            None => return NextAuthOutcome::NoCookie,
            Some(Err(e)) => return NextAuthOutcome::Rejected(e.into()),
            Some(Ok(found)) => found,
        };
        if value.len() > MAX_TOKEN_LEN {
            return NextAuthOutcome::Rejected(NextAuthError::TooLarge);
        }
        if value.split('.').count() != 5 {
            return if is_database_token(&value) {
                NextAuthOutcome::DatabaseSession {
                    cookie_name: scheme.name.clone(),
                    token: value.into_owned(),
                }
            } else {
                NextAuthOutcome::Rejected(NextAuthError::Malformed)
            };
        }
        if let Some(session) = scheme.recall(&value, now) {
            return NextAuthOutcome::Session(session);
        }
        match self.decode_with(scheme, &value, now) {
            Ok(session) => {
                scheme.remember(&value, &session, now);
                NextAuthOutcome::Session(session)
            }
            Err(e) => NextAuthOutcome::Rejected(e),
        }
    }

    /// Decodes a whole (reassembled) token found in cookie `cookie_name`, which must be one of
    /// [`Self::cookie_names`] (keys are derived for those names only).
    pub fn decode(
        &self,
        cookie_name: &str,
        token: &str,
        now: u64,
    ) -> Result<NextAuthSession, NextAuthError> {
        let scheme = self
            .schemes
            .iter()
            .find(|s| s.name == cookie_name)
            .ok_or(NextAuthError::NoMatchingKey)?;
        self.decode_with(scheme, token, now)
    }

    fn decode_with(
        &self,
        scheme: &CookieScheme,
        token: &str,
        now: u64,
    ) -> Result<NextAuthSession, NextAuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(NextAuthError::TooLarge);
        }
        if !self.has_secrets() {
            return Err(NextAuthError::NoSecret);
        }
        let mut parts = token.split('.');
        let (
            Some(header_b64),
            Some(encrypted_key),
            Some(iv_b64),
            Some(ciphertext_b64),
            Some(tag_b64),
            None,
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(NextAuthError::Malformed);
        };
        let header = parse_header(header_b64)?;
        if !encrypted_key.is_empty() {
            return Err(NextAuthError::UnexpectedEncryptedKey);
        }
        let iv = decode_part(iv_b64)?;
        let mut buffer = decode_part(ciphertext_b64)?;
        let tag = decode_part(tag_b64)?;
        // The AAD is the ASCII of the header segment as sent.
        let aad = header_b64.as_bytes();

        // A v5 token names its key by kid; without one, @auth/core uses the first secret.
        let v5_key = |kid_of: fn(&V5Key) -> &str| -> Option<&V5Key> {
            match &header.kid {
                None => scheme.v5.first(),
                Some(Some(kid)) => scheme.v5.iter().find(|k| kid_of(k) == kid),
                Some(None) => None,
            }
        };

        let (plain_len, version) = match header.enc {
            Enc::A256CbcHs512 => {
                if scheme.v5.is_empty() {
                    // v4 keys are 32 bytes; A256CBC-HS512 needs 64.
                    return Err(NextAuthError::UnsupportedEncryption);
                }
                if iv.len() != 16 {
                    return Err(NextAuthError::BadIvLength);
                }
                if tag.len() != 32 {
                    return Err(NextAuthError::BadTagLength);
                }
                let key = v5_key(|k| &k.cbc_kid).ok_or(NextAuthError::NoMatchingKey)?;
                (
                    decrypt_cbc_hs512(&key.cbc, aad, &iv, &mut buffer, &tag)?,
                    NextAuthVersion::V5,
                )
            }
            Enc::A256Gcm => {
                if iv.len() != 12 {
                    return Err(NextAuthError::BadIvLength);
                }
                if tag.len() != 16 {
                    return Err(NextAuthError::BadTagLength);
                }
                let nonce = Nonce::from_slice(&iv);
                let tag = Tag::from_slice(&tag);
                let v5 = if scheme.v5.is_empty() {
                    None
                } else {
                    v5_key(|k| &k.gcm_kid)
                };
                let v4: &[Aes256Gcm] = if scheme.v4 { &self.v4_keys } else { &[] };
                if v5.is_none() && v4.is_empty() {
                    return Err(NextAuthError::NoMatchingKey);
                }
                // The buffer is only written when the tag matches, so each key sees the ciphertext.
                let opened = v5
                    .map(|k| (&k.gcm, NextAuthVersion::V5))
                    .into_iter()
                    .chain(v4.iter().map(|k| (k, NextAuthVersion::V4)))
                    .find(|(cipher, _)| {
                        cipher
                            .decrypt_in_place_detached(nonce, aad, &mut buffer, tag)
                            .is_ok()
                    });
                match opened {
                    Some((_, version)) => (buffer.len(), version),
                    None => return Err(NextAuthError::DecryptionFailed),
                }
            }
        };

        buffer.truncate(plain_len);
        let payload = String::from_utf8(buffer).map_err(|_| NextAuthError::NotUtf8)?;
        let claims = ReadClaims::parse(&payload)?;
        let checked = check_claims(&header, &claims, &payload, now)?;
        Ok(NextAuthSession(Arc::new(SessionFacts {
            sub: text(claims.sub).unwrap_or_default(),
            email: text(claims.email),
            name: text(claims.name),
            picture: text(claims.picture),
            exp: checked.exp,
            iat: checked.iat,
            cookie_name: scheme.name.clone(),
            version,
            payload,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v4_header_shortcut_reads_as_the_header_parsed() {
        let bytes = URL_SAFE_NO_PAD.decode(V4_HEADER_SEGMENT).unwrap();
        assert_eq!(bytes, br#"{"alg":"dir","enc":"A256GCM"}"#);
        let (short, parsed) = (
            parse_header(V4_HEADER_SEGMENT).ok().unwrap(),
            parse_header_json(V4_HEADER_SEGMENT).ok().unwrap(),
        );
        assert!(short.enc == parsed.enc && short.enc == Enc::A256Gcm);
        assert_eq!(short.kid, parsed.kid);
        assert_eq!(short.replicated, parsed.replicated);
        // Any other text goes through the full parse and its checks.
        let other = URL_SAFE_NO_PAD.encode(br#"{"alg":"dir","enc":"A256GCM","zip":"DEF"}"#);
        assert_eq!(parse_header(&other).err(), Some(NextAuthError::Compressed));
    }
}
