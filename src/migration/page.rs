//! The batch's unit of work: a page of up to 100 import records (one Queue message), migrated
//! at Clerk's physical limit — about one Backend API call per new user.
//!
//! For a page:
//! 1. one `GET /v1/users` with every record's `external_id` (escaped, see
//!    [`UserQuery::by_external_ids`]): it finds the users the trickle or an earlier delivery
//!    of the page created, so a redelivered page creates nobody twice;
//! 2. per record, the shared migrator judges that answer with the trickle's rules
//!    ([`Migrator::migrate_in_page`], [`super::proof::decide`]: exact `external_id`, or a link
//!    only on an email verified on both sides): a found user is completed, never overwritten;
//!    a refusal fails with its stable code; a record nobody holds is created first (one
//!    `POST /users` with its `external_id`, the whole cost of a fresh user). Clerk keeps
//!    emails, phones and usernames unique: a create whose email is taken is answered
//!    `form_identifier_exists` and creates nobody;
//! 3. the records whose email was taken are looked up by email in one `GET /v1/users`
//!    (answers re-checked for an exact match, bisected on a permanent refusal like the
//!    first), together with the emails of the records not tried yet, which that call takes at
//!    no cost — then judged again on those candidates, by the same rules. A fresh page costs
//!    one look-up and one create per record; a page of people who signed up in Clerk already
//!    pays for about one create refused as taken. A taken phone, username or external id is
//!    resolved by the record's own look-ups, as on the trickle. `observe` creates nothing:
//!    its records nobody holds are looked up by email the same way, in one call.
//!
//! A Worker invocation has [`CONNECTIONS_PER_INVOCATION`] connections: the page runs as many
//! lanes, each sending one call at a time and starting the next record as soon as its call is
//! answered (records are pipelined, never a group at a time). Every call — a look-up, a
//! create, and whatever a record needs beyond it (the look-ups after a conflict, the update
//! of a link, a try again) — is granted by the [`Spender`] (this consumer's share of the
//! window) just before it is sent, from a free connection: it counts from its grant and
//! reaches Clerk within the pacer's arrival guard of it. A record that needs no call takes no
//! grant, and a call that gets none is never sent (its record waits for the next page).
//!
//! Outcomes are the migrator's ([`Outcome`]): transient errors (429, 5xx, timeouts, dropped
//! connections) are `Retry` — the record stays pending; one Clerk answered (a 5xx) is first
//! tried again at the end of the page (`RECORD_TRIES`) — and only Clerk's permanent refusals
//! (and the binding rules' refusals) are `Failed`. A call that went unanswered may have
//! created the user: it is not tried again in the page, and the record's next page looks it
//! up by external id before any second create (and a second create would meet Clerk's
//! uniqueness of the email, phone or username every user is created with). A look-up Clerk
//! refuses for good (a value it cannot take) is bisected so the rest of the page still
//! migrates. A `429` stops the page: what was not done is `Retry` with Clerk's `Retry-After`.
//!
//! Pure over [`ClerkApi`], [`Store`] and [`Spender`]: the worker's queue consumer and the
//! virtual-time simulation run this same code.

use super::ledger::QueueMessage;
use super::migrator::{CallGate, Migrator, Mode, Outcome, PageMigration};
use super::record::ImportRecord;
use super::store::Store;
use crate::clerk_api::{ClerkApi, ClerkError, ClerkUser, UserQuery};
use crate::join::join_all;
use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Records per page: `GET /v1/users` takes at most 100 values per filter.
pub const PAGE_RECORDS: usize = crate::pacer::MAX_PAGE_RECORDS as usize;
/// Bytes of records per Queue message, below Queues' 128 KB message limit.
pub const PAGE_BYTES: usize = 100 * 1024;
/// Workers' simultaneous open connections per invocation. A `fetch` (or KV call) beyond them
/// waits in the runtime until one of them is answered: a call granted then would reach Clerk
/// later than its grant by that wait, beyond the pacer's arrival guard, and crowd one of
/// Clerk's windows beyond this consumer's part. A page sends from this many lanes, each one
/// call (or KV operation) at a time, so that every call leaves as it is granted.
pub const CONNECTIONS_PER_INVOCATION: usize = 6;

/// Tries of one look-up before its records are left to their backoff.
const LOOKUP_ATTEMPTS: u32 = 2;
/// Tries of one record inside its page. A transient failure Clerk answered (a 5xx) is tried
/// again later in the same page, after the records not tried yet: no look-up to repeat, no
/// wait for the next delivery ([`is_answered_transient`]; an unanswered call waits for the
/// next page's look-up). Beyond this the record waits for its backoff outside the page.
const RECORD_TRIES: u32 = 3;
/// The least time between a record's failure and its next try in the page.
const RETRY_PAUSE_MS: u64 = 200;
/// Records are tried again in the page only while at most this share (percent) of the page's
/// tries failed transiently: a Clerk in trouble gets the records' backoff, not more calls.
const RETRY_WHILE_FAILED_PCT: u32 = 25;
/// The longest `Retry-After` a record is tried again in its page for; a longer one waits
/// outside it.
const RETRY_AFTER_IN_PAGE_SECS: u32 = 2;

/// Retry code of records a page could not reach because the budget stayed full.
pub const DEFERRED: &str = "admission_deferred";
/// Retry code of records a `429` stopped.
pub const RATE_LIMITED: &str = "rate_limited";

/// One Queue message: a page of records (from one or several imports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMessage {
    pub items: Vec<QueueMessage>,
    /// Sent when the backlog had run out (the end of an import): records this page hands back
    /// for a retry go straight to the Queue with their backoff as delay, instead of waiting
    /// in the backlog for the next cron tick, which no longer has fresh records to fill a page
    /// with them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tail: bool,
}

/// Cuts `messages` into pages of at most `sizes[i]` records (and [`PAGE_BYTES`]), in order.
/// A page cut short by its bytes continues in the next message with the same planned slot,
/// so the answer may hold more pages than `sizes`; the index says which planned page each is.
pub fn paginate(messages: Vec<QueueMessage>, sizes: &[usize]) -> Vec<(usize, PageMessage)> {
    let mut out = Vec::new();
    let mut rest = messages.into_iter().peekable();
    for (i, &size) in sizes.iter().enumerate() {
        let mut taken = 0;
        while taken < size && rest.peek().is_some() {
            let mut items = Vec::new();
            let mut bytes = 0;
            while taken < size && items.len() < PAGE_RECORDS {
                let Some(next) = rest.peek() else { break };
                let len = next.record.len() + next.import_id.len() + 32;
                if !items.is_empty() && bytes + len > PAGE_BYTES {
                    break;
                }
                bytes += len;
                taken += 1;
                items.extend(rest.next());
            }
            out.push((i, PageMessage { items, tail: false }));
        }
    }
    out
}

/// Lengthens the delay of each page (`(delay_secs, page)`, as sent) while a handed-back record
/// in it is not due yet. `due_ms` holds the due times of the first records (the handed-back
/// ones, in order); the rest are due now.
pub fn hold_until_due(pages: &mut [(u32, PageMessage)], due_ms: &[u64], now_ms: u64) {
    let mut due = due_ms.iter();
    for (delay, page) in pages {
        for d in due.by_ref().take(page.items.len()) {
            let wait = secs_until(*d, now_ms).min(u64::from(u32::MAX));
            *delay = (*delay).max(wait as u32);
        }
    }
}

/// Whole seconds from `now_ms` until `due_ms` (rounded up: never earlier than due).
fn secs_until(due_ms: u64, now_ms: u64) -> u64 {
    due_ms.saturating_sub(now_ms).div_ceil(1000)
}

/// Handed-back records (`(due_ms, message)`) sorted by due time and grouped by it: one group
/// per due time, earliest first.
pub fn by_due(records: &mut [(u64, QueueMessage)]) -> impl Iterator<Item = &[(u64, QueueMessage)]> {
    crate::sort::sort_by_key(records, |(due, _)| *due);
    records.chunk_by(|a, b| a.0 == b.0)
}

/// Records a tail page hands back (`(due_ms, message)`) as tail pages to send with delays
/// (`(delay_secs, page)`): one page per due time, at most [`PAGE_RECORDS`] records each.
pub fn tail_pages(mut back: Vec<(u64, QueueMessage)>, now_ms: u64) -> Vec<(u32, PageMessage)> {
    let mut pages = Vec::new();
    for group in by_due(&mut back) {
        // Queues delay a message by at most 12 hours; a backoff is far shorter.
        let delay = secs_until(group[0].0, now_ms).min(43_200) as u32;
        for chunk in group.chunks(PAGE_RECORDS) {
            let items = chunk.iter().map(|(_, m)| m.clone()).collect();
            pages.push((delay, PageMessage { items, tail: true }));
        }
    }
    pages
}

/// Grants Backend API calls to a page: the live budget check and the pause.
#[allow(async_fn_in_trait)]
pub trait Spender {
    /// Waits until one call may be sent now, and counts it from now: the caller sends it at
    /// once. False when the page must stop (the batch is paused, or the budget stayed full too
    /// long).
    async fn grant(&self) -> bool;
    /// The page's clock (ms): a record tried again waits `RETRY_PAUSE_MS` on it.
    fn now_ms(&self) -> u64;
    /// Waits `ms` without holding a grant.
    async fn sleep(&self, ms: u64);
}

/// The worker's and the simulation's spender: the pacer's grants over their live window.
impl<W: crate::pacer::LiveWindow> Spender for crate::pacer::Grants<W> {
    async fn grant(&self) -> bool {
        self.acquire(1).await > 0
    }
    fn now_ms(&self) -> u64 {
        self.window().now_ms()
    }
    async fn sleep(&self, ms: u64) {
        self.window().sleep(ms).await
    }
}

/// What a page did: one outcome per record (same order) and the calls it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageResult {
    pub outcomes: Vec<Outcome>,
    pub calls: u32,
    /// Set when Clerk answered `429`: its `Retry-After`, for the batch-wide pause.
    pub rate_limited_secs: Option<u32>,
}

/// A page while its lanes run: what they share.
struct Run<'a, P> {
    spender: &'a P,
    records: &'a [ImportRecord],
    observe: bool,
    calls: Cell<u32>,
    rate_limited_secs: Cell<Option<u32>>,
    /// Why the page stopped early (a 429, a pause, a budget that stayed full).
    stopped: RefCell<Option<Outcome>>,
    outcomes: RefCell<Vec<Option<Outcome>>>,
    /// The users the page's look-ups answered; a record is judged on those known when it
    /// starts.
    candidates: RefCell<Rc<Vec<ClerkUser>>>,
    /// Whether this page looked each record's email up: once done, its candidates are
    /// complete.
    email_looked_up: RefCell<Vec<EmailLookUp>>,
    /// Records waiting for a try (`open[next..]`; tries again queue behind first tries).
    open: RefCell<Vec<Try>>,
    next: Cell<usize>,
    /// Records whose create found their email taken, waiting for one look-up of their emails.
    taken: RefCell<Vec<Try>>,
    /// Records whose create found their email taken while a look-up of it was out.
    held: RefCell<Vec<Try>>,
    tries: Cell<u32>,
    failed: Cell<u32>,
    /// Lanes on a record or a look-up, which may give the others more to do.
    busy: Cell<usize>,
    /// Grants are asked for one lane at a time, in turn: tickets given and the one served.
    tickets: Cell<u64>,
    serving: Cell<u64>,
    /// Bumped, and the lanes waiting on it woken, when a lane finished something or a grant.
    changes: Cell<u64>,
    waiting: RefCell<Vec<Waker>>,
}

/// Where the page is with a record's email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmailLookUp {
    No,
    Underway,
    Done,
}

/// What a lane does next.
enum Work {
    Record(Try),
    /// Look up the emails of these records (their creates found them taken) in one call.
    Emails(Vec<Try>),
    /// The next try is due in this many ms.
    Sleep(u64),
    /// Nothing now, but lanes still busy may add tries.
    WaitForOthers,
    Done,
}

impl<P: Spender> Run<'_, P> {
    /// One call, granted now for this page, or false when the page stopped. Lanes ask in
    /// turn: the page waits for its budget as a whole (a lane that gets no grant means the
    /// budget gave the page nothing for [`crate::pacer::MAX_GRANT_WAIT_MS`]), never lanes
    /// against each other.
    async fn grant(&self) -> bool {
        let ticket = self.tickets.get();
        self.tickets.set(ticket + 1);
        self.until(|| self.serving.get() == ticket).await;
        let going = self.going();
        let granted = going && self.spender.grant().await;
        self.serving.set(ticket + 1);
        self.changed();
        if going && !granted {
            self.stopped.borrow_mut().get_or_insert_with(deferred);
        }
        // Another lane may have stopped the page (a 429) while this one waited: no call then
        // (its grant stays counted, on the safe side).
        if !self.going() {
            return false;
        }
        self.calls.set(self.calls.get() + 1);
        true
    }

    /// Whether the page goes on (nothing stopped it).
    fn going(&self) -> bool {
        self.stopped.borrow().is_none()
    }

    /// Notes an outcome's 429: the page stops, and the batch pauses for its `Retry-After`.
    fn note(&self, outcome: &Outcome) {
        if let Outcome::Retry { after_secs, code } = outcome {
            if code == RATE_LIMITED {
                let secs = after_secs.unwrap_or(1).max(1);
                let longest = self.rate_limited_secs.get().unwrap_or(0).max(secs);
                self.rate_limited_secs.set(Some(longest));
                *self.stopped.borrow_mut() = Some(Outcome::Retry {
                    after_secs: Some(longest),
                    code: RATE_LIMITED.into(),
                });
            }
        }
    }

    /// Waits until `ready` holds, looking again at each change.
    async fn until(&self, ready: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                return Poll::Ready(());
            }
            self.waiting.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    fn changed(&self) {
        self.changes.set(self.changes.get() + 1);
        for waker in self.waiting.take() {
            waker.wake();
        }
    }

    fn next_work(&self) -> Work {
        if !self.going() {
            return Work::Done;
        }
        if !self.taken.borrow().is_empty() {
            return Work::Emails(self.taken.take());
        }
        let open = self.open.borrow();
        let Some(&first) = open.get(self.next.get()) else {
            return if self.busy.get() > 0 {
                Work::WaitForOthers
            } else {
                Work::Done
            };
        };
        // Tries again come after every first try: with the whole page tried once, a Clerk in
        // trouble leaves them to their backoff, outside the page.
        let unhealthy = self.failed.get() * 100 > self.tries.get() * RETRY_WHILE_FAILED_PCT;
        if unhealthy && first.tries > 0 {
            return Work::Done;
        }
        let now = self.spender.now_ms();
        if first.due_ms > now {
            return Work::Sleep(first.due_ms - now);
        }
        self.next.set(self.next.get() + 1);
        Work::Record(first)
    }

    /// One record's try: its calls granted one by one, each just before it is sent.
    async fn try_record<M: ClerkApi, S: Store>(&self, migrator: &Migrator<M, S>, t: Try) {
        // An earlier try's outcome is superseded.
        self.outcomes.borrow_mut()[t.record] = None;
        let candidates = self.candidates.borrow().clone();
        let looked_up = self.email_looked_up.borrow()[t.record] == EmailLookUp::Done;
        let gate = RecordGate {
            run: self,
            refused: Cell::new(false),
        };
        let step = migrator
            .migrate_in_page(&self.records[t.record], &candidates, looked_up, &gate)
            .await;
        if gate.refused.get() {
            // A call it needed was not granted: it ends as the page's stop says.
            self.outcomes.borrow_mut()[t.record] = None;
            return;
        }
        let migration = match step {
            PageMigration::Done(migration) => migration,
            // Its email is looked up while its create was out: judged again on the holders
            // once that look-up is done.
            PageMigration::EmailTaken { .. } => {
                match self.email_looked_up.borrow()[t.record] {
                    EmailLookUp::No => self.taken.borrow_mut().push(t),
                    EmailLookUp::Underway => self.held.borrow_mut().push(t),
                    EmailLookUp::Done => self.settle_taken(vec![t]),
                }
                return;
            }
        };
        self.note(&migration.outcome);
        self.tries.set(self.tries.get() + 1);
        if matches!(migration.outcome, Outcome::Retry { .. }) {
            self.failed.set(self.failed.get() + 1);
        }
        let again = !self.observe && t.tries + 1 < RECORD_TRIES && self.going();
        if again && is_answered_transient(&migration.outcome) {
            self.open.borrow_mut().push(Try {
                tries: t.tries + 1,
                due_ms: self.spender.now_ms() + RETRY_PAUSE_MS,
                ..t
            });
        }
        self.outcomes.borrow_mut()[t.record] = Some(migration.outcome);
    }

    /// Step 3: the taken emails' holders, in one call — with the emails of the records being
    /// tried and not tried yet, which that call takes at no cost: a page of people already in
    /// Clerk pays for its creates refused as taken about once, not per record. The taken
    /// records are tried again next, on the holders; one whose look-up failed ends as it did
    /// (nobody was created).
    async fn look_up_emails<C: ClerkApi>(&self, clerk: &C, taken: Vec<Try>) {
        // The taken ones, those being tried and those not tried yet: every record without an
        // outcome (yet) whose email was not looked up.
        let which: Vec<usize> = {
            let mut looked_up = self.email_looked_up.borrow_mut();
            let outcomes = self.outcomes.borrow();
            let which: Vec<usize> = (0..self.records.len())
                .filter(|&i| {
                    looked_up[i] == EmailLookUp::No
                        && outcomes[i].is_none()
                        && self.records[i].email.is_some()
                })
                .collect();
            for &i in &which {
                looked_up[i] = EmailLookUp::Underway;
            }
            which
        };
        let holders = lookup(self, clerk, &which, By::Email).await;
        let mut candidates = Vec::clone(&self.candidates.borrow());
        candidates.extend(holders);
        *self.candidates.borrow_mut() = Rc::new(candidates);
        let mut looked_up = self.email_looked_up.borrow_mut();
        for &i in &which {
            looked_up[i] = EmailLookUp::Done;
        }
        // With the creates found taken while this look-up was out.
        let mut settled = taken;
        self.held.borrow_mut().retain(|t| {
            let done = looked_up[t.record] == EmailLookUp::Done;
            if done {
                settled.push(*t);
            }
            !done
        });
        drop(looked_up);
        self.settle_taken(settled);
    }

    /// Records whose create found their email taken, their email now looked up: tried again
    /// next, on the holders; one whose look-up failed ends as it did (nobody was created).
    fn settle_taken(&self, taken: Vec<Try>) {
        let outcomes = self.outcomes.borrow();
        let mut open = self.open.borrow_mut();
        let next = self.next.get();
        for t in taken.into_iter().rev() {
            if outcomes[t.record].is_none() {
                open.insert(next, Try { due_ms: 0, ..t });
            }
        }
    }

    /// A lane: one call at a time, from the page's first record waiting to its last.
    async fn lane<M: ClerkApi, S: Store, C: ClerkApi>(&self, migrator: &Migrator<M, S>, clerk: &C) {
        loop {
            let work = self.next_work();
            match work {
                Work::Done => return,
                Work::Sleep(ms) => self.spender.sleep(ms).await,
                Work::WaitForOthers => {
                    let seen = self.changes.get();
                    self.until(|| self.changes.get() != seen).await;
                }
                Work::Record(t) => {
                    self.busy.set(self.busy.get() + 1);
                    self.try_record(migrator, t).await;
                    self.busy.set(self.busy.get() - 1);
                    self.changed();
                }
                Work::Emails(taken) => {
                    self.busy.set(self.busy.get() + 1);
                    self.look_up_emails(clerk, taken).await;
                    self.busy.set(self.busy.get() - 1);
                    self.changed();
                }
            }
        }
    }
}

/// A record's calls, each granted by its page just before it is sent.
struct RecordGate<'r, 'a, P> {
    run: &'r Run<'a, P>,
    /// A call was refused: the page stopped.
    refused: Cell<bool>,
}

impl<P: Spender> CallGate for RecordGate<'_, '_, P> {
    fn admit(&self) -> LocalBoxFuture<'_, bool> {
        Box::pin(async move {
            let granted = self.run.grant().await;
            if !granted {
                self.refused.set(true);
            }
            granted
        })
    }
}

/// A record waiting in its page for a try: how many it had, and when it is due.
#[derive(Debug, Clone, Copy)]
struct Try {
    record: usize,
    tries: u32,
    due_ms: u64,
}

/// A transient error that Clerk answered (a 5xx, or a conflict that settles in a second), which
/// the page tries again after a pause. Not a 429 (it stops the page), not a `Retry-After`
/// longer than a short pause, and not a call that went unanswered (a timeout, a dropped
/// connection): that one may have created the user, and the record's next page finds it with
/// its look-up by external id before any second create.
fn is_answered_transient(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Retry { after_secs, code }
        if !matches!(code.as_str(), RATE_LIMITED | UNANSWERED_TIMEOUT | UNANSWERED_NETWORK)
            && after_secs.unwrap_or(0) <= RETRY_AFTER_IN_PAGE_SECS)
}

/// Codes of calls that went unanswered ([`ClerkError::code`]).
const UNANSWERED_TIMEOUT: &str = "timeout";
const UNANSWERED_NETWORK: &str = "network_error";

fn deferred() -> Outcome {
    Outcome::Retry {
        after_secs: None,
        code: DEFERRED.into(),
    }
}

/// Migrates one page. Never fails: every record gets an outcome, in order.
///
/// `clerk` is the client the page's look-ups use (the one the migrator wraps).
pub async fn migrate_page<M: ClerkApi, S: Store, C: ClerkApi, P: Spender>(
    migrator: &Migrator<M, S>,
    clerk: &C,
    spender: &P,
    records: &[ImportRecord],
) -> PageResult {
    let run = Run {
        spender,
        records,
        observe: migrator.mode() == Mode::Observe,
        calls: Cell::new(0),
        rate_limited_secs: Cell::new(None),
        stopped: RefCell::new(None),
        outcomes: RefCell::new(vec![None; records.len()]),
        candidates: RefCell::default(),
        email_looked_up: RefCell::new(vec![EmailLookUp::No; records.len()]),
        open: RefCell::default(),
        next: Cell::new(0),
        taken: RefCell::default(),
        held: RefCell::default(),
        tries: Cell::new(0),
        failed: Cell::new(0),
        busy: Cell::new(0),
        tickets: Cell::new(0),
        serving: Cell::new(0),
        changes: Cell::new(0),
        waiting: RefCell::default(),
    };
    let all: Vec<usize> = (0..records.len()).collect();

    // 1. Everyone by external id, in one call.
    let found = lookup(&run, clerk, &all, By::ExternalId).await;
    *run.candidates.borrow_mut() = Rc::new(found);

    // 2. Each record: complete, link or refuse on those candidates, or create first — from
    // [`CONNECTIONS_PER_INVOCATION`] lanes, each sending one call at a time and taking the next
    // record as soon as it is free. A record that met a transient error goes to the back of
    // the line, due again after a pause ([`RECORD_TRIES`]). Records whose create found their
    // email taken are looked up by email together, in one call, and settled next.
    let open: Vec<Try> = all
        .iter()
        .filter(|&&i| run.outcomes.borrow()[i].is_none())
        .map(|&i| Try {
            record: i,
            tries: 0,
            due_ms: 0,
        })
        .collect();
    *run.open.borrow_mut() = open;
    join_all((0..CONNECTIONS_PER_INVOCATION).map(|_| run.lane(migrator, clerk))).await;

    let stopped = run.stopped.take().unwrap_or_else(deferred);
    PageResult {
        outcomes: run
            .outcomes
            .take()
            .into_iter()
            .map(|o| o.unwrap_or_else(|| stopped.clone()))
            .collect(),
        calls: run.calls.get(),
        rate_limited_secs: run.rate_limited_secs.get(),
    }
}

/// Which filter a page's look-up uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    ExternalId,
    Email,
}

/// One `GET /v1/users` for the `by` values of records `which`, answering
/// every user listed. A look-up Clerk refuses for good is split in halves until the value it
/// cannot take is alone; that record fails with Clerk's code, the others go on. A transient
/// error leaves its records with a `Retry`; a stop leaves them without an outcome.
async fn lookup<C: ClerkApi, P: Spender>(
    run: &Run<'_, P>,
    clerk: &C,
    which: &[usize],
    by: By,
) -> Vec<ClerkUser> {
    let records = run.records;
    let mut users = Vec::new();
    let mut parts: Vec<Vec<usize>> = Vec::new();
    if !which.is_empty() {
        parts.push(which.to_vec());
    }
    while let Some(part) = parts.pop() {
        let values = part.iter().filter_map(|&i| match by {
            By::ExternalId => Some(records[i].id.as_str()),
            By::Email => records[i].email.as_deref(),
        });
        let q = match by {
            By::ExternalId => UserQuery::by_external_ids(values),
            By::Email => UserQuery::by_emails(values),
        };
        // A look-up is worth a page of records: a transient failure (not a 429) is retried
        // once at once before the page's records wait for their backoff.
        let mut answer = Err(ClerkError::Timeout);
        for attempt in 0..LOOKUP_ATTEMPTS {
            if !run.grant().await {
                return users;
            }
            answer = clerk.find_users(&q).await;
            let transient = matches!(&answer, Err(e)
                if e.is_retryable() && !matches!(e, ClerkError::RateLimited { .. }));
            if transient && attempt + 1 < LOOKUP_ATTEMPTS {
                continue;
            }
            break;
        }
        match answer {
            Ok(found) => users.extend(found),
            Err(e) if !e.is_retryable() && part.len() > 1 => {
                let (a, b) = part.split_at(part.len() / 2);
                parts.push(b.to_vec());
                parts.push(a.to_vec());
            }
            Err(e) => {
                let outcome = lookup_outcome(&e);
                run.note(&outcome);
                let mut outcomes = run.outcomes.borrow_mut();
                for &i in &part {
                    outcomes[i] = Some(outcome.clone());
                }
            }
        }
    }
    users
}

/// A failed look-up as its records' outcome (Clerk's code for a permanent refusal).
fn lookup_outcome(e: &ClerkError) -> Outcome {
    match Outcome::from_error(e) {
        Outcome::Failed { code, message } => Outcome::Failed {
            code,
            message: format!("looking this record up: {message}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
