//! Key parsing: JWKS and PEM.

use super::*;

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
