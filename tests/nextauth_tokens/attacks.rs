//! The attack table: tampered and hostile tokens, each refused with exactly its error.

use super::*;

#[test]
fn attack_table() {
    let f = fixture();
    let verifier = f.verifier();
    let now = f.now;
    let v5 = &f.token("v5").token;
    let v4 = &f.token("v4").token;
    let gcm = &f.token("v5-gcm-no-kid").token;
    let short_exp = f.claim_u64("v5-short-lived", "exp");
    let nbf = f.claim_u64("v5-nbf-future", "nbf");
    let oversized = format!("{v5}{}", "A".repeat(MAX_TOKEN_LEN));
    let not_object_header = with_part(v5, 0, &URL_SAFE_NO_PAD.encode(b"[\"dir\"]"));
    let short_gcm_iv = with_part(gcm, 2, &URL_SAFE_NO_PAD.encode([0u8; 8]));
    let short_tag = {
        // A GCM-sized (16-byte) tag on an A256CBC-HS512 token.
        let tag = URL_SAFE_NO_PAD.decode(&parts(v5)[4]).unwrap();
        with_part(v5, 4, &URL_SAFE_NO_PAD.encode(&tag[..16]))
    };
    let six_parts = format!("{v5}.AAAA");
    let four_parts = parts(v5)[..4].join(".");

    use NextAuthError::*;
    type Case<'a> = (
        &'a str,
        &'a str,
        String,
        u64,
        Result<&'a str, NextAuthError>,
    );
    let cases: Vec<Case> = vec![
        ("valid v5", V5, v5.clone(), now, Ok("user_42")),
        ("valid v4", V4, v4.clone(), now, Ok("user_42")),
        (
            "header parameter added",
            V5,
            with_header(v5, |h| {
                h.insert("x".into(), 1.into());
            }),
            now,
            Err(DecryptionFailed),
        ),
        (
            "kid of the other secret",
            V5,
            with_header(v5, |h| {
                h["kid"] = f
                    .token("v5-previous-secret")
                    .token
                    .split('.')
                    .next()
                    .map(|s| {
                        let h: Value =
                            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
                        h["kid"].clone()
                    })
                    .unwrap();
            }),
            now,
            Err(DecryptionFailed),
        ),
        ("tampered iv", V5, tamper(v5, 2), now, Err(DecryptionFailed)),
        (
            "tampered ciphertext",
            V5,
            tamper(v5, 3),
            now,
            Err(DecryptionFailed),
        ),
        (
            "tampered tag",
            V5,
            tamper(v5, 4),
            now,
            Err(DecryptionFailed),
        ),
        (
            "tampered v4 ciphertext",
            V4,
            tamper(v4, 3),
            now,
            Err(DecryptionFailed),
        ),
        (
            "tampered v4 tag",
            V4,
            tamper(v4, 4),
            now,
            Err(DecryptionFailed),
        ),
        ("truncated tag", V5, short_tag, now, Err(BadTagLength)),
        ("gcm iv of 8 bytes", V5, short_gcm_iv, now, Err(BadIvLength)),
        ("four parts", V5, four_parts, now, Err(Malformed)),
        ("six parts", V5, six_parts, now, Err(Malformed)),
        (
            "alg A256KW",
            V5,
            with_header(v5, |h| {
                h["alg"] = "A256KW".into();
            }),
            now,
            Err(UnsupportedAlgorithm),
        ),
        (
            "alg missing",
            V5,
            with_header(v5, |h| {
                h.remove("alg");
            }),
            now,
            Err(UnsupportedAlgorithm),
        ),
        (
            "alg none",
            V5,
            with_header(v5, |h| {
                h["alg"] = "none".into();
            }),
            now,
            Err(UnsupportedAlgorithm),
        ),
        (
            "enc A128CBC-HS256",
            V5,
            with_header(v5, |h| {
                h["enc"] = "A128CBC-HS256".into();
            }),
            now,
            Err(UnsupportedEncryption),
        ),
        (
            "enc not a string",
            V5,
            with_header(v5, |h| {
                h["enc"] = 5.into();
            }),
            now,
            Err(UnsupportedEncryption),
        ),
        (
            "A256CBC-HS512 under a v4 name",
            V4,
            v5.clone(),
            now,
            Err(UnsupportedEncryption),
        ),
        (
            "zip present (real jose token)",
            V5,
            f.token("v5-zip").token.clone(),
            now,
            Err(Compressed),
        ),
        (
            "crit present",
            V5,
            with_header(v5, |h| {
                h.insert("crit".into(), serde_json::json!(["exp"]));
            }),
            now,
            Err(CriticalHeader),
        ),
        (
            "encrypted key present",
            V5,
            with_part(v5, 1, "AAAA"),
            now,
            Err(UnexpectedEncryptedKey),
        ),
        (
            "header not an object",
            V5,
            not_object_header,
            now,
            Err(BadHeader),
        ),
        (
            "iv not base64url",
            V5,
            with_part(v5, 2, "!!!!"),
            now,
            Err(BadBase64),
        ),
        ("padded tag", V5, format!("{v5}="), now, Err(BadBase64)),
        (
            "unknown kid",
            V5,
            f.token("v5-unknown-kid").token.clone(),
            now,
            Err(NoMatchingKey),
        ),
        (
            "kid not a string",
            V5,
            f.token("v5-numeric-kid").token.clone(),
            now,
            Err(NoMatchingKey),
        ),
        (
            "no kid, second secret",
            V5,
            f.token("v5-no-kid-previous-secret").token.clone(),
            now,
            Err(DecryptionFailed),
        ),
        (
            "expired beyond tolerance",
            V5,
            f.token("v5-short-lived").token.clone(),
            short_exp + 15,
            Err(Expired),
        ),
        (
            "expired within tolerance",
            V5,
            f.token("v5-short-lived").token.clone(),
            short_exp + 14,
            Ok("user_42"),
        ),
        (
            "nbf beyond tolerance",
            V5,
            f.token("v5-nbf-future").token.clone(),
            nbf - 16,
            Err(NotYetValid),
        ),
        (
            "nbf within tolerance",
            V5,
            f.token("v5-nbf-future").token.clone(),
            nbf - 15,
            Ok("user_42"),
        ),
        (
            "iat in the future is fine",
            V5,
            f.token("v5-iat-future").token.clone(),
            now,
            Ok("user_42"),
        ),
        (
            "no exp at all",
            V5,
            f.token("v5-no-exp").token.clone(),
            now + 10 * 365 * 86400,
            Ok("user_42"),
        ),
        (
            "iat a string",
            V5,
            f.token("v5-iat-string").token.clone(),
            now,
            Err(InvalidClaim("iat")),
        ),
        (
            "exp a string",
            V5,
            f.token("v5-exp-string").token.clone(),
            now,
            Err(InvalidClaim("exp")),
        ),
        (
            "nbf null",
            V5,
            f.token("v5-nbf-null").token.clone(),
            now,
            Err(InvalidClaim("nbf")),
        ),
        ("oversized", V5, oversized, now, Err(TooLarge)),
        (
            "plaintext not UTF-8",
            V5,
            f.token("v5-not-utf8").token.clone(),
            now,
            Err(NotUtf8),
        ),
        (
            "claims an array",
            V5,
            f.token("v5-array-payload").token.clone(),
            now,
            Err(ClaimsNotObject),
        ),
        (
            "claims a string",
            V5,
            f.token("v5-string-payload").token.clone(),
            now,
            Err(ClaimsNotObject),
        ),
        (
            "claims not JSON",
            V5,
            f.token("v5-not-json").token.clone(),
            now,
            Err(ClaimsNotObject),
        ),
        (
            "claims empty",
            V5,
            f.token("v5-empty-payload").token.clone(),
            now,
            Err(ClaimsNotObject),
        ),
        (
            "missing sub",
            V5,
            f.token("v5-no-sub").token.clone(),
            now,
            Err(MissingSubject),
        ),
        (
            "numeric sub",
            V5,
            f.token("v5-numeric-sub").token.clone(),
            now,
            Err(MissingSubject),
        ),
        (
            "empty sub",
            V5,
            f.token("v5-empty-sub").token.clone(),
            now,
            Err(MissingSubject),
        ),
        (
            "header sub differs",
            V5,
            f.token("v5-header-sub-mismatch").token.clone(),
            now,
            Err(HeaderClaimMismatch("sub")),
        ),
        (
            "header aud differs",
            V5,
            f.token("v5-header-aud-mismatch").token.clone(),
            now,
            Err(HeaderClaimMismatch("aud")),
        ),
        (
            "header sub equal",
            V5,
            f.token("v5-header-sub-match").token.clone(),
            now,
            Ok("user_42"),
        ),
        (
            "name not read by the verifier",
            "custom.session",
            v5.clone(),
            now,
            Err(NoMatchingKey),
        ),
    ];
    assert_eq!(
        cases.len(),
        50,
        "SECURITY.md (Token forgery) counts 50 cases"
    );
    for (name, cookie, token, at, expected) in &cases {
        let got = verifier.decode(cookie, token, *at);
        match expected {
            Ok(sub) => assert_eq!(got.map(|s| s.sub.clone()).as_deref(), Ok(*sub), "{name}"),
            Err(e) => {
                let err = got.expect_err(name);
                assert_eq!(&err, e, "{name}");
                // Reasons never echo token content.
                let shown = err.to_string();
                assert!(
                    shown.len() < 80 && !shown.contains(&token[..12]),
                    "{name}: {shown}"
                );
            }
        }
    }
}
