//! auth-bridge: a Cloudflare Worker that sits in front of an application while it moves its
//! users from NextAuth / Auth.js to Clerk.
//!
//! The protocol logic (cookies, token verification, the migration state machine, the pacer) is
//! plain Rust that knows nothing of the Workers runtime and is tested on the host. The modules
//! that touch `worker::` (entry points, KV, Queue, Fetch) are thin glue around it.

pub mod batch;
pub mod budget;
pub mod capped_body;
pub mod clerk_api;
pub mod clock;
pub mod config;
pub mod convergence;
pub mod cookies;
pub mod fast_path;
pub mod handshake;
pub mod identity;
pub mod inject;
pub mod json;
pub mod kv;
pub mod migration;
pub mod outbound;
pub mod pacer;
pub mod packed_headers;
pub mod phase;
pub mod proxy;
pub mod readiness;
pub mod respond;
pub mod routes;
pub mod sort;
pub mod via;

mod entry;
pub mod gateway;
pub mod isolate;
pub mod join;
