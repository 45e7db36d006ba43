//! `clerk_users`: a `GET /v1/users` answer judged for one legacy user. Layout, one field per
//! line: legacy id, email, phone, username (an empty line is "none"), a flags line (`1` first:
//! the legacy side proves the email), then the answer's body.
//!
//! The body must parse or be refused without a panic. A parsed answer is a set of candidates
//! an attacker may have shaped (ids starting with `+`/`-`, unverified copies of an address,
//! other records' users), and `proof::decide` must bind only on what both sides prove:
//! checked here against the rules as SPEC states them, written out independently, and
//! without regard to the order Clerk listed the users in. The same ids go out in a look-up
//! that Clerk reads back exactly (escaped with `+`, percent-encoded).

use auth_bridge::clerk_api::request::{parse_user_list, user_query_string};
use auth_bridge::clerk_api::{ClerkUser, UserQuery};
use auth_bridge::migration::proof::{decide, Binding, Decision, LegacyFacts, Refusal};

use crate::common::text;

pub fn run(data: &[u8]) {
    let input = text(data);
    let (facts, body) = split(&input);

    check_lookup(&[facts.legacy_id, facts.email.unwrap_or_default()]);

    let Ok(users) = parse_user_list(body.as_bytes()) else {
        return;
    };
    let decision = decide(&facts, &users);
    check_decision(&facts, &users, &decision);

    // One answer is a consistent snapshot: one entry per user. Judged in any order, it is the
    // same decision (the first element of a list means nothing).
    let mut snapshot: Vec<ClerkUser> = Vec::new();
    for u in &users {
        if !snapshot.iter().any(|s| s.id == u.id) {
            snapshot.push(u.clone());
        }
    }
    let forward = decide(&facts, &snapshot);
    snapshot.reverse();
    let backward = decide(&facts, &snapshot);
    let half = snapshot.len() / 2;
    snapshot.rotate_left(half);
    let rotated = decide(&facts, &snapshot);
    for other in [&backward, &rotated] {
        assert_eq!(
            summary(&forward),
            summary(other),
            "the order of Clerk's answer changed the decision"
        );
    }
}

/// The legacy facts and the answer's body of an input.
pub fn split(input: &str) -> (LegacyFacts<'_>, &str) {
    let mut fields = input.splitn(6, '\n');
    let legacy_id = fields.next().unwrap_or_default();
    let mut optional = || fields.next().filter(|s| !s.is_empty());
    let (email, phone, username) = (optional(), optional(), optional());
    let email_verified = optional().is_some_and(|flags| flags.starts_with('1'));
    let facts = LegacyFacts {
        legacy_id,
        email,
        email_verified,
        phone,
        username,
    };
    (facts, fields.next().unwrap_or_default())
}

/// A decision without the holder an ambiguity happened to name first.
pub fn summary(d: &Decision) -> String {
    match d {
        Decision::Bound { user, by } => format!("bound {} {by:?}", user.id),
        Decision::NoMatch => "none".into(),
        Decision::Refused {
            refusal: refusal @ (Refusal::ExternalIdAmbiguous | Refusal::IdentifierAmbiguous),
            identifier,
            ..
        } => format!("refused {refusal:?} {identifier:?}"),
        Decision::Refused {
            refusal,
            clerk_id,
            identifier,
        } => format!("refused {refusal:?} {clerk_id} {identifier:?}"),
    }
}

fn external_id(u: &ClerkUser) -> Option<&str> {
    u.external_id.as_deref().filter(|x| !x.is_empty())
}

/// Clerk keeps addresses lower-cased; only ASCII letters fold (no Unicode lookalike ever
/// matches), and surrounding whitespace is not part of an address.
fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn holds_email(u: &ClerkUser, email: &str) -> bool {
    u.email_addresses
        .iter()
        .any(|e| same_email(&e.email_address, email))
}

fn holds_verified_email(u: &ClerkUser, email: &str) -> bool {
    u.email_addresses.iter().any(|e| {
        same_email(&e.email_address, email)
            && e.verification
                .as_ref()
                .is_some_and(|v| v.status == "verified")
    })
}

/// Distinct users (by Clerk id) among `users` that satisfy `pred`.
fn count_distinct(users: &[ClerkUser], pred: impl Fn(&ClerkUser) -> bool) -> usize {
    let mut ids: Vec<&str> = users
        .iter()
        .filter(|u| pred(u))
        .map(|u| u.id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

fn check_decision(facts: &LegacyFacts<'_>, users: &[ClerkUser], decision: &Decision) {
    // A blank legacy email is no email.
    let legacy_email = facts.email.map(str::trim).filter(|e| !e.is_empty());
    let exact = |u: &ClerkUser| external_id(u) == Some(facts.legacy_id);
    let exact_count = count_distinct(users, exact);
    match decision {
        Decision::Bound { user, by } => {
            assert!(
                users.iter().any(|u| u.id == user.id),
                "bound to a user Clerk did not list"
            );
            match by {
                Binding::ExternalId => {
                    assert!(exact(user), "bound by external id to another person");
                    assert_eq!(exact_count, 1, "bound while two users hold the id");
                }
                Binding::VerifiedEmail => {
                    let email = legacy_email.expect("linked without a legacy email");
                    assert!(facts.email_verified, "linked on an unproven legacy email");
                    assert!(
                        holds_verified_email(user, email),
                        "linked on an address Clerk has not verified"
                    );
                    assert_eq!(external_id(user), None, "linked someone else's user");
                    assert_eq!(exact_count, 0, "linked while the id has its own user");
                    assert_eq!(
                        count_distinct(users, |u| holds_email(u, email)),
                        1,
                        "linked while another user holds the address"
                    );
                }
            }
        }
        Decision::Refused { clerk_id, .. } => {
            assert!(
                users.iter().any(|u| &u.id == clerk_id),
                "refused naming a user Clerk did not list"
            );
        }
        Decision::NoMatch => {
            assert_eq!(exact_count, 0, "the user holding the id was missed");
            if let Some(email) = legacy_email {
                assert_eq!(
                    count_distinct(users, |u| holds_email(u, email)),
                    0,
                    "a holder of the email was missed"
                );
            }
        }
    }
}

/// The look-up of these values says exactly them: each id escaped with one `+` (so Clerk reads
/// a leading `+`/`-` of the id as data) and every value decoded back byte for byte.
fn check_lookup(values: &[&str]) {
    let by_id = user_query_string(&UserQuery::by_external_ids(values.iter().copied()));
    let by_email = user_query_string(&UserQuery::by_emails(values.iter().copied()));
    for (qs, key, escape) in [(by_id, "external_id", "+"), (by_email, "email_address", "")] {
        assert!(
            !qs.contains(['+', ' ', '#', '\n']),
            "unencoded byte in {qs:?}"
        );
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(qs.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let sent: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        let want: Vec<String> = values.iter().map(|v| format!("{escape}{v}")).collect();
        assert_eq!(sent, want, "the look-up asks for other values");
        let limit: usize = pairs
            .iter()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.parse().ok())
            .expect("a look-up without a limit");
        assert!(
            limit >= values.len(),
            "a limit that can cut the answer short"
        );
        assert_eq!(pairs.len(), values.len() + 1, "stray query keys");
    }
}
