//! A bounded in-memory cache of whole objects in front of another store, for sources read
//! again and again (several variants of one source requested on demand).
//!
//! Every `get` still asks the backend for the object's current ETag (a HEAD), so a
//! replaced object is never served stale; only the body transfer is saved. Entries are
//! evicted least-recently-used once the cached bytes exceed the budget.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobStore, Object, ObjectMeta, PutOptions, PutOutcome, StoreError};

pub struct CachedStore {
    inner: Arc<dyn BlobStore>,
    prefix: String,
    budget: u64,
    entries: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// Most recently used last.
    order: VecDeque<Object>,
    bytes: u64,
}

impl CachedStore {
    /// Caches objects under `prefix`, at most `budget` bytes in all.
    pub fn new(inner: Arc<dyn BlobStore>, prefix: impl Into<String>, budget: u64) -> CachedStore {
        CachedStore {
            inner,
            prefix: prefix.into(),
            budget,
            entries: Mutex::new(Lru::default()),
        }
    }

    fn lookup(&self, meta: &ObjectMeta) -> Option<Object> {
        let mut lru = self.entries.lock().expect("cache lock");
        let pos = lru
            .order
            .iter()
            .position(|o| o.meta.key == meta.key && o.meta.etag == meta.etag)?;
        let hit = lru.order.remove(pos).expect("position is valid");
        lru.order.push_back(hit.clone());
        Some(hit)
    }

    fn insert(&self, obj: &Object) {
        let size = obj.body.len() as u64;
        if size > self.budget {
            return;
        }
        let mut lru = self.entries.lock().expect("cache lock");
        if let Some(pos) = lru.order.iter().position(|o| o.meta.key == obj.meta.key) {
            let old = lru.order.remove(pos).expect("position is valid");
            lru.bytes -= old.body.len() as u64;
        }
        while lru.bytes + size > self.budget {
            let Some(evicted) = lru.order.pop_front() else {
                break;
            };
            lru.bytes -= evicted.body.len() as u64;
        }
        lru.bytes += size;
        lru.order.push_back(obj.clone());
    }

    /// Bytes held now.
    pub fn cached_bytes(&self) -> u64 {
        self.entries.lock().expect("cache lock").bytes
    }
}

#[async_trait]
impl BlobStore for CachedStore {
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        if !key.starts_with(&self.prefix) {
            return self.inner.get(key, max_bytes).await;
        }
        let meta = self
            .inner
            .head(key)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_string(),
            })?;
        if meta.size > max_bytes {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                limit: max_bytes,
            });
        }
        if let Some(hit) = self.lookup(&meta) {
            return Ok(hit);
        }
        let obj = self.inner.get(key, max_bytes).await?;
        self.insert(&obj);
        Ok(obj)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        opts: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        self.inner.put(key, body, opts).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
}
