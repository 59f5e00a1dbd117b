//! The error taxonomy: every stable error kind in one list, and the one trait every error
//! source answers.
//!
//! Each error source ([`StoreError`], [`RenderError`], [`UrlError`], [`EventError`],
//! [`NameError`], [`CdnError`]) defines `kind()`, `is_retryable()` and `status()` once, as its own
//! methods; composite errors ([`JobError`], [`OnDemandError`], [`MessageError`], and the
//! worker's sheet error) add the kinds of their own variants and delegate the rest to
//! their sources. [`Classified`] is those three methods as a trait, for code generic over
//! the error ([`crate::disposition::decide`], where the error types implement it). This
//! module imports none of them, so every error module may name its kinds from here.
//!
//! Kinds go into queue headers, message attributes, failure records, Lambda error types
//! (`Rendition.Permanent.<kind>`), metrics and the `error` field of HTTP error bodies:
//! renaming one breaks whoever alerts on it.

/// The kind of an eager job whose source object does not exist (deleted, or never
/// uploaded). The on-demand and contact-sheet paths answer `source_missing` instead: an
/// HTTP 404 for a URL, not a job's failure.
pub const MISSING_SOURCE: &str = "missing_source";

/// Every stable error kind, with what it means.
pub const KINDS: &[(&str, &str)] = &[
    // The source and its bytes.
    (
        MISSING_SOURCE,
        "an eager job's source object does not exist (deleted, or never uploaded)",
    ),
    (
        "source_missing",
        "the source a derivative URL or contact sheet names does not exist (HTTP 404)",
    ),
    (
        "not_found",
        "a stored object other than a source is absent where it was expected",
    ),
    (
        "stale_url",
        "the source was replaced since the derivative URL was made (HTTP 404)",
    ),
    (
        "manifest_missing",
        "the source has no manifest yet: its derivatives are not made (contact sheet)",
    ),
    (
        "unsupported_format",
        "not an allowed image format, by its magic bytes",
    ),
    (
        "too_many_frames",
        "more frames or pages than `limits.max_frames`",
    ),
    (
        "unsupported_variant",
        "a variant that cannot be made from this source (e.g. smart crop of an animation)",
    ),
    (
        "input_too_large",
        "the source is over `limits.max_input_bytes`",
    ),
    (
        "too_many_pixels",
        "width × height (all frames of a kept animation) over `limits.max_input_pixels`",
    ),
    (
        "decoded_too_large",
        "the decode, or the frame a variant's crop is cut from, would be over `limits.max_decoded_bytes`",
    ),
    (
        "too_many_scans",
        "a JPEG with more scans than `limits.max_scans`",
    ),
    (
        "output_too_large",
        "a variant's output side over `limits.max_output_dimension` (skipped; its siblings are made)",
    ),
    ("corrupt_image", "a corrupt or truncated image"),
    ("encode_failed", "libvips could not encode the output"),
    // The render itself.
    (
        "decoder_crashed",
        "the render helper died (a decoder crash, or killed)",
    ),
    (
        "over_memory_budget",
        "the render needed more than `render.max_memory_mb`",
    ),
    (
        "over_time_budget",
        "the render ran over `render.max_cpu_secs` or `render.deadline_secs`",
    ),
    (
        "renderer_unavailable",
        "no render helper could be started or reached (retryable)",
    ),
    ("vips_init", "libvips itself could not start"),
    ("crashed", "a render task failed unexpectedly (retryable)"),
    (
        "busy",
        "every render slot stayed taken for the bounded wait (HTTP 503, retryable)",
    ),
    // Storage.
    (
        "storage_unavailable",
        "storage timed out, was unreachable, answered 5xx or throttled (retryable)",
    ),
    (
        "storage_error",
        "storage refused the request (permissions, bad request)",
    ),
    (
        "invalid_key",
        "a key no store accepts (over 1,024 bytes, control characters, path tricks, not a source)",
    ),
    // The CDN (removals).
    (
        "cdn_unavailable",
        "the CDN's invalidation API timed out, was unreachable, answered 5xx or throttled (retryable)",
    ),
    (
        "cdn_error",
        "the CDN refused an invalidation (permissions, unknown distribution, bad path)",
    ),
    // Derivative URLs.
    ("bad_path", "a malformed URL path"),
    (
        "bad_key",
        "a URL path or sheet key that does not name a derivative or a source",
    ),
    (
        "bad_query",
        "a malformed query, or a refused query parameter",
    ),
    ("unknown_preset", "no preset of that name is configured"),
    (
        "preset_not_made",
        "`rendition html`: the source's manifest lists no variant of that preset",
    ),
    (
        "no_ladder",
        "`rendition html`: no eager preset with a width and no height to make a srcset of",
    ),
    (
        "mixed_shapes",
        "`rendition html`: the presets named have different aspect ratios",
    ),
    (
        "specs_disabled",
        "explicit specs are disabled (presets only, or no signing key)",
    ),
    ("missing_signature", "an explicit spec without a signature"),
    ("bad_signature", "a signature that does not verify"),
    ("expired", "a signed URL past its expiry"),
    (
        "wrong_extension",
        "the URL's extension is not the variant's format",
    ),
    (
        "superseded",
        "a preset URL of an edited spec whose object is gone: HTTP 302 to the current URL",
    ),
    // Events and messages.
    ("empty_body", "an empty message body"),
    ("not_json", "a message (or SNS message) that is not JSON"),
    ("not_an_object", "a JSON value that should be an object"),
    (
        "unknown_envelope",
        "a message that is no storage event, SNS or EventBridge envelope",
    ),
    ("nested_envelope", "an SNS message inside an SNS message"),
    (
        "unsupported_sns_type",
        "an SNS message type other than a notification",
    ),
    (
        "unsupported_source",
        "an event from a source other than S3 or MinIO",
    ),
    ("missing_field", "an event without a required field"),
    ("invalid_field", "an event field of the wrong type or value"),
    (
        "invalid_key_encoding",
        "an event key that does not decode to UTF-8",
    ),
    (
        "wrong_bucket",
        "an event for a bucket this worker does not serve",
    ),
    // The Lambda's own.
    ("unknown_event", "a Lambda payload of no known trigger"),
    (
        "malformed_event",
        "a Lambda payload of a known trigger, not shaped as documented",
    ),
    (
        "events_unavailable",
        "the SNS topic did not accept a Lambda invocation's outcome events (retried)",
    ),
    // The on-demand front doors' own answers (`crate::respond`).
    (
        "method_not_allowed",
        "an on-demand request other than GET or HEAD (HTTP 405)",
    ),
    (
        "bad_request",
        "a Lambda HTTP event that cannot be read as a request (HTTP 400)",
    ),
    (
        "render_in_progress",
        "`serve` stopped waiting for a render that carries on (HTTP 504)",
    ),
];

/// Whether `kind` is one of [`KINDS`].
pub fn is_known(kind: &str) -> bool {
    KINDS.iter().any(|(k, _)| *k == kind)
}

/// An error that says what it is ([`KINDS`]), whether trying again may help, and its HTTP
/// status.
pub trait Classified: std::error::Error {
    /// A short stable name, one of [`KINDS`].
    fn kind(&self) -> &'static str;
    /// Worth another attempt later (outages), as opposed to a property of the input.
    fn is_retryable(&self) -> bool;
    /// The HTTP status this error is answered with.
    fn status(&self) -> u16;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::cdn::CdnError;
    use crate::event::EventError;
    use crate::job::JobError;
    use crate::message::MessageError;
    use crate::naming::NameError;
    use crate::ondemand::OnDemandError;
    use crate::render::{RenderError, Unsupported};
    use crate::sniff::SniffError;
    use crate::spec::{Format, SpecError};
    use crate::store::StoreError;
    use crate::url::UrlError;
    use crate::vips::VipsError;

    fn store_errors() -> Vec<StoreError> {
        vec![
            StoreError::NotFound { key: "k".into() },
            StoreError::TooLarge {
                key: "k".into(),
                limit: 1,
            },
            StoreError::InvalidKey {
                key: "k".into(),
                reason: "r",
            },
            StoreError::Unavailable("down".into()),
            StoreError::Other("denied".into()),
        ]
    }

    fn cdn_errors() -> Vec<CdnError> {
        vec![
            CdnError::Unavailable("throttled".into()),
            CdnError::Refused("denied".into()),
        ]
    }

    fn render_errors() -> Vec<RenderError> {
        let vips = || VipsError::new("op", "bad");
        vec![
            SniffError::Empty.into(),
            RenderError::Unsupported(Unsupported::TooManyFrames {
                frames: 2,
                limit: 1,
            }),
            RenderError::Unsupported(Unsupported::Variant {
                variant: "v".into(),
                reason: "r".into(),
            }),
            RenderError::InputTooLarge { bytes: 2, limit: 1 },
            RenderError::TooManyPixels {
                width: 1,
                height: 1,
                pixels: 1,
                limit: 0,
            },
            RenderError::AnimationTooLarge {
                width: 1,
                height: 1,
                frames: 2,
                pixels: 2,
                limit: 1,
            },
            RenderError::OutputTooLarge {
                variant: "v".into(),
                width: 1,
                height: 1,
                limit: 0,
            },
            RenderError::IntermediateTooLarge {
                variant: "v".into(),
                width: 1,
                height: 1,
                bytes: 3,
                limit: 0,
            },
            RenderError::DecodedTooLarge {
                width: 1,
                height: 1,
                bands: 1,
                sample_bytes: 1,
                frames: 1,
                bytes: 1,
                limit: 0,
            },
            RenderError::TooManyScans { scans: 2, limit: 1 },
            RenderError::DecoderCrashed { reason: "r".into() },
            RenderError::OverMemoryBudget {
                limit_mb: 1,
                reason: "r".into(),
            },
            RenderError::OverTimeBudget { reason: "r".into() },
            RenderError::Unavailable("r".into()),
            RenderError::Header(vips()),
            RenderError::Decode(vips()),
            RenderError::Encode {
                format: Format::Webp,
                source: vips(),
            },
            RenderError::Init(vips()),
        ]
    }

    fn name_errors() -> Vec<NameError> {
        vec![
            NameError::NotASource {
                key: "k".into(),
                prefix: "p/".into(),
            },
            NameError::NotDerived {
                key: "k".into(),
                prefix: "p/".into(),
            },
            NameError::Malformed {
                key: "k".into(),
                reason: "r",
            },
            NameError::Spec {
                key: "k".into(),
                source: SpecError::Empty,
            },
            NameError::TooLong { len: 2000 },
        ]
    }

    fn url_errors() -> Vec<UrlError> {
        let mut out: Vec<UrlError> = name_errors().into_iter().map(UrlError::from).collect();
        out.extend([
            UrlError::BadPath("p"),
            UrlError::BadQuery("q"),
            UrlError::ParameterSmuggling("x".into()),
            UrlError::UnknownPreset("x".into()),
            UrlError::SpecsDisabled,
            UrlError::MissingSignature,
            UrlError::BadSignature,
            UrlError::Expired { exp: 1 },
        ]);
        out
    }

    fn event_errors() -> Vec<EventError> {
        vec![
            EventError::Empty,
            EventError::NotJson {
                context: "c",
                reason: "r".into(),
            },
            EventError::NotAnObject {
                context: "c",
                found: "array",
            },
            EventError::UnknownEnvelope { fields: "f".into() },
            EventError::NestedEnvelope,
            EventError::UnsupportedSnsType { kind: "k".into() },
            EventError::UnsupportedSource { name: "n".into() },
            EventError::MissingField { field: "f" },
            EventError::InvalidField {
                field: "f",
                reason: "r".into(),
            },
            EventError::InvalidKeyEncoding { key: "k".into() },
            EventError::InvalidKey {
                key: "k".into(),
                reason: "r",
            },
        ]
    }

    fn job_errors() -> Vec<JobError> {
        let mut out = vec![
            JobError::MissingSource { key: "k".into() },
            JobError::Crashed("c".into()),
            JobError::UnknownPreset("p".into()),
        ];
        out.extend(name_errors().into_iter().map(JobError::from));
        out.extend(store_errors().into_iter().map(JobError::from));
        out.extend(render_errors().into_iter().map(JobError::from));
        out
    }

    fn on_demand_errors() -> Vec<OnDemandError> {
        let mut out = vec![
            OnDemandError::SourceMissing { key: "k".into() },
            OnDemandError::Stale { key: "k".into() },
            OnDemandError::WrongExtension {
                requested: "a".into(),
                actual: "b".into(),
            },
            OnDemandError::Crashed("c".into()),
            OnDemandError::Busy { in_flight: 1 },
            OnDemandError::Superseded {
                location: "/derived/a.jpg/x/thumb.00000000.webp".into(),
            },
        ];
        out.extend(url_errors().into_iter().map(OnDemandError::from));
        out.extend(store_errors().into_iter().map(OnDemandError::from));
        out.extend(render_errors().into_iter().map(OnDemandError::from));
        out
    }

    fn message_errors() -> Vec<MessageError> {
        let mut out = vec![MessageError::WrongBucket {
            got: "a".into(),
            expected: "b".into(),
        }];
        out.extend(event_errors().into_iter().map(MessageError::from));
        out.extend(job_errors().into_iter().map(|source| MessageError::Job {
            key: "k".into(),
            source,
        }));
        out.extend(
            store_errors()
                .into_iter()
                .map(|source| MessageError::Remove {
                    key: "k".into(),
                    source,
                }),
        );
        out.extend(
            cdn_errors()
                .into_iter()
                .map(|source| MessageError::Invalidate {
                    key: "k".into(),
                    source,
                }),
        );
        out
    }

    fn every_error() -> Vec<Box<dyn Classified>> {
        fn boxed<E: Classified + 'static>(v: Vec<E>) -> Vec<Box<dyn Classified>> {
            v.into_iter().map(|e| Box::new(e) as _).collect()
        }
        [
            boxed(store_errors()),
            boxed(cdn_errors()),
            boxed(render_errors()),
            boxed(name_errors()),
            boxed(url_errors()),
            boxed(event_errors()),
            boxed(job_errors()),
            boxed(on_demand_errors()),
            boxed(message_errors()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    #[test]
    fn every_kind_is_listed_once() {
        let mut seen = BTreeSet::new();
        for (kind, meaning) in KINDS {
            assert!(seen.insert(*kind), "{kind} is listed twice");
            assert!(!meaning.is_empty(), "{kind}");
            assert!(
                kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{kind}"
            );
        }
        let produced: BTreeSet<&str> = every_error().iter().map(|e| e.kind()).collect();
        for kind in &produced {
            assert!(is_known(kind), "{kind} is not in KINDS");
        }
        // Kinds of errors outside this crate (the worker's contact sheet and `rendition
        // html`, the Lambda).
        let elsewhere = [
            "manifest_missing",
            "preset_not_made",
            "no_ladder",
            "mixed_shapes",
            "unknown_event",
            "malformed_event",
            "events_unavailable",
            crate::respond::METHOD_NOT_ALLOWED,
            crate::respond::BAD_REQUEST,
            crate::respond::RENDER_IN_PROGRESS,
        ];
        for (kind, _) in KINDS {
            assert!(
                produced.contains(kind) || elsewhere.contains(kind),
                "{kind} is listed but no error has it"
            );
        }
    }

    #[test]
    fn the_readme_table_lists_every_kind() {
        let readme = include_str!("../../README.md");
        for (kind, meaning) in KINDS {
            let row = format!("| `{kind}` | {meaning} |");
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }

    #[test]
    fn composites_answer_as_their_sources() {
        fn answer(e: &dyn Classified) -> (&'static str, bool, u16) {
            (e.kind(), e.is_retryable(), e.status())
        }
        let wrapped: Vec<(Box<dyn Classified>, Box<dyn Classified>)> = store_errors()
            .into_iter()
            .zip(store_errors())
            .map(|(a, b)| (Box::new(a) as _, Box::new(JobError::from(b)) as _))
            .chain(render_errors().into_iter().map(|e| {
                (
                    Box::new(e.clone()) as _,
                    Box::new(OnDemandError::from(e)) as _,
                )
            }))
            .chain(event_errors().into_iter().map(|e| {
                (
                    Box::new(e.clone()) as _,
                    Box::new(MessageError::from(e)) as _,
                )
            }))
            .chain(cdn_errors().into_iter().map(|e| {
                (
                    Box::new(e.clone()) as _,
                    Box::new(MessageError::Invalidate {
                        key: "k".into(),
                        source: e,
                    }) as _,
                )
            }))
            .collect();
        for (source, composite) in &wrapped {
            assert_eq!(
                answer(composite.as_ref()),
                answer(source.as_ref()),
                "{source}"
            );
        }
        let missing = StoreError::NotFound { key: "k".into() };
        assert_eq!(missing.kind(), "not_found");
        assert_eq!(missing.status(), 404);
        assert_eq!(
            JobError::MissingSource { key: "k".into() }.kind(),
            MISSING_SOURCE
        );
        let outage = StoreError::Unavailable("down".into());
        assert!(outage.is_retryable());
        assert_eq!(outage.status(), 503);
        for e in every_error() {
            // `superseded` is the one redirect: the URL's version is gone, not wrong.
            if e.kind() == "superseded" {
                assert_eq!(e.status(), 302);
                continue;
            }
            assert!((400..600).contains(&e.status()), "{e}: {}", e.status());
        }
    }
}
