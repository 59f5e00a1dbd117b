use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rendition_core::config::Settings;
use rendition_core::job::Engine;
use rendition_core::store::FsStore;
use rendition_worker::cli::{Cli, Command};
use rendition_worker::{app, local, oneoff, shutdown, telemetry};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings =
        Settings::load(cli.config.as_deref(), std::env::vars()).context("loading configuration")?;
    telemetry::init(&settings.log)?;
    match cli.command {
        Command::Run { local: dir, once } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let summary = runtime.block_on(async {
                let store =
                    FsStore::new(&dir).with_context(|| format!("opening {}", dir.display()))?;
                let engine = Engine::new(Arc::new(store.clone()), Arc::new(settings), "local");
                let summary = local::run(
                    store,
                    engine,
                    local::RunOptions { once },
                    shutdown::signal(),
                )
                .await?;
                anyhow::Ok(summary)
            })?;
            if once {
                println!(
                    "rendered {}, already done {}, failed {} — derivatives are under {}",
                    summary.rendered,
                    summary.already_done,
                    summary.failed,
                    dir.join("derived").display()
                );
            }
            Ok(())
        }
        Command::Worker { queue } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(app::run(settings, queue, shutdown::signal()))?;
            Ok(())
        }
        Command::Render {
            input,
            preset,
            spec,
            output,
        } => {
            let which = match (&preset, &spec) {
                (Some(name), _) => oneoff::Which::Preset(name),
                (None, Some(spec)) => oneoff::Which::Spec(spec),
                (None, None) => unreachable!("clap requires one of --preset and --spec"),
            };
            let out = oneoff::render_file(&settings, &input, which, &output)?;
            let v = &out.variants[0];
            println!(
                "{} → {} ({}×{}, {}, {} bytes)",
                input.display(),
                output.display(),
                v.size.width,
                v.size.height,
                v.format.as_str(),
                v.bytes.len()
            );
            Ok(())
        }
        Command::Schema { out } => {
            let schemas = rendition_core::schema::all();
            match out {
                None => print!("{}", schemas[0].1),
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    for (name, text) in schemas {
                        std::fs::write(dir.join(name), text)?;
                    }
                }
            }
            Ok(())
        }
    }
}
