//! The queue consumer's live check ([`Pacer::grant`]): before each group of calls, the last
//! window of every known call against the budget, and this consumer's pace ([`Pace`], its
//! share of the budget, [`Pacer::share_per_sec`]).

use super::{CallCounter, CallLog, Pacer, ARRIVAL_GUARD_MS, SLOT_MS};

impl Pacer {
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

    /// Gives back `calls` taken and not made (a record that needed no call): the pace was
    /// not spent on them.
    pub fn give_back(&mut self, calls: u32) {
        self.tokens += f64::from(calls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::PacerConfig;

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
    fn calls_granted_and_not_made_leave_the_window_and_return_to_the_pace() {
        let p = Pacer::new(PacerConfig::default());
        let none = CallCounter::new();
        let mut own = CallLog::new();
        own.record(1_000, 90);
        let mut pace = Pace::default();
        assert_eq!(p.grant(5_000, &own, &none, &mut pace, 1, 10), Ok(1));
        assert_eq!(p.grant(8_000, &own, &none, &mut pace, 1, 10), Ok(9));
        own.record(8_000, 9);
        assert!(p.grant(8_000, &own, &none, &mut pace, 1, 1).is_err());
        // None of the nine was needed (users already complete): all of them are back.
        own.remove(8_000, 9);
        pace.give_back(9);
        assert_eq!(own.calls_in(0, 8_000), 90);
        assert_eq!(p.grant(8_000, &own, &none, &mut pace, 1, 10), Ok(9));
        // Only calls recorded at the grant's time are taken back.
        own.record(8_000, 9);
        own.remove(1_000, 0);
        own.remove(8_000, 20);
        assert_eq!(own.calls_in(0, 8_000), 90);
        assert_eq!(own.oldest_in(0, 8_000), Some(1_000));
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
}
