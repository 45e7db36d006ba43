//! What the migration remembers in KV, and how. See the module doc of [`super`] for the key
//! layout. Every write is idempotent and no logic depends on reading its own writes back.
//!
//! This module knows import records and the store, nothing of the migrator: the migrator reads
//! imports and writes mappings here, and [`super::verdict`] turns its outcomes into ledger
//! entries, so imports flow one way (migrator → ledger). Split by concern:
//! imports, mappings and the backlog here; record states and counts in `states`; records
//! handed back to the backlog and `retry-failed` in [`requeue`]; `observe`'s verdicts in
//! `dry_run`.

mod dry_run;
mod requeue;
mod states;
mod warnings;

pub use dry_run::{dry_run_tally, write_dry_run, DryRunRecord, DryRunTally, DryRunVerdict};
pub use requeue::{
    commit_requeued, requeue, requeued_count, retry_failed, take_requeued, RequeueTake, RetryFailed,
};
pub use states::{failures, tally, write_state, Entry, RecordState, StateRecord, Tally};
pub use warnings::{record_warning, warning_key, warnings, WarningRecord, WARNING_PREFIX};

use super::record::{parse_line, ImportRecord};
use super::store::{PutOptions, Store, StoreError};
use serde::{Deserialize, Serialize};

/// `map:l2c:{legacy id}` → Clerk user id.
pub const LEGACY_TO_CLERK_PREFIX: &str = "map:l2c:";
/// `map:c2l:{clerk user id}` → legacy id. The identity layer reads this to set
/// `x-auth-user-id` for migrated users.
pub const CLERK_TO_LEGACY_PREFIX: &str = "map:c2l:";
/// `imp:{import id}` → [`ImportMeta`] JSON, written last, so a visible import is complete.
pub const IMPORT_PREFIX: &str = "imp:";
/// `rec:{import id}:{bucket:04}` → NDJSON of that import's records whose id hashes to bucket.
pub const RECORDS_PREFIX: &str = "rec:";
/// `st:{import id}:{legacy id}` → [`StateRecord`] JSON, list metadata = the state name.
pub const STATE_PREFIX: &str = "st:";
/// The cron's position in the backlog ([`BacklogCursor`] JSON); only the cron writes it.
pub const BACKLOG_CURSOR_KEY: &str = "cursor:backlog";
/// `rq:{time}-{nonce}` → NDJSON of [`QueueMessage`]s handed back to the backlog (paused or
/// deferred deliveries, `retry-failed`). The cron takes these before new records.
pub const REQUEUE_PREFIX: &str = "rq:";
/// `dry:{import id}:{legacy id}` → [`DryRunRecord`]; list metadata = the verdict (`observe`).
pub const DRY_RUN_PREFIX: &str = "dry:";
/// `err:{import id}:{legacy id}`: written by earlier releases (the last transient error of a
/// record); `retry-failed` still clears them.
pub const LAST_ERROR_PREFIX: &str = "err:";
/// The cron's position in the backlog for `observe`'s dry run; `migrate` has its own
/// ([`BACKLOG_CURSOR_KEY`]), so a rehearsal never counts as the real thing.
pub const DRY_RUN_CURSOR_KEY: &str = "cursor:dryrun";
/// Records per bucket aimed for when an import is stored.
pub const RECORDS_PER_BUCKET: usize = 500;
/// Most buckets per import (bounds the KV writes of one upload).
pub const MAX_BUCKETS: u32 = 512;

pub fn legacy_to_clerk_key(legacy_id: &str) -> String {
    format!("{LEGACY_TO_CLERK_PREFIX}{legacy_id}")
}
pub fn clerk_to_legacy_key(clerk_id: &str) -> String {
    format!("{CLERK_TO_LEGACY_PREFIX}{clerk_id}")
}
pub fn state_key(import_id: &str, legacy_id: &str) -> String {
    format!("{STATE_PREFIX}{import_id}:{legacy_id}")
}
pub fn bucket_key(import_id: &str, bucket: u32) -> String {
    format!("{RECORDS_PREFIX}{import_id}:{bucket:04}")
}

/// Sortable by time, unique with a random `nonce`.
pub fn new_import_id(now_ms: u64, nonce: u32) -> String {
    format!("{now_ms:013}-{nonce:08x}")
}

/// FNV-1a: stable across isolates and releases (std's hasher is not).
pub fn id_hash(legacy_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in legacy_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The bucket of an import that holds `legacy_id`'s record.
pub fn bucket_of(legacy_id: &str, buckets: u32) -> u32 {
    id_hash(legacy_id) % buckets.max(1)
}

/// Buckets for an import of `records` records.
pub fn bucket_count(records: usize) -> u32 {
    (records.div_ceil(RECORDS_PER_BUCKET) as u32).clamp(1, MAX_BUCKETS)
}

/// Both directions of the legacy ↔ Clerk mapping (blind idempotent writes).
pub async fn remember_mapping<S: Store>(
    store: &S,
    legacy_id: &str,
    clerk_id: &str,
) -> Result<(), StoreError> {
    store
        .put(
            &legacy_to_clerk_key(legacy_id),
            clerk_id,
            PutOptions::default(),
        )
        .await?;
    store
        .put(
            &clerk_to_legacy_key(clerk_id),
            legacy_id,
            PutOptions::default(),
        )
        .await
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportMeta {
    pub import_id: String,
    pub accepted: u64,
    pub buckets: u32,
    pub created_at_ms: u64,
}

/// Stores an accepted import: its buckets, then its meta. `records` must have distinct ids
/// (as [`super::record::parse_ndjson`] guarantees). Costs `buckets + 1` writes.
pub async fn store_import<S: Store>(
    store: &S,
    import_id: &str,
    records: &[ImportRecord],
    now_ms: u64,
) -> Result<ImportMeta, StoreError> {
    let buckets = bucket_count(records.len());
    let mut pages = vec![String::new(); buckets as usize];
    for r in records {
        let page = &mut pages[bucket_of(&r.id, buckets) as usize];
        page.push_str(&r.to_line());
        page.push('\n');
    }
    for (b, page) in pages.iter().enumerate() {
        if !page.is_empty() {
            store
                .put(
                    &bucket_key(import_id, b as u32),
                    page,
                    PutOptions::default(),
                )
                .await?;
        }
    }
    let meta = ImportMeta {
        import_id: import_id.to_owned(),
        accepted: records.len() as u64,
        buckets,
        created_at_ms: now_ms,
    };
    store_import_meta(store, &meta).await?;
    Ok(meta)
}

/// Writes an import's meta, which makes it visible: call it after its buckets are stored. The
/// meta is also the key's list metadata, so listing imports reads no values.
pub async fn store_import_meta<S: Store>(store: &S, meta: &ImportMeta) -> Result<(), StoreError> {
    let json = serde_json::to_string(meta).unwrap_or_default();
    store
        .put(
            &format!("{IMPORT_PREFIX}{}", meta.import_id),
            &json,
            PutOptions {
                ttl_secs: None,
                metadata: Some(json.clone()),
            },
        )
        .await
}

/// All visible imports, oldest first.
pub async fn list_imports<S: Store>(store: &S) -> Result<Vec<ImportMeta>, StoreError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(IMPORT_PREFIX, cursor.as_deref(), 1000).await?;
        for k in &page.keys {
            if let Some(m) = k
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str::<ImportMeta>(m).ok())
            {
                out.push(m);
                continue;
            }
            if let Some(v) = store.get(&k.name).await? {
                if let Ok(m) = serde_json::from_str::<ImportMeta>(&v) {
                    out.push(m);
                }
            }
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    crate::sort::sort_by(&mut out, |a, b| a.import_id.cmp(&b.import_id));
    Ok(out)
}

/// The newest stored import record for `legacy_id`, if any (one bucket read per import).
pub async fn find_import_record<S: Store>(
    store: &S,
    legacy_id: &str,
) -> Result<Option<ImportRecord>, StoreError> {
    let needle = format!("\"id\":{}", serde_json::Value::String(legacy_id.to_owned()));
    for meta in list_imports(store).await?.iter().rev() {
        let key = bucket_key(&meta.import_id, bucket_of(legacy_id, meta.buckets));
        let Some(page) = store.get(&key).await? else {
            continue;
        };
        for line in page.lines().filter(|l| l.contains(&needle)) {
            if let Ok(r) = parse_line(line) {
                if r.id == legacy_id {
                    return Ok(Some(r));
                }
            }
        }
    }
    Ok(None)
}

/// One record on its way to Clerk: which import it belongs to, the record as a stored line,
/// and how many times it already met only transient errors (its backoff grows with that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    pub import_id: String,
    pub record: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

pub fn last_error_key(import_id: &str, legacy_id: &str) -> String {
    format!("{LAST_ERROR_PREFIX}{import_id}:{legacy_id}")
}

/// Where the cron is in the backlog: finished imports, and the position in the current one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BacklogCursor {
    pub done: Vec<String>,
    pub import_id: Option<String>,
    pub bucket: u32,
    /// Lines of the current bucket already taken.
    pub offset: usize,
}

/// Takes up to `n` records from the backlog of `imports` (as [`list_imports`] gives them),
/// oldest import first, advancing `cursor` (the caller stores it under
/// [`BACKLOG_CURSOR_KEY`] after enqueueing). Imports that become visible late are still found:
/// completion is tracked by id, not by order.
pub async fn take_backlog<S: Store>(
    store: &S,
    imports: &[ImportMeta],
    cursor: &mut BacklogCursor,
    n: usize,
) -> Result<Vec<QueueMessage>, StoreError> {
    let mut out = Vec::new();
    if n == 0 {
        return Ok(out);
    }
    while out.len() < n {
        let current = match &cursor.import_id {
            Some(id) => imports.iter().find(|m| &m.import_id == id),
            None => None,
        };
        let Some(meta) =
            current.or_else(|| imports.iter().find(|m| !cursor.done.contains(&m.import_id)))
        else {
            break;
        };
        if cursor.import_id.as_deref() != Some(&meta.import_id) {
            cursor.import_id = Some(meta.import_id.clone());
            cursor.bucket = 0;
            cursor.offset = 0;
        }
        if cursor.bucket >= meta.buckets {
            cursor.done.push(meta.import_id.clone());
            cursor.import_id = None;
            continue;
        }
        let page = store
            .get(&bucket_key(&meta.import_id, cursor.bucket))
            .await?
            .unwrap_or_default();
        let lines: Vec<&str> = page.lines().filter(|l| !l.is_empty()).collect();
        let take = (n - out.len()).min(lines.len().saturating_sub(cursor.offset));
        for line in &lines[cursor.offset..cursor.offset + take] {
            out.push(QueueMessage {
                import_id: meta.import_id.clone(),
                record: (*line).to_owned(),
                attempts: 0,
            });
        }
        cursor.offset += take;
        if cursor.offset >= lines.len() {
            cursor.bucket += 1;
            cursor.offset = 0;
        }
    }
    Ok(out)
}
