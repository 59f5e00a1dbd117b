//! The RabbitMQ consumer in-process against the real broker on 127.0.0.1:5672, with a
//! filesystem store in a temporary folder. Every test uses its own queue and exchange
//! names (a random prefix) and deletes them at the end. Outcomes are awaited by reading
//! the queues (a test queue bound to the events exchange, the DLQ) and the store, each
//! with a deadline; nothing waits by sleeping a fixed time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rendition_cli::handler::Handler;
use rendition_cli::http::Readiness;
use rendition_cli::metrics::{Metrics, OutcomeLabels};
use rendition_cli::rabbit::{self, RabbitError, RabbitSettings};
use rendition_pipeline::config::Settings;
use rendition_pipeline::job::Engine;
use rendition_pipeline::manifest::Manifest;
use rendition_pipeline::store::{
    BlobStore, FsStore, Object, ObjectMeta, PutOptions, PutOutcome, StoreError,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::harness::{encode_jpeg, eventually, field, photos, quadrants, services, unique, World};
use crate::proxy::Proxy;

const WAIT: Duration = Duration::from_secs(60);

/// A test's own topology on the real broker, and a connection to look at it.
pub(crate) struct Broker {
    pub(crate) settings: RabbitSettings,
    _connection: Connection,
    channel: Channel,
    /// Bound to the events exchange with `derivatives.ready`.
    events_queue: String,
    cleaned: bool,
}

/// Worker logs on the test output when `RUST_LOG` is set (e.g. `rendition_cli=debug`).
fn init_logs() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

impl Broker {
    pub(crate) async fn new(max_attempts: u32, retry_base_ms: u64) -> Broker {
        Broker::with_delivery_limit(max_attempts, retry_base_ms, 10).await
    }

    async fn with_delivery_limit(max_attempts: u32, retry_base_ms: u64, limit: u32) -> Broker {
        init_logs();
        let prefix = unique("rendition-test");
        let settings = RabbitSettings {
            url: services().await.amqp_url.clone(),
            queue: format!("{prefix}.jobs"),
            uploads_exchange: format!("{prefix}.uploads"),
            events_exchange: format!("{prefix}.events"),
            max_attempts,
            retry_base_ms,
            retry_max_ms: retry_base_ms * 4,
            delivery_limit: limit,
        };
        let connection = Connection::connect(&settings.url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ (infra/local/services.sh up)");
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        // The worker declares the same at start; declaring first lets the test bind its
        // queue and publish before the worker runs, and checks idempotence.
        rabbit::declare_topology(&channel, &settings).await.unwrap();
        let events_queue = format!("{prefix}.test-events");
        channel
            .queue_declare(
                events_queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                events_queue.as_str().into(),
                settings.events_exchange.as_str().into(),
                rabbit::READY_ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Broker {
            settings,
            _connection: connection,
            channel,
            events_queue,
            cleaned: false,
        }
    }

    /// The RENDITION__* variables of a `rendition` process on this broker's topology
    /// (render concurrency 2, ops endpoint on port 0), for [`World::add_vars`].
    pub(crate) fn vars(&self) -> Vec<(&'static str, String)> {
        let r = &self.settings;
        vec![
            ("RENDITION__RABBITMQ__URL", r.url.clone()),
            ("RENDITION__RABBITMQ__QUEUE", r.queue.clone()),
            (
                "RENDITION__RABBITMQ__UPLOADS_EXCHANGE",
                r.uploads_exchange.clone(),
            ),
            (
                "RENDITION__RABBITMQ__EVENTS_EXCHANGE",
                r.events_exchange.clone(),
            ),
            (
                "RENDITION__RABBITMQ__MAX_ATTEMPTS",
                r.max_attempts.to_string(),
            ),
            (
                "RENDITION__RABBITMQ__RETRY_BASE_MS",
                r.retry_base_ms.to_string(),
            ),
            (
                "RENDITION__RABBITMQ__RETRY_MAX_MS",
                r.retry_max_ms.to_string(),
            ),
            (
                "RENDITION__RABBITMQ__DELIVERY_LIMIT",
                r.delivery_limit.to_string(),
            ),
            ("RENDITION__RENDER__CONCURRENCY", "2".into()),
            ("RENDITION__WORKER__HTTP_ADDR", "127.0.0.1:0".into()),
        ]
    }

    fn dlq(&self) -> String {
        format!("{}.dlq", self.settings.queue)
    }

    fn retry_queues(&self) -> Vec<String> {
        (1..self.settings.max_attempts)
            .map(|n| format!("{}.retry.{n}", self.settings.queue))
            .collect()
    }

    /// Publishes `body` to the uploads exchange, as MinIO's AMQP target does.
    pub(crate) async fn publish(&self, body: &[u8]) {
        self.publish_with(body, FieldTable::default()).await
    }

    /// [`Broker::publish`] with message headers (e.g. a W3C `traceparent`).
    pub(crate) async fn publish_with(&self, body: &[u8], headers: FieldTable) {
        let confirm = self
            .channel
            .basic_publish(
                self.settings.uploads_exchange.as_str().into(),
                "local/originals".into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Messages ready in `queue` (passive declare).
    pub(crate) async fn ready_count(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    async fn try_get(&self, queue: &str) -> Option<BasicGetMessage> {
        let msg = self
            .channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()?;
        msg.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        Some(msg)
    }

    /// The next message in `queue`, waiting for it.
    async fn get(&self, queue: &str) -> BasicGetMessage {
        eventually(WAIT, &format!("a message in {queue}"), || {
            self.try_get(queue)
        })
        .await
    }

    /// The next `derivatives.ready` event, as delivered.
    pub(crate) async fn next_ready_message(&self) -> BasicGetMessage {
        self.get(&self.events_queue).await
    }

    /// The next `derivatives.ready` event.
    async fn next_ready(&self) -> Manifest {
        let msg = self.get(&self.events_queue).await;
        assert_eq!(msg.delivery.routing_key.as_str(), rabbit::READY_ROUTING_KEY);
        assert_eq!(msg.delivery.properties.delivery_mode(), &Some(2));
        ready_manifest(&msg.delivery.data)
    }

    /// Asserts the work, retry and dead-letter queues hold nothing.
    pub(crate) async fn assert_queues_empty(&self) {
        assert_eq!(
            self.ready_count(&self.settings.queue).await,
            0,
            "work queue"
        );
        assert_eq!(self.ready_count(&self.dlq()).await, 0, "DLQ");
        for q in self.retry_queues() {
            assert_eq!(self.ready_count(&q).await, 0, "{q}");
        }
    }

    /// Deletes the test's queues and exchanges (also done on drop, e.g. after a panic).
    pub(crate) async fn cleanup(mut self) {
        delete_topology(&self.channel, &self.names()).await.unwrap();
        self.cleaned = true;
    }

    fn names(&self) -> (Vec<String>, Vec<String>) {
        let mut queues = vec![
            self.settings.queue.clone(),
            self.dlq(),
            self.events_queue.clone(),
        ];
        queues.extend(self.retry_queues());
        let exchanges = vec![
            self.settings.uploads_exchange.clone(),
            self.settings.events_exchange.clone(),
        ];
        (queues, exchanges)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let names = self.names();
        let url = self.settings.url.clone();
        // A failed test: clean up on a fresh connection, from outside the test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
                let channel = conn.create_channel().await?;
                delete_topology(&channel, &names).await
            })
        })
        .join();
    }
}

async fn delete_topology(
    channel: &Channel,
    (queues, exchanges): &(Vec<String>, Vec<String>),
) -> lapin::Result<()> {
    for q in queues {
        channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    for x in exchanges {
        channel
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    Ok(())
}

/// The manifest a `derivatives.ready` event carries: its body is a CloudEvent whose
/// `data` is the manifest (`tests/integration/outcomes.rs` checks the rest).
fn ready_manifest(body: &[u8]) -> Manifest {
    let event: rendition_pipeline::outcome::OutcomeEvent =
        serde_json::from_slice(body).expect("the event is a CloudEvent");
    match event.outcome {
        rendition_pipeline::outcome::Outcome::Ready(manifest) => manifest,
        other => panic!("not derivatives.ready: {other:?}"),
    }
}

/// A MinIO notification (`{"EventName":…,"Key":…,"Records":[…]}`) for bucket `local`.
fn minio_event(key: &str, size: usize) -> Vec<u8> {
    minio_event_in("local", key, size)
}

/// A MinIO notification for `bucket`.
pub(crate) fn minio_event_in(bucket: &str, key: &str, size: usize) -> Vec<u8> {
    let encoded = key.replace('/', "%2F");
    serde_json::to_vec(&serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{bucket}/{key}"),
        "Records": [{
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "awsRegion": "",
            "eventTime": "2024-05-14T09:12:31.402Z",
            "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "minioadmin"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "Config",
                "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {
                    "key": encoded,
                    "size": size,
                    "eTag": "5d41402abc4b2a76b9719d911017c592",
                    "contentType": "image/jpeg",
                    "sequencer": "17CF1B4A9C6F3B59"
                }
            }
        }]
    }))
    .unwrap()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode_jpeg(&quadrants(w, h), 85)
}

async fn put(store: &FsStore, key: &str, body: Vec<u8>) -> Vec<u8> {
    let event = minio_event(key, body.len());
    store
        .put(key, Bytes::from(body), PutOptions::default())
        .await
        .unwrap();
    event
}

fn outcome(metrics: &Metrics, name: &str) -> u64 {
    metrics
        .jobs
        .get_or_create(&OutcomeLabels {
            outcome: name.to_string(),
        })
        .get()
}

/// The consumer running in this process.
struct Worker {
    handle: JoinHandle<Result<(), RabbitError>>,
    stop: Option<oneshot::Sender<()>>,
    metrics: Metrics,
    ready: Readiness,
}

impl Worker {
    fn start(rabbit: &RabbitSettings, store: Arc<dyn BlobStore>, concurrency: usize) -> Worker {
        let settings = Settings::default();
        // In-process rendering: this worker runs inside the test binary, which is not a
        // render helper (the binaries' own tests cover the sandbox).
        let renderer =
            rendition_image::renderer::Renderer::in_process(&settings.limits, &settings.render);
        let engine = Engine::new(store, Arc::new(settings), "local", renderer);
        let metrics = Metrics::new();
        let handler = Handler::new(engine, metrics.clone());
        let ready = Readiness::default();
        // Only the broker flag is under test.
        ready.set_store(true);
        let (stop, stopped) = oneshot::channel::<()>();
        let rabbit = rabbit.clone();
        let r = ready.clone();
        let handle = tokio::spawn(async move {
            rabbit::run(&rabbit, concurrency, handler, r, async move {
                let _ = stopped.await;
            })
            .await
        });
        Worker {
            handle,
            stop: Some(stop),
            metrics,
            ready,
        }
    }

    async fn wait_ready(&self) {
        let ready = self.ready.clone();
        eventually(WAIT, "the worker to consume", || {
            let up = ready.is_ready();
            async move { up.then_some(()) }
        })
        .await;
    }

    /// Triggers shutdown and waits for `run` to return `Ok`.
    async fn stop(mut self) -> Metrics {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, &mut self.handle)
            .await
            .expect("run returns after shutdown")
            .expect("run does not panic")
            .expect("run returns Ok");
        assert!(!self.ready.is_ready(), "not ready after shutdown");
        self.metrics
    }
}

/// Every manifest.json in the store.
async fn manifests(store: &FsStore) -> Vec<Manifest> {
    let mut out = Vec::new();
    for meta in store.list("derived/").await.unwrap() {
        if meta.key.ends_with("/manifest.json") {
            let obj = store.get(&meta.key, 1 << 30).await.unwrap();
            out.push(serde_json::from_slice(&obj.body).unwrap());
        }
    }
    out
}

/// The manifest lists every eager preset, and every derivative it names is stored.
async fn check_manifest(store: &FsStore, manifest: &Manifest, key: &str) {
    assert_eq!(manifest.source.key, key);
    assert_eq!(manifest.source.bucket, "local");
    let settings = Settings::default();
    let eager: Vec<&str> = settings.eager_presets().map(|(n, _)| n).collect();
    let names: Vec<&str> = manifest.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, eager);
    for v in &manifest.variants {
        let meta = store
            .head(&v.key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} missing", v.key));
        assert_eq!(meta.size, v.bytes, "{}", v.key);
    }
    assert!(
        manifests(store).await.contains(manifest),
        "the announced manifest is the stored one"
    );
}

fn header<'a>(msg: &'a BasicGetMessage, name: &str) -> &'a AMQPValue {
    msg.delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
        .unwrap_or_else(|| panic!("header {name} missing"))
}

fn header_str(msg: &BasicGetMessage, name: &str) -> String {
    match header(msg, name) {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).unwrap(),
        other => panic!("{name}: {other:?}"),
    }
}

fn header_bool(msg: &BasicGetMessage, name: &str) -> bool {
    match header(msg, name) {
        AMQPValue::Boolean(b) => *b,
        other => panic!("{name}: {other:?}"),
    }
}

fn header_int(msg: &BasicGetMessage, name: &str) -> i64 {
    rabbit::header_int(&msg.delivery.properties, name)
        .unwrap_or_else(|| panic!("integer header {name} missing"))
}

fn temp_store() -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path().join("bucket")).unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_upload_renders_announces_and_acks() {
    let broker = Broker::new(3, 200).await;
    let (_dir, store) = temp_store();
    let worker = Worker::start(&broker.settings, Arc::new(store.clone()), 2);
    worker.wait_ready().await;

    let key = "originals/trip/photo 1.jpg";
    let event = put(&store, key, jpeg(1200, 800)).await;
    broker.publish(&event).await;

    let manifest = broker.next_ready().await;
    check_manifest(&store, &manifest, key).await;
    assert_eq!((manifest.source.width, manifest.source.height), (1200, 800));

    let metrics = worker.stop().await;
    assert_eq!(outcome(&metrics, "rendered"), 1);
    // After a clean shutdown an unacknowledged delivery would be back in the queue.
    broker.assert_queues_empty().await;
    assert!(broker.try_get(&broker.events_queue).await.is_none());
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_duplicate_delivery_is_already_done() {
    let broker = Broker::new(3, 200).await;
    let (_dir, store) = temp_store();
    let worker = Worker::start(&broker.settings, Arc::new(store.clone()), 2);

    let key = "originals/twice.jpg";
    let event = put(&store, key, jpeg(900, 600)).await;
    broker.publish(&event).await;
    let first = broker.next_ready().await;
    let keys_before: Vec<String> = store
        .list("derived/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();

    broker.publish(&event).await;
    let metrics = worker.metrics.clone();
    eventually(WAIT, "the second delivery to be already done", || {
        let n = outcome(&metrics, "already_done");
        async move { (n == 1).then_some(()) }
    })
    .await;
    let metrics = worker.stop().await;

    let keys_after: Vec<String> = store
        .list("derived/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys_before, keys_after);
    assert_eq!(manifests(&store).await, vec![first.clone()]);
    assert_eq!(outcome(&metrics, "rendered"), 1);
    assert_eq!(metrics.dead_lettered.get(), 0);
    // At-least-once announcements: the redelivery announces the stored manifest again.
    let again = broker
        .try_get(&broker.events_queue)
        .await
        .expect("the duplicate announces the manifest again");
    let again = ready_manifest(&again.delivery.data);
    assert_eq!(again, first);
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bad_images_are_dead_lettered_and_the_worker_goes_on() {
    let broker = Broker::new(3, 200).await;
    let (_dir, store) = temp_store();
    let worker = Worker::start(&broker.settings, Arc::new(store.clone()), 2);

    let corrupt = put(
        &store,
        "originals/broken.jpg",
        b"\xFF\xD8\xFF\xE0 this is not really a JPEG".to_vec(),
    )
    .await;
    let text = put(
        &store,
        "originals/notes.jpg",
        b"just some text, named like a photo\n".to_vec(),
    )
    .await;
    broker.publish(&corrupt).await;
    broker.publish(&text).await;

    let mut dead = vec![
        broker.get(&broker.dlq()).await,
        broker.get(&broker.dlq()).await,
    ];
    dead.sort_by_key(|m| m.delivery.data == text);
    assert_eq!(dead[0].delivery.data, corrupt, "the original body");
    assert_eq!(dead[1].delivery.data, text, "the original body");
    assert_eq!(
        header_str(&dead[0], rabbit::ERROR_KIND_HEADER),
        "corrupt_image"
    );
    assert_eq!(
        header_str(&dead[1], rabbit::ERROR_KIND_HEADER),
        "unsupported_format"
    );
    for msg in &dead {
        assert_eq!(header_int(msg, rabbit::ATTEMPTS_HEADER), 1);
        assert!(!header_bool(msg, rabbit::RETRYABLE_HEADER));
        let error = header_str(msg, rabbit::ERROR_HEADER);
        assert!(error.contains("originals/"), "{error}");
        assert!(error.len() <= 1024);
        assert_eq!(msg.delivery.properties.delivery_mode(), &Some(2));
    }

    // Still consuming.
    let good = put(&store, "originals/good.jpg", jpeg(640, 480)).await;
    broker.publish(&good).await;
    let manifest = broker.next_ready().await;
    check_manifest(&store, &manifest, "originals/good.jpg").await;

    let metrics = worker.stop().await;
    assert_eq!(metrics.dead_lettered.get(), 2);
    assert_eq!(outcome(&metrics, "dead_lettered"), 2);
    assert_eq!(metrics.retries.get(), 0);
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_missing_source_is_a_permanent_failure() {
    let broker = Broker::new(3, 200).await;
    let (_dir, store) = temp_store();
    let worker = Worker::start(&broker.settings, Arc::new(store.clone()), 2);

    let event = minio_event("originals/never-uploaded.jpg", 1234);
    broker.publish(&event).await;
    let msg = broker.get(&broker.dlq()).await;
    assert_eq!(msg.delivery.data, event);
    assert_eq!(
        header_str(&msg, rabbit::ERROR_KIND_HEADER),
        "missing_source"
    );
    assert!(!header_bool(&msg, rabbit::RETRYABLE_HEADER));
    assert_eq!(header_int(&msg, rabbit::ATTEMPTS_HEADER), 1);

    let metrics = worker.stop().await;
    assert_eq!(metrics.retries.get(), 0);
    assert_eq!(metrics.dead_lettered.get(), 1);
    assert!(manifests(&store).await.is_empty());
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

/// A filesystem store whose `get` fails (retryably) while `failures` lasts, and panics
/// for keys containing `panics`.
struct FlakyStore {
    inner: FsStore,
    failures: AtomicUsize,
    gets: AtomicUsize,
}

impl FlakyStore {
    fn new(inner: FsStore, failures: usize) -> FlakyStore {
        FlakyStore {
            inner,
            failures: AtomicUsize::new(failures),
            gets: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl BlobStore for FlakyStore {
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        // Faults are injected into source reads only (manifest lookups pass through).
        if !key.starts_with("originals/") {
            return self.inner.get(key, max_bytes).await;
        }
        self.gets.fetch_add(1, Ordering::SeqCst);
        assert!(!key.contains("panics"), "injected panic reading {key}");
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable("injected outage".into()));
        }
        self.inner.get(key, max_bytes).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_retryable_failures_go_through_retry_queues_then_succeed() {
    let broker = Broker::new(4, 200).await;
    let (_dir, store) = temp_store();
    let flaky = Arc::new(FlakyStore::new(store.clone(), 2));
    let worker = Worker::start(&broker.settings, flaky.clone(), 2);

    let key = "originals/flaky.jpg";
    let event = put(&store, key, jpeg(800, 600)).await;
    let started = tokio::time::Instant::now();
    broker.publish(&event).await;
    let manifest = broker.next_ready().await;
    check_manifest(&store, &manifest, key).await;
    // Two failures: retry.1 (200 ms) then retry.2 (400 ms) before the third attempt.
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 3);

    let metrics = worker.stop().await;
    assert_eq!(metrics.retries.get(), 2);
    assert_eq!(outcome(&metrics, "retry"), 2);
    assert_eq!(outcome(&metrics, "rendered"), 1);
    assert_eq!(metrics.dead_lettered.get(), 0);
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_retryable_failures_exhaust_attempts_into_the_dlq() {
    let broker = Broker::new(3, 100).await;
    let (_dir, store) = temp_store();
    let flaky = Arc::new(FlakyStore::new(store.clone(), usize::MAX));
    let worker = Worker::start(&broker.settings, flaky.clone(), 2);

    let event = put(&store, "originals/down.jpg", jpeg(320, 240)).await;
    broker.publish(&event).await;
    let msg = broker.get(&broker.dlq()).await;
    assert_eq!(msg.delivery.data, event);
    assert_eq!(
        header_str(&msg, rabbit::ERROR_KIND_HEADER),
        "storage_unavailable"
    );
    assert!(header_bool(&msg, rabbit::RETRYABLE_HEADER));
    assert_eq!(header_int(&msg, rabbit::ATTEMPTS_HEADER), 3);
    assert!(header_str(&msg, rabbit::ERROR_HEADER).contains("injected outage"));
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 3);

    let metrics = worker.stop().await;
    assert_eq!(metrics.retries.get(), 2);
    assert_eq!(metrics.dead_lettered.get(), 1);
    assert!(manifests(&store).await.is_empty());
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_reconnects_after_the_connection_is_cut() {
    let broker = Broker::new(3, 200).await;
    let (_dir, store) = temp_store();
    let services = services().await;
    let proxy = Proxy::start(services.amqp_addr()).await;
    let mut settings = broker.settings.clone();
    settings.url = services.amqp_url_at(proxy.addr());
    // One at a time, so that the others are still queued or in flight at the cut.
    let worker = Worker::start(&settings, Arc::new(store.clone()), 1);

    let keys: Vec<String> = (0..4).map(|i| format!("originals/cut/{i}.jpg")).collect();
    let mut events = Vec::new();
    for key in &keys {
        events.push(put(&store, key, jpeg(1600, 1200)).await);
    }
    for event in &events {
        broker.publish(event).await;
    }
    let first = broker.next_ready().await;
    assert!(keys.contains(&first.source.key));

    proxy.set_accepting(false);
    proxy.cut();
    let ready = worker.ready.clone();
    eventually(WAIT, "the worker to notice the cut", || {
        let up = ready.is_ready();
        async move { (!up).then_some(()) }
    })
    .await;
    let connections = proxy.accepted();
    proxy.set_accepting(true);
    worker.wait_ready().await;
    assert!(proxy.accepted() > connections, "a new connection");

    let manifests_store = store.clone();
    let done = eventually(WAIT, "every upload to complete", || {
        let store = manifests_store.clone();
        async move {
            let found = manifests(&store).await;
            (found.len() == 4).then_some(found)
        }
    })
    .await;
    for key in &keys {
        let manifest = done
            .iter()
            .find(|m| &m.source.key == key)
            .unwrap_or_else(|| panic!("{key} done"));
        check_manifest(&store, manifest, key).await;
    }
    // Redeliveries of jobs that were in flight at the cut find them done and are acked.
    eventually(WAIT, "the work queue to drain", || async {
        (broker.ready_count(&broker.settings.queue).await == 0).then_some(())
    })
    .await;
    let metrics = worker.stop().await;
    assert_eq!(metrics.dead_lettered.get(), 0);
    assert_eq!(outcome(&metrics, "rendered"), 4);
    broker.assert_queues_empty().await;
    // Every announcement is of a stored manifest. (A job whose manifest was written but
    // whose announcement could not be confirmed before the cut is not announced again.)
    while let Some(msg) = broker.try_get(&broker.events_queue).await {
        let m = ready_manifest(&msg.delivery.data);
        assert!(done.contains(&m));
    }
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_shutdown_finishes_the_job_in_flight() {
    let broker = Broker::new(3, 200).await;
    let (_dir, store) = temp_store();
    let worker = Worker::start(&broker.settings, Arc::new(store.clone()), 2);

    let key = "originals/big.jpg";
    let event = put(&store, key, jpeg(3000, 2000)).await;
    broker.publish(&event).await;
    let metrics = worker.metrics.clone();
    eventually(WAIT, "the job to start", || {
        let n = metrics.in_flight.get();
        async move { (n > 0).then_some(()) }
    })
    .await;
    let metrics = worker.stop().await;
    assert_eq!(metrics.in_flight.get(), 0);
    assert_eq!(outcome(&metrics, "rendered"), 1);

    let found = manifests(&store).await;
    assert_eq!(found.len(), 1);
    check_manifest(&store, &found[0], key).await;
    assert_eq!(broker.next_ready().await, found[0]);
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_topology_dead_letters_a_crash_looping_message() {
    // No worker: the test plays one that dies before acknowledging, every time.
    let broker = Broker::new(3, 200).await;
    let queue = broker.settings.queue.clone();
    broker.publish(b"poison").await;
    let returns = AtomicUsize::new(0);
    let dead = eventually(
        WAIT,
        "the quorum queue's delivery limit to dead-letter it",
        || async {
            if let Some(msg) = broker
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                assert!(
                    returns.fetch_add(1, Ordering::SeqCst) < 20,
                    "never dead-lettered"
                );
                msg.delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
                    .unwrap();
            }
            broker.try_get(&broker.dlq()).await
        },
    )
    .await;
    assert_eq!(dead.delivery.data, b"poison");
    assert!(returns.load(Ordering::SeqCst) > broker.settings.delivery_limit as usize);
    assert!(dead
        .delivery
        .properties
        .headers()
        .as_ref()
        .is_some_and(|h| h.contains_key("x-death")));
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_conflicting_topology_is_a_fatal_error() {
    let broker = Broker::new(3, 200).await;
    let (_dir, store) = temp_store();
    let mut settings = broker.settings.clone();
    settings.delivery_limit = broker.settings.delivery_limit + 1;
    let worker = Worker::start(&settings, Arc::new(store), 1);
    let result = tokio::time::timeout(WAIT, worker.handle)
        .await
        .expect("run gives up")
        .unwrap();
    match result {
        Err(RabbitError::Declare { name, .. }) => assert_eq!(name, broker.settings.queue),
        other => panic!("{other:?}"),
    }
    assert!(!worker.ready.is_ready());
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_shutdown_while_disconnected_returns_ok() {
    let broker = Broker::new(3, 200).await;
    let (_dir, store) = temp_store();
    let services = services().await;
    let proxy = Proxy::start(services.amqp_addr()).await;
    proxy.set_accepting(false);
    let mut settings = broker.settings.clone();
    settings.url = services.amqp_url_at(proxy.addr());
    let worker = Worker::start(&settings, Arc::new(store), 1);
    assert!(!worker.ready.is_ready());
    worker.stop().await;
    assert_eq!(proxy.accepted(), 0);
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_a_panicking_job_is_requeued_until_the_delivery_limit() {
    let broker = Broker::with_delivery_limit(3, 200, 2).await;
    let (_dir, store) = temp_store();
    let flaky = Arc::new(FlakyStore::new(store.clone(), 0));
    let worker = Worker::start(&broker.settings, flaky.clone(), 2);

    let event = put(&store, "originals/panics.jpg", jpeg(320, 240)).await;
    broker.publish(&event).await;
    let dead = broker.get(&broker.dlq()).await;
    assert_eq!(dead.delivery.data, event);
    let headers = dead.delivery.properties.headers().as_ref().unwrap();
    assert!(
        headers.contains_key("x-death"),
        "dead-lettered by the broker"
    );
    assert!(!headers.contains_key(rabbit::ERROR_KIND_HEADER));
    // The first delivery and `delivery_limit` redeliveries.
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 3);

    // Still consuming.
    let good = put(&store, "originals/fine.jpg", jpeg(320, 240)).await;
    broker.publish(&good).await;
    let manifest = broker.next_ready().await;
    check_manifest(&store, &manifest, "originals/fine.jpg").await;
    let metrics = worker.stop().await;
    assert_eq!(metrics.dead_lettered.get(), 0, "not by the worker");
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

/// The real `rendition worker --queue rabbitmq` binary on S3 (moto): uploads through the
/// S3 API, MinIO-shaped events on the uploads exchange, one worker SIGKILLed mid-batch and
/// replaced. Every upload completes, nothing is left in any queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_worker_binary_on_s3_loses_nothing_to_sigkill() {
    use aws_sdk_s3::primitives::ByteStream;
    let broker = Broker::new(5, 200).await;
    let mut world = World::s3().await;
    world.add_vars(broker.vars());
    let (s3, bucket) = (world.bucket().s3.clone(), world.bucket().name.clone());
    let spawn = || {
        world
            .rendition()
            .args(["worker", "--queue", "rabbitmq"])
            .start()
    };

    let (photo, _, _) = photos(".jpg", 4000).into_iter().next().unwrap();
    let bytes = std::fs::read(&photo).unwrap();
    let keys: Vec<String> = (0..6)
        .map(|i| format!("originals/rabbit {i}.jpg"))
        .collect();
    for key in &keys {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await
            .unwrap();
        broker
            .publish(&minio_event_in(
                &bucket,
                &key.replace(' ', "+"),
                bytes.len(),
            ))
            .await;
    }
    let mut first = spawn();
    first
        .wait_for(Duration::from_secs(120), "a first render", |v| {
            field(v, "message") == Some("rendered")
        })
        .await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();

    let mut second = spawn();
    let manifests = eventually(WAIT, "a manifest for every upload", || {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            let listed = s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix("derived/")
                .send()
                .await
                .ok()?;
            let n = listed
                .contents()
                .iter()
                .filter(|o| o.key().is_some_and(|k| k.ends_with("/manifest.json")))
                .count();
            (n == 6).then_some(n)
        }
    })
    .await;
    assert_eq!(manifests, 6);
    for key in &keys {
        let folder = format!("derived/{}/", key.trim_start_matches("originals/"));
        let listed = s3
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&folder)
            .send()
            .await
            .unwrap();
        // 5 eager presets + the manifest, once: the redelivered jobs wrote nothing twice.
        assert_eq!(listed.key_count(), Some(6), "{folder}");
    }
    second.terminate();
    let status = second.child.wait().await.unwrap();
    assert!(status.success(), "SIGTERM drains and exits 0: {status:?}");
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}
