//! What the migration remembers in KV, and how. See the module doc of [`super`] for the key
//! layout. Every write is idempotent and no logic depends on reading its own writes back.

use super::migrator::Outcome;
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
pub fn bucket_of(legacy_id: &str, buckets: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in legacy_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h % buckets.max(1)
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
    let buckets = (records.len().div_ceil(RECORDS_PER_BUCKET) as u32).clamp(1, MAX_BUCKETS);
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
    store
        .put(
            &format!("{IMPORT_PREFIX}{import_id}"),
            &serde_json::to_string(&meta).unwrap_or_default(),
            PutOptions::default(),
        )
        .await?;
    Ok(meta)
}

/// All visible imports, oldest first.
pub async fn list_imports<S: Store>(store: &S) -> Result<Vec<ImportMeta>, StoreError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(IMPORT_PREFIX, cursor.as_deref(), 1000).await?;
        for k in &page.keys {
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
    out.sort_by(|a, b| a.import_id.cmp(&b.import_id));
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

/// A queue message: which import a record belongs to, and the record as a stored line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    pub import_id: String,
    pub record: String,
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

/// Takes up to `n` records from the backlog, oldest import first, advancing `cursor` (the
/// caller stores it under [`BACKLOG_CURSOR_KEY`] after enqueueing). Imports that become
/// visible late are still found: completion is tracked by id, not by order.
pub async fn take_backlog<S: Store>(
    store: &S,
    cursor: &mut BacklogCursor,
    n: usize,
) -> Result<Vec<QueueMessage>, StoreError> {
    let mut out = Vec::new();
    if n == 0 {
        return Ok(out);
    }
    let imports = list_imports(store).await?;
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

/// The terminal state an outcome puts a record in; `None` leaves it pending.
pub fn state_for(outcome: &Outcome) -> Option<RecordState> {
    match outcome {
        Outcome::Created { .. } | Outcome::Linked { .. } | Outcome::AlreadyMigrated { .. } => {
            Some(RecordState::Migrated)
        }
        Outcome::Skipped { .. } => Some(RecordState::Skipped),
        Outcome::Failed { .. } => Some(RecordState::Failed),
        Outcome::Retry { .. } | Outcome::WouldCreate | Outcome::WouldLink { .. } => None,
    }
}

/// Writes a record's state after a batch outcome. Idempotent under redelivery (same key,
/// same value); a migrated record is never demoted to failed or skipped by a later delivery.
pub async fn record_outcome<S: Store>(
    store: &S,
    import_id: &str,
    legacy_id: &str,
    outcome: &Outcome,
    now_ms: u64,
) -> Result<Option<RecordState>, StoreError> {
    let Some(state) = state_for(outcome) else {
        return Ok(None);
    };
    let key = state_key(import_id, legacy_id);
    if state != RecordState::Migrated {
        if let Some(prev) = store.get(&key).await? {
            if serde_json::from_str::<StateRecord>(&prev)
                .is_ok_and(|p| p.state == RecordState::Migrated)
            {
                return Ok(Some(RecordState::Migrated));
            }
        }
    }
    let (code, message) = match outcome {
        Outcome::Failed { code, message } => (Some(code.clone()), Some(message.clone())),
        Outcome::Skipped { reason } => (None, Some(reason.clone())),
        _ => (None, None),
    };
    let rec = StateRecord {
        legacy_id: legacy_id.to_owned(),
        state,
        clerk_id: outcome.clerk_id().map(str::to_owned),
        code,
        message,
        updated_at_ms: now_ms,
    };
    store
        .put(
            &key,
            &serde_json::to_string(&rec).unwrap_or_default(),
            PutOptions {
                ttl_secs: None,
                metadata: Some(state.as_str().to_owned()),
            },
        )
        .await?;
    Ok(Some(state))
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
        let prefix = format!("{STATE_PREFIX}{}:", meta.import_id);
        let mut cursor: Option<String> = None;
        loop {
            let page = store.list(&prefix, cursor.as_deref(), 1000).await?;
            for k in &page.keys {
                match k.metadata.as_deref() {
                    Some("migrated") => t.migrated += 1,
                    Some("skipped") => t.skipped += 1,
                    Some("failed") => t.failed += 1,
                    _ => {}
                }
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
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
        let prefix = format!("{STATE_PREFIX}{}:", meta.import_id);
        let mut cursor: Option<String> = None;
        loop {
            let page = store.list(&prefix, cursor.as_deref(), 1000).await?;
            for k in page
                .keys
                .iter()
                .filter(|k| k.metadata.as_deref() == Some("failed"))
            {
                if out.len() >= limit {
                    return Ok(out);
                }
                if let Some(v) = store.get(&k.name).await? {
                    if let Ok(s) = serde_json::from_str::<StateRecord>(&v) {
                        out.push(s);
                    }
                }
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    Ok(out)
}
