//! Sessions read from cookie headers: both cookie schemes, chunked cookies, which name wins,
//! and database sessions handed on.

use super::*;

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
