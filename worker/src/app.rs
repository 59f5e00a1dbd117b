//! `rendition worker --queue rabbitmq|sqs`: the long-running worker process, wired from
//! settings. The S3 store, the eager job engine, the operations endpoint, and one queue
//! consumer; SIGTERM stops intake, jobs in flight finish within the grace period. Its
//! section of the configuration, `[worker]`, is [`crate::settings::WorkerSettings`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rendition_aws::sns::SnsPublisher;
use rendition_pipeline::config::Settings;
use rendition_pipeline::store::BlobStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::compose::{self, Bucket, Renders};
use crate::handler::Handler;
use crate::http::{self, Readiness};
use crate::metrics::Metrics;
use crate::settings::CliSections;

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
    #[error(transparent)]
    Compose(#[from] compose::ComposeError),
}

/// Runs the worker until `shutdown` resolves, then drains for at most the grace period.
pub async fn run(
    settings: Settings,
    sections: CliSections,
    queue: QueueKind,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let settings = Arc::new(settings);
    let engine = compose::engine(Arc::clone(&settings), Bucket::S3, Renders::Yes).await?;
    let store = Arc::clone(engine.store());
    let renderer = engine.renderer().clone();
    let metrics = Metrics::new();
    let handler = Handler::new(engine, metrics.clone());
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
