//! One function per command: each builds what it needs through [`crate::compose`], runs,
//! and says how the process should exit. `main` only parses, loads the configuration (the
//! core's settings and the CLI's sections, [`crate::settings`]) and calls [`run`] on one
//! runtime.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use rendition_image::render::RenderError;
use rendition_pipeline::config::{ConfigError, Settings};
use rendition_pipeline::store::{FsStore, StoreError};

use crate::app::QueueKind;
use crate::cli::Command;
use crate::compose::{self, Bucket, ComposeError, Renders};
use crate::settings::CliSections;
use crate::{app, backfill, gc, html, local, oneoff, rabbit, serve, sheet, sqs, urlcmd};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A setting the command needs is missing ([`needs`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("opening {path}: {source}")]
    Folder { path: String, source: StoreError },
    #[error(transparent)]
    Local(#[from] local::LocalError),
    #[error(transparent)]
    Worker(#[from] app::WorkerError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Url(#[from] urlcmd::UrlCmdError),
    #[error(transparent)]
    Sheet(#[from] sheet::SheetError),
    #[error(transparent)]
    Html(#[from] html::HtmlError),
    #[error(transparent)]
    OneOff(#[from] oneoff::OneOffError),
    #[error(transparent)]
    Backfill(#[from] backfill::BackfillError),
    #[error(transparent)]
    Gc(#[from] gc::GcError),
    #[error(transparent)]
    Rabbit(#[from] rabbit::RabbitError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl CommandError {
    /// The configuration error it is, if it is one.
    pub fn config(&self) -> Option<&ConfigError> {
        match self {
            CommandError::Config(e) => Some(e),
            _ => None,
        }
    }

    /// The render error it is, if it is one (a one-off render, or a renderer that could
    /// not start).
    pub fn render(&self) -> Option<&RenderError> {
        match self {
            CommandError::OneOff(oneoff::OneOffError::Render(e))
            | CommandError::Compose(ComposeError::Renderer(e)) => Some(e),
            _ => None,
        }
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> CommandError + '_ {
    move |source| CommandError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Runs `command` until it is done or `shutdown` resolves; first checks the settings it
/// needs ([`needs`]).
pub async fn run(
    command: Command,
    settings: Settings,
    sections: CliSections,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ExitCode, CommandError> {
    needs(&command, &settings, &sections)?;
    let settings = Arc::new(settings);
    match command {
        Command::Run { local, once } => run_local(settings, &local, once, shutdown).await,
        Command::Worker { queue } => {
            app::run(Arc::unwrap_or_clone(settings), sections, queue, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { local, addr } => {
            serve_command(settings, &sections, local.as_deref(), addr, shutdown).await
        }
        Command::Url {
            source,
            preset,
            spec,
            local,
        } => url(&settings, &source, which(&preset, &spec), local.as_deref()).await,
        Command::Sheet {
            source,
            local,
            output,
        } => sheet_command(settings, &source, local.as_deref(), output).await,
        Command::Html {
            source,
            local,
            presets,
            sizes,
            alt,
        } => {
            let options = html::Options {
                presets,
                sizes,
                alt,
            };
            html_command(settings, &source, local.as_deref(), &options).await
        }
        Command::Render {
            input,
            preset,
            spec,
            output,
        } => render(&settings, &input, which(&preset, &spec), &output).await,
        Command::Backfill {
            preset,
            changed: _,
            prefix,
            dry_run,
            queue,
            local,
            rate,
        } => {
            let options = backfill::Options {
                preset,
                prefix,
                rate,
                progress: true,
            };
            let dir = local.as_deref();
            backfill_command(settings, &sections, options, dry_run, queue, dir).await
        }
        Command::Gc {
            dry_run: _,
            delete,
            grace,
            queue: _,
            local,
            quiet,
        } => {
            let options = gc::Options {
                delete,
                grace: gc::parse_grace(&grace)?,
                progress: true,
            };
            gc_command(&settings, options, local.as_deref(), quiet).await
        }
        Command::Schema { out } => schema(out),
    }
}

/// The settings `command` cannot run without, checked before any client, network or
/// helper process is set up: a worker's queue, the S3 bucket of a command without
/// `--local`, a signing key for `url --spec`. Each missing one is a
/// [`ConfigError::Required`] naming the key and its variable.
pub fn needs(
    command: &Command,
    settings: &Settings,
    sections: &CliSections,
) -> Result<(), ConfigError> {
    let bucket = |local: &Option<PathBuf>, what: &str| {
        if local.is_none() && settings.s3.bucket.is_empty() {
            return Err(ConfigError::required(
                "s3.bucket",
                format!("`rendition {what}` without --local"),
            ));
        }
        Ok(())
    };
    let queue = |kind: QueueKind, what: &str| match kind {
        QueueKind::Rabbitmq if sections.rabbitmq.url.is_empty() => Err(ConfigError::required(
            "rabbitmq.url",
            format!("`rendition {what} --queue rabbitmq`"),
        )),
        QueueKind::Sqs if sections.sqs.queue_url.is_empty() => Err(ConfigError::required(
            "sqs.queue_url",
            format!("`rendition {what} --queue sqs`"),
        )),
        _ => Ok(()),
    };
    match command {
        Command::Worker { queue: kind } => {
            queue(*kind, "worker")?;
            bucket(&None, "worker")
        }
        Command::Serve { local, .. } => bucket(local, "serve"),
        Command::Url { spec, local, .. } => {
            if spec.is_some() && settings.urls.signing_keys.is_empty() {
                return Err(ConfigError::required(
                    "urls.signing_keys",
                    "`rendition url --spec` (an explicit spec is signed)",
                ));
            }
            bucket(local, "url")
        }
        Command::Sheet { local, .. } => bucket(local, "sheet"),
        Command::Html { local, .. } => bucket(local, "html"),
        Command::Gc { local, .. } => bucket(local, "gc"),
        Command::Backfill {
            dry_run,
            queue: kind,
            local,
            ..
        } => {
            if let (false, Some(kind)) = (dry_run, kind) {
                queue(*kind, "backfill")?;
            }
            bucket(local, "backfill")
        }
        Command::Run { .. } | Command::Render { .. } | Command::Schema { .. } => Ok(()),
    }
}

/// `--preset NAME` or `--spec S` (clap requires one of them).
fn which<'a>(preset: &'a Option<String>, spec: &'a Option<String>) -> oneoff::Which<'a> {
    match (preset, spec) {
        (Some(name), _) => oneoff::Which::Preset(name),
        (None, Some(spec)) => oneoff::Which::Spec(spec),
        (None, None) => unreachable!("clap requires one of --preset and --spec"),
    }
}

async fn run_local(
    settings: Arc<Settings>,
    dir: &Path,
    once: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<ExitCode, CommandError> {
    let store = FsStore::new(dir).map_err(|source| CommandError::Folder {
        path: dir.display().to_string(),
        source,
    })?;
    let engine = compose::engine(settings, Bucket::Folder(dir), Renders::Yes).await?;
    let summary = local::run(store, engine.clone(), local::RunOptions { once }, shutdown).await;
    engine.renderer().shutdown().await;
    let summary = summary?;
    if once {
        println!(
            "rendered {}, already done {}, failed {} — derivatives are under {}",
            summary.rendered,
            summary.already_done,
            summary.failed,
            dir.join("derived").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve_command(
    settings: Arc<Settings>,
    sections: &CliSections,
    dir: Option<&Path>,
    addr: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ExitCode, CommandError> {
    let addr = addr.unwrap_or_else(|| sections.serve.addr.clone());
    let options =
        serve::ServeOptions::from_settings(&sections.serve, sections.worker.shutdown_grace_secs);
    let (ondemand, engine) =
        compose::on_demand(settings, &sections.serve, Bucket::from_flag(dir)).await?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| CommandError::Listen { addr, source })?;
    let renderer = engine.renderer().clone();
    let served = serve::run(listener, ondemand, engine, options, shutdown).await;
    renderer.shutdown().await;
    served.map_err(CommandError::Serve)?;
    Ok(ExitCode::SUCCESS)
}

async fn url(
    settings: &Settings,
    source: &str,
    which: oneoff::Which<'_>,
    dir: Option<&Path>,
) -> Result<ExitCode, CommandError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (store, bucket) = compose::store(settings, Bucket::from_flag(dir))
        .await
        .map_err(ComposeError::from)?;
    let urls =
        urlcmd::derivative_urls(settings, store.as_ref(), &bucket, source, which, now).await?;
    for url in urls {
        println!("{url}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn sheet_command(
    settings: Arc<Settings>,
    source: &str,
    dir: Option<&Path>,
    output: Option<PathBuf>,
) -> Result<ExitCode, CommandError> {
    // The sheet reads manifests and derivatives; it renders nothing.
    let engine = compose::engine(settings, Bucket::from_flag(dir), Renders::No).await?;
    let built = sheet::build(&engine, source, sheet::Images::Embedded).await?;
    match output {
        None => {
            let stdout = Path::new("stdout");
            let mut out = std::io::stdout().lock();
            out.write_all(built.html.as_bytes())
                .and_then(|()| out.flush())
                .map_err(write_err(stdout))?;
        }
        Some(path) => {
            std::fs::write(&path, built.html.as_bytes()).map_err(write_err(&path))?;
            println!(
                "sheet: {source} → {} ({} images)",
                path.display(),
                built.images
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn html_command(
    settings: Arc<Settings>,
    source: &str,
    dir: Option<&Path>,
    options: &html::Options,
) -> Result<ExitCode, CommandError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Like the sheet: manifests only, nothing rendered.
    let engine = compose::engine(settings, Bucket::from_flag(dir), Renders::No).await?;
    let markup = html::build(&engine, source, options, now).await?;
    for note in &markup.notes {
        eprintln!("note: {note}");
    }
    let mut out = std::io::stdout().lock();
    out.write_all(markup.html.as_bytes())
        .and_then(|()| out.flush())
        .map_err(write_err(Path::new("stdout")))?;
    Ok(ExitCode::SUCCESS)
}

async fn render(
    settings: &Settings,
    input: &Path,
    which: oneoff::Which<'_>,
    output: &Path,
) -> Result<ExitCode, CommandError> {
    // One render: one helper.
    let mut one = settings.clone();
    one.render.pool_size = 1;
    let renderer = compose::renderer(&one, Renders::Yes)
        .await
        .map_err(ComposeError::from)?;
    let out = oneoff::render_file(settings, &renderer, input, which, output).await;
    renderer.shutdown().await;
    let v = out?;
    println!(
        "{} → {} ({}×{}, {}, {} bytes)",
        input.display(),
        output.display(),
        v.size.width,
        v.size.height,
        v.format.as_str(),
        v.bytes.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn backfill_command(
    settings: Arc<Settings>,
    sections: &CliSections,
    options: backfill::Options,
    dry_run: bool,
    queue: Option<QueueKind>,
    dir: Option<&Path>,
) -> Result<ExitCode, CommandError> {
    // Only a folder bucket renders in place; a queue's workers render.
    let renders = if dir.is_some() && !dry_run {
        Renders::Yes
    } else {
        Renders::No
    };
    let engine = compose::engine(Arc::clone(&settings), Bucket::from_flag(dir), renders).await?;
    let sink = match (dry_run, queue) {
        (true, _) => backfill::Sink::DryRun,
        (false, Some(QueueKind::Rabbitmq)) => backfill::Sink::Rabbit(Box::new(
            rabbit::JobPublisher::connect(&sections.rabbitmq).await?,
        )),
        (false, Some(QueueKind::Sqs)) => backfill::Sink::Sqs {
            client: sqs::client(&sections.sqs).await,
            queue_url: sections.sqs.queue_url.clone(),
        },
        (false, None) => backfill::Sink::InPlace,
    };
    let summary = backfill::run(&engine, &sink, &options, |key| {
        if dry_run {
            println!("missing: {key}");
        }
    })
    .await;
    engine.renderer().shutdown().await;
    let summary = summary?;
    println!("{}", summary.line(options.preset.as_deref(), &sink));
    if let backfill::Sink::Rabbit(publisher) = sink {
        publisher.close().await;
    }
    Ok(if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn gc_command(
    settings: &Settings,
    options: gc::Options,
    dir: Option<&Path>,
    quiet: bool,
) -> Result<ExitCode, CommandError> {
    // gc reads listings and manifests and deletes; it renders nothing.
    let (store, bucket) = compose::store(settings, Bucket::from_flag(dir))
        .await
        .map_err(ComposeError::from)?;
    let verb = if options.delete {
        "deleted"
    } else {
        "would-delete"
    };
    let summary = gc::run(&store, settings, &bucket, &options, |item| {
        if !quiet {
            println!(
                "{} {} bytes={} reason={} age={}",
                if item.waiting { "waiting" } else { verb },
                item.key,
                item.bytes,
                item.reason.as_str(),
                gc::age_text(item.age)
            );
        }
    })
    .await?;
    println!("{}", summary.line());
    if !options.delete && summary.retired > 0 {
        eprintln!("dry run: nothing was deleted (--delete removes them)");
    }
    Ok(ExitCode::SUCCESS)
}

fn schema(out: Option<PathBuf>) -> Result<ExitCode, CommandError> {
    let schemas = crate::settings::schemas();
    match out {
        None => print!("{}", schemas[0].1),
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
            for (name, text) in schemas {
                let path = dir.join(name);
                std::fs::write(&path, text).map_err(write_err(&path))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
