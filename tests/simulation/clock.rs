//! A virtual clock, its timers, and the single-threaded executor that runs the import on it.

use super::*;

#[derive(Default)]
pub(super) struct Clock {
    pub(super) now: Cell<u64>,
    pub(super) seq: Cell<u64>,
    pub(super) timers: RefCell<BTreeMap<(u64, u64), Waker>>,
}

impl Clock {
    pub(super) fn now(&self) -> u64 {
        self.now.get()
    }
    pub(super) fn sleep(self: &Rc<Self>, ms: u64) -> Sleep {
        Sleep {
            clock: self.clone(),
            at: self.now() + ms,
            key: None,
        }
    }
    /// Moves time to the next timer and wakes every task due then; false when none is left.
    pub(super) fn advance(&self) -> bool {
        let Some((&(at, _), _)) = self.timers.borrow().iter().next() else {
            return false;
        };
        self.now.set(self.now.get().max(at));
        let due: Vec<(u64, u64)> = self
            .timers
            .borrow()
            .range(..(at + 1, 0))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(w) = self.timers.borrow_mut().remove(&key) {
                w.wake();
            }
        }
        true
    }
}

pub(super) struct Sleep {
    pub(super) clock: Rc<Clock>,
    pub(super) at: u64,
    pub(super) key: Option<(u64, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.at {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let seq = self.clock.seq.get() + 1;
                self.clock.seq.set(seq);
                (self.at, seq)
            }
        };
        self.key = Some(key);
        self.clock
            .timers
            .borrow_mut()
            .insert(key, cx.waker().clone());
        Poll::Pending
    }
}

pub(super) struct Woken(AtomicBool);

impl ArcWake for Woken {
    fn wake_by_ref(arc: &Arc<Self>) {
        arc.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `fut` to completion on the virtual clock: polls it while something woke it, and when
/// every task waits, moves time to the next timer. `None` if it stalls (no timer left).
pub(super) fn run_virtual<F: Future>(fut: F, clock: &Clock) -> Option<F::Output> {
    let woken = Arc::new(Woken(AtomicBool::new(true)));
    let waker = futures::task::waker(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if woken.0.swap(false, Ordering::SeqCst) {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return Some(v);
            }
            continue;
        }
        if !clock.advance() {
            return None;
        }
    }
}
