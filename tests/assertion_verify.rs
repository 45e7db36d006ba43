//! The README's Rust verification of `x-auth-assertion`, run against assertions in the worker's
//! exact format: header and claims from `identity::assertion`, the key set as `jwks.json` lists
//! it. The ES256 signature is made here with `jsonwebtoken` (the worker uses WebCrypto, whose
//! `r ‖ s` output is the same JWS encoding; the Miniflare test verifies the worker's own
//! signatures with jose).

use auth_bridge::config::Phase;
use auth_bridge::identity::assertion::{
    claims_for, es256_header, sign_hs256, signing_input, EcPublicJwk,
};
use auth_bridge::identity::{Identity, Source};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey};

const PKCS8: &str = include_str!("fixtures/assertion-es256.pem");
const X: &str = include_str!("fixtures/assertion-es256.x");
const Y: &str = include_str!("fixtures/assertion-es256.y");
const HOST: &str = "app.example.com";

// ---- the README's code, as an origin would write it --------------------------------------------

mod origin {
    use jsonwebtoken::errors::{Error, ErrorKind};
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

    #[derive(Debug, serde::Deserialize)]
    pub struct Assertion {
        pub sub: Option<String>,
        pub source: String,
        pub phase: String,
        pub clerk_user_id: Option<String>,
        pub legacy_user_id: Option<String>,
        pub email: Option<String>,
    }

    /// `jwks`: the body of `GET https://<site>/__auth-bridge/jwks.json` (cache it 5 minutes;
    /// fetch it again on an unknown `kid`). `host`: this origin's host.
    pub fn verify_es256(token: &str, jwks: &JwkSet, host: &str) -> Result<Assertion, Error> {
        let kid = decode_header(token)?.kid.ok_or(ErrorKind::InvalidToken)?;
        let jwk = jwks.find(&kid).ok_or(ErrorKind::InvalidKeyFormat)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&["auth-bridge"]);
        validation.set_audience(&[host]);
        validation.leeway = 5;
        Ok(decode::<Assertion>(token, &DecodingKey::from_jwk(jwk)?, &validation)?.claims)
    }

    /// HS256, with the secret shared as `AUTH_BRIDGE_ASSERTION_SECRET`.
    pub fn verify_hs256(token: &str, secret: &[u8], host: &str) -> Result<Assertion, Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["auth-bridge"]);
        validation.set_audience(&[host]);
        validation.leeway = 5;
        Ok(decode::<Assertion>(token, &DecodingKey::from_secret(secret), &validation)?.claims)
    }
}

// ---- the tests ---------------------------------------------------------------------------------

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn migrated() -> Identity {
    Identity {
        source: Source::Clerk,
        user_id: Some("legacy-42".into()),
        clerk_user_id: Some("user_2abc".into()),
        email: Some("ada@example.com".into()),
        session_id: Some("sess_1".into()),
        session_status: Some("active".into()),
    }
}

fn jwks() -> jsonwebtoken::jwk::JwkSet {
    let jwk = EcPublicJwk::new(X.trim(), Y.trim()).unwrap();
    serde_json::from_value(serde_json::json!({ "keys": [jwk.to_json()] })).unwrap()
}

/// An ES256 assertion in the worker's format, signed with the fixture key.
fn es256(identity: &Identity, audience: &str, iat: u64) -> String {
    let kid = EcPublicJwk::new(X.trim(), Y.trim()).unwrap().thumbprint();
    let input = signing_input(
        &es256_header(&kid),
        &claims_for(identity, audience, Phase::Migrate, iat),
    );
    let key = EncodingKey::from_ec_pem(PKCS8.as_bytes()).unwrap();
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::ES256).unwrap();
    format!("{input}.{signature}")
}

#[test]
fn es256_assertion_verifies_with_the_listed_key() {
    let token = es256(&migrated(), HOST, now());
    let claims = origin::verify_es256(&token, &jwks(), HOST).unwrap();
    assert_eq!(claims.sub.as_deref(), Some("legacy-42"));
    assert_eq!(claims.legacy_user_id.as_deref(), Some("legacy-42"));
    assert_eq!(claims.clerk_user_id.as_deref(), Some("user_2abc"));
    assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
    assert_eq!(claims.source, "clerk");
    assert_eq!(claims.phase, "migrate");
}

#[test]
fn es256_refuses_tampering_other_audiences_expiry_and_unknown_keys() {
    let token = es256(&migrated(), HOST, now());
    let (input, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = input.split_once('.').unwrap();
    let mut claims = claims_for(&migrated(), HOST, Phase::Migrate, now());
    claims.sub = Some("someone-else".into());
    let forged = signing_input(&serde_json::json!({}), &claims);
    let forged_payload = forged.split_once('.').unwrap().1;
    let forged = format!("{header}.{forged_payload}.{signature}");
    assert!(origin::verify_es256(&forged, &jwks(), HOST).is_err());

    assert!(origin::verify_es256(&token, &jwks(), "other.example.com").is_err());

    let old = es256(&migrated(), HOST, now() - 120);
    let err = origin::verify_es256(&old, &jwks(), HOST).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::ExpiredSignature);

    let empty: jsonwebtoken::jwk::JwkSet = serde_json::from_str(r#"{"keys":[]}"#).unwrap();
    assert!(origin::verify_es256(&token, &empty, HOST).is_err());
}

#[test]
fn hs256_assertion_verifies_with_the_shared_secret() {
    let nextauth = Identity {
        source: Source::NextAuth,
        user_id: Some("legacy-7".into()),
        clerk_user_id: None,
        email: None,
        session_id: None,
        session_status: None,
    };
    let token = sign_hs256(
        b"shared-secret",
        &claims_for(&nextauth, HOST, Phase::Observe, now()),
    );
    let claims = origin::verify_hs256(&token, b"shared-secret", HOST).unwrap();
    assert_eq!(claims.sub.as_deref(), Some("legacy-7"));
    assert_eq!(claims.source, "nextauth");
    assert_eq!(claims.phase, "observe");
    assert!(origin::verify_hs256(&token, b"another-secret", HOST).is_err());
}
