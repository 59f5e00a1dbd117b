//! Structured logs and traces with `tracing`, one set-up for every binary (the `rendition`
//! CLI and the Lambda): human lines by default, JSON lines (`log.format = "json"`) in
//! production. Colours only when stderr is a terminal, so CloudWatch and `kubectl logs`
//! get plain text.
//!
//! Traces: a job or request is a tree of `tracing` spans (`job` → `receive`, `fetch`,
//! `render` → `decode`, `encode`…, `put`…, `acknowledge`). When
//! `telemetry.otlp_endpoint` is set they are exported over OTLP/HTTP (JSON) by a batch
//! exporter on its own thread; either way each span's close is a log line with its
//! duration, and spans carry trace ids: the W3C `traceparent` of a message continues its
//! trace ([`parent_from`]) and goes on the messages a job publishes ([`traceparent`]),
//! exported or not.

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// The W3C trace context header (and message attribute) name.
pub const TRACEPARENT: &str = "traceparent";

/// The instrumentation scope of Rendition's own spans.
/// The instrumentation scope of every span (the image layer's render phases too).
const SCOPE: &str = rendition_image::renderer::TRACE_SCOPE;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
    #[error("cannot export traces to {endpoint:?}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// Flushes and stops the trace exporter when dropped (at the end of `main`).
#[must_use = "dropping it stops the trace exporter"]
pub struct Telemetry {
    /// The exporting provider, when `telemetry.otlp_endpoint` is set.
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans ended so far, waiting for the exporter (blocking: call it from a
    /// blocking thread). The Lambda calls it after each invocation: its environment may be
    /// frozen before the next scheduled export.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "flushing traces failed");
            }
        }
    }

    /// Whether spans are exported (`telemetry.otlp_endpoint` is set).
    pub fn exports(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("telemetry: flushing traces failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber (logs go to stderr; traces also to the OTLP endpoint
/// when one is set) for the service `service`. A second call changes nothing.
pub fn init(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    service: &'static str,
) -> Result<Telemetry, TelemetryError> {
    let filter =
        EnvFilter::try_new(quiet_sdk(&log.filter)).map_err(|e| TelemetryError::Filter {
            filter: log.filter.clone(),
            reason: e.to_string(),
        })?;
    let ansi = std::io::stderr().is_terminal();
    // Each span's close is a line with its duration: the trace, when nothing exports it.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_span_events(FmtSpan::CLOSE);
    let fmt = match log.format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Pretty => fmt.with_target(false).boxed(),
    };
    // Without an endpoint the spans still get trace and span ids (nothing is exported):
    // a message's trace goes on through this worker to whoever consumes its events.
    let (provider, exports) = match &telemetry.otlp_endpoint {
        Some(endpoint) => (provider(endpoint, service)?, true),
        None => (SdkTracerProvider::builder().build(), false),
    };
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(SCOPE));
    let provider = exports.then_some(provider);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(Telemetry { provider })
}

/// The AWS SDK's targets that warn at each step of credential and region discovery (on a
/// machine that is not EC2, two ~1,000-character IMDS warnings before anything else), even
/// when a later step succeeds or AWS is never called: quiet unless `log.filter` names
/// them (e.g. `info,aws_config=debug`). A discovery that finally fails is the error of
/// the call that needed it.
const QUIET_SDK: &[&str] = &[
    "aws_config",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
];

/// `filter` with each of [`QUIET_SDK`] it does not mention at `error`.
fn quiet_sdk(filter: &str) -> String {
    let mut out = filter.trim().to_string();
    for target in QUIET_SDK {
        if !filter.contains(target) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(target);
            out.push_str("=error");
        }
    }
    out
}

fn provider(endpoint: &str, service: &'static str) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(Duration::from_secs(10))
        .with_headers(Default::default())
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Continues the trace of a message: its W3C `traceparent` (from AMQP headers or SQS
/// message attributes, as `get` finds them) becomes the parent of `span`. Without one,
/// or with a malformed one, `span` starts a trace of its own.
pub fn parent_from(span: &tracing::Span, get: impl Fn(&str) -> Option<String>) {
    let value = get(TRACEPARENT);
    let Some(value) = value else { return };
    let carrier = std::collections::HashMap::from([(TRACEPARENT.to_string(), value)]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The W3C `traceparent` of `span`, to put on a message it publishes; `None` when the
/// span is disabled (filtered out) or no subscriber traces.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_discovery_is_quiet_unless_the_filter_names_it() {
        let filter = quiet_sdk("info");
        assert!(filter.starts_with("info,aws_config=error,"), "{filter}");
        assert!(EnvFilter::try_new(&filter).is_ok());
        let filter = quiet_sdk("info,aws_config=debug");
        assert!(!filter.contains("aws_config=error"), "{filter}");
        assert!(filter.contains("aws_smithy_runtime=error"), "{filter}");
        assert_eq!(quiet_sdk("").split(',').count(), QUIET_SDK.len());
    }
}
