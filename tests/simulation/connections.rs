//! A queue consumer's open connections: a Worker invocation's calls beyond
//! [`WORKER_CONNECTIONS`] wait for one of them to be answered.

use super::*;

/// One invocation's connections: at most [`WORKER_CONNECTIONS`] calls wait for their answers at
/// once; a further call waits, in order, for one of them to be answered.
#[derive(Default)]
pub(super) struct Connections {
    pub(super) open: Cell<usize>,
    pub(super) waiting: RefCell<VecDeque<Rc<Handoff>>>,
    /// The most calls waiting for a connection at once, and their time waited in all (ms).
    pub(super) most_waiting: Cell<usize>,
    pub(super) waited_ms: Cell<u64>,
}

/// A connection handed from a call answered to the next call waiting.
#[derive(Default)]
pub(super) struct Handoff {
    pub(super) given: Cell<bool>,
    pub(super) waker: RefCell<Option<Waker>>,
}

/// An open connection, closed (or handed on) when dropped.
pub(super) struct Open<'a>(&'a Connections);

impl Connections {
    pub(super) async fn open(&self, clock: &Clock) -> Open<'_> {
        if self.open.get() < WORKER_CONNECTIONS && self.waiting.borrow().is_empty() {
            self.open.set(self.open.get() + 1);
            return Open(self);
        }
        let since = clock.now();
        let handoff = Rc::new(Handoff::default());
        self.waiting.borrow_mut().push_back(handoff.clone());
        let waiting = self.waiting.borrow().len();
        self.most_waiting.set(self.most_waiting.get().max(waiting));
        std::future::poll_fn(|cx| {
            if handoff.given.get() {
                return Poll::Ready(());
            }
            *handoff.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        self.waited_ms
            .set(self.waited_ms.get() + clock.now() - since);
        Open(self)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        let next = self.0.waiting.borrow_mut().pop_front();
        match next {
            // The connection goes to the next call waiting: as many stay open.
            Some(handoff) => {
                handoff.given.set(true);
                if let Some(waker) = handoff.waker.take() {
                    waker.wake();
                }
            }
            None => self.0.open.set(self.0.open.get() - 1),
        }
    }
}
