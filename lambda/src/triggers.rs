//! Event triggers: storage events (S3 invoking the function, or SNS / EventBridge carrying
//! S3 events) and SQS batches, each message through the core's `handle_message`, so the
//! Lambda path parses, renders, skips and deletes exactly as the queue workers do, and its
//! result through the core's one [`decide`], whose [`Disposition`] each trigger translates.

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use rendition_core::disposition::{decide, Disposition, RetryPolicy};
use rendition_core::message::{handle_event, handle_message, Handled, MessageError};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::app::App;
use crate::error::HandlerError;

/// Lambda (asynchronous retries) and SQS (redrive policy) count the attempts and time the
/// retries themselves: here the disposition only says whether another go may help.
const POLICY: RetryPolicy = RetryPolicy::uncapped(Duration::ZERO, Duration::ZERO);

fn summary(handled: &Handled) -> Value {
    json!({
        "rendered": handled.rendered,
        "alreadyDone": handled.already_done,
        "removed": handled.removed,
        "ignored": handled.ignored,
        "manifests": handled
            .manifests
            .iter()
            .map(|m| m.source.key.as_str())
            .collect::<Vec<_>>(),
    })
}

/// An asynchronous storage event: all-or-nothing. A failure is a Lambda error, so
/// Lambda retries the event (jobs are idempotent) and, when retries run out, sends it to
/// the function's on-failure destination; the error type says whether retrying can help.
pub async fn storage(app: &App, event: &Value) -> Result<Value, HandlerError> {
    let handled =
        outcome(handle_event(&app.engine, event, app.settings.worker.delete_on_remove).await)?;
    info!(
        rendered = handled.rendered,
        already_done = handled.already_done,
        removed = handled.removed,
        ignored = handled.ignored,
        "storage event handled"
    );
    Ok(summary(&handled))
}

/// A storage event's disposition as the invocation's result: `Done` → the counts,
/// `Retry` → a `Rendition.Retryable.<kind>` error, `DeadLetter` → a
/// `Rendition.Permanent.<kind>` one (Lambda's asynchronous retries and on-failure
/// destination apply to both; the type tells an alarm which it is).
pub(crate) fn outcome(result: Result<Handled, MessageError>) -> Result<Handled, HandlerError> {
    let (failure, retry) = match decide(result, 1, &POLICY) {
        Disposition::Done(handled) => return Ok(handled),
        Disposition::Retry { failure, .. } => (failure, true),
        Disposition::DeadLetter(failure) => (failure, false),
    };
    warn!(kind = failure.kind, retry, error = %failure.reason, "storage event failed");
    Err(HandlerError::Failed { failure, retry })
}

/// An SQS batch: each record on its own, several at once; the response names the records
/// that failed, retryable or not, so SQS makes only those visible again (a permanent
/// failure reaches the queue's DLQ through its redrive policy). Needs
/// `FunctionResponseTypes: ["ReportBatchItemFailures"]` on the event source mapping.
pub async fn sqs(app: &App, event: Value) -> Result<Value, HandlerError> {
    let event: SqsEvent = serde_json::from_value(event).map_err(|e| HandlerError::Malformed {
        trigger: "SQS",
        reason: e.to_string(),
    })?;
    // A failure without a message id could not be reported: refuse the batch up front
    // (the whole batch is retried), before doing any work.
    if let Some(i) = event
        .records
        .iter()
        .position(|r| r.message_id.as_deref().is_none_or(str::is_empty))
    {
        return Err(HandlerError::Malformed {
            trigger: "SQS",
            reason: format!("record {i} has no messageId"),
        });
    }
    let total = event.records.len();
    let concurrency = app.settings.concurrency().max(1);
    let failed: Vec<String> = stream::iter(event.records)
        .map(|record| sqs_record(app, record))
        .buffer_unordered(concurrency)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    info!(records = total, failed = failed.len(), "SQS batch handled");
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    serde_json::to_value(response).map_err(|e| HandlerError::Malformed {
        trigger: "SQS",
        reason: e.to_string(),
    })
}

/// One record; `Some(message id)` when it failed. Both a retry and a dead letter are
/// reported as failed: SQS makes the record visible again, and its redrive policy moves
/// one that keeps failing (a permanent failure fails every time) to the DLQ.
async fn sqs_record(app: &App, record: SqsMessage) -> Option<String> {
    let id = record.message_id.unwrap_or_default();
    let body = record.body.unwrap_or_default();
    let receives = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let result = handle_message(
        &app.engine,
        body.as_bytes(),
        app.settings.worker.delete_on_remove,
    )
    .await;
    let failure = match decide(result, receives, &POLICY) {
        Disposition::Done(handled) => {
            info!(
                message_id = %id,
                rendered = handled.rendered,
                already_done = handled.already_done,
                removed = handled.removed,
                ignored = handled.ignored,
                "message handled"
            );
            return None;
        }
        Disposition::Retry { failure, .. } | Disposition::DeadLetter(failure) => failure,
    };
    warn!(
        message_id = %id,
        receives = failure.attempts,
        kind = failure.kind,
        retryable = failure.retryable,
        error = %failure.reason,
        "message failed"
    );
    Some(id)
}
