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
//!
//! A preset URL names the version of the preset's spec (`thumb.3fa9c2e1.webp`). Only the
//! current version is rendered: a URL of another version (the preset was edited since, or
//! a key written before presets were versioned) is answered from its stored object while
//! that exists, and once it is gone with a redirect to the current version's URL
//! ([`OnDemandError::Superseded`]) — never with bytes of another spec under its name. An
//! old `.auto` URL always redirects: its objects are stored under per-format names its
//! (negotiated) hash does not give.

use std::sync::Arc;

use bytes::Bytes;
use tracing::info;

use crate::config::Settings;
use crate::job::Engine;
use crate::naming::{spec_hash, SourceNames, Variant};
use crate::negotiate::{self, Accepts};
use crate::store::{Object, PutOutcome, StoreError};
use crate::url::{self, UrlError};
use rendition_image::render::{RenderError, VariantRequest};
use rendition_image::spec::{Format, VariantSpec};

/// A derivative ready to send.
#[derive(Debug, Clone)]
pub struct Derivative {
    pub key: String,
    pub body: Bytes,
    pub content_type: String,
    pub etag: String,
    /// Rendered by this request (false: it already existed).
    pub rendered: bool,
    /// Its format was negotiated (`fm=auto`): the answer varies on `Accept`.
    pub vary: bool,
}

impl Derivative {
    /// The same derivative, answering a request whose format was negotiated (`vary`) or
    /// named.
    pub fn varying(self, vary: bool) -> Derivative {
        Derivative { vary, ..self }
    }
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
    /// A preset URL of a spec that is not the preset's current one, whose object is not
    /// stored (collected, or never made): a redirect to the current version's URL.
    #[error("this version of the preset is not stored; its current URL is {location}")]
    Superseded { location: String },
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
            OnDemandError::Superseded { .. } => 302,
        }
    }

    /// A short stable name (the `error` field of HTTP error bodies, metrics;
    /// [`rendition_image::kinds::KINDS`]).
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
            OnDemandError::Superseded { .. } => "superseded",
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
            | OnDemandError::WrongExtension { .. }
            | OnDemandError::Superseded { .. } => false,
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

    /// Answers a request for `path?query` from a client that takes `accepts` (used only
    /// by `fm=auto` variants).
    pub async fn get(
        &self,
        path: &str,
        query: Option<&str>,
        accepts: Accepts,
        now_unix: u64,
    ) -> Result<Derivative, OnDemandError> {
        let verified = self.verify(path, query, now_unix)?;
        self.get_verified(&verified, accepts).await
    }

    /// For a `/latest/{source key}/{preset}` path, the current URL it redirects to (or
    /// why not); `None` for any other path.
    pub async fn latest_for_path(
        &self,
        path: &str,
        now_unix: u64,
    ) -> Option<Result<String, OnDemandError>> {
        Some(match latest_path(path)? {
            Ok((source, preset)) => self.latest(&source, &preset, now_unix).await,
            Err(e) => Err(e),
        })
    }

    /// A render slot (`serve`), waited for at most its bounded time; `None` without
    /// slots (the Lambda: one request per instance).
    async fn slot(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, OnDemandError> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        let acquired =
            tokio::time::timeout(slots.wait, Arc::clone(&slots.semaphore).acquire_owned()).await;
        match acquired {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_)) | Err(_) => Err(OnDemandError::Busy {
                in_flight: slots.max,
            }),
        }
    }

    /// The current URL of `preset` for the source at `source` (`/latest/{source}/{preset}`):
    /// the preset's `.auto` URL when it negotiates its format, else its format's; for
    /// `fm=original`, the source's format, read from its bytes. It names the preset's
    /// current spec (its hash).
    pub async fn latest(
        &self,
        source: &str,
        preset: &str,
        now_unix: u64,
    ) -> Result<String, OnDemandError> {
        let settings = self.settings();
        crate::naming::source_rel(&settings.storage.source_prefix, source)
            .map_err(UrlError::from)?;
        let spec = settings
            .presets
            .get(preset)
            .ok_or_else(|| UrlError::UnknownPreset(preset.to_string()))?;
        let store = self.engine.store();
        let meta = store
            .head(source)
            .await?
            .ok_or_else(|| OnDemandError::SourceMissing {
                key: source.to_string(),
            })?;
        let names = SourceNames::of(
            &settings.storage,
            self.engine.bucket(),
            source,
            meta.version(),
        )
        .map_err(UrlError::from)?;
        let (hash, format) = match spec.formats().as_slice() {
            // The source's own format: from its stored content type when that names an
            // image type we make, else from its bytes, read under a render slot so that
            // redirects cannot hold more sources in memory than renders may.
            [Format::Original] => {
                let named = meta
                    .content_type
                    .as_deref()
                    .and_then(|t| t.strip_prefix("image/"))
                    .and_then(Format::from_extension)
                    .and_then(rendition_image::sniff::SourceFormat::from_format);
                let format = match named {
                    Some(f) => f,
                    None => {
                        let _slot = self.slot().await?;
                        let head = store.get(source, settings.limits.max_input_bytes).await?;
                        rendition_image::sniff::sniff(&head.body).map_err(RenderError::from)?
                    }
                };
                (
                    spec.hash_in(Format::Original),
                    rendition_image::render::output_format(Format::Original, format, false),
                )
            }
            _ if spec.negotiates() => (spec.negotiated_hash(), Format::Auto),
            _ => (spec.hash_in(spec.spec.format), spec.spec.format),
        };
        let ext = format
            .extension()
            .expect("a resolved format has an extension");
        let key = names
            .derivative_key(&Variant::preset(preset, hash), ext)
            .map_err(UrlError::from)?;
        Ok(url::UrlGenerator::new(settings).for_key(&key, now_unix)?)
    }

    /// What a verified URL stands for, for a client that takes `accepts`: the spec to
    /// render and the keys it may already be stored under. An `fm=auto` URL (`….auto`)
    /// negotiates its format; its stored objects carry the extension of the format made.
    pub fn target(
        &self,
        verified: &url::Verified,
        accepts: Accepts,
    ) -> Result<Target, OnDemandError> {
        let parsed = &verified.parsed;
        let mut preset_of = None;
        let (name, spec, offered, negotiates) = match &parsed.variant {
            Variant::Preset { name, .. } => {
                let preset = self
                    .settings()
                    .presets
                    .get(name)
                    .ok_or(UrlError::UnknownPreset(name.clone()))?;
                preset_of = Some(preset);
                (
                    name.clone(),
                    preset.spec.clone(),
                    preset.formats(),
                    preset.negotiates(),
                )
            }
            Variant::Spec(spec) => {
                let offered = if spec.format == Format::Auto {
                    negotiate::AUTO_ORDER.to_vec()
                } else {
                    vec![spec.format]
                };
                (
                    spec.to_string(),
                    spec.clone(),
                    offered,
                    spec.format == Format::Auto,
                )
            }
        };
        let auto_ext = Format::Auto.extension().expect("auto has a URL extension");
        let format = if negotiates && parsed.ext == auto_ext {
            accepts.choose(&offered)
        } else {
            // A named format: one the variant is made in (`fm=original`: the source's,
            // checked once rendered).
            match offered
                .iter()
                .find(|f| f.extension() == Some(parsed.ext.as_str()))
            {
                Some(&f) => f,
                None if offered == [Format::Original] => Format::Original,
                None => {
                    let actual = match offered.as_slice() {
                        [one] => one.extension().unwrap_or("the source's").to_string(),
                        _ => auto_ext.to_string(),
                    };
                    return Err(OnDemandError::WrongExtension {
                        requested: parsed.ext.clone(),
                        actual,
                    });
                }
            }
        };
        let vary = negotiates && parsed.ext == auto_ext;
        let names = SourceNames::of_derived(&self.settings().storage, parsed);
        if let (Some(preset), Variant::Preset { hash, .. }) = (preset_of, &parsed.variant) {
            let current = if vary {
                preset.negotiated_hash()
            } else {
                preset.hash_in(format)
            };
            if hash.as_deref() != Some(current.as_str()) {
                // Another version: only its own stored object answers; else the current.
                let key = names
                    .derivative_key(&Variant::preset(&name, current), &parsed.ext)
                    .map_err(UrlError::from)?;
                return Ok(Target {
                    request: VariantRequest {
                        name,
                        spec: VariantSpec { format, ..spec },
                    },
                    candidates: vec![verified.key.clone()],
                    names,
                    vary: false,
                    superseded_by: Some(key),
                });
            }
        }
        // A preset's stored variant in `format` is named by that format's spec hash.
        let stored_as = |format: Format| match preset_of {
            Some(preset) => Variant::preset(&name, preset.hash_in(format)),
            None => parsed.variant.clone(),
        };
        let candidates = match format {
            // The legacy format depends on the source's alpha: either may be stored.
            Format::Auto => vec![
                names.derivative_key(&stored_as(Format::Auto), "jpg"),
                names.derivative_key(&stored_as(Format::Auto), "png"),
            ],
            Format::Original => vec![Ok(verified.key.clone())],
            f => vec![names.derivative_key(
                &stored_as(f),
                f.extension().expect("a made format has an extension"),
            )],
        }
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(UrlError::from)?;
        Ok(Target {
            request: VariantRequest {
                name,
                spec: VariantSpec { format, ..spec },
            },
            candidates,
            names,
            vary,
            superseded_by: None,
        })
    }

    /// The existing derivative, or a new render of it.
    pub async fn get_verified(
        &self,
        verified: &url::Verified,
        accepts: Accepts,
    ) -> Result<Derivative, OnDemandError> {
        let target = self.target(verified, accepts)?;
        self.get_target(verified, &target).await
    }

    /// [`OnDemand::get_verified`] for a target already resolved ([`OnDemand::target`]).
    pub async fn get_target(
        &self,
        verified: &url::Verified,
        target: &Target,
    ) -> Result<Derivative, OnDemandError> {
        for key in &target.candidates {
            if let Some(existing) = self.existing(key).await? {
                return Ok(existing.varying(target.vary));
            }
        }
        if let Some(current) = &target.superseded_by {
            // Preset URLs need no signature, so no clock.
            let location = url::UrlGenerator::new(self.settings()).for_key(current, 0)?;
            return Err(OnDemandError::Superseded { location });
        }
        Ok(self.render(verified, target).await?.varying(target.vary))
    }

    async fn existing(&self, key: &str) -> Result<Option<Derivative>, OnDemandError> {
        match self.engine.store().get(key, u64::MAX).await {
            Ok(obj) => Ok(Some(Derivative {
                key: key.to_string(),
                content_type: content_type_of(&obj, key),
                etag: obj.meta.etag.clone(),
                body: obj.body,
                rendered: false,
                vary: false,
            })),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn render(
        &self,
        verified: &url::Verified,
        target: &Target,
    ) -> Result<Derivative, OnDemandError> {
        // The slot is held from the source fetch to the store: what it bounds is memory.
        let _slot = self.slot().await?;
        let parsed = &verified.parsed;
        let settings = self.settings();
        let wanted = &target.names;
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
            &settings.storage,
            self.engine.bucket(),
            &source_key,
            source.meta.version(),
        )
        .map_err(UrlError::from)?;
        if current.guid() != wanted.guid() {
            return Err(OnDemandError::Stale { key: source_key });
        }
        let out = self
            .engine
            .renderer()
            .render(
                &verified.key,
                source.body.clone(),
                vec![target.request.clone()],
            )
            .await?;
        let variant = out.into_only()?;
        let format: Format = variant.format;
        let ext = format.extension().expect("resolved format");
        // `fm=original` names its format in the URL: the source's must be that one.
        if target.request.spec.format == Format::Original && ext != parsed.ext {
            return Err(OnDemandError::WrongExtension {
                requested: parsed.ext.clone(),
                actual: ext.to_string(),
            });
        }
        let named = match &parsed.variant {
            // Named by the hash of the spec in the format made (`.auto`: not the URL's).
            Variant::Preset { name, .. } => {
                Variant::preset(name, spec_hash(&target.request.spec.to_string()))
            }
            spec => spec.clone(),
        };
        let key = wanted.derivative_key(&named, ext).map_err(UrlError::from)?;
        let content_type = format.content_type().expect("resolved format").to_string();
        let bytes = Bytes::from(variant.bytes);
        let outcome = self
            .engine
            .put_derivative(&key, bytes.clone(), &content_type)
            .await?;
        if outcome == PutOutcome::AlreadyExists {
            // Someone else stored it first: answer with their bytes, the key's only bytes.
            if let Some(existing) = self.existing(&key).await? {
                return Ok(existing);
            }
        }
        let etag = self
            .engine
            .store()
            .head(&key)
            .await?
            .map(|m| m.etag)
            .unwrap_or_default();
        info!(key = %key, bytes = bytes.len(), "rendered on demand");
        Ok(Derivative {
            key,
            body: bytes,
            content_type,
            etag,
            rendered: true,
            vary: false,
        })
    }
}

/// Where `/latest/{source key}/{preset}` requests start.
pub const LATEST_PREFIX: &str = "/latest/";

/// The source key and preset of a `/latest/…` path (raw, percent-encoded); `None` for
/// any other path.
pub fn latest_path(path: &str) -> Option<Result<(String, String), OnDemandError>> {
    let rest = path.strip_prefix(LATEST_PREFIX)?;
    Some(
        url::decode_path(&format!("/{rest}"))
            .map_err(OnDemandError::from)
            .and_then(|decoded| match decoded.rsplit_once('/') {
                Some((source, preset)) if !source.is_empty() && !preset.is_empty() => {
                    Ok((source.to_string(), preset.to_string()))
                }
                _ => Err(UrlError::BadPath("expected /latest/{source key}/{preset}").into()),
            }),
    )
}

/// What one request for a derivative URL resolves to ([`OnDemand::target`]).
#[derive(Debug, Clone)]
pub struct Target {
    /// The variant to render, its format chosen (`Auto` left: the legacy format).
    pub request: VariantRequest,
    /// Keys it may be stored under already, in order.
    pub candidates: Vec<String>,
    names: SourceNames,
    /// The format was negotiated: the answer carries `Vary` ([`crate::respond::VARY`]).
    pub vary: bool,
    /// A preset URL of another spec than the current one: the current version's key, to
    /// redirect to when the URL's own object is not stored.
    pub superseded_by: Option<String>,
}

impl Target {
    /// What requests that share one render have in common (`serve` coalesces on it).
    pub fn coalescing_key(&self) -> &str {
        &self.candidates[0]
    }
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
rendition_image::classified!(OnDemandError);
