//! `rendition-lambda`: the Lambda function. Builds the [`App`] once per cold start, then
//! serves invocations from the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use rendition_core::config::Settings;
use rendition_lambda::{handle, App};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

fn init_tracing(filter: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    // JSON lines without colours: CloudWatch Logs (and Logs Insights) read them as they are.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .try_init();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // A render helper of the sandbox: this same binary, started by the pool.
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(rendition_core::sandbox::HELPER_ARG) {
        let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
        std::process::exit(rendition_core::sandbox::helper::main(threads));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    // Defaults → rendition.toml in the task root (the working directory) → RENDITION__*.
    let settings = Settings::load(None, std::env::vars()).context("loading configuration")?;
    init_tracing(&settings.log.filter)?;
    rendition_core::vips::init(settings.render.vips_threads).context("starting libvips")?;
    let app = Arc::new(
        App::from_settings(settings)
            .await
            .context("starting the renderer")?,
    );
    let init_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        init_ms,
        bucket = %app.engine.bucket(),
        "cold start: initialised"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = Arc::clone(&app);
        async move { handle(&app, event.payload).await }
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("Lambda runtime")
}
