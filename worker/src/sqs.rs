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
//! - On shutdown: stop receiving, finish and delete what is in flight, return.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::Region;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName,
};
use aws_sdk_sqs::Client;
use rendition_core::config::SqsSettings;
use rendition_core::disposition::{decide, Disposition, Failure, RetryPolicy};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::handler::Handler;
use crate::http::Readiness;

#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    #[error("sqs.queue_url is not set")]
    NoQueue,
    #[error("cannot read the attributes of {queue}: {message}")]
    Attributes { queue: String, message: String },
}

/// An SQS client from settings: credentials from the standard AWS chain, region from the
/// settings, else the chain, else `us-east-1`, optional custom endpoint.
pub async fn client(s: &SqsSettings) -> Client {
    let region = RegionProviderChain::first_try(s.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await;
    let mut conf = aws_sdk_sqs::config::Builder::from(&sdk);
    if let Some(endpoint) = &s.endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    Client::from_conf(conf.build())
}

/// Where permanent failures go: the queue's redrive target, when it has one.
async fn dead_letter_queue(client: &Client, queue_url: &str) -> Result<Option<String>, SqsError> {
    let attrs = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| SqsError::Attributes {
            queue: queue_url.to_string(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    let Some(policy) = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
    else {
        return Ok(None);
    };
    let arn = serde_json::from_str::<serde_json::Value>(policy)
        .ok()
        .and_then(|v| {
            v.get("deadLetterTargetArn")
                .and_then(|a| a.as_str())
                .map(str::to_string)
        });
    let Some(name) = arn.as_deref().and_then(|a| a.rsplit(':').next()) else {
        return Ok(None);
    };
    let url = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| SqsError::Attributes {
            queue: name.to_string(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    Ok(url.queue_url().map(str::to_string))
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

struct Ctx {
    client: Client,
    settings: SqsSettings,
    policy: RetryPolicy,
    handler: Handler,
    dlq: Option<String>,
    deletes: mpsc::UnboundedSender<String>,
}

/// Consumes until `shutdown` resolves; jobs in flight finish before it returns.
pub async fn run(
    client: Client,
    settings: &SqsSettings,
    concurrency: usize,
    handler: Handler,
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

async fn handle_one(ctx: &Ctx, message: Message) {
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
    match decide(result, receives, &ctx.policy) {
        Disposition::Done(handled) => {
            if let Some(events) = &ctx.settings.events_queue_url {
                for manifest in &handled.manifests {
                    let body = serde_json::to_string(manifest).expect("manifest serializes");
                    if let Err(e) = ctx
                        .client
                        .send_message()
                        .queue_url(events)
                        .message_body(body)
                        .send()
                        .await
                    {
                        // Not deleting means the job runs again (a no-op) and announces again.
                        warn!(message_id = %id, error = %DisplayErrorContext(&e), "completion event not sent; will retry");
                        return;
                    }
                }
            }
            let _ = ctx.deletes.send(receipt);
        }
        Disposition::Retry { after, failure } => {
            let metrics = ctx.handler.metrics();
            metrics.retries.inc();
            metrics.outcome("retry");
            let delay = i32::try_from(after.as_secs()).unwrap_or(i32::MAX);
            warn!(message_id = %id, receives, kind = failure.kind, error = %failure.reason, retry_in_s = delay, "job failed; will retry");
            set_visibility(ctx, &receipt, delay).await;
        }
        Disposition::DeadLetter(failure) => dead_letter(ctx, &id, &receipt, &body, &failure).await,
    }
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
