//! The worker's entry points. They only dispatch: each event goes to the module that owns it.

use worker::{event, Context, Env, MessageBatch, Request, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    Ok(crate::gateway::handle(req, env, ctx).await)
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    crate::gateway::tick(event.schedule(), env).await;
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    // Never return Err: that fails the whole batch at once. Each message is acked or retried.
    crate::gateway::consume(batch, env).await;
    Ok(())
}
