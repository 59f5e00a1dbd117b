//! `rendition`: parses the command line, loads the configuration once, sets up logging,
//! and runs the command on one runtime ([`rendition_cli::commands::run`]). Started with
//! the sandbox's helper argument, it is a render helper instead. A failure is printed by
//! [`rendition_cli::report`]: each cause once, its kind, a hint; exit code 2 for the
//! configuration, 1 for a failure while running.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rendition_cli::cli::Cli;
use rendition_cli::report::Report;
use rendition_cli::{commands, shutdown};
use rendition_image::sandbox;

fn main() -> ExitCode {
    if let Some(code) = sandbox::helper::run_if_asked(std::env::args()) {
        std::process::exit(code);
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            let report = Report::of(error.as_ref());
            eprintln!("{report}");
            ExitCode::from(report.exit_code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The core's settings and the CLI's own sections, from one file and one layering.
    let (settings, sections) =
        rendition_cli::settings::load(cli.config.as_deref(), std::env::vars())?;
    // Flushes the trace exporter when `run` returns.
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
