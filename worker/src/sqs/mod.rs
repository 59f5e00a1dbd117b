//! The SQS consumer: S3 event notifications arrive on a queue (directly, or via SNS or
//! EventBridge), competing workers long-poll it.
//!
//! - Long polling, up to `batch_size` (≤ 10) messages per receive, never more than the
//!   free concurrency slots; each message is handled in its own task.
//! - While a job runs its visibility timeout is extended (a heartbeat every half timeout),
//!   so a slow render is not handed to a second worker.
//! - Only successes are deleted, in batches. A retryable failure is made visible again
//!   after a backoff that grows with the receive count; a permanent failure is sent to the
//!   queue's dead-letter queue (found from its `RedrivePolicy`) with the reason in message
//!   attributes, then deleted. Without a redrive policy it is made visible at once and
//!   left to the queue. A worker that dies mid-job loses nothing: the message reappears
//!   when its visibility timeout ends, and names are idempotent.
//! - Outcome events ([`rendition_pipeline::outcome`]) go to the SNS topic
//!   `events.sns_topic_arn` before the message is settled: a success is deleted, and a
//!   dead letter moved, only once its events were accepted (at least once); a retry's
//!   `derivatives.failed` is sent once per attempt, best effort (the message comes back
//!   anyway). A retryable failure whose receives run out is moved to the DLQ by the
//!   queue's redrive policy, unseen by the worker: it is announced only by its retries.
//! - On shutdown: stop receiving, finish and delete what is in flight, return.
//!
//! # Layout
//! - [`client`](mod@client): the SDK client from settings, and the queue's dead-letter queue found
//!   from its redrive policy;
//! - [`consumer`]: the receive loop, one task per message, the visibility heartbeat, and
//!   the translation of a job's [`Disposition`](rendition_pipeline::disposition::Disposition)
//!   into delete, make-visible-later or dead-letter;
//! - `settings`: [`SqsSettings`] (`[sqs]`), its defaults and rules.

use std::time::Duration;

use rendition_pipeline::disposition::RetryPolicy;

pub mod client;
pub mod consumer;
mod settings;

pub use client::client;
pub use consumer::run;
pub use settings::SqsSettings;

#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    #[error("sqs.queue_url is not set")]
    NoQueue,
    #[error("cannot read the attributes of {queue}: {message}")]
    Attributes { queue: String, message: String },
    #[error(transparent)]
    Sns(#[from] rendition_aws::sns::PublishError),
    #[error("sending {event_type} to {queue}: {message}")]
    EventsQueue {
        queue: String,
        event_type: &'static str,
        message: String,
    },
}

/// The retry policy of an SQS queue: a retryable failure is visible again after 2 s,
/// doubling with the receive count up to 1,024 s or the visibility timeout; no cap of our
/// own, the queue's redrive policy counts the receives out.
pub fn retry_policy(settings: &SqsSettings) -> RetryPolicy {
    let visibility = u64::try_from(settings.visibility_timeout_secs).unwrap_or(0);
    RetryPolicy::uncapped(
        Duration::from_secs(2),
        Duration::from_secs(visibility.min(1024)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_the_receive_count_up_to_the_visibility_timeout() {
        let settings = |visibility_timeout_secs| SqsSettings {
            visibility_timeout_secs,
            ..SqsSettings::default()
        };
        for visibility in [10, 60, 43_200] {
            let policy = retry_policy(&settings(visibility));
            assert_eq!(policy.max_attempts, None, "the redrive policy counts");
            for receives in 1..20u32 {
                let expected = (1i32 << receives.min(10)).min(visibility);
                assert_eq!(
                    policy.delay(receives),
                    Duration::from_secs(expected as u64),
                    "{visibility}/{receives}"
                );
            }
        }
    }
}
