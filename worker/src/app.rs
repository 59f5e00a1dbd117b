//! `rendition worker --queue rabbitmq|sqs`: the long-running worker process, wired from
//! settings. The S3 store, the eager job engine, the operations endpoint, and one queue
//! consumer; SIGTERM stops intake, jobs in flight finish within the grace period. Its
//! section of the configuration, `[worker]` ([`WorkerSettings`]), is defined here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rendition_aws::s3::S3Store;
use rendition_aws::sns::SnsPublisher;
use rendition_image::renderer::Renderer;
use rendition_pipeline::config::Settings;
use rendition_pipeline::job::Engine;
use rendition_pipeline::store::BlobStore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::handler::Handler;
use crate::http::{self, Readiness};
use crate::metrics::Metrics;
use crate::settings::CliSections;

// `[worker]`: the long-running process (its operations endpoint and shutdown); `serve`
// reads its grace period too. (The section's description in the schema is its field's
// doc, in `crate::settings::CliSections`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub http_addr: String,
    /// After SIGTERM, how long jobs in flight may take before the process exits anyway.
    pub shutdown_grace_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            http_addr: "127.0.0.1:9464".into(),
            shutdown_grace_secs: 30,
        }
    }
}

/// Which queue to consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueKind {
    Rabbitmq,
    Sqs,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rabbit(#[from] crate::rabbit::RabbitError),
    #[error(transparent)]
    Sqs(#[from] crate::sqs::SqsError),
    #[error("cannot start the renderer: {0}")]
    Renderer(#[from] rendition_image::render::RenderError),
}

/// Runs the worker until `shutdown` resolves, then drains for at most the grace period.
pub async fn run(
    settings: Settings,
    sections: CliSections,
    queue: QueueKind,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let settings = Arc::new(settings);
    let store = S3Store::from_settings(&settings.s3).await;
    let store: Arc<dyn BlobStore> = Arc::new(store);
    let renderer = Renderer::from_settings(&settings.limits, &settings.render).await?;
    let engine = Engine::new(
        Arc::clone(&store),
        Arc::clone(&settings),
        settings.s3.bucket.clone(),
        renderer.clone(),
    );
    let engine = crate::compose::with_cdn(engine, &settings).await;
    let metrics = Metrics::new();
    let handler = Handler::new(engine, settings.storage.delete_on_remove, metrics.clone());
    let ready = Readiness::default();

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let CliSections {
        rabbitmq,
        sqs,
        worker,
        ..
    } = sections;
    let addr = worker.http_addr.clone();
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| WorkerError::Listen {
            addr: addr.clone(),
            source,
        })?;
    info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or(addr), "operations endpoint: /healthz /readyz /metrics");
    let http_task = tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        ready.clone(),
        stopped(stop_rx.clone()),
    ));
    let probe_task = tokio::spawn(probe_store(store, ready.clone(), stopped(stop_rx.clone())));

    let concurrency = settings.concurrency();
    let events = settings.events.clone();
    let consumer = {
        let (ready, stop) = (ready.clone(), stopped(stop_rx.clone()));
        async move {
            match queue {
                QueueKind::Rabbitmq => {
                    crate::rabbit::run(&rabbitmq, concurrency, handler, ready, stop).await?
                }
                QueueKind::Sqs => {
                    let client = crate::sqs::client(&sqs).await;
                    let events = SnsPublisher::from_settings(&events).await;
                    crate::sqs::run(client, &sqs, concurrency, handler, events, ready, stop).await?
                }
            }
            Ok::<(), WorkerError>(())
        }
    };
    tokio::pin!(consumer);
    tokio::pin!(shutdown);
    let result = tokio::select! {
        r = &mut consumer => r,
        _ = &mut shutdown => {
            info!(grace_secs = worker.shutdown_grace_secs, "shutdown requested: draining");
            let _ = stop_tx.send(true);
            match tokio::time::timeout(Duration::from_secs(worker.shutdown_grace_secs), &mut consumer).await {
                Ok(r) => r,
                Err(_) => {
                    warn!("grace period over; exiting with jobs in flight (they will be redelivered)");
                    Ok(())
                }
            }
        }
    };
    let _ = stop_tx.send(true);
    let _ = http_task.await;
    let _ = probe_task.await;
    renderer.shutdown().await;
    result
}

/// Marks the store ready while a cheap request to it succeeds.
async fn probe_store(store: Arc<dyn BlobStore>, ready: Readiness, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let up = store.list("rendition-readiness/").await.is_ok();
        ready.set_store(up);
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(if up { 15 } else { 2 })) => {}
        }
    }
}
