//! The worker's entry points. They only dispatch: each event goes to the module that owns it.
//!
//! `fetch` is exported by hand rather than through `#[event(fetch)]`: it takes the runtime's
//! `Request` as it is (no `worker::Request` conversion, which reads the method, URL, headers and
//! `cf` across the JS boundary on every request) and polls the handler once in place. A request
//! that needs nothing asynchronous before the origin (most of them) is then answered without the
//! future-to-promise machinery: the origin's pending response (or the answer made here) goes
//! straight back to the runtime, which takes a response or a promise of one alike.
//! Only a request that really waits (a Clerk signature check, a KV read) is driven as a promise.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};

use wasm_bindgen::prelude::wasm_bindgen;
use worker::{event, Env, MessageBatch, Result, ScheduleContext, ScheduledEvent};

#[wasm_bindgen]
pub fn fetch(
    req: web_sys::Request,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> wasm_bindgen::JsValue {
    let ctx = worker::Context::new(ctx);
    let mut reply = Box::pin(crate::gateway::handle(req, env, ctx));
    let forwarder = Arc::new(ForwardingWaker::default());
    let first = reply
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&Waker::from(
            forwarder.clone(),
        )));
    match first {
        Poll::Ready(reply) => reply.into_js(),
        Poll::Pending => wasm_bindgen_futures::future_to_promise(async move {
            let reply = std::future::poll_fn(|cx| {
                forwarder.forward_to(cx.waker());
                reply.as_mut().poll(cx)
            })
            .await;
            // Resolving with the origin's promise adopts it: nothing more to await here.
            Ok(reply.into_js())
        })
        .into(),
    }
}

/// The waker of the in-place first poll. Some futures keep the waker of their first poll for
/// good (`worker::Delay` does), so that waker must reach the task that drives the request
/// afterwards: it forwards every wake to the task's current waker.
#[derive(Default)]
struct ForwardingWaker(Mutex<Option<Waker>>);

impl ForwardingWaker {
    fn forward_to(&self, waker: &Waker) {
        if let Ok(mut current) = self.0.lock() {
            if !current.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *current = Some(waker.clone());
            }
        }
    }
}

impl Wake for ForwardingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Before the task exists nobody needs waking: it polls the request once when it starts.
        let current = self.0.lock().ok().and_then(|w| w.clone());
        if let Some(waker) = current {
            waker.wake();
        }
    }
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    crate::gateway::tick(event.schedule(), env).await;
}

#[event(queue)]
async fn queue(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    _ctx: worker::Context,
) -> Result<()> {
    // Never return Err: that fails the whole batch at once. Each message is acked or retried.
    crate::gateway::consume(batch, env).await;
    Ok(())
}
