//! NextAuth v4 / Auth.js v5 session decoding against tokens minted by the real packages
//! (`tests/fixtures/nextauth/mint.mjs`), plus an attack table of tampered and hostile tokens.

use auth_bridge::cookies::{ChunkError, Cookies};
use auth_bridge::identity::nextauth::{
    NextAuthError, NextAuthOutcome, NextAuthSession, NextAuthVerifier, NextAuthVersion,
    MAX_TOKEN_LEN,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Fixture {
    secrets: Vec<String>,
    now: u64,
    tokens: Vec<FixtureToken>,
    cookie_headers: Vec<FixtureHeader>,
}

#[derive(Deserialize)]
struct FixtureToken {
    label: String,
    version: String,
    cookie_name: String,
    token: String,
    upstream: String,
    claims: Option<serde_json::Map<String, Value>>,
    /// What the encoder was given, for tokens built with jose.
    minted_claims: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct FixtureHeader {
    label: String,
    header: String,
    upstream_sub: Option<String>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/nextauth/tokens.json")).expect("tokens.json parses")
}

impl Fixture {
    fn token(&self, label: &str) -> &FixtureToken {
        self.tokens
            .iter()
            .find(|t| t.label == label)
            .unwrap_or_else(|| panic!("no fixture {label}"))
    }
    fn header(&self, label: &str) -> &FixtureHeader {
        self.cookie_headers
            .iter()
            .find(|h| h.label == label)
            .unwrap_or_else(|| panic!("no header {label}"))
    }
    fn verifier(&self) -> NextAuthVerifier {
        NextAuthVerifier::new(&self.secrets, None)
    }
    fn claim_u64(&self, label: &str, claim: &str) -> u64 {
        let t = self.token(label);
        let claims = t.claims.as_ref().or(t.minted_claims.as_ref()).unwrap();
        claims[claim].as_f64().unwrap() as u64
    }
}

const V5: &str = "authjs.session-token";
const V4: &str = "next-auth.session-token";

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

/// Replaces one character in the middle of part `index` (keeps it valid base64url).
fn tamper(token: &str, index: usize) -> String {
    let mut p = parts(token);
    let mut chars: Vec<char> = p[index].chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    p[index] = chars.into_iter().collect();
    p.join(".")
}

fn with_part(token: &str, index: usize, value: &str) -> String {
    let mut p = parts(token);
    p[index] = value.to_owned();
    p.join(".")
}

/// Rewrites the protected header of `token` through `edit` (the tag no longer matches).
fn with_header(token: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let p = parts(token);
    let mut header: serde_json::Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&p[0]).unwrap()).unwrap();
    edit(&mut header);
    with_part(
        token,
        0,
        &URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
    )
}

#[test]
fn every_fixture_token_gets_the_upstream_verdict() {
    let f = fixture();
    let verifier = f.verifier();
    // Where we are deliberately stricter than next-auth / @auth/core.
    let stricter = ["v5-no-sub", "v5-numeric-sub", "v5-empty-sub", "v5-zip"];
    assert_eq!(
        f.tokens.len(),
        33,
        "SECURITY.md (Token forgery) counts 33 library tokens"
    );
    for t in &f.tokens {
        let ours = verifier.decode(&t.cookie_name, &t.token, f.now);
        let upstream_ok = t.upstream == "ok";
        if stricter.contains(&t.label.as_str()) {
            assert!(upstream_ok && ours.is_err(), "{}: {ours:?}", t.label);
            continue;
        }
        assert_eq!(
            ours.is_ok(),
            upstream_ok,
            "{}: ours {ours:?}, upstream {}",
            t.label,
            t.upstream
        );
        if let Ok(session) = ours {
            assert_eq!(Some(&session.claims()), t.claims.as_ref(), "{}", t.label);
            assert_eq!(session.cookie_name, t.cookie_name);
            let version = if t.version == "v4" {
                NextAuthVersion::V4
            } else {
                NextAuthVersion::V5
            };
            assert_eq!(session.version, version, "{}", t.label);
        }
    }
}

#[test]
fn library_tokens_decode_to_the_expected_session() {
    let f = fixture();
    let verifier = f.verifier();
    for label in [
        "v4",
        "v4-secure",
        "v4-previous-secret",
        "v5",
        "v5-secure",
        "v5-previous-secret",
    ] {
        let t = f.token(label);
        let s: NextAuthSession = verifier.decode(&t.cookie_name, &t.token, f.now).unwrap();
        assert_eq!(s.sub, "user_42");
        assert_eq!(s.email.as_deref(), Some("ada@example.com"));
        assert_eq!(s.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(s.picture.as_deref(), Some("https://example.com/ada.png"));
        assert_eq!(s.claims()["role"], "admin");
        // Default lifetime of both libraries: 30 days after iat.
        assert_eq!(
            s.exp,
            Some(f.claim_u64(label, "iat") + 30 * 24 * 3600),
            "{label}"
        );
    }
}

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

#[test]
fn wrong_or_missing_secrets() {
    let f = fixture();
    let other = NextAuthVerifier::new(&["some-other-secret".to_owned()], None);
    assert_eq!(
        other.decode(V5, &f.token("v5").token, f.now).unwrap_err(),
        NextAuthError::NoMatchingKey
    );
    assert_eq!(
        other.decode(V4, &f.token("v4").token, f.now).unwrap_err(),
        NextAuthError::DecryptionFailed
    );
    // Only the previous secret: v4 tries it, v5 finds it by kid.
    let previous = NextAuthVerifier::new(&[f.secrets[1].clone()], None);
    assert!(previous
        .decode(V4, &f.token("v4-previous-secret").token, f.now)
        .is_ok());
    assert!(previous
        .decode(V5, &f.token("v5-previous-secret").token, f.now)
        .is_ok());
    assert_eq!(
        previous
            .decode(V5, &f.token("v5").token, f.now)
            .unwrap_err(),
        NextAuthError::NoMatchingKey
    );
    // Secrets are trimmed and empty entries ignored.
    let padded = NextAuthVerifier::new(&["  ".to_owned(), format!(" {} ", f.secrets[0])], None);
    assert!(padded.decode(V5, &f.token("v5").token, f.now).is_ok());
    let none = NextAuthVerifier::new(&[" ".to_owned()], None);
    assert!(!none.has_secrets());
    assert_eq!(
        none.decode(V5, &f.token("v5").token, f.now).unwrap_err(),
        NextAuthError::NoSecret
    );
}

#[test]
fn cookie_name_override_reads_both_schemes() {
    let f = fixture();
    // The override equal to the v5 name: v5 tokens open (salt = that name), and so do v4 ones.
    let v = NextAuthVerifier::new(&f.secrets, Some(V5));
    assert_eq!(v.cookie_names().collect::<Vec<_>>(), vec![V5]);
    assert_eq!(
        v.decode(V5, &f.token("v5").token, f.now).unwrap().version,
        NextAuthVersion::V5
    );
    assert_eq!(
        v.decode(V5, &f.token("v5-gcm-no-kid").token, f.now)
            .unwrap()
            .version,
        NextAuthVersion::V5
    );
    let s = v.decode(V5, &f.token("v4").token, f.now).unwrap();
    assert_eq!(
        (s.version, s.cookie_name.as_str()),
        (NextAuthVersion::V4, V5)
    );
    // Another name salts v5 keys differently: the v5 token's kid matches nothing.
    let custom = NextAuthVerifier::new(&f.secrets, Some("app.session"));
    assert_eq!(
        custom
            .decode("app.session", &f.token("v5").token, f.now)
            .unwrap_err(),
        NextAuthError::NoMatchingKey
    );
    assert!(custom
        .decode("app.session", &f.token("v4").token, f.now)
        .is_ok());
    let cookies = format!(
        "app.session={}; {V5}={}",
        f.token("v4").token,
        f.token("v5").token
    );
    match custom.session_from_cookies(&Cookies::parse(&cookies), f.now) {
        NextAuthOutcome::Session(s) => assert_eq!(s.cookie_name, "app.session"),
        other => panic!("{other:?}"),
    }
}

fn outcome(f: &Fixture, header: &str) -> NextAuthOutcome {
    f.verifier()
        .session_from_cookies(&Cookies::parse(header), f.now)
}

fn sub_of(outcome: &NextAuthOutcome) -> Option<&str> {
    match outcome {
        NextAuthOutcome::Session(s) => Some(&s.sub),
        _ => None,
    }
}

#[test]
fn cookie_headers_get_the_upstream_verdict() {
    let f = fixture();
    for h in &f.cookie_headers {
        let ours = outcome(&f, &h.header);
        assert_eq!(
            sub_of(&ours),
            h.upstream_sub.as_deref(),
            "{}: {ours:?}",
            h.label
        );
    }
    let rejected = |label: &str| outcome(&f, &f.header(label).header);
    use NextAuthOutcome::Rejected;
    assert_eq!(
        rejected("v5-chunk-missing-middle"),
        Rejected(NextAuthError::Chunks(ChunkError::MissingChunk(1)))
    );
    assert_eq!(
        rejected("v5-chunks-with-plain"),
        Rejected(NextAuthError::Chunks(ChunkError::PlainAndChunks))
    );
    // Where the last chunk starts decides which check fails first.
    assert!(matches!(rejected("v5-chunk-missing-last"), Rejected(_)));
    assert_eq!(
        // The garbage replaces the chunk holding the header and the first dots.
        rejected("v5-chunk-duplicate-garbage-first"),
        Rejected(NextAuthError::Malformed)
    );
}

#[test]
fn chunks_are_split_at_the_library_sizes() {
    let f = fixture();
    let pieces = |label: &str| -> Vec<usize> {
        Cookies::parse(&f.header(label).header)
            .iter()
            .filter(|(n, _)| n.contains("session-token."))
            .map(|(_, v)| v.len())
            .collect()
    };
    let v5 = pieces("v5-chunks-in-order");
    let v4 = pieces("v4-chunks-in-order");
    assert!(v5.len() >= 3 && v4.len() >= 3);
    assert!(v5[..v5.len() - 1].iter().all(|&n| n == 3936));
    assert!(v4[..v4.len() - 1].iter().all(|&n| n == 3933));
}

#[test]
fn precedence_between_cookie_names() {
    let f = fixture();
    let v5 = &f.token("v5").token;
    let v5_secure = &f.token("v5-secure").token;
    let v4 = &f.token("v4").token;
    let name_of = |o: NextAuthOutcome| match o {
        NextAuthOutcome::Session(s) => s.cookie_name.clone(),
        other => panic!("{other:?}"),
    };
    // Auth.js before next-auth 4, __Secure- before plain.
    assert_eq!(name_of(outcome(&f, &format!("{V4}={v4}; {V5}={v5}"))), V5);
    assert_eq!(
        name_of(outcome(
            &f,
            &format!("{V5}={v5}; __Secure-{V5}={v5_secure}")
        )),
        format!("__Secure-{V5}")
    );
    assert_eq!(name_of(outcome(&f, &format!("{V4}={v4}"))), V4);
    // The first present cookie decides: an invalid v5 cookie does not fall back to v4.
    assert_eq!(
        outcome(&f, &format!("{V4}={v4}; {V5}={}", tamper(v5, 3))),
        NextAuthOutcome::Rejected(NextAuthError::DecryptionFailed)
    );
    // An empty cookie (a deletion) is no cookie.
    assert_eq!(name_of(outcome(&f, &format!("{V5}=; {V4}={v4}"))), V4);
    // First occurrence wins even when empty: the v5 cookie is absent, v4 is read.
    assert_eq!(
        name_of(outcome(&f, &format!("{V5}=; {V5}={v5}; {V4}={v4}"))),
        V4
    );
    assert_eq!(outcome(&f, "theme=dark"), NextAuthOutcome::NoCookie);
    assert_eq!(outcome(&f, ""), NextAuthOutcome::NoCookie);
}

#[test]
fn database_session_tokens_are_handed_on() {
    let f = fixture();
    let uuid = "6f1c2a1e-0d4b-4c55-9a3e-2b8f7d9e1c10";
    match outcome(&f, &format!("{V5}={uuid}")) {
        NextAuthOutcome::DatabaseSession { cookie_name, token } => {
            assert_eq!((cookie_name.as_str(), token.as_str()), (V5, uuid));
        }
        other => panic!("{other:?}"),
    }
    // Debug never shows the token.
    let shown = format!("{:?}", outcome(&f, &format!("{V4}={uuid}")));
    assert!(
        shown.contains("DatabaseSession") && !shown.contains(uuid),
        "{shown}"
    );
    // Three parts is not a JWE either, but too long for a database token.
    let long = format!("{}.{}.{}", "a".repeat(600), "b".repeat(600), "c");
    assert_eq!(
        outcome(&f, &format!("{V5}={long}")),
        NextAuthOutcome::Rejected(NextAuthError::Malformed)
    );
}

#[test]
fn session_debug_hides_claim_values() {
    let f = fixture();
    let s = f
        .verifier()
        .decode(V5, &f.token("v5").token, f.now)
        .unwrap();
    let shown = format!("{s:?}");
    assert!(shown.contains("user_42") && shown.contains("role"));
    assert!(
        !shown.contains("admin") && !shown.contains("ada@example.com"),
        "{shown}"
    );
    let verifier = format!("{:?}", f.verifier());
    assert!(!verifier.contains(&f.secrets[0]));
}

#[test]
fn fractional_exp_is_kept_in_whole_seconds() {
    let f = fixture();
    let t = f.token("v5-fractional-exp");
    let exp = t.claims.as_ref().unwrap()["exp"].as_f64().unwrap();
    let s = f.verifier().decode(V5, &t.token, f.now).unwrap();
    assert_eq!(s.exp, Some(exp.floor() as u64));
    // jose compares the unrounded value: expired once exp <= now - 15.
    let boundary = exp.ceil() as u64 + 15;
    assert_eq!(
        f.verifier().decode(V5, &t.token, boundary).unwrap_err(),
        NextAuthError::Expired
    );
    assert!(f.verifier().decode(V5, &t.token, boundary - 1).is_ok());
}

/// A verifier remembers the tokens it decoded: whatever it answered first, a repeated token
/// must get, at every later or earlier moment, exactly what a fresh verifier answers.
#[test]
fn remembered_sessions_answer_as_a_fresh_decode_would() {
    let f = fixture();
    let mut remembered = 0;
    for t in &f.tokens {
        let header = format!("{}={}", t.cookie_name, t.token);
        let warm = f.verifier();
        let first = warm.session_from_cookies(&Cookies::parse(&header), f.now);
        if let NextAuthOutcome::Session(_) = first {
            remembered += 1;
        }
        let exp = t
            .claims
            .as_ref()
            .or(t.minted_claims.as_ref())
            .and_then(|c| c.get("exp"))
            .and_then(Value::as_f64)
            .map(|e| e.ceil() as u64);
        let mut times = vec![
            0,
            f.now - 20,
            f.now - 16,
            f.now - 1,
            f.now,
            f.now + 1,
            f.now + 7200,
        ];
        if let Some(exp) = exp {
            times.extend([exp + 13, exp + 14, exp + 15, exp + 16]);
        }
        for now in times {
            let fresh = f
                .verifier()
                .session_from_cookies(&Cookies::parse(&header), now);
            let again = warm.session_from_cookies(&Cookies::parse(&header), now);
            assert_eq!(again, fresh, "{} at {now}", t.label);
        }
    }
    assert!(remembered > 3, "the fixture has valid sessions to remember");
}
