//! [`ClerkApi`] over the Workers Fetch API (glue): `Authorization: Bearer <secret key>`, the
//! pinned `Clerk-API-Version`, a timeout on every call, and every non-2xx answer turned into a
//! typed [`ClerkError`] (with `Retry-After` surfaced). Bodies are read with a cap while they
//! stream (`MAX_RESPONSE_BODY`).

use std::time::Duration;

use futures::future::{select, Either};
use worker::{AbortController, Delay, Fetch, Headers, Method};

use super::error::{error_from_response, ClerkError};
use super::model::{ClerkUser, CreateUser, SignInToken, UpdateUser, UpdateUserMetadata, UserQuery};
use super::request::{self, API_VERSION, MAX_RESPONSE_BODY};
use super::ClerkApi;
use crate::capped_body::read_capped;

/// Longest wait for one Backend API answer; Clerk normally answers in well under a second.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Backend API at `base_url` with `secret_key`. `Debug` never shows the key.
#[derive(Clone)]
pub struct FetchClerk {
    base_url: String,
    secret_key: String,
    timeout: Duration,
}

impl std::fmt::Debug for FetchClerk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchClerk")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl FetchClerk {
    pub fn new(base_url: &str, secret_key: &str) -> FetchClerk {
        FetchClerk {
            base_url: base_url.trim_end_matches('/').to_string(),
            secret_key: secret_key.to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> FetchClerk {
        self.timeout = timeout;
        self
    }

    /// One call: returns the 2xx body, or the typed error.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<Vec<u8>, ClerkError> {
        let network = |e: worker::Error| ClerkError::Network(e.to_string());
        let headers = Headers::new();
        headers
            .set("authorization", &format!("Bearer {}", self.secret_key))
            .map_err(network)?;
        headers
            .set("clerk-api-version", API_VERSION)
            .map_err(network)?;
        headers.set("accept", "application/json").map_err(network)?;
        headers
            .set(
                "user-agent",
                concat!("auth-bridge/", env!("CARGO_PKG_VERSION")),
            )
            .map_err(network)?;
        if body.is_some() {
            headers
                .set("content-type", "application/json")
                .map_err(network)?;
        }
        let body = body.map(wasm_bindgen::JsValue::from);
        let request = crate::outbound::request(url, method, &headers, body.as_ref(), false)
            .map_err(network)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let send = Box::pin(async move {
            let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
            let status = response.status_code();
            let retry_after = response.headers().get("retry-after").ok().flatten();
            // Capped while it streams: a huge answer is cut off, never buffered whole.
            let bytes = read_capped(&mut response, MAX_RESPONSE_BODY).await;
            Ok::<_, worker::Error>((status, retry_after, bytes))
        });
        let timeout = Box::pin(Delay::from(self.timeout));
        match select(send, timeout).await {
            Either::Left((Ok((status, retry_after, bytes)), _)) => {
                match (bytes, (200..300).contains(&status)) {
                    (Ok(bytes), true) => Ok(bytes),
                    (Err(e), true) => Err(ClerkError::Network(e.to_string())),
                    // An error whose body cannot be read is still that status.
                    (bytes, false) => Err(error_from_response(
                        status,
                        retry_after.as_deref(),
                        &bytes.unwrap_or_default(),
                    )),
                }
            }
            Either::Left((Err(error), _)) => Err(ClerkError::Network(error.to_string())),
            Either::Right(((), _)) => {
                controller.abort();
                Err(ClerkError::Timeout)
            }
        }
    }
}

impl FetchClerk {
    /// `GET /v1/users/{id}`: one user, as Clerk holds it (the identity layer reads its
    /// `external_id`).
    pub async fn get_user(&self, id: &str) -> Result<ClerkUser, ClerkError> {
        let url = request::user_url(&self.base_url, id);
        let body = self.call(Method::Get, &url, None).await?;
        request::parse_user(&body)
    }
}

impl ClerkApi for FetchClerk {
    async fn find_users(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError> {
        let body = self
            .call(Method::Get, &request::users_url(&self.base_url, q), None)
            .await?;
        request::parse_user_list(&body)
    }

    async fn create_user(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError> {
        let url = request::create_user_url(&self.base_url);
        let body = self
            .call(Method::Post, &url, Some(request::json_body(body)))
            .await?;
        request::parse_user(&body)
    }

    async fn update_user(&self, id: &str, body: &UpdateUser) -> Result<ClerkUser, ClerkError> {
        let url = request::user_url(&self.base_url, id);
        let body = self
            .call(Method::Patch, &url, Some(request::json_body(body)))
            .await?;
        request::parse_user(&body)
    }

    async fn update_user_metadata(
        &self,
        id: &str,
        body: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError> {
        let url = request::user_metadata_url(&self.base_url, id);
        let body = self
            .call(Method::Patch, &url, Some(request::json_body(body)))
            .await?;
        request::parse_user(&body)
    }

    async fn create_sign_in_token(
        &self,
        user_id: &str,
        expires_in_seconds: u32,
    ) -> Result<SignInToken, ClerkError> {
        let url = request::sign_in_tokens_url(&self.base_url);
        let body = request::sign_in_token_body(user_id, expires_in_seconds);
        let body = self.call(Method::Post, &url, Some(body)).await?;
        request::parse_sign_in_token(&body)
    }
}
