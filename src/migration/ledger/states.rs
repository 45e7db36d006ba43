//! Record states (`st:{import}:{legacy id}`) and the counts derived from their listings.

use super::{list_imports, state_key, STATE_PREFIX};
use crate::migration::store::{ListedKey, PutOptions, Store, StoreError};
use serde::{Deserialize, Serialize};

/// The state keys of one import, read page by page (up to 1000 keys and their list metadata
/// per list call, no value reads).
pub struct StateKeys<'s, S> {
    store: &'s S,
    prefix: String,
    cursor: Option<String>,
    done: bool,
}

impl<'s, S: Store> StateKeys<'s, S> {
    pub fn of(store: &'s S, import_id: &str) -> Self {
        Self {
            store,
            prefix: format!("{STATE_PREFIX}{import_id}:"),
            cursor: None,
            done: false,
        }
    }

    /// The next page of keys; `None` once the listing is complete.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ListedKey>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .list(&self.prefix, self.cursor.as_deref(), 1000)
            .await?;
        self.cursor = page.cursor;
        self.done = self.cursor.is_none();
        Ok(Some(page.keys))
    }

    /// The legacy id a key of this listing is the state of.
    pub fn legacy_id<'k>(&self, key: &'k ListedKey) -> &'k str {
        &key.name[self.prefix.len()..]
    }
}

/// Whether a listed state key is a failed record's (from its list metadata).
pub fn is_failed(key: &ListedKey) -> bool {
    key.metadata.as_deref() == Some(RecordState::Failed.as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Migrated,
    Skipped,
    Failed,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Migrated => "migrated",
            RecordState::Skipped => "skipped",
            RecordState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    pub legacy_id: String,
    pub state: RecordState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clerk_id: Option<String>,
    /// Clerk's error code, or ours (`external_id_conflict`, …), for failed records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub updated_at_ms: u64,
}

/// What the ledger keeps about a record that reached a state (built from a migration outcome
/// by [`crate::migration::verdict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub state: RecordState,
    pub clerk_id: Option<String>,
    /// Clerk's code (or ours) of a failure.
    pub code: Option<String>,
    /// Why it failed or was skipped.
    pub message: Option<String>,
}

/// Writes a record's state. Idempotent under redelivery (same key, same value); a migrated
/// record is never demoted to failed or skipped by a later delivery (one read, only for those).
pub async fn write_state<S: Store>(
    store: &S,
    import_id: &str,
    legacy_id: &str,
    entry: Entry,
    now_ms: u64,
) -> Result<RecordState, StoreError> {
    let key = state_key(import_id, legacy_id);
    if entry.state != RecordState::Migrated {
        if let Some(prev) = store.get(&key).await? {
            if serde_json::from_str::<StateRecord>(&prev)
                .is_ok_and(|p| p.state == RecordState::Migrated)
            {
                return Ok(RecordState::Migrated);
            }
        }
    }
    let state = entry.state;
    let rec = StateRecord {
        legacy_id: legacy_id.to_owned(),
        state,
        clerk_id: entry.clerk_id,
        code: entry.code,
        message: entry.message,
        updated_at_ms: now_ms,
    };
    put_listed(store, &key, &rec, state.as_str()).await?;
    Ok(state)
}

/// Writes a ledger record with its state as KV list metadata, so counts come from listings alone.
pub(super) async fn put_listed<S: Store, T: Serialize>(
    store: &S,
    key: &str,
    record: &T,
    label: &str,
) -> Result<(), StoreError> {
    let opts = PutOptions {
        ttl_secs: None,
        metadata: Some(label.to_owned()),
    };
    store
        .put(
            key,
            &serde_json::to_string(record).unwrap_or_default(),
            opts,
        )
        .await
}

/// Progress counts. `pending` is derived, so `accepted = migrated + skipped + failed +
/// pending` holds by construction; a record that never reaches a state stays visible as
/// pending rather than vanishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tally {
    pub accepted: u64,
    pub migrated: u64,
    pub skipped: u64,
    pub failed: u64,
    pub pending: u64,
}

/// Recomputes the counts from the state keys' list metadata (one list call per 1000 records,
/// no value reads).
pub async fn tally<S: Store>(store: &S) -> Result<Tally, StoreError> {
    let mut t = Tally::default();
    for meta in list_imports(store).await? {
        t.accepted += meta.accepted;
        let mut keys = StateKeys::of(store, &meta.import_id);
        while let Some(page) = keys.next_page().await? {
            for k in &page {
                match k.metadata.as_deref() {
                    Some("migrated") => t.migrated += 1,
                    Some("skipped") => t.skipped += 1,
                    Some("failed") => t.failed += 1,
                    _ => {}
                }
            }
        }
    }
    t.pending = t.accepted.saturating_sub(t.migrated + t.skipped + t.failed);
    Ok(t)
}

/// Failed records (for `admin/failures`), up to `limit`.
pub async fn failures<S: Store>(store: &S, limit: usize) -> Result<Vec<StateRecord>, StoreError> {
    let mut out = Vec::new();
    for meta in list_imports(store).await? {
        let mut keys = StateKeys::of(store, &meta.import_id);
        while let Some(page) = keys.next_page().await? {
            for k in page.iter().filter(|k| is_failed(k)) {
                if out.len() >= limit {
                    return Ok(out);
                }
                if let Some(v) = store.get(&k.name).await? {
                    if let Ok(s) = serde_json::from_str::<StateRecord>(&v) {
                        out.push(s);
                    }
                }
            }
        }
    }
    Ok(out)
}
