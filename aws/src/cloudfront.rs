//! CloudFront as a [`Cdn`]: one `CreateInvalidation` per call.
//!
//! The SDK retries transient failures itself (standard mode, a few attempts); what still
//! fails is classified once, in `classify`: timeouts, connection failures, 5xx,
//! throttling and `TooManyInvalidationsInProgress` (CloudFront's cap on invalidations
//! running at once) are `Unavailable` (retryable); the rest (access denied, no such
//! distribution, an invalid path) is `Refused`.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cloudfront::config::http::HttpResponse;
use aws_sdk_cloudfront::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use aws_sdk_cloudfront::Client;

use rendition_pipeline::cdn::{Cdn, CdnError, Invalidation};
use rendition_pipeline::config::CdnSettings;

/// Attempts per request (the first try included) in the SDK's standard retry mode.
const MAX_ATTEMPTS: u32 = 3;
/// Bounds one invalidation request, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting never takes long when the service is up: fail fast and leave time for retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Error codes CloudFront sends for throttling, its cap on invalidations in progress, or a
/// transient fault of its own.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "TooManyInvalidationsInProgress",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
];

/// One CloudFront distribution.
#[derive(Clone, Debug)]
pub struct CloudFront {
    client: Client,
    distribution_id: String,
}

impl CloudFront {
    /// A distribution reached with a client configured by the caller.
    pub fn new(client: Client, distribution_id: String) -> CloudFront {
        CloudFront {
            client,
            distribution_id,
        }
    }

    /// The distribution `cdn.cloudfront_distribution_id` names, or `None` when none is
    /// configured. Credentials come from the standard AWS chain; CloudFront is a global
    /// service, so the region is the chain's, else `us-east-1` (its signing region);
    /// `cdn.endpoint` replaces the service's endpoint (moto).
    pub async fn from_settings(s: &CdnSettings) -> Option<CloudFront> {
        let distribution_id = s.cloudfront_distribution_id.clone()?;
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(OPERATION_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build();
        let sdk = crate::sdk_config(None, Some(timeouts), MAX_ATTEMPTS).await;
        let mut conf = aws_sdk_cloudfront::config::Builder::from(&sdk);
        if let Some(endpoint) = &s.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        Some(CloudFront::new(
            Client::from_conf(conf.build()),
            distribution_id,
        ))
    }

    pub fn distribution_id(&self) -> &str {
        &self.distribution_id
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl Cdn for CloudFront {
    async fn invalidate(
        &self,
        reference: &str,
        paths: &[String],
    ) -> Result<Invalidation, CdnError> {
        let built = |e: aws_sdk_cloudfront::error::BuildError| {
            CdnError::Refused(format!("CreateInvalidation: {e}"))
        };
        let quantity = i32::try_from(paths.len())
            .map_err(|_| CdnError::Refused(format!("{} paths in one request", paths.len())))?;
        let batch = InvalidationBatch::builder()
            .paths(
                Paths::builder()
                    .quantity(quantity)
                    .set_items(Some(paths.to_vec()))
                    .build()
                    .map_err(built)?,
            )
            .caller_reference(reference)
            .build()
            .map_err(built)?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&self.distribution_id)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| classify(&self.distribution_id, &e))?;
        Ok(Invalidation {
            id: out
                .invalidation()
                .map(|i| i.id().to_string())
                .unwrap_or_default(),
            distribution: self.distribution_id.clone(),
        })
    }
}

/// The one place where SDK errors become the port's.
fn classify<E>(distribution: &str, err: &SdkError<E, HttpResponse>) -> CdnError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = format!(
        "CreateInvalidation on {distribution}: {}",
        DisplayErrorContext(err)
    );
    match err {
        // The request never got an answer: nothing is known to have failed for good.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return CdnError::Unavailable(detail)
        }
        SdkError::ServiceError(_) => {}
        // Built wrong on our side (e.g. no credentials): retrying won't help.
        _ => return CdnError::Refused(detail),
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (status, err.code()) {
        (_, Some(code)) if TRANSIENT_CODES.contains(&code) => CdnError::Unavailable(detail),
        (Some(408 | 429), _) => CdnError::Unavailable(detail),
        (Some(s), _) if s >= 500 => CdnError::Unavailable(detail),
        _ => CdnError::Refused(detail),
    }
}
