//! Users migrated with something left out (`warn:{legacy id}:{code}`): a password digest Clerk
//! refused, a taken username. The operator follows up; the users themselves were not blocked.

use super::states::put_listed;
use crate::migration::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// `warn:{legacy id}:{code}` → [`WarningRecord`], listed in `admin/status`.
pub const WARNING_PREFIX: &str = "warn:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningRecord {
    pub legacy_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clerk_id: Option<String>,
    /// Clerk's error code (e.g. `form_password_digest_invalid_code`) or ours (`username_taken`).
    pub code: String,
    /// What was left out; never the digest.
    pub message: String,
}

pub fn warning_key(legacy_id: &str, code: &str) -> String {
    format!("{WARNING_PREFIX}{legacy_id}:{code}")
}

/// Keeps a warning (idempotent: one key per user and code; list metadata = the code).
pub async fn record_warning<S: Store>(store: &S, w: &WarningRecord) -> Result<(), StoreError> {
    put_listed(store, &warning_key(&w.legacy_id, &w.code), w, &w.code).await
}

/// How many warnings there are, and the first `limit` of them.
pub async fn warnings<S: Store>(
    store: &S,
    limit: usize,
) -> Result<(u64, Vec<WarningRecord>), StoreError> {
    let mut total = 0u64;
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(WARNING_PREFIX, cursor.as_deref(), 1000).await?;
        for k in &page.keys {
            total += 1;
            if out.len() < limit {
                if let Some(v) = store.get(&k.name).await? {
                    if let Ok(w) = serde_json::from_str::<WarningRecord>(&v) {
                        out.push(w);
                    }
                }
            }
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok((total, out))
}
