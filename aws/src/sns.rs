//! Outcome events to an SNS topic (`events.sns_topic_arn`): the one publisher of the SQS
//! worker and the Lambda. Each [`OutcomeEvent`] is one SNS message whose body is the
//! CloudEvent (structured JSON), with message attributes `type` (the event type, so a
//! subscription's filter policy can pick e.g. only `derivatives.failed`) and, when the
//! job was traced, `traceparent`. Subscribers with raw message delivery receive the
//! CloudEvent as it is; without it, in the SNS envelope's `Message`.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_sdk_sns::error::DisplayErrorContext;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use rendition_pipeline::config::EventsSettings;
use rendition_pipeline::outcome::OutcomeEvent;

/// The message attribute carrying the event type.
pub const TYPE_ATTRIBUTE: &str = "type";
/// The message attribute carrying the W3C trace context (`telemetry::TRACEPARENT`, which
/// is behind another feature).
const TRACEPARENT: &str = "traceparent";
/// Attempts per publish (the first included) in the SDK's standard retry mode.
const MAX_ATTEMPTS: u32 = 3;
/// One publish, retries included, gives up after this long: the message it settles is
/// then left to its queue (or the invocation fails), and the event comes again.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// A publish that SNS did not accept.
#[derive(Debug, thiserror::Error)]
#[error("publishing {event_type} {id} to {topic}: {reason}")]
pub struct PublishError {
    pub topic: String,
    pub event_type: &'static str,
    pub id: String,
    pub reason: String,
}

/// Publishes outcome events to one topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// A publisher over a client configured by the caller.
    pub fn new(client: Client, topic_arn: String) -> SnsPublisher {
        SnsPublisher { client, topic_arn }
    }

    /// The publisher of `events.sns_topic_arn`, or `None` when it is unset: credentials
    /// from the standard AWS chain, region from the ARN, custom endpoint when set.
    pub async fn from_settings(s: &EventsSettings) -> Option<SnsPublisher> {
        let topic_arn = s.sns_topic_arn.clone()?;
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let region = s.topic_region().map(str::to_string);
        let sdk = crate::sdk_config(region, Some(timeouts), MAX_ATTEMPTS).await;
        let mut conf = aws_sdk_sns::config::Builder::from(&sdk);
        if let Some(endpoint) = &s.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        Some(SnsPublisher::new(
            Client::from_conf(conf.build()),
            topic_arn,
        ))
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Publishes `events` in order, each accepted by SNS before the next; the first
    /// refusal ends it (those before it were published: at least once, consumers
    /// deduplicate by `id`).
    pub async fn publish(&self, events: &[OutcomeEvent]) -> Result<(), PublishError> {
        for event in events {
            self.publish_one(event).await?;
        }
        Ok(())
    }

    async fn publish_one(&self, event: &OutcomeEvent) -> Result<(), PublishError> {
        let mut publish = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(event.to_json())
            .message_attributes(TYPE_ATTRIBUTE, text(event.kind()));
        if let Some(parent) = &event.traceparent {
            publish = publish.message_attributes(TRACEPARENT, text(parent));
        }
        // Boxed: the SDK's future is deep, and the Lambda's whole invocation is one future
        // whose layout the compiler must compute within its query depth.
        Box::pin(publish.send())
            .await
            .map(|_| ())
            .map_err(|e| PublishError {
                topic: self.topic_arn.clone(),
                event_type: event.kind(),
                id: event.id.clone(),
                reason: DisplayErrorContext(&e).to_string(),
            })
    }
}

fn text(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("the data type is set")
}
