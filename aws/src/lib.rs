//! Rendition's AWS adapters: the pipeline's ports ([`rendition_pipeline::store::BlobStore`],
//! [`rendition_pipeline::cdn::Cdn`]) and its outcome events, spoken to AWS through the SDK.
//!
//! # Layout
//! - [`sdk_config`] (here): one way to configure an AWS SDK client, for every service
//!   Rendition calls (S3, SQS, SNS, CloudFront): credentials from the standard AWS chain
//!   (environment, profile files, web identity, ECS/EC2 metadata); the region given, else
//!   the chain's, else `us-east-1`; the caller's timeouts and retry attempts. Each client
//!   then adds its own endpoint and service options.
//! - [`s3`]: the S3 (or compatible) `BlobStore`.
//! - [`sns`]: the SNS publisher of outcome events (the SQS worker and the Lambda).
//! - [`cloudfront`]: CloudFront invalidations when a source is removed.

pub mod cloudfront;
pub mod s3;
pub mod sns;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The shared SDK configuration: `timeouts` when given (else the SDK's defaults), at most
/// `max_attempts` tries per operation.
pub async fn sdk_config(
    region: Option<String>,
    timeouts: Option<TimeoutConfig>,
    max_attempts: u32,
) -> SdkConfig {
    let region = RegionProviderChain::first_try(region.map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts));
    if let Some(timeouts) = timeouts {
        loader = loader.timeout_config(timeouts);
    }
    loader.load().await
}
