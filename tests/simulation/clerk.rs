//! Clerk after a latency, counting who called; each consumer's live view of its window; and
//! the counts of calls in a window.

use super::*;

#[derive(Default)]
pub(super) struct Calls {
    /// The trickle's calls at their arrival, for the live check and the pacer.
    pub(super) trickle: RefCell<CallCounter>,
    pub(super) batch: Cell<u64>,
    pub(super) trickle_total: Cell<u64>,
    pub(super) batch_times: RefCell<Vec<u64>>,
    pub(super) trickle_times: RefCell<Vec<u64>>,
    pub(super) batch_429: Cell<u64>,
    pub(super) trickle_429: Cell<u64>,
    /// Batch creates Clerk refused as taken (someone, e.g. the trickle, got there first).
    pub(super) batch_taken: Cell<u64>,
    /// The batch's calls by kind: (calls, answered with an error).
    pub(super) batch_kinds: RefCell<BTreeMap<&'static str, (u64, u64)>>,
}

pub(super) struct Latent<'a> {
    pub(super) clerk: &'a MemoryClerk,
    pub(super) clock: Rc<Clock>,
    pub(super) calls: &'a Calls,
    pub(super) trickle: bool,
    pub(super) rng: &'a RefCell<StdRng>,
    /// A queue consumer's connections, which its calls wait for; a sign-in's few calls, one
    /// after another, never wait.
    pub(super) connections: Option<&'a Connections>,
    /// A queue consumer's calls at their arrival, against its part of the budget.
    pub(super) arrivals: Option<&'a RefCell<Vec<u64>>>,
}

impl Latent<'_> {
    /// A connection for one call, held until its answer is back.
    pub(super) async fn open(&self) -> Option<Open<'_>> {
        match self.connections {
            Some(connections) => Some(connections.open(&self.clock).await),
            None => None,
        }
    }
    /// The request travels to Clerk (where it counts from its arrival), then the answer
    /// travels back ([`Self::answer`]).
    pub(super) async fn arrive(&self) {
        let one_way = self.rng.borrow_mut().gen_range(ONE_WAY_MS);
        self.clock.sleep(one_way).await;
        let now = self.clock.now();
        self.clerk.set_now(now);
        if self.trickle {
            // The batch's calls are counted when granted (see `SimWindow`).
            self.calls.trickle.borrow_mut().record(now, 1);
            self.calls
                .trickle_total
                .set(self.calls.trickle_total.get() + 1);
            self.calls.trickle_times.borrow_mut().push(now);
        } else {
            self.calls.batch.set(self.calls.batch.get() + 1);
            self.calls.batch_times.borrow_mut().push(now);
            if let Some(arrivals) = self.arrivals {
                arrivals.borrow_mut().push(now);
            }
        }
    }
    pub(super) async fn answer(&self) {
        let one_way = self.rng.borrow_mut().gen_range(ONE_WAY_MS);
        self.clock.sleep(one_way).await;
    }
    pub(super) fn note<T>(&self, kind: &'static str, r: &Result<T, ClerkError>) {
        if !self.trickle {
            let mut kinds = self.calls.batch_kinds.borrow_mut();
            let k = kinds.entry(kind).or_default();
            k.0 += 1;
            k.1 += u64::from(r.is_err());
        }
        match r {
            Err(ClerkError::RateLimited { .. }) if self.trickle => {
                self.calls.trickle_429.set(self.calls.trickle_429.get() + 1)
            }
            Err(ClerkError::RateLimited { .. }) => {
                self.calls.batch_429.set(self.calls.batch_429.get() + 1)
            }
            Err(e) if e.is_identifier_exists() && !self.trickle => {
                self.calls.batch_taken.set(self.calls.batch_taken.get() + 1)
            }
            _ => {}
        }
    }
}

impl ClerkApi for Latent<'_> {
    async fn find_users(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError> {
        let _open = self.open().await;
        self.arrive().await;
        let r = self.clerk.find_users(q).await;
        self.note("find", &r);
        self.answer().await;
        r
    }
    async fn create_user(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError> {
        let _open = self.open().await;
        self.arrive().await;
        let r = self.clerk.create_user(body).await;
        self.note("create", &r);
        self.answer().await;
        r
    }
    async fn update_user(&self, id: &str, body: &UpdateUser) -> Result<ClerkUser, ClerkError> {
        let _open = self.open().await;
        self.arrive().await;
        let r = self.clerk.update_user(id, body).await;
        self.note("update", &r);
        self.answer().await;
        r
    }
    async fn update_user_metadata(
        &self,
        id: &str,
        body: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError> {
        let _open = self.open().await;
        self.arrive().await;
        let r = self.clerk.update_user_metadata(id, body).await;
        self.note("metadata", &r);
        self.answer().await;
        r
    }
    async fn create_sign_in_token(
        &self,
        user_id: &str,
        expires_in_seconds: u32,
    ) -> Result<SignInToken, ClerkError> {
        let _open = self.open().await;
        self.arrive().await;
        let r = self
            .clerk
            .create_sign_in_token(user_id, expires_in_seconds)
            .await;
        self.note("sign_in_token", &r);
        self.answer().await;
        r
    }
}

/// A joining consumer's count of the consumers: its number, every consumer's last beat (its
/// KV key, which lapses a minute after), its watch and its next beat.
pub(super) struct Counting<'a> {
    pub(super) index: u32,
    pub(super) beats: &'a RefCell<Vec<Option<u64>>>,
    pub(super) watch: &'a RefCell<SeatWatch>,
    pub(super) next_beat: &'a Cell<u64>,
    pub(super) window_ms: u64,
}

/// A consumer's live window on the virtual clock: its own calls at their grants, the
/// trickle's at their arrival, the pause the last 429 asked for. Each page spends through the
/// worker's own [`Grants`] over it, as the queue consumer does.
pub(super) struct SimWindow<'a> {
    pub(super) clock: Rc<Clock>,
    pub(super) calls: &'a Calls,
    pub(super) paused_until: &'a Cell<u64>,
    /// This consumer's pace, kept across its pages.
    pub(super) pace: &'a RefCell<Pace>,
    /// This consumer's own calls, counted when granted (at their exact times): like the
    /// worker's consumers, each in its own isolate, it sees no other consumer's.
    pub(super) own: &'a RefCell<CallLog>,
    /// Its seat among the consumers, as it last counted them.
    pub(super) seating: &'a RefCell<Seating>,
    /// When it counts them: with consumers joining (`SIM_JOIN_MS`), every beat, through the
    /// worker's [`SeatWatch`], each seeing the consumers started by then.
    pub(super) counting: Option<Counting<'a>>,
    /// Time pages waited (for grants, and before trying a record again).
    pub(super) waited: &'a Cell<u64>,
}

impl LiveWindow for SimWindow<'_> {
    fn now_ms(&self) -> u64 {
        self.clock.now()
    }
    fn paused_until_ms(&self) -> u64 {
        self.paused_until.get()
    }
    async fn others(&self, _now_ms: u64) -> CallCounter {
        self.calls.trickle.borrow().clone()
    }
    async fn seat(&self, now_ms: u64) -> Seating {
        if let Some(c) = &self.counting {
            if now_ms >= c.next_beat.get() {
                // It writes its key, then lists the live ones (in order): its place among them.
                let seat = {
                    let mut beats = c.beats.borrow_mut();
                    beats[c.index as usize] = Some(now_ms);
                    let live = |b: &Option<u64>| {
                        b.is_some_and(|t| now_ms < t + SeatCounting::HEARTBEATS.key_ttl_ms)
                    };
                    Seat {
                        index: beats[..c.index as usize].iter().filter(|b| live(b)).count() as u32,
                        count: beats.iter().filter(|b| live(b)).count() as u32,
                    }
                };
                let seating = c.watch.borrow_mut().counted(
                    seat,
                    now_ms,
                    SeatCounting::HEARTBEATS,
                    c.window_ms,
                );
                *self.seating.borrow_mut() = seating;
                c.next_beat.set(now_ms + SeatCounting::HEARTBEATS.beat_ms);
            }
        }
        self.seating.borrow().clone()
    }
    fn with_own<R>(&self, f: impl FnOnce(&mut CallLog) -> R) -> R {
        f(&mut self.own.borrow_mut())
    }
    fn with_pace<R>(&self, f: impl FnOnce(&mut Pace) -> R) -> R {
        f(&mut self.pace.borrow_mut())
    }
    async fn sleep(&self, ms: u64) {
        self.waited.set(self.waited.get() + ms);
        self.clock.sleep(ms).await;
    }
}

pub(super) fn max_in_window(times: &mut [u64], window_ms: u64) -> usize {
    times.sort_unstable();
    let (mut best, mut lo) = (0, 0);
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window_ms {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Accepted calls whose trailing window holds more than the limit.
pub(super) fn windows_over(times: &[u64], limit: RateLimit) -> usize {
    let mut t = times.to_vec();
    t.sort_unstable();
    let mut n = 0;
    let mut lo = 0;
    for hi in 0..t.len() {
        while t[hi] - t[lo] >= limit.window_ms {
            lo += 1;
        }
        if hi - lo + 1 > limit.calls as usize {
            n += 1;
        }
    }
    n
}
