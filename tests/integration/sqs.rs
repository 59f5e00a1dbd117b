//! The worker as production runs it on AWS: the real `rendition worker --queue sqs`
//! binary, S3 uploads through the aws-sdk-s3 client, S3 → SQS bucket notifications, all
//! on moto's server on loopback. Each test gets its own bucket and queues.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use rendition_pipeline::config::Settings;
use rendition_pipeline::manifest::Manifest;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(120);

/// A [`World`] on moto whose bucket notifies a queue of its own, and that queue.
pub struct SqsWorld {
    pub world: World,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
}

impl std::ops::Deref for SqsWorld {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

/// The ARN of the queue at `url`.
pub(crate) async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()
        .get(&QueueAttributeName::QueueArn)
        .unwrap()
        .clone()
}

impl SqsWorld {
    /// A bucket whose uploads under `originals/` notify a fresh queue with a DLQ
    /// (maxReceiveCount 3).
    pub async fn new() -> SqsWorld {
        let mut world = World::s3().await;
        let services = world.bucket().services;
        let sqs = services.sqs();
        let dlq_url = sqs
            .create_queue()
            .queue_name(unique("rendition-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3" })
            .to_string();
        let queue_url = sqs
            .create_queue()
            .queue_name(unique("rendition-jobs"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = queue_arn(&sqs, &queue_url).await;
        let filter = aws_sdk_s3::types::NotificationConfigurationFilter::builder()
            .key(
                aws_sdk_s3::types::S3KeyFilter::builder()
                    .filter_rules(
                        aws_sdk_s3::types::FilterRule::builder()
                            .name(aws_sdk_s3::types::FilterRuleName::Prefix)
                            .value("originals/")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let bucket = world.bucket();
        bucket
            .s3
            .put_bucket_notification_configuration()
            .bucket(&bucket.name)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(
                        QueueConfiguration::builder()
                            .queue_arn(arn)
                            .events(Event::S3ObjectCreated)
                            .events(Event::S3ObjectRemoved)
                            .filter(filter)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        // What points `rendition` at this world, besides the bucket.
        world.add_vars([
            ("RENDITION__SQS__QUEUE_URL", queue_url.clone()),
            ("RENDITION__SQS__ENDPOINT", services.sqs_endpoint.clone()),
            ("RENDITION__SQS__REGION", services.region.clone()),
            ("RENDITION__SQS__WAIT_SECONDS", "1".into()),
            ("RENDITION__SQS__VISIBILITY_TIMEOUT_SECS", "10".into()),
            ("RENDITION__WORKER__HTTP_ADDR", "127.0.0.1:0".into()),
            ("RENDITION__WORKER__SHUTDOWN_GRACE_SECS", "60".into()),
        ]);
        SqsWorld {
            world,
            sqs,
            queue_url,
            dlq_url,
        }
    }

    /// The real worker binary, configured through RENDITION__* variables (`extra` last).
    pub fn worker(&self, extra: &[(&str, &str)]) -> Running {
        self.rendition()
            .args(["worker", "--queue", "sqs"])
            .envs(extra.iter().copied())
            .start()
    }

    /// Puts `body` on the work queue as it is (a forged or hand-made event).
    pub async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    pub async fn upload(&self, key: &str, body: Vec<u8>) {
        self.bucket().put(key, body, Some("image/jpeg")).await;
    }

    /// Manifests under `derived/`, by source key.
    pub async fn manifests(&self) -> HashMap<String, Manifest> {
        self.bucket().manifests().await
    }

    /// Polls storage until `n` manifests exist (bounded).
    pub async fn wait_manifests(&self, n: usize) -> HashMap<String, Manifest> {
        eventually(WAIT, &format!("{n} manifests"), || async {
            let m = self.manifests().await;
            (m.len() >= n).then_some(m)
        })
        .await
    }

    /// Long-polls the DLQ for one message, with its attributes.
    pub async fn dlq_message(&self) -> (String, HashMap<String, String>) {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .wait_time_seconds(2)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            if let Some(m) = out.messages().first() {
                self.sqs
                    .delete_message()
                    .queue_url(&self.dlq_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                let attrs = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (k.clone(), v.string_value().unwrap_or_default().to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                return (m.body().unwrap_or_default().to_string(), attrs);
            }
            assert!(Instant::now() < deadline, "nothing reached the DLQ");
        }
    }

    /// Whether the DLQ holds nothing (one short long-poll).
    pub async fn dlq_is_empty(&self) -> bool {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        out.messages().is_empty()
    }

    /// Messages still on the work queue (visible or in flight).
    pub async fn queue_depth(&self) -> (u64, u64) {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let a = out.attributes().unwrap();
        let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    pub async fn object_meta(
        &self,
        key: &str,
    ) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.bucket().head(key).await
    }
}

fn rendered(v: &serde_json::Value, key: &str) -> bool {
    field(v, "message") == Some("rendered") && field(v, "key") == Some(key)
}

#[tokio::test]
async fn upload_to_sqs_to_worker_to_derivatives() {
    let world = SqsWorld::new().await;
    let mut worker = world.worker(&[]);
    let (photo, w, h) = photos(".jpg", 4000).into_iter().next().unwrap();
    world
        .upload(
            "originals/holiday photo.jpg",
            std::fs::read(&photo).unwrap(),
        )
        .await;
    worker
        .wait_for(WAIT, "the upload rendered", |v| {
            rendered(v, "originals/holiday photo.jpg")
        })
        .await;

    let manifests = world.wait_manifests(1).await;
    let m = &manifests["originals/holiday photo.jpg"];
    assert_eq!((m.source.width, m.source.height), (w, h));
    let eager: Vec<String> = Settings::default()
        .eager_presets()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        m.variants
            .iter()
            .map(|v| v.name.clone())
            .collect::<Vec<_>>(),
        eager
    );
    for v in &m.variants {
        let head = world.object_meta(&v.key).await;
        assert_eq!(
            head.cache_control(),
            Some("public, max-age=31536000, immutable"),
            "{}",
            v.key
        );
        assert_eq!(head.content_type(), Some("image/webp"), "{}", v.key);
        assert_eq!(head.content_length(), Some(v.bytes as i64));
    }
    // The manifest's version is the object's ETag as S3 reports it.
    let source = world.object_meta("originals/holiday photo.jpg").await;
    assert_eq!(Some(m.source.version.as_str()), source.e_tag());

    // Same event again → same keys, no error, no DLQ.
    let listed_before = world
        .bucket()
        .s3
        .list_objects_v2()
        .bucket(&world.bucket().name)
        .send()
        .await
        .unwrap()
        .key_count();
    let event = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": world.bucket().name}, "object": {"key": "originals/holiday+photo.jpg"}}
    }]});
    world.send(&event.to_string()).await;
    eventually(WAIT, "the duplicate event consumed", || async {
        (world.queue_depth().await == (0, 0)).then_some(())
    })
    .await;
    let listed_after = world
        .bucket()
        .s3
        .list_objects_v2()
        .bucket(&world.bucket().name)
        .send()
        .await
        .unwrap()
        .key_count();
    assert_eq!(
        listed_before, listed_after,
        "a duplicate writes nothing new"
    );
    assert!(
        world.dlq_is_empty().await,
        "the duplicate was handled, not dead-lettered"
    );
    assert!(worker.child.try_wait().unwrap().is_none());

    // SIGTERM: exits 0.
    worker.terminate();
    let status = tokio::time::timeout(WAIT, worker.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn bad_messages_go_to_the_dlq_with_the_reason() {
    let world = SqsWorld::new().await;
    let mut worker = world.worker(&[]);
    world
        .upload(
            "originals/corrupt.jpg",
            b"\xFF\xD8\xFF\xE0 definitely not a jpeg".to_vec(),
        )
        .await;
    let (body, attrs) = world.dlq_message().await;
    assert!(body.contains("corrupt.jpg"), "{body}");
    assert_eq!(
        attrs.get("rendition-error-kind").map(String::as_str),
        Some("corrupt_image"),
        "{attrs:?}"
    );
    assert_eq!(
        attrs.get("rendition-retryable").map(String::as_str),
        Some("false")
    );

    // An event for an object that does not exist: permanent.
    let event = serde_json::json!({"Records": [{
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": world.bucket().name}, "object": {"key": "originals/ghost.jpg"}}
    }]});
    world.send(&event.to_string()).await;
    let (_, attrs) = world.dlq_message().await;
    assert_eq!(
        attrs.get("rendition-error-kind").map(String::as_str),
        Some("missing_source"),
        "{attrs:?}"
    );

    // Not an event at all.
    world
        .sqs
        .send_message()
        .queue_url(&world.queue_url)
        .message_body("hello")
        .send()
        .await
        .unwrap();
    let (body, attrs) = world.dlq_message().await;
    assert_eq!(body, "hello");
    assert_eq!(
        attrs.get("rendition-error-kind").map(String::as_str),
        Some("not_json"),
        "{attrs:?}"
    );

    // Still consuming: a good upload completes.
    world
        .upload("originals/fine.jpg", encode_jpeg(&quadrants(640, 480), 90))
        .await;
    worker
        .wait_for(WAIT, "the good upload", |v| {
            rendered(v, "originals/fine.jpg")
        })
        .await;
    assert!(worker.child.try_wait().unwrap().is_none());
}

#[tokio::test]
async fn sigkill_mid_batch_loses_nothing() {
    let world = SqsWorld::new().await;
    let keys: Vec<String> = (0..6).map(|i| format!("originals/batch-{i}.jpg")).collect();
    let mut first = world.worker(&[("RENDITION__RENDER__CONCURRENCY", "2")]);
    let (photo, _, _) = photos(".jpg", 4000).into_iter().next().unwrap();
    let bytes = std::fs::read(&photo).unwrap();
    for key in &keys {
        world.upload(key, bytes.clone()).await;
    }
    first
        .wait_for(WAIT, "a first render", |v| {
            field(v, "message") == Some("rendered")
        })
        .await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();

    let _second = world.worker(&[("RENDITION__RENDER__CONCURRENCY", "2")]);
    let manifests = world.wait_manifests(keys.len()).await;
    for key in &keys {
        assert!(manifests.contains_key(key), "{key} has no manifest");
    }
    eventually(WAIT, "an empty queue", || async {
        (world.queue_depth().await == (0, 0)).then_some(())
    })
    .await;
    assert!(world.dlq_is_empty().await, "nothing dead-lettered");
}

#[tokio::test]
async fn s3_outage_is_retried_then_succeeds_and_ops_endpoints_answer() {
    let world = SqsWorld::new().await;
    let proxy = crate::proxy::Proxy::start(world.bucket().services.moto_addr()).await;
    let via_proxy = format!("http://{}", proxy.addr());
    let mut worker = world.worker(&[
        ("RENDITION__S3__ENDPOINT", &via_proxy),
        ("RENDITION__S3__TIMEOUT_SECS", "5"),
    ]);
    let ops = worker
        .wait_for(WAIT, "the operations endpoint", |v| {
            field(v, "message") == Some("operations endpoint: /healthz /readyz /metrics")
        })
        .await;
    let ops = field(&ops, "addr").unwrap().to_string();
    assert_eq!(get(&ops, "/healthz", &[]).await.status, 200);
    eventually(WAIT, "ready", || async {
        (get(&ops, "/readyz", &[]).await.status == 200).then_some(())
    })
    .await;

    // S3 goes away (for the worker only); the upload itself goes straight to moto.
    proxy.set_accepting(false);
    proxy.cut();
    world
        .upload(
            "originals/during outage.jpg",
            encode_jpeg(&quadrants(640, 480), 90),
        )
        .await;
    let failed = worker
        .wait_for(WAIT, "a retryable failure", |v| {
            field(v, "message") == Some("job failed; will retry")
        })
        .await;
    assert_eq!(
        field(&failed, "kind"),
        Some("storage_unavailable"),
        "{failed}"
    );
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker stays up"
    );

    // S3 comes back: the message reappears after its backoff and completes.
    proxy.set_accepting(true);
    worker
        .wait_for(WAIT, "the render after the outage", |v| {
            rendered(v, "originals/during outage.jpg")
        })
        .await;
    let manifests = world.wait_manifests(1).await;
    assert!(manifests.contains_key("originals/during outage.jpg"));
    assert!(
        world.dlq_is_empty().await,
        "a retryable failure is never dead-lettered"
    );

    let metrics = get(&ops, "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(metrics.contains("rendition_retries_total"), "{metrics}");
    let rendered_line = metrics
        .lines()
        .find(|l| l.starts_with("rendition_jobs_total{outcome=\"rendered\"}"))
        .unwrap_or_else(|| panic!("no rendered counter in\n{metrics}"));
    assert!(rendered_line.ends_with(" 1"), "{rendered_line}");
    let retries = metrics
        .lines()
        .find(|l| l.starts_with("rendition_retries_total "))
        .unwrap();
    assert!(!retries.ends_with(" 0"), "{retries}");
}
