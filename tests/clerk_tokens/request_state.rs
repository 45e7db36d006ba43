//! Clerk's request-state rules: which token a request carries and what its verification means.

use super::*;

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
