//! A small async key-value interface with Workers KV semantics, and an in-memory
//! implementation for tests and the simulation.
//!
//! KV is eventually consistent (a write may take ~60 s to be seen elsewhere), has no
//! transactions and no atomic increments. Logic built on [`Store`] therefore never relies on
//! reading its own writes: Clerk decides whether a user exists, and every write here is an
//! idempotent "remember this answer".

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// One key from [`Store::list`], with the small metadata string stored beside it (KV's list
/// metadata, ≤ 1024 bytes), so counts can be taken from listings without reading values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub name: String,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    pub keys: Vec<ListedKey>,
    /// `Some` when more keys follow; pass it back to continue.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutOptions {
    /// Expire after this many seconds (KV's minimum is 60).
    pub ttl_secs: Option<u64>,
    pub metadata: Option<String>,
}

#[allow(async_fn_in_trait)]
pub trait Store {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn put(&self, key: &str, value: &str, opts: PutOptions) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Keys starting with `prefix`, in lexicographic order, at most `limit` per page.
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, StoreError>;
}

impl<T: Store> Store for &T {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        (**self).get(key).await
    }
    async fn put(&self, key: &str, value: &str, opts: PutOptions) -> Result<(), StoreError> {
        (**self).put(key, value, opts).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, StoreError> {
        (**self).list(prefix, cursor, limit).await
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: String,
    metadata: Option<String>,
    expires_at_ms: Option<u64>,
}

/// In-memory [`Store`] with an explicit clock (for TTLs) and optional injected failures.
/// Reads see writes immediately, which is *kinder* than KV; tests that care about staleness
/// should use [`MemoryStore::stale_reads`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RefCell<BTreeMap<String, Entry>>,
    now_ms: RefCell<u64>,
    fail_writes: RefCell<bool>,
    stale_reads: RefCell<bool>,
    writes: RefCell<u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set_now(&self, now_ms: u64) {
        *self.now_ms.borrow_mut() = now_ms;
    }
    /// Every write fails while set (to test that failures surface).
    pub fn fail_writes(&self, fail: bool) {
        *self.fail_writes.borrow_mut() = fail;
    }
    /// Every `get` answers "not found" while set: the worst case of eventual consistency.
    pub fn stale_reads(&self, stale: bool) {
        *self.stale_reads.borrow_mut() = stale;
    }
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of successful writes and deletes so far.
    pub fn write_count(&self) -> u64 {
        *self.writes.borrow()
    }
    /// Synchronous read for assertions.
    pub fn peek(&self, key: &str) -> Option<String> {
        self.live(key)
    }

    fn live(&self, key: &str) -> Option<String> {
        let now = *self.now_ms.borrow();
        self.entries
            .borrow()
            .get(key)
            .filter(|e| e.expires_at_ms.is_none_or(|t| t > now))
            .map(|e| e.value.clone())
    }

    fn check_write(&self) -> Result<(), StoreError> {
        if *self.fail_writes.borrow() {
            return Err(StoreError("injected write failure".into()));
        }
        *self.writes.borrow_mut() += 1;
        Ok(())
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        if *self.stale_reads.borrow() {
            return Ok(None);
        }
        Ok(self.live(key))
    }

    async fn put(&self, key: &str, value: &str, opts: PutOptions) -> Result<(), StoreError> {
        self.check_write()?;
        let now = *self.now_ms.borrow();
        self.entries.borrow_mut().insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                metadata: opts.metadata,
                expires_at_ms: opts.ttl_secs.map(|s| now + s * 1000),
            },
        );
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check_write()?;
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, StoreError> {
        let now = *self.now_ms.borrow();
        let entries = self.entries.borrow();
        // The cursor is the last key returned; KV's is opaque, callers only pass it back.
        let start = cursor.unwrap_or(prefix).to_owned();
        let mut keys = Vec::new();
        let mut more = false;
        for (k, e) in entries.range(start..) {
            if !k.starts_with(prefix) {
                break;
            }
            if Some(k.as_str()) == cursor || e.expires_at_ms.is_some_and(|t| t <= now) {
                continue;
            }
            if keys.len() == limit.max(1) as usize {
                more = true;
                break;
            }
            keys.push(ListedKey {
                name: k.clone(),
                metadata: e.metadata.clone(),
            });
        }
        let cursor = if more {
            keys.last().map(|k| k.name.clone())
        } else {
            None
        };
        Ok(ListPage { keys, cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn list_pages_through_prefix_with_metadata() {
        let s = MemoryStore::new();
        block_on(async {
            for i in 0..5 {
                let opts = PutOptions {
                    metadata: Some(format!("m{i}")),
                    ..PutOptions::default()
                };
                s.put(&format!("a:{i}"), "v", opts).await.unwrap();
            }
            s.put("b:0", "v", PutOptions::default()).await.unwrap();
            let p1 = s.list("a:", None, 2).await.unwrap();
            assert_eq!(p1.keys.len(), 2);
            let p2 = s.list("a:", p1.cursor.as_deref(), 2).await.unwrap();
            let p3 = s.list("a:", p2.cursor.as_deref(), 2).await.unwrap();
            assert_eq!(p3.keys.len(), 1);
            assert!(p3.cursor.is_none());
            assert_eq!(p3.keys[0].name, "a:4");
            assert_eq!(p3.keys[0].metadata.as_deref(), Some("m4"));
        });
    }

    #[test]
    fn ttl_and_injected_failures() {
        let s = MemoryStore::new();
        block_on(async {
            let opts = PutOptions {
                ttl_secs: Some(60),
                ..PutOptions::default()
            };
            s.put("k", "v", opts).await.unwrap();
            s.set_now(59_999);
            assert_eq!(s.get("k").await.unwrap().as_deref(), Some("v"));
            s.set_now(60_000);
            assert_eq!(s.get("k").await.unwrap(), None);
            s.fail_writes(true);
            assert!(s.put("k", "v", PutOptions::default()).await.is_err());
        });
    }
}
