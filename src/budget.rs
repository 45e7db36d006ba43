//! The Backend API budget, `CLERK_RATE_LIMIT`, shared by every call the worker makes (glue).
//!
//! Every isolate counts the calls made for people ([`Priority::Interactive`]: handshake
//! payloads, mapping look-ups, sign-in tokens) and for the trickle ([`Priority::Trickle`]) in
//! one-second buckets, and publishes its recent buckets to KV under `budget:priority:{isolate}`
//! (at most once a second, KV's per-key write rate; kept two minutes). Before a call, [`admit`]
//! checks the sum of every isolate's counters against the class's share ([`share`]); the pacer
//! and the queue consumer read the same sum ([`recent_priority_calls`]) and give the batch
//! what is left.
//!
//! What one client can make the worker spend is capped per address ([`client_may_call`],
//! `CF-Connecting-IP`), and sign-in tokens per user ([`user_may_mint`]), in this isolate
//! ([`per_key`]).

pub mod per_key;
pub mod share;

use std::cell::{Cell, RefCell};

use worker::kv::KvStore;

use crate::config::RateLimit;
use crate::pacer::CallCounter;
use per_key::KeyedCap;
pub use share::Priority;
use share::Share;

/// KV prefix of the per-isolate counters of interactive and trickle calls.
pub const PRIORITY_PREFIX: &str = "budget:priority:";
/// How far back the counters are kept: two pacer windows of one minute.
const KEEP_MS: u64 = 120_000;
/// Minimum time between two publications by one isolate.
const PUBLISH_INTERVAL_MS: u64 = 1_000;
/// How long a merged view of every isolate's counters is reused by readers.
const MERGED_TTL_MS: u64 = 5_000;

/// Backend API calls (and origin session look-ups) one client address may trigger a minute
/// without being signed in: a handshake nonce, a database-session value.
pub const CLIENT_CALLS_PER_MINUTE: u32 = 10;
/// Sign-in tokens one user may get a minute (tabs, retries); `client.js` backs off beyond.
pub const SIGN_IN_TOKENS_PER_MINUTE: u32 = 5;
/// Keys remembered per cap (memory bound per isolate).
const CAP_CAPACITY: usize = 4096;

thread_local! {
    static ISOLATE_ID: RefCell<Option<String>> = const { RefCell::new(None) };
    static LOCAL: RefCell<CallCounter> = RefCell::new(CallCounter::new());
    static LAST_PUBLISH: Cell<u64> = const { Cell::new(0) };
    static MERGED: RefCell<Option<(u64, CallCounter)>> = const { RefCell::new(None) };
    static CLIENTS: RefCell<KeyedCap> =
        RefCell::new(KeyedCap::new(CLIENT_CALLS_PER_MINUTE, 60_000, CAP_CAPACITY));
    static MINTS: RefCell<KeyedCap> =
        RefCell::new(KeyedCap::new(SIGN_IN_TOKENS_PER_MINUTE, 60_000, CAP_CAPACITY));
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

/// Records `calls` interactive or trickle calls made at `now_ms` and publishes this isolate's
/// counter.
pub async fn record_calls(kv: Option<&KvStore>, now_ms: u64, calls: u32) {
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
    let key = format!("{PRIORITY_PREFIX}{}", isolate_id());
    let put = match crate::kv::put(kv, &key, &value) {
        Ok(put) => put.expiration_ttl(KEEP_MS / 1000),
        Err(_) => return,
    };
    if let Err(error) = put.execute().await {
        worker::console_error!("auth-bridge: publishing Backend API calls failed: {error}");
    }
}

/// The interactive and trickle calls of every isolate (as far as KV has propagated them) plus
/// this isolate's own, reused for a few seconds. The batch plans with what they leave.
pub async fn recent_priority_calls(kv: Option<&KvStore>, now_ms: u64) -> CallCounter {
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
        if let Ok(list) = kv
            .list()
            .prefix(PRIORITY_PREFIX.to_string())
            .execute()
            .await
        {
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

/// Whether `cost` calls of `priority` fit the budget now; else the seconds to wait. Admitted
/// calls are not recorded here: record what was actually made with [`record_calls`].
pub async fn admit(
    kv: Option<&KvStore>,
    limit: RateLimit,
    priority: Priority,
    now_ms: u64,
    cost: u32,
) -> Result<(), u32> {
    let recent = recent_priority_calls(kv, now_ms).await;
    Share::new(limit).admit(priority, now_ms, &recent, cost)
}

/// Takes one call from what the client at `address` (`CF-Connecting-IP`; empty when unknown)
/// may trigger this minute; else the seconds until it may again.
pub fn client_may_call(address: &str, now_ms: u64) -> Result<(), u32> {
    CLIENTS.with(|caps| caps.borrow_mut().take(address, now_ms))
}

/// Takes one sign-in token from what the user `legacy_id` may get this minute; else the
/// seconds until it may again.
pub fn user_may_mint(legacy_id: &str, now_ms: u64) -> Result<(), u32> {
    MINTS.with(|caps| caps.borrow_mut().take(legacy_id, now_ms))
}
