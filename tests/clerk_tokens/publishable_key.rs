//! The publishable key, as @clerk/shared reads it.

use super::*;

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
