use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rendition_core::config::Settings;
use rendition_core::job::Engine;
use rendition_core::ondemand::OnDemand;
use rendition_core::renderer::Renderer;
use rendition_core::sandbox;
use rendition_core::store::{BlobStore, CachedStore, FsStore, S3Store};
use rendition_worker::cli::{Cli, Command};
use rendition_worker::{
    app, backfill, bench, local, oneoff, rabbit, serve, sheet, shutdown, sqs, telemetry, urlcmd,
};

fn main() -> anyhow::Result<()> {
    // A render helper of the sandbox: this same binary, started by the pool.
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(sandbox::HELPER_ARG) {
        let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
        std::process::exit(sandbox::helper::main(threads));
    }
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
                let renderer = Renderer::from_settings(&settings).await?;
                let engine = Engine::new(
                    Arc::new(store.clone()),
                    Arc::new(settings),
                    "local",
                    renderer.clone(),
                );
                let summary = local::run(
                    store,
                    engine,
                    local::RunOptions { once },
                    shutdown::signal(),
                )
                .await;
                renderer.shutdown().await;
                let summary = summary?;
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
            // Renders run on the blocking pool. Keeping its idle threads (default: 10 s)
            // avoids creating and destroying one per job when the queue is briefly empty.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_keep_alive(std::time::Duration::from_secs(600))
                .build()?;
            runtime.block_on(app::run(settings, queue, shutdown::signal()))?;
            Ok(())
        }
        Command::Serve { local: dir, addr } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let addr = addr.unwrap_or_else(|| settings.serve.addr.clone());
                let wait = std::time::Duration::from_secs(settings.serve.wait_timeout_secs);
                let (inner, bucket): (Arc<dyn BlobStore>, String) = match &dir {
                    Some(dir) => (
                        Arc::new(
                            FsStore::new(dir)
                                .with_context(|| format!("opening {}", dir.display()))?,
                        ),
                        "local".to_string(),
                    ),
                    None => (
                        Arc::new(S3Store::from_settings(&settings.s3).await),
                        settings.s3.bucket.clone(),
                    ),
                };
                let cached = CachedStore::new(
                    inner,
                    settings.storage.source_prefix.clone(),
                    settings.serve.source_cache_bytes,
                );
                let store: Arc<dyn BlobStore> = Arc::new(cached);
                let renderer = Renderer::from_settings(&settings).await?;
                let settings = Arc::new(settings);
                let ondemand = OnDemand::new(
                    Arc::clone(&store),
                    Arc::clone(&settings),
                    bucket.clone(),
                    renderer.clone(),
                )
                .with_render_slots(
                    settings.serve_max_renders(),
                    std::time::Duration::from_millis(settings.serve.render_queue_ms),
                );
                // The same store and bucket, to find manifests for the /sheet/ pages.
                let engine = Engine::new(store, Arc::clone(&settings), bucket, renderer.clone());
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                let options = serve::ServeOptions {
                    wait,
                    ..serve::ServeOptions::from_settings(engine.settings())
                };
                let served =
                    serve::run(listener, ondemand, engine, options, shutdown::signal()).await;
                renderer.shutdown().await;
                served?;
                anyhow::Ok(())
            })
        }
        Command::Url {
            source,
            preset,
            spec,
            local: dir,
        } => {
            let which = match (&preset, &spec) {
                (Some(name), _) => oneoff::Which::Preset(name),
                (None, Some(spec)) => oneoff::Which::Spec(spec),
                (None, None) => unreachable!("clap requires one of --preset and --spec"),
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let url = runtime.block_on(async {
                let (store, bucket): (Arc<dyn BlobStore>, String) = match &dir {
                    Some(dir) => (Arc::new(FsStore::new(dir)?), "local".to_string()),
                    None => (
                        Arc::new(S3Store::from_settings(&settings.s3).await),
                        settings.s3.bucket.clone(),
                    ),
                };
                anyhow::Ok(
                    urlcmd::derivative_url(&settings, store.as_ref(), &bucket, &source, which, now)
                        .await?,
                )
            })?;
            println!("{url}");
            Ok(())
        }
        Command::Sheet {
            source,
            local: dir,
            output,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let built = runtime.block_on(async {
                // The sheet reads manifests and derivatives; it renders nothing.
                let renderer = Renderer::in_process(&settings);
                let settings = Arc::new(settings);
                let engine = match &dir {
                    Some(dir) => {
                        let store = FsStore::new(dir)
                            .with_context(|| format!("opening {}", dir.display()))?;
                        Engine::new(Arc::new(store), settings, "local", renderer)
                    }
                    None => Engine::new(
                        Arc::new(S3Store::from_settings(&settings.s3).await),
                        Arc::clone(&settings),
                        settings.s3.bucket.clone(),
                        renderer,
                    ),
                };
                anyhow::Ok(sheet::build(&engine, &source, sheet::Images::Embedded).await?)
            })?;
            match output {
                None => {
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(built.html.as_bytes())?;
                    stdout.flush()?;
                }
                Some(path) => {
                    std::fs::write(&path, built.html.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!(
                        "sheet: {source} → {} ({} images)",
                        path.display(),
                        built.images
                    );
                }
            }
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
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let out = runtime.block_on(async {
                // One render: one helper.
                let mut one = settings.clone();
                one.render.pool_size = 1;
                let renderer = Renderer::from_settings(&one).await?;
                let out = oneoff::render_file(&settings, &renderer, &input, which, &output).await;
                renderer.shutdown().await;
                anyhow::Ok(out?)
            })?;
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
        Command::Bench {
            dir,
            iterations,
            json,
            sharp_dir,
            no_sharp,
            no_vipsthumbnail,
            no_arena_compare,
            child,
        } => {
            let iterations = iterations as usize;
            if let Some(case) = child {
                return bench::child(&dir, iterations, &case);
            }
            bench::run(&bench::Options {
                dir,
                iterations,
                json,
                sharp_dir,
                no_sharp,
                no_vipsthumbnail,
                no_arena_compare,
            })?;
            Ok(())
        }
        Command::Backfill {
            preset,
            prefix,
            dry_run,
            queue,
            local: dir,
            rate,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let options = backfill::Options {
                preset: preset.clone(),
                prefix,
                rate,
                progress: true,
            };
            let (summary, line) = runtime.block_on(async {
                // Only a folder bucket renders in place; a queue's workers render.
                let renderer = match &dir {
                    Some(_) if !dry_run => Renderer::from_settings(&settings).await?,
                    _ => Renderer::in_process(&settings),
                };
                let settings = Arc::new(settings);
                let engine = match &dir {
                    Some(dir) => {
                        let store = FsStore::new(dir)
                            .with_context(|| format!("opening {}", dir.display()))?;
                        Engine::new(Arc::new(store), Arc::clone(&settings), "local", renderer)
                    }
                    None => Engine::new(
                        Arc::new(S3Store::from_settings(&settings.s3).await),
                        Arc::clone(&settings),
                        settings.s3.bucket.clone(),
                        renderer,
                    ),
                };
                let sink = match (dry_run, queue, &dir) {
                    (true, _, _) => backfill::Sink::DryRun,
                    (false, Some(app::QueueKind::Rabbitmq), _) => backfill::Sink::Rabbit(Box::new(
                        rabbit::JobPublisher::connect(&settings.rabbitmq).await?,
                    )),
                    (false, Some(app::QueueKind::Sqs), _) => {
                        anyhow::ensure!(
                            !settings.sqs.queue_url.is_empty(),
                            "sqs.queue_url is not set (RENDITION__SQS__QUEUE_URL)"
                        );
                        backfill::Sink::Sqs {
                            client: sqs::client(&settings.sqs).await,
                            queue_url: settings.sqs.queue_url.clone(),
                        }
                    }
                    (false, None, _) => backfill::Sink::InPlace,
                };
                let summary = backfill::run(&engine, &sink, &options, |key| {
                    if dry_run {
                        println!("missing: {key}");
                    }
                })
                .await?;
                let line = summary.line(&preset, &sink);
                if let backfill::Sink::Rabbit(publisher) = sink {
                    publisher.close().await;
                }
                anyhow::Ok((summary, line))
            })?;
            println!("{line}");
            if summary.failed > 0 {
                std::process::exit(1);
            }
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
