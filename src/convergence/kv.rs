//! The isolate's convergence counts and their KV side: each forwarded request counted in
//! memory, this isolate's current hour written at most once a minute after the response, and
//! the report that lists and merges every isolate's hours.

use std::cell::RefCell;

use serde_json::{json, Value};
use worker::kv::KvStore;

use super::{
    decode_hour, hour_of, hour_of_key, hourly, summarize, Kind, Tally, BUCKET_SECS, DAY_SECS,
    FLUSH_INTERVAL_SECS, KV_PREFIX, MAX_KEYS_READ,
};

thread_local! {
    static TALLY: RefCell<Option<Tally>> = const { RefCell::new(None) };
}

/// Runs `f` on this isolate's tally, made on first use.
fn with_tally<R>(f: impl FnOnce(&mut Tally) -> R) -> R {
    TALLY.with(|cell| {
        f(cell
            .borrow_mut()
            .get_or_insert_with(|| Tally::new(isolate_id())))
    })
}

fn isolate_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        bytes = crate::clock::now_ms().to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts one forwarded request and, when due, writes this isolate's counts after the response
/// (`wait_until`).
pub fn record(
    kind: Kind,
    user_id: Option<&str>,
    kv: Option<&KvStore>,
    ctx: &worker::Context,
    now: u64,
) {
    let writes = with_tally(|tally| {
        tally.record(kind, user_id, now);
        if kv.is_some() {
            tally.take_flush(now)
        } else {
            Vec::new()
        }
    });
    // Cloned only for a write: a KvStore is six JS handles, each a table slot to take and free.
    let Some(kv) = kv.filter(|_| !writes.is_empty()).cloned() else {
        return;
    };
    ctx.wait_until(async move {
        for (key, value, ttl) in writes {
            let written = match crate::kv::put(&kv, &key, &value) {
                Ok(put) => put.expiration_ttl(ttl).execute().await.is_ok(),
                Err(_) => false,
            };
            if !written {
                worker::console_warn!("auth-bridge: convergence KV write failed ({key})");
            }
        }
    });
}

/// Counts `count` requests of `kind` forwarded at `at` without entering the worker's Rust (see
/// `fast_path`); written to KV with the next request's [`record`]. Their users were counted by
/// the request that made their forward, in the same bucket.
pub fn record_forwarded(kind: Kind, count: u64, at: u64) {
    with_tally(|tally| tally.record_many(kind, count, None, at));
}

/// The convergence figures for the admin status (`"convergence"`): last hour and last day,
/// merged over every isolate that flushed.
pub async fn report(kv: &KvStore, now: u64) -> Value {
    let oldest_hour = hour_of(now.saturating_sub(DAY_SECS));
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    let mut complete = true;
    loop {
        let mut list = kv.list().prefix(KV_PREFIX.to_string()).limit(1000);
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = match list.execute().await {
            Ok(page) => page,
            Err(_) => {
                complete = false;
                break;
            }
        };
        keys.extend(
            page.keys
                .into_iter()
                .map(|k| k.name)
                .filter(|name| hour_of_key(name).is_some_and(|h| h >= oldest_hour)),
        );
        if page.list_complete || keys.len() >= MAX_KEYS_READ {
            complete &= page.list_complete;
            break;
        }
        match page.cursor {
            Some(c) if !c.is_empty() => cursor = Some(c),
            _ => break,
        }
    }
    if keys.len() > MAX_KEYS_READ {
        // Newest hours first: the last hour must be right even when the day is partial.
        crate::sort::sort_by_key(&mut keys, |k| std::cmp::Reverse(hour_of_key(k)));
        keys.truncate(MAX_KEYS_READ);
        complete = false;
    }
    let mut buckets = Vec::new();
    // Distinct isolates (a few per hour): a list is enough.
    let mut isolates: Vec<&str> = Vec::new();
    for chunk in keys.chunks(50) {
        let reads = chunk
            .iter()
            .map(|key| async move { (key, kv.get(key).text().await) });
        for (key, value) in crate::join::join_all(reads).await {
            match value {
                Ok(Some(value)) => {
                    if let Some(isolate) = key.rsplit(':').next() {
                        if !isolates.contains(&isolate) {
                            isolates.push(isolate);
                        }
                    }
                    buckets.extend(decode_hour(&value));
                }
                Ok(None) => {}
                Err(_) => complete = false,
            }
        }
    }
    let (hour, day) = summarize(&buckets, now);
    json!({
        "last_hour": hour.to_json(),
        "last_day": day.to_json(),
        "last_day_hourly": hourly(&buckets, now),
        "isolates": isolates.len(),
        "bucket_secs": BUCKET_SECS,
        "flush_interval_secs": FLUSH_INTERVAL_SECS,
        "complete": complete,
    })
}
