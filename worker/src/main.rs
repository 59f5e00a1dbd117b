//! `rendition`: parses the command line, loads the configuration once, sets up logging,
//! and runs the command on one runtime ([`rendition_cli::commands::run`]). Started with
//! the sandbox's helper argument, it is a render helper instead.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rendition_cli::cli::Cli;
use rendition_cli::{commands, shutdown};
use rendition_image::sandbox;

fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = sandbox::helper::run_if_asked(std::env::args()) {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    // The core's settings and the CLI's own sections, from one file and one layering.
    let (settings, sections) =
        rendition_cli::settings::load(cli.config.as_deref(), std::env::vars())
            .context("loading configuration")?;
    // Flushes the trace exporter when `main` returns.
    let _telemetry =
        rendition_pipeline::telemetry::init(&settings.log, &settings.telemetry, "rendition")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Renders wait on blocking threads; keeping idle ones (default: 10 s) avoids making
        // and ending one per job when the queue is briefly empty.
        .thread_keep_alive(Duration::from_secs(600))
        .build()
        .context("starting the runtime")?;
    Ok(runtime.block_on(commands::run(
        cli.command,
        settings,
        sections,
        shutdown::signal(),
    ))?)
}
