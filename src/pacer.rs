//! The batch's Backend API budget, as pure arithmetic on virtual time.
//!
//! Each cron tick asks [`Pacer::plan`] which pages of import records (up to 100 per Queue
//! message) to enqueue and with which delays. The plan is made of Backend API calls, not
//! records: a page costs its look-ups (one `GET /v1/users` by `external_id`, one by email)
//! plus one `POST /users` per record. It covers the time from where the previous plan ended
//! (or now, if that is past) to `now + horizon`, in one-second slots:
//!
//! * budget: `CLERK_RATE_LIMIT` minus a safety margin, per sliding window;
//! * the trickle has priority: calls it made in the last window are assumed to continue, and
//!   calls already reserved for the future (queue retries) are counted where they will land;
//! * every window of slots that touches a planned slot stays within the budget, counting what
//!   earlier plans already put there, so a doubled tick adds nothing and a late tick never
//!   makes up for lost time with a burst (the carried budget is capped at zero);
//! * a pause (a 429's `Retry-After`, or the admin) empties slots before its end.
//!
//! Ticks are only hints: a record may cost more than planned (a link completes a user, a fault
//! is retried), so the queue consumer asks [`Pacer::grant`] before each group of calls and
//! waits for the window when it is full; each consumer spends at its share of the budget
//! ([`Pacer::share_per_sec`]), so one message never takes more than its share of a window.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Granularity of plans: Queues delays are whole seconds.
pub const SLOT_MS: u64 = 1000;
/// How long after its grant a call may still arrive at Clerk (and start counting there).
pub const ARRIVAL_GUARD_MS: u64 = 150;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    pub limit: RateLimit,
    /// Share of the limit the batch never uses, in percent: room for interactive calls that
    /// arrive before the trickle's recent pace shows them (other isolates publish theirs to KV
    /// about once a second).
    pub safety_margin_pct: u32,
    /// Calls one page costs before any record: the look-ups by `external_id` and by email.
    pub calls_per_page: u32,
    /// Calls one record costs on top of its page's look-ups: its `POST /users` (none in
    /// `observe`, which only looks up).
    pub calls_per_record: u32,
    /// Records per page (one Queue message): `GET /v1/users` takes at most 100 values per key.
    pub page_records: u32,
    /// How far ahead one tick plans. Twice the cron interval, so one skipped or late tick
    /// leaves no gap (a tick only plans slots not planned before, so overlap costs nothing).
    pub horizon_ms: u64,
}

/// Records per page: `GET /v1/users` accepts up to 100 values per filter.
pub const MAX_PAGE_RECORDS: u32 = 100;

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            limit: RateLimit::default(),
            safety_margin_pct: 1,
            calls_per_page: 2,
            calls_per_record: 1,
            page_records: MAX_PAGE_RECORDS,
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

/// How much earlier than its slot a page is handed to the Queue: consumers then always have the
/// next page at hand (a page's spending is paced by the consumer, not by its delivery), while
/// the plan still meters how many pages each tick sends.
pub const PAGE_LEAD_SECS: u32 = 120;

/// One planned Queue message: a page of records whose calls are planned from `start_secs`
/// from now, sent with `delay_secs` (that, less [`PAGE_LEAD_SECS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagePlan {
    pub start_secs: u32,
    pub delay_secs: u32,
    pub records: usize,
    /// Calls budgeted for the page (look-ups and one create per record).
    pub calls: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The pages to send, by ascending delay.
    pub pages: Vec<PagePlan>,
    /// Calls budgeted for these pages.
    pub calls: u32,
    /// The span this plan covered.
    pub from_ms: u64,
    pub until_ms: u64,
}

impl Plan {
    /// Records in all pages.
    pub fn records(&self) -> usize {
        self.pages.iter().map(|p| p.records).sum()
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

    /// Calls per window the batch may spend: the limit minus the margin.
    pub fn budget_per_window(&self) -> u32 {
        let c = &self.config;
        (c.limit.calls as u64 * 100u64.saturating_sub(c.safety_margin_pct as u64) / 100) as u32
    }

    /// Calls per one-second slot that spread the window's budget evenly.
    pub fn calls_per_slot(&self) -> u32 {
        self.budget_per_window()
            .div_ceil(self.config.limit.window_slots() as u32)
            .max(1)
    }

    /// Calls a page of `records` records is planned to cost.
    pub fn page_cost(&self, records: usize) -> u32 {
        self.config.calls_per_page + self.config.calls_per_record * records as u32
    }

    /// Records per second at full budget (for ETAs): pages' look-ups included.
    pub fn records_per_sec(&self, budget_calls_per_window: u32) -> f64 {
        let c = &self.config;
        let page = c.page_records.max(1) as f64;
        let per_record = c.calls_per_record as f64 + c.calls_per_page as f64 / page;
        let window_secs = c.limit.window_ms as f64 / 1000.0;
        f64::from(budget_calls_per_window) / per_record / window_secs
    }

    /// Plans pages for up to `backlog` records. The plan is made of calls, not records: each
    /// one-second slot gets what keeps every window touching it within the budget (counting
    /// earlier plans, the trickle's recent pace assumed to continue, and `reserved` future
    /// calls), at most [`Self::calls_per_slot`]; pages take those calls in order, look-ups
    /// first, then one create per record. A page starts at its first slot and, spending at
    /// the per-slot pace, ends where the next one starts.
    pub fn plan(
        &self,
        state: &mut PacerState,
        now_ms: u64,
        trickle: &CallCounter,
        reserved: &CallCounter,
        backlog: usize,
    ) -> Plan {
        let cfg = &self.config;
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
            pages: Vec::new(),
            calls: 0,
            from_ms: first.min(end) * SLOT_MS,
            until_ms: end * SLOT_MS,
        };
        if first >= end || backlog == 0 {
            // Nothing in reach (already planned, paused past the horizon) or nothing to plan:
            // no slot is marked planned, so a resume or a new upload finds them open.
            plan.until_ms = plan.from_ms;
            return plan;
        }
        // The trickle is assumed to keep its recent pace (priority: reserved before planning).
        let recent_trickle =
            trickle.calls_between(now_ms.saturating_sub(cfg.limit.window_ms), now_ms);
        let forecast = recent_trickle.div_ceil(w as u32);
        let per_slot = self.calls_per_slot();

        let lo = first.saturating_sub(w - 1);
        let hi = end + w;
        let mut load: Vec<u32> = (lo..hi)
            .map(|s| {
                let future = if s >= now_slot { forecast } else { 0 };
                state.planned.slot(s) + trickle.slot(s) + reserved.slot(s) + future
            })
            .collect();
        let idx = |s: u64| (s - lo) as usize;
        let page_max = cfg.page_records.clamp(1, MAX_PAGE_RECORDS) as usize;
        let cpr = cfg.calls_per_record;
        let mut remaining = backlog;
        // The page being filled: (first slot, records, calls, look-up calls still owed).
        let mut open: Option<(u64, usize, u32, u32)> = None;
        let close = |plan: &mut Plan, page: (u64, usize, u32, u32)| {
            if page.1 > 0 {
                let start = ((page.0 * SLOT_MS).saturating_sub(now_ms)).div_ceil(1000) as u32;
                plan.pages.push(PagePlan {
                    start_secs: start,
                    delay_secs: start.saturating_sub(PAGE_LEAD_SECS),
                    records: page.1,
                    calls: page.2,
                });
            }
        };
        for s in first..end {
            if remaining == 0 && open.is_none() {
                // The backlog ran out: slots from here on stay open for the next tick.
                plan.until_ms = s * SLOT_MS;
                break;
            }
            // The room every window [j - w + 1, j] containing s leaves.
            let room = (s..s + w)
                .map(|j| {
                    let from = (j + 1).saturating_sub(w).max(lo);
                    let sum: u32 = (from..=j).map(|k| load[idx(k)]).sum();
                    budget.saturating_sub(sum)
                })
                .min()
                .unwrap_or(0)
                .min(per_slot);
            let mut avail = room;
            while avail > 0 {
                let page = match open.as_mut() {
                    Some(p) => p,
                    None if remaining > 0 => open.insert((s, 0, 0, cfg.calls_per_page)),
                    None => break,
                };
                let lookups = page.3.min(avail);
                page.3 -= lookups;
                page.2 += lookups;
                avail -= lookups;
                if page.3 > 0 {
                    break;
                }
                // `observe` pages cost only their look-ups: records fit without limit.
                let fit = avail.checked_div(cpr).map_or(usize::MAX, |n| n as usize);
                let take = fit.min(remaining).min(page_max - page.1);
                page.1 += take;
                page.2 += take as u32 * cpr;
                avail -= take as u32 * cpr;
                remaining -= take;
                if page.1 == page_max || remaining == 0 {
                    if let Some(done) = open.take() {
                        close(&mut plan, done);
                    }
                } else if take == 0 {
                    break;
                }
            }
            let used = room - avail;
            if used > 0 {
                load[idx(s)] += used;
                state.planned.record(s * SLOT_MS, used);
                plan.calls += used;
            }
        }
        if let Some(page) = open.take() {
            // The horizon ends inside a page: it goes with what it has (its look-ups are
            // budgeted); a page without records had only look-ups planned, which cost nothing
            // unsent.
            close(&mut plan, page);
        }
        state.scheduled_until_ms = state.scheduled_until_ms.max(plan.until_ms);
        state
            .planned
            .prune(now_ms.saturating_sub(cfg.limit.window_ms));
        plan
    }

    /// Calls per second one of `consumers` concurrent queue consumers may spend while the
    /// trickle and interactive calls made `others_in_window` calls in the last window: what the
    /// budget leaves after them — and after a headroom for their fluctuation (they have
    /// priority: the batch yields before they meet a full window) — spread evenly over the
    /// window and shared among the consumers. Pages are spent at this pace, so one message
    /// never takes more than its share of the window.
    pub fn share_per_sec(&self, consumers: u32, others_in_window: u32) -> f64 {
        let left = self
            .budget_per_window()
            .saturating_sub(others_in_window + others_headroom(others_in_window));
        // Calls count at Clerk from their arrival: spread over the window plus that delay.
        let window_secs = (self.config.limit.window_ms + ARRIVAL_GUARD_MS) as f64 / 1000.0;
        f64::from(left) / window_secs / f64::from(consumers.max(1))
    }

    /// The consumer's live check before it spends: how many of `want` calls it may make now
    /// (≥ 1), or how long to wait. It keeps the last window of every call it knows — the
    /// batch's own (`own`, granted ones included, at their exact times) and the trickle's and
    /// interactive ones (`others`, in second buckets read outwards: conservative) — within the
    /// budget less the trickle's headroom, and spends at its pace ([`Self::share_per_sec`]).
    pub fn grant(
        &self,
        now_ms: u64,
        own: &CallLog,
        others: &CallCounter,
        pace: &mut Pace,
        consumers: u32,
        want: u32,
    ) -> Result<u32, u64> {
        let window = self.config.limit.window_ms;
        let from = now_ms.saturating_sub(window);
        let others_used = others.calls_between(from, now_ms + 1);
        // Clerk counts a call when it arrives, a little after it was granted: the own window is
        // read that much longer.
        let guarded = from.saturating_sub(ARRIVAL_GUARD_MS);
        let own_used = own.calls_in(guarded, now_ms);
        let others_room = self
            .budget_per_window()
            .saturating_sub(others_used + others_headroom(others_used));
        let room = others_room.saturating_sub(own_used);
        if room == 0 {
            // Wait until the oldest own call leaves the window (exact), or, when the trickle
            // alone fills it, for the next second bucket.
            let next_second = SLOT_MS - now_ms % SLOT_MS;
            return Err(match own.oldest_in(guarded, now_ms) {
                Some(t) if others_room > 0 => (t + window + ARRIVAL_GUARD_MS + 1)
                    .saturating_sub(now_ms)
                    .clamp(1, SLOT_MS),
                _ => next_second,
            });
        }
        pace.take(
            now_ms,
            self.share_per_sec(consumers, others_used),
            want.min(room),
        )
    }
}

/// Room kept free for the trickle and interactive calls beyond what they used in the last
/// window: about two standard deviations of a random arrival count (√n), so a busy trickle
/// rarely meets a window the batch filled.
fn others_headroom(others_in_window: u32) -> u32 {
    if others_in_window == 0 {
        0
    } else {
        (2.0 * f64::from(others_in_window).sqrt()).ceil() as u32
    }
}

/// A token bucket at a consumer's share of the budget (calls per second, fractions kept), with
/// at most one second's worth banked: a page spends evenly, in groups that keep its calls in
/// flight while Clerk answers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pace {
    tokens: f64,
    at_ms: Option<u64>,
}

impl Pace {
    /// Takes up to `want` calls at `per_sec`; `Err(ms)` until the next call is due.
    pub fn take(&mut self, now_ms: u64, per_sec: f64, want: u32) -> Result<u32, u64> {
        if per_sec <= 0.0 {
            return Err(SLOT_MS);
        }
        let cap = per_sec.max(1.0);
        self.tokens = match self.at_ms {
            // A fresh pace starts with one call, so a page starts at once.
            None => 1.0,
            Some(at) => {
                (self.tokens + now_ms.saturating_sub(at) as f64 * per_sec / 1000.0).min(cap)
            }
        };
        self.at_ms = Some(now_ms);
        let n = (self.tokens.floor() as u32).min(want);
        if n == 0 {
            let missing = 1.0 - self.tokens;
            return Err(((missing * 1000.0 / per_sec).ceil() as u64).max(1));
        }
        self.tokens -= f64::from(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> CallCounter {
        CallCounter::new()
    }

    /// The most calls any window of `window_ms` holds in `c`.
    fn max_window(c: &CallCounter, window_ms: u64) -> u32 {
        let last = c.buckets.keys().last().copied().unwrap_or(0);
        (0..=last)
            .map(|s| c.calls_between(s * SLOT_MS, s * SLOT_MS + window_ms))
            .max()
            .unwrap_or(0)
    }

    /// Where the calls of `plan` (made at `now_ms`) land when one consumer spends the pages
    /// one after the other, each from its delay, at its pace.
    fn spend(p: &Pacer, plan: &Plan, now_ms: u64, into: &mut CallCounter) {
        let base = now_ms.div_ceil(1000) * 1000;
        let mut t = 0;
        let mut pace = Pace::default();
        for page in &plan.pages {
            t = t.max(base + page.start_secs as u64 * 1000);
            let mut left = page.calls;
            while left > 0 {
                match pace.take(t, p.share_per_sec(1, 0), left) {
                    Ok(n) => {
                        into.record(t, n);
                        left -= n;
                    }
                    Err(wait) => t += wait,
                }
            }
        }
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
    fn plan_is_pages_of_calls_that_fill_the_budget_and_no_window_more() {
        for (limit, per_window) in [("100/10s", 99u32), ("1000/10s", 990)] {
            let p = Pacer::new(PacerConfig {
                limit: RateLimit::parse(limit).unwrap(),
                ..PacerConfig::default()
            });
            assert_eq!(p.budget_per_window(), per_window);
            let mut st = PacerState::default();
            let plan = p.plan(&mut st, 0, &none(), &none(), 1_000_000);
            // Two minutes at the budget, less the last partial page.
            let expected = per_window as usize * 12;
            assert!(
                plan.calls as usize <= expected && plan.calls as usize >= expected * 95 / 100,
                "{limit}: {} calls",
                plan.calls
            );
            for page in &plan.pages {
                assert!(page.records >= 1 && page.records <= 100, "{page:?}");
                assert_eq!(page.calls, p.page_cost(page.records));
            }
            assert!(plan.pages[..plan.pages.len() - 1]
                .iter()
                .all(|pg| pg.records == 100));
            assert!(plan
                .pages
                .windows(2)
                .all(|w| w[0].start_secs <= w[1].start_secs));
            assert!(max_window(&st.planned, 10_000) <= per_window);
            let mut spent = CallCounter::new();
            spend(&p, &plan, 0, &mut spent);
            assert!(
                max_window(&spent, 10_000) <= per_window,
                "{limit}: spending as planned stays within the budget"
            );
            // About one call per record: 100 creates and 2 look-ups per page.
            let per_record = plan.calls as f64 / plan.records() as f64;
            assert!((1.0..=1.03).contains(&per_record), "{per_record}");
        }
    }

    #[test]
    fn doubled_tick_adds_nothing_and_late_tick_does_not_burst() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        let a = p.plan(&mut st, 0, &none(), &none(), 100_000);
        let b = p.plan(&mut st, 0, &none(), &none(), 100_000);
        assert_eq!(b.records(), 0, "the span is already planned");
        // Two seconds later: two more slots of budget, no more.
        let b = p.plan(&mut st, 2_000, &none(), &none(), 100_000);
        assert!(
            b.calls <= 2 * p.calls_per_slot() && b.pages.iter().all(|pg| pg.start_secs >= 58),
            "{b:?}"
        );
        // Ten minutes late: plans one horizon, not eleven.
        let c = p.plan(&mut st, 660_000, &none(), &none(), 100_000);
        assert!(
            c.calls <= a.calls + p.calls_per_slot(),
            "{} vs {}",
            c.calls,
            a.calls
        );
        // A tick half-way through the previous span plans only the new half.
        let mut st = PacerState::default();
        let full = p.plan(&mut st, 0, &none(), &none(), 100_000).calls;
        let half = p.plan(&mut st, 30_000, &none(), &none(), 100_000).calls;
        assert!(half < full * 2 / 3, "{half} vs {full}");
    }

    #[test]
    fn overlapping_plans_stay_within_the_window_budget() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        let mut all = CallCounter::new();
        for tick in [0u64, 45_000, 61_000, 100_000, 100_500, 190_000] {
            let before = st.planned.clone();
            p.plan(&mut st, tick, &none(), &none(), 100_000);
            for (slot, calls) in &st.planned.buckets {
                let added = calls - before.slot(*slot);
                if added > 0 {
                    all.record(slot * SLOT_MS, added);
                }
            }
        }
        assert!(max_window(&all, 10_000) <= p.budget_per_window());
        assert!(all.calls_between(0, 300_000) > 2_000);
    }

    #[test]
    fn trickle_and_reservations_reduce_the_plan() {
        let p = Pacer::new(PacerConfig::default());
        let idle = p.plan(
            &mut PacerState::default(),
            100_000,
            &none(),
            &none(),
            100_000,
        );
        let mut trickle = CallCounter::new();
        for s in 91..100 {
            trickle.record(s * 1000, 5); // ~45 calls in the last window
        }
        let busy = p.plan(
            &mut PacerState::default(),
            100_000,
            &trickle,
            &none(),
            100_000,
        );
        assert!(
            busy.calls * 2 <= idle.calls + 100,
            "{} vs {}",
            busy.calls,
            idle.calls
        );
        let mut reserved = CallCounter::new();
        reserved.record(120_000, 99); // a window's budget, reserved by retries
        let mut st = PacerState::default();
        p.plan(&mut st, 100_000, &none(), &reserved, 100_000);
        assert_eq!(st.planned.calls_between(111_000, 130_000), 0, "{st:?}");
    }

    #[test]
    fn pause_empties_slots_until_its_end() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        st.pause_until(30_000);
        let plan = p.plan(&mut st, 0, &none(), &none(), 100_000);
        assert!(plan.pages.iter().all(|pg| pg.start_secs >= 30));
        assert!(plan.records() > 0);
        st.pause();
        let before = st.scheduled_until_ms;
        assert_eq!(
            p.plan(&mut st, 30_000, &none(), &none(), 100_000).records(),
            0
        );
        assert_eq!(
            st.scheduled_until_ms, before,
            "a paused tick reserves nothing"
        );
        st.resume();
        assert!(
            p.plan(&mut st, 120_000, &none(), &none(), 100_000)
                .records()
                > 0
        );
    }

    #[test]
    fn resume_after_an_admin_pause_plans_at_once() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        st.pause();
        assert_eq!(p.plan(&mut st, 0, &none(), &none(), 100).records(), 0);
        st.resume();
        let plan = p.plan(&mut st, 1_000, &none(), &none(), 100);
        assert_eq!(plan.records(), 100);
        assert_eq!(plan.pages.len(), 1);
        assert!(plan.pages[0].start_secs <= 1, "{plan:?}");
    }

    #[test]
    fn grant_checks_the_live_window_and_paces_each_consumer() {
        let p = Pacer::new(PacerConfig::default()); // 99 per 10 s (+ the arrival guard)
        let none = CallCounter::new();
        let empty = CallLog::new();
        let per_sec = 99.0 / 10.15;
        assert!((p.share_per_sec(4, 0) - per_sec / 4.0).abs() < 1e-9);
        let mut own = CallLog::new();
        own.record(5_300, 93);
        let mut pace = Pace::default();
        assert_eq!(
            p.grant(9_000, &own, &none, &mut pace, 1, 10),
            Ok(1),
            "a fresh pace starts with one"
        );
        own.record(9_000, 1);
        assert_eq!(
            p.grant(10_000, &own, &none, &mut pace, 1, 10),
            Ok(5),
            "99 - 94 left in the window"
        );
        own.record(10_000, 5);
        assert_eq!(
            p.grant(10_500, &own, &none, &mut pace, 1, 10),
            Err(1_000),
            "the window is full: look again within a second"
        );
        assert_eq!(
            p.grant(15_300, &own, &none, &mut pace, 1, 10),
            Err(151),
            "the calls of 5.3 s count until 15.3 s, plus the arrival guard"
        );
        assert!(
            p.grant(15_451, &own, &none, &mut pace, 1, 10).is_ok(),
            "exact times, read exactly"
        );
        // The trickle's calls count in second buckets, read outwards.
        let mut trickle = CallCounter::new();
        trickle.record(5_300, 90);
        let mut pace = Pace::default();
        assert_eq!(
            p.grant(15_500, &empty, &trickle, &mut pace, 1, 10),
            Err(500)
        );
        assert!(p.grant(16_000, &empty, &trickle, &mut pace, 1, 10).is_ok());
        // The window empty: a second's share at most, then the pace.
        let mut pace = Pace::default();
        assert_eq!(p.grant(0, &empty, &none, &mut pace, 1, 100), Ok(1));
        assert_eq!(
            p.grant(2_000, &empty, &none, &mut pace, 1, 100),
            Ok(9),
            "one second banked"
        );
        assert!(p.grant(2_000, &empty, &none, &mut pace, 1, 100).is_err());
        // Four consumers: each at a quarter, fractions kept over time.
        let mut pace = Pace::default();
        let mut granted = 0;
        for t in (0..=20_000).step_by(100) {
            if let Ok(n) = p.grant(t, &empty, &none, &mut pace, 4, 100) {
                granted += n;
            }
        }
        assert!((49..=50).contains(&granted), "{granted} in 20 s at 2.44/s");
    }

    #[test]
    fn a_busy_trickle_slows_the_batch_and_keeps_headroom() {
        let p = Pacer::new(PacerConfig::default());
        let mut trickle = CallCounter::new();
        for s in 0..10 {
            trickle.record(s * 1000, 3); // 30 calls in the window
        }
        // 99 - 30 - 2·√30 (11) = 58 per window and guard: 5.7 per second for one consumer.
        assert!((p.share_per_sec(1, 30) - 58.0 / 10.15).abs() < 1e-9);
        let mut own = CallLog::new();
        own.record(9_000, 58);
        let mut pace = Pace::default();
        assert_eq!(
            p.grant(9_500, &own, &trickle, &mut pace, 1, 5),
            Err(1_000),
            "the trickle's headroom is not for the batch"
        );
        assert_eq!(p.share_per_sec(1, 200), 0.0);
    }

    #[test]
    fn a_short_backlog_leaves_the_rest_of_the_span_open() {
        let p = Pacer::new(PacerConfig::default());
        let mut st = PacerState::default();
        let idle = p.plan(&mut st, 0, &none(), &none(), 0);
        assert_eq!(idle.records(), 0);
        assert_eq!(st.scheduled_until_ms, 0, "an idle tick reserves nothing");
        let small = p.plan(&mut st, 0, &none(), &none(), 10);
        assert_eq!(small.records(), 10);
        assert_eq!(small.calls, 12);
        assert!(st.scheduled_until_ms <= 3_000, "{st:?}");
        // Records uploaded a few seconds later are planned at once, and every window still
        // respects the budget.
        let more = p.plan(&mut st, 5_000, &none(), &none(), 1_000);
        assert!(
            more.records() > 0 && more.pages[0].start_secs < 5,
            "{more:?}"
        );
        assert!(max_window(&st.planned, 10_000) <= p.budget_per_window());
    }

    #[test]
    fn observe_pages_cost_only_their_lookups() {
        let p = Pacer::new(PacerConfig {
            calls_per_record: 0,
            ..PacerConfig::default()
        });
        let plan = p.plan(&mut PacerState::default(), 0, &none(), &none(), 1_000);
        assert_eq!(plan.records(), 1_000);
        assert_eq!(plan.pages.len(), 10);
        assert_eq!(plan.calls, 20);
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
    fn small_budgets_still_plan_whole_pages() {
        let p = Pacer::new(PacerConfig {
            limit: RateLimit::parse("20/1s").unwrap(),
            ..PacerConfig::default()
        });
        let plan = p.plan(&mut PacerState::default(), 0, &none(), &none(), 1_000_000);
        // 19 calls per second for two minutes: 2280 calls, ~22 pages of 102.
        assert!(
            plan.calls <= 19 * 120 && plan.calls > 19 * 110,
            "{}",
            plan.calls
        );
        assert!(plan.pages.iter().all(|pg| pg.records <= 100));
    }
}
