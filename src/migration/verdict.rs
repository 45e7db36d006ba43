//! What a migration outcome leaves in the ledger: the terminal state of a record (or, in
//! `observe`, its verdict). This is the one place that knows both the migrator's [`Outcome`]
//! and the ledger's entries, so neither of those two modules imports the other's results.
//!
//! Only outcomes that retrying cannot change end a record: a [`Outcome::Retry`] (a transient
//! error: 429, 5xx, a timeout, a dropped connection) writes nothing and the record stays
//! pending until it is tried again.

use super::ledger::{self, DryRunRecord, DryRunVerdict, Entry, RecordState};
use super::migrator::Outcome;
use super::store::{Store, StoreError};

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

/// The ledger entry of an outcome, when it ends the record.
pub fn entry_for(outcome: &Outcome) -> Option<Entry> {
    let state = state_for(outcome)?;
    let (code, message) = code_and_message(outcome);
    Some(Entry {
        state,
        clerk_id: outcome.clerk_id().map(str::to_owned),
        code,
        message,
    })
}

/// The verdict of an outcome in `observe`; `None` (a retry) leaves the record pending.
pub fn verdict_for(outcome: &Outcome) -> Option<DryRunVerdict> {
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

/// Clerk's code and message of a failure, or the reason of a skip, for the ledger.
fn code_and_message(outcome: &Outcome) -> (Option<String>, Option<String>) {
    match outcome {
        Outcome::Failed { code, message } => (Some(code.clone()), Some(message.clone())),
        Outcome::Skipped { reason } => (None, Some(reason.clone())),
        _ => (None, None),
    }
}

/// Writes a record's state after a batch outcome (see [`ledger::write_state`]); a retry writes
/// nothing and answers `None`.
pub async fn record_outcome<S: Store>(
    store: &S,
    import_id: &str,
    legacy_id: &str,
    outcome: &Outcome,
    now_ms: u64,
) -> Result<Option<RecordState>, StoreError> {
    let Some(entry) = entry_for(outcome) else {
        return Ok(None);
    };
    ledger::write_state(store, import_id, legacy_id, entry, now_ms)
        .await
        .map(Some)
}

/// Writes a dry-run verdict (`observe`); a retry writes nothing and answers `None`.
pub async fn record_dry_run<S: Store>(
    store: &S,
    import_id: &str,
    legacy_id: &str,
    outcome: &Outcome,
    now_ms: u64,
) -> Result<Option<DryRunVerdict>, StoreError> {
    let Some(verdict) = verdict_for(outcome) else {
        return Ok(None);
    };
    let (code, message) = code_and_message(outcome);
    let clerk_id = match outcome {
        Outcome::WouldLink { clerk_id } => Some(clerk_id.clone()),
        other => other.clerk_id().map(str::to_owned),
    };
    let record = DryRunRecord {
        legacy_id: legacy_id.to_owned(),
        verdict,
        clerk_id,
        code,
        message,
        updated_at_ms: now_ms,
    };
    ledger::write_dry_run(store, import_id, &record).await?;
    Ok(Some(verdict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::ledger::{
        commit_requeued, dry_run_tally, last_error_key, requeue, requeued_count, retry_failed,
        store_import, take_requeued, tally, QueueMessage, RetryFailed,
    };
    use crate::migration::record::{parse_line, ImportRecord};
    use crate::migration::store::{MemoryStore, PutOptions};
    use futures::executor::block_on;

    fn msg(i: usize) -> QueueMessage {
        QueueMessage {
            import_id: "imp".into(),
            record: format!(r#"{{"id":"u{i}","email":"u{i}@example.com"}}"#),
            attempts: 0,
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
            let take = take_requeued(&s, 4, 10).await.unwrap();
            assert_eq!(take.messages, (0..4).map(msg).collect::<Vec<_>>());
            assert_eq!(
                take.due_ms,
                vec![1, 1, 1, 2],
                "each message with its due time"
            );
            assert_eq!(take.consumed.len(), 1);
            assert!(take_requeued(&s, 4, 0).await.unwrap().messages.is_empty());
            // Not committed: a second take sees the same.
            assert_eq!(take_requeued(&s, 4, 10).await.unwrap(), take);
            commit_requeued(&s, &take).await.unwrap();
            let rest = take_requeued(&s, 10, 10).await.unwrap();
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
            s.put(&last_error_key("imp", "u0"), "{}", PutOptions::default())
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
            assert_eq!(s.get(&last_error_key("imp", "u0")).await.unwrap(), None);
            let take = take_requeued(&s, 10, 10).await.unwrap();
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
}
