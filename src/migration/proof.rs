//! Whom a legacy user is in Clerk, decided only on what both sides prove. Pure: it takes the
//! legacy facts and the users one `GET /v1/users` answer returned, and says
//! [`Decision::Bound`], [`Decision::NoMatch`] or [`Decision::Refused`] — it never calls Clerk.
//!
//! The rules (SPEC "Guarantees"):
//! * **An answer is a set of candidates, never a verdict.** Clerk's list filters are not exact
//!   (a leading `+`/`-` in `external_id` / `user_id` is a marker; an email query also finds
//!   unverified addresses; a page can hold other records' users). Every candidate is re-checked
//!   for an exact match here; the first element of a list means nothing.
//! * **By `external_id`:** a user whose `external_id` equals the legacy id exactly is that
//!   person. Two such users are refused ([`Refusal::ExternalIdAmbiguous`]): a person decides.
//! * **A link by email** (giving an existing Clerk user the legacy id) needs proof on both
//!   sides: the legacy side proves the address (the session's `email_verified` claim, or the
//!   import record's `email_verified`) **and** the Clerk user holds the address as
//!   `verification.status == "verified"`. An unverified copy of someone's address in Clerk is
//!   exactly what an attacker can create, so it never binds.
//! * **Phone numbers never link.** The legacy side has no proof of a phone (import records carry
//!   no phone verification and sessions carry no phone), so the two-sided rule cannot hold.
//! * **Usernames never link.** A username is chosen, not verified: anybody can register
//!   `alice` in Clerk. A username alone is no proof of anything.
//! * A holder that already carries another `external_id` belongs to another legacy user: two
//!   legacy users are never merged ([`Refusal::ExternalIdConflict`]).
//!
//! Every refusal has a stable code ([`Refusal::code`]): `422` from `sign-in-token`, a listed
//! failure in the batch. Nothing here is a guess.
//!
//! Page-friendly: [`decide`] takes all users of one multi-value query (up to 100 external ids
//! or emails) and one legacy record, and picks that record's exact match among them.

use super::record::ImportRecord;
use crate::clerk_api::ClerkUser;

/// What the legacy side knows about a person, and what it proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegacyFacts<'a> {
    pub legacy_id: &'a str,
    pub email: Option<&'a str>,
    /// The legacy side proves `email` (session claim or import record).
    pub email_verified: bool,
    pub phone: Option<&'a str>,
    pub username: Option<&'a str>,
}

impl<'a> LegacyFacts<'a> {
    pub fn of(rec: &'a ImportRecord) -> Self {
        Self {
            legacy_id: &rec.id,
            email: rec.email.as_deref(),
            email_verified: rec.email_verified,
            phone: rec.phone.as_deref(),
            username: rec.username.as_deref(),
        }
    }
}

/// An identifier a Clerk user can hold, besides the external id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifier {
    Email,
    Phone,
    Username,
}

impl Identifier {
    /// The order identifiers are judged in: the only one that can link comes first.
    pub const ALL: [Identifier; 3] = [Identifier::Email, Identifier::Phone, Identifier::Username];

    pub fn name(self) -> &'static str {
        match self {
            Identifier::Email => "email",
            Identifier::Phone => "phone",
            Identifier::Username => "username",
        }
    }

    /// The request field Clerk names in `meta.param_name` for this identifier.
    pub fn clerk_param(self) -> &'static str {
        match self {
            Identifier::Email => "email_address",
            Identifier::Phone => "phone_number",
            Identifier::Username => "username",
        }
    }

    pub fn from_clerk_param(param: &str) -> Option<Identifier> {
        Identifier::ALL
            .into_iter()
            .find(|i| i.clerk_param() == param)
    }

    /// The legacy value of this identifier, if the legacy user has one.
    pub fn value<'a>(self, facts: &LegacyFacts<'a>) -> Option<&'a str> {
        match self {
            Identifier::Email => facts.email,
            Identifier::Phone => facts.phone,
            Identifier::Username => facts.username,
        }
        .map(str::trim)
        .filter(|v| !v.is_empty())
    }

    fn held_by(self, user: &ClerkUser, value: &str) -> bool {
        match self {
            Identifier::Email => user.has_email(value),
            Identifier::Phone => user.phone(value).is_some(),
            Identifier::Username => user.has_username(value),
        }
    }
}

/// Why a binding was refused. The codes are part of the contract: they reach the browser
/// (`422 {"error":"link_refused","code":…}`) and `admin/failures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More than one Clerk user has this external id.
    ExternalIdAmbiguous,
    /// The Clerk user holding the identifier belongs to another legacy user.
    ExternalIdConflict,
    /// More than one Clerk user holds the identifier.
    IdentifierAmbiguous,
    /// A Clerk user holds the email, but the legacy side does not prove it.
    EmailUnverifiedLegacy,
    /// The legacy side proves the email, but the Clerk user holds it unverified.
    EmailUnverifiedInClerk,
    /// A Clerk user holds the phone number: phones never link.
    PhoneNotProof,
    /// A Clerk user holds the username: usernames never link.
    UsernameNotProof,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::ExternalIdAmbiguous,
        Refusal::ExternalIdConflict,
        Refusal::IdentifierAmbiguous,
        Refusal::EmailUnverifiedLegacy,
        Refusal::EmailUnverifiedInClerk,
        Refusal::PhoneNotProof,
        Refusal::UsernameNotProof,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::ExternalIdAmbiguous => "external_id_ambiguous",
            Refusal::ExternalIdConflict => "external_id_conflict",
            Refusal::IdentifierAmbiguous => "identifier_ambiguous",
            Refusal::EmailUnverifiedLegacy => "link_email_unverified_legacy",
            Refusal::EmailUnverifiedInClerk => "link_email_unverified_in_clerk",
            Refusal::PhoneNotProof => "link_phone_not_proof",
            Refusal::UsernameNotProof => "link_username_not_proof",
        }
    }

    pub fn from_code(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// For the operator (failure records, logs): what to check. Never sent to the browser,
    /// since the full message names another person's Clerk account.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::ExternalIdAmbiguous => {
                "more than one Clerk user has this legacy id as external_id; merge or fix them in Clerk"
            }
            Refusal::ExternalIdConflict => {
                "the Clerk user holding this identifier already belongs to another legacy user; \
                 two legacy users are never merged"
            }
            Refusal::IdentifierAmbiguous => "more than one Clerk user holds this identifier",
            Refusal::EmailUnverifiedLegacy => {
                "a Clerk user holds this email, but the legacy data does not prove it verified; \
                 not linking"
            }
            Refusal::EmailUnverifiedInClerk => {
                "a Clerk user holds this email unverified; only a verified address may be linked"
            }
            Refusal::PhoneNotProof => {
                "a Clerk user holds this phone number; phone numbers are never linked automatically"
            }
            Refusal::UsernameNotProof => {
                "a Clerk user holds this username; usernames are never linked automatically"
            }
        }
    }
}

/// Whether `code` is one of the refusals above.
pub fn is_refusal_code(code: &str) -> bool {
    Refusal::from_code(code).is_some()
}

/// How a bound user was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Its `external_id` is the legacy id: already this person.
    ExternalId,
    /// It holds the legacy email verified, the legacy side proves it, and it has no
    /// `external_id` yet: link it (set `external_id`).
    VerifiedEmail,
}

/// A decision is made and consumed at once (never stored in bulk), so the bound user is held
/// by value rather than boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Bound {
        user: ClerkUser,
        by: Binding,
    },
    /// No candidate is this person or holds their identifiers.
    NoMatch,
    /// Someone holds what this person would need, and the rules forbid binding them.
    /// `clerk_id` is the holder (for the operator; never shown to the browser).
    Refused {
        refusal: Refusal,
        clerk_id: String,
        identifier: Option<Identifier>,
    },
}

impl Decision {
    fn refused(refusal: Refusal, user: &ClerkUser, identifier: Option<Identifier>) -> Decision {
        Decision::Refused {
            refusal,
            clerk_id: user.id.clone(),
            identifier,
        }
    }
}

/// The user among `candidates` whose `external_id` is exactly `legacy_id`.
pub fn by_external_id(legacy_id: &str, candidates: &[ClerkUser]) -> Decision {
    let mut exact = distinct(
        candidates
            .iter()
            .filter(|u| u.external_id() == Some(legacy_id)),
    );
    match (exact.next(), exact.next()) {
        (None, _) => Decision::NoMatch,
        (Some(u), None) => Decision::Bound {
            user: u.clone(),
            by: Binding::ExternalId,
        },
        (Some(u), Some(_)) => Decision::refused(Refusal::ExternalIdAmbiguous, u, None),
    }
}

/// Judges the holders of one identifier among `candidates`.
pub fn by_identifier(
    facts: &LegacyFacts<'_>,
    identifier: Identifier,
    candidates: &[ClerkUser],
) -> Decision {
    let Some(value) = identifier.value(facts) else {
        return Decision::NoMatch;
    };
    let mut holders = distinct(candidates.iter().filter(|u| identifier.held_by(u, value)));
    let holder = match (holders.next(), holders.next()) {
        (None, _) => return Decision::NoMatch,
        (Some(u), None) => u,
        (Some(u), Some(_)) => {
            return Decision::refused(Refusal::IdentifierAmbiguous, u, Some(identifier))
        }
    };
    match holder.external_id() {
        Some(own) if own == facts.legacy_id => {
            return Decision::Bound {
                user: holder.clone(),
                by: Binding::ExternalId,
            }
        }
        Some(_) => return Decision::refused(Refusal::ExternalIdConflict, holder, Some(identifier)),
        None => {}
    }
    let refusal = match identifier {
        Identifier::Email if !facts.email_verified => Refusal::EmailUnverifiedLegacy,
        Identifier::Email if !holder.has_verified_email(value) => Refusal::EmailUnverifiedInClerk,
        Identifier::Email => {
            return Decision::Bound {
                user: holder.clone(),
                by: Binding::VerifiedEmail,
            }
        }
        Identifier::Phone => Refusal::PhoneNotProof,
        Identifier::Username => Refusal::UsernameNotProof,
    };
    Decision::refused(refusal, holder, Some(identifier))
}

/// Judges the holders of the legacy identifiers among `candidates`, email first. The first
/// identifier somebody holds decides: a refusal there is final (that identifier cannot be
/// created for this person either), a link binds.
pub fn by_identifiers(facts: &LegacyFacts<'_>, candidates: &[ClerkUser]) -> Decision {
    for identifier in Identifier::ALL {
        match by_identifier(facts, identifier, candidates) {
            Decision::NoMatch => continue,
            decided => return decided,
        }
    }
    Decision::NoMatch
}

/// The whole rule over one answer (or one page's answers): the exact `external_id` match
/// wins; otherwise the identifier holders are judged.
pub fn decide(facts: &LegacyFacts<'_>, candidates: &[ClerkUser]) -> Decision {
    match by_external_id(facts.legacy_id, candidates) {
        Decision::NoMatch => by_identifiers(facts, candidates),
        decided => decided,
    }
}

/// Candidates without repeats of one Clerk id (a page may list a user twice when it was
/// found by two values).
fn distinct<'u>(users: impl Iterator<Item = &'u ClerkUser>) -> impl Iterator<Item = &'u ClerkUser> {
    let mut seen: Vec<&'u str> = Vec::new();
    users.filter(move |u| {
        let user: &'u ClerkUser = u;
        if seen.contains(&user.id.as_str()) {
            false
        } else {
            seen.push(&user.id);
            true
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clerk_api::{ClerkEmailAddress, ClerkPhoneNumber, Verification};

    fn user(id: &str, external_id: Option<&str>) -> ClerkUser {
        ClerkUser {
            id: id.into(),
            external_id: external_id.map(Into::into),
            ..ClerkUser::default()
        }
    }

    fn with_email(mut u: ClerkUser, email: &str, status: &str) -> ClerkUser {
        u.email_addresses.push(ClerkEmailAddress {
            id: Some(format!("idn_{}", u.email_addresses.len())),
            email_address: email.into(),
            reserved: status != "verified",
            verification: Some(Verification {
                status: status.into(),
                strategy: None,
            }),
        });
        u
    }

    fn facts<'a>(id: &'a str, email: Option<&'a str>, verified: bool) -> LegacyFacts<'a> {
        LegacyFacts {
            legacy_id: id,
            email,
            email_verified: verified,
            ..LegacyFacts::default()
        }
    }

    fn code(d: &Decision) -> Option<&'static str> {
        match d {
            Decision::Refused { refusal, .. } => Some(refusal.code()),
            _ => None,
        }
    }

    #[test]
    fn external_id_must_match_exactly_never_the_first_answer() {
        // What an unescaped `+alice` / `-5` query answers: other people.
        let answer = [user("user_a", Some("alice")), user("user_b", Some("5"))];
        assert_eq!(by_external_id("+alice", &answer), Decision::NoMatch);
        assert_eq!(by_external_id("-5", &answer), Decision::NoMatch);
        assert_eq!(
            by_external_id("", &[user("user_c", Some(""))]),
            Decision::NoMatch
        );
        let hit = user("user_p", Some("+alice"));
        let page = [answer[0].clone(), hit.clone(), answer[1].clone()];
        assert_eq!(
            by_external_id("+alice", &page),
            Decision::Bound {
                user: hit,
                by: Binding::ExternalId
            }
        );
        let twice = [user("user_1", Some("L")), user("user_2", Some("L"))];
        assert_eq!(
            code(&by_external_id("L", &twice)),
            Some("external_id_ambiguous")
        );
        // The same user listed twice on a page is one user.
        let same = [user("user_1", Some("L")), user("user_1", Some("L"))];
        assert!(matches!(by_external_id("L", &same), Decision::Bound { .. }));
    }

    #[test]
    fn email_links_only_with_proof_on_both_sides() {
        let holder = with_email(user("user_v", None), "Ada@Example.com", "verified");
        let f = facts("L1", Some("ada@example.com"), true);
        assert_eq!(
            decide(&f, std::slice::from_ref(&holder)),
            Decision::Bound {
                user: holder.clone(),
                by: Binding::VerifiedEmail
            }
        );
        let f = facts("L1", Some("ada@example.com"), false);
        assert_eq!(
            code(&decide(&f, &[holder])),
            Some("link_email_unverified_legacy")
        );

        // The attacker's unverified copy of the victim's address.
        let copy = with_email(user("user_x", None), "ada@example.com", "unverified");
        let f = facts("L1", Some("ada@example.com"), true);
        assert_eq!(
            code(&decide(&f, &[copy])),
            Some("link_email_unverified_in_clerk")
        );
        // Verified elsewhere on the user does not count: the address itself must be verified.
        let mixed = with_email(
            with_email(user("user_m", None), "other@example.com", "verified"),
            "ada@example.com",
            "unverified",
        );
        assert_eq!(
            code(&decide(&f, &[mixed])),
            Some("link_email_unverified_in_clerk")
        );
        let missing = ClerkUser {
            email_addresses: vec![ClerkEmailAddress {
                email_address: "ada@example.com".into(),
                verification: None,
                ..ClerkEmailAddress::default()
            }],
            ..user("user_n", None)
        };
        assert_eq!(
            code(&decide(&f, &[missing])),
            Some("link_email_unverified_in_clerk")
        );
    }

    #[test]
    fn holders_with_another_external_id_are_never_merged_and_own_id_binds() {
        let f = facts("L1", Some("a@example.com"), true);
        let other = with_email(user("user_o", Some("L9")), "a@example.com", "verified");
        assert_eq!(code(&decide(&f, &[other])), Some("external_id_conflict"));
        let mine = with_email(user("user_m", Some("L1")), "a@example.com", "unverified");
        assert!(matches!(
            decide(&f, &[mine]),
            Decision::Bound {
                by: Binding::ExternalId,
                ..
            }
        ));
    }

    #[test]
    fn phones_and_usernames_never_link() {
        let mut holder = user("user_p", None);
        holder.phone_numbers.push(ClerkPhoneNumber {
            id: None,
            phone_number: "+15551234567".into(),
            reserved: false,
            verification: Some(Verification {
                status: "verified".into(),
                strategy: None,
            }),
        });
        holder.username = Some("Alice".into());
        let f = LegacyFacts {
            legacy_id: "L1",
            phone: Some("+15551234567"),
            ..LegacyFacts::default()
        };
        assert_eq!(
            code(&decide(&f, std::slice::from_ref(&holder))),
            Some("link_phone_not_proof")
        );
        let f = LegacyFacts {
            legacy_id: "L1",
            username: Some("alice"),
            email_verified: true,
            ..LegacyFacts::default()
        };
        assert_eq!(
            code(&decide(&f, &[holder])),
            Some("link_username_not_proof")
        );
    }

    #[test]
    fn a_page_answer_is_filtered_per_record() {
        // One `email_address=a&email_address=b` answer, judged for each record.
        let a = with_email(user("user_a", None), "a@example.com", "verified");
        let b = with_email(user("user_b", Some("LB")), "b@example.com", "verified");
        let page = [b.clone(), a.clone()];
        assert!(matches!(
            decide(&facts("LA", Some("a@example.com"), true), &page),
            Decision::Bound { ref user, by: Binding::VerifiedEmail } if user.id == "user_a"
        ));
        assert!(matches!(
            decide(&facts("LB", Some("b@example.com"), false), &page),
            Decision::Bound { ref user, by: Binding::ExternalId } if user.id == "user_b"
        ));
        assert_eq!(
            decide(&facts("LC", Some("c@example.com"), true), &page),
            Decision::NoMatch
        );
        let dup = with_email(user("user_d", None), "A@example.com", "verified");
        assert_eq!(
            code(&decide(
                &facts("LA", Some("a@example.com"), true),
                &[a, dup]
            )),
            Some("identifier_ambiguous")
        );
    }

    #[test]
    fn codes_round_trip() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::from_code(r.code()), Some(r));
            assert!(is_refusal_code(r.code()));
        }
        assert!(!is_refusal_code("form_identifier_exists"));
    }
}
