//! Outcome events as an application subscribed to them receives them: a queue bound with
//! `#` to the RabbitMQ events exchange (the real `rendition worker --queue rabbitmq`), and
//! an SQS queue subscribed (raw message delivery) to an SNS topic on moto, fed by the
//! real `rendition worker --queue sqs` and by the Lambda (its storage trigger, through
//! cargo-lambda's Runtime API). Every event is checked against the required attributes of
//! `schemas/event.schema.json` and read back as the core's type.

use std::collections::HashMap;
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rendition_pipeline::outcome::{self, Outcome, OutcomeEvent};
use serde_json::{json, Value};

use crate::harness::*;
use crate::lambda::{s3_record, truncated_jpeg, Function, Invoked};
use crate::rabbit::{minio_event_in, Broker};
use crate::sqs::SqsWorld;

const WAIT: Duration = Duration::from_secs(120);

/// `body` as a CloudEvent: the attributes the checked-in schema requires are there and
/// well formed, and the core reads it.
fn cloudevent(body: &[u8]) -> OutcomeEvent {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schemas/event.schema.json")).unwrap(),
    )
    .unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("the schema requires attributes")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for attribute in ["specversion", "id", "source", "time", "datacontenttype"] {
        assert!(required.contains(&attribute), "{attribute}: {required:?}");
    }
    for attribute in required.iter().chain(&["type", "data"]) {
        assert!(v.get(attribute).is_some(), "no {attribute}: {v}");
    }
    assert_eq!(v["specversion"], "1.0", "{v}");
    assert_eq!(v["datacontenttype"], "application/json", "{v}");
    for attribute in ["id", "source", "type", "time"] {
        assert!(
            v[attribute].as_str().is_some_and(|s| !s.is_empty()),
            "{attribute}: {v}"
        );
    }
    // RFC 3339 in UTC.
    let time = v["time"].as_str().unwrap();
    assert!(
        time.len() >= 20 && time.ends_with('Z') && &time[10..11] == "T",
        "{time}"
    );
    serde_json::from_value(v).expect("the core reads the event")
}

fn failed(event: &OutcomeEvent) -> &outcome::Failed {
    match &event.outcome {
        Outcome::Failed(data) => data,
        other => panic!("not derivatives.failed: {other:?}"),
    }
}

// ---------------------------------------------------------------- RabbitMQ

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_announces_ready_failed_and_removed_on_the_events_exchange() {
    let broker = Broker::new(3, 200).await;
    let mut world = World::s3().await;
    world.add_vars(broker.vars());
    let bucket = world.bucket();
    let source = format!("rendition://{}", bucket.name);

    // An application's queue: every event type. Exclusive, so it goes with the connection.
    let connection = Connection::connect(&broker.settings.url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = unique("rendition-test-outcomes");
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.as_str().into(), exclusive, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            broker.settings.events_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // The next event, as delivered: routing key, AMQP type and message id say what it is.
    let next = || async {
        let msg = eventually(WAIT, "an outcome event", || async {
            channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
        })
        .await;
        let props = &msg.delivery.properties;
        assert_eq!(
            props.content_type().as_ref().map(|c| c.as_str()),
            Some("application/cloudevents+json")
        );
        assert_eq!(props.delivery_mode(), &Some(2));
        let event = cloudevent(&msg.delivery.data);
        assert_eq!(msg.delivery.routing_key.as_str(), event.kind());
        assert_eq!(
            props.kind().as_ref().map(|k| k.as_str()),
            Some(event.kind())
        );
        assert_eq!(
            props.message_id().as_ref().map(|k| k.as_str()),
            Some(event.id.as_str())
        );
        event
    };

    let mut worker = world
        .rendition()
        .args(["worker", "--queue", "rabbitmq"])
        .start();

    // A good upload: derivatives.ready, the stored manifest as its data.
    let good = encode_jpeg(&quadrants(640, 480), 85);
    bucket
        .put("originals/good.jpg", good.clone(), Some("image/jpeg"))
        .await;
    broker
        .publish(&minio_event_in(
            &bucket.name,
            "originals/good.jpg",
            good.len(),
        ))
        .await;
    let ready = next().await;
    assert_eq!(ready.kind(), "derivatives.ready");
    assert_eq!(ready.source, source);
    assert_eq!(ready.subject.as_deref(), Some("originals/good.jpg"));
    let stored = bucket.manifests().await;
    assert_eq!(
        ready.outcome,
        Outcome::Ready(stored["originals/good.jpg"].clone())
    );

    // A corrupt upload: derivatives.failed, permanent (dead-lettered at once).
    let corrupt = b"\xFF\xD8\xFF\xE0 this is not really a JPEG".to_vec();
    let corrupt_len = corrupt.len();
    bucket
        .put("originals/corrupt.jpg", corrupt, Some("image/jpeg"))
        .await;
    broker
        .publish(&minio_event_in(
            &bucket.name,
            "originals/corrupt.jpg",
            corrupt_len,
        ))
        .await;
    let event = next().await;
    assert_eq!(event.kind(), "derivatives.failed");
    assert_eq!(event.subject.as_deref(), Some("originals/corrupt.jpg"));
    let data = failed(&event);
    assert_eq!(data.source.as_deref(), Some("originals/corrupt.jpg"));
    assert_eq!(data.kind, "corrupt_image");
    assert!(data.permanent && !data.retryable, "{data:?}");
    assert_eq!(data.attempts, 1);
    assert!(data.reason.contains("originals/corrupt.jpg"), "{data:?}");

    // The good source removed: derivatives.removed once its derivatives are gone.
    let derived = bucket.keys("derived/good.jpg/").await;
    assert!(derived.len() >= 2, "{derived:?}");
    bucket.delete("originals/good.jpg").await;
    let mut removal: Value =
        serde_json::from_slice(&minio_event_in(&bucket.name, "originals/good.jpg", 0)).unwrap();
    removal["EventName"] = json!("s3:ObjectRemoved:Delete");
    removal["Records"][0]["eventName"] = json!("s3:ObjectRemoved:Delete");
    broker.publish(&serde_json::to_vec(&removal).unwrap()).await;
    let removed = next().await;
    assert_eq!(removed.kind(), "derivatives.removed");
    assert_eq!(removed.subject.as_deref(), Some("originals/good.jpg"));
    match &removed.outcome {
        Outcome::Removed(data) => {
            assert_eq!(data.source, "originals/good.jpg");
            assert_eq!(data.deleted, derived.len() as u64);
        }
        other => panic!("{other:?}"),
    }
    assert!(bucket.keys("derived/good.jpg/").await.is_empty());
    assert_eq!(
        [&ready.id, &event.id, &removed.id]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );

    worker.terminate();
    let status = worker.child.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
    drop(connection);
    broker.cleanup().await;
}

// ---------------------------------------------------------------- SNS

/// An SNS topic on moto and an application's SQS queue subscribed to it with raw message
/// delivery (the event as the body, the SNS message attributes as SQS ones).
struct Subscriber {
    sqs: aws_sdk_sqs::Client,
    topic_arn: String,
    queue_url: String,
    endpoint: String,
}

impl Subscriber {
    async fn new() -> Subscriber {
        let services = services().await;
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::Config::builder()
                .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
                .region(aws_sdk_sns::config::Region::new(services.region.clone()))
                .endpoint_url(&services.sqs_endpoint)
                .credentials_provider(aws_sdk_sns::config::Credentials::new(
                    &services.access_key_id,
                    &services.secret_access_key,
                    None,
                    None,
                    "test",
                ))
                .build(),
        );
        let topic_arn = sns
            .create_topic()
            .name(unique("rendition-events"))
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let sqs = services.sqs();
        let queue_url = sqs
            .create_queue()
            .queue_name(unique("rendition-subscriber"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = crate::sqs::queue_arn(&sqs, &queue_url).await;
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        Subscriber {
            sqs,
            topic_arn,
            queue_url,
            endpoint: services.sqs_endpoint.clone(),
        }
    }

    /// What points a binary at the topic.
    fn vars(&self) -> [(&'static str, String); 2] {
        [
            ("RENDITION__EVENTS__SNS_TOPIC_ARN", self.topic_arn.clone()),
            ("RENDITION__EVENTS__ENDPOINT", self.endpoint.clone()),
        ]
    }

    /// The next event on the subscribed queue, with its message attributes.
    async fn next(&self) -> (OutcomeEvent, HashMap<String, String>) {
        let message = eventually(WAIT, "an outcome event on the subscribed queue", || async {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .wait_time_seconds(1)
                .max_number_of_messages(1)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            out.messages.and_then(|m| m.into_iter().next())
        })
        .await;
        self.sqs
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
        let attributes: HashMap<String, String> = message
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let event = cloudevent(message.body().unwrap_or_default().as_bytes());
        assert_eq!(
            attributes.get("type").map(String::as_str),
            Some(event.kind()),
            "{attributes:?}"
        );
        (event, attributes)
    }

    /// The next event of `kind` about `subject`, skipping others (the worker may announce
    /// several outcomes in either order).
    async fn next_about(&self, kind: &str, subject: &str) -> OutcomeEvent {
        loop {
            let (event, _) = self.next().await;
            if event.kind() == kind && event.subject.as_deref() == Some(subject) {
                return event;
            }
        }
    }
}

#[tokio::test]
async fn sqs_worker_announces_on_the_sns_topic() {
    let subscriber = Subscriber::new().await;
    let mut world = SqsWorld::new().await;
    world.world.add_vars(subscriber.vars());
    let mut worker = world.worker(&[]);

    world
        .upload(
            "originals/corrupt.jpg",
            b"\xFF\xD8\xFF\xE0 definitely not a jpeg".to_vec(),
        )
        .await;
    let event = subscriber
        .next_about("derivatives.failed", "originals/corrupt.jpg")
        .await;
    assert_eq!(event.source, format!("rendition://{}", world.bucket().name));
    let data = failed(&event);
    assert_eq!(data.kind, "corrupt_image");
    assert!(data.permanent && !data.retryable, "{data:?}");
    assert_eq!(data.attempts, 1);
    // …and the message was dead-lettered as before.
    let (_, attrs) = world.dlq_message().await;
    assert_eq!(
        attrs.get("rendition-error-kind").map(String::as_str),
        Some("corrupt_image")
    );

    world
        .upload("originals/fine.jpg", encode_jpeg(&quadrants(640, 480), 90))
        .await;
    let ready = subscriber
        .next_about("derivatives.ready", "originals/fine.jpg")
        .await;
    let manifests = world.wait_manifests(1).await;
    assert_eq!(
        ready.outcome,
        Outcome::Ready(manifests["originals/fine.jpg"].clone())
    );

    worker.terminate();
    let status = worker.child.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn lambda_storage_trigger_announces_on_the_sns_topic() {
    let subscriber = Subscriber::new().await;
    let world = World::s3().await;
    let vars = subscriber.vars();
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let f = Function::start(&world, &extra).await;
    let bucket = world.bucket();

    // A corrupt upload: a permanent error, and derivatives.failed on the topic.
    let bad = truncated_jpeg();
    let bad_len = bad.len() as u64;
    let etag = bucket
        .put("originals/broken.jpg", bad, Some("image/jpeg"))
        .await;
    let event =
        json!({ "Records": [s3_record(&bucket.name, "originals/broken.jpg", bad_len, &etag)] });
    match f.invoke(&event).await {
        Invoked::Err(kind, _) => assert_eq!(kind, "Rendition.Permanent.corrupt_image"),
        other => panic!("expected a function error, got {other:?}"),
    }
    let failure = subscriber
        .next_about("derivatives.failed", "originals/broken.jpg")
        .await;
    let data = failed(&failure);
    assert_eq!(data.kind, "corrupt_image");
    assert!(data.permanent, "{data:?}");
    // Lambda retrying the same event announces the same outcome: the same id.
    assert!(matches!(f.invoke(&event).await, Invoked::Err(..)));
    let again = subscriber
        .next_about("derivatives.failed", "originals/broken.jpg")
        .await;
    assert_eq!(again.id, failure.id);

    // A good upload: derivatives.ready with the stored manifest.
    let good = encode_jpeg(&quadrants(800, 600), 90);
    let good_len = good.len() as u64;
    let etag = bucket
        .put("originals/good.jpg", good, Some("image/jpeg"))
        .await;
    let event =
        json!({ "Records": [s3_record(&bucket.name, "originals/good.jpg", good_len, &etag)] });
    let out = f.invoke(&event).await.ok();
    assert_eq!(out["rendered"], 1, "{out}");
    let ready = subscriber
        .next_about("derivatives.ready", "originals/good.jpg")
        .await;
    let manifests = bucket.manifests().await;
    assert_eq!(
        ready.outcome,
        Outcome::Ready(manifests["originals/good.jpg"].clone())
    );
}
