//! The migration core: import records, the find-or-link-or-create [`Migrator`] of the trickle,
//! the batch's pages ([`page`], the same binding rules over one look-up per page), and the
//! ledger of what has been done — all runtime-free, over the
//! [`ClerkApi`](crate::clerk_api::ClerkApi) and [`Store`] traits.
//!
//! # KV key layout (namespace `AUTH_BRIDGE_KV`)
//!
//! | key | value | written by |
//! |---|---|---|
//! | `map:l2c:{legacy id}` | Clerk user id | migrator, after any success |
//! | `map:c2l:{clerk id}` | legacy id (read by the identity layer for `x-auth-user-id`) | migrator |
//! | `imp:{import id}` | [`ledger::ImportMeta`] (accepted count, bucket count) | admin import, last |
//! | `rec:{import id}:{bucket}` | NDJSON of the import's records hashed to that bucket | admin import |
//! | `st:{import id}:{legacy id}` | [`ledger::StateRecord`]; list metadata = `migrated`/`skipped`/`failed` | queue consumer |
//! | `cursor:backlog` | [`ledger::BacklogCursor`] | cron (single writer) |
//! | `rq:{due}-{nonce}` | NDJSON of [`ledger::QueueMessage`]s handed back to the backlog | consumer, cron, admin |
//! | `warn:{legacy id}:{code}` | [`ledger::WarningRecord`] (migrated with something left out) | migrator |
//!
//! Import ids sort by time ([`ledger::new_import_id`]). A record with no `st:` key is pending,
//! so counts reconcile by construction: `pending = accepted − migrated − skipped − failed`,
//! recomputed from listings ([`ledger::tally`]); a redelivered message rewrites the same key.
//! Records hold password digests: they are read by the consumer and the trickle, never logged.

mod counted;
pub mod kv;
pub mod ledger;
pub mod migrator;
pub mod outcome;
pub mod page;
pub mod proof;
pub mod record;
pub mod store;
pub mod verdict;

pub use migrator::{Migration, MigrationWarning, Migrator, Mode, Outcome, TrickleUser};
pub use record::{parse_line, parse_ndjson, ImportRecord, LineError};
pub use store::{ListPage, ListedKey, MemoryStore, PutOptions, Store, StoreError};
