//! The whole check of a session token: decode (remembered per isolate), signature (behind
//! [`SignatureVerifier`]: WebCrypto in the Worker, the `rsa` crate in host tests; a signature
//! that held is remembered with the decoding), then claims.

use super::claims::{ClerkSession, ClerkValidation};
use super::token::ClerkTokenError;
use crate::identity::clerk_decoded;

/// Checks an RS256 signature for a key id. Implemented with WebCrypto in the Worker and with the
/// `rsa` crate in host tests.
// Workers run single-threaded, so the futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait SignatureVerifier {
    /// `Ok(())` when a key for `kid` exists and the signature over `signing_input` is valid;
    /// otherwise [`ClerkTokenError::UnknownKeyId`], [`ClerkTokenError::KeysUnavailable`] or
    /// [`ClerkTokenError::InvalidSignature`].
    async fn verify_signature(
        &self,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8],
        now: u64,
    ) -> Result<(), ClerkTokenError>;
}

/// The whole check: parse and header rules, signature, then claims.
pub async fn verify_session_token(
    token: &str,
    verifier: &impl SignatureVerifier,
    validation: &ClerkValidation,
    now: u64,
) -> Result<ClerkSession, ClerkTokenError> {
    // The decoding is remembered per isolate by the exact token, and with it, for a while,
    // that its signature held; the claims at `now` are checked on every call.
    let decoded = clerk_decoded::decoded(token);
    // Borrowed from the remembered decoding: no copy of the token's parts per request.
    let untrusted = decoded.parsed().as_ref().map_err(Clone::clone)?;
    if !decoded.signature_held(now) {
        verifier
            .verify_signature(
                untrusted.kid(),
                untrusted.signing_input(),
                untrusted.signature(),
                now,
            )
            .await?;
        decoded.remember_signature_held(now);
    }
    untrusted.validate(validation, now)
}
