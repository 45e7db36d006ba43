//! Clerk session tokens end to end on the host: tokens are signed with the `rsa` crate and
//! verified through the same pipeline the Worker uses (parse → signature → claims), with an
//! `rsa`-backed `SignatureVerifier` standing in for WebCrypto. Also the publishable key, the
//! request-state rules and key parsing.
//!
//! This file holds the test keys, the signing helpers and the rsa-backed verifier; the cases are
//! in `accepted` (accepted tokens and the attack table), `publishable_key`, `request_state` and
//! `keys`.

use std::sync::OnceLock;

use auth_bridge::identity::clerk::{
    check_client_uat, is_handshake_eligible, parse_authorized_parties,
    request_state_after_verification, session_token_from_request, verify_session_token,
    ClerkRequestState, ClerkSession, ClerkTokenError, ClerkTokenSource, ClerkValidation,
    HandshakeReason, InstanceType, Jwks, KeyError, PublishableKey, PublishableKeyError,
    RsaPublicKey, SignatureVerifier, SignedOutReason, TokenPart, UntrustedClerkToken,
    JWT_CATEGORY_IGNORE, JWT_CATEGORY_JWT_TEMPLATE, JWT_CATEGORY_M2M_TOKEN,
    JWT_CATEGORY_SESSION_TOKEN, MAX_TOKEN_LEN,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};

mod accepted;
mod keys;
mod publishable_key;
mod request_state;

// Values computed with Node 20 and @clerk/shared (the version @clerk/backend 3.25.0 ships):
//   buildPublishableKey(fapi), await getCookieSuffix(pk), parsePublishableKey(pk)
const DEV_PK: &str = "pk_test_aGFwcHktaGlwcG8tNDIuY2xlcmsuYWNjb3VudHMuZGV2JA";
const DEV_FAPI: &str = "happy-hippo-42.clerk.accounts.dev";
const DEV_SUFFIX: &str = "k_2xjilp";
const LIVE_PK: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";
const LIVE_FAPI: &str = "clerk.example.com";
const LIVE_SUFFIX: &str = "naoXFJnI";
const LIVE_PK_2: &str = "pk_live_Y2xlcmsuYXV0aC1icmlkZ2UudGVzdCQ";
const LIVE_SUFFIX_2: &str = "lQyGxf2e";
// 'pk_live_' + Buffer.from('clerk.exampl.com$').toString('base64'): a key carrying '=' padding.
const PADDED_PK: &str = "pk_live_Y2xlcmsuZXhhbXBsLmNvbSQ=";
const PADDED_SUFFIX: &str = "k49NdZLo";

const KID: &str = "ins_2abcTESTkid";
const NOW: u64 = 1_760_000_000;
const AZP: &str = "https://app.example.com";

// ---------------------------------------------------------------------------------------------
// Test keys, signing and an rsa-backed verifier
// ---------------------------------------------------------------------------------------------

struct TestKeys {
    signing: RsaPrivateKey,
    other: RsaPrivateKey,
}

/// Deterministic keys (seeded RNG) so failures reproduce; generated once per test binary.
fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(0x00c1_e4c5);
        TestKeys {
            signing: RsaPrivateKey::new(&mut rng, 2048).expect("rsa keygen"),
            other: RsaPrivateKey::new(&mut rng, 2048).expect("rsa keygen"),
        }
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwk_json(kid: &str, key: &RsaPrivateKey) -> Value {
    json!({
        "use": "sig",
        "kty": "RSA",
        "kid": kid,
        "alg": "RS256",
        "n": b64(&key.n().to_bytes_be()),
        "e": b64(&key.e().to_bytes_be()),
    })
}

fn jwks() -> Jwks {
    let document = json!({ "keys": [jwk_json(KID, &keys().signing)] });
    Jwks::parse(&document.to_string()).expect("test JWKS parses")
}

/// Verifies RS256 with the `rsa` crate against a JWKS, as WebCrypto does in the Worker.
struct RsaCrateVerifier {
    jwks: Jwks,
}

impl SignatureVerifier for RsaCrateVerifier {
    async fn verify_signature(
        &self,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8],
        _now: u64,
    ) -> Result<(), ClerkTokenError> {
        let key = self.jwks.get(kid).ok_or(ClerkTokenError::UnknownKeyId)?;
        let public = rsa::RsaPublicKey::new(
            BigUint::from_bytes_be(key.modulus()),
            BigUint::from_bytes_be(key.exponent()),
        )
        .map_err(|_| ClerkTokenError::KeysUnavailable)?;
        let digest = Sha256::digest(signing_input);
        public
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
            .map_err(|_| ClerkTokenError::InvalidSignature)
    }
}

fn sign_rs256(key: &RsaPrivateKey, signing_input: &str) -> Vec<u8> {
    let digest = Sha256::digest(signing_input.as_bytes());
    key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .expect("rsa sign")
}

fn encode_parts(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn signed_with(key: &RsaPrivateKey, header: &Value, claims: &Value) -> String {
    let input = encode_parts(header, claims);
    let signature = sign_rs256(key, &input);
    format!("{input}.{}", b64(&signature))
}

fn signed(header: &Value, claims: &Value) -> String {
    signed_with(&keys().signing, header, claims)
}

fn header() -> Value {
    json!({ "alg": "RS256", "kid": KID, "typ": "JWT", "cat": JWT_CATEGORY_SESSION_TOKEN })
}

fn claims() -> Value {
    json!({
        "azp": AZP,
        "exp": NOW + 60,
        "fva": [0, -1],
        "iat": NOW,
        "iss": format!("https://{LIVE_FAPI}"),
        "nbf": NOW - 10,
        "sid": "sess_2abc",
        "sub": "user_2abc",
        "v": 2,
    })
}

fn with(mut value: Value, field: &str, replacement: Value) -> Value {
    value[field] = replacement;
    value
}

fn without(mut value: Value, field: &str) -> Value {
    value.as_object_mut().unwrap().remove(field);
    value
}

fn validation() -> ClerkValidation {
    ClerkValidation::new(&PublishableKey::parse(LIVE_PK).unwrap())
}

fn verify_with(token: &str, validation: &ClerkValidation) -> Result<ClerkSession, ClerkTokenError> {
    let verifier = RsaCrateVerifier { jwks: jwks() };
    futures::executor::block_on(verify_session_token(token, &verifier, validation, NOW))
}

fn verify(token: &str) -> Result<ClerkSession, ClerkTokenError> {
    verify_with(token, &validation())
}

/// Swaps one base64url character of a segment for another valid one.
fn flip_char(segment: &str, index: usize) -> String {
    let mut chars: Vec<char> = segment.chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn part(token: &str, index: usize) -> &str {
    token.split('.').nth(index).unwrap()
}
