//! `observe`'s rehearsal: what each record would become (`dry:{import}:{legacy id}`), counted
//! apart from the real states so a rehearsal never counts as the real thing.

use super::states::put_listed;
use super::{list_imports, DRY_RUN_PREFIX};
use crate::migration::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// What `observe` found a record would become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DryRunVerdict {
    WouldCreate,
    WouldLink,
    AlreadyMigrated,
    WouldSkip,
    WouldFail,
}

impl DryRunVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            DryRunVerdict::WouldCreate => "would_create",
            DryRunVerdict::WouldLink => "would_link",
            DryRunVerdict::AlreadyMigrated => "already_migrated",
            DryRunVerdict::WouldSkip => "would_skip",
            DryRunVerdict::WouldFail => "would_fail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunRecord {
    pub legacy_id: String,
    pub verdict: DryRunVerdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clerk_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub updated_at_ms: u64,
}

/// Writes a dry-run verdict (`observe`). Idempotent: the same key, the latest verdict.
pub async fn write_dry_run<S: Store>(
    store: &S,
    import_id: &str,
    record: &DryRunRecord,
) -> Result<(), StoreError> {
    let key = format!("{DRY_RUN_PREFIX}{import_id}:{}", record.legacy_id);
    put_listed(store, &key, record, record.verdict.as_str()).await
}

/// Dry-run counts; `pending` = accepted records without a verdict yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DryRunTally {
    pub would_create: u64,
    pub would_link: u64,
    pub already_migrated: u64,
    pub would_skip: u64,
    pub would_fail: u64,
    pub pending: u64,
}

/// Counts keys under `prefix` by list metadata (no value reads).
async fn count_by_metadata<S: Store>(
    store: &S,
    prefix: &str,
    mut count: impl FnMut(Option<&str>),
) -> Result<(), StoreError> {
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(prefix, cursor.as_deref(), 1000).await?;
        for k in &page.keys {
            count(k.metadata.as_deref());
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Recomputes the dry-run counts from listings.
pub async fn dry_run_tally<S: Store>(store: &S) -> Result<DryRunTally, StoreError> {
    let mut t = DryRunTally::default();
    let mut accepted = 0;
    for meta in list_imports(store).await? {
        accepted += meta.accepted;
        let prefix = format!("{DRY_RUN_PREFIX}{}:", meta.import_id);
        count_by_metadata(store, &prefix, |m| match m {
            Some("would_create") => t.would_create += 1,
            Some("would_link") => t.would_link += 1,
            Some("already_migrated") => t.already_migrated += 1,
            Some("would_skip") => t.would_skip += 1,
            Some("would_fail") => t.would_fail += 1,
            _ => {}
        })
        .await?;
    }
    let seen = t.would_create + t.would_link + t.already_migrated + t.would_skip + t.would_fail;
    t.pending = accepted.saturating_sub(seen);
    Ok(t)
}
