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

mod attacks;
mod cookies;

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
    serde_json::from_str(include_str!("../fixtures/nextauth/tokens.json"))
        .expect("tokens.json parses")
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
