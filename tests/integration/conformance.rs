//! One conformance suite for every `BlobStore` adapter.

use std::sync::Arc;

use bytes::Bytes;
use rendition_pipeline::store::{BlobStore, PutOptions, PutOutcome, StoreError, IMMUTABLE};

fn opts(ct: &str) -> PutOptions {
    PutOptions {
        content_type: Some(ct.into()),
        cache_control: Some(IMMUTABLE.into()),
        if_absent: false,
    }
}

/// Runs every check against `store`, using only keys under `base` (e.g. a fresh prefix).
pub async fn suite(store: Arc<dyn BlobStore>, base: &str) {
    let k = |s: &str| format!("{base}{s}");

    // Missing objects.
    assert!(store.head(&k("missing.jpg")).await.unwrap().is_none());
    assert!(matches!(
        store.get(&k("missing.jpg"), 1 << 20).await,
        Err(StoreError::NotFound { .. })
    ));

    // Round trip with metadata.
    let body = Bytes::from_static(b"\xFF\xD8\xFFfake jpeg body");
    let out = store
        .put(&k("a/one.jpg"), body.clone(), opts("image/jpeg"))
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Written);
    let got = store.get(&k("a/one.jpg"), 1 << 20).await.unwrap();
    assert_eq!(got.body, body);
    assert_eq!(got.meta.size, body.len() as u64);
    assert_eq!(got.meta.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(got.meta.cache_control.as_deref(), Some(IMMUTABLE));
    let head = store.head(&k("a/one.jpg")).await.unwrap().unwrap();
    assert_eq!(head.etag, got.meta.etag, "head and get agree on the ETag");
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.content_type.as_deref(), Some("image/jpeg"));

    // Byte limit.
    assert!(matches!(
        store.get(&k("a/one.jpg"), 4).await,
        Err(StoreError::TooLarge { limit: 4, .. })
    ));

    // Only-if-absent keeps the first body.
    let mut absent = opts("image/jpeg");
    absent.if_absent = true;
    let second = store
        .put(
            &k("a/one.jpg"),
            Bytes::from_static(b"other"),
            absent.clone(),
        )
        .await
        .unwrap();
    assert_eq!(second, PutOutcome::AlreadyExists);
    assert_eq!(
        store.get(&k("a/one.jpg"), 1 << 20).await.unwrap().body,
        body
    );

    // Overwrite changes the ETag; the same bytes give the same ETag.
    store
        .put(
            &k("a/one.jpg"),
            Bytes::from_static(b"v2"),
            opts("image/jpeg"),
        )
        .await
        .unwrap();
    let v2 = store.head(&k("a/one.jpg")).await.unwrap().unwrap();
    assert_ne!(v2.etag, head.etag);
    store
        .put(
            &k("a/same.jpg"),
            Bytes::from_static(b"v2"),
            opts("image/jpeg"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.head(&k("a/same.jpg")).await.unwrap().unwrap().etag,
        v2.etag
    );

    // Concurrent only-if-absent puts: exactly one wins.
    let racers = (0..8).map(|i| {
        let store = Arc::clone(&store);
        let key = k("race.webp");
        let absent = absent.clone();
        async move {
            store
                .put(&key, Bytes::from(format!("racer {i}")), absent)
                .await
                .unwrap()
        }
    });
    let results = futures::future::join_all(racers).await;
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == PutOutcome::Written)
            .count(),
        1,
        "{results:?}"
    );

    // Listing: sorted, by prefix, nothing outside it.
    store
        .put(&k("b/two.png"), Bytes::from_static(b"2"), opts("image/png"))
        .await
        .unwrap();
    store
        .put(&k("ab.txt"), Bytes::from_static(b"3"), opts("text/plain"))
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list(&k("a/"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, vec![k("a/one.jpg"), k("a/same.jpg")]);
    let listed: Vec<String> = store
        .list(&k("a"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, vec![k("a/one.jpg"), k("a/same.jpg"), k("ab.txt")]);
    let all = store.list(base).await.unwrap();
    assert_eq!(all.len(), 5, "{all:?}");

    // Delete is idempotent.
    store.delete(&k("a/one.jpg")).await.unwrap();
    store.delete(&k("a/one.jpg")).await.unwrap();
    assert!(store.head(&k("a/one.jpg")).await.unwrap().is_none());

    // Hostile keys never reach the backend.
    for bad in [
        "../escape.jpg",
        "/abs.jpg",
        "a/../../b",
        "nul\0.jpg",
        "a//b",
    ] {
        let key = format!("{base}{bad}");
        assert!(
            matches!(
                store
                    .put(&key, Bytes::from_static(b"x"), opts("image/jpeg"))
                    .await,
                Err(StoreError::InvalidKey { .. })
            ),
            "{key:?}"
        );
    }
}

#[tokio::test]
async fn filesystem_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = rendition_pipeline::store::FsStore::new(dir.path().join("bucket")).unwrap();
    suite(Arc::new(store.clone()), "conformance/").await;
    // Nothing was written outside the root, and no temporary files are left behind.
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("bucket")]);
    let leftovers = walk(store.root())
        .into_iter()
        .filter(|p| p.contains(".rendition-tmp-"))
        .count();
    assert_eq!(leftovers, 0);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// The cache in front of a store is a store too: the whole suite, with every key cached
/// (prefix "") and a budget small enough that entries are evicted during it.
#[tokio::test]
async fn cached_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let inner = rendition_pipeline::store::FsStore::new(dir.path().join("bucket")).unwrap();
    let cached = rendition_pipeline::store::CachedStore::new(Arc::new(inner), "", 64 * 1024);
    suite(Arc::new(cached), "conformance/").await;
}

/// What the cache adds: a replaced object is never served from the cache, and an object
/// over the caller's byte limit is refused even when it is cached.
#[tokio::test]
async fn cached_store_never_serves_stale_or_oversized_bytes() {
    use rendition_pipeline::store::{CachedStore, FsStore};
    let dir = tempfile::tempdir().unwrap();
    let inner = FsStore::new(dir.path().join("bucket")).unwrap();
    let cached = CachedStore::new(Arc::new(inner.clone()), "originals/", 1 << 20);
    let key = "originals/a.jpg";
    let put = |body: &'static [u8]| {
        let inner = inner.clone();
        async move {
            inner
                .put(key, Bytes::from_static(body), PutOptions::default())
                .await
                .unwrap();
        }
    };
    put(b"first version").await;
    assert_eq!(
        &cached.get(key, 1 << 20).await.unwrap().body[..],
        b"first version"
    );
    // Replaced behind the cache's back (another writer): the next read sees it.
    put(b"second, longer version").await;
    assert_eq!(
        &cached.get(key, 1 << 20).await.unwrap().body[..],
        b"second, longer version"
    );
    assert!(matches!(
        cached.get(key, 4).await,
        Err(StoreError::TooLarge { .. })
    ));
}
