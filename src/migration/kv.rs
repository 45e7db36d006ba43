//! [`Store`] over Workers KV (glue). KV is eventually consistent (about 60 s across locations):
//! the migration logic never relies on reading its own writes.

use worker::kv::KvStore;

use super::store::{ListPage, ListedKey, PutOptions, Store, StoreError};

/// KV's shortest allowed expiration TTL.
const MIN_TTL_SECS: u64 = 60;

pub struct KvLedgerStore {
    kv: KvStore,
}

impl KvLedgerStore {
    pub fn new(kv: KvStore) -> KvLedgerStore {
        KvLedgerStore { kv }
    }
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl Store for KvLedgerStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.kv.get(key).text().await.map_err(store_error)
    }

    async fn put(&self, key: &str, value: &str, opts: PutOptions) -> Result<(), StoreError> {
        let mut put = crate::kv::put(&self.kv, key, value).map_err(store_error)?;
        if let Some(ttl) = opts.ttl_secs {
            put = put.expiration_ttl(ttl.max(MIN_TTL_SECS));
        }
        if let Some(metadata) = opts.metadata {
            put = put.metadata(metadata).map_err(store_error)?;
        }
        put.execute().await.map_err(store_error)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv.delete(key).await.map_err(store_error)
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, StoreError> {
        let mut list = self
            .kv
            .list()
            .prefix(prefix.to_string())
            .limit(u64::from(limit.clamp(1, 1000)));
        if let Some(cursor) = cursor {
            list = list.cursor(cursor.to_string());
        }
        let answer = list.execute().await.map_err(store_error)?;
        let keys = answer
            .keys
            .into_iter()
            .map(|key| ListedKey {
                name: key.name,
                metadata: key.metadata.and_then(|m| match m {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                }),
            })
            .collect();
        let cursor = if answer.list_complete {
            None
        } else {
            answer.cursor.filter(|c| !c.is_empty())
        };
        Ok(ListPage { keys, cursor })
    }
}
