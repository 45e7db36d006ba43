//! Tokens the pipeline accepts, and the attack table: every forged or malformed token is refused
//! with exactly its error.

use super::*;

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
