//! One way to render, whoever asks (the eager job, the on-demand path, `rendition
//! render`): a [`Renderer`] runs [`crate::render::render`] in a sandboxed helper process
//! ([`crate::sandbox`], `render.sandbox = true`, the default) or on this process' blocking
//! threads, with the configured limits.

use bytes::Bytes;
use tracing::Instrument as _;

use crate::config::{Limits, RenderSettings, Settings};
use crate::render::{self, RenderError, RenderOutput, VariantRequest};
use crate::sandbox::{Pool, PoolConfig};

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
    pub async fn from_settings(settings: &Settings) -> Result<Renderer, RenderError> {
        if !settings.render.sandbox {
            return Ok(Renderer::in_process(settings));
        }
        let pool = Pool::start(PoolConfig::from_settings(settings)?).await?;
        Ok(Renderer::sandboxed(pool, settings))
    }

    /// Renders on this process' blocking threads: no budgets beyond the limits. libvips'
    /// warnings then go through `tracing`.
    pub fn in_process(settings: &Settings) -> Renderer {
        crate::vips::log_to_tracing();
        Renderer {
            limits: settings.limits.clone(),
            settings: settings.render.clone(),
            exec: Exec::InProcess,
        }
    }

    /// Renders in `pool`'s helpers.
    pub fn sandboxed(pool: Pool, settings: &Settings) -> Renderer {
        Renderer {
            limits: settings.limits.clone(),
            settings: settings.render.clone(),
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
            crate::telemetry::render_phases(&span, started, &out.phases);
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
