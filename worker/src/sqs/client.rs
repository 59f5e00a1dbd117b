//! The SQS client from settings, and where a queue's permanent failures go.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

use super::{SqsError, SqsSettings};

/// An SQS client from settings: credentials from the standard AWS chain, region from the
/// settings, else the chain, else `us-east-1`, optional custom endpoint.
pub async fn client(s: &SqsSettings) -> Client {
    let sdk = rendition_aws::sdk_config(s.region.clone(), None, 3).await;
    let mut conf = aws_sdk_sqs::config::Builder::from(&sdk);
    if let Some(endpoint) = &s.endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    Client::from_conf(conf.build())
}

/// Where permanent failures go: the queue's redrive target, when it has one.
pub(super) async fn dead_letter_queue(
    client: &Client,
    queue_url: &str,
) -> Result<Option<String>, SqsError> {
    let attrs = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| SqsError::Attributes {
            queue: queue_url.to_string(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    let Some(policy) = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
    else {
        return Ok(None);
    };
    let arn = serde_json::from_str::<serde_json::Value>(policy)
        .ok()
        .and_then(|v| {
            v.get("deadLetterTargetArn")
                .and_then(|a| a.as_str())
                .map(str::to_string)
        });
    let Some(name) = arn.as_deref().and_then(|a| a.rsplit(':').next()) else {
        return Ok(None);
    };
    let url = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| SqsError::Attributes {
            queue: name.to_string(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    Ok(url.queue_url().map(str::to_string))
}
