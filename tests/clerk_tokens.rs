//! Clerk session tokens end to end on the host: tokens are signed with the `rsa` crate and
//! verified through the same pipeline the Worker uses (parse → signature → claims), with an
//! `rsa`-backed `SignatureVerifier` standing in for WebCrypto. Also the publishable key, the
//! request-state rules and key parsing.

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

// ---------------------------------------------------------------------------------------------
// Accepted tokens
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_session_token_yields_the_session() {
    let session = verify(&signed(&header(), &claims())).expect("valid token");
    assert_eq!(session.user_id, "user_2abc");
    assert_eq!(session.session_id.as_deref(), Some("sess_2abc"));
    assert_eq!(session.exp, NOW + 60);
    assert_eq!(session.iat, NOW);
    assert_eq!(session.claims.get("azp"), Some(&json!(AZP)));
    assert_eq!(session.claims.get("v"), Some(&json!(2)));
}

#[test]
fn tolerated_variations_are_accepted() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "expired within leeway",
            header(),
            with(claims(), "exp", json!(NOW - 4)),
        ),
        (
            "nbf at the leeway edge",
            header(),
            with(claims(), "nbf", json!(NOW + 5)),
        ),
        (
            "iat at the leeway edge",
            header(),
            with(claims(), "iat", json!(NOW + 5)),
        ),
        ("no nbf", header(), without(claims(), "nbf")),
        ("no cat header", without(header(), "cat"), claims()),
        ("no typ header", without(header(), "typ"), claims()),
        (
            "ignored cat",
            with(header(), "cat", json!(JWT_CATEGORY_IGNORE)),
            claims(),
        ),
        (
            "any azp without parties",
            header(),
            with(claims(), "azp", json!("https://evil.test")),
        ),
        ("no azp without parties", header(), without(claims(), "azp")),
    ];
    for (name, header, claims) in cases {
        let result = verify(&signed(&header, &claims));
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[test]
fn configured_party_is_accepted() {
    let validation =
        validation().with_authorized_parties_csv(" https://other.test, https://app.example.com/ ");
    assert!(verify_with(&signed(&header(), &claims()), &validation).is_ok());
}

// ---------------------------------------------------------------------------------------------
// The attack table: every case must fail with exactly its error.
// ---------------------------------------------------------------------------------------------

fn hs256_with_public_key_as_secret() -> String {
    let public_der = keys().signing.to_public_key().to_public_key_der().unwrap();
    let input = encode_parts(
        &json!({ "alg": "HS256", "kid": KID, "typ": "JWT" }),
        &claims(),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(public_der.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn rs512_token() -> String {
    let input = encode_parts(&with(header(), "alg", json!("RS512")), &claims());
    let digest = Sha512::digest(input.as_bytes());
    let signature = keys()
        .signing
        .sign(Pkcs1v15Sign::new::<Sha512>(), &digest)
        .unwrap();
    format!("{input}.{}", b64(&signature))
}

fn attack_table() -> Vec<(&'static str, String, ClerkTokenError, ClerkValidation)> {
    use ClerkTokenError::*;
    let v = validation;
    let parties = || validation().with_authorized_parties_csv(AZP);
    let good = signed(&header(), &claims());
    let none_header = json!({ "alg": "none", "kid": KID, "typ": "JWT" });
    let oversized_claims = with(claims(), "pad", json!("x".repeat(MAX_TOKEN_LEN)));

    vec![
        (
            "alg none, empty signature",
            format!("{}.", encode_parts(&none_header, &claims())),
            DisallowedAlgorithm,
            v(),
        ),
        (
            "alg none, RS256 signature kept",
            format!(
                "{}.{}",
                encode_parts(&none_header, &claims()),
                part(&good, 2)
            ),
            DisallowedAlgorithm,
            v(),
        ),
        (
            "HS256 keyed with the RSA public key",
            hs256_with_public_key_as_secret(),
            DisallowedAlgorithm,
            v(),
        ),
        ("RS512", rs512_token(), DisallowedAlgorithm, v()),
        (
            "lower-case rs256",
            signed(&with(header(), "alg", json!("rs256")), &claims()),
            DisallowedAlgorithm,
            v(),
        ),
        (
            "no alg",
            signed(&without(header(), "alg"), &claims()),
            DisallowedAlgorithm,
            v(),
        ),
        (
            "missing kid",
            signed(&without(header(), "kid"), &claims()),
            MissingKeyId,
            v(),
        ),
        (
            "empty kid",
            signed(&with(header(), "kid", json!("")), &claims()),
            MissingKeyId,
            v(),
        ),
        (
            "numeric kid",
            signed(&with(header(), "kid", json!(7)), &claims()),
            MissingKeyId,
            v(),
        ),
        (
            "unknown kid",
            signed(&with(header(), "kid", json!("ins_unknown")), &claims()),
            UnknownKeyId,
            v(),
        ),
        (
            "wrong iss",
            signed(
                &header(),
                &with(claims(), "iss", json!("https://clerk.evil.test")),
            ),
            InvalidIssuer,
            v(),
        ),
        (
            "http iss",
            signed(
                &header(),
                &with(claims(), "iss", json!(format!("http://{LIVE_FAPI}"))),
            ),
            InvalidIssuer,
            v(),
        ),
        (
            "missing iss",
            signed(&header(), &without(claims(), "iss")),
            MissingClaim("iss"),
            v(),
        ),
        (
            "wrong azp with parties",
            signed(
                &header(),
                &with(claims(), "azp", json!("https://evil.test")),
            ),
            UnauthorizedParty,
            parties(),
        ),
        (
            "missing azp with parties",
            signed(&header(), &without(claims(), "azp")),
            UnauthorizedParty,
            parties(),
        ),
        (
            "expired beyond leeway",
            signed(&header(), &with(claims(), "exp", json!(NOW - 6))),
            Expired,
            v(),
        ),
        (
            "expired exactly at leeway",
            signed(&header(), &with(claims(), "exp", json!(NOW - 5))),
            Expired,
            v(),
        ),
        (
            "nbf in the future",
            signed(&header(), &with(claims(), "nbf", json!(NOW + 6))),
            NotYetValid,
            v(),
        ),
        (
            "iat in the future",
            signed(&header(), &with(claims(), "iat", json!(NOW + 6))),
            IssuedInTheFuture,
            v(),
        ),
        (
            "tampered header",
            format!(
                "{}.{}.{}",
                b64(with(header(), "x", json!(1)).to_string().as_bytes()),
                part(&good, 1),
                part(&good, 2)
            ),
            InvalidSignature,
            v(),
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                part(&good, 0),
                b64(with(claims(), "sub", json!("user_admin"))
                    .to_string()
                    .as_bytes()),
                part(&good, 2)
            ),
            InvalidSignature,
            v(),
        ),
        (
            "tampered signature",
            format!(
                "{}.{}.{}",
                part(&good, 0),
                part(&good, 1),
                flip_char(part(&good, 2), 10)
            ),
            InvalidSignature,
            v(),
        ),
        (
            "signature cut short",
            format!(
                "{}.{}.{}",
                part(&good, 0),
                part(&good, 1),
                &part(&good, 2)[..300]
            ),
            InvalidSignature,
            v(),
        ),
        (
            "truncated by one char",
            good[..good.len() - 1].to_string(),
            InvalidBase64(TokenPart::Signature),
            v(),
        ),
        (
            "two parts",
            format!("{}.{}", part(&good, 0), part(&good, 1)),
            WrongPartCount(2),
            v(),
        ),
        (
            "four parts",
            format!("{good}.{}", part(&good, 2)),
            WrongPartCount(4),
            v(),
        ),
        (
            "oversized",
            signed(&header(), &oversized_claims),
            TooLarge,
            v(),
        ),
        (
            "payload not JSON",
            format!("{}.{}.{}", part(&good, 0), b64(b"not json"), part(&good, 2)),
            InvalidJson(TokenPart::Payload),
            v(),
        ),
        (
            "header not JSON",
            format!(
                "{}.{}.{}",
                b64(b"{alg:RS256}"),
                part(&good, 1),
                part(&good, 2)
            ),
            InvalidJson(TokenPart::Header),
            v(),
        ),
        (
            "header is a JSON array",
            format!(
                "{}.{}.{}",
                b64(b"[\"RS256\"]"),
                part(&good, 1),
                part(&good, 2)
            ),
            InvalidJson(TokenPart::Header),
            v(),
        ),
        (
            "payload not base64url",
            format!("{}.{}.{}", part(&good, 0), "e30!", part(&good, 2)),
            InvalidBase64(TokenPart::Payload),
            v(),
        ),
        (
            "padded base64",
            format!("{}.{}.{}=", part(&good, 0), part(&good, 1), part(&good, 2)),
            InvalidBase64(TokenPart::Signature),
            v(),
        ),
        (
            "sub is a number",
            signed(&header(), &with(claims(), "sub", json!(42))),
            InvalidClaim("sub"),
            v(),
        ),
        (
            "sub missing",
            signed(&header(), &without(claims(), "sub")),
            MissingClaim("sub"),
            v(),
        ),
        (
            "sid missing",
            signed(&header(), &without(claims(), "sid")),
            MissingClaim("sid"),
            v(),
        ),
        (
            "sid is an object",
            signed(&header(), &with(claims(), "sid", json!({"id": 1}))),
            InvalidClaim("sid"),
            v(),
        ),
        (
            "exp is a string",
            signed(&header(), &with(claims(), "exp", json!("9999999999"))),
            InvalidClaim("exp"),
            v(),
        ),
        (
            "exp missing",
            signed(&header(), &without(claims(), "exp")),
            MissingClaim("exp"),
            v(),
        ),
        (
            "iat missing",
            signed(&header(), &without(claims(), "iat")),
            MissingClaim("iat"),
            v(),
        ),
        (
            "JWT-template cat",
            signed(
                &with(header(), "cat", json!(JWT_CATEGORY_JWT_TEMPLATE)),
                &claims(),
            ),
            NotASessionToken,
            v(),
        ),
        (
            "M2M cat",
            signed(
                &with(header(), "cat", json!(JWT_CATEGORY_M2M_TOKEN)),
                &claims(),
            ),
            NotASessionToken,
            v(),
        ),
        (
            "machine subject",
            signed(&header(), &with(claims(), "sub", json!("mch_2abc"))),
            NotASessionToken,
            v(),
        ),
        (
            "OAuth access token typ",
            signed(&with(header(), "typ", json!("at+jwt")), &claims()),
            UnexpectedType,
            v(),
        ),
        (
            "crit header",
            signed(&with(header(), "crit", json!(["exp"])), &claims()),
            UnsupportedCriticalHeader,
            v(),
        ),
        (
            "signed by another RSA key",
            signed_with(&keys().other, &header(), &claims()),
            InvalidSignature,
            v(),
        ),
    ]
}

#[test]
fn attack_table_every_token_is_refused_with_its_error() {
    let table = attack_table();
    assert_eq!(
        table.len(),
        45,
        "SECURITY.md (Token forgery) counts 45 cases"
    );
    for (name, token, expected, validation) in table {
        assert_eq!(verify_with(&token, &validation), Err(expected), "{name}");
    }
}

#[test]
fn claim_errors_come_in_clerks_order() {
    // Wrong azp and expired: Clerk reports azp (sign out) before exp (handshake).
    let token = signed(
        &header(),
        &with(
            with(claims(), "azp", json!("https://evil.test")),
            "exp",
            json!(NOW - 100),
        ),
    );
    let validation = validation().with_authorized_parties_csv(AZP);
    assert_eq!(
        verify_with(&token, &validation),
        Err(ClerkTokenError::UnauthorizedParty)
    );
}

#[test]
fn header_is_rejected_before_any_key_lookup() {
    // A verifier that would fail loudly proves the alg check happens first.
    struct MustNotBeCalled;
    impl SignatureVerifier for MustNotBeCalled {
        async fn verify_signature(
            &self,
            _: &str,
            _: &[u8],
            _: &[u8],
            _: u64,
        ) -> Result<(), ClerkTokenError> {
            panic!("signature check reached for a token with a refused header");
        }
    }
    let token = hs256_with_public_key_as_secret();
    let result = futures::executor::block_on(verify_session_token(
        &token,
        &MustNotBeCalled,
        &validation(),
        NOW,
    ));
    assert_eq!(result, Err(ClerkTokenError::DisallowedAlgorithm));
}

#[test]
fn untrusted_token_exposes_exactly_the_signed_bytes() {
    let token = signed(&header(), &claims());
    let untrusted = UntrustedClerkToken::parse(&token).unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    assert_eq!(untrusted.signing_input(), input.as_bytes());
    assert_eq!(
        untrusted.signature(),
        URL_SAFE_NO_PAD.decode(signature).unwrap()
    );
    assert_eq!(untrusted.kid(), KID);
}

#[test]
fn errors_never_echo_token_material() {
    let token = signed(&header(), &with(claims(), "sub", json!(42)));
    for error in [
        verify(&token).unwrap_err(),
        verify(&token[..20]).unwrap_err(),
    ] {
        let text = format!("{error} {error:?}");
        assert!(
            !text.contains(part(&token, 0)) && !text.contains("user_"),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Publishable key
// ---------------------------------------------------------------------------------------------

#[test]
fn publishable_keys_match_clerk_shared() {
    let cases = [
        (DEV_PK, DEV_FAPI, InstanceType::Development, DEV_SUFFIX),
        (LIVE_PK, LIVE_FAPI, InstanceType::Production, LIVE_SUFFIX),
        (
            LIVE_PK_2,
            "clerk.auth-bridge.test",
            InstanceType::Production,
            LIVE_SUFFIX_2,
        ),
        (
            PADDED_PK,
            "clerk.exampl.com",
            InstanceType::Production,
            PADDED_SUFFIX,
        ),
    ];
    for (key, fapi, instance_type, suffix) in cases {
        let pk = PublishableKey::parse(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(pk.frontend_api(), fapi, "{key}");
        assert_eq!(pk.instance_type(), instance_type, "{key}");
        assert_eq!(pk.cookie_suffix(), suffix, "{key}");
        assert_eq!(pk.issuer(), format!("https://{fapi}"));
        assert_eq!(
            pk.suffixed_cookie_name("__session"),
            format!("__session_{suffix}")
        );
    }
    assert!(PublishableKey::parse(DEV_PK).unwrap().is_development());
    assert!(!PublishableKey::parse(LIVE_PK).unwrap().is_development());
}

#[test]
fn publishable_key_surrounding_whitespace_is_ignored() {
    let pk = PublishableKey::parse(&format!("  {LIVE_PK}\n")).unwrap();
    assert_eq!(pk.as_str(), LIVE_PK);
    assert_eq!(pk.cookie_suffix(), LIVE_SUFFIX);
}

#[test]
fn malformed_publishable_keys_are_refused_clearly() {
    use PublishableKeyError::*;
    let cases = [
        ("", Missing),
        ("   ", Missing),
        ("sk_live_Y2xlcmsuZXhhbXBsZS5jb20k", UnknownPrefix),
        ("pk_prod_Y2xlcmsuZXhhbXBsZS5jb20k", UnknownPrefix),
        ("pk_live_", UnknownPrefix),
        ("pk_live_Y2xl_cmsu", UnknownPrefix),
        ("pk_live_!!!!", NotBase64),
        // "clerk.example.com" (no '$')
        ("pk_live_Y2xlcmsuZXhhbXBsZS5jb20", InvalidFormat),
        // "example$" (no dot)
        ("pk_live_ZXhhbXBsZSQ", InvalidFormat),
        // "a.b$c$"
        ("pk_live_YS5iJGMk", InvalidFormat),
        // "evil.test/path$": Clerk accepts it, but the host becomes a URL, so it is refused.
        ("pk_live_ZXZpbC50ZXN0L3BhdGgk", InvalidFormat),
    ];
    for (key, expected) in cases {
        assert_eq!(PublishableKey::parse(key), Err(expected.clone()), "{key:?}");
        assert!(!expected.to_string().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Request-state rules
// ---------------------------------------------------------------------------------------------

type CookiePairs<'a> = Vec<(&'a str, &'a str)>;

fn cookie_jar<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn source<'a>(
    pairs: &'a [(&'a str, &'a str)],
    authorization: Option<&'a str>,
    pk: &str,
) -> ClerkTokenSource<'a> {
    let pk = PublishableKey::parse(pk).unwrap();
    session_token_from_request(&cookie_jar(pairs), authorization, false, &pk, NOW)
}

/// An unverified-looking token for cookie selection (signature irrelevant there).
fn cookie_token(iss: &str, iat: u64, exp: u64) -> String {
    signed(
        &header(),
        &json!({ "iss": iss, "iat": iat, "exp": exp, "sub": "user_2abc", "sid": "sess_1" }),
    )
}

#[test]
fn bearer_token_skips_the_cookie_rules() {
    // Dev instance without __clerk_db_jwt would otherwise need a handshake.
    let token = signed(&header(), &claims());
    let bearer = format!("Bearer {token}");
    assert_eq!(
        source(&[], Some(&bearer), DEV_PK),
        ClerkTokenSource::Bearer(&token)
    );
    assert_eq!(
        source(&[("__client_uat", "0")], Some(&bearer), LIVE_PK),
        ClerkTokenSource::Bearer(&token)
    );
    // Clerk also takes a single word as the token; other schemes fall back to cookies.
    assert_eq!(
        source(&[], Some("abc.def.ghi"), LIVE_PK),
        ClerkTokenSource::Bearer("abc.def.ghi")
    );
    assert_eq!(
        source(&[], Some("Basic dXNlcjpwYXNz"), LIVE_PK),
        ClerkTokenSource::SignedOut(SignedOutReason::SessionTokenAndUatMissing)
    );
    assert_eq!(
        source(&[], Some(""), LIVE_PK),
        ClerkTokenSource::SignedOut(SignedOutReason::SessionTokenAndUatMissing)
    );
}

#[test]
fn client_uat_and_session_cookie_combinations() {
    let token = cookie_token(&format!("https://{LIVE_FAPI}"), NOW, NOW + 60);
    use ClerkTokenSource as S;
    let cases: Vec<(CookiePairs, ClerkTokenSource)> = vec![
        (
            vec![],
            S::SignedOut(SignedOutReason::SessionTokenAndUatMissing),
        ),
        (
            vec![("__client_uat", "0")],
            S::SignedOut(SignedOutReason::SessionTokenAndUatMissing),
        ),
        (
            vec![("__client_uat", "")],
            S::SignedOut(SignedOutReason::SessionTokenAndUatMissing),
        ),
        (
            vec![("__client_uat", "0"), ("__session", &token)],
            S::NeedsHandshake(HandshakeReason::SessionTokenWithoutClientUat),
        ),
        (
            vec![("__session", &token)],
            S::NeedsHandshake(HandshakeReason::SessionTokenWithoutClientUat),
        ),
        (
            vec![("__client_uat", "1759999990")],
            S::NeedsHandshake(HandshakeReason::ClientUatWithoutSessionToken),
        ),
        (
            vec![("__client_uat", "1759999990"), ("__session", "")],
            S::NeedsHandshake(HandshakeReason::ClientUatWithoutSessionToken),
        ),
        (
            vec![("__client_uat", "1759999990"), ("__session", &token)],
            S::Cookie {
                token: &token,
                client_uat: 1_759_999_990,
            },
        ),
        // Number.parseInt semantics: leading digits count.
        (
            vec![("__client_uat", "1759999990abc"), ("__session", &token)],
            S::Cookie {
                token: &token,
                client_uat: 1_759_999_990,
            },
        ),
        (
            vec![("__client_uat", "junk"), ("__session", &token)],
            S::NeedsHandshake(HandshakeReason::SessionTokenWithoutClientUat),
        ),
    ];
    for (pairs, expected) in cases {
        assert_eq!(source(&pairs, None, LIVE_PK), expected, "{pairs:?}");
    }
}

#[test]
fn development_instances_need_the_dev_browser_token() {
    let token = cookie_token(&format!("https://{DEV_FAPI}"), NOW, NOW + 60);
    let pk = PublishableKey::parse(DEV_PK).unwrap();
    let without_db: CookiePairs = vec![("__client_uat", "1759999990"), ("__session", &token)];
    assert_eq!(
        session_token_from_request(&cookie_jar(&without_db), None, false, &pk, NOW),
        ClerkTokenSource::NeedsHandshake(HandshakeReason::DevBrowserMissing)
    );
    // Even signed-out visitors of a dev instance go through the handshake first.
    assert_eq!(
        session_token_from_request(&cookie_jar(&[]), None, false, &pk, NOW),
        ClerkTokenSource::NeedsHandshake(HandshakeReason::DevBrowserMissing)
    );
    let mut with_db = without_db.clone();
    with_db.push(("__clerk_db_jwt", "dvb_2abc"));
    assert_eq!(
        session_token_from_request(&cookie_jar(&with_db), None, false, &pk, NOW),
        ClerkTokenSource::Cookie {
            token: &token,
            client_uat: 1_759_999_990
        }
    );
    assert_eq!(
        session_token_from_request(&cookie_jar(&with_db), None, true, &pk, NOW),
        ClerkTokenSource::NeedsHandshake(HandshakeReason::DevBrowserSync)
    );
    // Production never asks for it.
    let live_token = cookie_token(&format!("https://{LIVE_FAPI}"), NOW, NOW + 60);
    let live_pairs = [
        ("__client_uat", "1759999990"),
        ("__session", live_token.as_str()),
    ];
    assert_eq!(
        source(&live_pairs, None, LIVE_PK),
        ClerkTokenSource::Cookie {
            token: &live_token,
            client_uat: 1_759_999_990
        }
    );
    // A plain cookie minted by another instance is not ours: signed out, not verified.
    assert_eq!(
        source(&without_db, None, LIVE_PK),
        ClerkTokenSource::SignedOut(SignedOutReason::SessionTokenAndUatMissing)
    );
}

#[test]
fn suffixed_cookies_are_chosen_as_clerk_does() {
    let ours = format!("https://{LIVE_FAPI}");
    let plain_old = cookie_token(&ours, NOW - 100, NOW + 60);
    let suffixed_new = cookie_token(&ours, NOW, NOW + 60);
    let other_instance = cookie_token("https://clerk.other.test", NOW + 1, NOW + 60);
    let session_sfx = format!("__session_{LIVE_SUFFIX}");
    let uat_sfx = format!("__client_uat_{LIVE_SUFFIX}");
    use ClerkTokenSource as S;

    let cases: Vec<(&str, CookiePairs, ClerkTokenSource)> = vec![
        (
            "suffixed newer than plain: suffixed",
            vec![
                ("__session", &plain_old),
                ("__client_uat", "1759999000"),
                (&session_sfx, &suffixed_new),
                (&uat_sfx, "1759999990"),
            ],
            S::Cookie {
                token: &suffixed_new,
                client_uat: 1_759_999_990,
            },
        ),
        (
            "plain newer than suffixed: plain",
            vec![
                ("__session", &suffixed_new),
                ("__client_uat", "1759999990"),
                (&session_sfx, &plain_old),
                (&uat_sfx, "1759999000"),
            ],
            S::Cookie {
                token: &suffixed_new,
                client_uat: 1_759_999_990,
            },
        ),
        (
            "plain cookie from another instance: suffixed",
            vec![
                ("__session", &other_instance),
                ("__client_uat", "1760000001"),
                (&session_sfx, &plain_old),
                (&uat_sfx, "1759999000"),
            ],
            S::Cookie {
                token: &plain_old,
                client_uat: 1_759_999_000,
            },
        ),
        (
            "plain cookie is not a JWT: plain",
            vec![
                ("__session", "opaque"),
                ("__client_uat", "1759999990"),
                (&session_sfx, &suffixed_new),
                (&uat_sfx, "1759999990"),
            ],
            S::Cookie {
                token: "opaque",
                client_uat: 1_759_999_990,
            },
        ),
        (
            "suffixed signed out, plain signed in: plain",
            vec![
                ("__session", &plain_old),
                ("__client_uat", "1759999000"),
                (&uat_sfx, "0"),
            ],
            S::Cookie {
                token: &plain_old,
                client_uat: 1_759_999_000,
            },
        ),
        (
            "suffixed session without suffixed uat: plain",
            vec![
                ("__session", &plain_old),
                ("__client_uat", "1759999000"),
                (&session_sfx, &suffixed_new),
            ],
            S::Cookie {
                token: &plain_old,
                client_uat: 1_759_999_000,
            },
        ),
        (
            "only suffixed cookies: suffixed",
            vec![(&session_sfx, &suffixed_new), (&uat_sfx, "1759999990")],
            S::Cookie {
                token: &suffixed_new,
                client_uat: 1_759_999_990,
            },
        ),
        (
            "only suffixed uat = 0: signed out",
            vec![(&uat_sfx, "0")],
            S::SignedOut(SignedOutReason::SessionTokenAndUatMissing),
        ),
    ];
    for (name, pairs, expected) in cases {
        assert_eq!(source(&pairs, None, LIVE_PK), expected, "{name}");
    }
}

#[test]
fn expired_suffixed_session_of_a_dev_instance_falls_back_to_plain() {
    let ours = format!("https://{DEV_FAPI}");
    let plain = cookie_token(&ours, NOW - 100, NOW + 60);
    let expired_suffixed = cookie_token(&ours, NOW - 10, NOW - 1);
    let session_sfx = format!("__session_{DEV_SUFFIX}");
    let uat_sfx = format!("__client_uat_{DEV_SUFFIX}");
    let pairs = [
        ("__session", plain.as_str()),
        ("__client_uat", "0"),
        (session_sfx.as_str(), expired_suffixed.as_str()),
        (uat_sfx.as_str(), "1759999990"),
        ("__clerk_db_jwt", "dvb_1"),
    ];
    // Plain set chosen: plain uat is 0 with a session cookie → handshake.
    assert_eq!(
        source(&pairs, None, DEV_PK),
        ClerkTokenSource::NeedsHandshake(HandshakeReason::SessionTokenWithoutClientUat)
    );
    // Same cookies on a production instance keep the suffixed set.
    let live_sfx_session = format!("__session_{LIVE_SUFFIX}");
    let live_sfx_uat = format!("__client_uat_{LIVE_SUFFIX}");
    let live_plain = cookie_token(&format!("https://{LIVE_FAPI}"), NOW - 100, NOW + 60);
    let live_expired = cookie_token(&format!("https://{LIVE_FAPI}"), NOW - 10, NOW - 1);
    let live_pairs = [
        ("__session", live_plain.as_str()),
        ("__client_uat", "0"),
        (live_sfx_session.as_str(), live_expired.as_str()),
        (live_sfx_uat.as_str(), "1759999990"),
    ];
    assert_eq!(
        source(&live_pairs, None, LIVE_PK),
        ClerkTokenSource::Cookie {
            token: &live_expired,
            client_uat: 1_759_999_990
        }
    );
}

#[test]
fn verified_cookie_token_must_not_predate_client_uat() {
    let session = verify(&signed(&header(), &claims())).unwrap();
    assert_eq!(check_client_uat(&session, NOW), Ok(()));
    assert_eq!(check_client_uat(&session, NOW - 1), Ok(()));
    assert_eq!(
        check_client_uat(&session, NOW + 1),
        Err(HandshakeReason::SessionTokenIatBeforeClientUat)
    );
}

#[test]
fn verification_outcomes_map_to_request_states() {
    let token = signed(&header(), &claims());
    let session = verify(&token).unwrap();
    let fresh_cookie = ClerkTokenSource::Cookie {
        token: &token,
        client_uat: NOW - 30,
    };
    let stale_cookie = ClerkTokenSource::Cookie {
        token: &token,
        client_uat: NOW + 1,
    };
    let bearer = ClerkTokenSource::Bearer(&token);

    assert_eq!(
        request_state_after_verification(&fresh_cookie, Ok(session.clone())),
        ClerkRequestState::SignedIn(session.clone())
    );
    assert_eq!(
        request_state_after_verification(&stale_cookie, Ok(session.clone())),
        ClerkRequestState::NeedsHandshake(HandshakeReason::SessionTokenIatBeforeClientUat)
    );
    // Bearer tokens have no __client_uat to compare with.
    assert_eq!(
        request_state_after_verification(&bearer, Ok(session.clone())),
        ClerkRequestState::SignedIn(session)
    );
    assert_eq!(
        request_state_after_verification(&fresh_cookie, Err(ClerkTokenError::Expired)),
        ClerkRequestState::NeedsHandshake(HandshakeReason::SessionTokenExpired)
    );
    assert_eq!(
        request_state_after_verification(&fresh_cookie, Err(ClerkTokenError::NotYetValid)),
        ClerkRequestState::NeedsHandshake(HandshakeReason::SessionTokenNotBefore)
    );
    assert_eq!(
        request_state_after_verification(&fresh_cookie, Err(ClerkTokenError::InvalidSignature)),
        ClerkRequestState::SignedOut(SignedOutReason::InvalidToken(
            ClerkTokenError::InvalidSignature
        ))
    );
    assert_eq!(
        HandshakeReason::SessionTokenExpired.as_str(),
        "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    );
    assert_eq!(
        HandshakeReason::DevBrowserMissing.as_str(),
        "dev-browser-missing"
    );
}

#[test]
fn only_page_loads_are_handshake_eligible() {
    assert!(is_handshake_eligible("GET", Some("document"), None));
    assert!(is_handshake_eligible("GET", Some("iframe"), Some("*/*")));
    assert!(is_handshake_eligible(
        "GET",
        None,
        Some("text/html,application/xhtml+xml")
    ));
    assert!(!is_handshake_eligible(
        "GET",
        Some("empty"),
        Some("text/html")
    ));
    assert!(!is_handshake_eligible(
        "GET",
        None,
        Some("application/json")
    ));
    assert!(!is_handshake_eligible(
        "POST",
        Some("document"),
        Some("text/html")
    ));
    assert!(!is_handshake_eligible("GET", None, None));
}

#[test]
fn authorized_parties_csv_is_normalised() {
    assert_eq!(
        parse_authorized_parties(" https://a.test/ ,, https://b.test:8443 ,"),
        vec![
            "https://a.test".to_string(),
            "https://b.test:8443".to_string()
        ]
    );
    assert!(parse_authorized_parties(" , ").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[test]
fn jwks_keeps_only_rs256_signing_keys() {
    let weak = RsaPrivateKey::new(&mut StdRng::seed_from_u64(7), 1024).unwrap();
    let good = jwk_json(KID, &keys().signing);
    let document = json!({ "keys": [
        { "kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA" },
        with(jwk_json("enc", &keys().signing), "use", json!("enc")),
        with(jwk_json("rs512", &keys().signing), "alg", json!("RS512")),
        jwk_json("weak", &weak),
        without(jwk_json("nokid", &keys().signing), "kid"),
        with(jwk_json("bad-n", &keys().signing), "n", json!("***")),
        good,
        jwk_json(KID, &keys().other),
        without(without(jwk_json("bare", &keys().other), "use"), "alg"),
    ]});
    let jwks = Jwks::parse(&document.to_string()).unwrap();
    assert_eq!(jwks.kids().collect::<Vec<_>>(), vec![KID, "bare"]);
    // The first key for a kid wins over a later duplicate.
    let key = jwks.get(KID).unwrap();
    assert_eq!(key.modulus(), keys().signing.n().to_bytes_be().as_slice());
    assert_eq!(key.exponent(), [1, 0, 1]);
    assert_eq!(key.modulus_len(), 256);
}

#[test]
fn unusable_jwks_documents_are_errors() {
    assert_eq!(Jwks::parse("not json"), Err(KeyError::InvalidJwks));
    assert_eq!(Jwks::parse(r#"{"keys":{}}"#), Err(KeyError::InvalidJwks));
    assert_eq!(Jwks::parse(r#"{"keys":[]}"#), Err(KeyError::NoUsableKeys));
    assert_eq!(
        Jwks::parse(r#"{"keys":[{"kty":"oct","kid":"h","k":"AAAA"}]}"#),
        Err(KeyError::NoUsableKeys)
    );
}

#[test]
fn pem_keys_in_every_accepted_spelling_give_the_same_key() {
    let public = keys().signing.to_public_key();
    let expected =
        RsaPublicKey::from_components(&public.n().to_bytes_be(), &public.e().to_bytes_be())
            .unwrap();
    let spki = public
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let pkcs1 = public.to_pkcs1_pem(rsa::pkcs8::LineEnding::CRLF).unwrap();
    let escaped = spki.replace('\n', "\\n");
    let body_only: String = spki.lines().filter(|l| !l.starts_with("-----")).collect();
    for (name, pem) in [
        ("spki", spki.clone()),
        ("pkcs1 crlf", pkcs1),
        ("literal \\n", escaped),
        ("body only", body_only),
    ] {
        assert_eq!(RsaPublicKey::from_pem(&pem), Ok(expected.clone()), "{name}");
    }
    // JWK and PEM forms of one key share a fingerprint, so WebCrypto imports it once.
    assert_eq!(
        jwks().get(KID).unwrap().fingerprint(),
        expected.fingerprint()
    );
    assert_ne!(
        expected.fingerprint(),
        RsaPublicKey::from_components(&keys().other.n().to_bytes_be(), &[1, 0, 1])
            .unwrap()
            .fingerprint()
    );
}

#[test]
fn bad_pem_keys_are_refused() {
    // A P-256 SPKI public key (not RSA).
    let ec_pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbCHUqVoWaGhe8hBhs5EwUvN+9/7s\ngHQ2U0cLyzMclWOHEOYeC18Z8+6VWNFDvo0eQBaWR9lLclLGi9847LC5hw==\n-----END PUBLIC KEY-----\n";
    assert_eq!(
        RsaPublicKey::from_pem(ec_pem),
        Err(KeyError::NotAnRsaPublicKey)
    );
    assert_eq!(RsaPublicKey::from_pem(""), Err(KeyError::InvalidPem));
    assert_eq!(
        RsaPublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n%%%\n-----END PUBLIC KEY-----"),
        Err(KeyError::InvalidPem)
    );
    assert_eq!(
        RsaPublicKey::from_pem("AAAA"),
        Err(KeyError::NotAnRsaPublicKey)
    );
    // Trailing garbage after the DER structure.
    let mut der = keys()
        .signing
        .to_public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    der.push(0);
    assert_eq!(
        RsaPublicKey::from_der(&der),
        Err(KeyError::NotAnRsaPublicKey)
    );
    let weak = RsaPrivateKey::new(&mut StdRng::seed_from_u64(9), 1024)
        .unwrap()
        .to_public_key();
    let weak_pem = weak.to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    assert_eq!(
        RsaPublicKey::from_pem(&weak_pem),
        Err(KeyError::WeakOrInvalidRsaKey)
    );
    let n = keys().signing.n().to_bytes_be();
    assert_eq!(
        RsaPublicKey::from_components(&n, &[1, 0, 0]),
        Err(KeyError::WeakOrInvalidRsaKey)
    );
    assert_eq!(
        RsaPublicKey::from_components(&n, &[1]),
        Err(KeyError::WeakOrInvalidRsaKey)
    );
}
