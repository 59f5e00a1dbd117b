//! The CDN port: telling the CDN in front of the derived prefix that a removed source's
//! derivatives are gone, so it stops serving its copies (derivatives are cached for a year,
//! `Cache-Control: immutable`, and a removal may be a legal takedown).
//!
//! One narrow trait ([`Cdn`]), one adapter (CloudFront, in `rendition-aws`), and the
//! two names a removal gives it: the path ([`removal_path`]) and the request's reference
//! ([`removal_reference`]). The removal itself, which calls this after its deletes, is
//! [`crate::message::remove_source`].

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::config::StorageSettings;
use crate::event::Job;
use crate::naming;

/// Why an invalidation failed. Invalidations are idempotent here (the same reference and
/// paths name the same invalidation, and invalidating twice is harmless), so an outage is
/// worth another attempt of the whole removal: its deletes find nothing left and it
/// invalidates again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdnError {
    /// Timeouts, connection failures, 5xx, throttling, too many invalidations in
    /// progress: worth trying again.
    #[error("CDN unavailable: {0}")]
    Unavailable(String),
    /// Anything else the CDN refused (permissions, an unknown distribution, a path it does
    /// not accept): retrying won't help.
    #[error("CDN refused the invalidation: {0}")]
    Refused(String),
}

impl CdnError {
    /// A short stable name ([`rendition_image::kinds::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            CdnError::Unavailable(_) => "cdn_unavailable",
            CdnError::Refused(_) => "cdn_error",
        }
    }

    /// Only an outage is worth another attempt.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CdnError::Unavailable(_))
    }

    /// HTTP status, for completeness: 503 an outage, 502 a refusal.
    pub fn status(&self) -> u16 {
        match self {
            CdnError::Unavailable(_) => 503,
            CdnError::Refused(_) => 502,
        }
    }
}

/// An invalidation the CDN accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// The CDN's id of the invalidation.
    pub id: String,
    /// What was invalidated: the distribution's id.
    pub distribution: String,
}

/// A CDN whose cached copies can be invalidated.
#[async_trait]
pub trait Cdn: Send + Sync + 'static {
    /// Invalidates `paths` (each starting with `/`, encoded as [`removal_path`] does, `*`
    /// only last) in one request named `reference`: the same reference with the same paths
    /// is the same invalidation, so a retried removal does not make another.
    async fn invalidate(&self, reference: &str, paths: &[String])
        -> Result<Invalidation, CdnError>;
}

/// Left as they are in invalidation paths: letters, digits, `/`, and the characters
/// RFC 1738 calls safe or reserved that our URLs never encode differently (`- . _ $ + ! '
/// ( ) , : =`). CloudFront asks for non-ASCII and RFC 1738's unsafe characters to be
/// percent-encoded and no others (it would not match its cached copies then); `*` (a
/// wildcard anywhere but last is refused), `?`, `@`, `;` and `&` are encoded too, so a
/// key's own characters never read as a wildcard, a query or a refused path.
const INVALIDATION_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'/')
    .remove(b'$')
    .remove(b'+')
    .remove(b'!')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b',')
    .remove(b':')
    .remove(b'=');

/// The one path a removed source's derivatives are invalidated by:
/// `/{derived_prefix}{source_rel}/*`, every version's derivatives and manifests (the
/// folder [`naming::source_folder`] names). A source named `a.jpg/b.jpg` has its folder
/// inside `a.jpg`'s, so removing `a.jpg` also invalidates its cached copies: they are
/// fetched again from the origin, which still has them.
pub fn removal_path(storage: &StorageSettings, source_rel: &str) -> String {
    let folder = naming::source_folder(&storage.derived_prefix, source_rel);
    format!(
        "/{}*",
        percent_encoding::utf8_percent_encode(&folder, INVALIDATION_SET)
    )
}

/// The reference of a removal's invalidation (CloudFront's `CallerReference`): the same
/// for every delivery of one event (bucket, key, version, event time), so a redelivered or
/// retried event names the invalidation it already made; another removal of the same key
/// (deleted again after a re-upload) has another time and gets its own. An event without
/// a time or version gets a random reference (a redelivery then invalidates again, which
/// is harmless).
pub fn removal_reference(job: &Job) -> String {
    let id = if job.event_time.is_some() || job.version_id.is_some() {
        let name = format!(
            "removed\n{}\n{}\n{}\n{}",
            job.bucket,
            job.key,
            job.version_id.as_deref().unwrap_or_default(),
            job.event_time.as_deref().unwrap_or_default()
        );
        uuid::Uuid::new_v5(&naming::NAMESPACE, name.as_bytes())
    } else {
        uuid::Uuid::new_v4()
    };
    format!("rendition-removed-{id}")
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
rendition_image::classified!(CdnError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Origin};

    fn storage() -> StorageSettings {
        StorageSettings::default()
    }

    #[test]
    fn the_path_is_the_source_folder_with_a_wildcard() {
        assert_eq!(removal_path(&storage(), "a/b.jpg"), "/derived/a/b.jpg/*");
        assert_eq!(
            removal_path(&storage(), "holiday photo (1).jpg"),
            "/derived/holiday%20photo%20(1).jpg/*"
        );
    }

    #[test]
    fn unsafe_and_non_ascii_characters_are_encoded() {
        assert_eq!(
            removal_path(&storage(), "été/[x]~{y}*?#%.jpg"),
            "/derived/%C3%A9t%C3%A9/%5Bx%5D%7E%7By%7D%2A%3F%23%25.jpg/*"
        );
        // Only the last character is a wildcard.
        let path = removal_path(&storage(), "a*b/c*");
        assert_eq!(path.matches('*').count(), 1);
        assert!(path.ends_with("/*"));
    }

    fn job(event_time: Option<&str>) -> Job {
        Job {
            action: Action::Removed,
            bucket: "b".into(),
            key: "originals/a.jpg".into(),
            version_id: None,
            etag: None,
            size: None,
            event_time: event_time.map(str::to_string),
            origin: Origin::S3,
            presets: Vec::new(),
        }
    }

    #[test]
    fn a_redelivery_has_the_same_reference_and_another_removal_another() {
        let first = removal_reference(&job(Some("2026-11-21T10:00:00.000Z")));
        assert_eq!(
            first,
            removal_reference(&job(Some("2026-11-21T10:00:00.000Z")))
        );
        assert_ne!(
            first,
            removal_reference(&job(Some("2026-11-22T10:00:00.000Z")))
        );
        assert_ne!(removal_reference(&job(None)), removal_reference(&job(None)));
        assert!(first.len() <= 128, "{first}");
    }
}
