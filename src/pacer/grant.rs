//! The queue consumer's live check ([`Pacer::grant`]): before each call, the last window of
//! this consumer's own calls against its seat's part of the budget ([`Seating`],
//! [`Pacer::seating_calls`]), and its pace ([`Pace`]); and a page's
//! waiting for a grant around it ([`Grants`]) over a [`LiveWindow`] — KV and the Workers clock
//! in the worker, a virtual clock in the simulation. A page asks for a call's grant just
//! before it sends it, from a free connection: the call counts from its grant and reaches
//! Clerk within [`ARRIVAL_GUARD_MS`] of it.

use super::{CallCounter, CallLog, Pacer, Seating, ARRIVAL_GUARD_MS, SLOT_MS};

/// The longest a page waits for the budget before it stops and hands its records back (a
/// trickle surge fills the window).
pub const MAX_GRANT_WAIT_MS: u64 = 30_000;

impl Pacer {
    /// The consumer's live check before it spends: how many of `want` calls it may make now
    /// (≥ 1), or how long to wait. It keeps the last window of its own calls (`own`, granted
    /// ones included, at their exact times) within its seating's part of the budget left by the
    /// trickle's and interactive calls (`others`, in second buckets read outwards:
    /// conservative) and their headroom ([`Self::seating_calls`]), and spends at its pace: that
    /// part spread over the window ([`Self::share_per_sec`]).
    pub fn grant(
        &self,
        now_ms: u64,
        own: &CallLog,
        others: &CallCounter,
        pace: &mut Pace,
        seating: impl Into<Seating>,
        want: u32,
    ) -> Result<u32, u64> {
        let seating = seating.into();
        let window = self.config.limit.window_ms;
        let from = now_ms.saturating_sub(window);
        let others_used = others.calls_between(from, now_ms + 1);
        // Clerk counts a call when it arrives, a little after it was granted: the own window is
        // read that much longer.
        let guarded = from.saturating_sub(ARRIVAL_GUARD_MS);
        let own_used = own.calls_in(guarded, now_ms);
        let seat_room = self.seating_calls(&seating, now_ms, others_used);
        let room = seat_room.saturating_sub(own_used);
        if room == 0 {
            // Wait until the oldest own call leaves the window (exact), or, when the trickle
            // alone fills it, for the next second bucket.
            let next_second = SLOT_MS - now_ms % SLOT_MS;
            return Err(match own.oldest_in(guarded, now_ms) {
                Some(t) if seat_room > 0 => (t + window + ARRIVAL_GUARD_MS + 1)
                    .saturating_sub(now_ms)
                    .clamp(1, SLOT_MS),
                _ => next_second,
            });
        }
        pace.take(now_ms, self.per_sec(seat_room), want.min(room))
    }
}

/// A token bucket at a consumer's share of the budget (calls per second, fractions kept), with
/// at most one second's worth banked: a page spends evenly, a call at a time from each of its
/// connections while Clerk answers the others.
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

/// What a page's grants read and wait on: the clock, the batch's pause, the trickle's and
/// interactive calls, the consumers sharing the budget, the batch's own calls, and this
/// consumer's pace.
#[allow(async_fn_in_trait)]
pub trait LiveWindow {
    fn now_ms(&self) -> u64;
    /// No batch call before this (a 429's `Retry-After`).
    fn paused_until_ms(&self) -> u64;
    /// The trickle's and interactive calls, in second buckets.
    async fn others(&self, now_ms: u64) -> CallCounter;
    /// This consumer's seat among the queue consumers spending the budget now.
    async fn seat(&self, now_ms: u64) -> Seating;
    /// This consumer's own calls (those of every page its isolate runs; other consumers' are
    /// not seen), each counted from its grant.
    fn with_own<R>(&self, f: impl FnOnce(&mut CallLog) -> R) -> R;
    /// This consumer's pace, kept across its pages: a page that starts while the previous one
    /// left calls unspent goes on at the consumer's share, not from a fresh (empty) pace.
    fn with_pace<R>(&self, f: impl FnOnce(&mut Pace) -> R) -> R;
    async fn sleep(&self, ms: u64);
}

/// One page's grants: each call counts in the window from its grant, which its sender asks
/// for just before it sends it.
pub struct Grants<W> {
    pacer: Pacer,
    window: W,
}

impl<W: LiveWindow> Grants<W> {
    pub fn new(pacer: Pacer, window: W) -> Self {
        Self { pacer, window }
    }

    pub fn window(&self) -> &W {
        &self.window
    }

    /// Waits until some of `want` calls may be made ([`Pacer::grant`]) and answers how many
    /// (≥ 1), counted in the own window from now; 0 when the batch is paused or the budget
    /// stayed full for [`MAX_GRANT_WAIT_MS`].
    pub async fn acquire(&self, want: u32) -> u32 {
        let mut waited = 0;
        loop {
            let now = self.window.now_ms();
            if now < self.window.paused_until_ms() {
                return 0;
            }
            let others = self.window.others(now).await;
            let seat = self.window.seat(now).await;
            // Read and written back around the check, never borrowed inside it (the worker keeps
            // the pace beside the own calls).
            let mut pace = self.window.with_pace(|pace| *pace);
            let granted = self.window.with_own(|own| {
                let granted = self.pacer.grant(now, own, &others, &mut pace, seat, want);
                if let Ok(n) = granted {
                    own.record(now, n);
                    // Older calls no longer count in any window the check reads.
                    let window = self.pacer.config.limit.window_ms;
                    own.prune(now.saturating_sub(window + ARRIVAL_GUARD_MS + SLOT_MS));
                }
                granted
            });
            self.window.with_pace(|kept| *kept = pace);
            match granted {
                Ok(n) => return n,
                Err(_) if waited >= MAX_GRANT_WAIT_MS => return 0,
                Err(wait) => {
                    self.window.sleep(wait).await;
                    waited += wait;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::{PacerConfig, Seat};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn grant_checks_the_live_window_and_paces_each_consumer() {
        let p = Pacer::new(PacerConfig::default()); // 99 per 10 s (+ the arrival guard)
        let none = CallCounter::new();
        let empty = CallLog::new();
        let per_sec = 99.0 / 10.15;
        // Four consumers: whole parts of the window's 99 calls that add up to it exactly.
        let seats = (0..4).map(|index| Seat { index, count: 4 });
        assert_eq!(
            seats
                .clone()
                .map(|s| p.seat_calls(s, 0))
                .collect::<Vec<_>>(),
            [24, 25, 25, 25]
        );
        let total: f64 = seats.map(|s| p.share_per_sec(s, 0)).sum();
        assert!((total - per_sec).abs() < 1e-9);
        let mut own = CallLog::new();
        own.record(5_300, 93);
        let mut pace = Pace::default();
        assert_eq!(
            p.grant(9_000, &own, &none, &mut pace, Seat::ALONE, 10),
            Ok(1),
            "a fresh pace starts with one"
        );
        own.record(9_000, 1);
        assert_eq!(
            p.grant(10_000, &own, &none, &mut pace, Seat::ALONE, 10),
            Ok(5),
            "99 - 94 left in the window"
        );
        own.record(10_000, 5);
        assert_eq!(
            p.grant(10_500, &own, &none, &mut pace, Seat::ALONE, 10),
            Err(1_000),
            "the window is full: look again within a second"
        );
        assert_eq!(
            p.grant(15_300, &own, &none, &mut pace, Seat::ALONE, 10),
            Err(151),
            "the calls of 5.3 s count until 15.3 s, plus the arrival guard"
        );
        assert!(
            p.grant(15_451, &own, &none, &mut pace, Seat::ALONE, 10)
                .is_ok(),
            "exact times, read exactly"
        );
        // The trickle's calls count in second buckets, read outwards.
        let mut trickle = CallCounter::new();
        trickle.record(5_300, 90);
        let mut pace = Pace::default();
        assert_eq!(
            p.grant(15_500, &empty, &trickle, &mut pace, Seat::ALONE, 10),
            Err(500)
        );
        assert!(p
            .grant(16_000, &empty, &trickle, &mut pace, Seat::ALONE, 10)
            .is_ok());
        // The window empty: a second's share at most, then the pace.
        let mut pace = Pace::default();
        assert_eq!(
            p.grant(0, &empty, &none, &mut pace, Seat::ALONE, 100),
            Ok(1)
        );
        assert_eq!(
            p.grant(2_000, &empty, &none, &mut pace, Seat::ALONE, 100),
            Ok(9),
            "one second banked"
        );
        assert!(p
            .grant(2_000, &empty, &none, &mut pace, Seat::ALONE, 100)
            .is_err());
        // One of four consumers: at its part of the budget, fractions kept over time.
        let mut pace = Pace::default();
        let mut granted = 0;
        let seat = Seat { index: 1, count: 4 };
        for t in (0..=20_000).step_by(100) {
            if let Ok(n) = p.grant(t, &empty, &none, &mut pace, seat, 100) {
                granted += n;
            }
        }
        assert!(
            (49..=50).contains(&granted),
            "{granted} in 20 s at 25/10.15 s"
        );
    }

    #[test]
    fn consumers_that_see_only_their_own_calls_stay_within_the_budget_together() {
        let p = Pacer::new(PacerConfig::default()); // 99 per 10 s (+ the arrival guard)
        let none = CallCounter::new();
        let mut trickle = CallCounter::new();
        // A trickle surge half-way: 40 calls in one second.
        trickle.record(30_000, 40);
        let mut all = CallLog::new();
        let mut consumers: Vec<(CallLog, Pace)> = (0..4).map(|_| Default::default()).collect();
        // Each asks for as much as it can get every 50 ms, the later ones banking idle time.
        for t in (0..=60_000).step_by(50) {
            for (index, (own, pace)) in consumers.iter_mut().enumerate() {
                let seat = Seat {
                    index: index as u32,
                    count: 4,
                };
                let others = if t >= 30_000 { &trickle } else { &none };
                if let Ok(n) = p.grant(t, own, others, pace, seat, 100) {
                    own.record(t, n);
                    all.record(t, n);
                }
            }
        }
        let window = 10_000 + ARRIVAL_GUARD_MS;
        for t in (0..=60_000u64).step_by(50) {
            let used = all.calls_in(t.saturating_sub(window), t);
            assert!(
                used <= 99,
                "{used} batch calls in the window ending at {t} ms"
            );
        }
        // Once the surge is seen, its calls and headroom (40 + 13) leave 46 for the batch:
        // parts of 11 or 12, while each consumer still has ~25 of its own in the window. None
        // grants again before enough of its own calls left it (about 13 of them, 5.3 s).
        assert_eq!(all.calls_in(30_000, 35_000), 0);
        assert!(all.calls_in(35_000, 40_000) > 0);
        assert!(
            all.calls_in(0, 30_000) >= 270,
            "the four spend the budget together"
        );
    }

    #[test]
    fn calls_that_arrive_within_the_guard_of_their_grant_stay_within_the_part_at_clerk() {
        let p = Pacer::new(PacerConfig::default()); // 99 per 10 s
        let none = CallCounter::new();
        // One consumer granting as much as it may every 10 ms for two minutes; each call
        // arrives at Clerk `0..=spread` ms after its grant (a seeded pseudo-random sequence).
        // Answers the most arrivals any of Clerk's 10-second windows holds.
        let most_at_clerk = |spread: u64| {
            let (mut own, mut pace) = (CallLog::new(), Pace::default());
            let mut arrivals = Vec::new();
            let mut rng = StdRng::seed_from_u64(7);
            for t in (0..120_000u64).step_by(10) {
                if let Ok(n) = p.grant(t, &own, &none, &mut pace, Seat::ALONE, 100) {
                    own.record(t, n);
                    for _ in 0..n {
                        arrivals.push(t + rng.gen_range(0..=spread));
                    }
                }
            }
            arrivals.sort_unstable();
            (0..arrivals.len())
                .map(|i| arrivals[i..].partition_point(|&a| a < arrivals[i] + 10_000))
                .max()
                .unwrap_or(0)
        };
        for spread in [0, 50, ARRIVAL_GUARD_MS] {
            assert!(most_at_clerk(spread) <= 99, "spread {spread} ms");
        }
        // Calls that may arrive later than the guard: Clerk sees more than the part.
        assert!(most_at_clerk(ARRIVAL_GUARD_MS + 400) > 99);
    }

    #[test]
    fn a_busy_trickle_slows_the_batch_and_keeps_headroom() {
        let p = Pacer::new(PacerConfig::default());
        let mut trickle = CallCounter::new();
        for s in 0..10 {
            trickle.record(s * 1000, 3); // 30 calls in the window
        }
        // 99 - 30 - 2·√30 (11) = 58 per window and guard: 5.7 per second for one consumer.
        assert!((p.share_per_sec(Seat::ALONE, 30) - 58.0 / 10.15).abs() < 1e-9);
        let mut own = CallLog::new();
        own.record(9_000, 58);
        let mut pace = Pace::default();
        assert_eq!(
            p.grant(9_500, &own, &trickle, &mut pace, Seat::ALONE, 5),
            Err(1_000),
            "the trickle's headroom is not for the batch"
        );
        assert_eq!(p.share_per_sec(Seat::ALONE, 200), 0.0);
    }
}

#[cfg(test)]
mod grants_tests {
    use super::*;
    use crate::pacer::{PacerConfig, Seat};
    use futures::executor::block_on;
    use std::cell::{Cell, RefCell};

    /// A clock that moves only when a grant waits, and the trickle's calls as given.
    #[derive(Default)]
    struct Window {
        now: Cell<u64>,
        paused_until: Cell<u64>,
        others: CallCounter,
        own: RefCell<CallLog>,
        pace: RefCell<Pace>,
        slept: Cell<u64>,
    }

    impl LiveWindow for &Window {
        fn now_ms(&self) -> u64 {
            self.now.get()
        }
        fn paused_until_ms(&self) -> u64 {
            self.paused_until.get()
        }
        async fn others(&self, _now_ms: u64) -> CallCounter {
            self.others.clone()
        }
        async fn seat(&self, _now_ms: u64) -> Seating {
            Seat::ALONE.into()
        }
        fn with_own<R>(&self, f: impl FnOnce(&mut CallLog) -> R) -> R {
            f(&mut self.own.borrow_mut())
        }
        fn with_pace<R>(&self, f: impl FnOnce(&mut Pace) -> R) -> R {
            f(&mut self.pace.borrow_mut())
        }
        async fn sleep(&self, ms: u64) {
            self.slept.set(self.slept.get() + ms);
            self.now.set(self.now.get() + ms);
        }
    }

    #[test]
    fn grants_count_from_the_grant_and_the_pace_goes_on_across_pages() {
        let pacer = Pacer::new(PacerConfig::default()); // 99 per 10 s
        let w = Window::default();
        w.now.set(50_000);
        let grants = Grants::new(pacer, &w);
        assert_eq!(
            block_on(grants.acquire(10)),
            1,
            "a fresh pace starts with one"
        );
        assert_eq!(w.own.borrow().calls_in(0, 50_000), 1);
        // The next call waits for the pace (99 per 10.15 s): about 103 ms.
        assert_eq!(block_on(grants.acquire(1)), 1);
        assert_eq!(w.slept.get(), 103);
        assert_eq!(
            w.own.borrow().calls_in(50_000, 50_103),
            1,
            "counted from its grant"
        );
        // A second later a second's share is banked.
        w.now.set(51_103);
        let n = block_on(grants.acquire(10));
        assert!(n >= 9, "{n}");
        assert_eq!(w.own.borrow().calls_in(51_000, 51_103), n);
        // Old calls leave the log once no window reads them.
        w.now.set(80_000);
        assert!(block_on(grants.acquire(1)) > 0);
        assert_eq!(w.own.borrow().calls_in(0, 70_000), 0);
        // The next page goes on at the consumer's pace: a second's share banked, not the one
        // call of a fresh pace.
        w.now.set(90_000);
        let next_page = Grants::new(pacer, &w);
        assert_eq!(block_on(next_page.acquire(10)), 9);
    }

    #[test]
    fn a_paused_batch_or_a_window_that_stays_full_stops_the_page() {
        let pacer = Pacer::new(PacerConfig::default());
        let w = Window::default();
        w.paused_until.set(10_000);
        let grants = Grants::new(pacer, &w);
        assert_eq!(block_on(grants.acquire(5)), 0, "paused");
        assert_eq!(w.slept.get(), 0, "a pause is not waited for in the page");
        // The trickle fills every window: the page waits, then gives up.
        let mut busy = CallCounter::new();
        for s in 0..100 {
            busy.record(s * 1000, 99);
        }
        let w = Window {
            others: busy,
            ..Window::default()
        };
        w.now.set(20_000);
        let grants = Grants::new(pacer, &w);
        assert_eq!(block_on(grants.acquire(5)), 0);
        assert!((MAX_GRANT_WAIT_MS..MAX_GRANT_WAIT_MS + SLOT_MS).contains(&w.slept.get()));
        assert_eq!(w.own.borrow().calls_in(0, u64::MAX), 0, "nothing granted");
    }
}
