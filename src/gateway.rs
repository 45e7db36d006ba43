//! One request, start to end: strip forged identity headers, resolve the identity, answer
//! `/__auth-bridge/*` here, forward everything else to the origin.
//!
//! This is glue: it reads the environment and calls the pure modules. Nothing in it may turn an
//! ordinary request into a 500; any failure on the way degrades to anonymity or a clear 502.

use std::rc::Rc;

use worker::{console_error, console_log, Context, Env, MessageBatch, MessageExt, Request};

use crate::config::Config;
use crate::identity::Identity;
use crate::{proxy, routes};

thread_local! {
    static CONFIG: std::cell::OnceCell<Rc<Config>> = const { std::cell::OnceCell::new() };
}

/// The isolate's configuration, read from the environment once and logged once if incomplete.
pub fn config(env: &Env) -> Rc<Config> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let config = Config::from_lookup(|name| {
                env.var(name)
                    .ok()
                    .map(|v| v.to_string())
                    .or_else(|| env.secret(name).ok().map(|v| v.to_string()))
            });
            for problem in &config.problems {
                console_error!("auth-bridge config: {problem}");
            }
            Rc::new(config)
        })
        .clone()
    })
}

pub async fn handle(req: Request, env: Env, _ctx: Context) -> web_sys::Response {
    let config = config(&env);
    let path = req.path();
    if path.starts_with(routes::PREFIX) {
        return routes::handle(&req, &env, &config).await;
    }
    let identity = Identity::anonymous();
    proxy::forward(req.inner(), &config, &identity).await
}

/// Cron Trigger: the batch pacer.
pub async fn tick(_scheduled_time: f64, env: Env) {
    let _config = config(&env);
    console_log!("auth-bridge: pacer tick");
}

/// Queue consumer for `auth-bridge-import`.
pub async fn consume(batch: MessageBatch<serde_json::Value>, env: Env) {
    let _config = config(&env);
    for message in batch.raw_iter() {
        message.ack();
    }
}
