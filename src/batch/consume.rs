//! The queue consumers (glue). `auth-bridge-import`: per message, check the pause and the
//! live budget ([`crate::pacer::Pacer::admit`]), run the shared migrator, write the ledger,
//! then ack, or retry with a delay. `auth-bridge-import-dlq`: records whose deliveries ran out
//! are failed (`retries_exhausted`, with the last error), or handed back to the backlog when
//! they were only ever deferred.
//!
//! Every message is acked or retried on its own and nothing here returns an error: a message
//! that cannot be handled is retried, and redelivery is harmless (the ledger's writes are
//! idempotent and the migrator asks Clerk first).

use std::cell::RefCell;

use serde_json::Value;
use worker::kv::KvStore;
use worker::{
    console_error, console_log, Env, Message, MessageBatch, MessageExt, QueueRetryOptionsBuilder,
};

use super::tick::{pacer_for, pause_state, random_u32};
use super::{exhausted_message, next_step, Next, DEFERRAL_CODES, RATE_LIMIT_PAUSE_KEY};
use crate::clerk_api::fetch::FetchClerk;
use crate::config::Phase;
use crate::isolate::{self, Isolate};
use crate::migration::kv::KvLedgerStore;
use crate::migration::ledger::{self, QueueMessage, RecordState, StateRecord};
use crate::migration::{parse_line, Migrator, Mode, Outcome};
use crate::pacer::CallCounter;

/// Delay of a retry when the store itself could not be used.
const STORE_RETRY_SECS: u32 = 30;
/// How long the batch's own calls are remembered for the live check (longer than any window).
const KEEP_MS: u64 = 120_000;

thread_local! {
    /// This isolate's batch calls, for the live check (the trickle's come from `budget`).
    static BATCH_CALLS: RefCell<CallCounter> = RefCell::new(CallCounter::new());
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
    let Some(kv) = isolate::kv(env) else {
        console_error!("auth-bridge: queue consumer: KV binding missing; retrying later");
        for m in &messages {
            retry(m, 60);
        }
        return;
    };
    if batch.queue().ends_with("-dlq") {
        dead_letters(&kv, &messages).await;
    } else {
        imports(&isolate, &kv, &messages).await;
    }
}

fn queue_message(message: &Message<Value>) -> Option<QueueMessage> {
    serde_json::from_value(message.body().clone()).ok()
}

async fn imports(isolate: &Isolate, kv: &KvStore, messages: &[Message<Value>]) {
    let config = &isolate.config;
    let store = KvLedgerStore::new(kv.clone());
    let dry_run = config.phase == Phase::Observe;
    let clerk = config
        .clerk_secret_key
        .as_deref()
        .map(|key| FetchClerk::new(&config.clerk_api_url.join(""), key));
    let (admin_paused, mut rate_limited_until) = pause_state(kv).await;
    let hold = admin_paused || config.phase == Phase::ClerkOnly || clerk.is_none();
    let pacer = pacer_for(isolate);
    let mut held: Vec<(QueueMessage, &Message<Value>)> = Vec::new();

    for message in messages {
        let Some(qm) = queue_message(message) else {
            console_error!("auth-bridge: dropping a queue message that is not an import record");
            message.ack();
            continue;
        };
        if hold {
            held.push((qm, message));
            continue;
        }
        let Some(clerk) = clerk.as_ref() else {
            continue;
        };
        let now = isolate::now_ms();
        let record = match parse_line(&qm.record) {
            Ok(r) => r,
            Err(error) => {
                // Stored lines were validated on upload; this only happens to a corrupted one.
                let id = record_id(&qm.record).unwrap_or_default();
                let outcome = Outcome::Failed {
                    code: "invalid_record".into(),
                    message: error,
                };
                finish(&store, message, &qm, &id, &outcome, dry_run, now).await;
                continue;
            }
        };
        if rate_limited_until > now {
            let wait = (rate_limited_until - now).div_ceil(1000) as u32;
            defer(&store, message, &qm, &record.id, "rate_limited", wait, now).await;
            continue;
        }
        if !dry_run && already_done(&store, &qm.import_id, &record.id).await {
            message.ack();
            continue;
        }
        let mut recent = crate::budget::recent_priority_calls(Some(kv), now).await;
        BATCH_CALLS.with(|c| recent.merge(&c.borrow()));
        if let Err(wait_ms) = pacer.admit(now, &recent, pacer.config.calls_per_record) {
            let wait = wait_ms.div_ceil(1000) as u32;
            defer(
                &store,
                message,
                &qm,
                &record.id,
                "admission_deferred",
                wait,
                now,
            )
            .await;
            continue;
        }
        let mode = if dry_run {
            Mode::Observe
        } else {
            Mode::Migrate
        };
        let migration = Migrator::new(clerk, &store, mode)
            .migrate_record(&record)
            .await;
        let done = isolate::now_ms();
        BATCH_CALLS.with(|c| {
            let mut c = c.borrow_mut();
            c.record(done, migration.calls);
            c.prune(done.saturating_sub(KEEP_MS));
        });
        let deliveries = match &migration.outcome {
            Outcome::Retry { .. } => ledger::last_error(&store, &qm.import_id, &record.id)
                .await
                .ok()
                .flatten()
                .map_or(0, |l| l.deliveries),
            _ => 0,
        };
        match next_step(&migration.outcome, deliveries, done) {
            Next::Record => {
                finish(
                    &store,
                    message,
                    &qm,
                    &record.id,
                    &migration.outcome,
                    dry_run,
                    done,
                )
                .await;
            }
            Next::Retry {
                delay_secs,
                code,
                pause_until_ms,
            } => {
                if let Some(until) = pause_until_ms {
                    rate_limited_until = rate_limited_until.max(until);
                    set_rate_limit_pause(kv, until).await;
                }
                let text = retry_text(&migration.outcome);
                let _ =
                    ledger::note_retry(&store, &qm.import_id, &record.id, &code, &text, done).await;
                retry(message, delay_secs);
            }
        }
    }

    if !held.is_empty() {
        let back: Vec<QueueMessage> = held.iter().map(|(q, _)| q.clone()).collect();
        match ledger::requeue(&store, &back, isolate::now_ms(), random_u32()).await {
            Ok(()) => held.iter().for_each(|(_, m)| m.ack()),
            Err(e) => {
                console_error!("auth-bridge: cannot hand paused records back: {e}");
                held.iter().for_each(|(_, m)| retry(m, 60));
            }
        }
    }
}

fn retry_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Retry {
            after_secs: Some(s),
            code,
        } => format!("{code}, retry after {s}s"),
        Outcome::Retry { code, .. } => code.clone(),
        _ => String::new(),
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

/// Whether this import's record already ended migrated or skipped (a redelivery, or the same
/// record sent twice): those never change again, so no Clerk call is needed.
async fn already_done(store: &KvLedgerStore, import_id: &str, legacy_id: &str) -> bool {
    use crate::migration::Store;
    let Ok(Some(value)) = store.get(&ledger::state_key(import_id, legacy_id)).await else {
        return false;
    };
    serde_json::from_str::<StateRecord>(&value)
        .is_ok_and(|s| matches!(s.state, RecordState::Migrated | RecordState::Skipped))
}

async fn set_rate_limit_pause(kv: &KvStore, until_ms: u64) {
    let current = pause_state(kv).await.1;
    if current >= until_ms {
        return;
    }
    if let Ok(put) = kv.put(RATE_LIMIT_PAUSE_KEY, until_ms.to_string()) {
        if let Err(e) = put.expiration_ttl(3600).execute().await {
            console_error!("auth-bridge: cannot store Clerk's rate-limit pause: {e}");
        }
    }
    console_log!(
        "auth-bridge: Clerk answered 429; batch paused for {}s",
        until_ms.saturating_sub(isolate::now_ms()).div_ceil(1000)
    );
}

/// Not now: retry after `wait_secs`, remembering why (so running out of deliveries this way
/// hands the record back instead of failing it).
async fn defer(
    store: &KvLedgerStore,
    message: &Message<Value>,
    qm: &QueueMessage,
    legacy_id: &str,
    code: &str,
    wait_secs: u32,
    now: u64,
) {
    let text = format!("{code}, waited {wait_secs}s");
    let _ = ledger::note_retry(store, &qm.import_id, legacy_id, code, &text, now).await;
    retry(message, wait_secs);
}

/// Writes a final outcome (or a dry-run verdict) and acks; retries when the store fails.
async fn finish(
    store: &KvLedgerStore,
    message: &Message<Value>,
    qm: &QueueMessage,
    legacy_id: &str,
    outcome: &Outcome,
    dry_run: bool,
    now: u64,
) {
    let written = if dry_run {
        ledger::record_dry_run(store, &qm.import_id, legacy_id, outcome, now)
            .await
            .map(|_| ())
    } else {
        ledger::record_outcome(store, &qm.import_id, legacy_id, outcome, now)
            .await
            .map(|_| ())
    };
    match written {
        Ok(()) => message.ack(),
        Err(e) => {
            console_error!("auth-bridge: cannot record an import outcome: {e}");
            retry(message, STORE_RETRY_SECS);
        }
    }
}

/// `auth-bridge-import-dlq`: the queue gave up on these.
async fn dead_letters(kv: &KvStore, messages: &[Message<Value>]) {
    let store = KvLedgerStore::new(kv.clone());
    let mut back: Vec<(QueueMessage, &Message<Value>)> = Vec::new();
    for message in messages {
        let Some(qm) = queue_message(message) else {
            message.ack();
            continue;
        };
        let Some(legacy_id) = record_id(&qm.record) else {
            message.ack();
            continue;
        };
        let last = match ledger::last_error(&store, &qm.import_id, &legacy_id).await {
            Ok(l) => l,
            Err(e) => {
                console_error!("auth-bridge: dead letter: store unavailable: {e}");
                retry(message, STORE_RETRY_SECS);
                continue;
            }
        };
        if last
            .as_ref()
            .is_some_and(|l| DEFERRAL_CODES.contains(&l.code.as_str()))
        {
            back.push((qm, message));
            continue;
        }
        let outcome = Outcome::Failed {
            code: "retries_exhausted".into(),
            message: exhausted_message(last.as_ref()),
        };
        let now = isolate::now_ms();
        match ledger::record_outcome(&store, &qm.import_id, &legacy_id, &outcome, now).await {
            Ok(_) => message.ack(),
            Err(e) => {
                console_error!("auth-bridge: dead letter: cannot record the failure: {e}");
                retry(message, STORE_RETRY_SECS);
            }
        }
    }
    if !back.is_empty() {
        let records: Vec<QueueMessage> = back.iter().map(|(q, _)| q.clone()).collect();
        match ledger::requeue(&store, &records, isolate::now_ms(), random_u32()).await {
            Ok(()) => back.iter().for_each(|(_, m)| m.ack()),
            Err(_) => back.iter().for_each(|(_, m)| retry(m, STORE_RETRY_SECS)),
        }
    }
}
