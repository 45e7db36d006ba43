//! Records handed back to the backlog (`rq:{due}-{nonce}` pages of [`QueueMessage`]s): by a
//! paused consumer, after transient errors (with the record's backoff), by the dead-letter
//! consumer, and by `retry-failed`. The cron takes due pages before new records.

use super::states::{is_failed, StateKeys};
use super::{
    bucket_key, bucket_of, last_error_key, list_imports, new_import_id, state_key, ImportMeta,
    QueueMessage, REQUEUE_PREFIX,
};
use crate::migration::record::parse_line;
use crate::migration::store::{PutOptions, Store, StoreError};
use serde::Serialize;

/// Hands messages back to the backlog in one write; the cron takes them from `due_ms` on (a
/// record's backoff after transient errors, or at once).
pub async fn requeue<S: Store>(
    store: &S,
    messages: &[QueueMessage],
    due_ms: u64,
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
    let key = format!("{REQUEUE_PREFIX}{}", new_import_id(due_ms, nonce));
    store.put(&key, &page, PutOptions::default()).await
}

/// Messages taken from the requeued pages, and what must be written once they are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequeueTake {
    pub messages: Vec<QueueMessage>,
    /// When each of `messages` falls due (same order, ascending).
    pub due_ms: Vec<u64>,
    /// Pages fully taken (deleted on commit).
    pub consumed: Vec<String>,
    /// A page partly taken: its key and what is left of it (rewritten on commit).
    pub remainder: Option<(String, String)>,
}

/// When a requeued page is due (its key starts with the time).
fn due_of(key: &str) -> u64 {
    key.strip_prefix(REQUEUE_PREFIX)
        .and_then(|rest| rest.get(..13))
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

/// Takes up to `n` requeued messages due by `until_ms`, oldest page first (the cron passes its
/// next run, and sends those not yet due with the matching delay). Nothing changes in the
/// store until [`commit_requeued`], so a failed send loses nothing.
pub async fn take_requeued<S: Store>(
    store: &S,
    n: usize,
    until_ms: u64,
) -> Result<RequeueTake, StoreError> {
    let mut take = RequeueTake::default();
    if n == 0 {
        return Ok(take);
    }
    let page = store.list(REQUEUE_PREFIX, None, 1000).await?;
    for key in &page.keys {
        let due = due_of(&key.name);
        if take.messages.len() >= n || due > until_ms {
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
            take.due_ms.push(due);
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
        let mut keys = StateKeys::of(store, &meta.import_id);
        while let Some(page) = keys.next_page().await? {
            for k in page.iter().filter(|k| is_failed(k)) {
                if found.len() >= limit {
                    more = true;
                    break 'imports;
                }
                found.push((meta.clone(), keys.legacy_id(k).to_owned()));
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
                attempts: 0,
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
