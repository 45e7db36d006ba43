//! `nextauth_jwe`: `NextAuthVerifier::decode` (every v4 and v5 cookie name) on the input as a
//! token, and `session_from_cookies` on the input as a `Cookie` header. The verifiers are built
//! once from the fixture secrets, so the real tokens among the seeds decode and the claims
//! checks are reached.

use std::sync::OnceLock;

use auth_bridge::cookies::Cookies;
use auth_bridge::identity::nextauth::{
    NextAuthError, NextAuthOutcome, NextAuthVerifier, CLOCK_TOLERANCE_SECS, DEFAULT_COOKIE_NAMES,
    MAX_DATABASE_TOKEN_LEN,
};

use crate::common::{assert_not_revealed, nextauth_secrets, text, NEXTAUTH_NOW};

/// Override name used by the second verifier (v4 and v5 schemes under one name).
pub const OVERRIDE_NAME: &str = "custom.session-token";

pub struct Verifiers {
    pub defaults: NextAuthVerifier,
    pub overridden: NextAuthVerifier,
    pub no_secret: NextAuthVerifier,
}

pub fn verifiers() -> &'static Verifiers {
    static V: OnceLock<Verifiers> = OnceLock::new();
    V.get_or_init(|| Verifiers {
        defaults: NextAuthVerifier::new(&nextauth_secrets(), None),
        overridden: NextAuthVerifier::new(&nextauth_secrets(), Some(OVERRIDE_NAME)),
        no_secret: NextAuthVerifier::new(&[], None),
    })
}

pub fn run(data: &[u8]) {
    let input = text(data);
    let input = input.as_ref();
    let v = verifiers();
    let now = NEXTAUTH_NOW;

    for name in DEFAULT_COOKIE_NAMES {
        check_decode(&v.defaults, name, input, now);
        match v.no_secret.decode(name, input, now) {
            Err(NextAuthError::NoSecret | NextAuthError::TooLarge) => {}
            other => panic!("no secret, yet {other:?}"),
        }
    }
    check_decode(&v.overridden, OVERRIDE_NAME, input, now);
    // Names without derived keys never decode.
    assert!(v
        .overridden
        .decode("next-auth.session-token", input, now)
        .is_err());

    let cookies = Cookies::parse(input);
    check_outcome(&v.defaults, &cookies, now);
    check_outcome(&v.overridden, &cookies, now);
}

/// Decodes `token` as found in cookie `name`, asserting what holds for every outcome.
pub fn check_decode(verifier: &NextAuthVerifier, name: &str, token: &str, now: u64) {
    match verifier.decode(name, token, now) {
        Ok(session) => {
            assert!(!session.sub.is_empty());
            assert_eq!(session.cookie_name, name);
            assert_eq!(
                session.claims().get("sub").and_then(|s| s.as_str()),
                Some(session.sub.as_str())
            );
            if let Some(exp) = session.exp {
                assert!(
                    exp.saturating_add(CLOCK_TOLERANCE_SECS + 1) > now,
                    "expired session accepted"
                );
            }
        }
        Err(e) => {
            assert_not_revealed("NextAuthError Display", &e.to_string(), token);
            assert_not_revealed("NextAuthError Debug", &format!("{e:?}"), token);
        }
    }
}

fn check_outcome(verifier: &NextAuthVerifier, cookies: &Cookies<'_>, now: u64) {
    let outcome = verifier.session_from_cookies(cookies, now);
    let shown = format!("{outcome:?}");
    match &outcome {
        NextAuthOutcome::NoCookie => {
            for name in verifier.cookie_names() {
                assert_eq!(cookies.session_value(name), Ok(None));
            }
        }
        NextAuthOutcome::Session(s) => {
            assert!(verifier.cookie_names().any(|n| n == s.cookie_name));
            assert!(!s.sub.is_empty());
        }
        NextAuthOutcome::DatabaseSession { cookie_name, token } => {
            assert!(verifier.cookie_names().any(|n| n == cookie_name));
            assert!(!token.is_empty() && token.len() <= MAX_DATABASE_TOKEN_LEN);
            assert!(!token.contains([';', ',', '"', '\\', ' ']));
            // The cookie's name is public: a token that is a piece of it (`hjs.session-token`
            // in `authjs.session-token`) shows there, and must show nowhere else.
            let shown = shown.replace(cookie_name.as_str(), "");
            assert_not_revealed("DatabaseSession Debug", &shown, token);
        }
        NextAuthOutcome::Rejected(e) => {
            let reason = e.to_string();
            for (_, value) in cookies.iter() {
                assert_not_revealed("NextAuthError Display", &reason, value);
            }
        }
    }
}
