//! `[sqs]`: the queue, long polling and visibility, with their defaults and the rules
//! checked at start (SQS's own bounds).

use rendition_pipeline::config::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SqsSettings {
    /// Queue receiving S3 event notifications.
    pub queue_url: String,
    /// Custom endpoint (moto, ElasticMQ).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Long-poll wait (0-20 s).
    pub wait_seconds: i32,
    /// Visibility timeout to hold while a job runs; extended while it is still running.
    pub visibility_timeout_secs: i32,
    /// Messages per receive (1-10).
    pub batch_size: i32,
    /// Deprecated (use `events.sns_topic_arn`, and subscribe a queue to the topic): a
    /// queue receiving every outcome event, as the SNS topic does (the CloudEvent as the
    /// body, its type in the `type` attribute).
    pub events_queue_url: Option<String>,
}

impl Default for SqsSettings {
    fn default() -> Self {
        SqsSettings {
            queue_url: String::new(),
            endpoint: None,
            region: None,
            wait_seconds: 20,
            visibility_timeout_secs: 60,
            batch_size: 10,
            events_queue_url: None,
        }
    }
}

impl SqsSettings {
    /// Checks rules types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |msg: String| Err(ConfigError::Rule(msg));
        if !(0..=20).contains(&self.wait_seconds) {
            return rule(format!(
                "sqs.wait_seconds must be 0-20, got {}",
                self.wait_seconds
            ));
        }
        if !(1..=10).contains(&self.batch_size) {
            return rule(format!(
                "sqs.batch_size must be 1-10, got {}",
                self.batch_size
            ));
        }
        if self.visibility_timeout_secs < 10 {
            return rule("sqs.visibility_timeout_secs must be at least 10".into());
        }
        Ok(())
    }
}
