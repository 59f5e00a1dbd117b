//! The eager job: one source version in, every eager preset and the manifest out.
//! Shared by the local watcher, the queue workers and the Lambda triggers.
//!
//! Idempotent: names depend only on the source version and the preset's spec (its hash is
//! in the name), derivatives are written only-if-absent, and the manifest goes last, so a
//! job that finds its manifest listing every wanted preset with its current spec hash has
//! nothing to do, and a job redelivered after a crash redoes only what is missing. A job
//! may name its presets (`rendition backfill`); a manifest that lacks some of them, or
//! lists them made from another spec, gets their variants (re)made under new names and is
//! rewritten.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::try_join_all;
use tracing::{debug, info, Instrument as _};

use crate::cdn::Cdn;
use crate::config::{Preset, Settings};
use crate::manifest::{
    Manifest, ManifestSkipped, ManifestSource, ManifestVariant, MANIFEST_VERSION,
};
use crate::naming::{spec_hash, NameError, SourceNames, Variant};
use crate::store::{BlobStore, Object, ObjectMeta, PutOptions, PutOutcome, StoreError, IMMUTABLE};
use rendition_image::render::{output_format, RenderError, Rendered, Skipped, VariantRequest};
use rendition_image::renderer::Renderer;
use rendition_image::sniff::SourceFormat;
use rendition_image::spec::{Format, VariantSpec};

/// A preset's variants: one per format it is made in, all from the job's one decode.
fn requests_of(name: &str, preset: &Preset) -> Vec<VariantRequest> {
    preset
        .formats()
        .into_iter()
        .map(|format| VariantRequest {
            name: name.to_string(),
            spec: preset.spec_in(format),
        })
        .collect()
}

/// Whether a manifest's variant is `wanted` in its format: the same content type; for
/// `fm=original`, the content type the source's format makes; for the legacy format of
/// `fm=auto`, JPEG or PNG.
fn made_as(listed: &ManifestVariant, wanted: &VariantRequest, source: SourceFormat) -> bool {
    let format = match wanted.spec.format {
        Format::Auto => {
            return ["image/jpeg", "image/png"].contains(&listed.content_type.as_str());
        }
        Format::Original => output_format(Format::Original, source, false),
        other => other,
    };
    format.content_type() == Some(listed.content_type.as_str())
}

/// The format a canonical spec text says (`fm=`), for entries and skips written by
/// earlier versions too.
fn format_of(spec: &str) -> Option<Format> {
    spec.parse::<VariantSpec>().ok().map(|s| s.format)
}

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
    #[error("no preset named {0:?} in this configuration")]
    UnknownPreset(String),
}

impl JobError {
    /// Worth another attempt later (storage hiccups), as opposed to a property of the input.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::Name(e) => e.is_retryable(),
            JobError::Store(e) => e.is_retryable(),
            JobError::Render(e) => e.is_retryable(),
            JobError::Crashed(_) => true,
            JobError::MissingSource { .. } | JobError::UnknownPreset(_) => false,
        }
    }

    /// A short stable name for metrics, headers and failure records
    /// ([`rendition_image::kinds::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            JobError::MissingSource { .. } => rendition_image::kinds::MISSING_SOURCE,
            JobError::Name(e) => e.kind(),
            JobError::Store(e) => e.kind(),
            JobError::Render(e) => e.kind(),
            JobError::Crashed(_) => "crashed",
            JobError::UnknownPreset(_) => "unknown_preset",
        }
    }

    /// HTTP status, for callers that answer with one (the contact sheet).
    pub fn status(&self) -> u16 {
        match self {
            JobError::MissingSource { .. } | JobError::UnknownPreset(_) => 404,
            JobError::Name(e) => e.status(),
            JobError::Store(e) => e.status(),
            JobError::Render(e) => e.status(),
            JobError::Crashed(_) => 500,
        }
    }
}

/// `Cache-Control` of manifests: unlike derivatives they can change (a backfill adds the
/// variants of a new preset), so caches must revalidate.
pub const MANIFEST_CACHE_CONTROL: &str = "public, max-age=60";

/// What a job for one source would have to do.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The names of the source version this was worked out for.
    pub names: SourceNames,
    pub manifest_key: String,
    /// The manifest stored for this source version, if any.
    pub stored: Option<Manifest>,
    /// Wanted presets the stored manifest does not list with their current spec hash (all
    /// of them when there is none).
    pub missing: Vec<VariantRequest>,
}

impl Pending {
    /// Nothing left to render or write.
    pub fn is_done(&self) -> bool {
        self.stored.is_some() && self.missing.is_empty()
    }

    /// Whether some missing variant is listed already, made from another spec (or before
    /// presets were versioned): the job re-renders rather than only adds.
    pub fn rerenders(&self) -> bool {
        let Some(stored) = &self.stored else {
            return false;
        };
        self.missing.iter().any(|w| {
            stored
                .variants
                .iter()
                .any(|v| v.name == w.name && made_as(v, w, stored.source.format))
        })
    }

    /// [`Outcome::AlreadyDone`] when nothing is left to do, else `self` back.
    fn next(self) -> Next {
        match self.stored {
            Some(manifest) if self.missing.is_empty() => Next::Done(Outcome::AlreadyDone {
                manifest_key: self.manifest_key,
                manifest,
            }),
            stored => Next::Render(Pending { stored, ..self }),
        }
    }
}

/// What a job does next for a source version.
enum Next {
    Done(Outcome),
    Render(Pending),
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rendered (some derivatives may already have existed) and the manifest written;
    /// `manifest` lists every variant of the source, including ones made earlier.
    Rendered {
        manifest_key: String,
        manifest: Manifest,
    },
    /// The manifest already listed every wanted preset: nothing rendered. Carries the stored manifest, so a
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
    renderer: Renderer,
    /// Told when a removed source's derivatives are deleted ([`Engine::with_cdn`]).
    cdn: Option<Arc<dyn Cdn>>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn BlobStore>,
        settings: Arc<Settings>,
        bucket: impl Into<String>,
        renderer: Renderer,
    ) -> Engine {
        Engine {
            store,
            settings,
            bucket: bucket.into(),
            renderer,
            cdn: None,
        }
    }

    /// This engine, with the CDN in front of its derived prefix: a removal invalidates the
    /// removed source's cached copies there after deleting them
    /// ([`crate::message::remove_source`]).
    pub fn with_cdn(mut self, cdn: Arc<dyn Cdn>) -> Engine {
        self.cdn = Some(cdn);
        self
    }

    /// The CDN to tell of removals, when one is configured.
    pub fn cdn(&self) -> Option<&Arc<dyn Cdn>> {
        self.cdn.as_ref()
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// Stores one derivative: immutable, only-if-absent (a name never changes bytes). The
    /// one place the eager job and the on-demand path write derivatives.
    pub async fn put_derivative(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<PutOutcome, StoreError> {
        self.store
            .put(
                key,
                bytes,
                PutOptions {
                    content_type: Some(content_type.to_string()),
                    cache_control: Some(IMMUTABLE.to_string()),
                    if_absent: true,
                },
            )
            .await
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
        self.process_presets(key, &[]).await
    }

    /// The presets a job for `presets` renders: those named (each once, in name order),
    /// or every eager preset when `presets` is empty.
    pub fn wanted(&self, presets: &[String]) -> Result<Vec<VariantRequest>, JobError> {
        if presets.is_empty() {
            return Ok(self
                .settings
                .eager_presets()
                .flat_map(|(name, preset)| requests_of(name, preset))
                .collect());
        }
        let names: std::collections::BTreeSet<&String> = presets.iter().collect();
        let mut out = Vec::new();
        for name in names {
            let preset = self
                .settings
                .presets
                .get(name)
                .ok_or_else(|| JobError::UnknownPreset(name.clone()))?;
            out.extend(requests_of(name, preset));
        }
        Ok(out)
    }

    /// What a job for `presets` would find for the current version of `key`, without
    /// reading the source itself: `rendition backfill` uses it to skip what is done.
    pub async fn pending(&self, key: &str, presets: &[String]) -> Result<Pending, JobError> {
        let wanted = self.wanted(presets)?;
        let head = self.head_source(key).await?;
        self.pending_for(key, head.version(), wanted).await
    }

    /// The source's metadata; [`JobError::MissingSource`] when there is none.
    async fn head_source(&self, key: &str) -> Result<ObjectMeta, JobError> {
        self.store
            .head(key)
            .await?
            .ok_or_else(|| JobError::MissingSource {
                key: key.to_string(),
            })
    }

    async fn pending_for(
        &self,
        key: &str,
        version: &str,
        wanted: Vec<VariantRequest>,
    ) -> Result<Pending, JobError> {
        let names = SourceNames::of(&self.settings.storage, &self.bucket, key, version)?;
        let manifest_key = names.manifest_key()?;
        let stored = self.stored_manifest(&manifest_key).await?;
        // Listed as made (in this format) from the current spec (its hash; an entry written
        // before presets were versioned has none, so it is made again under a versioned
        // name), or as skipped with the same spec (the same answer again).
        let missing = wanted
            .into_iter()
            .filter(|w| {
                stored.as_ref().is_none_or(|m| {
                    let spec = w.spec.to_string();
                    let hash = spec_hash(&spec);
                    !m.variants.iter().any(|v| {
                        v.name == w.name && v.spec_hash == hash && made_as(v, w, m.source.format)
                    }) && !m
                        .skipped
                        .iter()
                        .any(|s| s.variant == w.name && s.spec == spec)
                })
            })
            .collect();
        Ok(Pending {
            names,
            manifest_key,
            stored,
            missing,
        })
    }

    /// Renders and stores `presets` (every eager preset when empty) of the source at
    /// `key`, skipping those its manifest already lists, then writes the manifest with
    /// every variant made so far. The steps: what is missing → fetch (once) → render
    /// (one decode) → store the derivatives → merge with the stored manifest → write it.
    pub async fn process_presets(
        &self,
        key: &str,
        presets: &[String],
    ) -> Result<Outcome, JobError> {
        let wanted = self.wanted(presets)?;
        let head = self.head_source(key).await?;
        let pending = match self
            .pending_for(key, head.version(), wanted.clone())
            .await?
            .next()
        {
            Next::Done(done) => {
                debug!(key, "manifest lists every wanted preset, nothing to do");
                return Ok(done);
            }
            Next::Render(pending) => pending,
        };
        let source = self.fetch_source(key).await?;
        // The object may have been replaced between HEAD and GET: name what we read.
        let version = source.meta.version().to_string();
        let pending = if version == head.version() {
            pending
        } else {
            match self.pending_for(key, &version, wanted).await?.next() {
                Next::Done(done) => return Ok(done),
                Next::Render(pending) => pending,
            }
        };
        let Pending {
            names,
            manifest_key,
            stored,
            missing: requests,
        } = pending;

        let started = std::time::Instant::now();
        let output = self.renderer.render(key, source.body, requests).await?;
        let render_ms = started.elapsed().as_millis();

        let made = self.store_derivatives(&names, output.variants).await?;
        let skipped = skipped_entries(key, output.skipped);
        let updating = stored.is_some();
        let stored_placeholder = stored.as_ref().and_then(|m| m.placeholder.clone());
        let (variants, skipped) = merge_with_stored(made, skipped, stored);
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            // A job that adds presets keeps the placeholder it found, if this one has none.
            placeholder: output.placeholder.or(stored_placeholder),
            source: ManifestSource {
                bucket: self.bucket.clone(),
                key: key.to_string(),
                guid: names.guid(),
                version,
                width: output.source.size.width,
                height: output.source.size.height,
                format: output.source.format,
                bytes: output.source.bytes,
            },
            variants,
            skipped,
        };
        self.put_manifest(&manifest_key, &manifest, updating)
            .await?;
        info!(key, guid = %names.guid(), variants = manifest.variants.len(), render_ms, "rendered");
        Ok(Outcome::Rendered {
            manifest_key,
            manifest,
        })
    }

    /// The source's bytes, at most `limits.max_input_bytes` of them.
    async fn fetch_source(&self, key: &str) -> Result<Object, JobError> {
        match self
            .store
            .get(key, self.settings.limits.max_input_bytes)
            .instrument(tracing::info_span!("fetch", key))
            .await
        {
            Ok(obj) => Ok(obj),
            Err(StoreError::NotFound { .. }) => Err(JobError::MissingSource {
                key: key.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes every rendered variant under its versioned name (concurrently), and says
    /// what the manifest lists for each.
    async fn store_derivatives(
        &self,
        names: &SourceNames,
        variants: Vec<Rendered>,
    ) -> Result<Vec<ManifestVariant>, JobError> {
        let mut entries = Vec::with_capacity(variants.len());
        let mut puts = Vec::with_capacity(variants.len());
        for v in variants {
            let ext = v
                .format
                .extension()
                .expect("resolved formats have an extension");
            let content_type = v
                .format
                .content_type()
                .expect("resolved formats have a content type");
            let spec = v.spec.to_string();
            let hash = spec_hash(&spec);
            let dkey = names.derivative_key(&Variant::preset(&v.name, hash.clone()), ext)?;
            entries.push(ManifestVariant {
                name: v.name,
                spec,
                spec_hash: hash,
                key: dkey.clone(),
                width: v.size.width,
                height: v.size.height,
                bytes: v.bytes.len() as u64,
                content_type: content_type.to_string(),
            });
            let span = tracing::info_span!("put", key = dkey.as_str());
            puts.push(
                async move {
                    self.put_derivative(&dkey, Bytes::from(v.bytes), content_type)
                        .await
                }
                .instrument(span),
            );
        }
        try_join_all(puts).await?;
        Ok(entries)
    }

    /// Writes `manifest` last: its presence means "done". A first manifest is written
    /// only-if-absent; one that gains presets (`updating`, backfill) replaces the stored one.
    async fn put_manifest(
        &self,
        manifest_key: &str,
        manifest: &Manifest,
        updating: bool,
    ) -> Result<(), JobError> {
        let body = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
        self.store
            .put(
                manifest_key,
                Bytes::from(body),
                PutOptions {
                    content_type: Some("application/json".into()),
                    cache_control: Some(MANIFEST_CACHE_CONTROL.into()),
                    if_absent: !updating,
                },
            )
            .instrument(tracing::info_span!("put", key = manifest_key))
            .await?;
        Ok(())
    }
}

/// Variants refused on their own: listed, with why, while their siblings are written.
fn skipped_entries(key: &str, skipped: Vec<Skipped>) -> Vec<ManifestSkipped> {
    skipped
        .into_iter()
        .map(|s| {
            info!(key, variant = %s.name, kind = s.error.kind(), reason = %s.error, "variant skipped");
            ManifestSkipped {
                variant: s.name,
                spec: s.spec.to_string(),
                kind: s.error.kind().to_string(),
                reason: s.error.to_string(),
            }
        })
        .collect()
}

/// This job's entries and skips, plus those of earlier jobs (other presets, other
/// formats) that this one did not make or skip again; each list in name order. An
/// earlier entry or skip of the same preset in the same format is replaced, whatever its
/// spec was then (a changed spec replaces the old answer).
fn merge_with_stored(
    mut entries: Vec<ManifestVariant>,
    mut skipped: Vec<ManifestSkipped>,
    stored: Option<Manifest>,
) -> (Vec<ManifestVariant>, Vec<ManifestSkipped>) {
    if let Some(stored) = stored {
        let again = |name: &str, spec: &str| {
            let format = format_of(spec);
            entries
                .iter()
                .any(|e| e.name == name && format_of(&e.spec) == format)
                || skipped
                    .iter()
                    .any(|s| s.variant == name && format_of(&s.spec) == format)
        };
        let old_entries: Vec<ManifestVariant> = stored
            .variants
            .into_iter()
            .filter(|v| !again(&v.name, &v.spec) && !entries.iter().any(|e| e.key == v.key))
            .collect();
        let old_skips: Vec<ManifestSkipped> = stored
            .skipped
            .into_iter()
            .filter(|s| !again(&s.variant, &s.spec))
            .collect();
        entries.extend(old_entries);
        skipped.extend(old_skips);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    skipped.sort_by(|a, b| a.variant.cmp(&b.variant));
    (entries, skipped)
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
rendition_image::classified!(JobError);
