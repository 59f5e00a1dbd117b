//! The RabbitMQ consumer (`rendition worker --queue rabbitmq`): upload events in, eager
//! jobs run through the shared [`Handler`], `derivatives.ready` events out, with retries
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
//! | `{events_exchange}` (`rendition.events`) | topic exchange, durable | | completion events, routing key `derivatives.ready` |
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
//! - **Success**: one `derivatives.ready` message per completed source (the manifest as
//!   JSON, persistent, `content-type: application/json`) on the events exchange; then
//!   ack. A source that was already done announces its stored manifest again, so
//!   announcements are at least once.
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
//!   manifest and announces it again. Consumers of the events must tolerate duplicates
//!   (the manifest's `source.guid` identifies the version).

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
use rendition_core::config::RabbitSettings;
use rendition_core::disposition::{decide, Disposition, Failure, Field, RetryPolicy};
use rendition_core::manifest::Manifest;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::handler::Handler;
use crate::http::Readiness;

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
/// Routing key of completion events on the events exchange.
pub const READY_ROUTING_KEY: &str = "derivatives.ready";

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

/// The names of the topology, checked once.
struct Names {
    queue: ShortString,
    dlq: ShortString,
    uploads: ShortString,
    events: ShortString,
    ready: ShortString,
    /// `{queue}.retry.{n}` and its delay in ms, for n = 1 … max_attempts - 1.
    retries: Vec<(ShortString, u64)>,
    delivery_limit: u32,
    /// What a failed delivery becomes; its delays are the retry queues' TTLs.
    policy: RetryPolicy,
}

impl Names {
    fn new(settings: &RabbitSettings) -> Result<Names, RabbitError> {
        let name = |what: &str, value: String| {
            if value.is_empty() {
                return Err(RabbitError::Settings(format!("rabbitmq.{what} is empty")));
            }
            ShortString::try_new(value).map_err(|e| {
                RabbitError::Settings(format!("rabbitmq.{what} is too long for AMQP: {e}"))
            })
        };
        if settings.max_attempts == 0 {
            return Err(RabbitError::Settings(
                "rabbitmq.max_attempts must be at least 1".into(),
            ));
        }
        let q = &settings.queue;
        let policy = retry_policy(settings);
        Ok(Names {
            queue: name("queue", q.clone())?,
            dlq: name("queue", format!("{q}.dlq"))?,
            uploads: name("uploads_exchange", settings.uploads_exchange.clone())?,
            events: name("events_exchange", settings.events_exchange.clone())?,
            ready: READY_ROUTING_KEY.into(),
            retries: (1..settings.max_attempts)
                .map(|n| {
                    Ok((
                        name("queue", format!("{q}.retry.{n}"))?,
                        u64::try_from(policy.delay(n).as_millis()).unwrap_or(u64::MAX),
                    ))
                })
                .collect::<Result<_, RabbitError>>()?,
            delivery_limit: settings.delivery_limit,
            policy,
        })
    }

    /// The retry queue of a message that just failed attempt `attempt`.
    fn retry_queue(&self, attempt: u32) -> Option<&ShortString> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        self.retries.get(index).map(|(name, _)| name)
    }
}

/// The retry policy of `rabbitmq.*`: `max_attempts` in all, the delay before attempt
/// `n + 1` being `min(retry_base_ms · 2^(n-1), retry_max_ms)`.
pub fn retry_policy(settings: &RabbitSettings) -> RetryPolicy {
    RetryPolicy {
        max_attempts: Some(settings.max_attempts),
        base_delay: Duration::from_millis(settings.retry_base_ms),
        max_delay: Duration::from_millis(settings.retry_max_ms),
    }
}

/// Declares the exchanges, queues and binding described in the module documentation.
/// Idempotent; fails (PRECONDITION_FAILED) if one exists with other arguments.
pub async fn declare_topology(
    channel: &Channel,
    settings: &RabbitSettings,
) -> Result<(), RabbitError> {
    declare(channel, &Names::new(settings)?).await
}

async fn declare(channel: &Channel, names: &Names) -> Result<(), RabbitError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let queue = |what: &'static str, name: &ShortString, args: FieldTable| {
        let name = name.clone();
        async move {
            channel
                .queue_declare(name.clone(), durable, args)
                .await
                .map(drop)
                .map_err(|source| RabbitError::Declare {
                    what,
                    name: name.to_string(),
                    source,
                })
        }
    };
    let exchange = |name: &ShortString| {
        let name = name.clone();
        async move {
            channel
                .exchange_declare(
                    name.clone(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|source| RabbitError::Declare {
                    what: "exchange",
                    name: name.to_string(),
                    source,
                })
        }
    };
    let quorum = || {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string("quorum"));
        args
    };

    queue("dead-letter queue", &names.dlq, quorum()).await?;

    let mut work = quorum();
    if names.delivery_limit > 0 {
        work.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(names.delivery_limit)),
        );
    }
    work.insert("x-dead-letter-exchange".into(), long_string(""));
    work.insert(
        "x-dead-letter-routing-key".into(),
        long_string(names.dlq.as_str()),
    );
    queue("work queue", &names.queue, work).await?;

    for (retry, delay_ms) in &names.retries {
        let mut args = FieldTable::default();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(*delay_ms).unwrap_or(i64::MAX)),
        );
        args.insert("x-dead-letter-exchange".into(), long_string(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            long_string(names.queue.as_str()),
        );
        queue("retry queue", retry, args).await?;
    }

    exchange(&names.uploads).await?;
    channel
        .queue_bind(
            names.queue.clone(),
            names.uploads.clone(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| RabbitError::Declare {
            what: "binding to the uploads exchange of",
            name: names.queue.to_string(),
            source,
        })?;
    exchange(&names.events).await?;
    Ok(())
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Consumes the work queue until `shutdown` resolves, reconnecting whenever the
/// connection or channel is lost. Returns `Ok` after a clean drain, or an error that a
/// reconnect cannot fix (invalid settings, refused credentials, a queue that exists with
/// other arguments).
pub async fn run(
    settings: &RabbitSettings,
    concurrency: usize,
    handler: Handler,
    ready: Readiness,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RabbitError> {
    let names = Arc::new(Names::new(settings)?);
    let concurrency = concurrency.clamp(1, usize::from(u16::MAX));
    let worker = Worker {
        names,
        handler,
        limit: Arc::new(Semaphore::new(concurrency)),
    };
    let mut stop = Stop::new(shutdown);
    // Every job task, across sessions: those of a lost channel still finish (and free
    // their permit), and shutdown waits for all of them.
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = Backoff::default();

    let result = loop {
        let opened = tokio::select! {
            biased;
            () = stop.wait() => break Ok(()),
            opened = open_session(&settings.url, &worker.names, concurrency) => opened,
        };
        let lost = match opened {
            Ok(session) => {
                ready.set_broker(true);
                info!(queue = %worker.names.queue, concurrency, "consuming");
                let started = Instant::now();
                let end = consume(session, &worker, &mut stop, &mut tasks).await;
                ready.set_broker(false);
                match end {
                    SessionEnd::Stopped => break Ok(()),
                    SessionEnd::Lost(reason) => {
                        if started.elapsed() >= STABLE_SESSION {
                            backoff.reset();
                        }
                        reason
                    }
                }
            }
            Err(e) if e.is_fatal() => break Err(e),
            Err(e) => e.to_string(),
        };
        ready.set_broker(false);
        let delay = backoff.next();
        warn!(reason = %lost, retry_in_ms = delay.as_millis() as u64, "RabbitMQ unavailable; reconnecting");
        tokio::select! {
            biased;
            () = stop.wait() => break Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    };
    ready.set_broker(false);
    // Jobs of lost channels: nothing left to acknowledge with, but let them end.
    while let Some(joined) = tasks.join_next().await {
        log_join(joined);
    }
    match &result {
        Ok(()) => info!("RabbitMQ consumer stopped"),
        Err(e) => error!(error = %e, "RabbitMQ consumer failed"),
    }
    result
}

/// What every job task needs.
#[derive(Clone)]
struct Worker {
    names: Arc<Names>,
    handler: Handler,
    limit: Arc<Semaphore>,
}

struct Session {
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
}

enum SessionEnd {
    /// Shut down cleanly: consumer cancelled, jobs acknowledged, connection closed.
    Stopped,
    /// The connection or channel went away.
    Lost(String),
}

async fn open_session(
    url: &str,
    names: &Names,
    concurrency: usize,
) -> Result<Session, RabbitError> {
    let connection = connect(url, "rendition-worker").await?;
    match start_consuming(&connection, names, concurrency).await {
        Ok((channel, consumer)) => Ok(Session {
            connection,
            channel,
            consumer,
        }),
        Err(e) => {
            let _ = connection.close(REPLY_SUCCESS, "setup failed".into()).await;
            Err(e)
        }
    }
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

async fn start_consuming(
    connection: &Connection,
    names: &Names,
    concurrency: usize,
) -> Result<(Channel, lapin::Consumer), RabbitError> {
    let channel = confirming_channel(connection).await?;
    declare(&channel, names).await?;
    let prefetch = u16::try_from(concurrency).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(RabbitError::Channel)?;
    let tag = format!("rendition-{}", uuid::Uuid::new_v4());
    let consumer = channel
        .basic_consume(
            names.queue.clone(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| RabbitError::Consume {
            queue: names.queue.to_string(),
            source,
        })?;
    Ok((channel, consumer))
}

/// Runs one session: spawns a job per delivery until the consumer ends.
async fn consume<F: Future<Output = ()>>(
    session: Session,
    worker: &Worker,
    stop: &mut Stop<F>,
    tasks: &mut JoinSet<()>,
) -> SessionEnd {
    let Session {
        connection,
        channel,
        mut consumer,
    } = session;
    let mut stopping = false;
    let mut failure: Option<String> = None;
    loop {
        tokio::select! {
            biased;
            () = stop.wait(), if !stopping => {
                stopping = true;
                info!(in_flight = tasks.len(), "shutting down: cancelling the consumer, finishing deliveries in hand");
                if let Err(e) = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await {
                    warn!(error = %e, "cancelling the consumer failed");
                }
            }
            Some(joined) = tasks.join_next() => log_join(joined),
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    tasks.spawn(process(worker.clone(), channel.clone(), delivery));
                }
                Some(Err(e)) => failure = Some(e.to_string()),
                None => break,
            },
        }
    }
    if !stopping {
        // Cancelled by the broker (queue deleted) or the channel/connection died.
        let reason = failure.unwrap_or_else(|| "the broker cancelled the consumer".into());
        let _ = connection.close(REPLY_SUCCESS, "reconnecting".into()).await;
        return SessionEnd::Lost(reason);
    }
    // Deliveries received before the cancel took effect are finished and acknowledged.
    while let Some(joined) = tasks.join_next().await {
        log_join(joined);
    }
    if let Err(e) = channel.close(REPLY_SUCCESS, "shutdown".into()).await {
        debug!(error = %e, "closing the channel");
    }
    if let Err(e) = connection.close(REPLY_SUCCESS, "shutdown".into()).await {
        debug!(error = %e, "closing the connection");
    }
    SessionEnd::Stopped
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            error!(error = %e, "a job task panicked; its message will be redelivered");
        }
    }
}

/// What became of a delivery once its outcome was published.
enum Settled {
    Done,
    Retry { attempt: u32 },
    DeadLettered,
}

/// Handles one delivery and settles it: publish (confirmed), then ack; or nack.
async fn process(worker: Worker, channel: Channel, delivery: Delivery) {
    let Ok(_permit) = worker.limit.clone().acquire_owned().await else {
        return;
    };
    let tag = delivery.delivery_tag;
    if !delivery.acker.usable() {
        debug!(
            delivery_tag = tag,
            "channel lost before the job started; the broker redelivers it"
        );
        return;
    }
    let attempt = attempt_of(&delivery.properties);
    let names = &worker.names;
    let handled = AssertUnwindSafe(worker.handler.handle(&delivery.data))
        .catch_unwind()
        .await;
    let Ok(handled) = handled else {
        // A bug, not a verdict on the message: return it. If it keeps doing this, the
        // work queue's delivery limit dead-letters it.
        error!(
            delivery_tag = tag,
            attempt, "the handler panicked; requeueing the message"
        );
        requeue(&delivery, tag).await;
        return;
    };
    let settled = match decide(handled, attempt, &names.policy) {
        Disposition::Done(handled) => announce(&channel, names, &handled.manifests)
            .await
            .map(|()| Settled::Done),
        Disposition::Retry { failure, .. } => {
            warn!(delivery_tag = tag, attempt, kind = failure.kind, error = %failure.reason, "job failed; will retry");
            let retry = names
                .retry_queue(attempt)
                .expect("the policy retries only attempts that have a retry queue");
            let headers = failure_headers(&delivery.properties, &failure).with(
                ATTEMPT_HEADER,
                AMQPValue::LongLongInt(i64::from(attempt) + 1),
            );
            let props = republish_properties(&delivery.properties, headers);
            publish(&channel, &"".into(), retry, &delivery.data, props, true)
                .await
                .map(|()| Settled::Retry { attempt })
        }
        Disposition::DeadLetter(failure) => {
            warn!(delivery_tag = tag, attempt, kind = failure.kind, retryable = failure.retryable, error = %failure.reason, "job failed; dead-lettering");
            let headers = failure_headers(&delivery.properties, &failure);
            let props = republish_properties(&delivery.properties, headers);
            publish(
                &channel,
                &"".into(),
                &names.dlq,
                &delivery.data,
                props,
                true,
            )
            .await
            .map(|()| Settled::DeadLettered)
        }
    };
    let metrics = worker.handler.metrics();
    match settled {
        Ok(settled) => {
            match settled {
                Settled::Done => {}
                Settled::Retry { attempt } => {
                    metrics.retries.inc();
                    metrics.outcome("retry");
                    debug!(
                        delivery_tag = tag,
                        next_attempt = attempt + 1,
                        "scheduled for retry"
                    );
                }
                Settled::DeadLettered => {
                    metrics.dead_lettered.inc();
                    metrics.outcome("dead_lettered");
                }
            }
            match delivery.acker.ack(BasicAckOptions::default()).await {
                Ok(true) => {}
                Ok(false) => warn!(
                    delivery_tag = tag,
                    "channel lost before the ack; the broker redelivers the message"
                ),
                Err(e) => {
                    warn!(delivery_tag = tag, error = %e, "ack failed; the broker redelivers the message")
                }
            }
        }
        Err(e) if !delivery.acker.usable() => {
            info!(delivery_tag = tag, error = %e, "channel lost before the outcome was confirmed; the broker redelivers the message");
        }
        Err(e) => {
            warn!(delivery_tag = tag, error = %e, "outcome not confirmed by the broker; requeueing the message");
            requeue(&delivery, tag).await;
        }
    }
}

/// Returns a delivery to the queue after a short pause (so that a persistent failure
/// does not spin); the broker counts it towards the delivery limit.
async fn requeue(delivery: &Delivery, tag: u64) {
    tokio::time::sleep(REQUEUE_PAUSE).await;
    let nack = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    match delivery.acker.nack(nack).await {
        Ok(true) => {}
        Ok(false) | Err(_) => debug!(
            delivery_tag = tag,
            "channel lost before the nack; the broker redelivers the message"
        ),
    }
}

/// Publishes one `derivatives.ready` per manifest and waits for all confirms.
async fn announce(
    channel: &Channel,
    names: &Names,
    manifests: &[Manifest],
) -> Result<(), RabbitError> {
    for manifest in manifests {
        let body = serde_json::to_vec(manifest).map_err(|e| RabbitError::Publish {
            target: format!("exchange {:?}", names.events.as_str()),
            reason: format!("manifest does not serialize: {e}"),
        })?;
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_type(READY_ROUTING_KEY.into());
        publish(channel, &names.events, &names.ready, &body, props, false).await?;
    }
    Ok(())
}

/// Publishes and waits for the broker's confirm. With `mandatory`, a message that no
/// queue takes counts as a failure.
async fn publish(
    channel: &Channel,
    exchange: &ShortString,
    routing_key: &ShortString,
    body: &[u8],
    props: BasicProperties,
    mandatory: bool,
) -> Result<(), RabbitError> {
    let fail = |reason: String| RabbitError::Publish {
        target: if exchange.as_str().is_empty() {
            format!("queue {:?}", routing_key.as_str())
        } else {
            format!(
                "exchange {:?} ({})",
                exchange.as_str(),
                routing_key.as_str()
            )
        },
        reason,
    };
    let options = BasicPublishOptions {
        mandatory,
        ..BasicPublishOptions::default()
    };
    let confirm = channel
        .basic_publish(exchange.clone(), routing_key.clone(), options, body, props)
        .await
        .map_err(|e| fail(e.to_string()))?
        .await
        .map_err(|e| fail(format!("no confirm: {e}")))?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(fail(format!(
            "returned unroutable: {} {}",
            returned.reply_code, returned.reply_text
        ))),
        Confirmation::Nack(_) => Err(fail("nacked by the broker".into())),
        Confirmation::NotRequested => Err(fail("publisher confirms are not enabled".into())),
    }
}

/// The attempt a delivery is: its `x-rendition-attempt` header, else 1.
fn attempt_of(props: &BasicProperties) -> u32 {
    header_int(props, ATTEMPT_HEADER)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1)
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

/// The original headers (less RabbitMQ's dead-letter bookkeeping and our own), plus the
/// failure's fields as `x-rendition-*` headers.
fn failure_headers(props: &BasicProperties, failure: &Failure) -> FieldTable {
    let mut headers = FieldTable::default();
    if let Some(original) = props.headers() {
        for (k, v) in original {
            let k_str = k.as_str();
            let ours = k_str.starts_with(FAILURE_HEADER_PREFIX);
            let broker = k_str == "x-death"
                || k_str.starts_with("x-first-death-")
                || k_str.starts_with("x-last-death-");
            if !ours && !broker {
                headers.insert(k.clone(), v.clone());
            }
        }
    }
    for (name, value) in failure.fields() {
        let value = match value {
            Field::Text(text) => long_string(text),
            Field::Count(n) => AMQPValue::LongLongInt(i64::from(n)),
            Field::Flag(b) => AMQPValue::Boolean(b),
        };
        headers.insert(format!("{FAILURE_HEADER_PREFIX}{name}").into(), value);
    }
    headers
}

trait With {
    fn with(self, k: &str, v: AMQPValue) -> Self;
}

impl With for FieldTable {
    fn with(mut self, k: &str, v: AMQPValue) -> Self {
        self.insert(k.into(), v);
        self
    }
}

/// Properties for a copy of a message: persistent, the original's descriptive
/// properties (not its expiration, priority or user id), and `headers`.
fn republish_properties(original: &BasicProperties, headers: FieldTable) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers);
    if let Some(v) = original.content_type() {
        props = props.with_content_type(v.clone());
    }
    if let Some(v) = original.content_encoding() {
        props = props.with_content_encoding(v.clone());
    }
    if let Some(v) = original.message_id() {
        props = props.with_message_id(v.clone());
    }
    if let Some(v) = original.correlation_id() {
        props = props.with_correlation_id(v.clone());
    }
    if let Some(v) = original.timestamp() {
        props = props.with_timestamp(*v);
    }
    if let Some(v) = original.kind() {
        props = props.with_type(v.clone());
    }
    if let Some(v) = original.app_id() {
        props = props.with_app_id(v.clone());
    }
    props
}

/// The shutdown future, pollable again after it fired.
struct Stop<F> {
    future: Pin<Box<F>>,
    fired: bool,
}

impl<F: Future<Output = ()>> Stop<F> {
    fn new(future: F) -> Stop<F> {
        Stop {
            future: Box::pin(future),
            fired: false,
        }
    }

    /// Resolves once shutdown was asked for (at once if it already was).
    async fn wait(&mut self) {
        if !self.fired {
            self.future.as_mut().await;
            self.fired = true;
        }
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

/// Publishes job documents straight to the work queue (`rendition backfill`): one
/// connection and a confirming channel; declares the topology first, so it works before
/// any worker ran.
pub struct JobPublisher {
    connection: Connection,
    channel: Channel,
    queue: ShortString,
}

impl JobPublisher {
    pub async fn connect(settings: &RabbitSettings) -> Result<JobPublisher, RabbitError> {
        let names = Names::new(settings)?;
        let connection = connect(&settings.url, "rendition-backfill").await?;
        let channel = confirming_channel(&connection).await?;
        declare(&channel, &names).await?;
        Ok(JobPublisher {
            connection,
            channel,
            queue: names.queue,
        })
    }

    /// Publishes one job document (JSON), persistent and mandatory, and waits for the
    /// broker's confirm.
    pub async fn publish(&self, body: &[u8]) -> Result<(), RabbitError> {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_type("rendition.job".into());
        publish(&self.channel, &"".into(), &self.queue, body, props, true).await
    }

    pub async fn close(self) {
        let _ = self.channel.close(REPLY_SUCCESS, "done".into()).await;
        let _ = self.connection.close(REPLY_SUCCESS, "done".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                let outage: Result<(), _> = Err(rendition_core::store::StoreError::Unavailable(
                    "down".into(),
                ));
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
