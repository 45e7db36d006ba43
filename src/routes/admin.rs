//! The admin API under `/__auth-bridge/admin` (bearer token checked by the router): the import
//! upload, progress, failures, the batch's controls, session revocation and cutover readiness;
//! `GET /__auth-bridge/admin` is a small read-only HTML dashboard of the same status.

use futures::StreamExt;
use serde_json::{json, Value};
use worker::kv::KvStore;
use worker::{console_error, console_log, Env, Method, Request};

use super::{json, plain, typed};
use crate::batch::status::{self, eta_secs, limit_users_per_sec, records_per_sec, BatchStats};
use crate::batch::tick::{load_pacer_state, pacer_for, pause_state, random_u32};
use crate::batch::upload::{UploadBuilder, UploadTooLarge, MAX_UPLOAD_BYTES};
use crate::batch::{ADMIN_PAUSE_KEY, TALLY_CACHE_KEY};
use crate::config::Phase;
use crate::identity::revocation::{self, kv::RevokeError};
use crate::isolate::Isolate;
use crate::migration::kv::KvLedgerStore;
use crate::migration::ledger::{self, ImportMeta};
use crate::migration::{PutOptions, Store};
use crate::readiness;

mod dashboard;
mod readiness_probe;

/// Pages written to KV at once while storing an upload.
const PARALLEL_PAGE_WRITES: usize = 16;
/// Failed records per `GET /admin/failures` answer (each costs one KV read).
const MAX_FAILURES: usize = 500;
/// Warnings listed in `admin/status` (the count covers all of them).
const MAX_STATUS_WARNINGS: usize = 100;
/// Failed records put back per `POST /admin/retry-failed` (three KV operations each).
const RETRY_FAILED_PER_CALL: usize = 250;

/// `route` is what follows `/__auth-bridge/admin` (empty, or `/status`, `/imports`, …).
pub async fn handle(req: Request, env: &Env, isolate: &Isolate, route: &str) -> web_sys::Response {
    let method = req.method();
    let allowed = match route {
        "" | "/" => "GET",
        "/status" | "/failures" | "/readiness" => "GET",
        "/imports" | "/retry-failed" | "/pause" | "/resume" | "/revoke" => "POST",
        _ => return plain(404, "Not Found\n"),
    };
    let ok = match allowed {
        "GET" => matches!(method, Method::Get | Method::Head),
        _ => method == Method::Post,
    };
    if !ok {
        let response = plain(405, "Method Not Allowed\n");
        let _ = response.headers().set(
            "allow",
            if allowed == "GET" {
                "GET, HEAD"
            } else {
                "POST"
            },
        );
        return response;
    }
    let Some(kv) = crate::kv::namespace(env) else {
        return unavailable("the AUTH_BRIDGE_KV binding is missing");
    };
    match route {
        "/imports" => imports(req, &kv, isolate).await,
        "/status" => match status_document(&kv, isolate).await {
            Ok(doc) => json(200, &doc),
            Err(e) => unavailable(&e),
        },
        "/readiness" => match status_document(&kv, isolate).await {
            Ok(doc) => json(200, &doc["readiness"]),
            Err(e) => unavailable(&e),
        },
        "/revoke" => revoke(req, &kv).await,
        "/failures" => failures(&kv).await,
        "/retry-failed" => retry_failed(&kv).await,
        "/pause" => set_pause(&kv, true).await,
        "/resume" => set_pause(&kv, false).await,
        _ => match status_document(&kv, isolate).await {
            Ok(doc) => dashboard_page(&kv, &doc).await,
            Err(e) => unavailable(&e),
        },
    }
}

fn unavailable(why: &str) -> web_sys::Response {
    let response = json(503, &json!({"error": "unavailable", "message": why}));
    let _ = response.headers().set("retry-after", "5");
    response
}

fn too_large(why: UploadTooLarge) -> web_sys::Response {
    json(
        413,
        &json!({"error": "payload_too_large", "message": why.message()}),
    )
}

/// `POST /admin/imports`: validate line by line while the body streams in, store the accepted
/// records (pages, then the meta that makes them visible), then answer.
async fn imports(mut req: Request, kv: &KvStore, isolate: &Isolate) -> web_sys::Response {
    let started = crate::clock::now_ms();
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES as u64) {
        return too_large(UploadTooLarge::Bytes);
    }
    let mut builder = UploadBuilder::new();
    let mut bytes = 0usize;
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    return json(
                        400,
                        &json!({"error": "body_unreadable", "message": e.to_string()}),
                    )
                }
            };
            bytes += chunk.len();
            if let Err(why) = builder.push(&chunk) {
                return too_large(why);
            }
        }
    }
    let upload = match builder.finish() {
        Ok(u) => u,
        Err(why) => return too_large(why),
    };
    let parsed_ms = crate::clock::now_ms();
    let rejected = serde_json::to_value(&upload.rejected).unwrap_or(Value::Array(vec![]));
    if upload.accepted() == 0 {
        return json(
            202,
            &json!({"import_id": Value::Null, "accepted": 0, "rejected": rejected}),
        );
    }
    let store = KvLedgerStore::new(kv.clone());
    let import_id = ledger::new_import_id(started, random_u32());
    let buckets = upload.buckets();
    let mut bucket = 0;
    while bucket < buckets {
        let end = (bucket + PARALLEL_PAGE_WRITES as u32).min(buckets);
        let pages: Vec<(u32, String)> = (bucket..end)
            .map(|b| (b, upload.page(b)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        let writes = pages.iter().map(|(b, page)| {
            let key = ledger::bucket_key(&import_id, *b);
            let store = &store;
            async move { store.put(&key, page, PutOptions::default()).await }
        });
        for result in crate::join::join_all(writes).await {
            if let Err(e) = result {
                console_error!("auth-bridge: storing import {import_id} failed: {e}");
                return unavailable("the import could not be stored; nothing was accepted");
            }
        }
        bucket = end;
    }
    let meta = ImportMeta {
        import_id: import_id.clone(),
        accepted: upload.accepted() as u64,
        buckets,
        created_at_ms: started,
    };
    if let Err(e) = ledger::store_import_meta(&store, &meta).await {
        console_error!("auth-bridge: storing import {import_id} failed: {e}");
        return unavailable("the import could not be stored; nothing was accepted");
    }
    console_log!(
        "auth-bridge: import {import_id}: {} accepted, {} rejected, {bytes} bytes, {buckets} pages; parsed in {} ms, stored in {} ms; wasm memory {} MiB ({})",
        upload.accepted(),
        upload.rejected.len(),
        parsed_ms - started,
        crate::clock::now_ms() - parsed_ms,
        wasm_memory_bytes() / (1024 * 1024),
        isolate.config.phase.as_str()
    );
    json(
        202,
        &json!({"import_id": import_id, "accepted": upload.accepted(), "rejected": rejected}),
    )
}

/// Size of the module's linear memory: it only grows, so after an import it is that import's
/// peak (or an earlier, larger one).
fn wasm_memory_bytes() -> u64 {
    use wasm_bindgen::JsCast;
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| {
            m.buffer()
                .unchecked_into::<js_sys::ArrayBuffer>()
                .byte_length() as u64
        })
        .unwrap_or(0)
}

fn rfc3339(ms: u64) -> String {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64))
        .to_iso_string()
        .into()
}

/// The status document (`GET /admin/status`, and the dashboard's data).
async fn status_document(kv: &KvStore, isolate: &Isolate) -> Result<Value, String> {
    let now = crate::clock::now_ms();
    let phase = isolate.config.phase;
    let dry_run = phase == Phase::Observe;
    let counted = status::tally(kv, dry_run, now)
        .await
        .map_err(|e| e.to_string())?;
    let t = counted.tally;
    let (admin_paused, rate_limited_until) = pause_state(kv).await;
    let pacer = pacer_for(isolate);
    let trickle_recent = crate::budget::recent_priority_calls(Some(kv), now)
        .await
        .calls_between(now.saturating_sub(pacer.config.limit.window_ms), now + 1);
    let per_sec = records_per_sec(&pacer, trickle_recent);
    let running = phase != Phase::ClerkOnly && isolate.config.clerk_secret_key.is_some();
    let pause_left = if admin_paused || !running {
        None
    } else {
        Some(rate_limited_until.saturating_sub(now))
    };
    let remaining = match counted.dry_run {
        Some(d) => d.pending,
        None => t.pending,
    };
    let eta = eta_secs(remaining, per_sec, pause_left);
    let pacer_state = load_pacer_state(kv).await;
    let stats: BatchStats =
        crate::kv::json(crate::kv::get_text(kv, crate::batch::BATCH_STATS_KEY).await)
            .unwrap_or_default();
    let mut doc = status_core(&StatusCore {
        phase,
        tally: &t,
        clerk_rate_limit: isolate.config.clerk_rate_limit.to_string(),
        pacer: &pacer,
        stats: &stats,
        per_sec,
        trickle_recent,
        eta,
        now,
        admin_paused,
        rate_limited_until,
        scheduled_until_ms: pacer_state.scheduled_until_ms,
        counted_at_ms: counted.at_ms,
    });
    if let Some(d) = counted.dry_run {
        doc["dry_run"] = serde_json::to_value(d).unwrap_or(Value::Null);
    }
    // Users migrated with something left out (a password digest Clerk refused, a taken
    // username): the operator follows up; the users themselves were not blocked.
    let store = KvLedgerStore::new(kv.clone());
    if let Ok((count, items)) = ledger::warnings(&store, MAX_STATUS_WARNINGS).await {
        doc["warnings"] = json!({"count": count, "items": items});
    }
    // Requests and users per identity source: tells when the trickle has converged.
    let convergence = crate::convergence::kv::report(kv, now / 1000).await;
    let mut problems = configuration_problems(isolate);
    let revocations =
        revocation::kv::status(kv, isolate.config.nextauth_sessions_not_before, now / 1000).await;
    if revocations["truncated"] == true {
        problems.push(format!(
            "admin/revoke: the revocation list holds more than {} users; only the first are applied",
            revocation::SNAPSHOT_LIMIT
        ));
    }
    let readiness = readiness::evaluate(&readiness::Figures {
        last_day: convergence["last_day"].clone(),
        convergence_complete: convergence["complete"] != false,
        min_clerk_share: isolate.config.readiness_min_clerk_share,
        pending: t.pending,
        failed: t.failed,
        problems: problems.clone(),
        clerk: readiness_probe::probe_clerk(isolate, now).await,
    });
    if phase == Phase::ClerkOnly {
        problems.extend(readiness::clerk_only_problem(&readiness));
    }
    doc["problems"] = json!(problems);
    doc["convergence"] = convergence;
    doc["revocations"] = revocations;
    doc["readiness"] = readiness.to_json();
    Ok(doc)
}

/// What the synchronous part of the status document is built from.
struct StatusCore<'a> {
    phase: Phase,
    tally: &'a ledger::Tally,
    clerk_rate_limit: String,
    pacer: &'a crate::pacer::Pacer,
    stats: &'a BatchStats,
    per_sec: f64,
    trickle_recent: u32,
    eta: Option<u64>,
    now: u64,
    admin_paused: bool,
    rate_limited_until: u64,
    scheduled_until_ms: u64,
    counted_at_ms: u64,
}

/// The status document's counts, rate and pause fields. Built in a plain function, kept out of
/// line: the `json!` expansion is large, and inside the async fn it would be copied into its
/// state machine.
#[inline(never)]
fn status_core(c: &StatusCore) -> Value {
    let t = c.tally;
    let (pacer, stats, now) = (c.pacer, c.stats, c.now);
    let counts = json!({
        "accepted": t.accepted,
        "pending": t.pending,
        "migrated": t.migrated,
        "skipped": t.skipped,
        "failed": t.failed,
    });
    json!({
        "phase": c.phase.as_str(),
        "counts": counts,
        "accepted": t.accepted,
        "pending": t.pending,
        "migrated": t.migrated,
        "skipped": t.skipped,
        "failed": t.failed,
        "rate": {
            "limit": c.clerk_rate_limit,
            "budget_per_window": pacer.budget_per_window(),
            // Planned: a record's create (none in observe) and its share of its page's look-ups.
            "calls_per_record": f64::from(pacer.page_cost(100)) / 100.0,
            // Measured: the batch's Backend API calls per user it imported.
            "calls_per_user": stats.calls_per_user().map(|c| (c * 1000.0).round() / 1000.0),
            "batch_calls": stats.calls,
            "imported": stats.imported,
            // Users imported per second over the last minute, next to the physical limit
            // (every call of CLERK_RATE_LIMIT a create).
            "users_per_sec": (stats.users_per_sec(now) * 100.0).round() / 100.0,
            "limit_users_per_sec": limit_users_per_sec(pacer),
            "batch_per_minute": (c.per_sec * 60.0).floor() as u64,
            "trickle_recent": c.trickle_recent,
        },
        "eta": c.eta,
        "eta_at": c.eta.map(|s| rfc3339(now + s * 1000)),
        "paused": c.admin_paused || c.rate_limited_until > now,
        "pause": {
            "admin": c.admin_paused,
            "rate_limited_until": (c.rate_limited_until > now).then(|| rfc3339(c.rate_limited_until)),
        },
        "scheduled_until": (c.scheduled_until_ms > 0)
            .then(|| rfc3339(c.scheduled_until_ms)),
        "counted_at": rfc3339(c.counted_at_ms),
    })
}

/// Failed records the dashboard lists (each costs one KV read).
const DASHBOARD_FAILURES: usize = 50;

/// `GET /admin`: the status and the latest failures as a page (see `dashboard`).
async fn dashboard_page(kv: &KvStore, doc: &Value) -> web_sys::Response {
    let store = KvLedgerStore::new(kv.clone());
    let mut latest = ledger::failures(&store, DASHBOARD_FAILURES + 1)
        .await
        .unwrap_or_default();
    let truncated = latest.len() > DASHBOARD_FAILURES;
    latest.truncate(DASHBOARD_FAILURES);
    let lines: Vec<Value> = latest.iter().map(failure_line).collect();
    let response = typed(
        200,
        "text/html; charset=utf-8",
        &dashboard::render(doc, &lines, truncated),
    );
    let headers = response.headers();
    let _ = headers.set(
        "content-security-policy",
        dashboard::CONTENT_SECURITY_POLICY,
    );
    let _ = headers.set("x-frame-options", "DENY");
    let _ = headers.set("referrer-policy", "no-referrer");
    response
}

/// One line of `GET /admin/failures`.
fn failure_line(r: &ledger::StateRecord) -> Value {
    json!({
        "id": r.legacy_id,
        "code": r.code,
        "message": r.message,
        "failed_at": rfc3339(r.updated_at_ms),
    })
}

/// The isolate's configuration problems, with those found after start (a key WebCrypto refused).
fn configuration_problems(isolate: &Isolate) -> Vec<String> {
    let mut problems = isolate.problems.clone();
    problems.extend(crate::identity::assertion::runtime_problems());
    problems
}

/// Largest revoke body read.
const MAX_REVOKE_BODY: usize = 4096;

/// `POST /admin/revoke {"user_id", "revoked"?}`: revokes (or lifts) a user's NextAuth sessions.
async fn revoke(mut req: Request, kv: &KvStore) -> web_sys::Response {
    let body = match req.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return json(
                400,
                &json!({"error": "body_unreadable", "message": e.to_string()}),
            )
        }
    };
    if body.len() > MAX_REVOKE_BODY {
        return json(
            400,
            &json!({"error": "invalid_body", "message": "the body is larger than 4 KiB"}),
        );
    }
    let request = match revocation::parse_revoke_body(&body) {
        Ok(r) => r,
        Err(message) => return json(400, &json!({"error": "invalid_body", "message": message})),
    };
    let applied = revocation::kv::apply(kv, &request, crate::clock::now_secs()).await;
    // Sessions the JS entry forwards on its own were checked before this change.
    crate::fast_path::forget_sessions();
    match applied {
        Ok(entry) => {
            console_log!(
                "auth-bridge: NextAuth sessions of one user {} by the admin",
                if entry.revoked { "revoked" } else { "restored" }
            );
            json(200, &serde_json::to_value(&entry).unwrap_or(Value::Null))
        }
        Err(RevokeError::Full) => json(
            409,
            &json!({
                "error": "revocation_list_full",
                "message": format!(
                    "{} users are revoked already; set NEXTAUTH_SESSIONS_NOT_BEFORE to end every legacy session at once",
                    revocation::MAX_REVOKED_USERS
                ),
            }),
        ),
        Err(RevokeError::Store(e)) => unavailable(&e),
    }
}

/// `GET /admin/failures`: one failed record per line (`id`, Clerk's `code` and `message`).
async fn failures(kv: &KvStore) -> web_sys::Response {
    let store = KvLedgerStore::new(kv.clone());
    let records = match ledger::failures(&store, MAX_FAILURES + 1).await {
        Ok(r) => r,
        Err(e) => return unavailable(&e.to_string()),
    };
    let truncated = records.len() > MAX_FAILURES;
    let mut body = String::new();
    for r in records.iter().take(MAX_FAILURES) {
        body.push_str(&failure_line(r).to_string());
        body.push('\n');
    }
    let response = typed(200, "application/x-ndjson", &body);
    if truncated {
        let _ = response
            .headers()
            .set("x-auth-bridge-truncated", &MAX_FAILURES.to_string());
    }
    response
}

/// `POST /admin/retry-failed`: failed records back to pending, picked up by the next tick.
async fn retry_failed(kv: &KvStore) -> web_sys::Response {
    let store = KvLedgerStore::new(kv.clone());
    let now = crate::clock::now_ms();
    match ledger::retry_failed(&store, RETRY_FAILED_PER_CALL, now, random_u32()).await {
        Ok(r) => {
            let _ = store.delete(TALLY_CACHE_KEY).await;
            console_log!(
                "auth-bridge: retry-failed: {} records back to pending",
                r.requeued
            );
            json(200, &json!({"requeued": r.requeued, "more": r.more}))
        }
        Err(e) => unavailable(&e.to_string()),
    }
}

/// `POST /admin/pause` and `/resume`. A pause also holds records already in the queue: the
/// consumer hands them back to the backlog.
async fn set_pause(kv: &KvStore, pause: bool) -> web_sys::Response {
    let result = if pause {
        let now = crate::clock::now_ms().to_string();
        match crate::kv::put(kv, ADMIN_PAUSE_KEY, &now) {
            Ok(put) => put.execute().await,
            Err(e) => Err(e),
        }
    } else {
        kv.delete(ADMIN_PAUSE_KEY).await
    };
    match result {
        Ok(()) => {
            console_log!(
                "auth-bridge: batch {} by the admin",
                if pause { "paused" } else { "resumed" }
            );
            json(200, &json!({"paused": pause}))
        }
        Err(e) => unavailable(&e.to_string()),
    }
}
