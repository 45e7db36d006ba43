//! The resolver's memory of whole answers (see `memo`): what it remembers, and every bound that
//! ends a remembered answer (token expiry, a revoke, the `external_id` cache, the resolver).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::executor::block_on;
use serde_json::{json, Value};

use super::clerk_id::CachedId;
use super::tests::session;
use super::*;
use crate::identity::legacy_id::{self, Known};

const SECRET: &str = "memo-test-secret";
/// Clerk configured with a PEM key (no Backend API, nothing fetched).
pub(crate) const CLERK_LIVE: [(&str, &str); 2] = [
    ("CLERK_PUBLISHABLE_KEY", "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"),
    ("CLERK_JWT_KEY", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2sZzrs58RhWXufxULe5M\nM/1/OF/mTHlCMfF0Ufbqe40krshtlUHWIfHjIoOxwANl06Li3NNuMtsrZWTafg9f\nIrH5Di77jb5aFELRMHC/iPAnjtwP5hT6dGRf7LwuQroibOsDIlkkoaEwEC+EzxL7\n9Y7UcxjPvl1m+4CHe5m4KcMWJr5/lx5Rd59IZj6mQmWJbE+nf5RlhfsjV2d6xg46\nt0j2jWFBz7aGvlC9V77qzYWR0D3GJr+SNULxx5B50JStSIcZ5jRjRDVTmnPCT9zl\nzbQb9D//CHSH33SsLLHxhbFCFOKUivIvjsdcAEcjF2cC9Nf0Sll1/sMRpzZvz0Tp\n6QIDAQAB\n-----END PUBLIC KEY-----"),
];
const NOW: u64 = 1_800_000_000;

pub(crate) fn resolver(pairs: &[(&str, &str)]) -> IdentityResolver {
    IdentityResolver::new(&Config::from_pairs(pairs), None, &mut Vec::new())
}

fn nextauth_only() -> IdentityResolver {
    resolver(&[("NEXTAUTH_SECRET", SECRET)])
}

/// A next-auth v4 session token (A256GCM under the HKDF-derived key).
fn v4_token(secret: &str, claims: Value) -> String {
    let mut key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b""), secret.as_bytes())
        .expand(b"NextAuth.js Generated Encryption Key", &mut key)
        .unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"dir","enc":"A256GCM"}"#);
    let iv = [7u8; 12];
    let mut body = serde_json::to_vec(&claims).unwrap();
    let tag = aes_gcm::Aes256Gcm::new((&key).into())
        .encrypt_in_place_detached((&iv).into(), header.as_bytes(), &mut body)
        .unwrap();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    format!("{header}..{}.{}.{}", b64(&iv), b64(&body), b64(&tag))
}

fn session_cookie(claims: Value) -> String {
    format!(
        "theme=dark; next-auth.session-token={}",
        v4_token(SECRET, claims)
    )
}

fn facts(cookie: &str) -> RequestFacts<'_> {
    RequestFacts {
        cookie_header: Some(cookie),
        authorization: None,
        dev_browser_in_query: false,
        origin_base: "http://origin.example",
        client_address: Some("203.0.113.7"),
    }
}

/// Resolves `request` and remembers the answer as the gateway does.
fn resolve_and_remember(r: &IdentityResolver, request: &RequestFacts<'_>, now: u64) -> Resolution {
    let resolution = block_on(r.resolve(request, None, now));
    let mut headers = String::new();
    resolution.identity.push_headers(&mut headers);
    r.remember(request, &resolution, &headers, now);
    resolution
}

fn recalled_user(r: &IdentityResolver, request: &RequestFacts<'_>, now: u64) -> Option<String> {
    r.recall(request, false, now)
        .and_then(|hit| hit.answer.identity.user_id.clone())
}

/// Until when the answer recalled for `request` stands on the clock, if one is recalled.
fn standing_until(r: &IdentityResolver, request: &RequestFacts<'_>, now: u64) -> Option<u64> {
    r.recall(request, false, now)
        .and_then(|hit| hit.standing_until)
}

#[test]
fn a_remembered_nextauth_session_ends_with_its_token() {
    let r = nextauth_only();
    let exp = NOW + 100;
    let cookie = session_cookie(json!({"sub": "ada", "iat": NOW - 10, "exp": exp}));
    let request = facts(&cookie);
    assert_eq!(recalled_user(&r, &request, NOW), None);
    let resolution = resolve_and_remember(&r, &request, NOW);
    assert_eq!(resolution.identity.user_id.as_deref(), Some("ada"));
    let hit = r.recall(&request, false, NOW + 1).unwrap();
    assert_eq!(
        hit.answer.headers,
        "x-auth-source\0nextauth\0x-auth-user-id\0ada"
    );
    let last = exp + CLOCK_TOLERANCE_SECS - 1;
    assert_eq!(recalled_user(&r, &request, last), Some("ada".into()));
    assert_eq!(recalled_user(&r, &request, last + 1), None);
    let expired = block_on(r.resolve(&request, None, last + 1));
    assert_eq!(expired.identity.source, Source::Anonymous);
    // Another request, or the same one with a dev-browser query, is not answered from it.
    let other = session_cookie(json!({"sub": "bo", "iat": NOW - 10, "exp": exp}));
    assert_eq!(recalled_user(&r, &facts(&other), NOW + 1), None);
    let dev = RequestFacts {
        dev_browser_in_query: true,
        ..facts(&cookie)
    };
    assert_eq!(recalled_user(&r, &dev, NOW + 1), None);
}

#[test]
fn a_revoke_on_this_isolate_ends_a_remembered_session_at_once() {
    let r = nextauth_only();
    let cookie = session_cookie(json!({"sub": "ada", "iat": NOW - 10, "exp": NOW + 3000}));
    let request = facts(&cookie);
    resolve_and_remember(&r, &request, NOW);
    assert_eq!(recalled_user(&r, &request, NOW + 1), Some("ada".into()));
    revocation::kv::record_change("ada", Some(NOW + 1), NOW + 1);
    assert_eq!(recalled_user(&r, &request, NOW + 1), None);
    let refused = resolve_and_remember(&r, &request, NOW + 1);
    assert_eq!(refused.identity.source, Source::Anonymous);
    assert_eq!(
        refused.killed_nextauth_cookie.as_deref(),
        Some("next-auth.session-token")
    );
    assert_eq!(refused.reuse, None, "a refusal is not remembered");
    // Lifted: the session stands again, and is remembered again once the list is settled.
    revocation::kv::record_change("ada", None, NOW + 2);
    let lifted = resolve_and_remember(&r, &request, NOW + 2);
    assert_eq!(lifted.identity.user_id.as_deref(), Some("ada"));
    assert_eq!(recalled_user(&r, &request, NOW + 3), None);
    let later = NOW + 2 + revocation::LOCAL_OVERRIDE_SECS;
    resolve_and_remember(&r, &request, later);
    assert_eq!(recalled_user(&r, &request, later + 1), Some("ada".into()));
}

#[test]
fn answers_that_may_change_are_not_remembered() {
    let r = resolver(&[("NEXTAUTH_SECRET", SECRET), CLERK_LIVE[0], CLERK_LIVE[1]]);
    let token = v4_token(
        SECRET,
        json!({"sub": "ada", "iat": NOW - 10, "exp": NOW + 3000}),
    );
    let with = |extra: &str| format!("next-auth.session-token={token}; {extra}");
    // No Clerk session at all (signed out of Clerk): remembered.
    let settled = with("__client_uat=0");
    let resolution = resolve_and_remember(&r, &facts(&settled), NOW);
    assert_eq!(resolution.identity.user_id.as_deref(), Some("ada"));
    assert!(resolution.reuse.is_some());
    assert_eq!(
        recalled_user(&r, &facts(&settled), NOW + 1),
        Some("ada".into())
    );
    // A Clerk cookie that is refused, or that needs a handshake: Clerk may answer otherwise
    // next time, so the NextAuth answer is not remembered.
    for cookie in [
        with("__session=not-a-token; __client_uat=1700000000"),
        with("__session=x"),
        with("__client_uat=1700000000"),
    ] {
        let resolution = resolve_and_remember(&r, &facts(&cookie), NOW);
        assert_eq!(resolution.reuse, None, "{cookie}");
        assert_eq!(
            recalled_user(&r, &facts(&cookie), NOW + 1),
            None,
            "{cookie}"
        );
    }
    // A NextAuth token not valid yet, and a database session (its answer has its own memory,
    // and look-ups are capped per address), are resolved every time.
    let r = nextauth_only();
    let early = session_cookie(json!({"sub": "ada", "nbf": NOW + 600, "exp": NOW + 3000}));
    let resolution = block_on(r.resolve(&facts(&early), None, NOW));
    assert_eq!(resolution.reuse, None);
    let uuid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    let known = DatabaseSessionFacts {
        user_id: Some("db-user".into()),
        email: None,
    };
    let key = VerifiedCache::<()>::key(&["next-auth.session-token", uuid]);
    r.database_sessions
        .borrow_mut()
        .insert(key, Some(known), NOW + 30, NOW);
    let database = format!("next-auth.session-token={uuid}");
    let resolution = block_on(r.resolve(&facts(&database), None, NOW));
    assert_eq!(resolution.identity.user_id.as_deref(), Some("db-user"));
    assert_eq!(resolution.reuse, None);
    // Cookies without any session: anonymous, remembered.
    let plain = resolve_and_remember(&r, &facts("theme=dark"), NOW);
    assert_eq!(plain.identity.source, Source::Anonymous);
    assert!(r.recall(&facts("theme=dark"), false, NOW + 1).is_some());
}

#[test]
fn the_memory_belongs_to_one_resolver() {
    let a = nextauth_only();
    let b = resolver(&[("NEXTAUTH_SECRET", "another-secret")]);
    let cookie = session_cookie(json!({"sub": "ada", "iat": NOW - 10, "exp": NOW + 3000}));
    resolve_and_remember(&a, &facts(&cookie), NOW);
    assert_eq!(
        recalled_user(&a, &facts(&cookie), NOW + 1),
        Some("ada".into())
    );
    assert_eq!(recalled_user(&b, &facts(&cookie), NOW + 1), None);
    let resolution = block_on(b.resolve(&facts(&cookie), None, NOW + 1));
    assert_eq!(resolution.identity.source, Source::Anonymous);
}

#[test]
fn a_cached_external_id_bounds_the_answer() {
    let r = resolver(&CLERK_LIVE);
    let s = session(json!({}));
    let t0 = NOW;
    r.legacy_ids
        .borrow_mut()
        .remember("user_1", "sess_1", &Known::Legacy("legacy-1".into()), t0);
    let late = t0 + legacy_id::KNOWN_TTL_SECS - 100;
    let CachedId::Found(id, reuse) = r.cached_id(&s, late) else {
        panic!("cached");
    };
    assert_eq!(id, "legacy-1");
    assert_eq!(reuse.until, t0 + legacy_id::KNOWN_TTL_SECS);
    assert_eq!(reuse.external_ids, None);
    // "No external_id" for a session: its ten minutes, and only until one is learned.
    let r = resolver(&CLERK_LIVE);
    r.legacy_ids
        .borrow_mut()
        .remember("user_1", "sess_1", &Known::ClerkBorn, t0);
    let CachedId::Found(id, reuse) = r.cached_id(&s, t0 + 500) else {
        panic!("cached");
    };
    assert_eq!(id, "user_1");
    assert_eq!(reuse.until, t0 + legacy_id::CLERK_BORN_TTL_SECS);
    assert_eq!(reuse.external_ids, Some(0));
    r.learned(&Known::Legacy("legacy-1".into()));
    assert!(!reuse.stands(t0 + 501, None, r.external_ids_learned.get()));
    // A failed look-up gives no identity, and nothing to remember.
    r.legacy_ids.borrow_mut().remember_unavailable("user_2", t0);
    let mut other = session(json!({}));
    other.user_id = "user_2".into();
    assert!(matches!(r.cached_id(&other, t0 + 1), CachedId::Unavailable));
    let (identity, reuse) = block_on(r.clerk_identity(&other, None, t0 + 1));
    assert_eq!(identity.source, Source::Anonymous);
    assert_eq!(reuse, None);
}

#[test]
fn a_clerk_answer_ends_with_its_token() {
    let ctx = |pk: &str| {
        let publishable_key = PublishableKey::parse(pk).unwrap();
        ClerkContext {
            validation: ClerkValidation::new(&publishable_key),
            publishable_key,
            keys: None,
        }
    };
    let mut s = session(json!({}));
    s.exp = NOW + 30;
    let live = ctx("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k");
    assert_eq!(
        clerk_session_end(&s, &live, NOW),
        NOW + 30 + live.validation.leeway
    );
    // A development instance may switch to the plain cookie when a suffixed token expires.
    let dev = ctx("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k");
    assert_eq!(clerk_session_end(&s, &dev, NOW), NOW + 30);
    s.exp = NOW + 3600;
    assert_eq!(clerk_session_end(&s, &live, NOW), NOW + CLERK_REUSE_SECS);
}

#[test]
fn a_nextauth_answer_stands_alike_alone_and_beside_a_clerk_session() {
    let r = nextauth_only();
    let claims = |extra: Value| {
        let mut claims = json!({"sub": "cy", "iat": NOW - 10, "exp": NOW + 3000});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    };
    let cookie = |token: &str| format!("theme=dark; next-auth.session-token={token}");
    let good = v4_token(SECRET, claims(json!({})));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let flipped = if parts[3].starts_with('A') { "B" } else { "A" };
    parts[3].replace_range(..1, flipped);
    let tampered = parts.join(".");
    let uuid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    // The origin's answer about it, as if asked already (nothing is fetched on the host).
    let key = VerifiedCache::<()>::key(&["next-auth.session-token", uuid]);
    r.database_sessions
        .borrow_mut()
        .insert(key, None, NOW + 30, NOW);
    // (case, Cookie, remembered alone, remembered beside a Clerk session)
    let cases = [
        ("no session cookie", "theme=dark".to_string(), true, true),
        ("valid", cookie(&good), true, true),
        ("ciphertext changed", cookie(&tampered), true, true),
        (
            "another secret",
            cookie(&v4_token("someone-else", claims(json!({})))),
            true,
            true,
        ),
        (
            "expired",
            cookie(&v4_token(SECRET, claims(json!({"exp": NOW - 100})))),
            true,
            true,
        ),
        (
            "no sub",
            cookie(&v4_token(SECRET, json!({"exp": NOW + 3000}))),
            true,
            true,
        ),
        ("not a token", cookie("a.b.c.d.e"), true, true),
        // Valid by itself once its nbf is reached.
        (
            "not valid yet",
            cookie(&v4_token(SECRET, claims(json!({"nbf": NOW + 600})))),
            false,
            false,
        ),
        // Asked of the origin alone; beside a Clerk session never asked about.
        ("database session", cookie(uuid), false, true),
    ];
    for (case, cookie, alone_stands, beside_stands) in cases {
        let alone = block_on(r.resolve(&facts(&cookie), None, NOW));
        let beside = block_on(r.nextauth_beside_clerk(&Cookies::parse(&cookie), None, NOW));
        assert_eq!(alone.reuse.is_some(), alone_stands, "{case}");
        assert_eq!(beside.reuse.is_some(), beside_stands, "{case}");
        if alone_stands && beside_stands {
            assert_eq!(alone.reuse, beside.reuse, "{case}");
        }
        assert_eq!(beside.valid, case == "valid", "{case}");
    }
    // A refused token's anonymous answer is recalled as such, and a token valid later is
    // resolved again and accepted once its time comes.
    let expired = cookie(&v4_token(SECRET, claims(json!({"exp": NOW - 100}))));
    let refused = resolve_and_remember(&r, &facts(&expired), NOW);
    assert_eq!(refused.identity.source, Source::Anonymous);
    let hit = r.recall(&facts(&expired), false, NOW + 1).unwrap();
    assert_eq!(hit.answer.identity.source, Source::Anonymous);
    let early = cookie(&v4_token(SECRET, claims(json!({"nbf": NOW + 600}))));
    resolve_and_remember(&r, &facts(&early), NOW);
    assert!(r.recall(&facts(&early), false, NOW + 1).is_none());
    let later = NOW + 600 - CLOCK_TOLERANCE_SECS;
    let accepted = resolve_and_remember(&r, &facts(&early), later);
    assert_eq!(accepted.identity.user_id.as_deref(), Some("cy"));
}

#[test]
fn a_remembered_answer_says_until_when_it_stands_on_the_clock_alone() {
    let r = nextauth_only();
    let exp = NOW + 100;
    let cookie = session_cookie(json!({"sub": "grace", "iat": NOW - 10, "exp": exp}));
    let request = facts(&cookie);
    assert_eq!(
        standing_until(&r, &request, NOW),
        None,
        "nothing remembered"
    );
    resolve_and_remember(&r, &request, NOW);
    let until = exp + CLOCK_TOLERANCE_SECS;
    assert_eq!(standing_until(&r, &request, NOW + 1), Some(until));
    assert_eq!(standing_until(&r, &request, until), None, "ended");
    let dev = RequestFacts {
        dev_browser_in_query: true,
        ..facts(&cookie)
    };
    assert_eq!(standing_until(&r, &dev, NOW + 1), None);
    // A revoke here ends it before its time: no longer standing at all.
    revocation::kv::record_change("grace", Some(NOW + 2), NOW + 2);
    assert_eq!(standing_until(&r, &request, NOW + 2), None);
    revocation::kv::record_change("grace", None, NOW + 3);
}

thread_local! {
    static FORGOTTEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[test]
fn an_answer_standing_until_learning_ends_when_an_external_id_is_learned_and_says_so() {
    let r = resolver(&CLERK_LIVE);
    r.on_learning(|| FORGOTTEN.with(|f| f.set(f.get() + 1)));
    let cookie = "__session=born; __client_uat=1";
    let request = facts(cookie);
    let born = Resolution {
        identity: Identity {
            source: Source::Clerk,
            user_id: Some("user_born".into()),
            clerk_user_id: Some("user_born".into()),
            email: None,
            session_id: Some("sess_born".into()),
            session_status: Some("active".into()),
        },
        clerk: None,
        nextauth: None,
        killed_nextauth_cookie: None,
        nextauth_beside_clerk: false,
        reuse: Some(Reuse::from(NOW).until_learning(r.external_ids_learned.get())),
    };
    let mut headers = String::new();
    born.identity.push_headers(&mut headers);
    r.remember(&request, &born, &headers, NOW);
    assert_eq!(
        standing_until(&r, &request, NOW + 1),
        Some(NOW + crate::identity::memo::MAX_REUSE_SECS)
    );
    // Learning "none" again changes nothing; learning an id calls the hook at that moment.
    r.learned(&Known::ClerkBorn);
    assert_eq!(FORGOTTEN.with(|f| f.get()), 0);
    r.learned(&Known::Legacy("legacy-7".into()));
    assert_eq!(FORGOTTEN.with(|f| f.get()), 1);
    assert_eq!(standing_until(&r, &request, NOW + 1), None);
    assert!(r.recall(&request, false, NOW + 1).is_none());
}
