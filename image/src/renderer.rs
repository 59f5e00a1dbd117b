//! One way to render, whoever asks (the eager job, the on-demand path, `rendition
//! render`): a [`Renderer`] runs [`crate::render::render`] in a sandboxed helper process
//! ([`crate::sandbox`], `render.sandbox = true`, the default) or on this process' blocking
//! threads, with the configured limits.

use bytes::Bytes;
use tracing::Instrument as _;

use crate::render::{self, RenderError, RenderOutput, VariantRequest};
use crate::sandbox::{Pool, PoolConfig};
use crate::settings::{Limits, RenderSettings};

/// Renders sources; cheap to clone (clones share the helper pool).
#[derive(Clone)]
pub struct Renderer {
    limits: Limits,
    settings: RenderSettings,
    exec: Exec,
}

#[derive(Clone)]
enum Exec {
    InProcess,
    Sandbox(Pool),
}

impl Renderer {
    /// As configured: a started helper pool when `render.sandbox` is on (this binary must
    /// then answer [`crate::sandbox::HELPER_ARG`], see `sandbox::helper::main`), else
    /// in-process.
    pub async fn from_settings(
        limits: &Limits,
        render: &RenderSettings,
    ) -> Result<Renderer, RenderError> {
        if !render.sandbox {
            return Ok(Renderer::in_process(limits, render));
        }
        let pool = Pool::start(PoolConfig::from_settings(render)?).await?;
        Ok(Renderer::sandboxed(pool, limits, render))
    }

    /// Renders on this process' blocking threads: no budgets beyond the limits. libvips'
    /// warnings then go through `tracing`.
    pub fn in_process(limits: &Limits, render: &RenderSettings) -> Renderer {
        crate::vips::log_to_tracing();
        Renderer {
            limits: limits.clone(),
            settings: render.clone(),
            exec: Exec::InProcess,
        }
    }

    /// Renders in `pool`'s helpers.
    pub fn sandboxed(pool: Pool, limits: &Limits, render: &RenderSettings) -> Renderer {
        Renderer {
            limits: limits.clone(),
            settings: render.clone(),
            exec: Exec::Sandbox(pool),
        }
    }

    /// Stops the sandbox's helpers (nothing to do in process); call before exiting.
    pub async fn shutdown(&self) {
        if let Exec::Sandbox(pool) = &self.exec {
            pool.shutdown().await;
        }
    }

    /// Every variant of `source` from one decode. `key` names the job in logs; the
    /// render is the span `render`, its decode and encodes child spans of it.
    pub async fn render(
        &self,
        key: &str,
        source: Bytes,
        variants: Vec<VariantRequest>,
    ) -> Result<RenderOutput, RenderError> {
        let span = tracing::info_span!("render", key, variants = variants.len());
        let started = std::time::SystemTime::now();
        let out = self
            .render_untraced(key, source, variants)
            .instrument(span.clone())
            .await;
        #[cfg(feature = "telemetry")]
        if let Ok(out) = &out {
            render_phases(&span, started, &out.phases);
        }
        #[cfg(not(feature = "telemetry"))]
        let _ = started;
        out
    }

    async fn render_untraced(
        &self,
        key: &str,
        source: Bytes,
        variants: Vec<VariantRequest>,
    ) -> Result<RenderOutput, RenderError> {
        match &self.exec {
            Exec::Sandbox(pool) => {
                pool.render(key, &source, variants, &self.limits, &self.settings)
                    .await
            }
            Exec::InProcess => {
                let (limits, settings) = (self.limits.clone(), self.settings.clone());
                let key = key.to_string();
                tokio::task::spawn_blocking(move || {
                    crate::vips::with_job(&key, || {
                        render::render(&source, &variants, &limits, &settings)
                    })
                })
                .await
                .map_err(|e| RenderError::Unavailable(format!("render task failed: {e}")))?
            }
        }
    }
}

/// The OpenTelemetry instrumentation scope of Rendition's spans.
pub const TRACE_SCOPE: &str = "rendition";

/// The phases of a render done in another process (the sandbox's helper) or in this one,
/// as child spans of `parent` placed at their times: `render` started at `started`.
#[cfg(feature = "telemetry")]
fn render_phases(
    parent: &tracing::Span,
    started: std::time::SystemTime,
    phases: &[crate::render::Phase],
) {
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
    use opentelemetry::KeyValue;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let cx = parent.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    let tracer = opentelemetry::global::tracer(TRACE_SCOPE);
    for phase in phases {
        let start = started + std::time::Duration::from_micros(phase.start_us);
        let mut attributes = vec![KeyValue::new("phase", phase.name.clone())];
        if let Some(variant) = &phase.variant {
            attributes.push(KeyValue::new("variant", variant.clone()));
        }
        if let Some(format) = &phase.format {
            attributes.push(KeyValue::new("format", format.clone()));
        }
        if let Some(decoder) = &phase.decoder {
            attributes.push(KeyValue::new("decoder", decoder.clone()));
        }
        let mut span = tracer
            .span_builder(phase.name.clone())
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&tracer, &cx);
        span.end_with_timestamp(start + std::time::Duration::from_micros(phase.dur_us));
    }
}
