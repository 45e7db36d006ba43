//! The isolate's revocation snapshot and the list's KV side: the hot path's check, the
//! refresh when the snapshot is stale (marker first, then the list), and the admin's revoke or
//! lift (KV first, then this isolate's snapshot at once). The rules are in [`super`].

use serde_json::Value;

use super::{
    issued_at, kv_key, listed_entry, refusal, status_json, EntryMetadata, Refusal, RevocationEntry,
    RevocationSnapshot, RevokeRequest, KV_PREFIX, MARKER_CACHE_TTL_SECS, MARKER_KEY,
    MAX_REVOKED_USERS, SNAPSHOT_LIMIT,
};

thread_local! {
    static SNAPSHOT: std::cell::RefCell<RevocationSnapshot> =
        std::cell::RefCell::new(RevocationSnapshot::default());
}

/// Why a NextAuth JWT session must give no identity, if it must. Costs nothing when no user is
/// revoked and no cut-off is set beyond one KV list per isolate every [`super::REFRESH_SECS`].
pub async fn check_session(
    session_iat: Option<f64>,
    user_id: &str,
    not_before: Option<u64>,
    kv: Option<&worker::kv::KvStore>,
    now: u64,
) -> Option<Refusal> {
    let iat = issued_at(session_iat);
    // The global cut-off needs no list.
    if let Some(refused) = refusal(iat, not_before, None) {
        return Some(refused);
    }
    if let Some(kv) = kv {
        refresh_if_due(kv, now).await;
    }
    let revoked_at = SNAPSHOT.with(|s| s.borrow().revoked_at(user_id, now));
    refusal(iat, not_before, revoked_at)
}

/// [`RevocationSnapshot::settled_version`] of this isolate's snapshot.
pub fn settled_version(refreshes: bool, now: u64) -> Option<u64> {
    SNAPSHOT.with(|s| s.borrow().settled_version(refreshes, now))
}

/// [`RevocationSnapshot::settled_until`] of this isolate's snapshot.
pub fn settled_until(refreshes: bool) -> u64 {
    SNAPSHOT.with(|s| s.borrow().settled_until(refreshes))
}

/// Applies a change made on this isolate to its snapshot at once (`Some(time)` = revoked,
/// `None` = lifted); [`apply`] calls it once KV holds the change.
pub fn record_change(user_id: &str, revoked_at: Option<u64>, now: u64) {
    SNAPSHOT.with(|s| s.borrow_mut().record_local(user_id, revoked_at, now));
}

/// Reads the list when the snapshot is stale.
pub async fn refresh_if_due(kv: &worker::kv::KvStore, now: u64) {
    let due = SNAPSHOT.with(|s| {
        let mut s = s.borrow_mut();
        let due = s.refresh_due(now);
        if due {
            s.begin_refresh(now);
        }
        due
    });
    if !due {
        return;
    }
    // A marker that cannot be read is treated as changed: read the list.
    let marker = match kv
        .get(MARKER_KEY)
        .cache_ttl(MARKER_CACHE_TTL_SECS)
        .text()
        .await
    {
        Ok(marker) => marker,
        Err(error) => Some(format!("unreadable: {error}")),
    };
    if !SNAPSHOT.with(|s| s.borrow_mut().list_needed(marker.as_deref(), now)) {
        SNAPSHOT.with(|s| s.borrow_mut().unchanged(now));
        return;
    }
    match list_all(kv).await {
        Ok((entries, complete)) => {
            if !complete {
                worker::console_error!(
                    "auth-bridge: the revocation list exceeds {SNAPSHOT_LIMIT} entries; only the first are applied"
                );
            }
            SNAPSHOT.with(|s| s.borrow_mut().replace(entries, complete, now));
        }
        Err(error) => {
            worker::console_error!("auth-bridge: reading the revocation list failed: {error}");
            SNAPSHOT.with(|s| s.borrow_mut().refresh_failed(now));
        }
    }
}

/// Every entry under [`KV_PREFIX`], up to [`SNAPSHOT_LIMIT`]; `false` when there were more.
async fn list_all(kv: &worker::kv::KvStore) -> Result<(Vec<(String, u64)>, bool), String> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut list = kv.list().prefix(KV_PREFIX.to_string()).limit(1000);
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await.map_err(|e| e.to_string())?;
        entries.extend(
            page.keys
                .iter()
                .filter_map(|k| listed_entry(&k.name, k.metadata.as_ref())),
        );
        if entries.len() >= SNAPSHOT_LIMIT {
            let complete = page.list_complete && entries.len() <= SNAPSHOT_LIMIT;
            entries.truncate(SNAPSHOT_LIMIT);
            return Ok((entries, complete));
        }
        match page.cursor {
            Some(c) if !page.list_complete && !c.is_empty() => cursor = Some(c),
            _ => return Ok((entries, true)),
        }
    }
}

/// Why a revoke could not be stored.
#[derive(Debug)]
pub enum RevokeError {
    /// [`MAX_REVOKED_USERS`] reached.
    Full,
    Store(String),
}

/// Applies an admin revoke (or lift): KV first, then this isolate's snapshot at once.
pub async fn apply(
    kv: &worker::kv::KvStore,
    request: &RevokeRequest,
    now: u64,
) -> Result<RevocationEntry, RevokeError> {
    let key = kv_key(&request.user_id);
    if !request.revoked {
        kv.delete(&key)
            .await
            .map_err(|e| RevokeError::Store(e.to_string()))?;
        announce_change(kv).await?;
        record_change(&request.user_id, None, now);
        return Ok(RevocationEntry {
            user_id: request.user_id.clone(),
            revoked: false,
            revoked_at: None,
            lifted_at: Some(now),
        });
    }
    // The cap is checked on a fresh read (this is an admin call, not the hot path).
    let (listed, complete) = list_all(kv).await.map_err(RevokeError::Store)?;
    let already = listed.iter().any(|(user, _)| *user == request.user_id);
    if !already && listed.len() >= MAX_REVOKED_USERS {
        return Err(RevokeError::Full);
    }
    let entry = RevocationEntry {
        user_id: request.user_id.clone(),
        revoked: true,
        revoked_at: Some(now),
        lifted_at: None,
    };
    let value = serde_json::to_string(&entry).map_err(|e| RevokeError::Store(e.to_string()))?;
    crate::kv::put(kv, &key, &value)
        .and_then(|put| put.metadata(EntryMetadata { at: now }))
        .map_err(|e| RevokeError::Store(e.to_string()))?
        .execute()
        .await
        .map_err(|e| RevokeError::Store(e.to_string()))?;
    announce_change(kv).await?;
    SNAPSHOT.with(|s| {
        let mut s = s.borrow_mut();
        s.replace(listed, complete, now);
        s.record_local(&request.user_id, Some(now), now);
    });
    Ok(entry)
}

/// Rewrites the change marker, so every isolate reads the list again. Its failure fails the call
/// (the entry is stored, but other isolates would not look): the admin retries.
async fn announce_change(kv: &worker::kv::KvStore) -> Result<(), RevokeError> {
    let mut nonce = [0u8; 4];
    let _ = getrandom::getrandom(&mut nonce);
    let marker = format!(
        "{}-{:08x}",
        crate::clock::now_ms(),
        u32::from_be_bytes(nonce)
    );
    crate::kv::put(kv, MARKER_KEY, &marker)
        .map_err(|e| RevokeError::Store(e.to_string()))?
        .execute()
        .await
        .map_err(|e| RevokeError::Store(format!("stored, but not announced ({e}); retry")))
}

/// The `revocations` section of the admin status, after a refresh if one is due.
pub async fn status(kv: &worker::kv::KvStore, not_before: Option<u64>, now: u64) -> Value {
    refresh_if_due(kv, now).await;
    SNAPSHOT.with(|s| status_json(&s.borrow(), not_before, now))
}
