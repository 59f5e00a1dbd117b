//! The entry point: which trigger sent this payload, and what failure means to Lambda.
//!
//! | payload shape | trigger | result |
//! | --- | --- | --- |
//! | `requestContext.http.method` (+ `rawPath`) | Function URL / API Gateway HTTP API 2.0 | an HTTP response, always (errors are 4xx/5xx responses, never Lambda errors) |
//! | `Records[].eventSource == "aws:s3"`, `Records[].EventSource == "aws:sns"`, or `source == "aws.s3"` | S3 (direct, via SNS, via EventBridge), asynchronous | a summary; a failure is a Lambda error, so Lambda's async retries and on-failure destination apply |
//! | `Records[].eventSource == "aws:sqs"` | SQS event source mapping | `{"batchItemFailures": [...]}` naming the failed records |
//! | anything else | — | a permanent Lambda error (`Rendition.Permanent.unknown_event`) |
//!
//! Lambda error types are `Rendition.Retryable.<kind>` (the event's disposition was a
//! retry: storage outages) and `Rendition.Permanent.<kind>` (a dead letter: the event or
//! its source is bad), with the kinds of [`rendition_image::kinds::KINDS`].

use rendition_pipeline::event::json_type;
use serde_json::Value;

use crate::app::App;
use crate::error::HandlerError;
use crate::{http, triggers};

/// Which trigger a payload comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Http,
    /// An S3 event, directly or wrapped in SNS or EventBridge.
    Storage,
    Sqs,
    Unknown(String),
}

/// Tells the triggers apart by shape alone.
pub fn classify(event: &Value) -> Trigger {
    let Some(obj) = event.as_object() else {
        return Trigger::Unknown(format!("a JSON {}, not an object", json_type(event)));
    };
    if event
        .pointer("/requestContext/http/method")
        .is_some_and(Value::is_string)
    {
        return Trigger::Http;
    }
    if let Some(records) = obj.get("Records").and_then(Value::as_array) {
        let source = |r: &Value| {
            r.get("eventSource")
                .or_else(|| r.get("EventSource"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let sources: Vec<Option<String>> = records.iter().map(source).collect();
        let first = sources.first().cloned().flatten();
        if sources.iter().any(|s| *s != first) {
            return Trigger::Unknown("Records from more than one event source".into());
        }
        return match first.as_deref() {
            Some("aws:s3") | Some("aws:sns") => Trigger::Storage,
            Some("aws:sqs") => Trigger::Sqs,
            Some(other) => Trigger::Unknown(format!("Records from event source {other:?}")),
            None if records.is_empty() => Trigger::Unknown("an empty Records list".into()),
            None => Trigger::Unknown("Records without an event source".into()),
        };
    }
    if obj.get("source").and_then(Value::as_str) == Some("aws.s3")
        && obj.contains_key("detail-type")
    {
        return Trigger::Storage;
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(8).collect();
    keys.sort_unstable();
    Trigger::Unknown(format!("an object with keys {keys:?}"))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Handles one invocation.
pub async fn handle(ctx: &App, event: Value) -> Result<Value, HandlerError> {
    let started = std::time::Instant::now();
    match classify(&event) {
        Trigger::Http => Ok(http::handle(ctx, event, now_unix()).await),
        Trigger::Storage => triggers::storage(ctx, &event).await,
        Trigger::Sqs => triggers::sqs(ctx, event).await,
        Trigger::Unknown(what) => {
            tracing::warn!(what = %what, "unrecognised event");
            let e = HandlerError::UnknownEvent(what);
            triggers::measure_failure(ctx, started, &e);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Diagnostic;
    use rendition_pipeline::job::JobError;
    use rendition_pipeline::message::MessageError;
    use rendition_pipeline::store::StoreError;
    use serde_json::json;

    #[test]
    fn payload_shapes() {
        let http = json!({"rawPath": "/x", "requestContext": {"http": {"method": "GET"}}});
        assert_eq!(classify(&http), Trigger::Http);
        let s3 = json!({"Records": [{"eventSource": "aws:s3", "s3": {}}]});
        assert_eq!(classify(&s3), Trigger::Storage);
        let sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {}}]});
        assert_eq!(classify(&sns), Trigger::Storage);
        let eb = json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}});
        assert_eq!(classify(&eb), Trigger::Storage);
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]});
        assert_eq!(classify(&sqs), Trigger::Sqs);
        for unknown in [
            json!(null),
            json!([1, 2]),
            json!("GET /"),
            json!({}),
            json!({"Records": []}),
            json!({"Records": [{"eventSource": "aws:dynamodb"}]}),
            json!({"Records": [{"eventSource": "aws:s3"}, {"eventSource": "aws:sqs"}]}),
            json!({"Records": "nope"}),
            json!({"requestContext": {"http": {"method": 7}}}),
            json!({"httpMethod": "GET", "path": "/x"}),
        ] {
            assert!(
                matches!(classify(&unknown), Trigger::Unknown(_)),
                "{unknown}"
            );
        }
    }

    #[test]
    fn error_types_say_retryable_or_permanent() {
        let unknown = HandlerError::UnknownEvent("x".into());
        let d: Diagnostic = unknown.into();
        assert_eq!(d.error_type, "Rendition.Permanent.unknown_event");
        let malformed = HandlerError::Malformed {
            trigger: "SQS",
            reason: "x".into(),
        };
        for kind in [malformed.kind(), "unknown_event"] {
            assert!(rendition_image::kinds::is_known(kind), "{kind}");
        }
        let decide = |result: Result<rendition_pipeline::message::Handled, MessageError>| {
            rendition_pipeline::disposition::decide(result, 1, &triggers::POLICY)
        };
        let outage = triggers::outcome(decide(Err(MessageError::Job {
            key: "originals/a.jpg".into(),
            source: JobError::Store(StoreError::Unavailable("down".into())),
        })))
        .unwrap_err();
        assert!(outage.is_retryable());
        let d: Diagnostic = outage.into();
        assert_eq!(d.error_type, "Rendition.Retryable.storage_unavailable");
        assert!(
            d.error_message.contains("originals/a.jpg"),
            "{}",
            d.error_message
        );
        let missing = triggers::outcome(decide(Err(MessageError::Job {
            key: "originals/gone.jpg".into(),
            source: JobError::MissingSource {
                key: "originals/gone.jpg".into(),
            },
        })))
        .unwrap_err();
        let d: Diagnostic = missing.into();
        assert_eq!(d.error_type, "Rendition.Permanent.missing_source");
    }
}
