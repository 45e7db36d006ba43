//! The Backend API budget shared by the trickle and the batch (glue).
//!
//! Every isolate counts the Clerk calls its trickle sign-ins make, in one-second buckets
//! ([`CallCounter`]), and publishes its recent buckets to KV under `budget:trickle:{isolate}`
//! (at most once a second, KV's per-key write rate; kept two minutes). The pacer and the queue
//! consumer read the sum of every isolate's counter and leave that much of the budget to the
//! trickle: the trickle has priority, the batch takes what is left.

use std::cell::{Cell, RefCell};

use worker::kv::KvStore;

use crate::pacer::CallCounter;

/// KV prefix of the per-isolate trickle counters.
pub const TRICKLE_PREFIX: &str = "budget:trickle:";
/// How far back the counters are kept: two pacer windows of one minute.
const KEEP_MS: u64 = 120_000;
/// Minimum time between two publications by one isolate.
const PUBLISH_INTERVAL_MS: u64 = 1_000;
/// How long a merged view of every isolate's counters is reused by readers.
const MERGED_TTL_MS: u64 = 5_000;

thread_local! {
    static ISOLATE_ID: RefCell<Option<String>> = const { RefCell::new(None) };
    static LOCAL: RefCell<CallCounter> = RefCell::new(CallCounter::new());
    static LAST_PUBLISH: Cell<u64> = const { Cell::new(0) };
    static MERGED: RefCell<Option<(u64, CallCounter)>> = const { RefCell::new(None) };
}

fn isolate_id() -> String {
    ISOLATE_ID.with(|id| {
        id.borrow_mut()
            .get_or_insert_with(|| {
                let mut bytes = [0u8; 8];
                // Without randomness, fall back to the clock: ids only need to differ.
                if getrandom::getrandom(&mut bytes).is_err() {
                    bytes = (js_sys::Date::now() as u64).to_le_bytes();
                }
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            })
            .clone()
    })
}

/// Records `calls` trickle calls made at `now_ms` and publishes this isolate's counter.
pub async fn record_trickle_calls(kv: Option<&KvStore>, now_ms: u64, calls: u32) {
    if calls == 0 {
        return;
    }
    let snapshot = LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        local.record(now_ms, calls);
        local.prune(now_ms.saturating_sub(KEEP_MS));
        local.clone()
    });
    // The isolate's own view includes its calls at once, whatever KV says.
    MERGED.with(|merged| {
        if let Some((_, counter)) = merged.borrow_mut().as_mut() {
            counter.record(now_ms, calls);
        }
    });
    let due = LAST_PUBLISH.with(|last| {
        if now_ms >= last.get() + PUBLISH_INTERVAL_MS {
            last.set(now_ms);
            true
        } else {
            false
        }
    });
    let Some(kv) = kv.filter(|_| due) else {
        return;
    };
    let Ok(value) = serde_json::to_string(&snapshot) else {
        return;
    };
    let key = format!("{TRICKLE_PREFIX}{}", isolate_id());
    let put = match kv.put(&key, value) {
        Ok(put) => put.expiration_ttl(KEEP_MS / 1000),
        Err(_) => return,
    };
    if let Err(error) = put.execute().await {
        worker::console_error!("auth-bridge: publishing trickle calls failed: {error}");
    }
}

/// The trickle's recent calls across every isolate (as far as KV has propagated them) plus this
/// isolate's own, reused for a few seconds.
pub async fn recent_trickle_calls(kv: Option<&KvStore>, now_ms: u64) -> CallCounter {
    if let Some(counter) = MERGED.with(|merged| {
        merged
            .borrow()
            .as_ref()
            .filter(|(at, _)| now_ms < at + MERGED_TTL_MS)
            .map(|(_, c)| c.clone())
    }) {
        return counter;
    }
    let own_id = isolate_id();
    let mut merged = LOCAL.with(|local| local.borrow().clone());
    if let Some(kv) = kv {
        if let Ok(list) = kv.list().prefix(TRICKLE_PREFIX.to_string()).execute().await {
            for key in list.keys.iter().filter(|k| !k.name.ends_with(&own_id)) {
                if let Ok(Some(text)) = kv.get(&key.name).text().await {
                    if let Ok(counter) = serde_json::from_str::<CallCounter>(&text) {
                        merged.merge(&counter);
                    }
                }
            }
        }
    }
    merged.prune(now_ms.saturating_sub(KEEP_MS));
    MERGED.with(|m| *m.borrow_mut() = Some((now_ms, merged.clone())));
    merged
}
