//! Outcome events: what became of each source a message named, announced to whoever
//! builds on the derivatives (a CMS, a search index, a cache warmer). One type, built here
//! from what the job edge already has (the message's result, its
//! [`Disposition`]), and published as it is by every edge: RabbitMQ's events exchange
//! (routing key = `type`), an SNS topic for the SQS worker and the Lambda
//! (`rendition_aws::sns`).
//!
//! Each event is a [CloudEvents 1.0](https://github.com/cloudevents/spec) event in
//! structured JSON mode (`content-type: application/cloudevents+json`), schema
//! `schemas/event.schema.json`:
//!
//! | `type` | when | `data` |
//! | --- | --- | --- |
//! | `derivatives.ready` | a source's eager derivatives and manifest are stored (rendered now, or found done) | the manifest |
//! | `derivatives.failed` | a job failed: `permanent: false` when another attempt is scheduled, `true` when it is dead-lettered | [`Failed`] |
//! | `derivatives.removed` | a removed source's derivatives and manifests were deleted | [`Removed`] |
//!
//! Delivery is at least once: an edge acknowledges a message only after its events were
//! accepted, so a redelivery announces again. The `id` is derived from the outcome (the
//! event type, bucket, key, and the manifest, the message or the removal event), so a
//! repeat of the same outcome has the same `id`: consumers deduplicate by it. Readers
//! tolerate fields they do not know.

use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::disposition::{decide, Disposition, Failure, RetryPolicy};
use crate::manifest::Manifest;
use crate::message::{Handled, MessageError, Removal};

/// The CloudEvents version of every event.
pub const SPEC_VERSION: &str = "1.0";
/// The content type of an event in structured mode (the message body is the event).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// The content type of `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// A source's derivatives are ready.
pub const READY: &str = "derivatives.ready";
/// A job failed.
pub const FAILED: &str = "derivatives.failed";
/// A removed source's derivatives were deleted.
pub const REMOVED: &str = "derivatives.removed";

/// Namespace of the name-based (v5) UUIDs that are event ids.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x5c1c_0f3e_8d2a_4b61_9e47_0a7d_63f2_b1e8);

/// One outcome event: a CloudEvent (structured JSON mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutcomeEvent {
    /// The CloudEvents version: `1.0`.
    pub specversion: String,
    /// Unique per outcome, and the same when the same outcome is announced again (a
    /// redelivered message): deduplicate by it.
    pub id: String,
    /// `rendition://{bucket}`: the bucket whose sources this worker serves.
    pub source: String,
    /// The source key, when the message named one (a message that is not a storage event
    /// names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the event was made, RFC 3339 in UTC.
    pub time: String,
    /// `application/json`.
    pub datacontenttype: String,
    /// The W3C trace context of the job that made the event (the CloudEvents
    /// distributed-tracing extension), when it was traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// `type` and `data`.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The event's `type` and its `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Outcome {
    /// The source's eager derivatives and its manifest are stored; `data` is the manifest.
    #[serde(rename = "derivatives.ready")]
    Ready(Manifest),
    /// A job failed.
    #[serde(rename = "derivatives.failed")]
    Failed(Failed),
    /// A removed source's derivatives and manifests were deleted.
    #[serde(rename = "derivatives.removed")]
    Removed(Removed),
}

/// `data` of `derivatives.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Failed {
    /// The source key, when the message named one.
    #[serde(default)]
    pub source: Option<String>,
    /// The stable error kind (`corrupt_image`, `storage_unavailable`, … — docs/errors.md's
    /// error table).
    pub kind: String,
    /// The error message, at most 1,024 bytes.
    pub reason: String,
    /// Attempts made, this one included (as the queue counts them).
    pub attempts: u32,
    /// True when the job is given up (dead-lettered: a permanent error, or the attempts
    /// ran out); false when another attempt is scheduled.
    pub permanent: bool,
    /// Whether the error was of the retryable kind (true for a dead letter whose attempts
    /// ran out).
    pub retryable: bool,
}

/// `data` of `derivatives.removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Removed {
    /// The removed source's key.
    pub source: String,
    /// The version the removal event named, where the bucket is versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Derivatives and manifests deleted (0 when a redelivery found them gone already).
    pub deleted: u64,
}

/// Where a message came from and what it was: what the events of its outcome name.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The bucket the worker serves (`source` is `rendition://{bucket}`).
    pub bucket: &'a str,
    /// The message body as received: a failure's `id` is derived from it.
    pub message: &'a [u8],
    /// The job's W3C trace context ([`crate::message::job_span`]'s), if traced.
    pub traceparent: Option<&'a str>,
}

/// A settled message: its disposition, and the events to publish before acknowledging it.
#[derive(Debug)]
pub struct Settled {
    pub disposition: Disposition<Handled>,
    pub events: Vec<OutcomeEvent>,
}

/// The one decision for a message ([`decide`]) and its events: `Done` → one
/// `derivatives.ready` per manifest and one `derivatives.removed` per removal; `Retry` →
/// `derivatives.failed` with `permanent: false`; `DeadLetter` → `derivatives.failed`
/// with `permanent: true`.
pub fn settle(
    result: Result<Handled, MessageError>,
    attempt: u32,
    policy: &RetryPolicy,
    cx: &Context<'_>,
) -> Settled {
    let key = match &result {
        Err(e) => e.source_key().map(str::to_string),
        Ok(_) => None,
    };
    let disposition = decide(result, attempt, policy);
    let events = match &disposition {
        Disposition::Done(handled) => handled
            .manifests
            .iter()
            .map(|m| OutcomeEvent::ready(cx, m.clone()))
            .chain(
                handled
                    .removals
                    .iter()
                    .map(|r| OutcomeEvent::removed(cx, r)),
            )
            .collect(),
        Disposition::Retry { failure, .. } => {
            vec![OutcomeEvent::failed(cx, key.as_deref(), failure, false)]
        }
        Disposition::DeadLetter(failure) => {
            vec![OutcomeEvent::failed(cx, key.as_deref(), failure, true)]
        }
    };
    Settled {
        disposition,
        events,
    }
}

impl OutcomeEvent {
    fn new(cx: &Context<'_>, id: Uuid, subject: Option<String>, outcome: Outcome) -> Self {
        OutcomeEvent {
            specversion: SPEC_VERSION.to_string(),
            id: id.to_string(),
            source: format!("rendition://{}", cx.bucket),
            subject,
            time: rfc3339(SystemTime::now()),
            datacontenttype: DATA_CONTENT_TYPE.to_string(),
            traceparent: cx.traceparent.map(str::to_string),
            outcome,
        }
    }

    /// `derivatives.ready` for `manifest`. Its id is that of the manifest's content, so
    /// announcing the stored manifest again repeats it, and a backfill that adds variants
    /// makes a new one.
    pub fn ready(cx: &Context<'_>, manifest: Manifest) -> Self {
        let body = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let id = event_id(&[READY.as_bytes(), cx.bucket.as_bytes(), &body]);
        let subject = Some(manifest.source.key.clone());
        OutcomeEvent::new(cx, id, subject, Outcome::Ready(manifest))
    }

    /// `derivatives.failed` for a failure of the message in `cx`; `permanent` when it is
    /// dead-lettered. A retry's id names its attempt; a dead letter's does not, so a
    /// dead-lettering that is redone (its publish was not confirmed) repeats it.
    pub fn failed(cx: &Context<'_>, key: Option<&str>, failure: &Failure, permanent: bool) -> Self {
        let attempt = if permanent {
            "dead-letter".to_string()
        } else {
            format!("attempt {}", failure.attempts)
        };
        let id = event_id(&[
            FAILED.as_bytes(),
            cx.bucket.as_bytes(),
            key.unwrap_or_default().as_bytes(),
            failure.kind.as_bytes(),
            attempt.as_bytes(),
            cx.message,
        ]);
        let data = Failed {
            source: key.map(str::to_string),
            kind: failure.kind.to_string(),
            reason: failure.reason.clone(),
            attempts: failure.attempts,
            permanent,
            retryable: failure.retryable,
        };
        OutcomeEvent::new(cx, id, key.map(str::to_string), Outcome::Failed(data))
    }

    /// `derivatives.removed` for `removal`. Its id is that of the removal event (key,
    /// version, event time), not of the count, so a redelivery that finds nothing left to
    /// delete repeats it.
    pub fn removed(cx: &Context<'_>, removal: &Removal) -> Self {
        let id = event_id(&[
            REMOVED.as_bytes(),
            cx.bucket.as_bytes(),
            removal.key.as_bytes(),
            removal.version_id.as_deref().unwrap_or_default().as_bytes(),
            removal.event_time.as_deref().unwrap_or_default().as_bytes(),
        ]);
        let data = Removed {
            source: removal.key.clone(),
            version_id: removal.version_id.clone(),
            deleted: removal.deleted,
        };
        OutcomeEvent::new(cx, id, Some(removal.key.clone()), Outcome::Removed(data))
    }

    /// The event's `type`: also its RabbitMQ routing key and its SNS `type` attribute.
    pub fn kind(&self) -> &'static str {
        match self.outcome {
            Outcome::Ready(_) => READY,
            Outcome::Failed(_) => FAILED,
            Outcome::Removed(_) => REMOVED,
        }
    }

    /// The event as a message body (structured mode).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an outcome event serializes")
    }
}

/// A name-based UUID of `parts` (each length-prefixed, so no two lists collide).
fn event_id(parts: &[&[u8]]) -> Uuid {
    let mut name = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part);
    }
    Uuid::new_v5(&ID_NAMESPACE, &name)
}

/// `t` as RFC 3339 in UTC with milliseconds, e.g. `2026-11-30T02:19:17.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::job::JobError;
    use crate::manifest::ManifestSource;
    use crate::store::StoreError;
    use rendition_image::render::RenderError;
    use rendition_image::sniff::SourceFormat;
    use rendition_image::vips::VipsError;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: Some(3),
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(4),
    };

    fn cx(message: &[u8]) -> Context<'_> {
        Context {
            bucket: "photos",
            message,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        }
    }

    fn manifest(key: &str) -> Manifest {
        Manifest {
            version: crate::manifest::MANIFEST_VERSION,
            source: ManifestSource {
                bucket: "photos".into(),
                key: key.into(),
                guid: Uuid::nil(),
                version: "etag".into(),
                width: 10,
                height: 20,
                format: SourceFormat::Jpeg,
                bytes: 300,
            },
            placeholder: None,
            variants: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn corrupt(key: &str) -> Result<Handled, MessageError> {
        Err(MessageError::Job {
            key: key.into(),
            source: JobError::Render(RenderError::Decode(VipsError::new("jpegload", "truncated"))),
        })
    }

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        let at = |secs: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_005_157, 123), "2026-11-30T02:19:17.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn done_announces_every_manifest_and_removal() {
        let handled = Handled {
            manifests: vec![manifest("originals/a.jpg")],
            removals: vec![Removal {
                key: "originals/b.jpg".into(),
                version_id: None,
                event_time: Some("2026-01-01T00:00:00Z".into()),
                deleted: 7,
            }],
            ..Handled::default()
        };
        let settled = settle(Ok(handled), 1, &POLICY, &cx(b"{}"));
        assert!(matches!(settled.disposition, Disposition::Done(_)));
        let [ready, removed] = &settled.events[..] else {
            panic!("{:?}", settled.events)
        };
        assert_eq!(ready.kind(), READY);
        assert_eq!(ready.subject.as_deref(), Some("originals/a.jpg"));
        assert_eq!(ready.outcome, Outcome::Ready(manifest("originals/a.jpg")));
        assert_eq!(removed.kind(), REMOVED);
        assert_eq!(
            removed.outcome,
            Outcome::Removed(Removed {
                source: "originals/b.jpg".into(),
                version_id: None,
                deleted: 7
            })
        );
        for e in [ready, removed] {
            assert_eq!(e.specversion, "1.0");
            assert_eq!(e.source, "rendition://photos");
            assert_eq!(e.datacontenttype, "application/json");
            assert!(e.traceparent.is_some());
            assert_eq!(e.time.len(), "2026-11-30T02:19:17.123Z".len());
        }
        assert_ne!(ready.id, removed.id);
    }

    #[test]
    fn failures_are_permanent_only_when_dead_lettered() {
        let retried = settle(corrupt_retryable(), 1, &POLICY, &cx(b"m"));
        assert!(matches!(retried.disposition, Disposition::Retry { .. }));
        let [event] = &retried.events[..] else {
            panic!()
        };
        let Outcome::Failed(data) = &event.outcome else {
            panic!("{event:?}")
        };
        assert_eq!(
            (data.permanent, data.retryable, data.attempts),
            (false, true, 1)
        );
        assert_eq!(data.kind, "storage_unavailable");
        assert_eq!(data.source.as_deref(), Some("originals/x.jpg"));

        let dead = settle(corrupt("originals/c.jpg"), 1, &POLICY, &cx(b"m"));
        let [event] = &dead.events[..] else { panic!() };
        assert_eq!(event.kind(), FAILED);
        assert_eq!(event.subject.as_deref(), Some("originals/c.jpg"));
        let Outcome::Failed(data) = &event.outcome else {
            panic!()
        };
        assert_eq!(data.kind, "corrupt_image");
        assert!(data.permanent && !data.retryable);

        // A message that is not an event names no source.
        let junk = Err(MessageError::Event(crate::event::EventError::Empty));
        let settled = settle(junk, 1, &POLICY, &cx(b""));
        assert_eq!(settled.events[0].subject, None);
    }

    fn corrupt_retryable() -> Result<Handled, MessageError> {
        Err(MessageError::Job {
            key: "originals/x.jpg".into(),
            source: JobError::Store(StoreError::Unavailable("reset".into())),
        })
    }

    #[test]
    fn ids_are_stable_per_outcome() {
        let id = |result, attempt, message: &[u8]| {
            settle(result, attempt, &POLICY, &cx(message)).events[0]
                .id
                .clone()
        };
        // The same outcome again: the same id, whenever it is made.
        assert_eq!(
            id(corrupt("originals/c.jpg"), 1, b"m1"),
            id(corrupt("originals/c.jpg"), 1, b"m1")
        );
        // A dead letter redone at a later attempt is the same outcome…
        assert_eq!(
            id(corrupt("originals/c.jpg"), 1, b"m1"),
            id(corrupt("originals/c.jpg"), 2, b"m1")
        );
        // …each retry is its own…
        assert_ne!(
            id(corrupt_retryable(), 1, b"m1"),
            id(corrupt_retryable(), 2, b"m1")
        );
        // …and another message (a new upload of the same key) is another outcome.
        assert_ne!(
            id(corrupt("originals/c.jpg"), 1, b"m1"),
            id(corrupt("originals/c.jpg"), 1, b"m2")
        );
        let ready = |m: Manifest| OutcomeEvent::ready(&cx(b""), m).id;
        assert_eq!(
            ready(manifest("originals/a.jpg")),
            ready(manifest("originals/a.jpg"))
        );
        assert_ne!(
            ready(manifest("originals/a.jpg")),
            ready(manifest("originals/b.jpg"))
        );
        assert!(Uuid::parse_str(&ready(manifest("originals/a.jpg"))).is_ok());
    }

    #[test]
    fn events_round_trip_as_cloudevents_and_readers_ignore_unknown_fields() {
        let event = OutcomeEvent::ready(&cx(b""), manifest("originals/a.jpg"));
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(json["type"], "derivatives.ready");
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["subject"], "originals/a.jpg");
        assert_eq!(json["data"]["source"]["key"], "originals/a.jpg");
        assert_eq!(
            json["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        let mut extended = json.clone();
        extended["newattribute"] = "x".into();
        extended["data"]["newfield"] = 1.into();
        let back: OutcomeEvent = serde_json::from_value(extended).unwrap();
        assert_eq!(back, event);

        let failed = settle(corrupt("originals/c.jpg"), 2, &POLICY, &cx(b"m")).events;
        let back: OutcomeEvent = serde_json::from_str(&failed[0].to_json()).unwrap();
        assert_eq!(back, failed[0]);
    }
}
