//! Who is asking (pure): whether the `POST` comes from a page of this origin, and which legacy
//! user its NextAuth session (a JWT, or a database session the origin vouched for) stands for,
//! with whether that user's email counts as verified.

use serde_json::{Map, Value};

use crate::identity::nextauth::NextAuthSession;
use crate::identity::{Identity, Source};
use crate::migration::TrickleUser;

/// Whether a `POST` comes from a page of this origin. Browsers send `Sec-Fetch-Site`; only
/// `same-origin` passes (`same-site` is a sibling subdomain, which may be less trusted). Older
/// browsers send only `Origin` on cross-origin requests, which must then be ours; a request
/// with neither is not from a browser page (a form post from another site always has one).
pub fn is_same_origin_request(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    own_origin: &str,
) -> bool {
    if let Some(site) = sec_fetch_site {
        return site.trim().eq_ignore_ascii_case("same-origin");
    }
    match origin {
        None => true,
        Some(origin) => {
            let origin = origin.trim().trim_end_matches('/');
            !own_origin.is_empty() && origin.eq_ignore_ascii_case(own_origin)
        }
    }
}

/// Whether the session itself proves the email address. NextAuth's JWT carries no such fact by
/// default, so the answer is "no" unless the app put one there: a boolean `email_verified`
/// claim (OIDC's name) set to `true`, or `emailVerified` (the NextAuth adapters' column,
/// a date) with a value. An unverified address is still migrated — created `reserved` — but
/// never used to take over an existing Clerk account that has it (the Migrator skips the link).
pub fn email_verified_in_claims(claims: &Map<String, Value>) -> bool {
    let truthy = |v: &Value| match v {
        Value::Bool(b) => *b,
        Value::String(s) => !s.trim().is_empty() && s != "false",
        Value::Number(n) => n.as_f64().is_some_and(|x| x > 0.0),
        _ => false,
    };
    claims.get("email_verified") == Some(&Value::Bool(true))
        || claims.get("emailVerified").is_some_and(truthy)
}

/// The trickle's view of a JWT session.
pub fn trickle_user_from_session(session: &NextAuthSession) -> TrickleUser {
    TrickleUser {
        legacy_id: session.sub.clone(),
        email: session.email.clone().filter(|e| !e.trim().is_empty()),
        email_verified: email_verified_in_claims(&session.claims()),
        name: session.name.clone().filter(|n| !n.trim().is_empty()),
        image: session.picture.clone().filter(|p| !p.trim().is_empty()),
    }
}

/// The trickle's view of a database session the origin vouched for: only the id and email
/// are known, and the email's verification is not.
pub fn trickle_user_from_identity(identity: &Identity) -> Option<TrickleUser> {
    if identity.source != Source::NextAuth {
        return None;
    }
    Some(TrickleUser {
        legacy_id: identity.user_id.clone().filter(|id| !id.is_empty())?,
        email: identity.email.clone(),
        ..TrickleUser::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_origin_rules() {
        let own = "https://app.example.com";
        assert!(is_same_origin_request(Some("same-origin"), None, own));
        assert!(is_same_origin_request(
            Some("same-origin"),
            Some("https://evil.example"),
            own
        ));
        assert!(!is_same_origin_request(Some("cross-site"), Some(own), own));
        assert!(!is_same_origin_request(Some("same-site"), Some(own), own));
        assert!(!is_same_origin_request(Some("none"), None, own));
        assert!(is_same_origin_request(None, Some(own), own));
        assert!(is_same_origin_request(
            None,
            Some("HTTPS://APP.example.com/"),
            own
        ));
        assert!(!is_same_origin_request(
            None,
            Some("https://app.example.com.evil.example"),
            own
        ));
        assert!(!is_same_origin_request(None, Some("null"), own));
        assert!(!is_same_origin_request(
            None,
            Some("http://app.example.com"),
            own
        ));
        assert!(is_same_origin_request(None, None, own));
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn email_is_verified_only_when_the_session_says_so() {
        assert!(!email_verified_in_claims(&claims(
            json!({"email": "a@example.com"})
        )));
        assert!(email_verified_in_claims(&claims(
            json!({"email_verified": true})
        )));
        assert!(!email_verified_in_claims(&claims(
            json!({"email_verified": "true"})
        )));
        assert!(!email_verified_in_claims(&claims(
            json!({"email_verified": false})
        )));
        assert!(email_verified_in_claims(&claims(
            json!({"emailVerified": "2024-01-02T03:04:05.000Z"})
        )));
        assert!(!email_verified_in_claims(&claims(
            json!({"emailVerified": null})
        )));
        assert!(!email_verified_in_claims(&claims(
            json!({"emailVerified": ""})
        )));
    }

    #[test]
    fn database_session_identity_is_migrated_unverified() {
        let identity = Identity {
            source: Source::NextAuth,
            user_id: Some("42".into()),
            clerk_user_id: None,
            email: Some("db@example.com".into()),
            session_id: None,
            session_status: None,
        };
        let user = trickle_user_from_identity(&identity).unwrap();
        assert_eq!(user.legacy_id, "42");
        assert!(!user.email_verified);
        assert!(trickle_user_from_identity(&Identity::anonymous()).is_none());
    }
}
