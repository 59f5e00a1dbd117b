//! Storage events in, normalized jobs out: [`parse_message`] reads the body of one queue
//! message and says which sources were created or removed.
//!
//! # Accepted bodies
//! 1. An S3 event notification, `{"Records":[{"eventSource":"aws:s3","s3":{…}}]}`.
//! 2. The same inside SNS: an SNS envelope `{"Type":"Notification","Message":"<JSON>"}`
//!    (what an SQS queue subscribed to a topic receives without raw delivery), or a Lambda
//!    SNS event `{"Records":[{"Sns":{"Message":"<JSON>"}}]}`. The inner message may be an
//!    S3 notification, an S3 test event or an EventBridge event; SNS inside SNS is refused.
//! 3. An EventBridge event, `{"source":"aws.s3","detail-type":"Object Created",…}`.
//! 4. A MinIO notification (webhook, AMQP, …), `{"EventName":…,"Key":…,"Records":[…]}`;
//!    only `Records` is read. MinIO prefixes event names with `s3:`, which is dropped.
//! 5. A normalized [`Job`] document (`schemas/job.schema.json`), which is what
//!    `rendition backfill` enqueues: `{"action":"created","bucket":…,"key":…,
//!    "origin":"backfill","presets":["thumb"],…}`. Its key is not encoded.
//! 6. The `s3:TestEvent` S3 sends when notifications are configured: no jobs, one
//!    [`Ignored`] with [`IgnoreReason::TestEvent`], so the caller acknowledges it.
//!
//! # Keys
//! S3, SNS and MinIO records carry form-encoded keys: `+` is a space, then `%XX` escapes
//! (`a+b%2Bc%2Fd.jpg` → `a b+c/d.jpg`); a key that decodes to invalid UTF-8 is an error.
//! EventBridge keys are not encoded and are taken as they are. Moto (the AWS mock) puts
//! keys into its records unencoded, so a key containing `+` or `%` decodes differently
//! under moto than under S3; test keys should avoid both.
//!
//! Events for keys under the derived prefix are ignored (derivatives must not trigger
//! renders), as are keys outside the source prefix and folder markers (keys ending in
//! `/`). Other event types (restores, tagging, lifecycle, …) are ignored too, never
//! errors; [`Action`] lists the ones that make jobs.
//!
//! # Errors
//! Anything else (not JSON, an unknown envelope, a wrong type, a missing bucket or key)
//! is an [`EventError`], and every one is permanent: the message will never parse, so it
//! belongs in the dead-letter queue. One bad record fails the whole message; jobs are
//! idempotent, so a redrive after a fix only repeats what already succeeded.
//!
//! # Why mostly our own serde types
//! `aws_lambda_events` describes these payloads as AWS sends them, which is stricter than
//! what arrives in practice. Its `S3EventRecord` requires `userIdentity`,
//! `requestParameters` and an RFC 3339 `eventTime`; moto sends none of the first two and
//! a time without an offset. Its `SnsMessage` requires the signature fields and a typed
//! timestamp, of which only `Type` and `Message` are needed here. Its `EventBridgeEvent`
//! types `time` as a date, where moto sends a Unix timestamp number, and its S3 detail is
//! untyped anyway. So the envelopes and records are read with the small lenient structs
//! below, which require only the fields a job needs. The crate's
//! [`aws_lambda_events::event::s3::S3Entity`] (the record's `s3` member, whose
//! fields are all optional apart from `bucket` and `object`) fits and is used as is. The
//! tests check that the AWS-shaped fixtures also parse with the crate's strict types, and
//! that the moto one does not.

use aws_lambda_events::event::s3::S3Entity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::StorageSettings;

/// What happened to the source object.
///
/// `created` comes from the S3 event names `ObjectCreated:Put`, `:Post`, `:Copy` and
/// `:CompleteMultipartUpload` (EventBridge: `Object Created`); `removed` from
/// `ObjectRemoved:Delete` and `:DeleteMarkerCreated` (EventBridge: `Object Deleted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new object or a new version of one: render its eager presets.
    Created,
    /// The object (or its current version) was deleted: its derivatives may go.
    Removed,
}

/// How the event reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// An S3 notification delivered directly (SQS or Lambda).
    S3,
    /// A notification wrapped in an SNS message.
    Sns,
    /// An EventBridge event.
    Eventbridge,
    /// A MinIO bucket notification.
    Minio,
    /// The local folder watcher; never produced by `parse_message`.
    Local,
    /// `rendition backfill`: a job document enqueued for an existing source.
    Backfill,
}

/// One normalized storage event: the unit of work the eager worker consumes. Readers
/// ignore fields they do not know (a newer `rendition backfill` may add some).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    pub action: Action,
    pub bucket: String,
    /// The object key, decoded (never form-encoded).
    pub key: String,
    /// The object version, where the bucket is versioned.
    pub version_id: Option<String>,
    /// The ETag as the event carries it: S3 events send it without the quotes that
    /// `HeadObject` returns. Removal events have none.
    pub etag: Option<String>,
    /// Object size in bytes; removal events have none.
    pub size: Option<u64>,
    /// When the event happened, as the event wrote it (usually RFC 3339; moto sends
    /// EventBridge times as Unix seconds).
    pub event_time: Option<String>,
    pub origin: Origin,
    /// Presets to render; empty (the default, and what storage events give) means every
    /// eager preset. `rendition backfill --preset NAME` sets it to that preset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<String>,
}

/// Why an object key is not a source to render, if it is not: the prefix rules events
/// and `rendition backfill` share.
pub fn ignore_reason(key: &str, storage: &StorageSettings) -> Option<IgnoreReason> {
    // Derived first: a derived prefix nested in the source prefix is still ours.
    if key.starts_with(&storage.derived_prefix) {
        Some(IgnoreReason::DerivedKey)
    } else if !key.starts_with(&storage.source_prefix) {
        Some(IgnoreReason::OutsideSourcePrefix)
    } else if key.ends_with('/') {
        Some(IgnoreReason::FolderMarker)
    } else {
        None
    }
}

/// Why a record produced no job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// The `s3:TestEvent` sent when notifications are configured.
    TestEvent,
    /// The key is under the derived prefix: one of our own outputs.
    DerivedKey,
    /// The key is not under the source prefix.
    OutsideSourcePrefix,
    /// An event type that needs no work (restores, tagging, lifecycle, …).
    UnsupportedEventName,
    /// A key ending in `/`, as consoles create for folders.
    FolderMarker,
}

impl IgnoreReason {
    /// A short stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::TestEvent => "test_event",
            IgnoreReason::DerivedKey => "derived_key",
            IgnoreReason::OutsideSourcePrefix => "outside_source_prefix",
            IgnoreReason::UnsupportedEventName => "unsupported_event_name",
            IgnoreReason::FolderMarker => "folder_marker",
        }
    }
}

/// A record that produced no job, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// The decoded key, or the event name where the event type is what was ignored.
    pub subject: String,
    pub reason: IgnoreReason,
}

/// The jobs in one message, and what it held that needs no work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub jobs: Vec<Job>,
    pub ignored: Vec<Ignored>,
}

/// Why a message body is not a storage event. Every variant is permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("message body is empty")]
    Empty,
    #[error("{context} is not JSON: {reason}")]
    NotJson {
        context: &'static str,
        reason: String,
    },
    #[error("{context} is a JSON {found}, not an object")]
    NotAnObject {
        context: &'static str,
        found: &'static str,
    },
    #[error("not a storage event (top-level fields: {fields})")]
    UnknownEnvelope { fields: String },
    #[error("an SNS message inside an SNS message")]
    NestedEnvelope,
    #[error("unsupported SNS message type {kind:?}")]
    UnsupportedSnsType { kind: String },
    #[error("unsupported event source {name:?}")]
    UnsupportedSource { name: String },
    #[error("missing {field}")]
    MissingField { field: &'static str },
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("key {key:?} does not decode to UTF-8")]
    InvalidKeyEncoding { key: String },
    /// A key no store accepts (over S3's 1,024 bytes, control characters, path tricks):
    /// refused before anything else, so no later step handles it. `key` is cut short.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
}

impl EventError {
    /// Always false: a body that does not parse now never will.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// 400: the request (the message) is bad.
    pub fn status(&self) -> u16 {
        400
    }

    /// A short stable name for metrics, headers and failure records.
    pub fn kind(&self) -> &'static str {
        match self {
            EventError::Empty => "empty_body",
            EventError::NotJson { .. } => "not_json",
            EventError::NotAnObject { .. } => "not_an_object",
            EventError::UnknownEnvelope { .. } => "unknown_envelope",
            EventError::NestedEnvelope => "nested_envelope",
            EventError::UnsupportedSnsType { .. } => "unsupported_sns_type",
            EventError::UnsupportedSource { .. } => "unsupported_source",
            EventError::MissingField { .. } => "missing_field",
            EventError::InvalidField { .. } => "invalid_field",
            EventError::InvalidKeyEncoding { .. } => "invalid_key_encoding",
            EventError::InvalidKey { .. } => "invalid_key",
        }
    }
}

/// Parses the body of one queue message into jobs, see the [module docs](self).
pub fn parse_message(body: &[u8], storage: &StorageSettings) -> Result<Parsed, EventError> {
    if body.trim_ascii().is_empty() {
        return Err(EventError::Empty);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| EventError::NotJson {
        context: "message body",
        reason: e.to_string(),
    })?;
    parse_value(&value, storage)
}

/// [`parse_message`] for a body that is already JSON (a Lambda's event payload).
pub fn parse_value(value: &Value, storage: &StorageSettings) -> Result<Parsed, EventError> {
    let mut out = Parsed::default();
    Parser {
        storage,
        out: &mut out,
    }
    .message(value, None)?;
    Ok(out)
}

struct Parser<'a> {
    storage: &'a StorageSettings,
    out: &'a mut Parsed,
}

/// How a record's key is written in the event.
#[derive(Clone, Copy)]
enum KeyEncoding {
    Form,
    Verbatim,
}

impl Parser<'_> {
    /// One message: `wrapped` is `Some(Origin::Sns)` inside an SNS message.
    fn message(&mut self, value: &Value, wrapped: Option<Origin>) -> Result<(), EventError> {
        let context = if wrapped.is_some() {
            "SNS Message"
        } else {
            "message body"
        };
        let obj = value.as_object().ok_or(EventError::NotAnObject {
            context,
            found: json_type(value),
        })?;
        if let Some(records) = obj.get("Records") {
            let minio = obj.contains_key("EventName");
            self.records(records, wrapped, minio)
        } else if obj.contains_key("Type")
            && ["Message", "MessageId", "TopicArn"]
                .iter()
                .any(|k| obj.contains_key(*k))
        {
            if wrapped.is_some() {
                return Err(EventError::NestedEnvelope);
            }
            let envelope: SnsEnvelope = field(value, "SNS envelope")?;
            self.sns(envelope)
        } else if obj.contains_key("detail-type") {
            self.eventbridge(value, wrapped)
        } else if obj.contains_key("action") && obj.contains_key("origin") {
            self.job_document(value)
        } else if obj.get("Event").and_then(Value::as_str) == Some(TEST_EVENT) {
            self.out.ignored.push(Ignored {
                subject: TEST_EVENT.to_string(),
                reason: IgnoreReason::TestEvent,
            });
            Ok(())
        } else {
            Err(EventError::UnknownEnvelope {
                fields: field_names(obj),
            })
        }
    }

    fn records(
        &mut self,
        records: &Value,
        wrapped: Option<Origin>,
        minio: bool,
    ) -> Result<(), EventError> {
        let records = records.as_array().ok_or_else(|| EventError::InvalidField {
            field: "Records",
            reason: format!("expected an array, found a JSON {}", json_type(records)),
        })?;
        for record in records {
            let obj = record.as_object().ok_or(EventError::NotAnObject {
                context: "record",
                found: json_type(record),
            })?;
            if obj.contains_key("s3") {
                self.s3_record(record, wrapped, minio)?;
            } else if let Some(sns) = obj.get("Sns") {
                if wrapped.is_some() {
                    return Err(EventError::NestedEnvelope);
                }
                let envelope: SnsEnvelope = field(sns, "Records[].Sns")?;
                self.sns(envelope)?;
            } else if let Some(source) = obj.get("eventSource").or_else(|| obj.get("EventSource")) {
                return Err(EventError::UnsupportedSource {
                    name: source.as_str().unwrap_or("(not a string)").to_string(),
                });
            } else {
                return Err(EventError::MissingField { field: "s3" });
            }
        }
        Ok(())
    }

    fn sns(&mut self, envelope: SnsEnvelope) -> Result<(), EventError> {
        if envelope.kind != "Notification" {
            return Err(EventError::UnsupportedSnsType {
                kind: envelope.kind,
            });
        }
        let message = envelope
            .message
            .ok_or(EventError::MissingField { field: "Message" })?;
        let inner: Value = serde_json::from_str(&message).map_err(|e| EventError::NotJson {
            context: "SNS Message",
            reason: e.to_string(),
        })?;
        self.message(&inner, Some(Origin::Sns))
    }

    fn s3_record(
        &mut self,
        record: &Value,
        wrapped: Option<Origin>,
        minio: bool,
    ) -> Result<(), EventError> {
        // Check presence first so that a missing member is reported as missing, not as a
        // deserialization failure of the crate's `S3Entity`.
        let s3 = &record["s3"];
        if !s3.is_object() {
            return Err(EventError::InvalidField {
                field: "s3",
                reason: format!("expected an object, found a JSON {}", json_type(s3)),
            });
        }
        let present = |name: &str| s3.get(name).is_some_and(|v| !v.is_null());
        if !present("bucket") {
            return Err(EventError::MissingField {
                field: "s3.bucket.name",
            });
        }
        if !present("object") {
            return Err(EventError::MissingField {
                field: "s3.object.key",
            });
        }
        let record: S3Record = field(record, "record")?;
        let minio = minio || record.event_source.as_deref() == Some("minio:s3");
        if let Some(source) = &record.event_source {
            if !source.ends_with(":s3") {
                return Err(EventError::UnsupportedSource {
                    name: source.clone(),
                });
            }
        }
        let origin = wrapped.unwrap_or(if minio { Origin::Minio } else { Origin::S3 });
        let name = record
            .event_name
            .ok_or(EventError::MissingField { field: "eventName" })?;
        let Some(action) = s3_action(&name) else {
            self.ignore(name, IgnoreReason::UnsupportedEventName);
            return Ok(());
        };
        let bucket = non_empty(record.s3.bucket.name).ok_or(EventError::MissingField {
            field: "s3.bucket.name",
        })?;
        let object = record.s3.object;
        let raw_key = non_empty(object.key).ok_or(EventError::MissingField {
            field: "s3.object.key",
        })?;
        let size = object
            .size
            .map(|size| {
                u64::try_from(size).map_err(|_| EventError::InvalidField {
                    field: "s3.object.size",
                    reason: format!("{size} is negative"),
                })
            })
            .transpose()?;
        self.push(
            &raw_key,
            KeyEncoding::Form,
            Job {
                action,
                bucket,
                key: String::new(),
                version_id: non_empty(object.version_id),
                etag: non_empty(object.e_tag),
                size,
                event_time: event_time(record.event_time.as_ref(), "eventTime")?,
                origin,
                presets: Vec::new(),
            },
        )
    }

    fn eventbridge(&mut self, value: &Value, wrapped: Option<Origin>) -> Result<(), EventError> {
        let event: EventBridge = field(value, "EventBridge event")?;
        if event.source != "aws.s3" {
            return Err(EventError::UnsupportedSource { name: event.source });
        }
        let action = match event.detail_type.as_str() {
            "Object Created" => Action::Created,
            "Object Deleted" => Action::Removed,
            _ => {
                self.ignore(event.detail_type, IgnoreReason::UnsupportedEventName);
                return Ok(());
            }
        };
        let detail = event
            .detail
            .ok_or(EventError::MissingField { field: "detail" })?;
        let bucket =
            detail
                .bucket
                .and_then(|b| non_empty(b.name))
                .ok_or(EventError::MissingField {
                    field: "detail.bucket.name",
                })?;
        let object = detail.object.ok_or(EventError::MissingField {
            field: "detail.object.key",
        })?;
        let key = non_empty(object.key).ok_or(EventError::MissingField {
            field: "detail.object.key",
        })?;
        self.push(
            &key,
            KeyEncoding::Verbatim,
            Job {
                action,
                bucket,
                key: String::new(),
                version_id: non_empty(object.version_id),
                etag: non_empty(object.etag),
                size: object.size,
                event_time: event_time(event.time.as_ref(), "time")?,
                origin: wrapped.unwrap_or(Origin::Eventbridge),
                presets: Vec::new(),
            },
        )
    }

    /// A normalized [`Job`] document (`schemas/job.schema.json`), as `rendition backfill`
    /// enqueues. Its key is taken verbatim and goes through the same prefix rules.
    fn job_document(&mut self, value: &Value) -> Result<(), EventError> {
        let job: Job = field(value, "job document")?;
        if job.bucket.is_empty() {
            return Err(EventError::MissingField { field: "bucket" });
        }
        if job.key.is_empty() {
            return Err(EventError::MissingField { field: "key" });
        }
        let key = job.key.clone();
        self.push(&key, KeyEncoding::Verbatim, job)
    }

    /// Decodes the key, applies the prefix rules and records a job or an [`Ignored`].
    fn push(&mut self, raw_key: &str, encoding: KeyEncoding, job: Job) -> Result<(), EventError> {
        let key = match encoding {
            KeyEncoding::Form => decode_form(raw_key)?,
            KeyEncoding::Verbatim => raw_key.to_string(),
        };
        // S3 keys are at most 1,024 bytes: a longer one is forged or malformed, and would
        // otherwise travel on to a store and into error messages.
        if key.len() > crate::naming::MAX_KEY_BYTES {
            return Err(EventError::InvalidKey {
                key: rendition_image::text::truncate(&key, 256).into_owned(),
                reason: "longer than 1024 bytes",
            });
        }
        match ignore_reason(&key, self.storage) {
            Some(reason) => self.ignore(key, reason),
            None => self.out.jobs.push(Job { key, ..job }),
        }
        Ok(())
    }

    fn ignore(&mut self, subject: String, reason: IgnoreReason) {
        self.out.ignored.push(Ignored { subject, reason });
    }
}

const TEST_EVENT: &str = "s3:TestEvent";

/// The action of an S3 or MinIO event name (`ObjectCreated:Put`, `s3:ObjectCreated:Put`),
/// or `None` for names that need no work.
fn s3_action(name: &str) -> Option<Action> {
    match name.strip_prefix("s3:").unwrap_or(name) {
        "ObjectCreated:Put"
        | "ObjectCreated:Post"
        | "ObjectCreated:Copy"
        | "ObjectCreated:CompleteMultipartUpload" => Some(Action::Created),
        "ObjectRemoved:Delete" | "ObjectRemoved:DeleteMarkerCreated" => Some(Action::Removed),
        _ => None,
    }
}

/// Decodes an `application/x-www-form-urlencoded` key: `+` → space, then `%XX`.
/// Malformed escapes (`%zz`, a trailing `%`) are kept as they are.
fn decode_form(raw: &str) -> Result<String, EventError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| EventError::InvalidKeyEncoding {
            key: raw.to_string(),
        })
}

/// Deserializes `value` into `T`, naming `what` when its shape is wrong.
fn field<'v, T: Deserialize<'v>>(value: &'v Value, what: &'static str) -> Result<T, EventError> {
    T::deserialize(value).map_err(|e| EventError::InvalidField {
        field: what,
        reason: e.to_string(),
    })
}

/// An event time as text: strings as they are, numbers (moto's Unix seconds) printed.
fn event_time(value: Option<&Value>, field: &'static str) -> Result<Option<String>, EventError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(non_empty(Some(s.clone()))),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(EventError::InvalidField {
            field,
            reason: format!(
                "expected a string or a number, found a JSON {}",
                json_type(other)
            ),
        }),
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// The JSON type of a value, for messages that say what was found instead.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The first few top-level field names, for an error message of bounded length.
fn field_names(obj: &Map<String, Value>) -> String {
    if obj.is_empty() {
        return "none".to_string();
    }
    let mut names: Vec<String> = obj
        .keys()
        .take(8)
        .map(|k| {
            let mut short: String = k.chars().take(40).collect();
            if short.len() < k.len() {
                short.push('…');
            }
            format!("{short:?}")
        })
        .collect();
    if obj.len() > names.len() {
        names.push("…".to_string());
    }
    names.join(", ")
}

/// An S3 (or MinIO) record: only what a job needs is required.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    #[serde(default)]
    event_source: Option<String>,
    #[serde(default)]
    event_name: Option<String>,
    #[serde(default)]
    event_time: Option<Value>,
    s3: S3Entity,
}

/// An SNS notification, as an SQS queue receives it or inside a Lambda SNS record.
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EventBridge {
    detail_type: String,
    source: String,
    #[serde(default)]
    time: Option<Value>,
    #[serde(default)]
    detail: Option<EventBridgeDetail>,
}

#[derive(Deserialize)]
struct EventBridgeDetail {
    #[serde(default)]
    bucket: Option<EventBridgeBucket>,
    #[serde(default)]
    object: Option<EventBridgeObject>,
}

#[derive(Deserialize)]
struct EventBridgeBucket {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct EventBridgeObject {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    /// AWS writes `etag`; moto writes `eTag`.
    #[serde(default, alias = "eTag")]
    etag: Option<String>,
    #[serde(default, rename = "version-id")]
    version_id: Option<String>,
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
rendition_image::classified!(EventError);

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::eventbridge::EventBridgeEvent;
    use aws_lambda_events::event::s3::S3Event;
    use aws_lambda_events::event::sns::{SnsEvent, SnsMessage};
    use proptest::prelude::*;

    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../tests/fixtures/events/", $name))
        };
    }

    const S3_PUT: &str = fixture!("s3-put.json");
    const S3_MOTO: &str = fixture!("s3-moto.json");
    const S3_REMOVED: &str = fixture!("s3-removed.json");
    const S3_MULTI: &str = fixture!("s3-multi.json");
    const S3_TEST_EVENT: &str = fixture!("s3-test-event.json");
    const SNS_ENVELOPE: &str = fixture!("sns-envelope.json");
    const SNS_LAMBDA: &str = fixture!("sns-lambda.json");
    const EB_CREATED: &str = fixture!("eventbridge-created.json");
    const EB_DELETED: &str = fixture!("eventbridge-deleted.json");
    const MINIO_PUT: &str = fixture!("minio-put.json");

    fn storage() -> StorageSettings {
        StorageSettings::default()
    }

    fn parse(body: &str) -> Result<Parsed, EventError> {
        parse_message(body.as_bytes(), &storage())
    }

    fn one_job(body: &str) -> Job {
        let parsed = parse(body).expect("parses");
        assert_eq!(parsed.ignored, vec![], "nothing ignored");
        assert_eq!(parsed.jobs.len(), 1, "one job: {parsed:?}");
        parsed.jobs.into_iter().next().unwrap()
    }

    fn err(body: &str) -> EventError {
        parse(body).expect_err("must be rejected")
    }

    /// An S3 notification with one record, for the variations below.
    fn s3_body(event_name: &str, key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventSource": "aws:s3",
            "eventName": event_name,
            "eventTime": "2024-01-01T00:00:00.000Z",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 1, "eTag": "e"}},
        }]})
        .to_string()
    }

    #[test]
    fn keys_over_s3s_limit_are_invalid_before_anything_else() {
        // 10 + 1,020 bytes of two-byte characters: byte 1,024 falls inside one.
        let key = format!("originals/{}", "é".repeat(510));
        let e = err(&s3_body("ObjectCreated:Put", &form_encode(&key)));
        assert_eq!(e.kind(), "invalid_key");
        assert!(!e.is_retryable());
        assert!(e.to_string().len() < 400, "{}", e.to_string().len());
        // 1,024 bytes exactly is a key S3 allows.
        let key = format!("originals/{}", "é".repeat(507));
        assert_eq!(key.len(), 1024);
        assert_eq!(
            one_job(&s3_body("ObjectCreated:Put", &form_encode(&key))).key,
            key
        );
    }

    fn sns_wrap(inner: &str) -> String {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": inner,
        })
        .to_string()
    }

    #[test]
    fn backfill_job_documents_round_trip_and_follow_the_prefix_rules() {
        let job = Job {
            action: Action::Created,
            bucket: "b".into(),
            key: "originals/a+b %2B.jpg".into(),
            version_id: None,
            etag: None,
            size: Some(10),
            event_time: None,
            origin: Origin::Backfill,
            presets: vec!["thumb".into()],
        };
        let body = serde_json::to_string(&job).unwrap();
        // Verbatim key: no form decoding of `+` or `%2B`.
        assert_eq!(one_job(&body), job);
        // Inside SNS too.
        assert_eq!(one_job(&sns_wrap(&body)), job);
        // Without presets the field is absent, and means every eager preset.
        let eager = Job {
            presets: vec![],
            ..job.clone()
        };
        let text = serde_json::to_string(&eager).unwrap();
        assert!(!text.contains("presets"), "{text}");
        assert_eq!(one_job(&text), eager);
        // Derived keys are ignored like any event's.
        let derived = Job {
            key: "derived/x.jpg/abc/thumb.webp".into(),
            ..job.clone()
        };
        let parsed = parse(&serde_json::to_string(&derived).unwrap()).unwrap();
        assert!(parsed.jobs.is_empty());
        assert_eq!(parsed.ignored[0].reason, IgnoreReason::DerivedKey);
        // Unknown fields are ignored (a newer writer may add some); an empty key and
        // wrong types are permanent errors.
        let mut extra = serde_json::to_value(&job).unwrap();
        extra["surprise"] = serde_json::json!(1);
        assert_eq!(one_job(&extra.to_string()), job);
        let mut empty = serde_json::to_value(&job).unwrap();
        empty["key"] = serde_json::json!("");
        assert_eq!(err(&empty.to_string()).kind(), "missing_field");
        let mut wrong = serde_json::to_value(&job).unwrap();
        wrong["presets"] = serde_json::json!("thumb");
        assert_eq!(err(&wrong.to_string()).kind(), "invalid_field");
    }

    #[test]
    fn aws_s3_put_decodes_the_key_and_keeps_the_metadata() {
        let job = one_job(S3_PUT);
        assert_eq!(
            job,
            Job {
                action: Action::Created,
                bucket: "rendition-media".into(),
                key: "originals/a b+c/d.jpg".into(),
                version_id: Some("096fKKXTRTtl3on89fVO.nfljtsv6qko".into()),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                size: Some(1_048_576),
                event_time: Some("2024-03-07T14:21:08.512Z".into()),
                origin: Origin::S3,
                presets: Vec::new(),
            }
        );
    }

    #[test]
    fn moto_record_without_user_identity_or_sequencer_parses() {
        let job = one_job(S3_MOTO);
        assert_eq!(job.action, Action::Created);
        assert_eq!(job.bucket, "test-bucket");
        assert_eq!(job.key, "originals/cats/tabby.png");
        assert_eq!(job.version_id, None);
        assert_eq!(
            job.etag.as_deref(),
            Some("e2fc714c4727ee9395f324cd2e7f331f-4")
        );
        assert_eq!(job.size, Some(20_971_520));
        assert_eq!(
            job.event_time.as_deref(),
            Some("2024-03-07T14:21:08.512345")
        );
        assert_eq!(job.origin, Origin::S3);
    }

    #[test]
    fn removal_is_a_removed_job_with_its_version() {
        let job = one_job(S3_REMOVED);
        assert_eq!(job.action, Action::Removed);
        assert_eq!(job.key, "originals/2024/holiday photo.jpeg");
        assert_eq!(
            job.version_id.as_deref(),
            Some("Wv7s2YhQe4tB0Pq.9mUXk3nRfJcLdA1z")
        );
        assert_eq!(job.etag, None);
        assert_eq!(job.size, None);
    }

    #[test]
    fn multi_record_message_sorts_jobs_from_ignored() {
        let parsed = parse(S3_MULTI).unwrap();
        let jobs: Vec<(Action, &str)> = parsed
            .jobs
            .iter()
            .map(|j| (j.action, j.key.as_str()))
            .collect();
        assert_eq!(
            jobs,
            vec![
                (Action::Created, "originals/one.jpg"),
                (Action::Removed, "originals/old&gone.png"),
            ]
        );
        let ignored = |subject: &str, reason| Ignored {
            subject: subject.into(),
            reason,
        };
        assert_eq!(
            parsed.ignored,
            vec![
                ignored(
                    "derived/one.jpg/3b241101-e2bb-4255-8caf-4136c566a962/md.webp",
                    IgnoreReason::DerivedKey
                ),
                ignored("uploads/tmp/two.jpg", IgnoreReason::OutsideSourcePrefix),
                ignored("originals/new folder/", IgnoreReason::FolderMarker),
                ignored(
                    "ObjectRestore:Completed",
                    IgnoreReason::UnsupportedEventName
                ),
            ]
        );
    }

    #[test]
    fn sns_envelope_yields_the_inner_records_with_sns_origin() {
        let job = one_job(SNS_ENVELOPE);
        assert_eq!(job.origin, Origin::Sns);
        assert_eq!(job.bucket, "rendition-media");
        assert_eq!(job.key, "originals/users/42/avatar(1).webp");
        assert_eq!(job.version_id.as_deref(), Some("L4kqtJlcpXroDTDmpUMLUo"));
        assert_eq!(
            job.etag.as_deref(),
            Some("9b2cf535f27731c974343645a3985328")
        );
        assert_eq!(job.size, Some(48213));
    }

    #[test]
    fn lambda_sns_event_is_the_same_job() {
        assert_eq!(one_job(SNS_LAMBDA), one_job(SNS_ENVELOPE));
    }

    #[test]
    fn test_event_is_ignored_directly_and_inside_sns() {
        let expected = Parsed {
            jobs: vec![],
            ignored: vec![Ignored {
                subject: "s3:TestEvent".into(),
                reason: IgnoreReason::TestEvent,
            }],
        };
        assert_eq!(parse(S3_TEST_EVENT).unwrap(), expected);
        assert_eq!(parse(&sns_wrap(S3_TEST_EVENT)).unwrap(), expected);
    }

    #[test]
    fn eventbridge_keys_are_taken_verbatim() {
        let job = one_job(EB_CREATED);
        assert_eq!(
            job,
            Job {
                action: Action::Created,
                bucket: "rendition-media".into(),
                key: "originals/a+b%2B c.jpg".into(),
                version_id: Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e".into()),
                etag: Some("b1946ac92492d2347c6235b4d2611184".into()),
                size: Some(5),
                event_time: Some("2024-03-07T16:00:00Z".into()),
                origin: Origin::Eventbridge,
                presets: Vec::new(),
            }
        );
    }

    #[test]
    fn eventbridge_object_deleted_is_removed() {
        let job = one_job(EB_DELETED);
        assert_eq!(job.action, Action::Removed);
        assert_eq!(job.key, "originals/gone.jpg");
        assert_eq!(
            job.version_id.as_deref(),
            Some("4gAp3Ol6DBOr6E5RfG9cLx3dnuKnR8ZT")
        );
        assert_eq!((job.etag, job.size), (None, None));
    }

    #[test]
    fn moto_eventbridge_with_numeric_time_and_etag_spelling_parses() {
        let body = serde_json::json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "time": 1709827200.5,
            "detail": {"bucket": {"name": "b"}, "object": {"key": "originals/x.jpg", "size": 3, "eTag": "abc"}},
        });
        let job = one_job(&body.to_string());
        assert_eq!(job.event_time.as_deref(), Some("1709827200.5"));
        assert_eq!(job.etag.as_deref(), Some("abc"));
    }

    #[test]
    fn eventbridge_other_detail_types_are_ignored_and_other_sources_rejected() {
        let mut event: Value = serde_json::from_str(EB_CREATED).unwrap();
        event["detail-type"] = "Object Tags Added".into();
        let parsed = parse(&event.to_string()).unwrap();
        assert_eq!(parsed.jobs, vec![]);
        assert_eq!(
            parsed.ignored,
            vec![Ignored {
                subject: "Object Tags Added".into(),
                reason: IgnoreReason::UnsupportedEventName
            }]
        );

        event["source"] = "aws.ec2".into();
        assert_eq!(
            err(&event.to_string()),
            EventError::UnsupportedSource {
                name: "aws.ec2".into()
            }
        );
    }

    #[test]
    fn eventbridge_inside_sns_is_read_with_sns_origin() {
        let job = one_job(&sns_wrap(EB_CREATED));
        assert_eq!(job.origin, Origin::Sns);
        assert_eq!(job.key, "originals/a+b%2B c.jpg");
    }

    #[test]
    fn minio_records_are_read_and_the_s3_prefix_dropped() {
        let job = one_job(MINIO_PUT);
        assert_eq!(job.origin, Origin::Minio);
        assert_eq!(job.action, Action::Created);
        assert_eq!(job.bucket, "images");
        assert_eq!(job.key, "originals/summer trip/beach+1.png");
        assert_eq!(
            job.etag.as_deref(),
            Some("5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(job.size, Some(48213));
        assert_eq!(job.version_id, None);

        let removed =
            s3_body("s3:ObjectRemoved:Delete", "originals/x.jpg").replace("aws:s3", "minio:s3");
        let job = one_job(&removed);
        assert_eq!((job.action, job.origin), (Action::Removed, Origin::Minio));
    }

    #[test]
    fn only_the_listed_event_names_make_jobs() {
        for (name, action) in [
            ("ObjectCreated:Put", Action::Created),
            ("ObjectCreated:Post", Action::Created),
            ("ObjectCreated:Copy", Action::Created),
            ("ObjectCreated:CompleteMultipartUpload", Action::Created),
            ("s3:ObjectCreated:Put", Action::Created),
            ("ObjectRemoved:Delete", Action::Removed),
            ("ObjectRemoved:DeleteMarkerCreated", Action::Removed),
        ] {
            assert_eq!(
                one_job(&s3_body(name, "originals/x")).action,
                action,
                "{name}"
            );
        }
        for name in [
            "ObjectCreated:*",
            "ObjectCreated:PutTagging",
            "ObjectRestore:Post",
            "LifecycleExpiration:Delete",
            "ObjectTagging:Put",
            "s3:ObjectAcl:Put",
            "objectcreated:put",
            "",
        ] {
            let parsed = parse(&s3_body(name, "originals/x")).unwrap();
            assert_eq!(parsed.jobs, vec![], "{name}");
            assert_eq!(
                parsed.ignored,
                vec![Ignored {
                    subject: name.into(),
                    reason: IgnoreReason::UnsupportedEventName
                }]
            );
        }
    }

    #[test]
    fn keys_are_form_decoded() {
        for (raw, key) in [
            ("originals/a+b%2Bc%2Fd.jpg", "originals/a b+c/d.jpg"),
            ("originals%2Fx.jpg", "originals/x.jpg"),
            ("originals/%C3%A9t%C3%A9.jpg", "originals/été.jpg"),
            ("originals/100%25.jpg", "originals/100%.jpg"),
            // Malformed escapes are left alone rather than rejected.
            ("originals/%zz%2", "originals/%zz%2"),
        ] {
            assert_eq!(
                one_job(&s3_body("ObjectCreated:Put", raw)).key,
                key,
                "{raw}"
            );
        }
    }

    #[test]
    fn key_decoding_to_invalid_utf8_is_a_typed_error() {
        let e = err(&s3_body("ObjectCreated:Put", "originals/%FF%FE.jpg"));
        assert_eq!(
            e,
            EventError::InvalidKeyEncoding {
                key: "originals/%FF%FE.jpg".into()
            }
        );
        assert_eq!(e.kind(), "invalid_key_encoding");
    }

    #[test]
    fn prefix_rules_apply_to_the_decoded_key() {
        let reason = |raw: &str| {
            let parsed = parse(&s3_body("ObjectCreated:Put", raw)).unwrap();
            (parsed.jobs.len(), parsed.ignored.first().map(|i| i.reason))
        };
        assert_eq!(reason("originals/x.jpg"), (1, None));
        assert_eq!(reason("originals%2Fx.jpg"), (1, None));
        assert_eq!(
            reason("derived%2Fx.jpg"),
            (0, Some(IgnoreReason::DerivedKey))
        );
        assert_eq!(
            reason("derived/originals/x.jpg"),
            (0, Some(IgnoreReason::DerivedKey))
        );
        assert_eq!(
            reason("Originals/x.jpg"),
            (0, Some(IgnoreReason::OutsideSourcePrefix))
        );
        assert_eq!(
            reason("originals"),
            (0, Some(IgnoreReason::OutsideSourcePrefix))
        );
        assert_eq!(reason("originals/"), (0, Some(IgnoreReason::FolderMarker)));
        assert_eq!(
            reason("originals%2Fa%2F"),
            (0, Some(IgnoreReason::FolderMarker))
        );
        // Removals of derivatives are ignored too.
        let parsed = parse(&s3_body("ObjectRemoved:Delete", "derived/x/manifest.json")).unwrap();
        assert_eq!(parsed.ignored[0].reason, IgnoreReason::DerivedKey);
    }

    #[test]
    fn derived_prefix_inside_the_source_prefix_is_still_ignored() {
        let storage = StorageSettings {
            source_prefix: String::new(),
            derived_prefix: "_derived/".into(),
            ..StorageSettings::default()
        };
        let parse = |key: &str| {
            parse_message(s3_body("ObjectCreated:Put", key).as_bytes(), &storage).unwrap()
        };
        assert_eq!(parse("any/where.jpg").jobs.len(), 1);
        assert_eq!(
            parse("_derived/a/b.webp").ignored[0].reason,
            IgnoreReason::DerivedKey
        );
    }

    #[test]
    fn empty_and_non_json_bodies() {
        assert_eq!(parse_message(b"", &storage()), Err(EventError::Empty));
        assert_eq!(err(" \n\t "), EventError::Empty);
        for body in ["garbage", "{\"Records\":[", "{'Records': []}", "\u{feff}{}"] {
            let e = err(body);
            assert!(matches!(e, EventError::NotJson { .. }), "{body}: {e:?}");
            assert_eq!(e.kind(), "not_json");
        }
        let truncated = &S3_PUT[..S3_PUT.len() / 2];
        assert!(matches!(err(truncated), EventError::NotJson { .. }));
        let e = parse_message(&[0xff, 0xfe, b'{'], &storage()).unwrap_err();
        assert!(matches!(e, EventError::NotJson { .. }));
    }

    #[test]
    fn json_that_is_not_an_event() {
        assert_eq!(
            err("{}"),
            EventError::UnknownEnvelope {
                fields: "none".into()
            }
        );
        assert_eq!(err("{}").kind(), "unknown_envelope");
        assert_eq!(
            err(r#"{"hello": 1, "world": 2}"#),
            EventError::UnknownEnvelope {
                fields: r#""hello", "world""#.into()
            }
        );
        assert_eq!(
            err(r#"{"Service":"Amazon S3","Event":"s3:Other"}"#).kind(),
            "unknown_envelope"
        );
        for (body, found) in [
            ("[]", "array"),
            ("42", "number"),
            ("\"x\"", "string"),
            ("null", "null"),
        ] {
            assert_eq!(
                err(body),
                EventError::NotAnObject {
                    context: "message body",
                    found
                }
            );
        }
    }

    #[test]
    fn unknown_envelope_message_is_bounded() {
        let obj: Map<String, Value> = (0..100)
            .map(|i| (format!("{}{i}", "k".repeat(100)), Value::Null))
            .collect();
        let EventError::UnknownEnvelope { fields } = err(&Value::Object(obj).to_string()) else {
            panic!("unknown envelope expected");
        };
        assert!(fields.len() < 500, "{}", fields.len());
        assert!(fields.ends_with('…'));
    }

    #[test]
    fn wrong_types_are_invalid_fields() {
        let cases = [
            (r#"{"Records": "x"}"#, "Records"),
            (r#"{"Records": [{"s3": "x"}]}"#, "s3"),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": 5}, "object": {"key": "originals/a"}}}]}"#,
                "record",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": ["originals/a"]}}}]}"#,
                "record",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "originals/a", "size": "big"}}}]}"#,
                "record",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "originals/a", "size": -1}}}]}"#,
                "s3.object.size",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "eventTime": {}, "s3": {"bucket": {"name": "b"}, "object": {"key": "originals/a"}}}]}"#,
                "eventTime",
            ),
            (
                r#"{"Records": [{"eventName": 7, "s3": {"bucket": {"name": "b"}, "object": {"key": "originals/a"}}}]}"#,
                "record",
            ),
            (r#"{"Type": "Notification", "Message": 5}"#, "SNS envelope"),
            (
                r#"{"Records": [{"Sns": {"Type": 5, "Message": "{}"}}]}"#,
                "Records[].Sns",
            ),
            (
                r#"{"detail-type": 1, "source": "aws.s3"}"#,
                "EventBridge event",
            ),
            (
                r#"{"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": "b"}, "object": {"key": "originals/a", "size": -3}}}"#,
                "EventBridge event",
            ),
        ];
        for (body, expected) in cases {
            match err(body) {
                EventError::InvalidField { field, .. } => assert_eq!(field, expected, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert_eq!(
            err(r#"{"Records": [7]}"#),
            EventError::NotAnObject {
                context: "record",
                found: "number"
            }
        );
    }

    #[test]
    fn missing_bucket_or_key_is_missing_field() {
        let cases = [
            (r#"{"Records": [{}]}"#, "s3"),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}"#,
                "s3.bucket.name",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "originals/a"}}}]}"#,
                "s3.bucket.name",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {}, "object": {"key": "originals/a"}}}]}"#,
                "s3.bucket.name",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": ""}, "object": {"key": "originals/a"}}}]}"#,
                "s3.bucket.name",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]}"#,
                "s3.object.key",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"size": 1}}}]}"#,
                "s3.object.key",
            ),
            (
                r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": null}}}]}"#,
                "s3.object.key",
            ),
            (
                r#"{"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "originals/a"}}}]}"#,
                "eventName",
            ),
            (r#"{"Type": "Notification", "TopicArn": "t"}"#, "Message"),
            (
                r#"{"Records": [{"Sns": {"Type": "Notification"}}]}"#,
                "Message",
            ),
            (
                r#"{"detail-type": "Object Created", "source": "aws.s3"}"#,
                "detail",
            ),
            (
                r#"{"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": "originals/a"}}}"#,
                "detail.bucket.name",
            ),
            (
                r#"{"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": "b"}, "object": {}}}"#,
                "detail.object.key",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                err(body),
                EventError::MissingField { field: expected },
                "{body}"
            );
        }
    }

    #[test]
    fn other_sources_and_envelopes_are_rejected() {
        let sqs = r#"{"Records": [{"messageId": "1", "body": "{}", "eventSource": "aws:sqs"}]}"#;
        assert_eq!(
            err(sqs),
            EventError::UnsupportedSource {
                name: "aws:sqs".into()
            }
        );
        let dynamo = s3_body("ObjectCreated:Put", "originals/a").replace("aws:s3", "aws:dynamodb");
        assert_eq!(err(&dynamo).kind(), "unsupported_source");
        let confirmation =
            r#"{"Type": "SubscriptionConfirmation", "Message": "You have chosen…", "Token": "t"}"#;
        assert_eq!(
            err(confirmation),
            EventError::UnsupportedSnsType {
                kind: "SubscriptionConfirmation".into()
            }
        );
        assert_eq!(err(&sns_wrap(SNS_ENVELOPE)), EventError::NestedEnvelope);
        assert_eq!(err(&sns_wrap(SNS_LAMBDA)), EventError::NestedEnvelope);
        assert_eq!(
            err(&sns_wrap("not json")),
            err(&sns_wrap("not json")) // deterministic
        );
        assert!(matches!(
            err(&sns_wrap("not json")),
            EventError::NotJson {
                context: "SNS Message",
                ..
            }
        ));
        assert_eq!(
            err(&sns_wrap("[1]")),
            EventError::NotAnObject {
                context: "SNS Message",
                found: "array"
            }
        );
    }

    #[test]
    fn one_bad_record_fails_the_whole_message() {
        let mut body: Value = serde_json::from_str(S3_MULTI).unwrap();
        body["Records"][3]["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("key");
        assert_eq!(
            err(&body.to_string()),
            EventError::MissingField {
                field: "s3.object.key"
            }
        );
    }

    #[test]
    fn empty_records_is_nothing_to_do() {
        assert_eq!(parse(r#"{"Records": []}"#).unwrap(), Parsed::default());
    }

    #[test]
    fn every_error_is_permanent_and_named() {
        let errors = [
            EventError::Empty,
            err("x"),
            err("[]"),
            err("{}"),
            EventError::NestedEnvelope,
            err(r#"{"Type": "Other", "Message": ""}"#),
            err(r#"{"Records": [{"eventSource": "aws:sqs"}]}"#),
            err(r#"{"Records": [{}]}"#),
            err(r#"{"Records": 1}"#),
            err(&s3_body("ObjectCreated:Put", "originals/%FF")),
        ];
        let kinds: Vec<&str> = errors.iter().map(EventError::kind).collect();
        assert_eq!(
            kinds,
            [
                "empty_body",
                "not_json",
                "not_an_object",
                "unknown_envelope",
                "nested_envelope",
                "unsupported_sns_type",
                "unsupported_source",
                "missing_field",
                "invalid_field",
                "invalid_key_encoding",
            ]
        );
        assert!(errors.iter().all(|e| !e.is_retryable()));
    }

    #[test]
    fn job_serializes_with_lowercase_enums_and_ignores_unknown_fields() {
        let job = one_job(S3_PUT);
        let value = serde_json::to_value(&job).unwrap();
        assert_eq!(value["action"], "created");
        assert_eq!(value["origin"], "s3");
        assert_eq!(serde_json::from_value::<Job>(value.clone()).unwrap(), job);
        let mut extra = value;
        extra["surprise"] = true.into();
        assert_eq!(serde_json::from_value::<Job>(extra).unwrap(), job);
        let origins: Vec<Value> = [
            Origin::S3,
            Origin::Sns,
            Origin::Eventbridge,
            Origin::Minio,
            Origin::Local,
        ]
        .iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect();
        assert_eq!(origins, ["s3", "sns", "eventbridge", "minio", "local"]);
    }

    /// The AWS-shaped fixtures are what the crate's strict types describe; moto's record
    /// is not, which is why the parser above uses its own lenient structs.
    #[test]
    fn fixtures_match_aws_lambda_events_types() {
        for (name, body) in [
            ("s3-put", S3_PUT),
            ("s3-removed", S3_REMOVED),
            ("s3-multi", S3_MULTI),
            ("minio-put", MINIO_PUT),
        ] {
            let event: S3Event =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!event.records.is_empty(), "{name}");
        }
        assert!(serde_json::from_str::<S3Event>(S3_MOTO).is_err());

        let sns: SnsMessage = serde_json::from_str(SNS_ENVELOPE).unwrap();
        assert_eq!(sns.sns_message_type, "Notification");
        let lambda: SnsEvent = serde_json::from_str(SNS_LAMBDA).unwrap();
        assert_eq!(lambda.records[0].sns.message, sns.message);
        let inner: S3Event = serde_json::from_str(&sns.message).unwrap();
        assert_eq!(inner.records.len(), 1);

        for body in [EB_CREATED, EB_DELETED] {
            let eb: EventBridgeEvent = serde_json::from_str(body).unwrap();
            assert_eq!(eb.source, "aws.s3");
        }
    }

    /// Form-encodes like S3: `%XX` for everything but unreserved characters and `/`,
    /// with `+` for a space.
    fn form_encode(key: &str) -> String {
        const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        percent_encoding::utf8_percent_encode(key, SET)
            .to_string()
            .replace("%20", "+")
    }

    /// Arbitrary JSON built from the field names the parser looks at, so that the
    /// generated values reach past the envelope checks.
    fn jsonish() -> impl Strategy<Value = Value> {
        let names = prop::sample::select(vec![
            "Records",
            "s3",
            "bucket",
            "name",
            "object",
            "key",
            "size",
            "eTag",
            "versionId",
            "eventName",
            "eventSource",
            "eventTime",
            "Type",
            "Message",
            "Sns",
            "TopicArn",
            "detail-type",
            "source",
            "detail",
            "etag",
            "version-id",
            "time",
            "Event",
            "EventName",
            "Key",
            "x",
        ]);
        let strings = prop::sample::select(vec![
            "", "Notification", "ObjectCreated:Put", "s3:ObjectRemoved:Delete", "aws:s3",
            "minio:s3", "aws.s3", "Object Created", "Object Deleted", "s3:TestEvent",
            "originals/a+b%2F", "originals/%FF", "derived/x", "originals/", "{}",
            r#"{"Records":[{"s3":{}}]}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"originals/k"}}}]}"#,
        ])
        .prop_map(Value::from);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            strings,
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(names.clone(), inner, 0..6).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_message(&body, &storage());
        }

        #[test]
        fn never_panics_on_json_ish_text(body in r#"[\[\]{}":,0-9a-zA-Z%+/ .\\-]{0,200}"#) {
            let _ = parse_message(body.as_bytes(), &storage());
        }

        #[test]
        fn never_panics_on_structured_json(value in jsonish()) {
            let body = value.to_string();
            let _ = parse_message(body.as_bytes(), &storage());
            let _ = parse_message(sns_wrap(&body).as_bytes(), &storage());
        }

        #[test]
        fn form_encoded_keys_round_trip(rel in "\\PC{1,40}") {
            let key = format!("originals/{rel}");
            prop_assume!(!key.ends_with('/'));
            let job = one_job(&s3_body("ObjectCreated:Put", &form_encode(&key)));
            prop_assert_eq!(job.key, key);
        }
    }
}
