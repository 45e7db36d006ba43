//! The cron tick's plan ([`Pacer::plan`]): which pages of records to send, with which delays,
//! so that every window of one-second slots stays within the budget.

use super::{CallCounter, Pacer, MAX_PAGE_RECORDS, SLOT_MS};
use serde::{Deserialize, Serialize};

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

impl Pacer {
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
}

#[cfg(test)]
mod tests {
    use super::super::{Pace, Seat};
    use super::*;
    use crate::pacer::{PacerConfig, RateLimit};

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
                match pace.take(t, p.share_per_sec(Seat::ALONE, 0), left) {
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
