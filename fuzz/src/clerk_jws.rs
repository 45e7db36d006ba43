//! `clerk_jws`: Clerk session tokens and keys. The input goes, as a whole, to
//! `UntrustedClerkToken::parse` (+ `validate`), `PublishableKey::parse`, `Jwks::parse`,
//! `RsaPublicKey::from_pem` and `from_der`; split at its first `\n` it is a `Cookie` header and
//! an `Authorization` header for `session_token_from_request`.

use std::sync::OnceLock;

use auth_bridge::cookies::Cookies;
use auth_bridge::identity::clerk::{
    session_token_from_request, ClerkTokenSource, ClerkValidation, Jwks, PublishableKey,
    RsaPublicKey, UntrustedClerkToken,
};

use crate::common::{assert_not_revealed, split_line, text};

/// Development key for `happy-hippo-42.clerk.accounts.dev`, production key for
/// `clerk.example.com` (the values of tests/clerk_tokens/main.rs).
pub const DEV_PK: &str = "pk_test_aGFwcHktaGlwcG8tNDIuY2xlcmsuYWNjb3VudHMuZGV2JA";
pub const LIVE_PK: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";
pub const AZP: &str = "https://app.example.com";
/// `now` of the seeds: their `iat` / `exp` bracket it.
pub const NOW: u64 = 1_760_000_000;

struct Context {
    keys: [PublishableKey; 2],
    validations: Vec<ClerkValidation>,
}

fn context() -> &'static Context {
    static C: OnceLock<Context> = OnceLock::new();
    C.get_or_init(|| {
        let dev = PublishableKey::parse(DEV_PK).expect("dev key");
        let live = PublishableKey::parse(LIVE_PK).expect("live key");
        let validations = vec![
            ClerkValidation::new(&live),
            ClerkValidation::new(&live).with_authorized_parties_csv(&format!("{AZP}/, ,")),
            ClerkValidation::new(&dev),
        ];
        Context {
            keys: [dev, live],
            validations,
        }
    })
}

pub fn run(data: &[u8]) {
    let input = text(data);
    let input = input.as_ref();
    let ctx = context();

    token(ctx, input);
    publishable_key(input);
    jwks(input);
    if let Ok(key) = RsaPublicKey::from_pem(input) {
        check_key(&key);
    }
    if let Ok(key) = RsaPublicKey::from_der(data) {
        check_key(&key);
    }
    request(ctx, input, data.first().is_some_and(|b| b & 1 == 1));
}

fn token(ctx: &Context, input: &str) {
    let untrusted = match UntrustedClerkToken::parse(input) {
        Ok(t) => t,
        Err(e) => {
            assert_not_revealed("ClerkTokenError", &e.to_string(), input);
            return;
        }
    };
    assert!(!untrusted.kid().is_empty());
    assert!(!untrusted.signature().is_empty());
    let signing_input = untrusted.signing_input();
    assert!(input.as_bytes().starts_with(signing_input));
    assert_eq!(input.as_bytes().get(signing_input.len()), Some(&b'.'));
    // The claims read as the token is parsed are the whole map's.
    let claims = untrusted.unverified_claims();
    for name in [
        "sub", "sid", "azp", "iss", "exp", "nbf", "iat", "sts", "email", "o",
    ] {
        assert_eq!(claims.get(name), claims.all().get(name), "{name}");
    }

    for validation in &ctx.validations {
        match untrusted.clone().validate(validation, NOW) {
            Ok(session) => {
                assert!(!session.user_id.is_empty() && !session.user_id.starts_with("mch_"));
                assert!(session.session_id.as_deref().is_some_and(|s| !s.is_empty()));
                assert!(session.exp.saturating_add(validation.leeway) > NOW);
                assert!(session.iat <= NOW + validation.leeway);
                assert_eq!(
                    session.claims.get("iss").and_then(|v| v.as_str()),
                    Some(validation.issuer.as_str())
                );
                if !validation.authorized_parties.is_empty() {
                    assert_eq!(
                        session.claims.get("azp").and_then(|v| v.as_str()),
                        Some(AZP)
                    );
                }
            }
            Err(e) => assert_not_revealed("ClerkTokenError", &e.to_string(), input),
        }
    }
}

fn publishable_key(input: &str) {
    match PublishableKey::parse(input) {
        Ok(pk) => {
            assert_eq!(pk.as_str(), input.trim());
            assert!(pk.frontend_api().contains('.'));
            assert_eq!(pk.issuer(), format!("https://{}", pk.frontend_api()));
            assert_eq!(pk.cookie_suffix().len(), 8);
            assert_eq!(pk.is_development(), input.trim().starts_with("pk_test_"));
            let _ = ClerkValidation::new(&pk);
        }
        Err(e) => assert_not_revealed("PublishableKeyError", &e.to_string(), input),
    }
}

fn jwks(input: &str) {
    if let Ok(jwks) = Jwks::parse(input) {
        assert!(!jwks.is_empty());
        let kids: Vec<&str> = jwks.kids().collect();
        assert_eq!(kids.len(), jwks.len());
        for (i, kid) in kids.iter().enumerate() {
            assert!(!kid.is_empty());
            assert!(!kids[..i].contains(kid), "duplicate kid kept");
            check_key(jwks.get(kid).expect("listed kid"));
        }
    }
}

fn check_key(key: &RsaPublicKey) {
    assert!((256..=1024).contains(&key.modulus_len()));
    assert_ne!(key.modulus()[0], 0);
    let e = key.exponent();
    assert!(!e.is_empty() && e.len() <= 4 && e[e.len() - 1] & 1 == 1);
    assert_eq!(
        RsaPublicKey::from_components(key.modulus(), key.exponent()).as_ref(),
        Ok(key)
    );
    assert_eq!(key.fingerprint().len(), 32);
}

fn request(ctx: &Context, input: &str, dev_browser_in_query: bool) {
    let (header, authorization) = split_line(input);
    let cookies = Cookies::parse(header);
    let cookie = |name: &str| cookies.get(name);
    for pk in &ctx.keys {
        match session_token_from_request(&cookie, authorization, dev_browser_in_query, pk, NOW) {
            ClerkTokenSource::Bearer(token) => {
                assert!(!token.is_empty());
                assert!(authorization.is_some_and(|a| a.contains(token)));
            }
            ClerkTokenSource::Cookie { token, client_uat } => {
                assert!(client_uat > 0);
                assert!(!token.is_empty());
                assert!(cookies.iter().any(|(_, v)| v == token));
            }
            ClerkTokenSource::SignedOut(_) | ClerkTokenSource::NeedsHandshake(_) => {}
        }
    }
}
