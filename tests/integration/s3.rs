//! The S3 adapter against a real S3 API server (moto on loopback, started by
//! `infra/local/services.sh up`, found through `harness::services`). Every test uses its
//! own fresh bucket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use bytes::Bytes;
use futures::StreamExt;
use rendition_aws::s3::S3Store;
use rendition_pipeline::store::{BlobStore, PutOptions, PutOutcome, StoreError, IMMUTABLE};

use crate::conformance;
use crate::harness::{free_port, services, unique};

/// A client for moto (a 30 s operation timeout, three attempts) and a fresh bucket.
async fn fresh_bucket() -> (Client, String) {
    let services = services().await;
    let client = services.s3_at(&services.s3_endpoint, Duration::from_secs(30));
    let bucket = unique("rendition-test");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    (client, bucket)
}

fn opts(content_type: &str) -> PutOptions {
    PutOptions {
        content_type: Some(content_type.into()),
        cache_control: Some(IMMUTABLE.into()),
        if_absent: false,
    }
}

#[tokio::test]
async fn s3_store_conforms() {
    let (client, bucket) = fresh_bucket().await;
    let store = S3Store::new(client, bucket);
    conformance::suite(Arc::new(store), "conformance/").await;
}

#[tokio::test]
async fn s3_headers_reach_the_object() {
    let (client, bucket) = fresh_bucket().await;
    let store = S3Store::new(client.clone(), bucket.clone());
    let key = "derived/abc/w=320,fm=webp.webp";
    let out = store
        .put(key, Bytes::from_static(b"RIFF....WEBP"), opts("image/webp"))
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Written);
    let raw = client
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.content_type(), Some("image/webp"));
    assert_eq!(raw.cache_control(), Some(IMMUTABLE));
    let etag = raw.e_tag().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let head = store.head(key).await.unwrap().unwrap();
    assert_eq!(head.etag, etag, "the ETag is kept as S3 returns it");
    assert_eq!(head.cache_control.as_deref(), Some(IMMUTABLE));
}

#[tokio::test]
async fn s3_unreachable_server_is_unavailable() {
    let port = free_port();
    let client = services()
        .await
        .s3_at(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2));
    let store = S3Store::new(client, "nowhere".into());
    let started = Instant::now();
    let results = [
        store.get("a/b.jpg", 1024).await.err(),
        store.head("a/b.jpg").await.err(),
        store
            .put("a/b.jpg", Bytes::from_static(b"x"), opts("image/jpeg"))
            .await
            .err(),
    ];
    for err in results {
        let err = err.expect("nothing listens there");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.is_retryable());
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn s3_get_refuses_objects_over_the_limit() {
    let (client, bucket) = fresh_bucket().await;
    let store = S3Store::new(client, bucket);
    let big = Bytes::from(vec![7u8; 512 * 1024]);
    store
        .put("originals/big.jpg", big.clone(), opts("image/jpeg"))
        .await
        .unwrap();
    match store.get("originals/big.jpg", 1000).await {
        Err(StoreError::TooLarge { key, limit }) => {
            assert_eq!((key.as_str(), limit), ("originals/big.jpg", 1000));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Exactly at the limit is fine.
    let got = store
        .get("originals/big.jpg", big.len() as u64)
        .await
        .unwrap();
    assert_eq!(got.body, big);
    assert_eq!(got.meta.size, big.len() as u64);
}

#[tokio::test]
async fn s3_list_follows_continuation_tokens() {
    let (client, bucket) = fresh_bucket().await;
    let store = Arc::new(S3Store::new(client, bucket));
    // More than one page (S3 returns at most 1000 keys per ListObjectsV2 call).
    let keys: Vec<String> = (0..1003).map(|i| format!("many/{i:05}.png")).collect();
    let puts = futures::stream::iter(keys.clone())
        .map(|key| {
            let store = Arc::clone(&store);
            async move {
                store
                    .put(&key, Bytes::from_static(b"p"), opts("image/png"))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(puts.len(), keys.len());
    store
        .put("other/x.png", Bytes::from_static(b"o"), opts("image/png"))
        .await
        .unwrap();
    let listed = store.list("many/").await.unwrap();
    let listed_keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        listed_keys,
        keys.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(listed
        .iter()
        .all(|m| m.size == 1 && m.etag.starts_with('"') && m.content_type.is_none()));
    assert_eq!(store.list("").await.unwrap().len(), keys.len() + 1);
}
