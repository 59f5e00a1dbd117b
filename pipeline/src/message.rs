//! One queue message → parsed storage events → eager jobs and removals, with the
//! error every consumer (RabbitMQ, SQS, the Lambda triggers) turns into one
//! [`Disposition`](crate::disposition::Disposition) with
//! [`decide`](crate::disposition::decide). A message is all-or-nothing: if any of its records fails, the whole message is
//! retried or dead-lettered; jobs are idempotent, so redoing the records that did
//! succeed is safe.

use tracing::{debug, info};

use crate::cdn::{self, CdnError};
use crate::event::{self, Action, EventError, Job};
use crate::job::{Engine, JobError, Outcome};
use crate::manifest::Manifest;
use crate::naming;
use crate::store::StoreError;

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("invalid event: {0}")]
    Event(#[from] EventError),
    #[error("event for bucket {got:?}, but this worker serves {expected:?}")]
    WrongBucket { got: String, expected: String },
    #[error("{key}: {source}")]
    Job { key: String, source: JobError },
    #[error("deleting derivatives of {key}: {source}")]
    Remove { key: String, source: StoreError },
    /// The derivatives are deleted, the CDN's copies not yet invalidated: a retry deletes
    /// nothing more and invalidates again.
    #[error("invalidating the CDN's copies of {key}'s derivatives: {source}")]
    Invalidate { key: String, source: CdnError },
}

impl MessageError {
    /// Retry later (storage hiccups), or dead-letter now (the message itself is bad).
    pub fn is_retryable(&self) -> bool {
        match self {
            MessageError::Event(e) => e.is_retryable(),
            MessageError::WrongBucket { .. } => false,
            MessageError::Job { source, .. } => source.is_retryable(),
            MessageError::Remove { source, .. } => source.is_retryable(),
            MessageError::Invalidate { source, .. } => source.is_retryable(),
        }
    }

    /// Stable error kind for headers, metrics and logs ([`rendition_image::kinds::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            MessageError::Event(e) => e.kind(),
            MessageError::WrongBucket { .. } => "wrong_bucket",
            MessageError::Job { source, .. } => source.kind(),
            MessageError::Remove { source, .. } => source.kind(),
            MessageError::Invalidate { source, .. } => source.kind(),
        }
    }

    /// The source key the failure is about, when the message got as far as naming one
    /// (`subject` of its `derivatives.failed` event).
    pub fn source_key(&self) -> Option<&str> {
        match self {
            MessageError::Job { key, .. }
            | MessageError::Remove { key, .. }
            | MessageError::Invalidate { key, .. } => Some(key),
            MessageError::Event(_) | MessageError::WrongBucket { .. } => None,
        }
    }

    /// HTTP status, for completeness: 400 for a bad or misdirected message, else its
    /// source's.
    pub fn status(&self) -> u16 {
        match self {
            MessageError::Event(e) => e.status(),
            MessageError::WrongBucket { .. } => 400,
            MessageError::Job { source, .. } => source.status(),
            MessageError::Remove { source, .. } => source.status(),
            MessageError::Invalidate { source, .. } => source.status(),
        }
    }
}

/// What a message produced.
#[derive(Debug, Default)]
pub struct Handled {
    /// Manifests of every source this delivery completed, rendered now or before (to
    /// announce as `derivatives.ready`: at-least-once, so a redelivery announces again).
    pub manifests: Vec<Manifest>,
    /// Sources whose derivatives were deleted (to announce as `derivatives.removed`).
    pub removals: Vec<Removal>,
    pub rendered: usize,
    pub already_done: usize,
    pub removed: usize,
    pub ignored: usize,
}

/// The root span of one job (a queue message, a Lambda record): `key` is recorded once
/// the event is parsed, `outcome` when it is settled. Its edge sets its parent from the
/// message's `traceparent` (`telemetry::parent_from`).
pub fn job_span(queue: &'static str) -> tracing::Span {
    tracing::info_span!(
        "job",
        queue,
        key = tracing::field::Empty,
        outcome = tracing::field::Empty
    )
}

/// Handles one message body with `engine`; its `storage.delete_on_remove` decides what
/// `ObjectRemoved` events do.
pub async fn handle_message(engine: &Engine, body: &[u8]) -> Result<Handled, MessageError> {
    let storage = &engine.settings().storage;
    let parsed = tracing::info_span!("receive", bytes = body.len())
        .in_scope(|| event::parse_message(body, storage))?;
    Messages {
        engine,
        delete_on_remove: storage.delete_on_remove,
    }
    .handle_parsed(parsed)
    .await
}

/// [`handle_message`] for an event that is already JSON (the Lambda's storage trigger
/// hands its payload over as it came, without writing it out again).
pub async fn handle_event(
    engine: &Engine,
    event: &serde_json::Value,
) -> Result<Handled, MessageError> {
    let storage = &engine.settings().storage;
    let parsed = tracing::info_span!("receive").in_scope(|| event::parse_value(event, storage))?;
    Messages {
        engine,
        delete_on_remove: storage.delete_on_remove,
    }
    .handle_parsed(parsed)
    .await
}

/// Removes one source's derivatives as an `ObjectRemoved` event does (whatever
/// `storage.delete_on_remove` says: the caller decides), for an edge that has no message:
/// the folder mode's watcher. Every derivative and manifest of every version goes, then,
/// with a CDN configured ([`Engine::with_cdn`]), one invalidation of
/// `/{derived_prefix}{source_rel}/*`. How many objects were deleted, or `None` when the
/// source exists again and they were kept.
pub async fn remove_source(engine: &Engine, job: &Job) -> Result<Option<u64>, MessageError> {
    Messages {
        engine,
        delete_on_remove: true,
    }
    .remove(job)
    .await
}

struct Messages<'a> {
    engine: &'a Engine,
    delete_on_remove: bool,
}

impl Messages<'_> {
    async fn handle_parsed(&self, parsed: event::Parsed) -> Result<Handled, MessageError> {
        let mut handled = Handled {
            ignored: parsed.ignored.len(),
            ..Handled::default()
        };
        for ignored in &parsed.ignored {
            debug!(subject = %ignored.subject, reason = ignored.reason.as_str(), "event ignored");
        }
        for job in parsed.jobs {
            if job.bucket != self.engine.bucket() {
                return Err(MessageError::WrongBucket {
                    got: job.bucket,
                    expected: self.engine.bucket().to_string(),
                });
            }
            // The job's span (its edge declares `key`) says which source it was.
            tracing::Span::current().record("key", job.key.as_str());
            match job.action {
                Action::Created => {
                    match self.engine.process_presets(&job.key, &job.presets).await {
                        Ok(Outcome::Rendered { manifest, .. }) => {
                            handled.rendered += 1;
                            handled.manifests.push(manifest);
                        }
                        Ok(Outcome::AlreadyDone { manifest, .. }) => {
                            handled.already_done += 1;
                            handled.manifests.push(manifest);
                        }
                        Err(source) => {
                            return Err(MessageError::Job {
                                key: job.key,
                                source,
                            })
                        }
                    }
                }
                Action::Removed if self.delete_on_remove => {
                    if let Some(deleted) = self.remove(&job).await? {
                        handled.removals.push(Removal {
                            key: job.key.clone(),
                            version_id: job.version_id.clone(),
                            event_time: job.event_time.clone(),
                            deleted,
                        });
                    }
                    handled.removed += 1;
                }
                Action::Removed => handled.ignored += 1,
            }
        }
        Ok(handled)
    }

    /// Deletes every derivative and manifest of every version of a removed source: how
    /// many, or `None` when the source exists again and they were kept.
    async fn remove(&self, job: &Job) -> Result<Option<u64>, MessageError> {
        let storage = &self.engine.settings().storage;
        let err = |source| MessageError::Remove {
            key: job.key.clone(),
            source,
        };
        let rel = naming::source_rel(&storage.source_prefix, &job.key).map_err(|e| {
            MessageError::Job {
                key: job.key.clone(),
                source: e.into(),
            }
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
            return Ok(None);
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
        // After the deletes, so the CDN cannot fetch them again, and even when nothing was
        // left to delete: a retry after a failed invalidation finds the folder empty.
        if let Some(cdn) = self.engine.cdn() {
            let path = cdn::removal_path(storage, rel);
            let reference = cdn::removal_reference(job);
            let done = cdn
                .invalidate(&reference, std::slice::from_ref(&path))
                .await
                .map_err(|source| MessageError::Invalidate {
                    key: job.key.clone(),
                    source,
                })?;
            info!(
                key = %job.key,
                distribution = %done.distribution,
                invalidation = %done.id,
                path = %path,
                "CDN copies of a removed source invalidated"
            );
        }
        Ok(Some(objects.len() as u64))
    }
}
/// A source whose derivatives a message removed: what `derivatives.removed` says, and
/// what identifies the removal event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub key: String,
    pub version_id: Option<String>,
    /// The storage event's time, as it wrote it: tells two removals of the same key apart.
    pub event_time: Option<String>,
    /// Objects deleted.
    pub deleted: u64,
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
rendition_image::classified!(MessageError);
