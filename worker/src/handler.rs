//! What a queue worker does with one message, whatever the queue: parse the storage
//! event(s) in it, run the eager job for each created source, delete the derivatives of
//! each removed source, and classify any failure as retryable or permanent.
//!
//! A message is all-or-nothing: if any of its records fails, the whole message is retried
//! or dead-lettered. Jobs are idempotent, so redoing the records that did succeed is safe.

use std::time::Instant;

use rendition_core::event::{self, Action, EventError, Job};
use rendition_core::job::{Engine, JobError, Outcome};
use rendition_core::manifest::Manifest;
use rendition_core::naming;
use rendition_core::store::StoreError;
use tracing::{debug, info};

use crate::metrics::Metrics;

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("invalid event: {0}")]
    Event(#[from] EventError),
    #[error("event for bucket {got:?}, but this worker serves {expected:?}")]
    WrongBucket { got: String, expected: String },
    #[error("{key}: {source}")]
    Job { key: String, source: JobError },
    #[error("deleting derivatives of {key}: {source}")]
    Remove { key: String, source: StoreError },
}

impl HandleError {
    /// Retry later (storage hiccups), or dead-letter now (the message itself is bad).
    pub fn is_retryable(&self) -> bool {
        match self {
            HandleError::Event(_) | HandleError::WrongBucket { .. } => false,
            HandleError::Job { source, .. } => source.is_retryable(),
            HandleError::Remove { source, .. } => source.is_retryable(),
        }
    }

    /// Stable error kind for headers, metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            HandleError::Event(e) => e.kind(),
            HandleError::WrongBucket { .. } => "wrong_bucket",
            HandleError::Job { source, .. } => source.kind(),
            HandleError::Remove { source, .. } => match source {
                StoreError::Unavailable(_) => "storage_unavailable",
                _ => "storage_error",
            },
        }
    }
}

/// What a message produced.
#[derive(Debug, Default)]
pub struct Handled {
    /// Manifests written by this delivery (to announce as `derivatives.ready`).
    pub manifests: Vec<Manifest>,
    pub already_done: usize,
    pub removed: usize,
    pub ignored: usize,
}

#[derive(Clone)]
pub struct Handler {
    engine: Engine,
    delete_on_remove: bool,
    metrics: Metrics,
}

impl Handler {
    pub fn new(engine: Engine, delete_on_remove: bool, metrics: Metrics) -> Handler {
        Handler {
            engine,
            delete_on_remove,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Handles one message body.
    pub async fn handle(&self, body: &[u8]) -> Result<Handled, HandleError> {
        let started = Instant::now();
        self.metrics.in_flight.inc();
        let result = self.handle_inner(body).await;
        self.metrics.in_flight.dec();
        self.metrics
            .job_seconds
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(h) => {
                for _ in &h.manifests {
                    self.metrics.outcome("rendered");
                }
                for _ in 0..h.already_done {
                    self.metrics.outcome("already_done");
                }
                for _ in 0..h.removed {
                    self.metrics.outcome("removed");
                }
                if h.manifests.is_empty() && h.already_done == 0 && h.removed == 0 {
                    self.metrics.outcome("ignored");
                }
            }
            Err(_) => {}
        }
        result
    }

    async fn handle_inner(&self, body: &[u8]) -> Result<Handled, HandleError> {
        let parsed = event::parse_message(body, &self.engine.settings().storage)?;
        let mut handled = Handled {
            ignored: parsed.ignored.len(),
            ..Handled::default()
        };
        for ignored in &parsed.ignored {
            debug!(subject = %ignored.subject, reason = ignored.reason.as_str(), "event ignored");
        }
        for job in parsed.jobs {
            if job.bucket != self.engine.bucket() {
                return Err(HandleError::WrongBucket {
                    got: job.bucket,
                    expected: self.engine.bucket().to_string(),
                });
            }
            match job.action {
                Action::Created => match self.engine.process(&job.key).await {
                    Ok(Outcome::Rendered { manifest, .. }) => handled.manifests.push(manifest),
                    Ok(Outcome::AlreadyDone { .. }) => handled.already_done += 1,
                    Err(source) => {
                        return Err(HandleError::Job {
                            key: job.key,
                            source,
                        })
                    }
                },
                Action::Removed if self.delete_on_remove => {
                    self.remove(&job).await?;
                    handled.removed += 1;
                }
                Action::Removed => handled.ignored += 1,
            }
        }
        Ok(handled)
    }

    /// Deletes every derivative and manifest of every version of a removed source.
    async fn remove(&self, job: &Job) -> Result<(), HandleError> {
        let storage = &self.engine.settings().storage;
        let err = |source| HandleError::Remove {
            key: job.key.clone(),
            source,
        };
        let rel =
            naming::source_rel(&storage.source_prefix, &job.key).map_err(|e| HandleError::Job {
                key: job.key.clone(),
                source: e.into(),
            })?;
        // If the source was re-uploaded since, its new derivatives must stay.
        if self
            .engine
            .store()
            .head(&job.key)
            .await
            .map_err(err)?
            .is_some()
        {
            info!(key = %job.key, "source exists again; keeping derivatives");
            return Ok(());
        }
        let folder = naming::source_folder(&storage.derived_prefix, rel);
        let store = self.engine.store();
        // Only `{folder}{guid}/{file}`: a source named `a.jpg/b.jpg` has its own folder
        // inside this one, and must keep it.
        let objects: Vec<_> = store
            .list(&folder)
            .await
            .map_err(err)?
            .into_iter()
            .filter(|m| {
                m.key[folder.len()..]
                    .split_once('/')
                    .is_some_and(|(guid, file)| {
                        uuid::Uuid::try_parse(guid).is_ok() && !file.contains('/')
                    })
            })
            .collect();
        for meta in &objects {
            store.delete(&meta.key).await.map_err(err)?;
        }
        info!(key = %job.key, deleted = objects.len(), "derivatives of a removed source deleted");
        Ok(())
    }
}
