//! What a cold start builds once and every invocation shares.

use std::sync::Arc;

use rendition_core::config::Settings;
use rendition_core::job::Engine;
use rendition_core::ondemand::OnDemand;
use rendition_core::store::{BlobStore, S3Store};
use rendition_core::url::UrlGenerator;

/// The function's state: read-only after the cold start.
pub struct App {
    pub settings: Arc<Settings>,
    /// The on-demand path (HTTP triggers).
    pub ondemand: OnDemand,
    /// The eager job (S3 and SQS triggers).
    pub engine: Engine,
    /// Derivative URLs (redirects of responses over Lambda's size limit).
    pub urls: UrlGenerator,
}

impl App {
    /// An app over any store; `bucket` names it in source GUIDs.
    pub fn new(settings: Settings, store: Arc<dyn BlobStore>, bucket: impl Into<String>) -> App {
        let bucket = bucket.into();
        let settings = Arc::new(settings);
        App {
            ondemand: OnDemand::new(Arc::clone(&store), Arc::clone(&settings), bucket.clone()),
            engine: Engine::new(store, Arc::clone(&settings), bucket),
            urls: UrlGenerator::new(&settings),
            settings,
        }
    }

    /// The production app: S3 as configured in `settings.s3` (credentials from the
    /// standard AWS chain, i.e. the function's execution role).
    pub async fn from_settings(settings: Settings) -> App {
        let store = S3Store::from_settings(&settings.s3).await;
        let bucket = settings.s3.bucket.clone();
        App::new(settings, Arc::new(store), bucket)
    }
}
