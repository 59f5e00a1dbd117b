//! The storage port: a narrow async interface every adapter (local folder, S3) provides,
//! and which one conformance suite checks for all of them. The S3 adapter lives in
//! `rendition-aws` (`rendition_aws::s3::S3Store`).

mod cache;
mod fs;

pub use cache::CachedStore;

pub use fs::FsStore;

use async_trait::async_trait;
use bytes::Bytes;

/// `Cache-Control` for derivatives: their names are immutable.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// What a store knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Changes whenever the content changes (S3 ETag; a content hash on the filesystem).
    pub etag: String,
    pub version_id: Option<String>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    /// When the object was last written (S3 `LastModified`; the file's mtime), where the
    /// store says. `rendition gc` ages retired derivatives by it.
    pub last_modified: Option<std::time::SystemTime>,
}

impl ObjectMeta {
    /// The strongest identity of this object version: version id, else ETag.
    pub fn version(&self) -> &str {
        self.version_id.as_deref().unwrap_or(&self.etag)
    }
}

#[derive(Debug, Clone)]
pub struct Object {
    pub meta: ObjectMeta,
    pub body: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    /// Write only if no object has this key (`If-None-Match: *`).
    pub if_absent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// `if_absent` was set and the key already existed; nothing was written.
    AlreadyExists,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no object at {key:?}")]
    NotFound { key: String },
    #[error("object {key:?} is larger than the limit of {limit} bytes")]
    TooLarge { key: String, limit: u64 },
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// Timeouts, connection failures, 5xx, throttling: worth trying again.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else the store refused (permissions, bad request): retrying won't help.
    #[error("storage error: {0}")]
    Other(String),
}

impl StoreError {
    /// A short stable name ([`rendition_image::kinds::KINDS`]). An absent object is `not_found`
    /// whatever it is: the eager job and the on-demand path turn an absent *source* into
    /// their own error (`missing_source`, `source_missing`) where they read it.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::TooLarge { .. } => "input_too_large",
            StoreError::InvalidKey { .. } => "invalid_key",
            StoreError::Unavailable(_) => "storage_unavailable",
            StoreError::Other(_) => "storage_error",
        }
    }

    /// Only an outage is worth another attempt.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// HTTP status: 404 absent, 422 over the size limit, 400 a refused key, 503 an outage
    /// (worth retrying), 502 anything else the store refused.
    pub fn status(&self) -> u16 {
        match self {
            StoreError::NotFound { .. } => 404,
            StoreError::TooLarge { .. } => 422,
            StoreError::InvalidKey { .. } => 400,
            StoreError::Unavailable(_) => 503,
            StoreError::Other(_) => 502,
        }
    }
}

/// An object store: a flat namespace of keys with `/` as a conventional separator.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Reads a whole object, refusing it (without reading it all) past `max_bytes`.
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Object, StoreError>;
    /// Metadata of an object, or `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError>;
    /// Writes an object; visible whole or not at all.
    async fn put(&self, key: &str, body: Bytes, opts: PutOptions)
        -> Result<PutOutcome, StoreError>;
    /// Keys under `prefix`, in lexicographic order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;
    /// Deletes an object; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Keys every adapter refuses: they are the path tricks of hostile uploads.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > crate::naming::MAX_KEY_BYTES {
        return bad("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("absolute");
    }
    if key.chars().any(|c| c.is_control()) {
        return bad("contains a control character");
    }
    if key.contains('\\') {
        return bad("contains a backslash");
    }
    for segment in key.split('/') {
        match segment {
            "" => return bad("empty path segment"),
            "." | ".." => return bad("relative path segment"),
            s if s.starts_with(".rendition") => return bad("reserved name"),
            _ => {}
        }
    }
    Ok(())
}

/// Guesses a content type from a key's extension.
pub fn content_type_for(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "gif" => "image/gif",
        "tif" | "tiff" => "image/tiff",
        "heic" | "heif" => "image/heif",
        "json" => "application/json",
        _ => return None,
    })
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
rendition_image::classified!(StoreError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_are_refused() {
        for key in [
            "",
            "/etc/passwd",
            "a/../b",
            "../x",
            "a/./b",
            "a//b",
            "a/b/",
            "a\0b",
            "a\nb",
            "a\\b",
            ".rendition/meta/x",
        ] {
            assert!(validate_key(key).is_err(), "{key:?}");
        }
        assert!(validate_key(&"k".repeat(1025)).is_err());
        for key in [
            "a",
            "originals/a b/c.jpg",
            "derived/x/w=1,fm=webp.webp",
            "ünïcode/ø.png",
        ] {
            validate_key(key).unwrap();
        }
    }
}
