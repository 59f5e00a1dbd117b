//! Event triggers: storage events (S3 invoking the function, or SNS / EventBridge carrying
//! S3 events) and SQS batches, each message through the core's `handle_message`, so the
//! Lambda path parses, renders, skips and deletes exactly as the queue workers do.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use rendition_core::message::{handle_message, Handled};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::app::App;
use crate::handler::HandlerError;

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
    let body = serde_json::to_vec(event).map_err(|e| HandlerError::Malformed {
        trigger: "storage",
        reason: e.to_string(),
    })?;
    match handle_message(&app.engine, &body, app.settings.worker.delete_on_remove).await {
        Ok(handled) => {
            info!(
                rendered = handled.rendered,
                already_done = handled.already_done,
                removed = handled.removed,
                ignored = handled.ignored,
                "storage event handled"
            );
            Ok(summary(&handled))
        }
        Err(e) => {
            warn!(kind = e.kind(), retryable = e.is_retryable(), error = %e, "storage event failed");
            Err(e.into())
        }
    }
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

/// One record; `Some(message id)` when it failed.
async fn sqs_record(app: &App, record: SqsMessage) -> Option<String> {
    let id = record.message_id.unwrap_or_default();
    let body = record.body.unwrap_or_default();
    match handle_message(
        &app.engine,
        body.as_bytes(),
        app.settings.worker.delete_on_remove,
    )
    .await
    {
        Ok(handled) => {
            info!(
                message_id = %id,
                rendered = handled.rendered,
                already_done = handled.already_done,
                removed = handled.removed,
                ignored = handled.ignored,
                "message handled"
            );
            None
        }
        Err(e) => {
            warn!(
                message_id = %id,
                kind = e.kind(),
                retryable = e.is_retryable(),
                error = %e,
                "message failed"
            );
            Some(id)
        }
    }
}
