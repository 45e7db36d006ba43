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
//! is retried), so the queue consumer asks [`Pacer::grant`] before each call, just before it
//! sends it from a free connection, and waits for the window when it is full. Consumers run
//! in separate isolates and see only their own calls, so each keeps them within its seat's
//! whole part of the budget ([`Pacer::seat_calls`]; the parts add up to the budget) and spends
//! at that pace ([`Pacer::share_per_sec`]): one message never takes more than its share of a
//! window.
//!
//! Concerns, one file each: `rate` (the limit), `calls` (counting calls), `plan` (the
//! tick's pages), `seat` (the consumers' parts of the budget, while they come and go) and
//! `grant` (the consumer's live check, pace and grants).

mod calls;
mod grant;
mod plan;
mod rate;
mod seat;

pub use calls::{CallCounter, CallLog};
pub use grant::{Grants, LiveWindow, Pace, MAX_GRANT_WAIT_MS};
pub use plan::{PacerState, PagePlan, Plan, PAGE_LEAD_SECS};
pub use rate::RateLimit;
pub use seat::{Seat, SeatCounting, SeatWatch, Seating};

/// Granularity of plans: Queues delays are whole seconds.
pub const SLOT_MS: u64 = 1000;
/// How much later after its grant a call may arrive at Clerk (and start counting there) than
/// a call granted after it: the spread of the time on the way. A consumer counts its calls from
/// their grants, Clerk from their arrivals, so the consumer reads its window this much longer
/// (and paces over it): then no window at Clerk holds more of its calls than its part, however
/// they arrive within the spread. A shorter guard than the spread lets them crowd (in the
/// simulation, whose time on the way is 20–140 ms, a 50 ms guard gives hundreds of 429s). It
/// holds only for calls sent as they are granted: a call that waits for one of the
/// invocation's connections first arrives later by that wait
/// ([`crate::migration::page::CONNECTIONS_PER_INVOCATION`]).
pub const ARRIVAL_GUARD_MS: u64 = 150;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    pub limit: RateLimit,
    /// Share of the limit the batch never uses, in percent: room for interactive calls that
    /// arrive before the trickle's recent pace shows them (other isolates publish theirs to KV
    /// about once a second).
    pub safety_margin_pct: u32,
    /// Calls one page costs before any record: its look-ups. The worker sets them per phase
    /// (`batch::tick::pacer_config`: one by `external_id` in `migrate`, which creates first;
    /// by `external_id` and by email in `observe`); the default, two, is the larger.
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
}
