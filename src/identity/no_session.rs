//! Whether a request's cookies hold nothing the resolver reads: no Clerk session token or
//! `__client_uat` (plain or suffixed), and no NextAuth session cookie (plain or chunked, under
//! any of the names it reads). Most anonymous page loads carry cookies (consent, analytics,
//! preferences); such a request resolves to "anonymous" with nothing to verify or look up, and
//! the JS entry forwards it as it forwards a request without cookies (see `fast_path`) once
//! this check says so.
//!
//! The check runs on requests the worker would otherwise not enter at all, so it is kept small:
//! the names come from the resolver once per isolate ([`SessionCookieNames::of`]), and a
//! request's cookies are scanned in place, with no allocation and no decoding. It is stricter
//! than the resolver, never looser: any non-empty cookie under one of those names (or extending
//! a NextAuth name, as chunks do) is left to the resolver, even where it would skip it (a
//! duplicate, an oversized value, a plain cookie beside this instance's suffixed ones). Only
//! `__client_uat=0`, which Clerk reads as signed out, is not. The tests hold it to the
//! resolver's own answers.

use super::clerk::{CLIENT_UAT_COOKIE, SESSION_COOKIE};
use super::resolver::IdentityResolver;
use crate::cookies;

/// The cookie names this isolate's resolver reads, gathered once.
#[derive(Debug, Clone, Default)]
pub struct SessionCookieNames {
    /// NextAuth's session cookie names: a cookie whose name starts with one is read (the plain
    /// cookie or a chunk), or refused.
    nextauth: Vec<String>,
    /// Clerk's `__session` and `__client_uat`, plain and suffixed for this instance.
    clerk: Vec<String>,
}

impl SessionCookieNames {
    pub fn of(resolver: &IdentityResolver) -> Self {
        let nextauth = resolver
            .nextauth()
            .map(|n| n.cookie_names().map(str::to_string).collect())
            .unwrap_or_default();
        let clerk = resolver
            .clerk()
            .map(|c| {
                [SESSION_COOKIE, CLIENT_UAT_COOKIE]
                    .into_iter()
                    .flat_map(|name| {
                        [
                            name.to_string(),
                            c.publishable_key.suffixed(name).into_owned(),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        SessionCookieNames { nextauth, clerk }
    }

    /// Whether [`IdentityResolver::resolve`] of a request with exactly this `Cookie` header,
    /// no `Authorization` and no dev-browser query parameter can only answer "anonymous" with
    /// nothing to verify, look up or log: no cookie under a name it reads has a value (but
    /// `0` for a `__client_uat`). `false` leaves the request to the resolver.
    pub fn none_in(&self, cookie_header: &str) -> bool {
        cookies::pairs(cookie_header)
            .all(|(name, value)| value.is_empty() || !self.reads(name, value))
    }

    /// Whether the resolver reads (or refuses) a cookie `name` with a non-empty `value`.
    fn reads(&self, name: &str, value: &str) -> bool {
        if self
            .nextauth
            .iter()
            .any(|base| name.starts_with(base.as_str()))
        {
            return true;
        }
        // Clerk reads `__client_uat=0` as signed out.
        self.clerk.iter().any(|clerk| clerk == name)
            && !(value == "0" && name.starts_with(CLIENT_UAT_COOKIE))
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::identity::clerk::{ClerkRequestState, SignedOutReason};
    use crate::identity::resolver::memo_tests::{resolver, CLERK_LIVE};
    use crate::identity::resolver::RequestFacts;
    use crate::identity::Source;

    const NOW: u64 = 1_800_000_000;

    fn holds_no_session(r: &IdentityResolver, cookie: &str) -> bool {
        SessionCookieNames::of(r).none_in(cookie)
    }

    /// What the resolver itself concludes: anonymous, with Clerk (when configured) seeing no
    /// token at all.
    fn resolves_to_nothing(r: &IdentityResolver, cookie: &str) -> bool {
        let facts = RequestFacts {
            cookie_header: Some(cookie),
            authorization: None,
            dev_browser_in_query: false,
            origin_base: "http://origin.example",
            client_address: Some("203.0.113.7"),
        };
        let resolution = block_on(r.resolve(&facts, None, NOW));
        resolution.identity.source == Source::Anonymous
            && resolution.killed_nextauth_cookie.is_none()
            && resolution.nextauth.is_none()
            && resolution.clerk.as_ref().is_none_or(|state| {
                matches!(
                    state,
                    ClerkRequestState::SignedOut(SignedOutReason::SessionTokenAndUatMissing)
                )
            })
    }

    const NO_SESSION: &[&str] = &[
        "",
        "theme=dark",
        "theme=dark; _ga=GA1.2.3; consent=yes",
        // Deleted cookies: an empty value is an absent cookie to both.
        "next-auth.session-token=; __session=",
        "authjs.session-token=",
        // Clerk's `__client_uat=0` is "signed out" with nothing to verify.
        "__client_uat=0",
        // Names that only look alike.
        "my__session=x; session=y; next-auth.csrf-token=z; next-auth.callback-url=/",
        "__clerk_db_jwt=dvb_x",
    ];

    const SESSION: &[&str] = &[
        "next-auth.session-token=a.b.c.d.e",
        "__Secure-next-auth.session-token=a.b.c.d.e",
        "theme=dark; next-auth.session-token.0=a.b.c; next-auth.session-token.1=.d.e",
        "authjs.session-token=a.b.c.d.e",
        "__Secure-authjs.session-token.0=x",
        // Refused rather than absent: still the resolver's to answer (and log).
        "next-auth.session-token=not-a-token",
        "next-auth.session-token=x; next-auth.session-token.0=y",
        // A name that extends the session cookie's is refused as a bad chunk, not ignored.
        "next-auth.session-tokens=x",
        // A database session's opaque token.
        "next-auth.session-token=7f9c2ba4-e88f-4d4a-8b1d-2d3e4f5a6b7c",
        "__session=x.y.z",
        "__client_uat=1700000000",
        "__session=x.y.z; __client_uat=1700000000",
    ];

    #[test]
    fn cookies_without_a_session_resolve_to_nothing_and_the_check_agrees() {
        for config in [
            &[("NEXTAUTH_SECRET", "s")][..],
            &CLERK_LIVE[..],
            &[CLERK_LIVE[0], CLERK_LIVE[1], ("NEXTAUTH_SECRET", "s")][..],
        ] {
            let r = resolver(config);
            for cookie in NO_SESSION {
                assert!(holds_no_session(&r, cookie), "{cookie:?}");
                assert!(resolves_to_nothing(&r, cookie), "{cookie:?}");
            }
        }
    }

    #[test]
    fn any_cookie_the_resolver_reads_is_left_to_it() {
        let both = resolver(&[CLERK_LIVE[0], CLERK_LIVE[1], ("NEXTAUTH_SECRET", "s")]);
        for cookie in SESSION {
            assert!(!holds_no_session(&both, cookie), "{cookie:?}");
        }
        // Each side reads only its own cookies.
        let nextauth = resolver(&[("NEXTAUTH_SECRET", "s")]);
        assert!(holds_no_session(&nextauth, "__session=x.y.z"));
        assert!(!holds_no_session(
            &nextauth,
            "next-auth.session-token=a.b.c.d.e"
        ));
        let clerk = resolver(&CLERK_LIVE);
        assert!(holds_no_session(
            &clerk,
            "next-auth.session-token=a.b.c.d.e"
        ));
        assert!(!holds_no_session(&clerk, "__client_uat=1700000000"));
    }

    /// Cookie headers made of names either side reads (plain, prefixed, chunked, suffixed) and
    /// others, with empty and odd values: whenever the check says "no session", the resolver
    /// itself concludes the same.
    #[test]
    fn the_check_never_says_no_session_where_the_resolver_finds_one() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        let both = resolver(&[CLERK_LIVE[0], CLERK_LIVE[1], ("NEXTAUTH_SECRET", "s")]);
        let suffixed = |name: &str| match both.clerk() {
            Some(ctx) => ctx.publishable_key.suffixed(name).into_owned(),
            None => name.to_string(),
        };
        let names = [
            "theme".to_string(),
            "_ga".to_string(),
            "session".to_string(),
            "next-auth.session-token".to_string(),
            "next-auth.session-token.0".to_string(),
            "next-auth.session-token.1".to_string(),
            "__Secure-next-auth.session-token".to_string(),
            "authjs.session-token".to_string(),
            "__Secure-authjs.session-token.0".to_string(),
            "next-auth.csrf-token".to_string(),
            "next-auth.session-token.x".to_string(),
            " next-auth.session-token ".to_string(),
            "__session".to_string(),
            "__sessions".to_string(),
            "__client_uat".to_string(),
            suffixed("__session"),
            suffixed("__client_uat"),
            "__clerk_db_jwt".to_string(),
        ];
        let long = "v".repeat(crate::cookies::MAX_COOKIE_VALUE_LEN + 1);
        let values = [
            "",
            "0",
            "00",
            "+0",
            " 0 ",
            "-1",
            "1700000000",
            "a.b.c.d.e",
            "x.y.z",
            "dark",
            "\"quoted\"",
            "\"\"",
            long.as_str(),
        ];
        let mut rng = StdRng::seed_from_u64(11);
        let (mut said_none, mut tried) = (0, 0);
        for _ in 0..5000 {
            let pairs: Vec<String> = (0..rng.gen_range(1..=6))
                .map(|_| {
                    let name = &names[rng.gen_range(0..names.len())];
                    let value = values[rng.gen_range(0..values.len())];
                    format!("{name}={value}")
                })
                .collect();
            let cookie = pairs.join("; ");
            tried += 1;
            if holds_no_session(&both, &cookie) {
                said_none += 1;
                assert!(resolves_to_nothing(&both, &cookie), "{cookie:?}");
            }
        }
        // Both answers occur: the property was put to the test.
        assert!(
            said_none > 100 && said_none < tried - 100,
            "{said_none} of {tried}"
        );
    }

    #[test]
    fn a_configured_cookie_name_and_clerk_suffixed_cookies_are_read() {
        let named = resolver(&[
            ("NEXTAUTH_SECRET", "s"),
            ("NEXTAUTH_COOKIE_NAME", "app.session"),
        ]);
        assert!(!holds_no_session(&named, "app.session=a.b.c.d.e"));
        assert!(holds_no_session(
            &named,
            "next-auth.session-token=a.b.c.d.e"
        ));

        let clerk = resolver(&CLERK_LIVE);
        let suffix = match clerk.clerk() {
            Some(ctx) => ctx.publishable_key.suffixed("__client_uat"),
            None => unreachable!("Clerk is configured"),
        };
        let suffixed = format!("{suffix}=1700000000");
        assert!(!holds_no_session(&clerk, &suffixed), "{suffixed}");
        assert!(
            !resolves_to_nothing(&clerk, &suffixed),
            "a handshake: {suffixed}"
        );
    }
}
