//! `rendition run --local DIR`: a folder as the bucket.
//!
//! Files that appear under the source prefix are events: the folder is watched (inotify:
//! a file counts when it is closed after writing or renamed into place), and scanned once
//! at start so nothing dropped while the program was down is missed. The watch starts
//! before the scan, so nothing falls between them. Each source runs through the shared
//! eager [`Engine`]; one that cannot be rendered gets a record under the failed prefix
//! with the reason, and the program keeps going. The shutdown future stops intake; jobs
//! in flight finish before [`run`] returns.
//!
//! A file deleted or moved out of the watched folder while it runs is a removal, as an
//! `ObjectRemoved` event is for the queue workers (`storage.delete_on_remove`): the core's
//! [`remove_source`] deletes its derivatives and manifests and, with a CDN configured,
//! invalidates them there; its failure record goes too. A file that has no derivatives
//! (a temporary file renamed into place, one removed before it was rendered) leaves
//! nothing to remove and calls no CDN. Removals while the program was down are not seen
//! (the start-up scan only finds files that exist), nor are the files of a folder moved
//! out whole (inotify reports the folder alone).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use rendition_image::kinds::MISSING_SOURCE;
use rendition_pipeline::disposition::{decide, Disposition, Failure, RetryPolicy};
use rendition_pipeline::event::{Action, Job, Origin};
use rendition_pipeline::job::{Engine, JobError, Outcome};
use rendition_pipeline::manifest::FailureRecord;
use rendition_pipeline::message::{remove_source, MessageError};
use rendition_pipeline::naming;
use rendition_pipeline::store::{BlobStore, FsStore, PutOptions, StoreError};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot scan the source folder: {0}")]
    Scan(#[from] StoreError),
}

/// Counts of what a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rendered: usize,
    pub already_done: usize,
    pub failed: usize,
    /// Removed sources whose derivatives were deleted.
    pub removed: usize,
}

/// What happened to a file under the source prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Written, or moved in: render it.
    Written,
    /// Deleted, or moved out: remove its derivatives.
    Removed,
}

/// What a job did, by its kind.
enum Done {
    Rendered(Result<Outcome, JobError>),
    /// The objects deleted, or `None` when there was nothing to remove (or the source is
    /// back).
    Removed(Result<Option<u64>, MessageError>),
}

/// Options of a local run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Process what is there at start, then return (no watching).
    pub once: bool,
}

/// Runs the local mode until `shutdown` resolves (or, with `once`, until the initial scan
/// is processed).
pub async fn run(
    store: FsStore,
    engine: Engine,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, LocalError> {
    let settings = engine.settings().clone();
    let source_prefix = settings.storage.source_prefix.clone();
    let source_dir = store.root().join(source_prefix.trim_end_matches('/'));
    std::fs::create_dir_all(&source_dir).map_err(|e| LocalError::Watch {
        path: source_dir.clone(),
        source: notify::Error::io(e),
    })?;

    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Change)>();
    // Keep the watcher alive for the whole run.
    let _watcher = if options.once {
        None
    } else {
        Some(watch(&store, &source_dir, tx.clone())?)
    };

    for meta in store.list(&source_prefix).await? {
        let _ = tx.send((meta.key, Change::Written));
    }
    report_skipped(&store, &source_dir);
    if options.once {
        drop(tx);
    }

    let limit = Arc::new(Semaphore::new(settings.concurrency()));
    let mut jobs: JoinSet<(String, Done)> = JoinSet::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    // Keys that changed again while being processed, with their last change: run once
    // more afterwards.
    let mut again: HashMap<String, Change> = HashMap::new();
    let mut summary = Summary::default();
    tokio::pin!(shutdown);
    info!(root = %store.root().display(), prefix = %source_prefix, once = options.once, "local mode started");

    let mut intake_open = true;
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown, if intake_open => {
                info!(in_flight = jobs.len(), "shutting down: finishing jobs in flight");
                intake_open = false;
                rx.close();
                again.clear();
            }
            Some(done) = jobs.join_next() => {
                let (key, result) = match done {
                    Ok(pair) => pair,
                    Err(e) => { error!(error = %e, "job task panicked"); continue; }
                };
                in_flight.remove(&key);
                match result {
                    Done::Rendered(result) => record(&store, &engine, &key, result, &mut summary).await,
                    Done::Removed(result) => record_removal(&store, &engine, &key, result, &mut summary).await,
                }
                if let Some(change) = again.remove(&key) {
                    if intake_open {
                        spawn_job(&mut jobs, &limit, &engine, key.clone(), change);
                        in_flight.insert(key);
                    }
                }
            }
            change = rx.recv(), if intake_open => {
                match change {
                    Some((_, Change::Removed)) if !settings.storage.delete_on_remove => {}
                    Some((key, change)) if in_flight.contains(&key) => { again.insert(key, change); }
                    Some((key, change)) => {
                        spawn_job(&mut jobs, &limit, &engine, key.clone(), change);
                        in_flight.insert(key);
                    }
                    None => intake_open = false,
                }
            }
            else => break,
        }
    }
    info!(?summary, "local mode stopped");
    Ok(summary)
}

fn spawn_job(
    jobs: &mut JoinSet<(String, Done)>,
    limit: &Arc<Semaphore>,
    engine: &Engine,
    key: String,
    change: Change,
) {
    let (limit, engine) = (Arc::clone(limit), engine.clone());
    jobs.spawn(async move {
        let _permit = limit
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let done = match change {
            Change::Written => Done::Rendered(engine.process(&key).await),
            Change::Removed => Done::Removed(remove(&engine, &key).await),
        };
        (key, done)
    });
}

/// A file gone from the source folder: its derivatives go through the core's removal, as
/// an `ObjectRemoved` event's do, when it has any.
async fn remove(engine: &Engine, key: &str) -> Result<Option<u64>, MessageError> {
    let storage = &engine.settings().storage;
    let Ok(rel) = naming::source_rel(&storage.source_prefix, key) else {
        return Ok(None);
    };
    let folder = naming::source_folder(&storage.derived_prefix, rel);
    let made = engine
        .store()
        .list(&folder)
        .await
        .map_err(|source| MessageError::Remove {
            key: key.to_string(),
            source,
        })?;
    if made.is_empty() {
        return Ok(None);
    }
    // The time it was noticed tells this removal from a later one of the same name (the
    // CDN's request reference).
    let noticed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let job = Job {
        action: Action::Removed,
        bucket: engine.bucket().to_string(),
        key: key.to_string(),
        version_id: None,
        etag: None,
        size: None,
        event_time: Some(format!(
            "{}.{:09}",
            noticed.as_secs(),
            noticed.subsec_nanos()
        )),
        origin: Origin::Local,
        presets: Vec::new(),
    };
    remove_source(engine, &job).await
}

/// Logs a removal and drops the source's failure record, if any.
async fn record_removal(
    store: &FsStore,
    engine: &Engine,
    key: &str,
    result: Result<Option<u64>, MessageError>,
    summary: &mut Summary,
) {
    match decide(result, 1, &RetryPolicy::ONCE) {
        Disposition::Done(None) => {}
        Disposition::Done(Some(deleted)) => {
            summary.removed += 1;
            info!(key, deleted, "removed source: derivatives deleted");
        }
        Disposition::Retry { failure, .. } | Disposition::DeadLetter(failure) => {
            summary.failed += 1;
            warn!(key, kind = failure.kind, retryable = failure.retryable, error = %failure.reason, "removing a source's derivatives failed");
            return;
        }
    }
    // A failure record of a file that is gone says nothing any more.
    if !matches!(store.head(key).await, Ok(None)) {
        return;
    }
    if let Some(failure_key) = failure_key(engine, key) {
        if let Err(e) = store.delete(&failure_key).await {
            warn!(key, error = %e, "could not remove an old failure record");
        }
    }
}

fn failure_key(engine: &Engine, key: &str) -> Option<String> {
    let storage = &engine.settings().storage;
    let rel = naming::source_rel(&storage.source_prefix, key).ok()?;
    Some(format!("{}{rel}.json", storage.failed_prefix))
}

/// Logs the outcome and keeps the failed/ records in step with it. One attempt per
/// change of the file ([`RetryPolicy::ONCE`]): a failure is final until the file changes.
async fn record(
    store: &FsStore,
    engine: &Engine,
    key: &str,
    result: Result<Outcome, JobError>,
    summary: &mut Summary,
) {
    let failure_key = failure_key(engine, key);
    let failure = match decide(result, 1, &RetryPolicy::ONCE) {
        Disposition::Done(outcome) => {
            // Clear an old failure record first, so "written" in the log means all done.
            if let Some(failure_key) = failure_key {
                if let Err(e) = store.delete(&failure_key).await {
                    warn!(key, error = %e, "could not remove an old failure record");
                }
            }
            match outcome {
                Outcome::Rendered { manifest_key, .. } => {
                    summary.rendered += 1;
                    info!(key, manifest = %manifest_key, "derivatives written");
                }
                Outcome::AlreadyDone { .. } => summary.already_done += 1,
            }
            return;
        }
        Disposition::Retry { failure, .. } | Disposition::DeadLetter(failure) => failure,
    };
    if failure.kind == MISSING_SOURCE {
        // Removed before we got to it: nothing to render, nothing to report.
        info!(key, "source vanished before processing");
        return;
    }
    summary.failed += 1;
    warn!(key, kind = failure.kind, retryable = failure.retryable, error = %failure.reason, "source failed");
    let Some(failure_key) = failure_key else {
        return;
    };
    let Failure {
        kind,
        reason,
        retryable,
        ..
    } = failure;
    let body = FailureRecord {
        source_key: key.to_string(),
        kind: kind.to_string(),
        message: reason,
        retryable,
    };
    let body = serde_json::to_vec_pretty(&body).expect("failure record serializes");
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        ..PutOptions::default()
    };
    if let Err(e) = store.put(&failure_key, Bytes::from(body), opts).await {
        error!(key, error = %e, "could not write the failure record");
    }
}

/// Watches `dir` recursively and sends the key of every file written or moved in, and of
/// every file deleted or moved out.
fn watch(
    store: &FsStore,
    dir: &Path,
    tx: mpsc::UnboundedSender<(String, Change)>,
) -> Result<notify::RecommendedWatcher, LocalError> {
    let store = store.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                warn!(error = %e, "file watch error");
                return;
            }
        };
        // Gone: deleted, or renamed away (a name that cannot be a key was never a source).
        let gone: Vec<&PathBuf> = match event.kind {
            EventKind::Remove(RemoveKind::File | RemoveKind::Any) => event.paths.iter().collect(),
            EventKind::Modify(ModifyKind::Name(RenameMode::From | RenameMode::Both)) => {
                event.paths.first().into_iter().collect()
            }
            _ => Vec::new(),
        };
        for key in gone.into_iter().filter_map(|path| store.key_of(path)) {
            let _ = tx.send((key, Change::Removed));
        }
        let paths: Vec<&PathBuf> = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => event.paths.iter().collect(),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event.paths.iter().collect(),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                event.paths.get(1).into_iter().collect()
            }
            EventKind::Create(CreateKind::Folder) => {
                // A folder moved in whole: its files raise no events of their own.
                for path in &event.paths {
                    for file in walk_files(path) {
                        if let Some(key) = store.key_of(&file) {
                            let _ = tx.send((key, Change::Written));
                        }
                    }
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        for path in paths {
            match store.key_of(path) {
                Some(key) if path.is_file() => {
                    let _ = tx.send((key, Change::Written));
                }
                Some(_) => {}
                None => warn!(path = %path.display(), "ignoring a file whose name cannot be a key"),
            }
        }
    })
    .map_err(|source| LocalError::Watch {
        path: dir.to_path_buf(),
        source,
    })?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|source| LocalError::Watch {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(watcher)
}

/// Every entry under `dir` with its type, symbolic links not followed (a linked folder
/// is not descended).
fn walk(dir: &Path) -> Vec<(PathBuf, std::fs::FileType)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(t) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if t.is_dir() {
                stack.push(path.clone());
            }
            out.push((path, t));
        }
    }
    out
}

/// Files under `dir`, symbolic links not followed.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter_map(|(path, t)| t.is_file().then_some(path))
        .collect()
}

/// Says what the start-up scan leaves alone, as the watcher does: files whose names cannot
/// be keys (control characters, backslashes, over 1024 bytes, reserved names) and
/// symbolic links (never followed by the scan: one could lead out of the bucket).
fn report_skipped(store: &FsStore, dir: &Path) {
    for (path, t) in walk(dir) {
        if t.is_symlink() {
            warn!(path = %path.display(), "ignoring a symbolic link")
        } else if t.is_file() && store.key_of(&path).is_none() {
            warn!(path = %path.display(), "ignoring a file whose name cannot be a key")
        }
    }
}
