//! The batch's Backend API budget, as pure arithmetic on virtual time.
//!
//! Each cron tick asks [`Pacer::plan`] how many import records to enqueue and with which
//! per-message delays. The plan covers the time from where the previous plan ended (or now, if
//! that is past) to `now + horizon`, in one-second slots:
//!
//! * budget: `CLERK_RATE_LIMIT` minus a safety margin, per sliding window;
//! * the trickle has priority: calls it made in the last window are assumed to continue, and
//!   calls already reserved for the future (queue retries) are counted where they will land;
//! * every window of slots that touches a planned slot stays within the budget, counting what
//!   earlier plans already put there, so a doubled tick adds nothing and a late tick never
//!   makes up for lost time with a burst (the carried budget is capped at zero);
//! * a pause (a 429's `Retry-After`, or the admin) empties slots before its end.
//!
//! Ticks are only hints: a record costs up to [`PacerConfig::calls_per_record`] calls, and the
//! queue consumer re-checks the live window with [`Pacer::admit`] before calling Clerk.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Granularity of plans: Queues delays are whole seconds.
pub const SLOT_MS: u64 = 1000;

/// `CLERK_RATE_LIMIT`: `calls` per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub calls: u32,
    pub window_ms: u64,
}

impl Default for RateLimit {
    /// Clerk development instances: 100 requests / 10 s.
    fn default() -> Self {
        Self {
            calls: 100,
            window_ms: 10_000,
        }
    }
}

impl RateLimit {
    /// Parses `"1000/10s"`, `"100/10s"`, `"20/1s"`, `"600/1m"`, `"36000/1h"`, `"100/s"`.
    /// Windows must be whole seconds (plans are made in one-second slots).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("CLERK_RATE_LIMIT {s:?} is not like \"100/10s\"");
        let (calls, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let calls: u32 = calls.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let split = window.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = window.split_at(split);
        let n: u64 = if n.is_empty() {
            1
        } else {
            n.parse().map_err(|_| bad())?
        };
        let unit_ms = match unit {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        if calls == 0 || n == 0 || n > 24 {
            return Err(bad());
        }
        Ok(Self {
            calls,
            window_ms: n * unit_ms,
        })
    }

    fn window_slots(&self) -> u64 {
        self.window_ms.div_ceil(SLOT_MS).max(1)
    }
}

/// `CLERK_RATE_LIMIT` as the configuration parses it; the pacer works in milliseconds.
impl From<crate::config::RateLimit> for RateLimit {
    fn from(limit: crate::config::RateLimit) -> Self {
        Self {
            calls: limit.calls,
            window_ms: u64::from(limit.window_secs) * 1000,
        }
    }
}

/// Calls counted in one-second buckets, past or future (future = reserved, e.g. a retry that
/// will run then). Serialisable so the glue can keep it in KV.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounter {
    buckets: BTreeMap<u64, u32>,
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
    fn slot(&self, slot: u64) -> u32 {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    pub limit: RateLimit,
    /// Share of the limit never planned, in percent.
    pub safety_margin_pct: u32,
    /// Calls one queued record may cost (find by id, find by email, create or patch).
    pub calls_per_record: u32,
    /// How far ahead one tick plans. Twice the cron interval, so one skipped or late tick
    /// leaves no gap (a tick only plans slots not planned before, so overlap costs nothing).
    pub horizon_ms: u64,
}

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            limit: RateLimit::default(),
            safety_margin_pct: 20,
            calls_per_record: 3,
            horizon_ms: 120_000,
        }
    }
}

/// What the pacer remembers between ticks (the glue stores it in KV; one writer: the cron).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacerState {
    /// Slots before this were planned by earlier ticks.
    pub scheduled_until_ms: u64,
    /// No batch calls before this (a 429's `Retry-After`, or the admin's pause).
    pub paused_until_ms: u64,
    /// Calls earlier plans put in each slot.
    pub planned: CallCounter,
}

impl PacerState {
    /// Honours a pause until `until_ms`; pauses only ever extend.
    pub fn pause_until(&mut self, until_ms: u64) {
        self.paused_until_ms = self.paused_until_ms.max(until_ms);
    }
    /// Admin pause (until resumed).
    pub fn pause(&mut self) {
        self.paused_until_ms = u64::MAX;
    }
    pub fn resume(&mut self) {
        self.paused_until_ms = 0;
    }
    pub fn is_paused(&self, now_ms: u64) -> bool {
        now_ms < self.paused_until_ms
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One delay (seconds from now) per record to enqueue, ascending.
    pub delays_secs: Vec<u32>,
    /// Calls budgeted for these records.
    pub calls: u32,
    /// The span this plan covered.
    pub from_ms: u64,
    pub until_ms: u64,
}

impl Plan {
    pub fn records(&self) -> usize {
        self.delays_secs.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    pub config: PacerConfig,
}

impl Pacer {
    pub fn new(config: PacerConfig) -> Self {
        Self { config }
    }

    /// Calls per window the batch may plan against: the limit minus the margin.
    pub fn budget_per_window(&self) -> u32 {
        let c = &self.config;
        (c.limit.calls as u64 * 100u64.saturating_sub(c.safety_margin_pct as u64) / 100) as u32
    }

    /// Records per window at full budget (for ETAs).
    pub fn records_per_window(&self) -> u32 {
        self.budget_per_window() / self.config.calls_per_record.max(1)
    }

    /// Plans up to `backlog` records. `trickle` holds the trickle's recent calls (its pace in
    /// the last window is assumed to continue); `reserved` holds future calls already
    /// committed outside the plan, such as queue retries, at the time they will run.
    pub fn plan(
        &self,
        state: &mut PacerState,
        now_ms: u64,
        trickle: &CallCounter,
        reserved: &CallCounter,
        backlog: usize,
    ) -> Plan {
        let cfg = &self.config;
        let cpr = cfg.calls_per_record.max(1);
        let w = cfg.limit.window_slots();
        let budget = self.budget_per_window();
        let now_slot = now_ms.div_ceil(SLOT_MS);
        let first = now_slot
            .max(state.scheduled_until_ms.div_ceil(SLOT_MS))
            .max(
                state
                    .paused_until_ms
                    .min(u64::MAX - SLOT_MS)
                    .div_ceil(SLOT_MS),
            );
        let end = (now_ms + cfg.horizon_ms) / SLOT_MS;
        let mut plan = Plan {
            delays_secs: Vec::new(),
            calls: 0,
            from_ms: first.min(end) * SLOT_MS,
            until_ms: end * SLOT_MS,
        };
        if first >= end {
            // Nothing in reach (already planned, or paused past the horizon): no slot was
            // considered, so none is marked planned — a resume must find them open.
            plan.until_ms = plan.from_ms;
            return plan;
        }
        if backlog == 0 {
            // Nothing to plan: the span stays open for records that arrive before the next tick.
            plan.until_ms = plan.from_ms;
            return plan;
        }
        // The trickle is assumed to keep its recent pace (priority: reserved before planning).
        let recent_trickle =
            trickle.calls_between(now_ms.saturating_sub(cfg.limit.window_ms), now_ms);
        let forecast = recent_trickle.div_ceil(w as u32);
        let per_slot_cap = self.records_per_window().div_ceil(w as u32).max(1);

        let lo = first.saturating_sub(w - 1);
        let hi = end + w;
        // Known load per slot in [lo, hi).
        let mut load: Vec<u32> = (lo..hi)
            .map(|s| {
                let future = if s >= now_slot { forecast } else { 0 };
                state.planned.slot(s) + trickle.slot(s) + reserved.slot(s) + future
            })
            .collect();
        let idx = |s: u64| (s - lo) as usize;
        let mut remaining = backlog;
        for s in first..end {
            if remaining == 0 {
                // The backlog ran out: slots from here on stay open for the next tick (the
                // `planned` counter still keeps every window within the budget).
                plan.until_ms = s * SLOT_MS;
                break;
            }
            let mut n = per_slot_cap.min(remaining as u32);
            while n > 0 {
                let add = n * cpr;
                // Every window [j - w + 1, j] that contains s.
                let fits = (s..s + w).all(|j| {
                    let from = (j + 1).saturating_sub(w).max(lo);
                    let sum: u32 = (from..=j).map(|k| load[idx(k)]).sum();
                    sum + add <= budget
                });
                if fits {
                    break;
                }
                n -= 1;
            }
            if n == 0 {
                continue;
            }
            load[idx(s)] += n * cpr;
            state.planned.record(s * SLOT_MS, n * cpr);
            plan.calls += n * cpr;
            let delay = ((s * SLOT_MS).saturating_sub(now_ms)).div_ceil(1000) as u32;
            plan.delays_secs
                .extend(std::iter::repeat_n(delay, n as usize));
            remaining -= n as usize;
        }
        state.scheduled_until_ms = state.scheduled_until_ms.max(plan.until_ms);
        state
            .planned
            .prune(now_ms.saturating_sub(cfg.limit.window_ms));
        plan
    }

    /// The consumer's live check before a record's calls: `Ok` if `cost` more calls keep the
    /// last window (all sources, `recent`) within the limit less a quarter of the margin;
    /// otherwise how long to wait. The plan shapes to the full margin; this is the hard guard
    /// for when the trickle surges or records cost more than planned. Buckets are whole
    /// seconds, so the read is rounded outwards (one extra second): conservative.
    pub fn admit(&self, now_ms: u64, recent: &CallCounter, cost: u32) -> Result<(), u64> {
        let c = &self.config;
        let window = c.limit.window_ms;
        let hard =
            (c.limit.calls as u64 * (400 - (c.safety_margin_pct as u64).min(100)) / 400) as u32;
        let used = recent.calls_between(now_ms.saturating_sub(window), now_ms + 1);
        if used + cost <= hard {
            Ok(())
        } else {
            // Wait at least a slot; a quarter window at most.
            Err(SLOT_MS.max(window / 4))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_window(counter_calls: &[(u64, u32)], window_ms: u64) -> u32 {
        let mut c = CallCounter::new();
        for &(t, n) in counter_calls {
            c.record(t, n);
        }
        let last = counter_calls.iter().map(|x| x.0).max().unwrap_or(0);
        (0..=last / SLOT_MS)
            .map(|s| c.calls_between(s * SLOT_MS, s * SLOT_MS + window_ms))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn parses_rate_limits() {
        assert_eq!(
            RateLimit::parse("1000/10s").unwrap(),
            RateLimit {
                calls: 1000,
                window_ms: 10_000
            }
        );
        assert_eq!(RateLimit::parse("600/1m").unwrap().window_ms, 60_000);
        assert_eq!(RateLimit::parse(" 20/1s ").unwrap().calls, 20);
        assert_eq!(RateLimit::parse("100/s").unwrap().window_ms, 1000);
        for bad in ["", "100", "100/10", "0/10s", "x/10s", "100/10ms", "100/0s"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plan_spreads_and_respects_every_window() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        let plan = p.plan(&mut st, 0, &CallCounter::new(), &CallCounter::new(), 10_000);
        // 80 calls / 10 s, 3 per record → 26 records per window → ~312 per two minutes.
        assert!(
            plan.records() >= 290 && plan.records() <= 315,
            "{}",
            plan.records()
        );
        let calls: Vec<(u64, u32)> = plan
            .delays_secs
            .iter()
            .map(|d| (*d as u64 * 1000, 3))
            .collect();
        assert!(max_window(&calls, 10_000) <= 80);
        assert!(plan.delays_secs.windows(2).all(|w| w[0] <= w[1]));
        assert!(*plan.delays_secs.last().unwrap() < 120);
    }

    #[test]
    fn doubled_tick_adds_nothing_and_late_tick_does_not_burst() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        let a = p.plan(
            &mut st,
            0,
            &CallCounter::new(),
            &CallCounter::new(),
            100_000,
        );
        let b = p.plan(
            &mut st,
            0,
            &CallCounter::new(),
            &CallCounter::new(),
            100_000,
        );
        assert_eq!(b.records(), 0, "the span is already planned");
        // Two seconds later: two more seconds of budget (≤ 3 records per slot), no more.
        let b = p.plan(
            &mut st,
            2_000,
            &CallCounter::new(),
            &CallCounter::new(),
            100_000,
        );
        assert!(
            b.records() <= 6 && b.delays_secs.iter().all(|d| *d >= 58),
            "{b:?}"
        );
        // Ten minutes late: plans one horizon, not eleven.
        let c = p.plan(
            &mut st,
            660_000,
            &CallCounter::new(),
            &CallCounter::new(),
            100_000,
        );
        assert!(
            c.records() <= a.records() + 1,
            "{} vs {}",
            c.records(),
            a.records()
        );
        // A tick half-way through the previous span plans only the new half.
        let mut st = PacerState::default();
        let full = p
            .plan(
                &mut st,
                0,
                &CallCounter::new(),
                &CallCounter::new(),
                100_000,
            )
            .records();
        let half = p
            .plan(
                &mut st,
                30_000,
                &CallCounter::new(),
                &CallCounter::new(),
                100_000,
            )
            .records();
        assert!(half < full * 2 / 3, "{half} vs {full}");
    }

    #[test]
    fn overlapping_plans_stay_within_the_window_budget() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        let mut calls = Vec::new();
        for tick in [0u64, 45_000, 61_000, 100_000, 100_500, 190_000] {
            let plan = p.plan(
                &mut st,
                tick,
                &CallCounter::new(),
                &CallCounter::new(),
                100_000,
            );
            calls.extend(
                plan.delays_secs
                    .iter()
                    .map(|d| (tick.div_ceil(1000) * 1000 + *d as u64 * 1000, 3)),
            );
        }
        assert!(
            max_window(&calls, 10_000) <= 80,
            "{}",
            max_window(&calls, 10_000)
        );
    }

    #[test]
    fn trickle_and_reservations_reduce_the_plan() {
        let p = Pacer::new(PacerConfig::default());
        let idle = p.plan(
            &mut PacerState::default(),
            100_000,
            &CallCounter::new(),
            &CallCounter::new(),
            100_000,
        );
        let mut trickle = CallCounter::new();
        for s in 91..100 {
            trickle.record(s * 1000, 4); // ~40 calls in the last window
        }
        let busy = p.plan(
            &mut PacerState::default(),
            100_000,
            &trickle,
            &CallCounter::new(),
            100_000,
        );
        assert!(
            busy.records() * 2 <= idle.records() + 2,
            "{} vs {}",
            busy.records(),
            idle.records()
        );
        let mut reserved = CallCounter::new();
        reserved.record(120_000, 80); // a window's budget, reserved by retries
        let r = p.plan(
            &mut PacerState::default(),
            100_000,
            &CallCounter::new(),
            &reserved,
            100_000,
        );
        assert!(
            r.delays_secs.iter().all(|d| !(11..30).contains(d)),
            "{:?}",
            r.delays_secs
        );
    }

    #[test]
    fn pause_empties_slots_until_its_end() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        st.pause_until(30_000);
        let plan = p.plan(
            &mut st,
            0,
            &CallCounter::new(),
            &CallCounter::new(),
            100_000,
        );
        assert!(plan.delays_secs.iter().all(|d| *d >= 30));
        assert!(plan.records() > 0);
        st.pause();
        let before = st.scheduled_until_ms;
        assert_eq!(
            p.plan(
                &mut st,
                30_000,
                &CallCounter::new(),
                &CallCounter::new(),
                100_000
            )
            .records(),
            0
        );
        assert_eq!(
            st.scheduled_until_ms, before,
            "a paused tick reserves nothing"
        );
        assert_eq!(
            p.plan(
                &mut st,
                60_000,
                &CallCounter::new(),
                &CallCounter::new(),
                100_000
            )
            .records(),
            0
        );
        st.resume();
        assert!(
            p.plan(
                &mut st,
                120_000,
                &CallCounter::new(),
                &CallCounter::new(),
                100_000
            )
            .records()
                > 0
        );
    }

    #[test]
    fn resume_after_an_admin_pause_plans_at_once() {
        let p = Pacer::new(PacerConfig::default());
        let none = CallCounter::new();
        let mut st = PacerState::default();
        st.pause();
        assert_eq!(p.plan(&mut st, 0, &none, &none, 100).records(), 0);
        st.resume();
        let plan = p.plan(&mut st, 1_000, &none, &none, 100);
        assert_eq!(plan.records(), 100);
        assert!(plan.delays_secs[0] <= 1, "{:?}", &plan.delays_secs[..3]);
    }

    #[test]
    fn admit_checks_the_live_window() {
        let p = Pacer::new(PacerConfig::default());
        let mut c = CallCounter::new();
        c.record(5_000, 93);
        assert!(p.admit(9_000, &c, 3).is_err(), "hard guard is 95 of 100");
        assert!(p.admit(9_000, &c, 2).is_ok());
        assert!(p.admit(16_000, &c, 3).is_ok(), "the calls left the window");
        assert!(
            p.admit(15_500, &c, 3).is_err(),
            "second buckets are read conservatively"
        );
    }

    #[test]
    fn a_short_backlog_leaves_the_rest_of_the_span_open() {
        let p = Pacer::new(PacerConfig::default());
        let none = CallCounter::new();
        let mut st = PacerState::default();
        let idle = p.plan(&mut st, 0, &none, &none, 0);
        assert_eq!(idle.records(), 0);
        assert_eq!(st.scheduled_until_ms, 0, "an idle tick reserves nothing");
        let small = p.plan(&mut st, 0, &none, &none, 10);
        assert_eq!(small.records(), 10);
        let last = *small.delays_secs.last().unwrap() as u64;
        assert!(st.scheduled_until_ms <= (last + 1) * 1000, "{st:?}");
        // Records uploaded a few seconds later are planned at once, after the first ones,
        // and every window still respects the budget.
        let more = p.plan(&mut st, 5_000, &none, &none, 1_000);
        assert!(more.records() > 0 && more.delays_secs[0] < 60, "{more:?}");
        let mut calls: Vec<(u64, u32)> = small
            .delays_secs
            .iter()
            .map(|d| (*d as u64 * 1000, 3))
            .collect();
        calls.extend(
            more.delays_secs
                .iter()
                .map(|d| (5_000 + *d as u64 * 1000, 3)),
        );
        assert!(max_window(&calls, 10_000) <= 80);
    }

    #[test]
    fn converts_the_configured_rate_limit() {
        let configured = crate::config::RateLimit::parse("600/1m").unwrap();
        assert_eq!(
            RateLimit::from(configured),
            RateLimit {
                calls: 600,
                window_ms: 60_000
            }
        );
    }

    #[test]
    fn small_budgets_still_plan_whole_records() {
        let p = Pacer::new(PacerConfig {
            limit: RateLimit::parse("20/1s").unwrap(),
            ..PacerConfig::default()
        });
        let plan = p.plan(
            &mut PacerState::default(),
            0,
            &CallCounter::new(),
            &CallCounter::new(),
            1_000_000,
        );
        // 16 calls per second → 5 records per second, for the two-minute horizon.
        assert_eq!(plan.records(), 5 * 120);
    }
}
