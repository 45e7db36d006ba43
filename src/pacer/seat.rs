//! The queue consumers' seats: how the batch's budget is cut between consumers that each see
//! only their own calls ([`Seat`], [`Pacer::seat_calls`], [`Pacer::share_per_sec`]), and how a
//! consumer keeps to its part while the consumers change ([`Seating`], [`SeatWatch`]).
//!
//! The parts of one count of the consumers add up to the budget, but the consumers do not
//! count at the same moment: one that joins counts itself at once, while the others go on by
//! the earlier count until they count again (every beat), and the calls they made by it stay in
//! the window after that. So after a change a consumer spends at most the smaller of its
//! earlier and its new part until everyone has counted again and a window has passed; one that
//! just joined had no part, and waits that long before it spends.

use super::{Pacer, ARRIVAL_GUARD_MS};

/// A queue consumer's place among those spending the budget now: `index` (from 0) of `count`.
/// Consumers run in separate isolates, each seeing only its own calls: the window's budget is
/// cut into `count` whole parts that add up to it exactly, and each consumer keeps its own
/// calls within its part ([`Pacer::seat_calls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub index: u32,
    pub count: u32,
}

impl Seat {
    /// The only consumer.
    pub const ALONE: Seat = Seat { index: 0, count: 1 };
}

/// A consumer's seat and the earlier ones it still keeps to: until each one's time (ms) the
/// consumer spends at most that seat's part too; `None` is no part (it had just joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seating {
    pub seat: Seat,
    earlier: Vec<(Option<Seat>, u64)>,
}

impl Seating {
    /// A seat every consumer counts alike (no change under way).
    pub fn settled(seat: Seat) -> Self {
        Self {
            seat,
            earlier: Vec::new(),
        }
    }

    /// No part at all (a consumer that could not count the others yet).
    pub fn nothing() -> Self {
        Self {
            seat: Seat::ALONE,
            earlier: vec![(None, u64::MAX)],
        }
    }

    /// Whether an earlier seat still bounds this one at `now_ms`.
    pub fn settling(&self, now_ms: u64) -> bool {
        self.earlier.iter().any(|(_, until)| now_ms < *until)
    }
}

impl From<Seat> for Seating {
    fn from(seat: Seat) -> Self {
        Self::settled(seat)
    }
}

/// How a consumer's count of the consumers is kept: it counts every `beat_ms` (writing its own
/// key first), and its key lapses `key_ttl_ms` after it was last written (then the others no
/// longer count it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatCounting {
    pub beat_ms: u64,
    pub key_ttl_ms: u64,
}

impl SeatCounting {
    /// The queue consumers' (`batch::consume`, and the simulation's): a beat every 5 s; a key
    /// lapses after KV's shortest expiry, a minute.
    pub const HEARTBEATS: SeatCounting = SeatCounting {
        beat_ms: 5_000,
        key_ttl_ms: 60_000,
    };
}

/// One consumer's counts of the consumers over time, and the seating they give.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeatWatch {
    /// When it last counted, and the seating then.
    last: Option<(u64, Seating)>,
}

impl SeatWatch {
    pub const fn new() -> Self {
        Self { last: None }
    }

    /// The seat it found when it last counted, if it ever did.
    pub fn seat(&self) -> Option<Seat> {
        self.last.as_ref().map(|(_, seating)| seating.seat)
    }

    /// This consumer counted the consumers at `now_ms` (its own key just written) and found
    /// itself at `seat`. A change keeps the earlier seat as a bound until the others have
    /// counted again (a beat) and their calls made by the earlier count have left the window
    /// (`window_ms` and the arrival guard). A consumer counting for the first time, or again
    /// after its key lapsed (the others stopped counting it), joins: no part until then —
    /// unless it is alone, when nobody else spends.
    pub fn counted(
        &mut self,
        seat: Seat,
        now_ms: u64,
        counting: SeatCounting,
        window_ms: u64,
    ) -> Seating {
        let until = now_ms + counting.beat_ms + window_ms + ARRIVAL_GUARD_MS;
        let seating = match self.last.take() {
            Some((at, mut seating)) if now_ms < at + counting.key_ttl_ms => {
                seating.earlier.retain(|(_, end)| now_ms < *end);
                if seating.seat != seat {
                    seating.earlier.push((Some(seating.seat), until));
                    seating.seat = seat;
                }
                seating
            }
            _ if seat.count <= 1 => Seating::settled(seat),
            _ => Seating {
                seat,
                earlier: vec![(None, until)],
            },
        };
        self.last = Some((now_ms, seating.clone()));
        seating
    }
}

impl Pacer {
    /// Calls `seat`'s consumer may have in any window (the limit's window plus the arrival
    /// guard) while the trickle and interactive calls made `others_in_window` calls in the
    /// last window: its part of what the budget leaves after them — and after a headroom for
    /// their fluctuation (they have priority: the batch yields before they meet a full window).
    /// The parts of all seats add up to exactly what is left, so consumers that each see only
    /// their own calls never fill more than the budget together.
    pub fn seat_calls(&self, seat: Seat, others_in_window: u32) -> u32 {
        let left = u64::from(
            self.budget_per_window()
                .saturating_sub(others_in_window + others_headroom(others_in_window)),
        );
        let count = u64::from(seat.count.max(1));
        let index = u64::from(seat.index.min(seat.count.max(1) - 1));
        (left * (index + 1) / count - left * index / count) as u32
    }

    /// [`Self::seat_calls`] of a seating at `now_ms`: the part of its seat, and no more than the
    /// part of each earlier seat that still bounds it.
    pub fn seating_calls(&self, seating: &Seating, now_ms: u64, others_in_window: u32) -> u32 {
        seating
            .earlier
            .iter()
            .filter(|(_, until)| now_ms < *until)
            .fold(
                self.seat_calls(seating.seat, others_in_window),
                |part, (earlier, _)| {
                    part.min(earlier.map_or(0, |s| self.seat_calls(s, others_in_window)))
                },
            )
    }

    /// Calls per second `seat`'s consumer spends: its [`Self::seat_calls`] spread evenly over
    /// the window, so one message never takes more than its share of the window.
    pub fn share_per_sec(&self, seat: Seat, others_in_window: u32) -> f64 {
        self.per_sec(self.seat_calls(seat, others_in_window))
    }

    /// `calls` per window spread over the window plus the arrival guard (calls count at Clerk
    /// from their arrival).
    pub(super) fn per_sec(&self, calls: u32) -> f64 {
        let window_secs = (self.config.limit.window_ms + ARRIVAL_GUARD_MS) as f64 / 1000.0;
        f64::from(calls) / window_secs
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::{CallCounter, CallLog, Pace, PacerConfig};

    const COUNTING: SeatCounting = SeatCounting::HEARTBEATS;
    const WINDOW: u64 = 10_000;
    /// A beat, the window and the arrival guard.
    const SETTLE: u64 = 5_000 + WINDOW + ARRIVAL_GUARD_MS;

    fn seat(index: u32, count: u32) -> Seat {
        Seat { index, count }
    }

    #[test]
    fn a_consumer_that_joins_others_spends_nothing_until_they_counted_again_and_a_window_passed() {
        let p = Pacer::new(PacerConfig::default()); // 99 per window
        let mut watch = SeatWatch::new();
        let s = watch.counted(seat(1, 2), 100_000, COUNTING, WINDOW);
        assert_eq!(p.seating_calls(&s, 100_000, 0), 0);
        assert_eq!(p.seating_calls(&s, 100_000 + SETTLE - 1, 0), 0);
        assert_eq!(p.seating_calls(&s, 100_000 + SETTLE, 0), 50);
        assert!(s.settling(100_000) && !s.settling(100_000 + SETTLE));
        // Counting again without a change keeps the bound where it was.
        let s = watch.counted(seat(1, 2), 105_000, COUNTING, WINDOW);
        assert_eq!(p.seating_calls(&s, 105_000, 0), 0);
        assert_eq!(p.seating_calls(&s, 100_000 + SETTLE, 0), 50);
    }

    #[test]
    fn the_first_consumer_alone_spends_at_once() {
        let p = Pacer::new(PacerConfig::default());
        let s = SeatWatch::new().counted(Seat::ALONE, 0, COUNTING, WINDOW);
        assert_eq!(p.seating_calls(&s, 0, 0), 99);
        assert!(!s.settling(0));
    }

    #[test]
    fn a_consumer_keeps_to_the_smaller_of_its_earlier_and_new_part_while_the_count_changes() {
        let p = Pacer::new(PacerConfig::default());
        let mut watch = SeatWatch::new();
        watch.counted(Seat::ALONE, 0, COUNTING, WINDOW);
        // Another joined: the part shrinks at once (the smaller one is the new one).
        let s = watch.counted(seat(0, 2), 50_000, COUNTING, WINDOW);
        assert_eq!(p.seating_calls(&s, 50_000, 0), 49);
        // It left and its key lapsed: the part grows only once the others counted it gone
        // too and a window passed.
        watch.counted(seat(0, 2), 100_000, COUNTING, WINDOW);
        let s = watch.counted(Seat::ALONE, 120_000, COUNTING, WINDOW);
        assert_eq!(p.seating_calls(&s, 120_000, 0), 49);
        assert_eq!(p.seating_calls(&s, 120_000 + SETTLE, 0), 99);
        // Moved to another place among three: the smaller of the two parts, with the trickle's
        // calls taken off both.
        let mut watch = SeatWatch::new();
        watch.counted(Seat::ALONE, 0, COUNTING, WINDOW);
        watch.counted(seat(0, 3), 1_000, COUNTING, WINDOW);
        let s = watch.counted(seat(2, 3), 1_000 + SETTLE, COUNTING, WINDOW);
        assert_eq!(p.seat_calls(seat(0, 3), 30), 19);
        assert_eq!(p.seat_calls(seat(2, 3), 30), 20);
        assert_eq!(p.seating_calls(&s, 1_000 + SETTLE, 30), 19);
        // Two changes within one settling: each earlier seat bounds until its own time.
        let mut watch = SeatWatch::new();
        watch.counted(Seat::ALONE, 0, COUNTING, WINDOW);
        watch.counted(seat(0, 4), 1_000, COUNTING, WINDOW);
        let s = watch.counted(seat(0, 2), 6_000, COUNTING, WINDOW);
        assert_eq!(p.seating_calls(&s, 6_000, 0), 24);
        assert_eq!(p.seating_calls(&s, 6_000 + SETTLE - 1, 0), 24);
        assert_eq!(p.seating_calls(&s, 6_000 + SETTLE, 0), 49);
    }

    #[test]
    fn a_watch_knows_a_seat_only_once_it_counted() {
        let mut watch = SeatWatch::new();
        assert_eq!(watch.seat(), None);
        watch.counted(seat(1, 3), 0, COUNTING, WINDOW);
        assert_eq!(watch.seat(), Some(seat(1, 3)));
        assert_eq!(
            Pacer::new(PacerConfig::default()).seating_calls(&Seating::nothing(), 0, 0),
            0
        );
    }

    #[test]
    fn a_consumer_whose_key_lapsed_joins_again() {
        let p = Pacer::new(PacerConfig::default());
        let mut watch = SeatWatch::new();
        watch.counted(seat(0, 2), 0, COUNTING, WINDOW);
        // Idle for a minute: the others stopped counting it and took its part.
        let s = watch.counted(seat(0, 2), 60_000, COUNTING, WINDOW);
        assert_eq!(p.seating_calls(&s, 60_000, 0), 0);
        assert_eq!(p.seating_calls(&s, 60_000 + SETTLE, 0), 49);
    }

    /// Consumers joining one by one, each counting every beat at its own phase, each granting
    /// as much as it may every 50 ms: the batch's calls in any window stay within the budget.
    /// Without the bound an earlier count leaves, a newcomer's part comes on top of the
    /// others' whole budget.
    #[test]
    fn consumers_joining_one_by_one_stay_within_the_budget_together() {
        let p = Pacer::new(PacerConfig::default()); // 99 per window
        let none = CallCounter::new();
        let most_in_a_window = |bounded: bool| {
            let joins = [0u64, 7_300, 13_100, 21_700, 22_900, 40_000];
            let mut consumers: Vec<(SeatWatch, Seating, u64, CallLog, Pace)> = Vec::new();
            let mut all = CallLog::new();
            for t in (0..=90_000u64).step_by(50) {
                let present = joins.iter().filter(|&&j| j <= t).count();
                while consumers.len() < present {
                    let s = Seating::settled(Seat::ALONE);
                    consumers.push((SeatWatch::new(), s, 0, CallLog::new(), Pace::default()));
                }
                for (i, (watch, seating, next_beat, own, pace)) in consumers.iter_mut().enumerate()
                {
                    if t >= *next_beat {
                        // Each beats at its own phase and sees everyone present now.
                        let counted = seat(i as u32, present as u32);
                        *seating = if bounded {
                            watch.counted(counted, t, COUNTING, WINDOW)
                        } else {
                            counted.into()
                        };
                        *next_beat = t + COUNTING.beat_ms + (i as u64 * 700) % 1_000;
                    }
                    if let Ok(n) = p.grant(t, own, &none, pace, seating.clone(), 100) {
                        own.record(t, n);
                        all.record(t, n);
                    }
                }
            }
            (0..=90_000u64)
                .step_by(50)
                .map(|t| all.calls_in(t.saturating_sub(WINDOW + ARRIVAL_GUARD_MS), t))
                .max()
                .unwrap()
        };
        assert!(most_in_a_window(false) > 99, "the unbounded count overruns");
        assert_eq!(most_in_a_window(true), 99);
    }
}
