//! The receive loop: long polls within the free concurrency, one task per message, the
//! visibility heartbeat, and each job's disposition translated into a batched delete, a
//! later visibility, or a dead-letter send with the reason.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
};
use aws_sdk_sqs::Client;
use rendition_aws::sns::SnsPublisher;
use rendition_pipeline::disposition::{Disposition, Failure, RetryPolicy};
use rendition_pipeline::outcome::{self, OutcomeEvent};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn, Instrument as _};

use super::client::dead_letter_queue;
use super::{retry_policy, SqsError, SqsSettings};
use crate::handler::Handler;
use crate::http::Readiness;

struct Ctx {
    client: Client,
    settings: SqsSettings,
    policy: RetryPolicy,
    handler: Handler,
    dlq: Option<String>,
    deletes: mpsc::UnboundedSender<String>,
    /// Where outcome events go (`events.sns_topic_arn`).
    events: Option<SnsPublisher>,
}

/// Consumes until `shutdown` resolves; jobs in flight finish before it returns. Outcome
/// events go to `events` (the SNS topic) and, deprecated, `sqs.events_queue_url`.
pub async fn run(
    client: Client,
    settings: &SqsSettings,
    concurrency: usize,
    handler: Handler,
    events: Option<SnsPublisher>,
    ready: Readiness,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SqsError> {
    if settings.queue_url.is_empty() {
        return Err(SqsError::NoQueue);
    }
    let dlq = dead_letter_queue(&client, &settings.queue_url).await?;
    // Reading the queue's attributes proved it reachable: ready now, not only after the
    // first long poll returns (up to `wait_seconds` later on an idle queue).
    ready.set_broker(true);
    info!(queue = %settings.queue_url, dlq = ?dlq, concurrency, "sqs consumer started");
    let (deletes, delete_rx) = mpsc::unbounded_channel();
    let deleter = tokio::spawn(delete_batches(
        client.clone(),
        settings.queue_url.clone(),
        delete_rx,
    ));
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        settings: settings.clone(),
        policy: retry_policy(settings),
        handler,
        dlq,
        deletes,
        events,
    });
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut jobs = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    tokio::pin!(shutdown);

    loop {
        // Receive no more than there are free slots for.
        let free = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => {
                let permit = permit.expect("semaphore is never closed");
                drop(permit);
                slots.available_permits().clamp(1, settings.batch_size as usize)
            }
        };
        while jobs.try_join_next().is_some() {}
        let receive = client
            .receive_message()
            .queue_url(&settings.queue_url)
            .max_number_of_messages(free as i32)
            .wait_time_seconds(settings.wait_seconds)
            .visibility_timeout(settings.visibility_timeout_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names(rendition_pipeline::telemetry::TRACEPARENT)
            .send();
        let received = tokio::select! {
            _ = &mut shutdown => break,
            r = receive => r,
        };
        let messages = match received {
            Ok(out) => {
                ready.set_broker(true);
                backoff = Duration::from_millis(100);
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                ready.set_broker(false);
                warn!(error = %DisplayErrorContext(&e), retry_in_ms = backoff.as_millis() as u64, "receive failed");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        for message in messages {
            let permit = Arc::clone(&slots)
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            let ctx = Arc::clone(&ctx);
            jobs.spawn(async move {
                handle_one(&ctx, message).await;
                drop(permit);
            });
        }
    }

    info!(
        in_flight = jobs.len(),
        "sqs consumer stopping: finishing jobs in flight"
    );
    while jobs.join_next().await.is_some() {}
    drop(ctx);
    let _ = deleter.await;
    ready.set_broker(false);
    info!("sqs consumer stopped");
    Ok(())
}

/// One message in its span `job`, which continues the trace of the message's
/// `traceparent` attribute when it has one.
async fn handle_one(ctx: &Ctx, message: Message) {
    let span = rendition_pipeline::message::job_span("sqs");
    rendition_pipeline::telemetry::parent_from(&span, |name| {
        message
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_string)
    });
    settle(ctx, message).instrument(span).await
}

async fn settle(ctx: &Ctx, message: Message) {
    let Some(receipt) = message.receipt_handle().map(str::to_string) else {
        return;
    };
    let body = message.body().unwrap_or_default().as_bytes().to_vec();
    let receives: u32 = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let id = message.message_id().unwrap_or_default().to_string();

    let result = {
        let heartbeat = heartbeat(ctx, &receipt);
        tokio::pin!(heartbeat);
        let work = ctx.handler.handle(&body);
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r,
            _ = &mut heartbeat => unreachable!("the heartbeat never ends"),
        }
    };
    let trace = rendition_pipeline::telemetry::traceparent(&tracing::Span::current());
    let cx = outcome::Context {
        bucket: ctx.handler.engine().bucket(),
        message: &body,
        traceparent: trace.as_deref(),
    };
    let outcome::Settled {
        disposition,
        events,
    } = outcome::settle(result, receives, &ctx.policy, &cx);
    let label = match &disposition {
        Disposition::Done(_) => "done",
        Disposition::Retry { .. } => "retry",
        Disposition::DeadLetter(_) => "dead_letter",
    };
    tracing::Span::current().record("outcome", label);
    match disposition {
        Disposition::Done(_) => {
            if let Err(e) = publish(ctx, &events).await {
                // Not deleting means the job runs again (a no-op) and announces again.
                warn!(message_id = %id, error = %e, "outcome events not published; will retry");
                return;
            }
            // Deleted in the next batch: the acknowledgement of SQS.
            tracing::info_span!("acknowledge")
                .in_scope(|| ctx.deletes.send(receipt))
                .ok();
        }
        Disposition::Retry { after, failure } => {
            let metrics = ctx.handler.metrics();
            metrics.retries.inc();
            metrics.outcome("retry");
            let delay = i32::try_from(after.as_secs()).unwrap_or(i32::MAX);
            warn!(message_id = %id, receives, kind = failure.kind, error = %failure.reason, retry_in_s = delay, "job failed; will retry");
            // The message comes back whether or not this attempt's event was accepted:
            // a retry's `derivatives.failed` is at most once per attempt.
            if let Err(e) = publish(ctx, &events).await {
                warn!(message_id = %id, error = %e, "retry event not published");
            }
            set_visibility(ctx, &receipt, delay).await;
        }
        Disposition::DeadLetter(failure) => {
            if let Err(e) = publish(ctx, &events).await {
                // Left on the queue: it comes back, fails again and is announced again.
                warn!(message_id = %id, error = %e, "outcome event not published; not dead-lettering yet");
                return;
            }
            dead_letter(ctx, &id, &receipt, &body, &failure).await
        }
    }
}

/// The outcome events to the SNS topic, then (deprecated) to `sqs.events_queue_url`,
/// each accepted before the next.
async fn publish(ctx: &Ctx, events: &[OutcomeEvent]) -> Result<(), SqsError> {
    if let Some(sns) = &ctx.events {
        sns.publish(events).await?;
    }
    let Some(queue) = &ctx.settings.events_queue_url else {
        return Ok(());
    };
    for event in events {
        let mut send = ctx
            .client
            .send_message()
            .queue_url(queue)
            .message_body(event.to_json())
            .message_attributes(rendition_aws::sns::TYPE_ATTRIBUTE, text_attr(event.kind()));
        if let Some(parent) = &event.traceparent {
            send = send.message_attributes(
                rendition_pipeline::telemetry::TRACEPARENT,
                text_attr(parent.as_str()),
            );
        }
        send.send().await.map_err(|e| SqsError::EventsQueue {
            queue: queue.clone(),
            event_type: event.kind(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    }
    Ok(())
}

/// Keeps the message invisible while its job runs.
async fn heartbeat(ctx: &Ctx, receipt: &str) {
    let every = Duration::from_secs((ctx.settings.visibility_timeout_secs as u64 / 2).max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        set_visibility(ctx, receipt, ctx.settings.visibility_timeout_secs).await;
    }
}

async fn set_visibility(ctx: &Ctx, receipt: &str, seconds: i32) {
    if let Err(e) = ctx
        .client
        .change_message_visibility()
        .queue_url(&ctx.settings.queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(seconds)
        .send()
        .await
    {
        warn!(error = %DisplayErrorContext(&e), "could not change message visibility");
    }
}

fn text_attr(value: impl Into<String>) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

/// Permanent failure (or attempts run out): to the DLQ with the failure's fields as
/// `rendition-*` message attributes, then off the work queue.
async fn dead_letter(ctx: &Ctx, id: &str, receipt: &str, body: &[u8], failure: &Failure) {
    let metrics = ctx.handler.metrics();
    warn!(message_id = %id, receives = failure.attempts, kind = failure.kind, retryable = failure.retryable, error = %failure.reason, "job failed; dead-lettering");
    let Some(dlq) = &ctx.dlq else {
        // No DLQ of our own to write to: let the queue's redrive count it out quickly.
        set_visibility(ctx, receipt, 0).await;
        return;
    };
    let mut send = ctx
        .client
        .send_message()
        .queue_url(dlq)
        .message_body(String::from_utf8_lossy(body));
    for (name, value) in failure.fields() {
        send = send.message_attributes(format!("rendition-{name}"), text_attr(value.to_string()));
    }
    if let Some(parent) = rendition_pipeline::telemetry::traceparent(&tracing::Span::current()) {
        send = send.message_attributes(
            rendition_pipeline::telemetry::TRACEPARENT,
            text_attr(parent),
        );
    }
    match send.send().await {
        Ok(_) => {
            metrics.dead_lettered.inc();
            metrics.outcome("dead_lettered");
            let _ = ctx.deletes.send(receipt.to_string());
        }
        Err(e) => {
            warn!(message_id = %id, error = %DisplayErrorContext(&e), "could not dead-letter; the queue will redeliver")
        }
    }
}

/// Deletes finished messages in batches of up to 10.
async fn delete_batches(
    client: Client,
    queue_url: String,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    let mut batch: Vec<String> = Vec::with_capacity(10);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 10 {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = batch
            .drain(..)
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt are set")
            })
            .collect();
        match client
            .delete_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if !out.failed().is_empty() => {
                warn!(
                    failed = out.failed().len(),
                    "some deletes failed; those messages will be redelivered (idempotent)"
                )
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %DisplayErrorContext(&e), "batch delete failed; messages will be redelivered (idempotent)")
            }
        }
    }
}
