//! `rendition-lambda`: the Lambda function. Loads the configuration, builds the [`App`]
//! once per cold start, then serves invocations from the Lambda Runtime API
//! (`AWS_LAMBDA_RUNTIME_API`). Started with the sandbox's helper argument, it is a render
//! helper instead.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use rendition_lambda::{handle, App};
use rendition_pipeline::config::Settings;
use serde_json::Value;

fn main() -> anyhow::Result<()> {
    if let Some(code) = rendition_image::sandbox::helper::run_if_asked(std::env::args()) {
        std::process::exit(code);
    }
    let started = Instant::now();
    // Defaults → rendition.toml in the task root (the working directory) → RENDITION__*;
    // the core's sections (the CLI's are accepted unread).
    let settings = Settings::load(None, std::env::vars()).context("loading configuration")?;
    // Flushes the trace exporter when `main` returns.
    let telemetry = Arc::new(rendition_pipeline::telemetry::init(
        &settings.log,
        &settings.telemetry,
        "rendition-lambda",
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let app = Arc::new(
            App::from_settings(settings)
                .await
                .context("starting the renderer")?,
        );
        let init_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(init_ms, bucket = %app.engine.bucket(), "cold start: initialised");
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            let app = Arc::clone(&app);
            let telemetry = Arc::clone(&telemetry);
            async move {
                let answer = handle(&app, event.payload).await;
                // The environment may freeze before the next scheduled export.
                if telemetry.exports() {
                    let _ = tokio::task::spawn_blocking(move || telemetry.flush()).await;
                }
                answer
            }
        }))
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("Lambda runtime")
    })
}
