//! `rendition backfill (--preset NAME | --changed) [--prefix P] [--dry-run]`: after a
//! preset is added or edited, give every existing source its (current) variant.
//!
//! Lists the sources under the source prefix (and `--prefix`), asks the engine which of
//! them lack the preset as it is now (their manifest does not list it, or lists it made
//! from another spec — another spec hash, or none: written before presets were
//! versioned; a source without a manifest lacks everything), and for each of those either
//! enqueues a job document (`schemas/job.schema.json`, `origin = "backfill"`,
//! `presets = [NAME]`, or `[]` for `--changed`: every eager preset) on the work queue the
//! workers consume (RabbitMQ: persistent, publisher-confirmed, straight to the work queue;
//! SQS: `SendMessage`), or, on a folder bucket (`--local`), renders it in place. The
//! worker renders only what is missing under the current names and rewrites the manifest;
//! the variants of the old spec stay stored, so their URLs keep their bytes. The summary
//! counts the sources that only gain variants (`added`) apart from those re-rendered
//! because a preset changed (`re-rendered`).
//!
//! Resumable: what is done is skipped, so after an interruption the same command picks
//! up where it stopped (jobs already enqueued but not yet processed are enqueued again,
//! which is harmless: jobs are idempotent). Enqueues are paced by `--rate` per second.
//! An error of the queue or the store (a broker or S3 outage) stops the run; a source
//! that vanished meanwhile, or (in place) cannot be rendered, is counted as failed and
//! the run goes on.

use std::time::Duration;

use aws_sdk_sqs::Client as SqsClient;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rendition_pipeline::event::{self, Action, Job, Origin};
use rendition_pipeline::job::{Engine, JobError, Outcome};
use rendition_pipeline::store::StoreError;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::rabbit::{JobPublisher, RabbitError};

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    UnknownPreset(JobError),
    #[error("--prefix {prefix:?} is not under the source prefix {source_prefix:?}")]
    Prefix {
        prefix: String,
        source_prefix: String,
    },
    #[error("listing sources: {0}")]
    List(StoreError),
    #[error("{key}: {source}")]
    Store { key: String, source: JobError },
    #[error(transparent)]
    Rabbit(#[from] RabbitError),
    #[error("sending to SQS queue {queue}: {message}")]
    Sqs { queue: String, message: String },
    #[error("encoding a job document: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where the jobs go.
pub enum Sink {
    /// Count and list what would be enqueued; change nothing.
    DryRun,
    /// Render in this process (a folder bucket has no queue).
    InPlace,
    Rabbit(Box<JobPublisher>),
    Sqs {
        client: SqsClient,
        queue_url: String,
    },
}

impl Sink {
    fn verb(&self) -> &'static str {
        match self {
            Sink::DryRun => "would_enqueue",
            Sink::InPlace => "rendered",
            Sink::Rabbit(_) | Sink::Sqs { .. } => "enqueued",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The preset to backfill; `None` (`--changed`): every eager preset.
    pub preset: Option<String>,
    /// A key prefix; one not starting with the source prefix is taken relative to it.
    pub prefix: String,
    /// Jobs per second; 0 means unpaced.
    pub rate: u32,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// What a run found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Sources listed under the prefix.
    pub sources: usize,
    /// Sources whose manifest already lists the preset.
    pub done: usize,
    /// Sources enqueued (rendered in place; with a dry run: that would be enqueued).
    pub missing: usize,
    /// Of `missing`, sources whose manifest lists none of the missing variants yet.
    pub added: usize,
    /// Of `missing`, sources with a variant listed but made from another spec.
    pub rerendered: usize,
    /// Sources that vanished meanwhile or (in place) could not be rendered.
    pub failed: usize,
}

impl Summary {
    /// The closing line, e.g. `backfill: preset=thumb sources=120 done=100 enqueued=20
    /// added=15 re-rendered=5 failed=0` (`preset=*` for `--changed`).
    pub fn line(&self, preset: Option<&str>, sink: &Sink) -> String {
        format!(
            "backfill: preset={} sources={} done={} {}={} added={} re-rendered={} failed={}",
            preset.unwrap_or("*"),
            self.sources,
            self.done,
            sink.verb(),
            self.missing,
            self.added,
            self.rerendered,
            self.failed
        )
    }

    /// Counts a source taken: `rerenders` when a preset of it changed.
    fn took(&mut self, rerenders: bool) {
        self.missing += 1;
        if rerenders {
            self.rerendered += 1;
        } else {
            self.added += 1;
        }
    }
}

/// The full key prefix to list: `prefix` if it is under the source prefix, else
/// `source_prefix + prefix`.
pub fn list_prefix(source_prefix: &str, prefix: &str) -> String {
    if prefix.starts_with(source_prefix) {
        prefix.to_string()
    } else {
        format!("{source_prefix}{prefix}")
    }
}

/// Runs one backfill pass; returns its summary. `on_missing` is told each source that
/// lacks the preset (the dry run prints them).
pub async fn run(
    engine: &Engine,
    sink: &Sink,
    options: &Options,
    mut on_missing: impl FnMut(&str),
) -> Result<Summary, BackfillError> {
    let presets: Vec<String> = options.preset.iter().cloned().collect();
    let label = options.preset.as_deref().unwrap_or("*");
    // An unknown preset is refused before anything is listed or sent.
    engine
        .wanted(&presets)
        .map_err(BackfillError::UnknownPreset)?;
    let storage = &engine.settings().storage;
    let prefix = list_prefix(&storage.source_prefix, &options.prefix);
    if event::ignore_reason(&format!("{prefix}x"), storage).is_some() {
        return Err(BackfillError::Prefix {
            prefix: options.prefix.clone(),
            source_prefix: storage.source_prefix.clone(),
        });
    }
    let mut sources: Vec<_> = engine
        .store()
        .list(&prefix)
        .await
        .map_err(BackfillError::List)?
        .into_iter()
        .filter(|meta| event::ignore_reason(&meta.key, storage).is_none())
        .collect();
    sources.sort_by(|a, b| a.key.cmp(&b.key));

    let mut summary = Summary {
        sources: sources.len(),
        ..Summary::default()
    };
    info!(
        preset = label,
        prefix,
        sources = sources.len(),
        "backfill: listed sources"
    );
    let bar = progress_bar("backfill", options.progress, sources.len() as u64);
    let mut pace = (options.rate > 0).then(|| {
        let mut interval = tokio::time::interval_at(
            Instant::now(),
            Duration::from_secs_f64(1.0 / f64::from(options.rate)),
        );
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    });

    for meta in &sources {
        let key = meta.key.as_str();
        let pending = match engine.pending(key, &presets).await {
            Ok(pending) => pending,
            Err(JobError::MissingSource { .. }) => {
                warn!(key, "source vanished while backfilling");
                summary.failed += 1;
                bar.inc(1);
                continue;
            }
            Err(source) => {
                return Err(BackfillError::Store {
                    key: key.to_string(),
                    source,
                })
            }
        };
        if pending.is_done() {
            debug!(key, "already has the preset");
            summary.done += 1;
            bar.inc(1);
            continue;
        }
        on_missing(key);
        let rerenders = pending.rerenders();
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let job = Job {
            action: Action::Created,
            bucket: engine.bucket().to_string(),
            key: key.to_string(),
            version_id: meta.version_id.clone(),
            etag: Some(meta.etag.trim_matches('"').to_string()),
            size: Some(meta.size),
            event_time: None,
            origin: Origin::Backfill,
            presets: presets.clone(),
        };
        match sink {
            Sink::DryRun => summary.took(rerenders),
            Sink::InPlace => match engine.process_presets(key, &presets).await {
                Ok(Outcome::Rendered { .. } | Outcome::AlreadyDone { .. }) => {
                    summary.took(rerenders)
                }
                Err(e) if e.is_retryable() => {
                    return Err(BackfillError::Store {
                        key: key.to_string(),
                        source: e,
                    })
                }
                Err(e) => {
                    warn!(key, kind = e.kind(), error = %e, "cannot render the preset");
                    summary.failed += 1;
                }
            },
            Sink::Rabbit(publisher) => {
                publisher.publish(&serde_json::to_vec(&job)?).await?;
                summary.took(rerenders);
            }
            Sink::Sqs { client, queue_url } => {
                client
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(serde_json::to_string(&job)?)
                    .send()
                    .await
                    .map_err(|e| BackfillError::Sqs {
                        queue: queue_url.clone(),
                        message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                    })?;
                summary.took(rerenders);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// A progress bar over `len` sources for the command `name` (backfill, gc), drawn only
/// when `enabled`.
pub(crate) fn progress_bar(name: &str, enabled: bool, len: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    // Drawn only when stderr is a terminal (indicatif hides it otherwise).
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{spinner}} {name} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} sources ({{per_sec}}, eta {{eta}})"
    )) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::list_prefix;

    #[test]
    fn prefixes_are_full_keys_or_relative_to_the_source_prefix() {
        assert_eq!(list_prefix("originals/", ""), "originals/");
        assert_eq!(list_prefix("originals/", "2024/"), "originals/2024/");
        assert_eq!(
            list_prefix("originals/", "originals/2024/"),
            "originals/2024/"
        );
        assert_eq!(list_prefix("", "cats/"), "cats/");
    }
}
