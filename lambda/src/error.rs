//! What failure of a whole invocation means to Lambda: its error type
//! (`Rendition.Retryable.<kind>` or `Rendition.Permanent.<kind>`) and message.

use lambda_runtime::Diagnostic;
use rendition_aws::sns::PublishError;
use rendition_pipeline::disposition::Failure;

/// The kind of an invocation whose outcome events SNS did not accept.
pub const EVENTS_UNAVAILABLE: &str = "events_unavailable";

/// Why an invocation failed as a whole (HTTP requests never do: they get a response).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A storage event that could not be handled; `retry`: its disposition was a retry
    /// (another invocation may succeed), else a dead letter.
    #[error("{}", .failure.reason)]
    Failed { failure: Failure, retry: bool },
    /// A payload of no trigger this function knows.
    #[error("unrecognised event: {0}")]
    UnknownEvent(String),
    /// A payload of a known trigger, but not shaped as documented.
    #[error("malformed {trigger} event: {reason}")]
    Malformed {
        trigger: &'static str,
        reason: String,
    },
    /// The work is done but its outcome events were not accepted by the SNS topic: the
    /// retried invocation finds the work done and announces it again.
    #[error(transparent)]
    Events(#[from] PublishError),
}

impl HandlerError {
    /// Whether invoking again with the same event may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Failed { retry, .. } => *retry,
            HandlerError::Events(_) => true,
            HandlerError::UnknownEvent(_) | HandlerError::Malformed { .. } => false,
        }
    }

    /// Stable kind for the error type, logs and alarms.
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerError::Failed { failure, .. } => failure.kind,
            HandlerError::UnknownEvent(_) => "unknown_event",
            HandlerError::Malformed { .. } => "malformed_event",
            HandlerError::Events(_) => EVENTS_UNAVAILABLE,
        }
    }

    /// `Rendition.Retryable.<kind>` or `Rendition.Permanent.<kind>`.
    pub fn error_type(&self) -> String {
        let class = if self.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        };
        format!("Rendition.{class}.{}", self.kind())
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type(),
            error_message: e.to_string(),
        }
    }
}
