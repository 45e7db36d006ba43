//! Awaiting a few futures at once, in a small compiled form.
//!
//! `futures::future::join_all` carries two strategies (a plain list, and `FuturesOrdered` with
//! its wake queue and binary heap past 30 futures), compiled again for every future type. The
//! joins here await at most a few dozen KV operations, so [`join_all`] keeps only the plain one:
//! each poll polls the futures not yet finished.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Awaits every future; their outputs in the order given.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut finished = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => finished = false,
                }
            }
        }
        if finished {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Context;

    /// Ready after being polled `polls` times, each time waking its task.
    struct After {
        polls: u32,
        value: u32,
    }

    impl Future for After {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.polls == 0 {
                return Poll::Ready(self.value);
            }
            self.polls -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn outputs_come_in_the_order_given_whatever_order_they_finish_in() {
        let futures = [3, 0, 5, 1].map(|polls| After {
            polls,
            value: polls * 10,
        });
        let outputs = futures::executor::block_on(join_all(futures));
        assert_eq!(outputs, [30, 0, 50, 10]);
        let none: Vec<After> = Vec::new();
        assert!(futures::executor::block_on(join_all(none)).is_empty());
    }
}
