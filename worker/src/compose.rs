//! The composition root: settings → store (a folder or S3) → renderer → engine (with the
//! CDN removals invalidate, when one is configured) and on-demand path, built in one place
//! for every command.

use std::path::Path;
use std::sync::Arc;

use rendition_aws::cloudfront::CloudFront;
use rendition_aws::s3::S3Store;
use rendition_image::render::RenderError;
use rendition_image::renderer::Renderer;
use rendition_pipeline::cdn::Cdn;
use rendition_pipeline::config::Settings;
use rendition_pipeline::job::Engine;
use rendition_pipeline::ondemand::OnDemand;
use rendition_pipeline::store::{BlobStore, CachedStore, FsStore, StoreError};

use crate::serve::settings::ServeSettings;

/// The bucket name a folder bucket goes by in source GUIDs.
pub const FOLDER_BUCKET: &str = "local";

/// Where the sources and derivatives are.
#[derive(Debug, Clone, Copy)]
pub enum Bucket<'a> {
    /// A local folder (`--local DIR`).
    Folder(&'a Path),
    /// The S3 bucket of the configuration (`s3.*`).
    S3,
}

impl<'a> Bucket<'a> {
    /// `--local DIR` when given, else S3.
    pub fn from_flag(local: Option<&'a Path>) -> Bucket<'a> {
        local.map_or(Bucket::S3, Bucket::Folder)
    }
}

/// Whether a command renders: those that do get the configured renderer (the sandbox by
/// default); the others an in-process one that is never asked to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renders {
    Yes,
    No,
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("opening the bucket {0}")]
    Store(#[from] StoreError),
    #[error("cannot start the renderer: {0}")]
    Renderer(#[from] RenderError),
}

/// A store and the bucket name its source GUIDs use.
pub async fn store(
    settings: &Settings,
    bucket: Bucket<'_>,
) -> Result<(Arc<dyn BlobStore>, String), StoreError> {
    Ok(match bucket {
        Bucket::Folder(dir) => (Arc::new(FsStore::new(dir)?), FOLDER_BUCKET.to_string()),
        Bucket::S3 => (
            Arc::new(S3Store::from_settings(&settings.s3).await),
            settings.s3.bucket.clone(),
        ),
    })
}

/// The renderer a command uses.
pub async fn renderer(settings: &Settings, renders: Renders) -> Result<Renderer, RenderError> {
    match renders {
        Renders::Yes => Renderer::from_settings(&settings.limits, &settings.render).await,
        Renders::No => Ok(Renderer::in_process(&settings.limits, &settings.render)),
    }
}

/// The CDN a removal invalidates: CloudFront when `cdn.cloudfront_distribution_id` is set.
pub async fn cdn(settings: &Settings) -> Option<Arc<dyn Cdn>> {
    let cloudfront = CloudFront::from_settings(&settings.cdn).await?;
    Some(Arc::new(cloudfront))
}

/// `engine` with the configured CDN, if any.
pub async fn with_cdn(engine: Engine, settings: &Settings) -> Engine {
    match cdn(settings).await {
        Some(cdn) => engine.with_cdn(cdn),
        None => engine,
    }
}

/// The eager job over `bucket` (removals in the folder mode invalidate the CDN too).
pub async fn engine(
    settings: Arc<Settings>,
    bucket: Bucket<'_>,
    renders: Renders,
) -> Result<Engine, ComposeError> {
    let (store, name) = store(&settings, bucket).await?;
    let renderer = renderer(&settings, renders).await?;
    let engine = Engine::new(store, Arc::clone(&settings), name, renderer);
    Ok(with_cdn(engine, &settings).await)
}

/// `serve`'s pair: the on-demand path (bounded renders) and an engine for the contact
/// sheets, over one cached store and one renderer.
pub async fn on_demand(
    settings: Arc<Settings>,
    serve: &ServeSettings,
    bucket: Bucket<'_>,
) -> Result<(OnDemand, Engine), ComposeError> {
    let (inner, name) = store(&settings, bucket).await?;
    let store: Arc<dyn BlobStore> = Arc::new(CachedStore::new(
        inner,
        settings.storage.source_prefix.clone(),
        serve.source_cache_bytes,
    ));
    let renderer = renderer(&settings, Renders::Yes).await?;
    let engine = Engine::new(store, Arc::clone(&settings), name, renderer);
    let ondemand = OnDemand::new(engine.clone()).with_render_slots(
        serve.max_renders(),
        std::time::Duration::from_millis(serve.render_queue_ms),
    );
    Ok((ondemand, engine))
}
