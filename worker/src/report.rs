//! How `main` tells the user a command failed: one `error:` line with each cause once
//! (a variant that both displays and sources an error would otherwise repeat it), the
//! error's stable kind, a `hint:` line where there is something to set, and the exit code:
//! 2 for the configuration (like a usage error), 1 for a failure while running.

use std::error::Error;
use std::fmt;

use rendition_image::render::{RenderError, Unsupported};
use rendition_pipeline::config::ConfigError;
use rendition_pipeline::store::StoreError;
use rendition_pipeline::telemetry::TelemetryError;

use crate::commands::CommandError;

/// Exit code of a configuration error (clap uses it for usage errors too).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code of a failure while running.
pub const EXIT_FAILURE: u8 = 1;

/// A failed command, as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The error and its causes, each once, joined by `: `.
    pub message: String,
    /// A stable name: `config`, an error kind ([`rendition_image::kinds::KINDS`]), or `io`.
    pub kind: &'static str,
    pub hint: Option<String>,
    pub exit_code: u8,
}

impl Report {
    pub fn of(error: &(dyn Error + 'static)) -> Report {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !text.is_empty() && !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = e.source();
        }
        let chain = || std::iter::successors(Some(error), |e| (*e).source());
        // A transparent variant hides its inner error from the chain: ask the command's.
        let command = chain().find_map(|e| e.downcast_ref::<CommandError>());
        let config = chain()
            .find_map(|e| e.downcast_ref::<ConfigError>())
            .or_else(|| command.and_then(CommandError::config));
        let telemetry = chain().any(|e| e.is::<TelemetryError>());
        let render = chain()
            .find_map(|e| e.downcast_ref::<RenderError>())
            .or_else(|| command.and_then(CommandError::render));
        let kind = if config.is_some() || telemetry {
            "config"
        } else if let Some(e) = render {
            e.kind()
        } else if let Some(e) = chain().find_map(|e| e.downcast_ref::<StoreError>()) {
            e.kind()
        } else if chain().any(|e| e.is::<std::io::Error>()) {
            "io"
        } else {
            "error"
        };
        let hint = match (config, render) {
            (Some(e), _) => e.hint(),
            (None, Some(e)) => limit_hint(e),
            _ => None,
        };
        let exit_code = if kind == "config" {
            EXIT_CONFIG
        } else {
            EXIT_FAILURE
        };
        Report {
            message,
            kind,
            hint,
            exit_code,
        }
    }
}

/// `error: MESSAGE (KIND)`, then `hint: …` when there is one.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {} ({})", self.message, self.kind)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// The limit or budget to raise when a source is refused for its size, if it is trusted.
fn limit_hint(error: &RenderError) -> Option<String> {
    let key = match error {
        RenderError::InputTooLarge { .. } => "limits.max_input_bytes",
        RenderError::TooManyPixels { .. } | RenderError::AnimationTooLarge { .. } => {
            "limits.max_input_pixels"
        }
        RenderError::OutputTooLarge { .. } => "limits.max_output_dimension",
        RenderError::DecodedTooLarge { .. } | RenderError::IntermediateTooLarge { .. } => {
            "limits.max_decoded_bytes"
        }
        RenderError::TooManyScans { .. } => "limits.max_scans",
        RenderError::Unsupported(Unsupported::TooManyFrames { .. }) => "limits.max_frames",
        RenderError::OverMemoryBudget { .. } => "render.max_memory_mb",
        RenderError::OverTimeBudget { .. } => "render.deadline_secs",
        _ => return None,
    };
    let var = format!("RENDITION__{}", key.replace('.', "__").to_ascii_uppercase());
    Some(format!(
        "if the source is trusted, raise {key} ({var}); the limit guards against hostile input"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let e = Read {
            path: "missing.jpg".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let report = Report::of(&e);
        assert_eq!(report.message, "cannot read missing.jpg: entity not found");
        assert_eq!((report.kind, report.exit_code), ("io", EXIT_FAILURE));
        assert_eq!(
            report.to_string(),
            "error: cannot read missing.jpg: entity not found (io)"
        );
    }

    #[test]
    fn a_configuration_error_exits_2_with_its_hint() {
        let e = ConfigError::required("sqs.queue_url", "`rendition worker --queue sqs`");
        let report = Report::of(&e);
        assert_eq!((report.kind, report.exit_code), ("config", EXIT_CONFIG));
        assert_eq!(
            report.to_string(),
            "error: sqs.queue_url is not set: `rendition worker --queue sqs` needs it (config)\n\
             hint: set RENDITION__SQS__QUEUE_URL, or `queue_url` under [sqs] in rendition.toml"
        );
    }

    #[test]
    fn an_over_limit_render_says_which_limit() {
        let e = RenderError::TooManyPixels {
            width: 10,
            height: 10,
            pixels: 100,
            limit: 50,
        };
        let report = Report::of(&e);
        assert_eq!(report.kind, "too_many_pixels");
        assert!(report
            .hint
            .unwrap()
            .contains("limits.max_input_pixels (RENDITION__LIMITS__MAX_INPUT_PIXELS)"));
    }
}
