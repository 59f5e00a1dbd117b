//! The error taxonomy: every stable error kind in one list, and the one trait every error
//! source answers. The test that every error of every crate answers with a listed kind
//! is `rendition-pipeline`'s `kinds` (the crate that sees them all).
//!
//! Each error source (`StoreError`, `RenderError`, `UrlError`, `EventError`,
//! `NameError`, `CdnError`) defines `kind()`, `is_retryable()` and `status()` once, as its own
//! methods; composite errors (`JobError`, `OnDemandError`, `MessageError`, and the
//! worker's sheet error) add the kinds of their own variants and delegate the rest to
//! their sources. [`Classified`] is those three methods as a trait, for code generic over
//! the error (`crate::disposition::decide`, where the error types implement it). This
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

/// Implements [`Classified`] with each type's own `kind`, `is_retryable` and `status`.
#[macro_export]
macro_rules! classified {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::kinds::Classified for $t {
            fn kind(&self) -> &'static str {
                <$t>::kind(self)
            }
            fn is_retryable(&self) -> bool {
                <$t>::is_retryable(self)
            }
            fn status(&self) -> u16 {
                <$t>::status(self)
            }
        }
    )+};
}
