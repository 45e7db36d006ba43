//! The Backend API as one migration uses it: each call counted (for the pacer's accounting)
//! and, in a batch page, admitted by the page's [`CallGate`] before it is sent.

use std::cell::Cell;

use futures::future::LocalBoxFuture;

use crate::clerk_api::{
    ClerkApi, ClerkError, ClerkUser, CreateUser, UpdateUser, UpdateUserMetadata, UserQuery,
};

/// Asked before each Backend API call of a record that a batch page runs
/// ([`super::migrator::Migrator::migrate_in_page`]): the call is sent once admitted (granted by the page's
/// budget, at once), and never when refused (the page stopped), which ends the record with
/// [`ClerkError::NotSent`]. Boxed so that the migrator is compiled once for the trickle and
/// the page.
pub trait CallGate {
    fn admit(&self) -> LocalBoxFuture<'_, bool>;
}

/// Wraps the client to count calls for one migration, each admitted by the gate if any.
pub(super) struct Counted<'a, C> {
    inner: &'a C,
    pub(super) calls: Cell<u32>,
    gate: Option<&'a dyn CallGate>,
}

impl<'a, C: ClerkApi> Counted<'a, C> {
    pub(super) fn new(inner: &'a C, gate: Option<&'a dyn CallGate>) -> Self {
        Self {
            inner,
            calls: Cell::new(0),
            gate,
        }
    }
    /// One call may be sent now.
    async fn admit(&self) -> Result<(), ClerkError> {
        if let Some(gate) = self.gate {
            if !gate.admit().await {
                return Err(ClerkError::NotSent);
            }
        }
        self.calls.set(self.calls.get() + 1);
        Ok(())
    }
    /// Candidates only: callers judge them with [`proof`].
    pub(super) async fn find(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError> {
        self.admit().await?;
        self.inner.find_users(q).await
    }
    pub(super) async fn create(&self, b: &CreateUser) -> Result<ClerkUser, ClerkError> {
        self.admit().await?;
        self.inner.create_user(b).await
    }
    pub(super) async fn update(&self, id: &str, b: &UpdateUser) -> Result<ClerkUser, ClerkError> {
        self.admit().await?;
        self.inner.update_user(id, b).await
    }
    pub(super) async fn update_metadata(
        &self,
        id: &str,
        b: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError> {
        self.admit().await?;
        self.inner.update_user_metadata(id, b).await
    }
}
