//! The on-demand path: a request for a derivative that may not exist yet. Shared by the
//! Lambda handler and `rendition serve`.
//!
//! 1. verify the URL ([`crate::url::verify`]): preset, or a signed spec;
//! 2. if the derivative exists (the eager worker or another request made it), return it;
//! 3. find the source from the URL alone (`{source_prefix}{source_rel}`), and check that its
//!    current version still has the GUID in the URL — a replaced source has new names, and
//!    the old URL must never return other bytes, so it is a 404;
//! 4. render that one variant, store it only-if-absent, and return what is stored (if a
//!    concurrent render won the race, its bytes), so a URL always returns the same bytes.

use std::sync::Arc;

use bytes::Bytes;
use tracing::info;

use crate::config::Settings;
use crate::job::Engine;
use crate::naming::{SourceNames, Variant};
use crate::render::{RenderError, VariantRequest};
use crate::spec::Format;
use crate::store::{Object, PutOutcome, StoreError};
use crate::url::{self, UrlError};

/// A derivative ready to send.
#[derive(Debug, Clone)]
pub struct Derivative {
    pub key: String,
    pub body: Bytes,
    pub content_type: String,
    pub etag: String,
    /// Rendered by this request (false: it already existed).
    pub rendered: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OnDemandError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("no source at {key:?}")]
    SourceMissing { key: String },
    #[error("the source at {key:?} has changed since this URL was made")]
    Stale { key: String },
    #[error("this variant is .{actual}, not .{requested}")]
    WrongExtension { requested: String, actual: String },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("render task failed: {0}")]
    Crashed(String),
    /// Every render slot stayed taken for the whole bounded wait.
    #[error("busy: {in_flight} renders in progress; try again shortly")]
    Busy { in_flight: usize },
}

impl OnDemandError {
    /// HTTP status: 4xx for anything about the request or its source, 503 when storage or
    /// the renderer is down or busy (worth retrying), 500 only for our own failures.
    pub fn status(&self) -> u16 {
        match self {
            OnDemandError::Url(e) => e.status(),
            OnDemandError::SourceMissing { .. }
            | OnDemandError::Stale { .. }
            | OnDemandError::WrongExtension { .. } => 404,
            OnDemandError::Render(e) => e.status(),
            OnDemandError::Store(e) => e.status(),
            OnDemandError::Busy { .. } => 503,
            OnDemandError::Crashed(_) => 500,
        }
    }

    /// A short stable name (the `error` field of HTTP error bodies, metrics;
    /// [`crate::kinds::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            OnDemandError::Url(e) => e.kind(),
            OnDemandError::SourceMissing { .. } => "source_missing",
            OnDemandError::Stale { .. } => "stale_url",
            OnDemandError::WrongExtension { .. } => "wrong_extension",
            OnDemandError::Render(e) => e.kind(),
            OnDemandError::Store(e) => e.kind(),
            OnDemandError::Crashed(_) => "crashed",
            OnDemandError::Busy { .. } => "busy",
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            OnDemandError::Url(e) => e.is_retryable(),
            OnDemandError::Store(e) => e.is_retryable(),
            OnDemandError::Render(e) => e.is_retryable(),
            OnDemandError::Crashed(_) | OnDemandError::Busy { .. } => true,
            OnDemandError::SourceMissing { .. }
            | OnDemandError::Stale { .. }
            | OnDemandError::WrongExtension { .. } => false,
        }
    }
}

/// Serves derivatives from the store of an [`Engine`] — the one renderer bound to one
/// store that the eager job uses too.
#[derive(Clone)]
pub struct OnDemand {
    engine: Engine,
    slots: Option<RenderSlots>,
}

/// A bound on renders at once, with a bounded wait for a slot (`rendition serve`).
#[derive(Clone)]
struct RenderSlots {
    semaphore: Arc<tokio::sync::Semaphore>,
    max: usize,
    wait: std::time::Duration,
}

fn content_type_of(obj: &Object, key: &str) -> String {
    obj.meta
        .content_type
        .clone()
        .or_else(|| crate::store::content_type_for(key).map(str::to_string))
        .unwrap_or_else(|| "application/octet-stream".into())
}

impl OnDemand {
    pub fn new(engine: Engine) -> OnDemand {
        OnDemand {
            engine,
            slots: None,
        }
    }

    /// The engine whose store and renderer this serves from.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// At most `max` misses fetch and render at once; one that waits longer than `wait`
    /// for a slot gets [`OnDemandError::Busy`] (503 + `Retry-After`) instead of memory.
    pub fn with_render_slots(mut self, max: usize, wait: std::time::Duration) -> OnDemand {
        self.slots = Some(RenderSlots {
            semaphore: Arc::new(tokio::sync::Semaphore::new(max.max(1))),
            max: max.max(1),
            wait,
        });
        self
    }

    pub fn settings(&self) -> &Settings {
        self.engine.settings()
    }

    /// Verifies the URL; the derivative key it names.
    pub fn verify(
        &self,
        path: &str,
        query: Option<&str>,
        now_unix: u64,
    ) -> Result<url::Verified, OnDemandError> {
        Ok(url::verify(self.settings(), path, query, now_unix)?)
    }

    /// Answers a request for `path?query`.
    pub async fn get(
        &self,
        path: &str,
        query: Option<&str>,
        now_unix: u64,
    ) -> Result<Derivative, OnDemandError> {
        let verified = self.verify(path, query, now_unix)?;
        self.get_verified(&verified).await
    }

    /// The existing derivative, or a new render of it.
    pub async fn get_verified(
        &self,
        verified: &url::Verified,
    ) -> Result<Derivative, OnDemandError> {
        let key = &verified.key;
        if let Some(existing) = self.existing(key).await? {
            return Ok(existing);
        }
        self.render(verified).await
    }

    async fn existing(&self, key: &str) -> Result<Option<Derivative>, OnDemandError> {
        match self.engine.store().get(key, u64::MAX).await {
            Ok(obj) => Ok(Some(Derivative {
                key: key.to_string(),
                content_type: content_type_of(&obj, key),
                etag: obj.meta.etag.clone(),
                body: obj.body,
                rendered: false,
            })),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn render(&self, verified: &url::Verified) -> Result<Derivative, OnDemandError> {
        // The slot is held from the source fetch to the store: what it bounds is memory.
        let _slot = match &self.slots {
            None => None,
            Some(slots) => {
                let acquired =
                    tokio::time::timeout(slots.wait, Arc::clone(&slots.semaphore).acquire_owned())
                        .await;
                match acquired {
                    Ok(Ok(permit)) => Some(permit),
                    Ok(Err(_)) | Err(_) => {
                        return Err(OnDemandError::Busy {
                            in_flight: slots.max,
                        })
                    }
                }
            }
        };
        let parsed = &verified.parsed;
        let settings = self.settings();
        let storage = &settings.storage;
        let wanted = SourceNames::of_derived(storage, parsed);
        let source_key = wanted.source_key().to_string();
        let source = match self
            .engine
            .store()
            .get(&source_key, settings.limits.max_input_bytes)
            .await
        {
            Ok(obj) => obj,
            Err(StoreError::NotFound { .. }) => {
                return Err(OnDemandError::SourceMissing { key: source_key })
            }
            Err(e) => return Err(e.into()),
        };
        let current = SourceNames::of(
            storage,
            self.engine.bucket(),
            &source_key,
            source.meta.version(),
        )
        .map_err(UrlError::from)?;
        if current.guid() != wanted.guid() {
            return Err(OnDemandError::Stale { key: source_key });
        }
        let (name, spec) = match &parsed.variant {
            Variant::Preset(name) => {
                let preset = settings
                    .presets
                    .get(name)
                    .ok_or(UrlError::UnknownPreset(name.clone()))?;
                (name.clone(), preset.spec.clone())
            }
            Variant::Spec(spec) => (spec.to_string(), spec.clone()),
        };
        // Refuse a wrong extension before spending a render on it, when the spec says it.
        if let Some(ext) = spec.format.extension() {
            if ext != parsed.ext {
                return Err(OnDemandError::WrongExtension {
                    requested: parsed.ext.clone(),
                    actual: ext.to_string(),
                });
            }
        }
        let request = VariantRequest { name, spec };
        let out = self
            .engine
            .renderer()
            .render(&verified.key, source.body.clone(), vec![request])
            .await?;
        let variant = out.into_only()?;
        let format: Format = variant.format;
        let ext = format.extension().expect("resolved format");
        if ext != parsed.ext {
            return Err(OnDemandError::WrongExtension {
                requested: parsed.ext.clone(),
                actual: ext.to_string(),
            });
        }
        let content_type = format.content_type().expect("resolved format").to_string();
        let bytes = Bytes::from(variant.bytes);
        let outcome = self
            .engine
            .put_derivative(&verified.key, bytes.clone(), &content_type)
            .await?;
        if outcome == PutOutcome::AlreadyExists {
            // Someone else stored it first: answer with their bytes, the URL's only bytes.
            if let Some(existing) = self.existing(&verified.key).await? {
                return Ok(existing);
            }
        }
        let etag = self
            .engine
            .store()
            .head(&verified.key)
            .await?
            .map(|m| m.etag)
            .unwrap_or_default();
        info!(key = %verified.key, bytes = bytes.len(), "rendered on demand");
        Ok(Derivative {
            key: verified.key.clone(),
            body: bytes,
            content_type,
            etag,
            rendered: true,
        })
    }
}
