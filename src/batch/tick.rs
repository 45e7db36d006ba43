//! The cron tick (glue): claim the run, load the pacer's state and the backlog position, plan
//! pages of calls with `CLERK_RATE_LIMIT` less the trickle's recent calls, take that many
//! records (handed-back ones due before the next tick first, sent with the delay that makes
//! them due), cut them into pages (up to 100 records per
//! message) and send them to `IMPORT_QUEUE` with their delays, then save the state. Pages
//! sent when the backlog ran out are tail pages ([`PageMessage::tail`]): their consumer sends
//! what needs a retry back to the Queue itself.
//!
//! Nothing is lost on a failure: records are taken from KV only in memory until sent; a send
//! that fails hands the unsent records back to the backlog (`rq:`), and state is saved last
//! (a lost save re-sends, which the consumer and Clerk make harmless).

use worker::kv::KvStore;
use worker::{console_error, console_log, BatchMessageBuilder, Env, MessageBuilder, Queue};

use super::TickPages;
use super::{ADMIN_PAUSE_KEY, PACER_STATE_KEY, RATE_LIMIT_PAUSE_KEY, TICK_LOCK_KEY};
use crate::config::Phase;
use crate::isolate::Isolate;
use crate::kv;
use crate::migration::kv::KvLedgerStore;
use crate::migration::ledger::{
    self, BacklogCursor, QueueMessage, BACKLOG_CURSOR_KEY, DRY_RUN_CURSOR_KEY,
};
use crate::migration::page::PageMessage;
use crate::pacer::{Pacer, PacerConfig, PacerState, RateLimit};

/// Time between writing the claim and reading it back: every concurrent tick in this location
/// has written by then, so all read the same last writer.
pub const CLAIM_SETTLE_MS: u64 = 1_000;
/// Queues limits: 100 messages and 256 KB per `sendBatch`; stay under both (a page is at most
/// [`crate::migration::page::PAGE_BYTES`]).
const SEND_BATCH_MESSAGES: usize = 100;
const SEND_BATCH_BYTES: usize = 200 * 1024;

#[derive(serde::Serialize, serde::Deserialize)]
struct TickClaim {
    nonce: u32,
    scheduled_ms: u64,
}

pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    if getrandom::getrandom(&mut bytes).is_err() {
        return (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    }
    u32::from_le_bytes(bytes)
}

/// The pacer as configured: `CLERK_RATE_LIMIT`, and the costs of this phase
/// ([`pacer_config`]).
pub fn pacer_for(isolate: &Isolate) -> Pacer {
    Pacer::new(pacer_config(
        isolate.config.clerk_rate_limit.into(),
        isolate.config.phase,
    ))
}

/// What a page is planned to cost in `phase` ([`crate::migration::page`]): in `migrate`, its
/// look-up by external id and one create per record (records are created first; the email
/// look-up that a page makes only when some create found its email taken, rare in an import,
/// is granted live like any extra call); `observe` creates nothing and looks every record up
/// by external id and by email: two look-ups a page.
pub fn pacer_config(limit: RateLimit, phase: Phase) -> PacerConfig {
    let observe = phase == Phase::Observe;
    PacerConfig {
        limit,
        calls_per_page: if observe { 2 } else { 1 },
        calls_per_record: u32::from(!observe),
        ..PacerConfig::default()
    }
}

/// Whether the batch is paused: by the admin (until resumed) or until a 429's end (ms).
pub async fn pause_state(kv: &KvStore) -> (bool, u64) {
    let admin = kv::get_text(kv, ADMIN_PAUSE_KEY).await.is_some();
    let until = kv::get_text(kv, RATE_LIMIT_PAUSE_KEY)
        .await
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    (admin, until)
}

pub async fn load_pacer_state(kv: &KvStore) -> PacerState {
    kv::json(kv::get_text(kv, PACER_STATE_KEY).await).unwrap_or_default()
}

async fn claim(kv: &KvStore, scheduled_ms: u64) -> bool {
    let read = || async { kv::json::<TickClaim>(kv::get_text(kv, TICK_LOCK_KEY).await) };
    if let Some(prev) = read().await {
        if prev.scheduled_ms >= scheduled_ms {
            console_log!("auth-bridge: pacer tick skipped (a tick for this minute already ran)");
            return false;
        }
    }
    let mine = TickClaim {
        nonce: random_u32(),
        scheduled_ms,
    };
    let claim = serde_json::to_string(&mine).unwrap_or_default();
    let Ok(put) = crate::kv::put(kv, TICK_LOCK_KEY, &claim) else {
        return false;
    };
    if let Err(e) = put.execute().await {
        console_error!("auth-bridge: pacer tick cannot claim its run: {e}");
        return false;
    }
    worker::Delay::from(std::time::Duration::from_millis(CLAIM_SETTLE_MS)).await;
    match read().await {
        Some(c) if c.nonce == mine.nonce => true,
        _ => {
            console_log!("auth-bridge: pacer tick skipped (another tick claimed this run)");
            false
        }
    }
}

/// Cron Trigger: one pacer tick.
pub async fn tick(scheduled_time: f64, env: &Env) {
    let isolate = Isolate::get(env);
    let config = &isolate.config;
    if !config.phase.accepts_nextauth() {
        return; // clerk-only: the batch is over; records wait in KV for a rollback.
    }
    if config.clerk_secret_key.is_none() {
        console_error!("auth-bridge: pacer idle: CLERK_SECRET_KEY missing");
        return;
    }
    let (Some(kv), Some(queue)) = (&isolate.kv, &isolate.import_queue) else {
        console_error!("auth-bridge: pacer idle: KV or IMPORT_QUEUE binding missing");
        return;
    };
    if !claim(kv, scheduled_time.max(0.0) as u64).await {
        return;
    }
    if let Err(e) = run(&isolate, kv, queue).await {
        console_error!("auth-bridge: pacer tick failed: {e}");
    }
}

async fn run(isolate: &Isolate, kv: &KvStore, queue: &Queue) -> Result<(), String> {
    let store = KvLedgerStore::new(kv.clone());
    let dry_run = isolate.config.phase == Phase::Observe;
    let cursor_key = if dry_run {
        DRY_RUN_CURSOR_KEY
    } else {
        BACKLOG_CURSOR_KEY
    };
    let mut state = load_pacer_state(kv).await;
    let mut cursor: BacklogCursor =
        kv::json(kv::get_text(kv, cursor_key).await).unwrap_or_default();
    let (admin_paused, rate_limited_until) = pause_state(kv).await;
    // The pause is whatever the admin and Clerk say now (resume must be able to end it).
    state.paused_until_ms = if admin_paused {
        u64::MAX
    } else {
        rate_limited_until
    };
    let pacer = pacer_for(isolate);
    let now = crate::clock::now_ms();
    let trickle = crate::budget::recent_priority_calls(Some(kv), now).await;
    let planner = super::TickPlanner {
        pacer: &pacer,
        now_ms: now,
        trickle: &trickle,
    };

    // How many the budget allows, then take at most that many, then plan exactly those.
    let room = planner.room(&state);
    let returned = ledger::take_requeued(&store, room, now + super::REQUEUE_LOOKAHEAD_MS)
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = returned.messages.clone();
    let wanted = room - messages.len();
    // One list of the imports serves the backlog and the tail estimate below. Without it no
    // backlog can be taken; with nothing to take, the pages only lose their tail mark.
    let imports = match ledger::list_imports(&store).await {
        Ok(imports) => Some(imports),
        Err(e) if wanted > 0 => return Err(e.to_string()),
        Err(_) => None,
    };
    let fresh = ledger::take_backlog(
        &store,
        imports.as_deref().unwrap_or_default(),
        &mut cursor,
        wanted,
    )
    .await
    .map_err(|e| e.to_string())?;
    messages.extend(fresh);
    // An unreadable list of imports only means the pages hand retries back through the
    // backlog (they are not tail pages).
    let left = imports
        .as_deref()
        .map_or(u64::MAX, |imports| super::backlog_left(imports, &cursor));
    let TickPages {
        pages,
        overflow,
        calls,
    } = planner.pages(&mut state, messages, &returned.due_ms, room, left);

    let sent_pages = send(queue, &pages).await;
    let mut back: Vec<QueueMessage> = pages[sent_pages..]
        .iter()
        .flat_map(|(_, p)| p.items.clone())
        .collect();
    back.extend(overflow);
    if !back.is_empty() {
        ledger::requeue(&store, &back, now, super::tick::random_u32())
            .await
            .map_err(|e| format!("{} records not sent and not handed back: {e}", back.len()))?;
    }
    ledger::commit_requeued(&store, &returned)
        .await
        .map_err(|e| e.to_string())?;
    put_json(kv, cursor_key, &cursor).await?;
    put_json(kv, PACER_STATE_KEY, &state).await?;
    let sent: usize = pages[..sent_pages].iter().map(|(_, p)| p.items.len()).sum();
    if sent > 0 || !back.is_empty() {
        console_log!(
            "auth-bridge: pacer tick: {sent} records in {sent_pages} pages, {} calls planned, {} handed back",
            calls,
            back.len(),
        );
    }
    Ok(())
}

async fn put_json<T: serde::Serialize>(kv: &KvStore, key: &str, value: &T) -> Result<(), String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    crate::kv::put(kv, key, &text)
        .map_err(|e| e.to_string())?
        .execute()
        .await
        .map_err(|e| format!("saving {key}: {e}"))
}

/// Sends each page with its delay, in batches within Queues' limits. Returns how many pages
/// were sent: those after them (from the first failed batch on) were not.
pub async fn send(queue: &Queue, pages: &[(u32, PageMessage)]) -> usize {
    let size = |p: &PageMessage| -> usize {
        p.items
            .iter()
            .map(|m| m.record.len() + m.import_id.len() + 32)
            .sum::<usize>()
            + 64
    };
    let mut start = 0;
    while start < pages.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < pages.len()
            && end - start < SEND_BATCH_MESSAGES
            && (end == start || bytes + size(&pages[end].1) <= SEND_BATCH_BYTES)
        {
            bytes += size(&pages[end].1);
            end += 1;
        }
        let batch = BatchMessageBuilder::new()
            .messages(pages[start..end].iter().map(|(delay, page)| {
                MessageBuilder::new(page.clone())
                    .delay_seconds(*delay)
                    .build()
            }))
            .build();
        if let Err(e) = queue.send_batch(batch).await {
            console_error!("auth-bridge: sending to IMPORT_QUEUE failed: {e}");
            return start;
        }
        start = end;
    }
    pages.len()
}
