//! Event triggers: storage events (S3 invoking the function, or SNS / EventBridge carrying
//! S3 events) and SQS batches, each message through the core's `handle_message`, so the
//! Lambda path parses, renders, skips and deletes exactly as the queue workers do, and its
//! result through the core's one [`decide`](rendition_pipeline::disposition::decide), whose [`Disposition`] each trigger translates.
//! Each storage event and each SQS record writes one metrics line ([`crate::emf`],
//! `Function=eager`): its disposition (`done`, `retry`, `dead_letter`), error kind, time
//! and the bytes of the derivatives rendered. Both publish the outcome events
//! ([`rendition_pipeline::outcome`]) to the SNS topic `events.sns_topic_arn` before
//! answering: a success whose events SNS refused is retried (it finds its work done and
//! announces again), so `derivatives.ready` and `.removed` are at least once; a failure
//! is announced once per invocation (`permanent` as its disposition says), best effort.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use rendition_pipeline::disposition::{Disposition, RetryPolicy};
use rendition_pipeline::message::{handle_event, handle_message, Handled, MessageError};
use rendition_pipeline::outcome::{self, OutcomeEvent};
use serde_json::{json, Value};
use tracing::Instrument as _;
use tracing::{info, warn};

use crate::app::App;
use crate::emf::{Function, Measurement};
use crate::error::HandlerError;

/// Lambda (asynchronous retries) and SQS (redrive policy) count the attempts and time the
/// retries themselves: here the disposition only says whether another go may help.
pub(crate) const POLICY: RetryPolicy = RetryPolicy::uncapped(Duration::ZERO, Duration::ZERO);

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
    let span = rendition_pipeline::message::job_span("s3");
    storage_job(app, event).instrument(span).await
}

async fn storage_job(app: &App, event: &Value) -> Result<Value, HandlerError> {
    let started = Instant::now();
    let result = handle_event(&app.engine, event).await;
    // A failure's event id is derived from the message: the event, written out once more
    // (the same bytes for the same event, which is what Lambda's retries deliver).
    let message = serde_json::to_vec(event).unwrap_or_default();
    let settled = settle(app, result, 1, &message);
    let published = publish(app, &settled.events).await;
    let handled = outcome(settled.disposition).and_then(|handled| published.map(|()| handled));
    match &handled {
        Ok(handled) => measure_job(app, started, "done", None, rendered_bytes(handled)),
        Err(e) => measure_failure(app, started, e),
    }
    let outcome = if handled.is_ok() { "done" } else { "failed" };
    tracing::Span::current().record("outcome", outcome);
    let handled = handled?;
    info!(
        rendered = handled.rendered,
        already_done = handled.already_done,
        removed = handled.removed,
        ignored = handled.ignored,
        "storage event handled"
    );
    Ok(summary(&handled))
}

/// The bytes of the derivatives a job rendered: those its manifests list, when it rendered
/// any (a source already done rendered nothing). A manifest lists all its source's
/// variants, so a backfill of one preset counts the others too.
fn rendered_bytes(handled: &Handled) -> u64 {
    if handled.rendered == 0 {
        return 0;
    }
    handled
        .manifests
        .iter()
        .flat_map(|m| &m.variants)
        .map(|v| v.bytes)
        .sum()
}

/// Writes a job's metrics line.
fn measure_job(app: &App, started: Instant, outcome: &str, kind: Option<&str>, bytes: u64) {
    app.emf.emit(&Measurement {
        function: Function::Eager,
        outcome,
        kind,
        status: None,
        elapsed: started.elapsed(),
        bytes,
    });
}

/// Writes the metrics line of an invocation that failed as a whole: `retry` or
/// `dead_letter`, as its Lambda error type says.
pub(crate) fn measure_failure(app: &App, started: Instant, e: &HandlerError) {
    let outcome = if e.is_retryable() {
        "retry"
    } else {
        "dead_letter"
    };
    measure_job(app, started, outcome, Some(e.kind()), 0);
}

/// The one decision for a message and its outcome events ([`outcome::settle`]), in the
/// job's trace.
fn settle(
    app: &App,
    result: Result<Handled, MessageError>,
    attempt: u32,
    message: &[u8],
) -> outcome::Settled {
    let trace = rendition_pipeline::telemetry::traceparent(&tracing::Span::current());
    let cx = outcome::Context {
        bucket: app.engine.bucket(),
        message,
        traceparent: trace.as_deref(),
    };
    outcome::settle(result, attempt, &POLICY, &cx)
}

/// The outcome events to the SNS topic, when one is configured.
async fn publish(app: &App, events: &[OutcomeEvent]) -> Result<(), HandlerError> {
    let Some(sns) = &app.events else {
        return Ok(());
    };
    sns.publish(events).await.map_err(|e| {
        warn!(error = %e, "outcome events not published");
        HandlerError::Events(e)
    })
}

/// A storage event's disposition as the invocation's result: `Done` → the counts,
/// `Retry` → a `Rendition.Retryable.<kind>` error, `DeadLetter` → a
/// `Rendition.Permanent.<kind>` one (Lambda's asynchronous retries and on-failure
/// destination apply to both; the type tells an alarm which it is).
pub(crate) fn outcome(disposition: Disposition<Handled>) -> Result<Handled, HandlerError> {
    let (failure, retry) = match disposition {
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
    let started = Instant::now();
    let event = match batch(event) {
        Ok(event) => event,
        Err(e) => {
            measure_failure(app, started, &e);
            return Err(e);
        }
    };
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

/// The batch, refused as a whole when a record has no message id: its failure could not be
/// reported, so the whole batch is retried, before any work is done.
fn batch(event: Value) -> Result<SqsEvent, HandlerError> {
    let event: SqsEvent = serde_json::from_value(event).map_err(|e| HandlerError::Malformed {
        trigger: "SQS",
        reason: e.to_string(),
    })?;
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
    Ok(event)
}

/// One record; `Some(message id)` when it failed. Both a retry and a dead letter are
/// reported as failed: SQS makes the record visible again, and its redrive policy moves
/// one that keeps failing (a permanent failure fails every time) to the DLQ.
async fn sqs_record(app: &App, record: SqsMessage) -> Option<String> {
    // One span tree per record, continuing the trace of its `traceparent` attribute.
    let span = rendition_pipeline::message::job_span("sqs");
    rendition_pipeline::telemetry::parent_from(&span, |name| {
        record
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.clone())
    });
    sqs_job(app, record).instrument(span).await
}

async fn sqs_job(app: &App, record: SqsMessage) -> Option<String> {
    let started = Instant::now();
    let id = record.message_id.unwrap_or_default();
    let body = record.body.unwrap_or_default();
    let receives = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let result = handle_message(&app.engine, body.as_bytes()).await;
    let settled = settle(app, result, receives, body.as_bytes());
    let published = publish(app, &settled.events).await;
    let (failure, outcome) = match settled.disposition {
        Disposition::Done(_) if published.is_err() => {
            // Done, but not announced: SQS delivers it again, and the repeat announces.
            tracing::Span::current().record("outcome", "retry");
            measure_job(
                app,
                started,
                "retry",
                Some(crate::error::EVENTS_UNAVAILABLE),
                0,
            );
            return Some(id);
        }
        Disposition::Done(handled) => {
            tracing::Span::current().record("outcome", "done");
            measure_job(app, started, "done", None, rendered_bytes(&handled));
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
        Disposition::Retry { failure, .. } => (failure, "retry"),
        Disposition::DeadLetter(failure) => (failure, "dead_letter"),
    };
    tracing::Span::current().record("outcome", outcome);
    measure_job(app, started, outcome, Some(failure.kind), 0);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rendition_pipeline::config::Settings;
    use rendition_pipeline::store::FsStore;

    use super::*;
    use crate::emf::tests::{capture, take};

    fn s3_event(key: &str) -> Value {
        json!({"Records": [{
            "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "local"}, "object": {"key": key, "size": 649}}
        }]})
    }

    fn sqs_message(id: &str, body: String) -> Value {
        json!({"messageId": id, "receiptHandle": "r", "body": body, "attributes": {},
               "messageAttributes": {}, "eventSource": "aws:sqs",
               "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:jobs"})
    }

    /// Every job writes one line: its disposition, its error kind, the bytes it rendered.
    #[tokio::test]
    async fn every_job_writes_one_emf_line() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::default();
        let renderer =
            rendition_image::renderer::Renderer::in_process(&settings.limits, &settings.render);
        let store = Arc::new(FsStore::new(dir.path()).unwrap());
        let mut app = App::new(settings, store, "local", renderer);
        let (emitter, lines) = capture();
        app.emf = emitter;
        let jpeg = include_bytes!("../../fuzz/seeds/decode_boundary/orient6.jpg");
        for key in ["originals/a.jpg", "originals/b.jpg"] {
            app.engine
                .store()
                .put(key, bytes::Bytes::from_static(jpeg), Default::default())
                .await
                .unwrap();
        }
        let derived_bytes = |source: &str| -> u64 {
            let folder = dir.path().join("derived").join(source);
            let guid = std::fs::read_dir(&folder).unwrap().next().unwrap().unwrap();
            std::fs::read_dir(guid.path())
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_name() != "manifest.json")
                .map(|e| e.metadata().unwrap().len())
                .sum()
        };

        // A storage event: rendered, the first line of the process.
        crate::handle(&app, s3_event("originals/a.jpg"))
            .await
            .unwrap();
        let [line] = take(&lines).try_into().expect("one line per storage event");
        assert_eq!(line["Function"], "eager");
        assert_eq!(line["Outcome"], "done");
        assert_eq!(line["ColdStart"], 1);
        assert_eq!(line["Bytes"], derived_bytes("a.jpg"));
        assert!(line["Bytes"].as_u64().unwrap() > 0, "{line}");
        assert!(line.get("Kind").is_none() && line.get("Status").is_none());

        // An SQS batch: one line per record, in any order.
        let batch = json!({"Records": [
            sqs_message("b", s3_event("originals/b.jpg").to_string()),
            sqs_message("again", s3_event("originals/a.jpg").to_string()),
            sqs_message("junk", "not json".into()),
            sqs_message("gone", s3_event("originals/gone.jpg").to_string()),
        ]});
        crate::handle(&app, batch).await.unwrap();
        let mut got: Vec<_> = take(&lines)
            .iter()
            .map(|l| {
                assert_eq!(l["Function"], "eager");
                assert_eq!(l["ColdStart"], 0);
                (
                    l["Outcome"].as_str().unwrap().to_string(),
                    l["Kind"].as_str().map(str::to_string),
                    l["Bytes"].as_u64().unwrap(),
                )
            })
            .collect();
        got.sort();
        let row = |outcome: &str, kind: Option<&str>, bytes| {
            (outcome.to_string(), kind.map(str::to_string), bytes)
        };
        assert_eq!(
            got,
            [
                row("dead_letter", Some("missing_source"), 0),
                row("dead_letter", Some("not_json"), 0),
                row("done", None, 0),
                row("done", None, derived_bytes("b.jpg")),
            ]
        );

        // Invocations that fail as a whole: the disposition of their Lambda error.
        let unknown = crate::handle(&app, json!({"hello": "world"})).await;
        assert!(unknown.is_err());
        let malformed = crate::handle(&app, json!({"Records": [{"eventSource": "aws:sqs"}]})).await;
        assert!(malformed.is_err());
        let got: Vec<_> = take(&lines)
            .iter()
            .map(|l| (l["Outcome"].clone(), l["Kind"].clone()))
            .collect();
        assert_eq!(
            got,
            [
                (json!("dead_letter"), json!("unknown_event")),
                (json!("dead_letter"), json!("malformed_event")),
            ]
        );
    }
}
