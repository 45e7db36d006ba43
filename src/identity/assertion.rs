//! `x-auth-assertion`: a short-lived HS256 JWS over the identity headers, so the origin can prove
//! they came from this worker and not from a client that found a way around it.
//!
//! Claims mirror the headers one to one (`source`, `user_id`, `clerk_user_id`, `email`,
//! `session_id`), plus `iss` = `auth-bridge`, `aud` = the origin's host, `iat`, and `exp` = `iat`
//! + 60 s. The key is `AUTH_BRIDGE_ASSERTION_SECRET`'s bytes.

use chrono::{DateTime, Duration, TimeZone, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions};
use serde::{Deserialize, Serialize};

use super::Identity;

/// Issuer claim of every assertion.
pub const ISSUER: &str = "auth-bridge";
/// Lifetime of an assertion: long enough for the origin to read it, too short to replay.
pub const LIFETIME_SECS: i64 = 60;

/// The custom claims of an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub aud: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub clerk_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_id: Option<String>,
}

/// Signs assertions with one secret; built once per isolate.
pub struct AssertionSigner {
    key: Hs256Key,
}

impl AssertionSigner {
    pub fn new(secret: &str) -> AssertionSigner {
        AssertionSigner {
            key: Hs256Key::new(secret.as_bytes()),
        }
    }

    /// The compact JWS for `identity`, addressed to `audience` (the origin's host), at `now`.
    pub fn sign(&self, identity: &Identity, audience: &str, now: u64) -> String {
        let claims = AssertionClaims {
            iss: ISSUER.to_string(),
            aud: audience.to_string(),
            source: identity.source.as_str().to_string(),
            user_id: identity.user_id.clone(),
            clerk_user_id: identity.clerk_user_id.clone(),
            email: identity.email.clone(),
            session_id: identity.session_id.clone(),
        };
        let options = TimeOptions::new(Duration::zero(), move || at(now));
        let claims = Claims::new(claims)
            .set_duration_and_issuance(&options, Duration::seconds(LIFETIME_SECS));
        // Serialising plain strings and numbers cannot fail; fall back to no assertion at all
        // (the origin then rejects the request) rather than panicking.
        Hs256
            .token(&Header::empty().with_token_type("JWT"), &claims, &self.key)
            .unwrap_or_default()
    }
}

fn at(unix: u64) -> DateTime<Utc> {
    Utc.timestamp_opt(i64::try_from(unix).unwrap_or(i64::MAX / 2), 0)
        .single()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Source;
    use jwt_compact::{UntrustedToken, ValidationError};

    const NOW: u64 = 1_800_000_000;

    fn identity() -> Identity {
        Identity {
            source: Source::NextAuth,
            user_id: Some("legacy-42".into()),
            clerk_user_id: None,
            email: Some("ada@example.com".into()),
            session_id: None,
            session_status: None,
        }
    }

    fn verify(
        token: &str,
        secret: &str,
        now: u64,
    ) -> Result<Claims<AssertionClaims>, ValidationError> {
        let untrusted = UntrustedToken::new(token).expect("compact JWS");
        let options = TimeOptions::new(Duration::zero(), move || at(now));
        let token = Hs256
            .validator(&Hs256Key::new(secret.as_bytes()))
            .validate(&untrusted)?;
        token.claims().validate_expiration(&options)?;
        Ok(token.claims().clone())
    }

    #[test]
    fn assertion_carries_the_identity_and_expires_in_60_seconds() {
        let token =
            AssertionSigner::new("origin-shared-secret").sign(&identity(), "app.example.com", NOW);
        let claims = verify(&token, "origin-shared-secret", NOW).unwrap();
        assert_eq!(claims.custom.aud, "app.example.com");
        assert_eq!(claims.custom.iss, ISSUER);
        assert_eq!(claims.custom.source, "nextauth");
        assert_eq!(claims.custom.user_id.as_deref(), Some("legacy-42"));
        assert_eq!(claims.custom.email.as_deref(), Some("ada@example.com"));
        assert_eq!(claims.custom.clerk_user_id, None);
        let iat = claims.issued_at.unwrap().timestamp() as u64;
        let exp = claims.expiration.unwrap().timestamp() as u64;
        assert_eq!(iat, NOW);
        assert_eq!(exp - iat, 60);
        let header = UntrustedToken::new(&token).unwrap().algorithm().to_string();
        assert_eq!(header, "HS256");
    }

    #[test]
    fn assertion_fails_with_another_secret_or_after_expiry() {
        let token =
            AssertionSigner::new("origin-shared-secret").sign(&identity(), "app.example.com", NOW);
        assert!(verify(&token, "another-secret", NOW).is_err());
        assert!(matches!(
            verify(&token, "origin-shared-secret", NOW + 61),
            Err(ValidationError::Expired)
        ));
    }

    #[test]
    fn absent_facts_are_absent_claims() {
        let token = AssertionSigner::new("k").sign(&Identity::anonymous(), "h", NOW);
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["aud", "exp", "iat", "iss", "source"]);
    }
}
