//! Progress for the operator: counts that reconcile (`accepted = migrated + skipped + failed +
//! pending`), the budget in use and an ETA. Counts come from KV listings (list metadata, no
//! value reads); at scale they are cached in KV for [`TALLY_FRESH_MS`] so a status poll stays
//! cheap, while small migrations are always counted live.

use serde::{Deserialize, Serialize};
use worker::kv::KvStore;

use super::TALLY_CACHE_KEY;
use crate::migration::kv::KvLedgerStore;
use crate::migration::ledger::{self, DryRunTally, Tally};
use crate::migration::{PutOptions, Store, StoreError};
use crate::pacer::Pacer;

/// Up to this many accepted records, counts are recomputed on every status call (about one
/// KV list per thousand records).
pub const LIVE_TALLY_MAX: u64 = 10_000;
/// Beyond it, a cached tally younger than this is served.
pub const TALLY_FRESH_MS: u64 = 15_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CachedTally {
    pub at_ms: u64,
    pub tally: Tally,
    #[serde(default)]
    pub dry_run: Option<DryRunTally>,
}

/// Whether a cached tally may be served instead of counting again.
pub fn cache_usable(cached: &CachedTally, accepted_now: u64, now_ms: u64) -> bool {
    accepted_now > LIVE_TALLY_MAX
        && cached.tally.accepted == accepted_now
        && now_ms.saturating_sub(cached.at_ms) < TALLY_FRESH_MS
}

/// The counts, from the cache when allowed, else from listings (then cached).
pub async fn tally(
    kv: &KvStore,
    with_dry_run: bool,
    now_ms: u64,
) -> Result<CachedTally, StoreError> {
    let store = KvLedgerStore::new(kv.clone());
    let accepted: u64 = ledger::list_imports(&store)
        .await?
        .iter()
        .map(|m| m.accepted)
        .sum();
    if let Some(cached) = store
        .get(TALLY_CACHE_KEY)
        .await?
        .and_then(|v| serde_json::from_str::<CachedTally>(&v).ok())
    {
        if cache_usable(&cached, accepted, now_ms) && cached.dry_run.is_some() == with_dry_run {
            return Ok(cached);
        }
    }
    let fresh = CachedTally {
        at_ms: now_ms,
        tally: ledger::tally(&store).await?,
        dry_run: if with_dry_run {
            Some(ledger::dry_run_tally(&store).await?)
        } else {
            None
        },
    };
    if fresh.tally.accepted > LIVE_TALLY_MAX {
        let _ = store
            .put(
                TALLY_CACHE_KEY,
                &serde_json::to_string(&fresh).unwrap_or_default(),
                PutOptions::default(),
            )
            .await;
    }
    Ok(fresh)
}

/// Records per second the batch can do now: the budget less the trickle's recent share.
pub fn records_per_sec(pacer: &Pacer, trickle_recent_calls: u32) -> f64 {
    let window_secs = pacer.config.limit.window_ms as f64 / 1000.0;
    let calls = f64::from(
        pacer
            .budget_per_window()
            .saturating_sub(trickle_recent_calls),
    );
    calls / f64::from(pacer.config.calls_per_record.max(1)) / window_secs
}

/// Seconds until `pending` records are done at `per_sec`, after a pause ending `pause_left_ms`
/// from now. `None` when nothing is pending or nothing can progress (paused by the admin, no
/// budget left).
pub fn eta_secs(pending: u64, per_sec: f64, pause_left_ms: Option<u64>) -> Option<u64> {
    if pending == 0 || per_sec <= 0.0 {
        return None;
    }
    let pause = pause_left_ms?;
    Some((pending as f64 / per_sec).ceil() as u64 + pause.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::{PacerConfig, RateLimit};

    #[test]
    fn eta_follows_the_budget_left_by_the_trickle() {
        let p = Pacer::new(PacerConfig {
            limit: RateLimit {
                calls: 100,
                window_ms: 10_000,
            },
            ..PacerConfig::default()
        });
        // 80 calls / 10 s at 3 per record: 2.67 records/s.
        let idle = records_per_sec(&p, 0);
        assert!((idle - 80.0 / 30.0).abs() < 1e-9);
        assert_eq!(eta_secs(8, idle, Some(0)), Some(3));
        let busy = records_per_sec(&p, 40);
        assert!((busy - idle / 2.0).abs() < 1e-9);
        assert_eq!(eta_secs(8, busy, Some(2_500)), Some(6 + 3));
        assert_eq!(records_per_sec(&p, 500), 0.0);
        assert_eq!(eta_secs(8, 0.0, Some(0)), None);
        assert_eq!(eta_secs(0, idle, Some(0)), None);
        assert_eq!(eta_secs(8, idle, None), None, "paused by the admin");
    }

    #[test]
    fn the_cache_serves_only_large_unchanged_recent_tallies() {
        let cached = CachedTally {
            at_ms: 100_000,
            tally: Tally {
                accepted: 50_000,
                pending: 50_000,
                ..Tally::default()
            },
            dry_run: None,
        };
        assert!(cache_usable(&cached, 50_000, 110_000));
        assert!(!cache_usable(&cached, 50_000, 100_000 + TALLY_FRESH_MS));
        assert!(!cache_usable(&cached, 55_000, 110_000), "a new import");
        let small = CachedTally {
            tally: Tally {
                accepted: 300,
                ..Tally::default()
            },
            ..cached
        };
        assert!(!cache_usable(&small, 300, 100_001));
    }
}
