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
//!    pays once for a group of creates refused as taken. A taken phone, username or external
//!    id is resolved by the record's own look-ups, as on the trickle. `observe` creates
//!    nothing: its records nobody holds are looked up by email the same way, in one call.
//!
//! Records run a granted group at a time, concurrently, never faster than the [`Spender`]
//! allows (this consumer's share of the window); every look-up is a call granted like the
//! others.
//!
//! Outcomes are the migrator's ([`Outcome`]): transient errors (429, 5xx, timeouts, dropped
//! connections) are `Retry` — the record stays pending; one Clerk answered (a 5xx) is first
//! tried again at the end of the page ([`RECORD_TRIES`]) — and only Clerk's permanent refusals
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
use super::migrator::{Migrator, Mode, Outcome, PageMigration};
use super::record::ImportRecord;
use super::store::Store;
use crate::clerk_api::{ClerkApi, ClerkError, ClerkUser, UserQuery};
use futures::future::join_all;
use serde::{Deserialize, Serialize};

/// Records per page: `GET /v1/users` takes at most 100 values per filter.
pub const PAGE_RECORDS: usize = crate::pacer::MAX_PAGE_RECORDS as usize;
/// Bytes of records per Queue message, below Queues' 128 KB message limit.
pub const PAGE_BYTES: usize = 100 * 1024;

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
    /// Waits until some of `want` calls may be made now and answers how many (≥ 1), or 0
    /// when the page must stop (the batch is paused, or the budget stayed full too long).
    async fn acquire(&self, want: u32) -> u32;
    /// `calls` were just made (they count in the live window at once).
    fn spent(&self, calls: u32);
    /// `calls` of the last grant were not made (records that needed no call: a user already
    /// complete, a refusal): they leave the live window and return to the pace, so a page of
    /// users already migrated (a redelivery) costs no budget beyond its look-ups.
    fn unused(&self, calls: u32);
    /// The page's clock (ms): a record tried again waits [`RETRY_PAUSE_MS`] on it.
    fn now_ms(&self) -> u64;
    /// Waits `ms` without holding a grant.
    async fn sleep(&self, ms: u64);
}

/// The worker's and the simulation's spender: the pacer's grants over their live window.
impl<W: crate::pacer::LiveWindow> Spender for crate::pacer::Grants<W> {
    async fn acquire(&self, want: u32) -> u32 {
        crate::pacer::Grants::acquire(self, want).await
    }
    fn spent(&self, calls: u32) {
        crate::pacer::Grants::spent(self, calls)
    }
    fn unused(&self, calls: u32) {
        crate::pacer::Grants::unused(self, calls)
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

struct Run<'a, P> {
    spender: &'a P,
    calls: u32,
    rate_limited_secs: Option<u32>,
    /// Why the page stopped early (a 429, a pause, a budget that stayed full).
    stopped: Option<Outcome>,
}

impl<P: Spender> Run<'_, P> {
    fn count(&mut self, calls: u32) {
        self.calls += calls;
        self.spender.spent(calls);
    }

    /// Up to `want` calls, or `None` when the page stopped.
    async fn grant(&mut self, want: u32) -> Option<u32> {
        if self.stopped.is_some() || want == 0 {
            return None;
        }
        match self.spender.acquire(want).await {
            0 => {
                self.stopped = Some(deferred());
                None
            }
            n => Some(n.min(want)),
        }
    }

    /// Notes an outcome's 429: the page stops, and the batch pauses for its `Retry-After`.
    fn note(&mut self, outcome: &Outcome) {
        if let Outcome::Retry { after_secs, code } = outcome {
            if code == RATE_LIMITED {
                let secs = after_secs.unwrap_or(1).max(1);
                self.rate_limited_secs = Some(self.rate_limited_secs.unwrap_or(0).max(secs));
                self.stopped = Some(Outcome::Retry {
                    after_secs: Some(secs),
                    code: RATE_LIMITED.into(),
                });
            }
        }
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
    let mut run = Run {
        spender,
        calls: 0,
        rate_limited_secs: None,
        stopped: None,
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
    let all: Vec<usize> = (0..records.len()).collect();
    let observe = migrator.mode() == Mode::Observe;

    // 1. Everyone by external id, in one call.
    let mut candidates = lookup(
        &mut run,
        clerk,
        records,
        &mut outcomes,
        &all,
        By::ExternalId,
    )
    .await;
    // Records whose email this page looked up: their candidates are complete.
    let mut email_looked_up = vec![false; records.len()];

    // 2. Each record: complete, link or refuse on those candidates, or create first — a granted
    // group at a time, concurrently. A record that met a transient error goes to the back of
    // the line, due again after a pause ([`RECORD_TRIES`]). Records whose create found their
    // email taken are looked up by email together, in one call, and settled next.
    let mut open: Vec<Try> = all
        .iter()
        .filter(|&&i| outcomes[i].is_none())
        .map(|&i| Try {
            record: i,
            tries: 0,
            due_ms: 0,
        })
        .collect();
    let (mut tries, mut failed) = (0u32, 0u32);
    // `open[next..]` waits for a try.
    let mut next = 0;
    loop {
        // Tries again come after every first try (they are queued behind them): with the whole
        // page tried once, a Clerk in trouble leaves them to their backoff, outside the page.
        let unhealthy = failed * 100 > tries * RETRY_WHILE_FAILED_PCT;
        if unhealthy && open.get(next).is_some_and(|t| t.tries > 0) {
            break;
        }
        let Some(first) = open.get(next) else {
            break;
        };
        if !observe {
            let now = spender.now_ms();
            if first.due_ms > now {
                spender.sleep(first.due_ms - now).await;
            }
        }
        let now = spender.now_ms();
        // `observe` only reads: its verdicts cost no call.
        let due = open[next..]
            .iter()
            .take_while(|t| t.due_ms <= now)
            .count()
            .max(1) as u32;
        let granted = if observe {
            Some(due)
        } else {
            run.grant(due).await
        };
        let Some(granted) = granted else {
            break;
        };
        let group: Vec<Try> = open[next..next + granted as usize].to_vec();
        next += group.len();
        let steps = group.iter().map(|t| {
            let looked_up = email_looked_up[t.record];
            migrator.migrate_in_page(&records[t.record], &candidates, looked_up)
        });
        let done = join_all(steps).await;
        // One call was granted per record: those that made none give theirs back. A record that
        // made more counts its extra calls now (after its first), never at the grant's time.
        let unused = done.iter().filter(|m| m.calls() == 0).count() as u32;
        if !observe && unused > 0 {
            spender.unused(unused);
        }
        let now = spender.now_ms();
        let mut newly_taken = Vec::new();
        for (t, step) in group.into_iter().zip(done) {
            run.count(step.calls());
            let migration = match step {
                PageMigration::Done(migration) => migration,
                PageMigration::EmailTaken { .. } => {
                    newly_taken.push(t);
                    continue;
                }
            };
            run.note(&migration.outcome);
            tries += 1;
            if matches!(migration.outcome, Outcome::Retry { .. }) {
                failed += 1;
            }
            let again = !observe && t.tries + 1 < RECORD_TRIES && run.stopped.is_none();
            if again && is_answered_transient(&migration.outcome) {
                open.push(Try {
                    tries: t.tries + 1,
                    due_ms: now + RETRY_PAUSE_MS,
                    ..t
                });
            }
            outcomes[t.record] = Some(migration.outcome);
        }
        if newly_taken.is_empty() || run.stopped.is_some() {
            continue;
        }
        // 3. The taken emails' holders, in one call — with the emails of the records still
        // waiting, which that call takes at no cost: a page of people already in Clerk pays
        // for its creates refused as taken once, not per record.
        let mut which: Vec<usize> = newly_taken.iter().map(|t| t.record).collect();
        for t in &open[next..] {
            if !email_looked_up[t.record] && records[t.record].email.is_some() {
                which.push(t.record);
            }
        }
        for t in &newly_taken {
            // An earlier try's outcome is superseded: a failed look-up writes its own.
            outcomes[t.record] = None;
        }
        let holders = lookup(&mut run, clerk, records, &mut outcomes, &which, By::Email).await;
        candidates.extend(holders);
        for &i in &which {
            email_looked_up[i] = true;
        }
        // Judged next, on the holders, before the records still waiting; one whose look-up
        // failed ends as it did (nobody was created).
        for t in newly_taken.into_iter().rev() {
            if outcomes[t.record].is_none() {
                open.insert(next, Try { due_ms: 0, ..t });
            }
        }
    }

    let stopped = run.stopped.clone().unwrap_or_else(deferred);
    PageResult {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| stopped.clone()))
            .collect(),
        calls: run.calls,
        rate_limited_secs: run.rate_limited_secs,
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
    run: &mut Run<'_, P>,
    clerk: &C,
    records: &[ImportRecord],
    outcomes: &mut [Option<Outcome>],
    which: &[usize],
    by: By,
) -> Vec<ClerkUser> {
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
            if run.grant(1).await.is_none() {
                return users;
            }
            answer = clerk.find_users(&q).await;
            run.count(1);
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
