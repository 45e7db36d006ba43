//! Counting Backend API calls: in one-second buckets ([`CallCounter`], the trickle's and the
//! plans', kept in KV) and at their exact times ([`CallLog`], a consumer's own).

use super::SLOT_MS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Calls counted in one-second buckets, past or future (future = reserved, e.g. a retry that
/// will run then). Serialisable so the glue can keep it in KV.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounter {
    pub(super) buckets: BTreeMap<u64, u32>,
}

impl CallCounter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn record(&mut self, at_ms: u64, calls: u32) {
        *self.buckets.entry(at_ms / SLOT_MS).or_default() += calls;
    }
    /// Calls in buckets whose second lies in `[from_ms, to_ms)`.
    pub fn calls_between(&self, from_ms: u64, to_ms: u64) -> u32 {
        if to_ms <= from_ms {
            return 0;
        }
        self.buckets
            .range(from_ms / SLOT_MS..to_ms.div_ceil(SLOT_MS))
            .map(|(_, c)| *c)
            .sum()
    }
    pub(super) fn slot(&self, slot: u64) -> u32 {
        self.buckets.get(&slot).copied().unwrap_or(0)
    }
    /// Drops buckets before `before_ms`.
    pub fn prune(&mut self, before_ms: u64) {
        self.buckets = self.buckets.split_off(&(before_ms / SLOT_MS));
    }
    /// Adds another counter (e.g. per-isolate trickle counters).
    pub fn merge(&mut self, other: &CallCounter) {
        for (k, v) in &other.buckets {
            *self.buckets.entry(*k).or_default() += v;
        }
    }
}

/// Calls at their exact times (ms): a consumer's own calls, for its live window. Whole-second
/// buckets would have to be read rounded outwards (a tenth of a 10-second window wasted);
/// exact times are read exactly, as Clerk's sliding window counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallLog {
    calls: Vec<(u64, u32)>,
}

impl CallLog {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn record(&mut self, at_ms: u64, calls: u32) {
        if calls > 0 {
            self.calls.push((at_ms, calls));
        }
    }
    /// Calls made in `(from_ms, to_ms]`.
    pub fn calls_in(&self, from_ms: u64, to_ms: u64) -> u32 {
        self.calls
            .iter()
            .filter(|(t, _)| *t > from_ms && *t <= to_ms)
            .map(|(_, n)| n)
            .sum()
    }
    /// When the oldest call in `(from_ms, to_ms]` was made.
    pub fn oldest_in(&self, from_ms: u64, to_ms: u64) -> Option<u64> {
        self.calls
            .iter()
            .map(|(t, _)| *t)
            .find(|t| *t > from_ms && *t <= to_ms)
    }
    /// Drops calls made before `before_ms` (the log is in time order).
    pub fn prune(&mut self, before_ms: u64) {
        let old = self.calls.partition_point(|(t, _)| *t < before_ms);
        self.calls.drain(..old);
    }
}
