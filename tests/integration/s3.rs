//! The S3 adapter against a real S3 API server (moto on loopback, started by
//! `infra/local/services.sh up`). Every test uses its own fresh bucket.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::Client;
use bytes::Bytes;
use futures::StreamExt;
use rendition_core::store::{BlobStore, PutOptions, PutOutcome, S3Store, StoreError, IMMUTABLE};

use crate::conformance;
use crate::harness::repo_root;

/// Where moto listens and the credentials to use with it.
#[derive(Debug, Clone)]
pub struct MotoEnv {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

/// Starts (or reuses) moto once per test process. The env file it names is parsed here;
/// the process environment is left alone, since other tests run in parallel.
pub async fn moto() -> MotoEnv {
    static MOTO: OnceLock<MotoEnv> = OnceLock::new();
    tokio::task::spawn_blocking(|| MOTO.get_or_init(start_moto).clone())
        .await
        .expect("moto start-up task")
}

fn start_moto() -> MotoEnv {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("infra/local/services.sh"))
        .arg("up")
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("run infra/local/services.sh up");
    assert!(
        out.status.success(),
        "infra/local/services.sh up failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    let path = stdout
        .lines()
        .last()
        .expect("services.sh up prints the env file")
        .trim();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .collect();
    let var = |k: &str| {
        vars.get(k)
            .unwrap_or_else(|| panic!("{path} has no {k}"))
            .to_string()
    };
    MotoEnv {
        endpoint: var("RENDITION_TEST_S3_ENDPOINT"),
        access_key_id: var("AWS_ACCESS_KEY_ID"),
        secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
        region: var("AWS_REGION"),
    }
}

/// An SDK client for `endpoint`, built explicitly (no environment, no profile files).
fn client_for(env: &MotoEnv, endpoint: &str, timeout: Duration) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env.region.clone()))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            &env.access_key_id,
            &env.secret_access_key,
            None,
            None,
            "moto-env-file",
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(1)))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .build();
    Client::from_conf(conf)
}

/// A client for moto and a fresh bucket of its own.
async fn fresh_bucket() -> (Client, String) {
    let env = moto().await;
    let client = client_for(&env, &env.endpoint, Duration::from_secs(30));
    let bucket = format!("rendition-test-{}", uuid::Uuid::new_v4());
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
    let env = moto().await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = client_for(
        &env,
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(2),
    );
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
