//! Host tests of a page: look-ups, creates, completions and refusals over the in-memory Clerk,
//! faults and their tries, 429s, redeliveries, a grant for every call and never more calls out
//! than a Worker's connections, and the Queue messages' shape.
//!
//! Here: the shared helpers and the Queue messages' shape; beside it, `binding` (who records are
//! bound to and what it costs), `faults` (tries, 429s, redeliveries, refusals) and `calls`
//! (grants and connections).

use super::*;
use crate::clerk_api::memory::{Fault, MemoryClerk};
use crate::clerk_api::{
    CreateUser, IdentificationStatus, SignInToken, UpdateUser, UpdateUserMetadata,
};
use crate::migration::record::parse_line;
use crate::migration::store::MemoryStore;
use futures::executor::block_on;
use std::cell::Cell;

mod binding;
mod calls;
mod faults;

/// Grants `left` calls (then stops the page, like a pause), on a clock that moves only when
/// the page sleeps.
struct Grants {
    left: Cell<u32>,
    granted: Cell<u32>,
    now: Cell<u64>,
}

impl Grants {
    fn free() -> Self {
        Self::stopping_after(u32::MAX)
    }
    fn stopping_after(grants: u32) -> Self {
        Grants {
            left: Cell::new(grants),
            granted: Cell::new(0),
            now: Cell::new(0),
        }
    }
}

impl Spender for Grants {
    async fn grant(&self) -> bool {
        match self.left.get() {
            0 => false,
            n => {
                self.left.set(n - 1);
                self.granted.set(self.granted.get() + 1);
                true
            }
        }
    }
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
    async fn sleep(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }
}

fn rec(i: usize, verified: bool) -> ImportRecord {
    parse_line(&format!(
        r#"{{"id":"L{i}","email":"u{i}@example.com","email_verified":{verified},"name":"User {i}"}}"#
    ))
    .unwrap()
}

fn page(n: usize) -> Vec<ImportRecord> {
    (0..n).map(|i| rec(i, true)).collect()
}

fn run(clerk: &MemoryClerk, store: &MemoryStore, records: &[ImportRecord]) -> PageResult {
    let migrator = Migrator::new(clerk, store, Mode::Migrate);
    block_on(migrate_page(&migrator, clerk, &Grants::free(), records))
}

#[test]
fn pages_with_handed_back_records_wait_until_they_are_due() {
    let m = |i: usize| QueueMessage {
        import_id: "i".into(),
        record: format!("r{i}"),
        attempts: 1,
    };
    let planned = [0, 0, 30];
    let cut = paginate((0..5).map(m).collect(), &[2, 2, 1]);
    let pages: Vec<(u32, PageMessage)> = cut.into_iter().map(|(i, p)| (planned[i], p)).collect();
    // Two handed-back records: one due 10.2 s from now, one in the past; three fresh ones.
    let mut held = pages.clone();
    hold_until_due(&mut held, &[110_200, 90_000], 100_000);
    let delays: Vec<u32> = held.iter().map(|(d, _)| *d).collect();
    assert_eq!(
        delays,
        vec![11, 0, 30],
        "due later: waits; planned later: keeps its plan"
    );
    let mut fresh = pages.clone();
    hold_until_due(&mut fresh, &[], 100_000);
    assert_eq!(fresh, pages);
}

#[test]
fn a_tail_page_sends_its_retries_as_tail_pages_delayed_by_their_backoff() {
    let m = |i: usize| QueueMessage {
        import_id: "i".into(),
        record: format!("r{i}"),
        attempts: 1,
    };
    let mut back: Vec<(u64, QueueMessage)> = (0..150).map(|i| (105_000, m(i))).collect();
    back.push((100_200, m(150)));
    let pages = tail_pages(back, 100_000);
    let shape: Vec<(u32, usize, bool)> = pages
        .iter()
        .map(|(d, p)| (*d, p.items.len(), p.tail))
        .collect();
    assert_eq!(shape, vec![(1, 1, true), (5, 100, true), (5, 50, true)]);
    // A page that is not a tail page is sent as before: no new field in the message.
    let plain = serde_json::to_string(&PageMessage {
        items: vec![m(0)],
        tail: false,
    })
    .unwrap();
    assert!(!plain.contains("tail"), "{plain}");
    let back: PageMessage = serde_json::from_str(&plain).unwrap();
    assert!(!back.tail);
}

#[test]
fn pages_are_cut_by_records_and_bytes() {
    let msg = |i: usize, len: usize| QueueMessage {
        import_id: "imp".into(),
        record: "x".repeat(len) + &i.to_string(),
        attempts: 0,
    };
    let small: Vec<QueueMessage> = (0..250).map(|i| msg(i, 10)).collect();
    let pages = paginate(small, &[100, 100, 50]);
    assert_eq!(
        pages
            .iter()
            .map(|(i, p)| (*i, p.items.len()))
            .collect::<Vec<_>>(),
        vec![(0, 100), (1, 100), (2, 50)]
    );
    let big: Vec<QueueMessage> = (0..10).map(|i| msg(i, 30 * 1024)).collect();
    let pages = paginate(big, &[10]);
    assert!(pages.iter().all(|(i, p)| *i == 0 && p.items.len() <= 3));
    assert_eq!(pages.iter().map(|(_, p)| p.items.len()).sum::<usize>(), 10);
    let json = serde_json::to_string(&pages[0].1).unwrap();
    assert!(json.len() < 128 * 1024);
}
