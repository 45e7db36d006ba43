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
    if let Some(cached) =
        crate::kv::json::<CachedTally>(crate::kv::get_text(kv, TALLY_CACHE_KEY).await)
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

/// Records per second the batch can do now: the budget less the trickle's recent share, at
/// the planned cost of a record (one create, plus its share of its page's look-ups).
pub fn records_per_sec(pacer: &Pacer, trickle_recent_calls: u32) -> f64 {
    pacer.records_per_sec(
        pacer
            .budget_per_window()
            .saturating_sub(trickle_recent_calls),
    )
}

/// Span of one bucket of [`BatchStats::recent`].
const STATS_BUCKET_MS: u64 = 10_000;
/// How far back the recent rate looks.
pub const RECENT_RATE_MS: u64 = 60_000;

/// What the batch spent and imported (the consumer adds each page; one consumer at a time, so
/// a read-modify-write per page loses nothing), for `calls_per_user` and the rate in users/s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStats {
    /// Backend API calls made by the batch.
    pub calls: u64,
    /// Records that ended migrated (created, linked or found).
    pub imported: u64,
    /// Per 10-second bucket: `(start ms, calls, imported)`, oldest first, the last minute or so.
    #[serde(default)]
    pub recent: Vec<(u64, u64, u64)>,
}

impl BatchStats {
    pub fn add(&mut self, now_ms: u64, calls: u64, imported: u64) {
        self.calls += calls;
        self.imported += imported;
        let bucket = now_ms - now_ms % STATS_BUCKET_MS;
        match self.recent.last_mut() {
            Some(last) if last.0 == bucket => {
                last.1 += calls;
                last.2 += imported;
            }
            _ => self.recent.push((bucket, calls, imported)),
        }
        let keep_from = now_ms.saturating_sub(RECENT_RATE_MS + STATS_BUCKET_MS);
        self.recent.retain(|b| b.0 >= keep_from);
    }

    /// Calls per imported user since the first import (`None` before any).
    pub fn calls_per_user(&self) -> Option<f64> {
        (self.imported > 0).then(|| self.calls as f64 / self.imported as f64)
    }

    /// Users imported per second over the last minute (or since the batch started, if later).
    pub fn users_per_sec(&self, now_ms: u64) -> f64 {
        let since = now_ms.saturating_sub(RECENT_RATE_MS);
        let from = since - since % STATS_BUCKET_MS;
        let mut first = None;
        let mut imported = 0;
        for &(bucket, _, n) in self.recent.iter().filter(|b| b.0 >= from) {
            first.get_or_insert(bucket.max(since));
            imported += n;
        }
        match first {
            Some(start) if now_ms > start => imported as f64 * 1000.0 / (now_ms - start) as f64,
            _ => 0.0,
        }
    }
}

/// The physical limit in users per second: every call of the limit a `POST /users`.
pub fn limit_users_per_sec(pacer: &Pacer) -> f64 {
    let l = pacer.config.limit;
    f64::from(l.calls) * 1000.0 / l.window_ms as f64
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
        // 99 calls / 10 s at 1.02 calls per record (a create, a fiftieth of a page's look-ups).
        let idle = records_per_sec(&p, 0);
        assert!((idle - 9.9 / 1.02).abs() < 1e-9, "{idle}");
        assert_eq!(eta_secs(97, idle, Some(0)), Some(10));
        let busy = records_per_sec(&p, 49);
        assert!((busy - 5.0 / 1.02).abs() < 1e-9);
        assert_eq!(eta_secs(49, busy, Some(2_500)), Some(10 + 3));
        assert_eq!(records_per_sec(&p, 500), 0.0);
        assert_eq!(limit_users_per_sec(&p), 10.0);
        assert_eq!(eta_secs(8, 0.0, Some(0)), None);
        assert_eq!(eta_secs(0, idle, Some(0)), None);
        assert_eq!(eta_secs(8, idle, None), None, "paused by the admin");
    }

    #[test]
    fn stats_give_calls_per_user_and_the_recent_rate() {
        let mut s = BatchStats::default();
        assert_eq!(s.calls_per_user(), None);
        assert_eq!(s.users_per_sec(0), 0.0);
        // 100 users per 10 s page, 102 calls each, for two minutes.
        for t in (0..120_000).step_by(10_000) {
            s.add(t, 102, 100);
        }
        assert!((s.calls_per_user().unwrap() - 1.02).abs() < 1e-9);
        let rate = s.users_per_sec(120_000);
        assert!((rate - 10.0).abs() < 0.01, "{rate}");
        assert!(
            s.recent.len() <= 8,
            "old buckets are dropped: {}",
            s.recent.len()
        );
        // Thirty seconds into a batch: the rate is over those thirty seconds.
        let mut young = BatchStats::default();
        for t in [0, 10_000, 20_000] {
            young.add(t, 51, 50);
        }
        assert!((young.users_per_sec(30_000) - 5.0).abs() < 1e-9);
        let json = serde_json::to_string(&young).unwrap();
        assert_eq!(serde_json::from_str::<BatchStats>(&json).unwrap(), young);
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
