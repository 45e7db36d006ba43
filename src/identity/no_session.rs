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
//!
//! Before it asks, the JS entry scans the header for the names themselves
//! ([`SessionCookieNames::marks`]): a header that contains none of them anywhere (nor a
//! handshake's parameter), or holds them only as Clerk's signed-out `__client_uat=0` pairs
//! ([`SessionCookieNames::signed_out_marks`]), holds no cookie the resolver reads, so it needs
//! no answer from wasm. That scan is stricter still (a name inside another cookie's value
//! counts), and most anonymous page loads pass it.

use super::clerk::{CLIENT_UAT_COOKIE, SESSION_COOKIE};
use super::resolver::IdentityResolver;
use crate::cookies;
use crate::handshake::HANDSHAKE_PARAM;

/// The cookie names this isolate's resolver reads, gathered once.
#[derive(Debug, Clone, Default)]
pub struct SessionCookieNames {
    /// NextAuth's session cookie names: a cookie whose name starts with one is read (the plain
    /// cookie or a chunk), or refused.
    nextauth: Vec<String>,
    /// Clerk's `__session` and `__client_uat`, plain and suffixed for this instance.
    clerk: Vec<String>,
    /// Every name above and the handshake's parameter, NUL-separated (see [`Self::marks`]).
    marks: String,
    /// Clerk's `__client_uat` names, NUL-separated (see [`Self::signed_out_marks`]).
    signed_out: String,
}

impl SessionCookieNames {
    pub fn of(resolver: &IdentityResolver) -> Self {
        let nextauth: Vec<String> = resolver
            .nextauth()
            .map(|n| n.cookie_names().map(str::to_string).collect())
            .unwrap_or_default();
        let clerk: Vec<String> = resolver
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
        let marks = nextauth
            .iter()
            .chain(&clerk)
            .map(String::as_str)
            .chain([HANDSHAKE_PARAM])
            .collect::<Vec<_>>()
            .join("\0");
        let mut names = SessionCookieNames {
            nextauth,
            clerk,
            marks,
            signed_out: String::new(),
        };
        names.signed_out = names
            .clerk
            .iter()
            .filter(|name| !names.reads(name, "0"))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\0");
        names
    }

    /// The strings a `Cookie` header must contain somewhere for [`Self::none_in`] to be asked,
    /// NUL-separated (no cookie name holds a NUL): every name the resolver reads, and the
    /// handshake's parameter. A cookie is read only under a name that is, or starts with, one
    /// of them, and names are taken from the header as they stand (no decoding), so a header
    /// containing none of them holds no session: `none_in` would answer `true`.
    pub fn marks(&self) -> &str {
        &self.marks
    }

    /// The marks a cookie may carry with the value `0` and still hold no session, NUL-separated:
    /// Clerk's `__client_uat` names (plain and suffixed), which Clerk sets to `0` for every
    /// signed-out visitor, unless a NextAuth name also reads them. A header whose every
    /// `;`-separated pair holding a mark is one of these names with the value `0` (as
    /// [`cookies::pairs`] splits and trims them) holds no session either.
    pub fn signed_out_marks(&self) -> &str {
        &self.signed_out
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

    /// The JS entry's scan (`src/proxy.js` `mayHoldSession`): some mark occurs in the header,
    /// other than as a signed-out `__client_uat…=0` pair.
    fn marked(r: &IdentityResolver, cookie: &str) -> bool {
        let names = SessionCookieNames::of(r);
        let marks: Vec<&str> = names
            .marks()
            .split('\0')
            .filter(|n| !n.is_empty())
            .collect();
        let signed_out: Vec<&str> = names
            .signed_out_marks()
            .split('\0')
            .filter(|n| !n.is_empty())
            .collect();
        cookie.split(';').any(|segment| {
            marks.iter().any(|m| segment.contains(m))
                && !cookies::split_pair(segment)
                    .is_some_and(|(name, value)| value == "0" && signed_out.contains(&name))
        })
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
    fn the_js_scan_passes_only_headers_the_check_passes() {
        for config in [
            &[("NEXTAUTH_SECRET", "s")][..],
            &CLERK_LIVE[..],
            &[CLERK_LIVE[0], CLERK_LIVE[1], ("NEXTAUTH_SECRET", "s")][..],
        ] {
            let r = resolver(config);
            for cookie in NO_SESSION.iter().chain(SESSION) {
                if !marked(&r, cookie) {
                    assert!(holds_no_session(&r, cookie), "{cookie:?}");
                }
            }
        }
        let both = resolver(&[CLERK_LIVE[0], CLERK_LIVE[1], ("NEXTAUTH_SECRET", "s")]);
        // Every header holding a session, and a handshake carried back, is marked.
        for cookie in SESSION
            .iter()
            .copied()
            .chain(["__clerk_handshake=x", "theme=dark; __clerk_handshake=x.y.z"])
        {
            assert!(marked(&both, cookie), "{cookie:?}");
        }
        // The usual anonymous cookies pass without asking, Clerk's signed-out visitors' too.
        let suffix = both
            .clerk()
            .map(|c| c.publishable_key.suffixed("__client_uat").into_owned())
            .unwrap_or_default();
        for cookie in [
            "theme=dark".to_string(),
            "theme=dark; _ga=GA1.2.3; consent=yes".to_string(),
            "__client_uat=0".to_string(),
            format!("__client_uat=0; {suffix}=0; theme=dark"),
            format!(" {suffix} =\t0 ;_ga=1"),
        ] {
            assert!(!marked(&both, &cookie), "{cookie:?}");
        }
        // Any other value, or a mark elsewhere in the pair, is asked about.
        for cookie in [
            "__client_uat=00",
            "__client_uat=0 1",
            "__client_uat=0x",
            "__client_uat=",
            "x=__client_uat=0",
            "__client_uat=0__clerk_handshake",
            "__client_uat=0; __session=",
        ] {
            assert!(marked(&both, cookie), "{cookie:?}");
        }
        // A NextAuth name that also reads a `__client_uat` name takes it out of the signed-out
        // marks.
        let odd = resolver(&[
            CLERK_LIVE[0],
            CLERK_LIVE[1],
            ("NEXTAUTH_SECRET", "s"),
            ("NEXTAUTH_COOKIE_NAME", "__client"),
        ]);
        assert_eq!(SessionCookieNames::of(&odd).signed_out_marks(), "");
        assert!(!holds_no_session(&odd, "__client_uat=0"));
        assert!(marked(&odd, "__client_uat=0"));
        // Only the names of the configured side are marks.
        let clerk = resolver(&CLERK_LIVE);
        assert!(!marked(&clerk, "next-auth.session-token=a.b.c.d.e"));
        let nextauth = resolver(&[("NEXTAUTH_SECRET", "s")]);
        assert!(!marked(&nextauth, "__session=x.y.z"));
        assert!(marked(&nextauth, "__clerk_handshake=x"));
    }

    /// The table `tests/proxy-plan.test.mjs` holds `src/proxy.js` to: its marks are this
    /// worker's, and its cookies get the worker's answers.
    #[test]
    fn the_js_entrys_table_holds_this_workers_marks_and_answers() {
        #[derive(serde::Deserialize)]
        struct Table {
            marks: Vec<String>,
            signed_out: Vec<String>,
            forwarded_without_asking: Vec<String>,
            asked: Vec<String>,
            sessions: Vec<String>,
        }
        let table: Table =
            serde_json::from_str(include_str!("../../tests/fixtures/cookie-marks.json"))
                .expect("the table parses");
        let both = resolver(&[CLERK_LIVE[0], CLERK_LIVE[1], ("NEXTAUTH_SECRET", "s")]);
        let names = SessionCookieNames::of(&both);
        assert_eq!(names.marks(), table.marks.join("\0"));
        assert_eq!(names.signed_out_marks(), table.signed_out.join("\0"));
        for cookie in &table.forwarded_without_asking {
            assert!(!marked(&both, cookie), "{cookie:?}");
            assert!(holds_no_session(&both, cookie), "{cookie:?}");
            assert!(resolves_to_nothing(&both, cookie), "{cookie:?}");
        }
        for cookie in table.asked.iter().chain(&table.sessions) {
            assert!(marked(&both, cookie), "{cookie:?}");
        }
        for cookie in &table.sessions {
            assert!(!holds_no_session(&both, cookie), "{cookie:?}");
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
        let (mut said_none, mut tried, mut unmarked) = (0, 0, 0);
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
            if !marked(&both, &cookie) {
                unmarked += 1;
                assert!(holds_no_session(&both, &cookie), "{cookie:?}");
            }
        }
        // Both answers occur: the property was put to the test.
        assert!(
            said_none > 100 && said_none < tried - 100,
            "{said_none} of {tried}"
        );
        assert!(
            unmarked > 100 && unmarked < said_none,
            "{unmarked} of {tried}"
        );
    }

    #[test]
    fn a_configured_cookie_name_and_clerk_suffixed_cookies_are_read() {
        let named = resolver(&[
            ("NEXTAUTH_SECRET", "s"),
            ("NEXTAUTH_COOKIE_NAME", "app.session"),
        ]);
        assert!(!holds_no_session(&named, "app.session=a.b.c.d.e"));
        assert!(marked(&named, "app.session=a.b.c.d.e"));
        assert!(marked(&named, "app.session.0=a.b.c"));
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
        assert!(marked(&clerk, &suffixed), "{suffixed}");
        assert!(
            !resolves_to_nothing(&clerk, &suffixed),
            "a handshake: {suffixed}"
        );
    }
}
