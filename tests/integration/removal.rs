//! Removals that reach the CDN: a source is made (its eager derivatives and manifest),
//! then removed, on every path a removal takes — the RabbitMQ worker, the SQS worker (moto's
//! own S3 → SQS `ObjectRemoved` notification), the Lambda's S3 trigger, the folder mode's
//! watcher — with `cdn.cloudfront_distribution_id` naming a distribution of the test's own
//! on moto's CloudFront. Each ends in [`assert_removed`]: every derivative and the manifest
//! are gone from the store, and the distribution has exactly one invalidation, of
//! `/derived/{source_rel}/*`, read back with the CloudFront SDK. Without a distribution
//! configured, a removal calls no CloudFront (a proxy in front of moto counts connections)
//! and still deletes.

use std::path::Path;
use std::time::Duration;

use aws_sdk_cloudfront::types::{
    CustomOriginConfig, DefaultCacheBehavior, DistributionConfig, Origin, OriginProtocolPolicy,
    Origins, ViewerProtocolPolicy,
};
use rendition_aws::s3::S3Store;
use rendition_pipeline::naming;
use rendition_pipeline::store::{BlobStore, FsStore};
use serde_json::{json, Value};

use crate::harness::*;
use crate::lambda::Function;
use crate::proxy::Proxy;
use crate::rabbit::Broker;
use crate::sqs::SqsWorld;

const WAIT: Duration = Duration::from_secs(120);

/// The source every test makes and removes: a space in its name, so the invalidation path
/// shows its encoding.
const SOURCE: &str = "originals/takedown photo.jpg";
/// What CloudFront is asked to invalidate for [`SOURCE`], written out by hand.
const INVALIDATED: &str = "/derived/takedown%20photo.jpg/*";
/// The log line of a removal's invalidation.
const INVALIDATED_LINE: &str = "CDN copies of a removed source invalidated";

fn jpeg() -> Vec<u8> {
    encode_jpeg(&quadrants(800, 600), 85)
}

/// The folder of every derivative and manifest of [`SOURCE`].
fn folder() -> String {
    naming::source_folder(
        "derived/",
        naming::source_rel("originals/", SOURCE).unwrap(),
    )
}

/// An S3 event notification with one record, as S3 sends it (key form-encoded); a
/// removal's record has no size or ETag.
fn s3_event(bucket: &str, key: &str, event_name: &str, size: Option<usize>) -> Value {
    let mut object = json!({
        "key": key.replace(' ', "+"),
        "sequencer": "0055AED6DCD90281E5",
    });
    if let Some(size) = size {
        object["size"] = json!(size);
        object["eTag"] = json!("5d41402abc4b2a76b9719d911017c592");
    }
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-30T03:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAINPONIXQXHT3IKHL2"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "rendition-uploads",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": object
        }
    }]})
}

/// A distribution of the test's own on moto's CloudFront.
struct Distribution {
    id: String,
    endpoint: String,
    client: aws_sdk_cloudfront::Client,
}

impl Distribution {
    async fn new() -> Distribution {
        let services = services().await;
        let conf = aws_sdk_cloudfront::Config::builder()
            .behavior_version(aws_sdk_cloudfront::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudfront::config::Region::new("us-east-1"))
            .endpoint_url(&services.s3_endpoint)
            .credentials_provider(aws_sdk_cloudfront::config::Credentials::new(
                &services.access_key_id,
                &services.secret_access_key,
                None,
                None,
                "test",
            ))
            .build();
        let client = aws_sdk_cloudfront::Client::from_conf(conf);
        let origin = Origin::builder()
            .id("derived")
            .domain_name("derived.example.com")
            .custom_origin_config(
                CustomOriginConfig::builder()
                    .http_port(80)
                    .https_port(443)
                    .origin_protocol_policy(OriginProtocolPolicy::HttpsOnly)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let config = DistributionConfig::builder()
            .caller_reference(unique("rendition-test"))
            .origins(
                Origins::builder()
                    .quantity(1)
                    .items(origin)
                    .build()
                    .unwrap(),
            )
            .default_cache_behavior(
                DefaultCacheBehavior::builder()
                    .target_origin_id("derived")
                    .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                    .build()
                    .unwrap(),
            )
            .comment("rendition removal test")
            .enabled(true)
            .build()
            .unwrap();
        let out = client
            .create_distribution()
            .distribution_config(config)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create a distribution on moto: {e:?}"));
        let id = out.distribution().expect("a distribution").id().to_string();
        Distribution {
            id,
            endpoint: services.s3_endpoint.clone(),
            client,
        }
    }

    /// What points a binary at this distribution (credentials come with the store's).
    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "RENDITION__CDN__CLOUDFRONT_DISTRIBUTION_ID",
                self.id.clone(),
            ),
            // moto serves CloudFront on the same port as S3.
            ("RENDITION__CDN__ENDPOINT", self.endpoint.clone()),
        ]
    }

    /// The paths of every invalidation made on this distribution.
    async fn invalidations(&self) -> Vec<Vec<String>> {
        let listed = self
            .client
            .list_invalidations()
            .distribution_id(&self.id)
            .send()
            .await
            .unwrap();
        let mut out = Vec::new();
        let summaries = listed
            .invalidation_list()
            .map(|l| l.items())
            .unwrap_or_default();
        for summary in summaries {
            let got = self
                .client
                .get_invalidation()
                .distribution_id(&self.id)
                .id(summary.id())
                .send()
                .await
                .unwrap();
            let paths = got
                .invalidation()
                .and_then(|i| i.invalidation_batch())
                .and_then(|b| b.paths())
                .map(|p| p.items().to_vec())
                .unwrap_or_default();
            out.push(paths);
        }
        out
    }
}

/// Waits until [`SOURCE`]'s derivatives and manifest are in `store`; what they are.
async fn made(store: &dyn BlobStore) -> Vec<String> {
    let folder = folder();
    let folder = folder.as_str();
    eventually(
        WAIT,
        "the derivatives and manifest made",
        move || async move {
            let keys: Vec<String> = store
                .list(folder)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.key)
                .collect();
            keys.iter()
                .any(|k| k.ends_with("/manifest.json"))
                .then_some(keys)
        },
    )
    .await
}

/// The removal happened: none of `made` (more than the manifest) is left in `store`,
/// nothing else is under the source's folder, and `cdn` has exactly one invalidation, of
/// [`INVALIDATED`]. Called once the removal is over (its invalidation logged or answered).
async fn assert_removed(store: &dyn BlobStore, made: &[String], cdn: &Distribution) {
    assert!(made.len() > 1, "derivatives and a manifest: {made:?}");
    for key in made {
        assert_eq!(store.head(key).await.unwrap(), None, "{key} is still there");
    }
    assert_eq!(store.list(&folder()).await.unwrap(), Vec::new());
    assert_eq!(
        cdn.invalidations().await,
        vec![vec![INVALIDATED.to_string()]]
    );
}

/// Whether `v` is the log line of [`SOURCE`]'s invalidation on `cdn`.
fn invalidated(v: &Value, cdn: &Distribution) -> bool {
    field(v, "message") == Some(INVALIDATED_LINE)
        && field(v, "key") == Some(SOURCE)
        && field(v, "distribution") == Some(cdn.id.as_str())
        && field(v, "path") == Some(INVALIDATED)
        && field(v, "invalidation").is_some_and(|id| !id.is_empty())
}

fn s3_store(bucket: &Bucket) -> S3Store {
    S3Store::new(bucket.s3.clone(), bucket.name.clone())
}

#[tokio::test]
async fn rabbit_worker_removal_deletes_and_invalidates() {
    let cdn = Distribution::new().await;
    let broker = Broker::new(3, 200).await;
    let mut world = World::s3().await;
    world.add_vars(broker.vars());
    world.add_vars(cdn.vars());
    let mut worker = world
        .rendition()
        .args(["worker", "--queue", "rabbitmq"])
        .start();
    let bucket = world.bucket();
    let body = jpeg();
    let size = body.len();
    bucket.put(SOURCE, body, Some("image/jpeg")).await;
    let created = s3_event(&bucket.name, SOURCE, "ObjectCreated:Put", Some(size));
    broker.publish(created.to_string().as_bytes()).await;
    let store = s3_store(bucket);
    let made = made(&store).await;

    bucket.delete(SOURCE).await;
    let removed = s3_event(&bucket.name, SOURCE, "ObjectRemoved:Delete", None);
    broker.publish(removed.to_string().as_bytes()).await;
    worker
        .wait_for(WAIT, "the invalidation", |v| invalidated(v, &cdn))
        .await;
    assert_removed(&store, &made, &cdn).await;
    worker.terminate();
    worker.child.wait().await.unwrap();
    broker.cleanup().await;
}

#[tokio::test]
async fn sqs_worker_removal_deletes_and_invalidates() {
    let cdn = Distribution::new().await;
    let mut world = SqsWorld::new().await;
    world.world.add_vars(cdn.vars());
    let mut worker = world.worker(&[]);
    // Both events are moto's own S3 → SQS notifications.
    world.upload(SOURCE, jpeg()).await;
    let store = s3_store(world.bucket());
    let made = made(&store).await;

    let bucket = world.bucket();
    bucket.delete(SOURCE).await;
    worker
        .wait_for(WAIT, "the invalidation", |v| invalidated(v, &cdn))
        .await;
    assert_removed(&store, &made, &cdn).await;
    assert!(world.dlq_is_empty().await);
}

#[tokio::test]
async fn lambda_s3_trigger_removal_deletes_and_invalidates() {
    let cdn = Distribution::new().await;
    let mut world = World::s3().await;
    world.add_vars(cdn.vars());
    let mut function = Function::start(&world, &[]).await;
    let bucket = world.bucket();
    let body = jpeg();
    let size = body.len();
    bucket.put(SOURCE, body, Some("image/jpeg")).await;
    let created = s3_event(&bucket.name, SOURCE, "ObjectCreated:Put", Some(size));
    let out = function.invoke(&created).await.ok();
    assert_eq!(out["rendered"], 1, "{out}");
    let store = s3_store(bucket);
    let made = made(&store).await;

    bucket.delete(SOURCE).await;
    let removed = s3_event(&bucket.name, SOURCE, "ObjectRemoved:Delete", None);
    let out = function.invoke(&removed).await.ok();
    assert_eq!(out["removed"], 1, "{out}");
    // The invocation answers after the removal, invalidation included.
    function
        .wait_for("the invalidation", |v| invalidated(v, &cdn))
        .await;
    assert_removed(&store, &made, &cdn).await;
}

/// `rendition run --local` watching `world`'s folder (its variables last).
fn watch(world: &World, extra: Vec<(&'static str, String)>) -> Running {
    world
        .rendition()
        .args(["run", "--local"])
        .arg(world.folder())
        .envs(extra)
        .start()
}

/// Writes [`SOURCE`] into the watched folder, as a file copied in.
fn drop_in(folder: &Path) {
    std::fs::write(folder.join(SOURCE), jpeg()).unwrap();
}

#[tokio::test]
async fn folder_mode_removal_deletes_and_invalidates() {
    let cdn = Distribution::new().await;
    let world = World::local();
    let mut vars = cdn.vars();
    vars.extend(services().await.aws_vars());
    let mut watcher = watch(&world, vars);
    watcher
        .wait_for(WAIT, "the watch", |v| {
            field(v, "message") == Some("local mode started")
        })
        .await;
    drop_in(world.folder());
    let store = FsStore::new(world.folder()).unwrap();
    let made = made(&store).await;

    std::fs::remove_file(world.folder().join(SOURCE)).unwrap();
    watcher
        .wait_for(WAIT, "the invalidation", |v| invalidated(v, &cdn))
        .await;
    watcher
        .wait_for(WAIT, "the removal's end", |v| {
            field(v, "message") == Some("removed source: derivatives deleted")
        })
        .await;
    assert_removed(&store, &made, &cdn).await;
}

#[tokio::test]
async fn without_a_distribution_a_removal_calls_no_cdn_and_still_deletes() {
    let services = services().await;
    // Any CloudFront call would go through this proxy to moto, and be counted.
    let proxy = Proxy::start(services.moto_addr()).await;
    let world = World::local();
    let mut vars = vec![(
        "RENDITION__CDN__ENDPOINT",
        format!("http://{}", proxy.addr()),
    )];
    vars.extend(services.aws_vars());
    let mut watcher = watch(&world, vars);
    watcher
        .wait_for(WAIT, "the watch", |v| {
            field(v, "message") == Some("local mode started")
        })
        .await;
    drop_in(world.folder());
    let store = FsStore::new(world.folder()).unwrap();
    let made = made(&store).await;
    assert!(made.len() > 1, "{made:?}");

    std::fs::remove_file(world.folder().join(SOURCE)).unwrap();
    watcher
        .wait_for(WAIT, "the removal's end", |v| {
            field(v, "message") == Some("removed source: derivatives deleted")
                && field(v, "key") == Some(SOURCE)
        })
        .await;
    assert_eq!(store.list(&folder()).await.unwrap(), Vec::new());
    assert!(
        !watcher
            .logs()
            .iter()
            .any(|v| field(v, "message") == Some(INVALIDATED_LINE)),
        "an invalidation without a distribution"
    );
    assert_eq!(proxy.accepted(), 0, "CloudFront was called");
}
