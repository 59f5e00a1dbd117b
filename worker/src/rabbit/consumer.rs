//! Consuming: sessions, reconnects, and settling each delivery from its disposition.

use super::*;

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
pub(super) struct Worker {
    pub(super) names: Arc<Names>,
    pub(super) handler: Handler,
    pub(super) limit: Arc<Semaphore>,
}

pub(super) struct Session {
    pub(super) connection: Connection,
    pub(super) channel: Channel,
    pub(super) consumer: lapin::Consumer,
}

pub(super) enum SessionEnd {
    /// Shut down cleanly: consumer cancelled, jobs acknowledged, connection closed.
    Stopped,
    /// The connection or channel went away.
    Lost(String),
}

pub(super) async fn open_session(
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

pub(super) async fn start_consuming(
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
pub(super) async fn consume<F: Future<Output = ()>>(
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

pub(super) fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            error!(error = %e, "a job task panicked; its message will be redelivered");
        }
    }
}

/// What became of a delivery once its outcome was published.
pub(super) enum Settled {
    Done,
    Retry { attempt: u32 },
    DeadLettered,
}

/// Handles one delivery and settles it: publish (confirmed), then ack; or nack. Its span
/// `job` continues the trace of the message's `traceparent` header, when it has one.
pub(super) async fn process(worker: Worker, channel: Channel, delivery: Delivery) {
    let Ok(_permit) = worker.limit.clone().acquire_owned().await else {
        return;
    };
    let span = rendition_pipeline::message::job_span("rabbitmq");
    rendition_pipeline::telemetry::parent_from(&span, |name| {
        header_text(&delivery.properties, name)
    });
    settle(worker, channel, delivery).instrument(span).await
}

async fn settle(worker: Worker, channel: Channel, delivery: Delivery) {
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
    let trace = rendition_pipeline::telemetry::traceparent(&tracing::Span::current());
    let cx = outcome::Context {
        bucket: worker.handler.engine().bucket(),
        message: &delivery.data,
        traceparent: trace.as_deref(),
    };
    let outcome::Settled {
        disposition,
        events,
    } = outcome::settle(handled, attempt, &names.policy, &cx);
    // The outcome events first, then the copy that settles a failure: if anything is not
    // confirmed the delivery is requeued and this attempt is redone, announcing again.
    let settled = match disposition {
        Disposition::Done(_) => announce(&channel, names, &events)
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
            match announce(&channel, names, &events).await {
                Ok(()) => publish(&channel, &"".into(), retry, &delivery.data, props, true)
                    .await
                    .map(|()| Settled::Retry { attempt }),
                Err(e) => Err(e),
            }
        }
        Disposition::DeadLetter(failure) => {
            warn!(delivery_tag = tag, attempt, kind = failure.kind, retryable = failure.retryable, error = %failure.reason, "job failed; dead-lettering");
            let headers = failure_headers(&delivery.properties, &failure);
            let props = republish_properties(&delivery.properties, headers);
            match announce(&channel, names, &events).await {
                Ok(()) => publish(
                    &channel,
                    &"".into(),
                    &names.dlq,
                    &delivery.data,
                    props,
                    true,
                )
                .await
                .map(|()| Settled::DeadLettered),
                Err(e) => Err(e),
            }
        }
    };
    let metrics = worker.handler.metrics();
    let outcome = match &settled {
        Ok(Settled::Done) => "done",
        Ok(Settled::Retry { .. }) => "retry",
        Ok(Settled::DeadLettered) => "dead_letter",
        Err(_) => "requeued",
    };
    tracing::Span::current().record("outcome", outcome);
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
            let acked = delivery
                .acker
                .ack(BasicAckOptions::default())
                .instrument(tracing::info_span!("acknowledge"))
                .await;
            match acked {
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
pub(super) async fn requeue(delivery: &Delivery, tag: u64) {
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

/// Publishes the outcome events on the events exchange, in order, each with its type as
/// the routing key (and the AMQP `type`), and waits for every confirm. The body is the
/// CloudEvent (structured mode, `application/cloudevents+json`); the message id is its
/// `id`.
pub(super) async fn announce(
    channel: &Channel,
    names: &Names,
    events: &[OutcomeEvent],
) -> Result<(), RabbitError> {
    for event in events {
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(outcome::CONTENT_TYPE.into())
            .with_type(event.kind().into())
            .with_message_id(event.id.as_str().into());
        // The job's trace goes on with whoever consumes the event.
        if let Some(parent) = &event.traceparent {
            let mut headers = FieldTable::default();
            headers.insert(
                rendition_pipeline::telemetry::TRACEPARENT.into(),
                long_string(parent),
            );
            props = props.with_headers(headers);
        }
        let key: ShortString = event.kind().into();
        let body = event.to_json();
        publish(channel, &names.events, &key, body.as_bytes(), props, false).await?;
    }
    Ok(())
}

/// Publishes and waits for the broker's confirm. With `mandatory`, a message that no
/// queue takes counts as a failure.
pub(super) async fn publish(
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
pub(super) fn attempt_of(props: &BasicProperties) -> u32 {
    header_int(props, ATTEMPT_HEADER)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1)
}

/// The original headers (less RabbitMQ's dead-letter bookkeeping and our own), plus the
/// failure's fields as `x-rendition-*` headers.
pub(super) fn failure_headers(props: &BasicProperties, failure: &Failure) -> FieldTable {
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

pub(super) trait With {
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
pub(super) fn republish_properties(
    original: &BasicProperties,
    headers: FieldTable,
) -> BasicProperties {
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
pub(super) struct Stop<F> {
    future: Pin<Box<F>>,
    fired: bool,
}

impl<F: Future<Output = ()>> Stop<F> {
    pub(super) fn new(future: F) -> Stop<F> {
        Stop {
            future: Box::pin(future),
            fired: false,
        }
    }

    /// Resolves once shutdown was asked for (at once if it already was).
    pub(super) async fn wait(&mut self) {
        if !self.fired {
            self.future.as_mut().await;
            self.fired = true;
        }
    }
}
