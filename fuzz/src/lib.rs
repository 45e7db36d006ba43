//! Fuzz harnesses for auth-bridge's parsers, one module per target.
//!
//! Each `run(data)` feeds the bytes to the parsers and asserts cheap invariants; a panic is a
//! finding. The modules use only crates auth-bridge itself depends on, so
//! `tests/fuzz_regressions.rs` includes the same files and replays seeds and findings on stable.

pub mod common;

pub mod clerk_errors;
pub mod clerk_jws;
pub mod clerk_users;
pub mod config;
pub mod cookies;
pub mod import_line;
pub mod nextauth_claims;
pub mod nextauth_jwe;
