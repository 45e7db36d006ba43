//! Clerk's Backend API as the worker needs it: request and response models, typed errors, URL
//! building and response parsing — all pure — behind the [`ClerkApi`] trait so the migration
//! logic runs on the host against a fake.
//!
//! The Workers Fetch implementation lives in `fetch.rs` (glue); it sends
//! `Authorization: Bearer <secret key>` and `Clerk-API-Version: `[`API_VERSION`], builds URLs with
//! [`request`], serialises bodies with [`request::json_body`], and turns every non-2xx answer
//! into a [`ClerkError`] with [`error_from_response`].

pub mod error;
pub mod memory;
pub mod model;
pub mod request;

pub mod fetch;

pub use error::{error_from_response, parse_clerk_errors, ClerkError};
pub use model::{
    escape_id_filter, ClerkEmailAddress, ClerkPhoneNumber, ClerkUser, CreateUser,
    IdentificationStatus, SecretString, SignInToken, UpdateUser, UpdateUserMetadata, UserQuery,
    Verification,
};
pub use request::API_VERSION;

/// The Backend API calls the migration makes. Every method is one HTTP request, so callers can
/// count calls against the rate limit.
#[allow(async_fn_in_trait)]
pub trait ClerkApi {
    /// `GET /v1/users?external_id=..&email_address=..` (repeated keys). A bare JSON array.
    async fn find_users(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError>;
    /// `POST /v1/users`.
    async fn create_user(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError>;
    /// `PATCH /v1/users/{id}`. Since API version 2026-05-12 this no longer takes metadata.
    async fn update_user(&self, id: &str, body: &UpdateUser) -> Result<ClerkUser, ClerkError>;
    /// `PATCH /v1/users/{id}/metadata` (deep merge).
    async fn update_user_metadata(
        &self,
        id: &str,
        body: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError>;
    /// `POST /v1/sign_in_tokens {user_id, expires_in_seconds}`.
    async fn create_sign_in_token(
        &self,
        user_id: &str,
        expires_in_seconds: u32,
    ) -> Result<SignInToken, ClerkError>;
}

impl<T: ClerkApi> ClerkApi for &T {
    async fn find_users(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError> {
        (**self).find_users(q).await
    }
    async fn create_user(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError> {
        (**self).create_user(body).await
    }
    async fn update_user(&self, id: &str, body: &UpdateUser) -> Result<ClerkUser, ClerkError> {
        (**self).update_user(id, body).await
    }
    async fn update_user_metadata(
        &self,
        id: &str,
        body: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError> {
        (**self).update_user_metadata(id, body).await
    }
    async fn create_sign_in_token(
        &self,
        user_id: &str,
        expires_in_seconds: u32,
    ) -> Result<SignInToken, ClerkError> {
        (**self)
            .create_sign_in_token(user_id, expires_in_seconds)
            .await
    }
}
