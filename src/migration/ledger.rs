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
    let (code, message) = code_and_message(outcome);
    let rec = StateRecord {
        legacy_id: legacy_id.to_owned(),
        state,
        clerk_id: outcome.clerk_id().map(str::to_owned),
        code,
        message,
        updated_at_ms: now_ms,
    };
    put_listed(store, &key, &rec, state.as_str()).await?;
    Ok(Some(state))
}

/// Clerk's code and message of a failure, or the reason of a skip, for the ledger.
fn code_and_message(outcome: &Outcome) -> (Option<String>, Option<String>) {
    match outcome {
        Outcome::Failed { code, message } => (Some(code.clone()), Some(message.clone())),
        Outcome::Skipped { reason } => (None, Some(reason.clone())),
        _ => (None, None),
    }
}

/// Writes a ledger record with its state as KV list metadata, so counts come from listings alone.
async fn put_listed<S: Store, T: Serialize>(
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

/// `warn:{legacy id}:{code}` → [`WarningRecord`]: a user migrated with something left out
/// (a password digest Clerk refused, a taken username), listed in `admin/status`.
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

/// `rq:{time}-{nonce}` → NDJSON of [`QueueMessage`]s handed back to the backlog (paused or
/// deferred deliveries, `retry-failed`). The cron takes these before new records.
pub const REQUEUE_PREFIX: &str = "rq:";
/// `dry:{import id}:{legacy id}` → [`DryRunRecord`]; list metadata = the verdict (`observe`).
pub const DRY_RUN_PREFIX: &str = "dry:";
/// `err:{import id}:{legacy id}` → [`LastError`]: deliveries that ended in a retry.
pub const LAST_ERROR_PREFIX: &str = "err:";
/// The cron's position in the backlog for `observe`'s dry run; `migrate` has its own
/// ([`BACKLOG_CURSOR_KEY`]), so a rehearsal never counts as the real thing.
pub const DRY_RUN_CURSOR_KEY: &str = "cursor:dryrun";
/// How long a [`LastError`] is kept: longer than any retry schedule.
const LAST_ERROR_TTL_SECS: u64 = 7 * 24 * 3600;

/// Hands messages back to the backlog in one write.
pub async fn requeue<S: Store>(
    store: &S,
    messages: &[QueueMessage],
    now_ms: u64,
    nonce: u32,
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut page = String::new();
    for m in messages {
        page.push_str(&serde_json::to_string(m).unwrap_or_default());
        page.push('\n');
    }
    let key = format!("{REQUEUE_PREFIX}{}", new_import_id(now_ms, nonce));
    store.put(&key, &page, PutOptions::default()).await
}

/// Messages taken from the requeued pages, and what must be written once they are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequeueTake {
    pub messages: Vec<QueueMessage>,
    /// Pages fully taken (deleted on commit).
    pub consumed: Vec<String>,
    /// A page partly taken: its key and what is left of it (rewritten on commit).
    pub remainder: Option<(String, String)>,
}

/// Takes up to `n` requeued messages, oldest page first. Nothing changes in the store until
/// [`commit_requeued`], so a failed send loses nothing.
pub async fn take_requeued<S: Store>(store: &S, n: usize) -> Result<RequeueTake, StoreError> {
    let mut take = RequeueTake::default();
    if n == 0 {
        return Ok(take);
    }
    let page = store.list(REQUEUE_PREFIX, None, 1000).await?;
    for key in &page.keys {
        if take.messages.len() >= n {
            break;
        }
        let Some(value) = store.get(&key.name).await? else {
            continue;
        };
        let mut lines = value
            .lines()
            .filter_map(|l| serde_json::from_str::<QueueMessage>(l).ok());
        for m in lines.by_ref() {
            take.messages.push(m);
            if take.messages.len() >= n {
                break;
            }
        }
        let rest: Vec<String> = lines
            .map(|m| serde_json::to_string(&m).unwrap_or_default())
            .collect();
        if rest.is_empty() {
            take.consumed.push(key.name.clone());
        } else {
            take.remainder = Some((key.name.clone(), rest.join("\n") + "\n"));
        }
    }
    Ok(take)
}

/// Removes what [`take_requeued`] took.
pub async fn commit_requeued<S: Store>(store: &S, take: &RequeueTake) -> Result<(), StoreError> {
    for key in &take.consumed {
        store.delete(key).await?;
    }
    if let Some((key, rest)) = &take.remainder {
        store.put(key, rest, PutOptions::default()).await?;
    }
    Ok(())
}

/// Messages waiting in requeued pages (one list and one read per page).
pub async fn requeued_count<S: Store>(store: &S) -> Result<u64, StoreError> {
    let mut n = 0;
    let page = store.list(REQUEUE_PREFIX, None, 1000).await?;
    for key in &page.keys {
        if let Some(v) = store.get(&key.name).await? {
            n += v.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        }
    }
    Ok(n)
}

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

    /// The verdict of an outcome; `None` (a retry) leaves the record pending.
    pub fn of(outcome: &Outcome) -> Option<DryRunVerdict> {
        match outcome {
            Outcome::WouldCreate => Some(DryRunVerdict::WouldCreate),
            Outcome::WouldLink { .. } => Some(DryRunVerdict::WouldLink),
            Outcome::Created { .. } | Outcome::Linked { .. } | Outcome::AlreadyMigrated { .. } => {
                Some(DryRunVerdict::AlreadyMigrated)
            }
            Outcome::Skipped { .. } => Some(DryRunVerdict::WouldSkip),
            Outcome::Failed { .. } => Some(DryRunVerdict::WouldFail),
            Outcome::Retry { .. } => None,
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
pub async fn record_dry_run<S: Store>(
    store: &S,
    import_id: &str,
    legacy_id: &str,
    outcome: &Outcome,
    now_ms: u64,
) -> Result<Option<DryRunVerdict>, StoreError> {
    let Some(verdict) = DryRunVerdict::of(outcome) else {
        return Ok(None);
    };
    let (code, message) = code_and_message(outcome);
    let clerk_id = match outcome {
        Outcome::WouldLink { clerk_id } => Some(clerk_id.clone()),
        other => other.clerk_id().map(str::to_owned),
    };
    let rec = DryRunRecord {
        legacy_id: legacy_id.to_owned(),
        verdict,
        clerk_id,
        code,
        message,
        updated_at_ms: now_ms,
    };
    let key = format!("{DRY_RUN_PREFIX}{import_id}:{legacy_id}");
    put_listed(store, &key, &rec, verdict.as_str()).await?;
    Ok(Some(verdict))
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

/// What the deliveries of one record that ended in a retry said, so the dead-letter consumer
/// can name the last error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LastError {
    pub deliveries: u32,
    pub code: String,
    pub message: String,
    pub updated_at_ms: u64,
}

pub fn last_error_key(import_id: &str, legacy_id: &str) -> String {
    format!("{LAST_ERROR_PREFIX}{import_id}:{legacy_id}")
}

pub async fn last_error<S: Store>(
    store: &S,
    import_id: &str,
    legacy_id: &str,
) -> Result<Option<LastError>, StoreError> {
    Ok(store
        .get(&last_error_key(import_id, legacy_id))
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

/// Retry codes that mean "not now" rather than "it went wrong" (a batch-wide 429 pause, the
/// live budget check): they neither grow a record's backoff nor make it fail when its
/// deliveries run out (it goes back to the backlog instead).
pub const DEFERRAL_CODES: &[&str] = &["rate_limited", "admission_deferred"];

/// Records one more delivery that ended in a retry, with its reason; returns the new state.
/// Only real failures are counted: a record that waited out pauses must not come back to its
/// first real error with a long backoff.
pub async fn note_retry<S: Store>(
    store: &S,
    import_id: &str,
    legacy_id: &str,
    code: &str,
    message: &str,
    now_ms: u64,
) -> Result<LastError, StoreError> {
    let prev = last_error(store, import_id, legacy_id)
        .await?
        .unwrap_or_default();
    let failed = !DEFERRAL_CODES.contains(&code);
    let next = LastError {
        deliveries: prev.deliveries + u32::from(failed),
        code: code.to_owned(),
        message: message.to_owned(),
        updated_at_ms: now_ms,
    };
    store
        .put(
            &last_error_key(import_id, legacy_id),
            &serde_json::to_string(&next).unwrap_or_default(),
            PutOptions {
                ttl_secs: Some(LAST_ERROR_TTL_SECS),
                metadata: None,
            },
        )
        .await?;
    Ok(next)
}

/// The outcome of one `retry-failed` pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RetryFailed {
    pub requeued: usize,
    /// More failed records remain beyond this pass's limit.
    pub more: bool,
}

/// Puts up to `limit` failed records back to pending: their lines go to a requeued page
/// (first, so nothing is lost if a later step fails), then their state and last error are
/// deleted.
pub async fn retry_failed<S: Store>(
    store: &S,
    limit: usize,
    now_ms: u64,
    nonce: u32,
) -> Result<RetryFailed, StoreError> {
    let mut found: Vec<(ImportMeta, String)> = Vec::new();
    let mut more = false;
    'imports: for meta in list_imports(store).await? {
        let prefix = format!("{STATE_PREFIX}{}:", meta.import_id);
        let mut cursor: Option<String> = None;
        loop {
            let page = store.list(&prefix, cursor.as_deref(), 1000).await?;
            for k in page
                .keys
                .iter()
                .filter(|k| k.metadata.as_deref() == Some("failed"))
            {
                if found.len() >= limit {
                    more = true;
                    break 'imports;
                }
                found.push((meta.clone(), k.name[prefix.len()..].to_owned()));
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    let mut pages: std::collections::HashMap<String, String> = Default::default();
    let mut messages = Vec::new();
    let mut ids = Vec::new();
    for (meta, legacy_id) in &found {
        let key = bucket_key(&meta.import_id, bucket_of(legacy_id, meta.buckets));
        if !pages.contains_key(&key) {
            let page = store.get(&key).await?.unwrap_or_default();
            pages.insert(key.clone(), page);
        }
        let needle = format!("\"id\":{}", serde_json::Value::String(legacy_id.clone()));
        let line = pages[&key]
            .lines()
            .find(|l| l.contains(&needle) && parse_line(l).is_ok_and(|r| &r.id == legacy_id));
        if let Some(line) = line {
            messages.push(QueueMessage {
                import_id: meta.import_id.clone(),
                record: line.to_owned(),
            });
            ids.push((meta.import_id.clone(), legacy_id.clone()));
        }
    }
    requeue(store, &messages, now_ms, nonce).await?;
    for (import_id, legacy_id) in &ids {
        store.delete(&state_key(import_id, legacy_id)).await?;
        store.delete(&last_error_key(import_id, legacy_id)).await?;
    }
    Ok(RetryFailed {
        requeued: messages.len(),
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::store::MemoryStore;
    use futures::executor::block_on;

    fn msg(i: usize) -> QueueMessage {
        QueueMessage {
            import_id: "imp".into(),
            record: format!(r#"{{"id":"u{i}","email":"u{i}@example.com"}}"#),
        }
    }

    #[test]
    fn requeued_messages_are_taken_in_order_and_only_removed_on_commit() {
        let s = MemoryStore::new();
        block_on(async {
            requeue(&s, &(0..3).map(msg).collect::<Vec<_>>(), 1, 1)
                .await
                .unwrap();
            requeue(&s, &(3..5).map(msg).collect::<Vec<_>>(), 2, 1)
                .await
                .unwrap();
            assert_eq!(requeued_count(&s).await.unwrap(), 5);
            let take = take_requeued(&s, 4).await.unwrap();
            assert_eq!(take.messages, (0..4).map(msg).collect::<Vec<_>>());
            assert_eq!(take.consumed.len(), 1);
            // Not committed: a second take sees the same.
            assert_eq!(take_requeued(&s, 4).await.unwrap(), take);
            commit_requeued(&s, &take).await.unwrap();
            let rest = take_requeued(&s, 10).await.unwrap();
            assert_eq!(rest.messages, vec![msg(4)]);
            commit_requeued(&s, &rest).await.unwrap();
            assert_eq!(requeued_count(&s).await.unwrap(), 0);
        });
    }

    #[test]
    fn retry_failed_requeues_failed_records_and_makes_them_pending() {
        let s = MemoryStore::new();
        block_on(async {
            let records: Vec<ImportRecord> = (0..6)
                .map(|i| parse_line(&msg(i).record).unwrap())
                .collect();
            store_import(&s, "imp", &records, 0).await.unwrap();
            let failed = Outcome::Failed {
                code: "form_password_digest_invalid_code".into(),
                message: "bad digest".into(),
            };
            let created = Outcome::Created {
                clerk_id: "user_1".into(),
            };
            for i in 0..3 {
                record_outcome(&s, "imp", &format!("u{i}"), &failed, 1)
                    .await
                    .unwrap();
            }
            record_outcome(&s, "imp", "u3", &created, 1).await.unwrap();
            note_retry(&s, "imp", "u0", "clerk_unavailable", "503", 1)
                .await
                .unwrap();
            let t = tally(&s).await.unwrap();
            assert_eq!((t.failed, t.migrated, t.pending), (3, 1, 2));

            let r = retry_failed(&s, 2, 5, 7).await.unwrap();
            assert_eq!(
                r,
                RetryFailed {
                    requeued: 2,
                    more: true
                }
            );
            let r = retry_failed(&s, 10, 6, 8).await.unwrap();
            assert_eq!(
                r,
                RetryFailed {
                    requeued: 1,
                    more: false
                }
            );
            let t = tally(&s).await.unwrap();
            assert_eq!((t.failed, t.migrated, t.pending), (0, 1, 5));
            assert_eq!(last_error(&s, "imp", "u0").await.unwrap(), None);
            let take = take_requeued(&s, 10).await.unwrap();
            let mut ids: Vec<String> = take
                .messages
                .iter()
                .map(|m| parse_line(&m.record).unwrap().id)
                .collect();
            ids.sort();
            assert_eq!(ids, vec!["u0", "u1", "u2"]);
        });
    }

    #[test]
    fn dry_run_verdicts_are_counted_apart_from_the_real_states() {
        let s = MemoryStore::new();
        block_on(async {
            let records: Vec<ImportRecord> = (0..5)
                .map(|i| parse_line(&msg(i).record).unwrap())
                .collect();
            store_import(&s, "imp", &records, 0).await.unwrap();
            let outcomes = [
                Outcome::WouldCreate,
                Outcome::WouldCreate,
                Outcome::WouldLink {
                    clerk_id: "user_2".into(),
                },
                Outcome::Skipped {
                    reason: "unverified".into(),
                },
            ];
            for (i, o) in outcomes.iter().enumerate() {
                record_dry_run(&s, "imp", &format!("u{i}"), o, 1)
                    .await
                    .unwrap();
            }
            let retry = Outcome::Retry {
                after_secs: None,
                code: "timeout".into(),
            };
            assert_eq!(
                record_dry_run(&s, "imp", "u4", &retry, 1).await.unwrap(),
                None
            );
            let d = dry_run_tally(&s).await.unwrap();
            assert_eq!(
                (d.would_create, d.would_link, d.would_skip, d.pending),
                (2, 1, 1, 1)
            );
            let t = tally(&s).await.unwrap();
            assert_eq!(t.pending, 5, "a rehearsal migrates nothing");
        });
    }

    #[test]
    fn note_retry_counts_deliveries() {
        let s = MemoryStore::new();
        block_on(async {
            for n in 1..=3 {
                let l = note_retry(&s, "imp", "u1", "timeout", "t", n)
                    .await
                    .unwrap();
                assert_eq!(l.deliveries, n as u32);
            }
            assert_eq!(
                last_error(&s, "imp", "u1").await.unwrap().unwrap().code,
                "timeout"
            );
        });
    }

    #[test]
    fn deferrals_are_remembered_but_not_counted_as_failed_deliveries() {
        let s = MemoryStore::new();
        block_on(async {
            for (n, code) in ["rate_limited", "admission_deferred", "rate_limited"]
                .iter()
                .enumerate()
            {
                let l = note_retry(&s, "imp", "u2", code, "waited", n as u64)
                    .await
                    .unwrap();
                assert_eq!(l.deliveries, 0);
                assert_eq!(l.code, *code);
            }
            let l = note_retry(&s, "imp", "u2", "clerk_unavailable", "503", 9)
                .await
                .unwrap();
            assert_eq!(
                l.deliveries, 1,
                "the first real error starts the backoff from the bottom"
            );
        });
    }
}
