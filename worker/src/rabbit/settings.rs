//! `[rabbitmq]`: the topology's names and the retry policy, with their defaults and the
//! rules checked at start.

use rendition_pipeline::config::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// RabbitMQ topology and retry policy; see docs/operations.md, "Queue workers".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RabbitSettings {
    pub url: String,
    /// The durable work queue (a quorum queue).
    pub queue: String,
    /// Exchange that upload events arrive on (MinIO's AMQP target publishes here); bound to
    /// the work queue with routing key `#`.
    pub uploads_exchange: String,
    /// Topic exchange receiving the outcome events (`derivatives.ready`, `.failed`,
    /// `.removed`), each with its type as the routing key.
    pub events_exchange: String,
    /// Attempts for retryable errors before dead-lettering.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt.
    pub retry_base_ms: u64,
    /// Upper bound of the retry delay.
    pub retry_max_ms: u64,
    /// Quorum-queue delivery limit: a message that keeps crashing workers is dead-lettered.
    pub delivery_limit: u32,
}

impl Default for RabbitSettings {
    fn default() -> Self {
        RabbitSettings {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            queue: "rendition.jobs".into(),
            uploads_exchange: "rendition.uploads".into(),
            events_exchange: "rendition.events".into(),
            max_attempts: 8,
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            delivery_limit: 10,
        }
    }
}

impl RabbitSettings {
    /// Checks rules types cannot express (the names are checked when the topology is
    /// declared).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0
            || self.retry_base_ms == 0
            || self.retry_max_ms < self.retry_base_ms
        {
            return Err(ConfigError::Rule(
                "rabbitmq: max_attempts and retry_base_ms must be > 0 and retry_max_ms >= retry_base_ms"
                    .into(),
            ));
        }
        Ok(())
    }
}
