//! The RabbitMQ consumer (`rendition worker --queue rabbitmq`): upload events in, eager
//! jobs run through the shared [`Handler`], outcome events out, with retries
//! through delay queues and a dead-letter queue for what cannot succeed.
//!
//! # Topology
//! Declared by [`run`] at every (re)connect, and by [`declare_topology`]; declaring is
//! idempotent, so several workers (and a backfill tool) can all do it. With the default
//! names (`queue = "rendition.jobs"`):
//!
//! | name | kind | arguments | role |
//! | --- | --- | --- | --- |
//! | `{uploads_exchange}` (`rendition.uploads`) | topic exchange, durable | | MinIO's AMQP target (or anything else) publishes storage events here |
//! | `{queue}` (`rendition.jobs`) | quorum queue, durable | `x-delivery-limit = {delivery_limit}` (omitted when 0: no limit), `x-dead-letter-exchange = ""`, `x-dead-letter-routing-key = {queue}.dlq` | the work queue, bound to the uploads exchange with `#` |
//! | `{queue}.retry.{n}`, n = 1 … `max_attempts - 1` | classic queue, durable | `x-message-ttl = min(retry_base_ms · 2^(n-1), retry_max_ms)`, `x-dead-letter-exchange = ""`, `x-dead-letter-routing-key = {queue}` | delay before attempt n + 1: messages wait out the TTL, then return to the work queue |
//! | `{queue}.dlq` | quorum queue, durable | | dead letters, for a person to inspect and redrive |
//! | `{events_exchange}` (`rendition.events`) | topic exchange, durable | | outcome events ([`rendition_pipeline::outcome`]), routing key = type: `derivatives.ready`, `derivatives.failed`, `derivatives.removed` |
//!
//! With the defaults (`max_attempts = 8`, `retry_base_ms = 1000`, `retry_max_ms = 60000`)
//! the retry queues are `.retry.1` … `.retry.7`, holding messages 1, 2, 4, 8, 16, 32 and
//! 60 s: a job that keeps meeting a storage outage is dead-lettered only after about two
//! minutes of retries (the earlier default, 5 attempts over 15 s, dead-lettered jobs
//! whenever an S3 outage outlasted it).
//! Every queue holds its own fixed delay, so no message waits behind a longer one.
//!
//! # What happens to a delivery
//! Deliveries are consumed with manual acknowledgement and a prefetch of `concurrency`,
//! and handled concurrently (at most `concurrency` at once, also across reconnects). A
//! delivery is acknowledged only once everything it led to is durably done, each publish
//! below being confirmed by the broker (publisher confirms):
//! - **Success**: one `derivatives.ready` event per completed source (a CloudEvent whose
//!   `data` is the manifest, persistent, `content-type: application/cloudevents+json`)
//!   and one `derivatives.removed` per source whose derivatives were deleted, on the
//!   events exchange; then ack. A source that was already done announces its stored
//!   manifest again, so announcements are at least once.
//! - **Failure**: first a `derivatives.failed` event (`permanent: false` for a retry,
//!   `true` for a dead letter) on the events exchange, then the copy below.
//! - **Retryable failure** (storage unavailable, a crashed render): the attempt number is
//!   the message's `x-rendition-attempt` header (1 when absent). Below `max_attempts`,
//!   the original body (with its content type, message id and other headers) is
//!   published, persistent, to `{queue}.retry.{attempt}` with
//!   `x-rendition-attempt = attempt + 1` and the error headers below; then ack. At
//!   `max_attempts` it is dead-lettered as below.
//! - **Permanent failure** (bad event, corrupt or unsupported image, missing source, …)
//!   or attempts exhausted: the original body goes to `{queue}.dlq` with the headers
//!   - `x-rendition-error-kind`: the stable error kind (`corrupt_image`,
//!     `missing_source`, `storage_unavailable`, …),
//!   - `x-rendition-error`: the error message (at most about 1 KB),
//!   - `x-rendition-attempts`: attempts made,
//!   - `x-rendition-retryable`: whether the error was of the retryable kind (true when
//!     the attempts ran out);
//!
//!   then ack.
//!
//! If a publish fails or the broker nacks it, the delivery is not acknowledged but
//! nacked with requeue (after a short pause), so nothing is lost; the quorum queue's
//! delivery limit dead-letters a message that keeps coming back (a message that crashes
//! workers, or one that can never be published onward). Such broker-made dead letters
//! carry RabbitMQ's `x-death` header instead of the `x-rendition-*` ones.
//!
//! # Connection loss and shutdown
//! When the connection or the channel dies (broker restart, network cut, a queue deleted
//! under the consumer), the worker reports not-ready, backs off (100 ms doubling to 5 s,
//! with jitter), reconnects, redeclares the topology and consumes again. Jobs still
//! running for the old channel finish but cannot be acknowledged; the broker redelivers
//! their messages, and since jobs are idempotent the repeat finds its work done.
//!
//! When the shutdown future resolves, the consumer is cancelled (no new deliveries),
//! the deliveries already received are finished and acknowledged, then the channel and
//! the connection are closed and [`run`] returns `Ok`.
//!
//! # Operating notes
//! - Redrive: move messages from `{queue}.dlq` back to `{queue}` (or the uploads
//!   exchange), e.g. with a shovel. They start again at attempt 1: the copies the worker
//!   dead-letters carry `x-rendition-attempts`, not `x-rendition-attempt`.
//! - Queue arguments cannot change in place. After changing `delivery_limit` or the
//!   retry delays, declaring fails with PRECONDITION_FAILED and [`run`] returns an error
//!   (no reconnect loop): delete the affected queues (the retry queues once empty) first.
//! - A network that dies silently is noticed by AMQP heartbeats (negotiated with the
//!   broker, 60 s by default); add `?heartbeat=10` to the URL to notice sooner.
//! - Announcements are at least once: if the connection is lost after a manifest was
//!   written but before its `derivatives.ready` was confirmed, the redelivery finds the
//!   manifest and announces it again. Consumers of the events must tolerate duplicates:
//!   a repeated outcome has the same CloudEvents `id` (also the AMQP message id).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::constants::REPLY_SUCCESS;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind,
    ExchangeKind,
};
use rendition_pipeline::disposition::{Disposition, Failure, Field, RetryPolicy};
use rendition_pipeline::outcome::{self, OutcomeEvent};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn, Instrument as _};

use crate::handler::Handler;
use crate::http::Readiness;

// # Layout
// - `topology`: names, retry delays and declaring them;
// - `consumer`: sessions, reconnects, settling each delivery from its disposition;
// - `publisher`: jobs straight onto the work queue (backfill);
// - `settings`: `[rabbitmq]`, its defaults and rules;
// - here: the shared connection helpers, error type and header names.
mod consumer;
mod publisher;
mod settings;
mod topology;

pub use consumer::run;
use consumer::*;
pub use publisher::JobPublisher;
pub use settings::RabbitSettings;
use topology::*;
pub use topology::{declare_topology, retry_policy};
/// Header carrying the attempt number of a retried message (absent on the first).
pub const ATTEMPT_HEADER: &str = "x-rendition-attempt";
/// Stable error kind of the last failure (retry and dead-letter copies).
pub const ERROR_KIND_HEADER: &str = "x-rendition-error-kind";
/// Error message of the last failure, cut to at most 1,024 bytes.
pub const ERROR_HEADER: &str = "x-rendition-error";
/// Attempts made so far.
pub const ATTEMPTS_HEADER: &str = "x-rendition-attempts";
/// Whether the last failure was of the retryable kind.
pub const RETRYABLE_HEADER: &str = "x-rendition-retryable";
/// Routing key of `derivatives.ready` events on the events exchange (every outcome event
/// is routed by its type: [`outcome::READY`], [`outcome::FAILED`], [`outcome::REMOVED`]).
pub const READY_ROUTING_KEY: &str = outcome::READY;

/// The failure headers are [`Failure::fields`] with this prefix.
const FAILURE_HEADER_PREFIX: &str = "x-rendition-";
/// Reconnect back-off bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A session that lasted this long resets the back-off.
const STABLE_SESSION: Duration = Duration::from_secs(5);
/// Connecting (TCP + AMQP handshake) gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before requeueing a delivery whose outcome could not be published.
const REQUEUE_PAUSE: Duration = Duration::from_millis(500);

/// Why the consumer stopped (or a topology declaration failed).
#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    #[error("invalid RabbitMQ settings: {0}")]
    Settings(String),
    #[error("cannot connect to RabbitMQ: {0}")]
    Connect(#[source] lapin::Error),
    #[error("connecting to RabbitMQ timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("cannot open a RabbitMQ channel: {0}")]
    Channel(#[source] lapin::Error),
    #[error("cannot declare {what} {name:?}: {source}")]
    Declare {
        what: &'static str,
        name: String,
        #[source]
        source: lapin::Error,
    },
    #[error("cannot consume from {queue:?}: {source}")]
    Consume {
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error("publishing to {target}: {reason}")]
    Publish { target: String, reason: String },
}

impl RabbitError {
    /// Errors a reconnect cannot fix: the configuration or the broker's existing topology
    /// must change first (a queue declared with other arguments, refused credentials or
    /// vhost).
    fn is_fatal(&self) -> bool {
        let amqp_code = |e: &lapin::Error| match e.kind() {
            ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
            _ => None,
        };
        match self {
            RabbitError::Settings(_) => true,
            // ACCESS_REFUSED, NOT_ALLOWED (unknown vhost).
            RabbitError::Connect(e) => matches!(amqp_code(e), Some(403 | 530)),
            // ACCESS_REFUSED, PRECONDITION_FAILED (exists with other arguments).
            RabbitError::Declare { source, .. } => matches!(amqp_code(source), Some(403 | 406)),
            _ => false,
        }
    }
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Connects (TCP + AMQP handshake) within [`CONNECT_TIMEOUT`], naming the connection.
async fn connect(url: &str, name: &str) -> Result<Connection, RabbitError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .map_err(|_| RabbitError::ConnectTimeout(CONNECT_TIMEOUT))?
        .map_err(RabbitError::Connect)
}

/// A new channel in publisher-confirm mode.
async fn confirming_channel(connection: &Connection) -> Result<Channel, RabbitError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(RabbitError::Channel)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(RabbitError::Channel)?;
    Ok(channel)
}

/// A text header (`traceparent`, …), when present as a string.
pub fn header_text(props: &BasicProperties, name: &str) -> Option<String> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_string),
        _ => None,
    }
}

/// An integer header, whatever integer (or numeric string) type the publisher used.
pub fn header_int(props: &BasicProperties, name: &str) -> Option<i64> {
    let value = props.headers().as_ref()?.inner().get(name)?;
    match value {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// Bounded exponential back-off with jitter (each delay is 50-100 % of the nominal one).
struct Backoff {
    nominal: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            nominal: BACKOFF_MIN,
        }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let nominal = self.nominal;
        self.nominal = (nominal * 2).min(BACKOFF_MAX);
        // Random enough for spreading reconnects, without another dependency.
        let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        nominal / 2 + nominal * r / 2000
    }

    fn reset(&mut self) {
        self.nominal = BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendition_pipeline::disposition::decide;

    fn settings(max_attempts: u32) -> RabbitSettings {
        RabbitSettings {
            max_attempts,
            retry_base_ms: 1000,
            retry_max_ms: 5000,
            ..RabbitSettings::default()
        }
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let s = settings(6);
        let names = Names::new(&s).unwrap();
        let delays: Vec<u64> = names.retries.iter().map(|(_, ms)| *ms).collect();
        assert_eq!(delays, [1000, 2000, 4000, 5000, 5000]);
        assert_eq!(names.policy.delay(200), Duration::from_millis(5000));
        let queues: Vec<&str> = names.retries.iter().map(|(q, _)| q.as_str()).collect();
        assert_eq!(
            queues,
            [
                "rendition.jobs.retry.1",
                "rendition.jobs.retry.2",
                "rendition.jobs.retry.3",
                "rendition.jobs.retry.4",
                "rendition.jobs.retry.5"
            ]
        );
        assert_eq!(
            names.retry_queue(1).map(ShortString::as_str),
            Some("rendition.jobs.retry.1")
        );
        assert_eq!(names.retry_queue(6), None);
        assert_eq!(names.retry_queue(0), None);
        assert!(Names::new(&settings(1)).unwrap().retries.is_empty());
    }

    #[test]
    fn every_attempt_the_policy_retries_has_a_retry_queue() {
        for max in 1..6 {
            let names = Names::new(&settings(max)).unwrap();
            for attempt in 1..max + 2 {
                let outage: Result<(), _> = Err(
                    rendition_pipeline::store::StoreError::Unavailable("down".into()),
                );
                let retried = matches!(
                    decide(outage, attempt, &names.policy),
                    Disposition::Retry { .. }
                );
                assert_eq!(
                    retried,
                    names.retry_queue(attempt).is_some(),
                    "{max}/{attempt}"
                );
            }
        }
    }

    #[test]
    fn failure_headers_replace_ours_and_keep_the_rest() {
        let original = FieldTable::default()
            .with("x-custom", long_string("kept"))
            .with(ERROR_HEADER, long_string("an older failure"))
            .with("x-death", AMQPValue::Boolean(true));
        let props = BasicProperties::default().with_headers(original);
        let failure = Failure {
            kind: "corrupt_image",
            reason: "truncated".into(),
            attempts: 2,
            retryable: false,
        };
        let headers = failure_headers(&props, &failure);
        let mut names: Vec<&str> = headers.inner().keys().map(ShortString::as_str).collect();
        names.sort_unstable();
        let mut expected = vec![
            "x-custom",
            ERROR_KIND_HEADER,
            ERROR_HEADER,
            ATTEMPTS_HEADER,
            RETRYABLE_HEADER,
        ];
        expected.sort_unstable();
        assert_eq!(names, expected);
        let get = |k: &str| headers.inner().get(k).cloned();
        assert_eq!(get(ERROR_KIND_HEADER), Some(long_string("corrupt_image")));
        assert_eq!(get(ERROR_HEADER), Some(long_string("truncated")));
        assert_eq!(get(ATTEMPTS_HEADER), Some(AMQPValue::LongLongInt(2)));
        assert_eq!(get(RETRYABLE_HEADER), Some(AMQPValue::Boolean(false)));
    }

    #[test]
    fn bad_names_are_settings_errors() {
        let mut s = settings(3);
        s.queue = "q".repeat(250);
        assert!(matches!(Names::new(&s), Err(RabbitError::Settings(_))));
        let mut s = settings(3);
        s.events_exchange.clear();
        assert!(matches!(Names::new(&s), Err(RabbitError::Settings(_))));
        assert!(matches!(
            Names::new(&settings(0)),
            Err(RabbitError::Settings(_))
        ));
    }

    #[test]
    fn attempt_header_is_read_leniently() {
        let with = |v: AMQPValue| {
            BasicProperties::default().with_headers(FieldTable::default().with(ATTEMPT_HEADER, v))
        };
        assert_eq!(attempt_of(&BasicProperties::default()), 1);
        assert_eq!(attempt_of(&with(AMQPValue::LongLongInt(3))), 3);
        assert_eq!(attempt_of(&with(AMQPValue::ShortShortUInt(2))), 2);
        assert_eq!(attempt_of(&with(long_string(" 4 "))), 4);
        assert_eq!(attempt_of(&with(AMQPValue::LongLongInt(-5))), 1);
        assert_eq!(attempt_of(&with(AMQPValue::LongLongInt(0))), 1);
        assert_eq!(attempt_of(&with(AMQPValue::Boolean(true))), 1);
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert!(delays[0] >= BACKOFF_MIN / 2 && delays[0] <= BACKOFF_MIN);
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX));
        assert!(delays[9] >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next() <= BACKOFF_MIN);
    }
}
