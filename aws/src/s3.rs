//! S3 (or an S3-compatible server) as a `BlobStore`.
//!
//! Every call is one request (two for the rare fallbacks noted below); the SDK retries
//! transient failures itself (standard mode, a few attempts), and whatever still fails is
//! classified once, in `classify`, into the port's errors: timeouts, connection failures,
//! 5xx and throttling are `Unavailable` (retryable), a missing key is `NotFound`, the rest
//! (403, 400, a missing bucket, ...) is `Other`.

use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};

use rendition_pipeline::config::S3Settings;
use rendition_pipeline::store::{
    validate_key, BlobStore, Object, ObjectMeta, PutOptions, PutOutcome, StoreError,
};

/// Attempts per request (the first try included) in the SDK's standard retry mode.
const MAX_ATTEMPTS: u32 = 3;
/// Connecting never takes long when the server is up: fail fast and leave time for retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Conditional puts that S3 answers with 409 (a concurrent conditional write to the same key
/// was in flight) are tried again this many times; the SDK does not retry 409 by itself.
const CONFLICT_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    /// A store over `bucket`, using a client configured by the caller.
    pub fn new(client: Client, bucket: String) -> S3Store {
        S3Store { client, bucket }
    }

    /// A store built from settings: credentials from the standard AWS chain (environment,
    /// profile files, web identity, ECS/EC2 metadata), region from the settings, else the
    /// chain, else `us-east-1`; custom endpoint and path-style addressing for S3-compatible
    /// servers; `timeout_secs` bounds each operation (retries included).
    pub async fn from_settings(s: &S3Settings) -> S3Store {
        let timeout = Duration::from_secs(s.timeout_secs.max(1));
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .build();
        let sdk = crate::sdk_config(s.region.clone(), Some(timeouts), MAX_ATTEMPTS).await;
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(s.force_path_style);
        if let Some(endpoint) = &s.endpoint {
            // S3-compatible servers often reject the newer default integrity checksums
            // (CRC trailers on every upload): send them only where an operation requires one.
            conf = conf
                .endpoint_url(endpoint)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        }
        S3Store::new(Client::from_conf(conf.build()), s.bucket.clone())
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn put_once(
        &self,
        key: &str,
        body: Bytes,
        opts: &PutOptions,
        if_none_match: bool,
    ) -> Result<(), SdkError<aws_sdk_s3::operation::put_object::PutObjectError, HttpResponse>> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_content_type(opts.content_type.clone())
            .set_cache_control(opts.cache_control.clone())
            .set_if_none_match(if_none_match.then(|| "*".to_string()))
            .send()
            .await
            .map(|_| ())
    }

    /// Only-if-absent for servers without conditional writes: HEAD, then an ordinary PUT.
    /// This is racy: two writers can both see the key missing and both write, the later
    /// one winning. Derivative names are content-addressed, so both bodies are the same in
    /// practice; servers that support `If-None-Match: *` (S3 does) never get here.
    async fn put_if_absent_emulated(
        &self,
        key: &str,
        body: Bytes,
        opts: &PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        if self.head(key).await?.is_some() {
            return Ok(PutOutcome::AlreadyExists);
        }
        self.put_once(key, body, opts, false)
            .await
            .map_err(|e| classify(key, "PutObject", &e).into_error())?;
        Ok(PutOutcome::Written)
    }
}

/// What a failed request means for the port.
#[derive(Debug)]
enum Failure {
    NotFound(String),
    /// 412: a precondition (`If-None-Match: *`) did not hold.
    PreconditionFailed,
    /// 409 on a conditional write: another conditional write to the key was in flight.
    ConditionalConflict(String),
    /// 501: the server does not implement a header we sent.
    NotImplemented(String),
    Unavailable(String),
    Other(String),
}

impl Failure {
    fn into_error(self) -> StoreError {
        match self {
            Failure::NotFound(key) => StoreError::NotFound { key },
            Failure::PreconditionFailed => {
                StoreError::Other("precondition failed (412)".to_string())
            }
            Failure::ConditionalConflict(msg) | Failure::Unavailable(msg) => {
                StoreError::Unavailable(msg)
            }
            Failure::NotImplemented(msg) | Failure::Other(msg) => StoreError::Other(msg),
        }
    }
}

/// Error codes S3 sends for throttling or a transient fault of its own.
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
];

/// The one place where SDK errors of every operation become port errors.
fn classify<E>(key: &str, op: &str, err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let detail = || format!("{op} {key:?}: {}", DisplayErrorContext(err));
    match err {
        // The request never got an answer: nothing is known to have failed for good.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return Failure::Unavailable(detail())
        }
        // Built wrong on our side (e.g. no credentials or region): retrying won't help.
        SdkError::ConstructionFailure(_) => return Failure::Other(detail()),
        SdkError::ServiceError(_) => {}
        _ => return Failure::Other(detail()),
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code();
    match (status, code) {
        (_, Some("NoSuchBucket")) => Failure::Other(detail()),
        (_, Some("NoSuchKey" | "NotFound")) | (Some(404), _) => Failure::NotFound(key.to_string()),
        (_, Some("PreconditionFailed")) | (Some(412), _) => Failure::PreconditionFailed,
        (_, Some("ConditionalRequestConflict")) => Failure::ConditionalConflict(detail()),
        (_, Some("NotImplemented")) | (Some(501), _) => Failure::NotImplemented(detail()),
        (_, Some(c)) if TRANSIENT_CODES.contains(&c) => Failure::Unavailable(detail()),
        (Some(408 | 429), _) => Failure::Unavailable(detail()),
        (Some(s), _) if s >= 500 => Failure::Unavailable(detail()),
        _ => Failure::Other(detail()),
    }
}

fn to_u64(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn to_system_time(t: &aws_sdk_s3::primitives::DateTime) -> Option<std::time::SystemTime> {
    std::time::SystemTime::try_from(*t).ok()
}

/// Validates a list prefix: empty, or a key (a trailing `/` allowed).
fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        if prefix.is_empty() {
            return Ok(());
        }
        return validate_key(prefix); // a lone "/"
    }
    validate_key(trimmed)
}

#[async_trait]
impl BlobStore for S3Store {
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        validate_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(key, "GetObject", &e).into_error())?;
        let too_large = || StoreError::TooLarge {
            key: key.to_string(),
            limit: max_bytes,
        };
        // Refuse from the header; dropping the body closes the connection unread.
        if out
            .content_length()
            .is_some_and(|n| to_u64(Some(n)) > max_bytes)
        {
            return Err(too_large());
        }
        let capacity = to_u64(out.content_length()).min(max_bytes);
        let meta = ObjectMeta {
            key: key.to_string(),
            size: 0,
            etag: out.e_tag().unwrap_or_default().to_string(),
            version_id: out.version_id().map(str::to_string),
            content_type: out.content_type().map(str::to_string),
            cache_control: out.cache_control().map(str::to_string),
            last_modified: out.last_modified().and_then(to_system_time),
        };
        // Read at most one byte past the limit, whatever the header claimed. Stalled
        // bodies are cut off by the SDK's stalled-stream protection.
        let mut body = out.body;
        let mut buf = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                StoreError::Unavailable(format!(
                    "GetObject {key:?}: reading the body: {}",
                    DisplayErrorContext(e)
                ))
            })?;
            let room = max_bytes.saturating_add(1).saturating_sub(buf.len() as u64);
            if chunk.len() as u64 >= room {
                buf.extend_from_slice(&chunk[..room as usize]);
            } else {
                buf.extend_from_slice(&chunk);
            }
            if buf.len() as u64 > max_bytes {
                return Err(too_large());
            }
        }
        let body = buf.freeze();
        Ok(Object {
            meta: ObjectMeta {
                size: body.len() as u64,
                ..meta
            },
            body,
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        validate_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: to_u64(out.content_length()),
                etag: out.e_tag().unwrap_or_default().to_string(),
                version_id: out.version_id().map(str::to_string),
                content_type: out.content_type().map(str::to_string),
                cache_control: out.cache_control().map(str::to_string),
                last_modified: out.last_modified().and_then(to_system_time),
            })),
            Err(e) => match classify(key, "HeadObject", &e) {
                Failure::NotFound(_) => Ok(None),
                f => Err(f.into_error()),
            },
        }
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        opts: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        validate_key(key)?;
        let mut attempt = 1;
        loop {
            let err = match self
                .put_once(key, body.clone(), &opts, opts.if_absent)
                .await
            {
                Ok(()) => return Ok(PutOutcome::Written),
                Err(e) => e,
            };
            match classify(key, "PutObject", &err) {
                Failure::PreconditionFailed if opts.if_absent => {
                    return Ok(PutOutcome::AlreadyExists)
                }
                Failure::NotImplemented(_) if opts.if_absent => {
                    tracing::debug!(key, "If-None-Match not implemented; emulating it");
                    return self.put_if_absent_emulated(key, body, &opts).await;
                }
                Failure::ConditionalConflict(_) if attempt < CONFLICT_ATTEMPTS => {
                    // The other write settles quickly; the retry then sees it (412) or wins.
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                    attempt += 1;
                }
                f => return Err(f.into_error()),
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        validate_prefix(prefix)?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify(prefix, "ListObjectsV2", &e).into_error())?;
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                // Keys the port refuses (written by something else) can't be used through
                // it anyway: leave them out, like the filesystem adapter does.
                if validate_key(key).is_err() {
                    tracing::debug!(key, "listing skips a key the store port refuses");
                    continue;
                }
                out.push(ObjectMeta {
                    key: key.to_string(),
                    size: to_u64(obj.size()),
                    etag: obj.e_tag().unwrap_or_default().to_string(),
                    version_id: None,
                    content_type: None,
                    cache_control: None,
                    last_modified: obj.last_modified().and_then(to_system_time),
                });
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify(key, "DeleteObject", &e) {
                Failure::NotFound(_) => Ok(()),
                f => Err(f.into_error()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prefixes() {
        for ok in ["", "a", "a/", "a/b", "originals/x y/"] {
            validate_prefix(ok).unwrap();
        }
        for bad in ["/", "/a", "a//", "../", "a/../b/", ".rendition/"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
