//! Clerk session tokens: the publishable key, Clerk's request-state rules for picking the token
//! out of a request, and the checks on the token itself.
//!
//! Everything here is pure: time comes in as `now` (unix seconds) and the RSA signature check is
//! behind [`SignatureVerifier`], so the whole pipeline (parse → signature → claims) runs on the
//! host in tests. The Workers glue lives in `webcrypto.rs` (WebCrypto RS256) and `jwks.rs` (key
//! source, caches).
//!
//! Behaviour follows @clerk/backend's `authenticateRequest` (`tokens/request`,
//! `tokens/authenticateContext`, `jwt/verifyJwt`, `tokens/keys`), with stricter defaults where
//! Clerk is lenient: `iss` is always checked, `iat` is required, unknown `crit` headers are
//! rejected and tokens are bounded in size.
//!
//! One concern per file, imports flowing one way: [`publishable_key`] and [`keys`] (the
//! configuration); [`payload`] (the claims as read); [`token`] (the compact JWS and its header
//! rules, the errors) → [`claims`] (what a signed payload must say) → [`verify`] (parse,
//! signature, claims); [`request_state`] (what a verification means for a request) →
//! [`cookie_choice`] (which token a request carries).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;

pub mod claims;
pub mod cookie_choice;
pub mod keys;
pub mod payload;
pub mod publishable_key;
pub mod request_state;
pub mod token;
pub mod verify;

pub use claims::{
    parse_authorized_parties, ClerkSession, ClerkValidation, SESSION_STATUS_ACTIVE,
    SESSION_STATUS_PENDING,
};
pub use cookie_choice::{request_uses_suffixed_cookies, session_token_from_request};
pub use keys::{Jwks, KeyError, RsaPublicKey};
pub use payload::ClerkClaims;
pub use publishable_key::{InstanceType, PublishableKey, PublishableKeyError};
pub use request_state::{
    check_client_uat, is_handshake_eligible, request_state_after_verification, ClerkRequestState,
    ClerkTokenSource, HandshakeReason, SignedOutReason,
};
pub use token::{ClerkTokenError, TokenPart, UntrustedClerkToken};
pub use verify::{verify_session_token, SignatureVerifier};

/// Session cookie set by Clerk's Frontend API.
pub const SESSION_COOKIE: &str = "__session";
/// The client's last update time (unix seconds); `0` means signed out.
pub const CLIENT_UAT_COOKIE: &str = "__client_uat";
/// Development instances keep the dev-browser token here (also accepted as a query parameter).
pub const DEV_BROWSER_COOKIE: &str = "__clerk_db_jwt";
/// Query parameter carrying the dev-browser token during a sync.
pub const DEV_BROWSER_QUERY_PARAM: &str = "__clerk_db_jwt";

/// `cat` header of session tokens (handshake tokens use it too).
pub const JWT_CATEGORY_SESSION_TOKEN: &str = "cl_B7d4PD111AAA";
/// `cat` header of tokens minted from a JWT template: never a session.
pub const JWT_CATEGORY_JWT_TEMPLATE: &str = "cl_B7d4PD222AAA";
/// `cat` header of machine-to-machine tokens.
pub const JWT_CATEGORY_M2M_TOKEN: &str = "cl_B7d4PD333AAA";
/// `cat` value that @clerk/backend treats like an absent category.
pub const JWT_CATEGORY_IGNORE: &str = "cl_I7d4PD111III";

/// Real Clerk session tokens are ~1 KiB; the bound keeps hostile input cheap to reject.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew allowed by Clerk's SDK, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

/// atob() is forgiving about padding and trailing bits; publishable keys are built without `=`
/// (also used for PEM bodies).
const FORGIVING_STANDARD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);
