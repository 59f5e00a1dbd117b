//! The eager job: one source version in, every eager preset and the manifest out.
//! Shared by the local watcher, the queue workers and the Lambda triggers.
//!
//! Idempotent: names depend only on the source version and the preset, derivatives are
//! written only-if-absent, and the manifest goes last, so a job that finds its manifest
//! has nothing to do, and a job redelivered after a crash redoes only what is missing.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::try_join_all;
use tracing::{debug, info};

use crate::config::Settings;
use crate::manifest::{Manifest, ManifestSource, ManifestVariant};
use crate::naming::{self, NameError, SourceId, Variant};
use crate::render::{self, RenderError, VariantRequest};
use crate::store::{BlobStore, PutOptions, StoreError, IMMUTABLE};

/// Why a job failed, classified for the queue: retry or dead-letter.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("source {key:?} does not exist")]
    MissingSource { key: String },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("render task failed: {0}")]
    Crashed(String),
}

impl JobError {
    /// Worth another attempt later (storage hiccups), as opposed to a property of the input.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::Store(e) => e.is_retryable(),
            JobError::Crashed(_) => true,
            JobError::MissingSource { .. } | JobError::Name(_) | JobError::Render(_) => false,
        }
    }

    /// A short stable name for metrics, headers and failure records.
    pub fn kind(&self) -> &'static str {
        match self {
            JobError::MissingSource { .. } => "missing_source",
            JobError::Name(_) => "invalid_key",
            JobError::Store(StoreError::TooLarge { .. }) => "input_too_large",
            JobError::Store(StoreError::InvalidKey { .. }) => "invalid_key",
            JobError::Store(StoreError::NotFound { .. }) => "missing_source",
            JobError::Store(StoreError::Unavailable(_)) => "storage_unavailable",
            JobError::Store(StoreError::Other(_)) => "storage_error",
            JobError::Render(e) => e.kind(),
            JobError::Crashed(_) => "crashed",
        }
    }
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rendered (some derivatives may already have existed) and the manifest written.
    Rendered {
        manifest_key: String,
        manifest: Manifest,
    },
    /// The manifest already existed: nothing rendered. Carries the stored manifest, so a
    /// redelivered job can still announce completion (at-least-once).
    AlreadyDone {
        manifest_key: String,
        manifest: Manifest,
    },
}

/// Runs eager jobs against one store.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn BlobStore>,
    settings: Arc<Settings>,
    bucket: String,
}

impl Engine {
    pub fn new(
        store: Arc<dyn BlobStore>,
        settings: Arc<Settings>,
        bucket: impl Into<String>,
    ) -> Engine {
        Engine {
            store,
            settings,
            bucket: bucket.into(),
        }
    }

    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The manifest at `key`, if one is stored. One that does not parse (written by an
    /// incompatible version, or damaged) counts as absent, so the job is redone.
    async fn stored_manifest(&self, key: &str) -> Result<Option<Manifest>, JobError> {
        match self.store.get(key, 16 * 1024 * 1024).await {
            Ok(obj) => Ok(serde_json::from_slice(&obj.body).ok()),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Renders and stores every eager preset of the source at `key`, then its manifest.
    pub async fn process(&self, key: &str) -> Result<Outcome, JobError> {
        let storage = &self.settings.storage;
        let rel = naming::source_rel(&storage.source_prefix, key)?;
        let head = self
            .store
            .head(key)
            .await?
            .ok_or_else(|| JobError::MissingSource {
                key: key.to_string(),
            })?;
        let id = |version: &str| SourceId {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            version: version.to_string(),
        };
        let guid = naming::source_guid(&id(head.version()));
        let manifest_key = naming::manifest_key(&storage.derived_prefix, rel, guid)?;
        if let Some(manifest) = self.stored_manifest(&manifest_key).await? {
            debug!(key, %guid, "manifest exists, nothing to do");
            return Ok(Outcome::AlreadyDone {
                manifest_key,
                manifest,
            });
        }

        let source = match self
            .store
            .get(key, self.settings.limits.max_input_bytes)
            .await
        {
            Ok(obj) => obj,
            Err(StoreError::NotFound { .. }) => {
                return Err(JobError::MissingSource {
                    key: key.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        // The object may have been replaced between HEAD and GET: name what we read.
        let version = source.meta.version().to_string();
        let guid = naming::source_guid(&id(&version));
        let manifest_key = naming::manifest_key(&storage.derived_prefix, rel, guid)?;

        let requests: Vec<VariantRequest> = self
            .settings
            .eager_presets()
            .map(|(name, preset)| VariantRequest {
                name: name.to_string(),
                spec: preset.spec.clone(),
            })
            .collect();
        let body = source.body.clone();
        let limits = self.settings.limits.clone();
        let render_settings = self.settings.render.clone();
        let started = std::time::Instant::now();
        let output = tokio::task::spawn_blocking(move || {
            render::render(&body, &requests, &limits, &render_settings)
        })
        .await
        .map_err(|e| JobError::Crashed(e.to_string()))??;
        let render_ms = started.elapsed().as_millis();

        let mut entries = Vec::with_capacity(output.variants.len());
        let mut puts = Vec::with_capacity(output.variants.len());
        for v in output.variants {
            let ext = v
                .format
                .extension()
                .expect("resolved formats have an extension");
            let content_type = v
                .format
                .content_type()
                .expect("resolved formats have a content type");
            let dkey = naming::derivative_key(
                &storage.derived_prefix,
                rel,
                guid,
                &Variant::Preset(v.name.clone()),
                ext,
            )?;
            entries.push(ManifestVariant {
                name: v.name,
                spec: v.spec.to_string(),
                key: dkey.clone(),
                width: v.size.width,
                height: v.size.height,
                bytes: v.bytes.len() as u64,
                content_type: content_type.to_string(),
            });
            let store = Arc::clone(&self.store);
            puts.push(async move {
                store
                    .put(
                        &dkey,
                        Bytes::from(v.bytes),
                        PutOptions {
                            content_type: Some(content_type.to_string()),
                            cache_control: Some(IMMUTABLE.to_string()),
                            if_absent: true,
                        },
                    )
                    .await
            });
        }
        try_join_all(puts).await?;

        let manifest = Manifest {
            source: ManifestSource {
                bucket: self.bucket.clone(),
                key: key.to_string(),
                guid,
                version,
                width: output.source.size.width,
                height: output.source.size.height,
                format: output.source.format,
                bytes: output.source.bytes,
            },
            variants: entries,
        };
        let body = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        self.store
            .put(
                &manifest_key,
                Bytes::from(body),
                PutOptions {
                    content_type: Some("application/json".into()),
                    cache_control: Some(IMMUTABLE.into()),
                    if_absent: true,
                },
            )
            .await?;
        info!(key, %guid, variants = manifest.variants.len(), render_ms, "rendered");
        Ok(Outcome::Rendered {
            manifest_key,
            manifest,
        })
    }
}
