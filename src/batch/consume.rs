//! The queue consumers (glue). `auth-bridge-import`: each message is a page of records
//! ([`PageMessage`]); the consumer migrates it with [`migrate_page`] — spending calls only as
//! the live budget grants them ([`crate::pacer::Grants`]), waiting for the window when it is full —
//! writes each record's state, hands records that met only transient errors back to the
//! backlog with their backoff, and acks. `auth-bridge-import-dlq`: pages the Queue gave up on
//! go back to the backlog; they are never failed for it (only Clerk's permanent refusals end a
//! record as failed).
//!
//! Every message is acked or retried on its own and nothing here returns an error. A page that
//! cannot be written is retried whole: redelivery is harmless, since the page looks its users
//! up by `external_id` before creating any.

use std::cell::RefCell;

use crate::join::join_all;
use serde_json::Value;
use worker::kv::KvStore;
use worker::{
    console_error, console_log, Env, Message, MessageBatch, MessageExt, Queue,
    QueueRetryOptionsBuilder,
};

use super::status::BatchStats;
use super::tick::{pacer_for, pause_state, random_u32};
use super::{retry_schedule, retry_through_queue, BATCH_STATS_KEY, RATE_LIMIT_PAUSE_KEY};
use crate::clerk_api::fetch::FetchClerk;
use crate::config::Phase;
use crate::isolate::Isolate;
use crate::migration::kv::KvLedgerStore;
use crate::migration::ledger::{self, QueueMessage};
use crate::migration::page::{by_due, migrate_page, tail_pages, PageMessage, PageResult};
use crate::migration::{parse_line, verdict, ImportRecord, Migrator, Mode, Outcome};
use crate::pacer::{
    CallCounter, CallLog, Grants, LiveWindow, Pace, Seat, SeatCounting, SeatWatch, Seating,
};

/// Delay of a retry when the store itself could not be used.
const STORE_RETRY_SECS: u32 = 30;
/// KV writes in flight at once while recording a page (Workers allow six open connections).
const WRITES_IN_FLIGHT: usize = 6;

/// KV prefix of the consumers' heartbeats (`batch:consumer:{id}`, expiring after 60 s).
const CONSUMER_PREFIX: &str = "batch:consumer:";

/// This isolate as a queue consumer: its id, when it last counted the consumers, and its
/// seating since.
struct Consumer {
    id: Option<String>,
    counted_at: u64,
    watch: SeatWatch,
    seating: Option<Seating>,
}

thread_local! {
    /// This isolate's batch calls, for the live check (the trickle's come from `budget`), and
    /// its pace (it is one consumer), kept across its messages.
    static BATCH_CALLS: RefCell<(CallLog, Pace)> = RefCell::new((CallLog::new(), Pace::default()));
    static CONSUMER: RefCell<Consumer> = const {
        RefCell::new(Consumer { id: None, counted_at: 0, watch: SeatWatch::new(), seating: None })
    };
}

/// This consumer's seating among the queue consumers spending the budget now: each keeps its
/// own calls within its seat's part ([`crate::pacer::Pacer::seating_calls`]). A consumer beats
/// every few seconds by writing its key with KV's shortest expiry (60 s); the live keys, in
/// order, are the seats (however many: parts that overlap could fill more than the budget).
/// One that stopped is still counted until its key expires, which only slows the others for
/// that minute; this consumer counts itself even before KV lists it. While the count changes
/// the others may still spend by the earlier one: [`SeatWatch`] keeps this consumer to the
/// smaller part meanwhile (nothing, when it just joined others).
async fn consumer_seat(kv: &KvStore, now: u64, window_ms: u64) -> Seating {
    let (id, counted_at, seating) = CONSUMER.with(|c| {
        let c = c.borrow();
        (c.id.clone(), c.counted_at, c.seating.clone())
    });
    if let Some(seating) = seating.filter(|_| now < counted_at + SeatCounting::HEARTBEATS.beat_ms) {
        return seating;
    }
    let id = id.unwrap_or_else(|| format!("{:08x}", random_u32()));
    let key = format!("{CONSUMER_PREFIX}{id}");
    if let Ok(put) = crate::kv::put(kv, &key, "1") {
        let _ = put
            .expiration_ttl(SeatCounting::HEARTBEATS.key_ttl_ms / 1000)
            .execute()
            .await;
    }
    let listed = match kv
        .list()
        .prefix(CONSUMER_PREFIX.to_string())
        .execute()
        .await
    {
        Ok(list) => {
            // KV lists keys in order: this one's place among them is its seat, the same one
            // the others count for it.
            let names: Vec<&str> = list.keys.iter().map(|k| k.name.as_str()).collect();
            let (index, count) = match names.binary_search(&key.as_str()) {
                Ok(index) => (index, names.len()),
                Err(index) => (index, names.len() + 1),
            };
            Some(Seat {
                index: index as u32,
                count: count as u32,
            })
        }
        Err(_) => None,
    };
    CONSUMER.with(|c| {
        let mut c = c.borrow_mut();
        // An unreadable list keeps the seat last counted (or, never counted, no part until a
        // list is read).
        let seat = listed.or(c.watch.seat());
        let seating = match seat {
            Some(seat) => c
                .watch
                .counted(seat, now, SeatCounting::HEARTBEATS, window_ms),
            None => Seating::nothing(),
        };
        c.id = Some(id);
        c.counted_at = now;
        c.seating = Some(seating.clone());
        seating
    })
}

fn retry(message: &Message<Value>, delay_secs: u32) {
    message.retry_with_options(
        &QueueRetryOptionsBuilder::new()
            .with_delay_seconds(delay_secs.max(1))
            .build(),
    );
}

/// Queue consumer entry: the batch's queue name says which consumer it is.
pub async fn consume(batch: MessageBatch<Value>, env: &Env) {
    let isolate = Isolate::get(env);
    let messages = match batch.messages() {
        Ok(m) => m,
        Err(e) => {
            console_error!("auth-bridge: unreadable queue batch: {e}");
            batch.retry_all();
            return;
        }
    };
    let Some(kv) = isolate.kv.clone() else {
        console_error!("auth-bridge: queue consumer: KV binding missing; retrying later");
        for m in &messages {
            retry(m, 60);
        }
        return;
    };
    let store = KvLedgerStore::new(kv.clone());
    if batch.queue().ends_with("-dlq") {
        for message in &messages {
            hand_back(&store, message, "dead letter").await;
        }
    } else {
        for message in &messages {
            page(&isolate, &kv, &store, message).await;
        }
    }
}

/// A message's page; a message from before pages (one record) is a page of one. Read as text
/// with the parsers the ledger already uses (smaller wasm than a second, `Value`-based one).
fn page_message(message: &Message<Value>) -> Option<PageMessage> {
    let text = message.body().to_string();
    serde_json::from_str::<PageMessage>(&text).ok().or_else(|| {
        serde_json::from_str::<QueueMessage>(&text)
            .ok()
            .map(|one| PageMessage {
                items: vec![one],
                tail: false,
            })
    })
}

/// Puts a message's records back in the backlog (due now) and acks, or retries it.
async fn hand_back(store: &KvLedgerStore, message: &Message<Value>, why: &str) {
    let Some(page) = page_message(message) else {
        console_error!("auth-bridge: dropping a queue message that is not a page of records");
        message.ack();
        return;
    };
    match ledger::requeue(store, &page.items, crate::clock::now_ms(), random_u32()).await {
        Ok(()) => {
            console_log!("auth-bridge: {why}: records back to the backlog");
            message.ack();
        }
        Err(e) => {
            console_error!("auth-bridge: {why}: cannot hand records back: {e}");
            retry(message, STORE_RETRY_SECS);
        }
    }
}

/// The live window as this isolate sees it: its own batch calls, every isolate's trickle (from
/// KV) and its seat among the consumers; a 429 pause read when the page started stops it.
struct IsolateWindow<'a> {
    kv: &'a KvStore,
    paused_until_ms: u64,
    /// The rate limit's window (ms).
    window_ms: u64,
}

impl LiveWindow for IsolateWindow<'_> {
    fn now_ms(&self) -> u64 {
        crate::clock::now_ms()
    }

    fn paused_until_ms(&self) -> u64 {
        self.paused_until_ms
    }

    async fn others(&self, now_ms: u64) -> CallCounter {
        crate::budget::recent_priority_calls(Some(self.kv), now_ms).await
    }

    async fn seat(&self, now_ms: u64) -> Seating {
        consumer_seat(self.kv, now_ms, self.window_ms).await
    }

    fn with_own<R>(&self, f: impl FnOnce(&mut CallLog) -> R) -> R {
        BATCH_CALLS.with(|c| f(&mut c.borrow_mut().0))
    }

    fn with_pace<R>(&self, f: impl FnOnce(&mut Pace) -> R) -> R {
        BATCH_CALLS.with(|c| f(&mut c.borrow_mut().1))
    }

    async fn sleep(&self, ms: u64) {
        worker::Delay::from(std::time::Duration::from_millis(ms)).await;
    }
}

/// One page: migrate, record, hand back what must be tried again, ack.
async fn page(isolate: &Isolate, kv: &KvStore, store: &KvLedgerStore, message: &Message<Value>) {
    let config = &isolate.config;
    let Some(page) = page_message(message) else {
        console_error!("auth-bridge: dropping a queue message that is not a page of records");
        message.ack();
        return;
    };
    let (admin_paused, rate_limited_until) = pause_state(kv).await;
    let clerk = config
        .clerk_secret_key
        .as_deref()
        .map(|key| FetchClerk::new(&config.clerk_api_url.join(""), key));
    let Some(clerk) = clerk.filter(|_| !admin_paused && config.phase != Phase::ClerkOnly) else {
        // Paused (or nothing to call): the records wait in the backlog, not in the Queue.
        hand_back(store, message, "batch paused").await;
        return;
    };
    let dry_run = config.phase == Phase::Observe;
    let mode = if dry_run {
        Mode::Observe
    } else {
        Mode::Migrate
    };

    // Lines were validated on upload; one that does not parse now (a corrupted value) fails
    // alone, with its id when it has one.
    let mut records: Vec<ImportRecord> = Vec::new();
    let mut items: Vec<&QueueMessage> = Vec::new();
    let mut finished: Vec<(&QueueMessage, String, Outcome)> = Vec::new();
    for item in &page.items {
        match parse_line(&item.record) {
            Ok(r) => {
                records.push(r);
                items.push(item);
            }
            Err(error) => finished.push((
                item,
                record_id(&item.record).unwrap_or_default(),
                Outcome::Failed {
                    code: "invalid_record".into(),
                    message: error,
                },
            )),
        }
    }

    let pacer = pacer_for(isolate);
    let spender = Grants::new(
        pacer,
        IsolateWindow {
            kv,
            paused_until_ms: rate_limited_until,
            window_ms: pacer.config.limit.window_ms,
        },
    );
    // By reference, with the same types as the trickle's: one copy of the Migrator in the wasm.
    let migrator = Migrator::new(&clerk, store, mode);
    let result: PageResult = migrate_page(&migrator, &clerk, &spender, &records).await;
    let now = crate::clock::now_ms();
    if let Some(secs) = result.rate_limited_secs {
        set_rate_limit_pause(kv, now + u64::from(secs) * 1000).await;
    }
    let mut imported = 0u64;
    let mut again: Vec<(u64, QueueMessage)> = Vec::new();
    let mut direct: Vec<(u64, QueueMessage)> = Vec::new();
    for ((item, rec), outcome) in items.iter().zip(&records).zip(result.outcomes) {
        if let Outcome::Retry { after_secs, code } = &outcome {
            let (due, attempts) = retry_schedule(*after_secs, code, item.attempts, now, page.tail);
            let mut back = (*item).clone();
            back.attempts = attempts;
            if page.tail && retry_through_queue(code) {
                direct.push((due, back));
            } else {
                again.push((due, back));
            }
            continue;
        }
        if outcome.clerk_id().is_some() {
            imported += 1;
        }
        finished.push((item, rec.id.clone(), outcome));
    }

    let written = record(store, &finished, dry_run, now).await
        && hand_back_retries(isolate.import_queue.as_ref(), store, direct, again, now).await;
    if !dry_run {
        add_stats(kv, now, u64::from(result.calls), imported).await;
    }
    if written {
        message.ack();
    } else {
        // Redelivery redoes the page's look-ups and finds what this delivery created.
        retry(message, STORE_RETRY_SECS);
    }
}

/// Writes the finished records' states, a few at a time (the migrator already wrote the legacy
/// ↔ Clerk mapping of each user it bound). False when any write failed.
async fn record(
    store: &KvLedgerStore,
    finished: &[(&QueueMessage, String, Outcome)],
    dry_run: bool,
    now: u64,
) -> bool {
    let mut ok = true;
    for chunk in finished.chunks(WRITES_IN_FLIGHT) {
        let writes = chunk.iter().map(|(item, legacy_id, outcome)| async move {
            if dry_run {
                return verdict::record_dry_run(store, &item.import_id, legacy_id, outcome, now)
                    .await
                    .map(|_| ());
            }
            verdict::record_outcome(store, &item.import_id, legacy_id, outcome, now)
                .await
                .map(|_| ())
        });
        for result in join_all(writes).await {
            if let Err(e) = result {
                console_error!("auth-bridge: cannot record an import outcome: {e}");
                ok = false;
            }
        }
    }
    ok
}

/// Hands records back for a retry: `direct` ones (transient errors in a tail page) straight
/// to the Queue, one tail page per due time, delayed by their backoff (no cron tick to wait
/// for); the others, and any the Queue did not take (due when their page would have been
/// delivered), to the backlog. False when a write failed.
async fn hand_back_retries(
    queue: Option<&Queue>,
    store: &KvLedgerStore,
    direct: Vec<(u64, QueueMessage)>,
    mut again: Vec<(u64, QueueMessage)>,
    now: u64,
) -> bool {
    match queue {
        Some(queue) if !direct.is_empty() => {
            let pages = tail_pages(direct, now);
            let sent = super::tick::send(queue, &pages).await;
            for (delay, page) in pages.into_iter().skip(sent) {
                let due = now + u64::from(delay) * 1000;
                again.extend(page.items.into_iter().map(|m| (due, m)));
            }
        }
        _ => again.extend(direct),
    }
    requeue_by_due(store, &mut again).await
}

/// Hands records back to the backlog, one page per due time. False when a write failed.
async fn requeue_by_due(store: &KvLedgerStore, again: &mut [(u64, QueueMessage)]) -> bool {
    for group in by_due(again) {
        let messages: Vec<QueueMessage> = group.iter().map(|(_, m)| m.clone()).collect();
        if let Err(e) = ledger::requeue(store, &messages, group[0].0, random_u32()).await {
            console_error!("auth-bridge: cannot hand records back for a retry: {e}");
            return false;
        }
    }
    true
}

/// Adds a page's calls and imported users to [`BatchStats`] (best effort: status only).
async fn add_stats(kv: &KvStore, now: u64, calls: u64, imported: u64) {
    let mut stats: BatchStats =
        crate::kv::json(crate::kv::get_text(kv, BATCH_STATS_KEY).await).unwrap_or_default();
    stats.add(now, calls, imported);
    if let Ok(put) = crate::kv::put(
        kv,
        BATCH_STATS_KEY,
        &serde_json::to_string(&stats).unwrap_or_default(),
    ) {
        let _ = put.execute().await;
    }
}

/// The record's `id` from a stored line that does not parse as a whole.
fn record_id(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    match v.get("id")? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

async fn set_rate_limit_pause(kv: &KvStore, until_ms: u64) {
    let current = pause_state(kv).await.1;
    if current >= until_ms {
        return;
    }
    if let Ok(put) = crate::kv::put(kv, RATE_LIMIT_PAUSE_KEY, &until_ms.to_string()) {
        if let Err(e) = put.expiration_ttl(3600).execute().await {
            console_error!("auth-bridge: cannot store Clerk's rate-limit pause: {e}");
        }
    }
    console_log!(
        "auth-bridge: Clerk answered 429; batch paused for {}s",
        until_ms
            .saturating_sub(crate::clock::now_ms())
            .div_ceil(1000)
    );
}
