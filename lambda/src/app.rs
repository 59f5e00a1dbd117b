//! What a cold start builds once and every invocation shares.

use std::sync::Arc;

use rendition_aws::cloudfront::CloudFront;
use rendition_aws::s3::S3Store;
use rendition_aws::sns::SnsPublisher;
use rendition_image::render::RenderError;
use rendition_image::renderer::Renderer;
use rendition_pipeline::config::Settings;
use rendition_pipeline::job::Engine;
use rendition_pipeline::ondemand::OnDemand;
use rendition_pipeline::store::BlobStore;
use rendition_pipeline::url::UrlGenerator;

use crate::emf::Emitter;

/// The function's state: read-only after the cold start.
pub struct App {
    pub settings: Arc<Settings>,
    /// The on-demand path (HTTP triggers).
    pub ondemand: OnDemand,
    /// The eager job (S3 and SQS triggers); with the CDN its removals invalidate, when
    /// `cdn.cloudfront_distribution_id` is set.
    pub engine: Engine,
    /// Derivative URLs (redirects of responses over Lambda's size limit).
    pub urls: UrlGenerator,
    /// CloudWatch metrics (EMF lines on stdout), one line per request or job.
    pub emf: Emitter,
    /// Where the eager triggers' outcome events go (`events.sns_topic_arn`); none: nowhere.
    pub events: Option<SnsPublisher>,
}

impl App {
    /// An app over any store; `bucket` names it in source GUIDs.
    pub fn new(
        settings: Settings,
        store: Arc<dyn BlobStore>,
        bucket: impl Into<String>,
        renderer: Renderer,
    ) -> App {
        let bucket = bucket.into();
        let settings = Arc::new(settings);
        let engine = Engine::new(store, Arc::clone(&settings), bucket, renderer);
        App {
            ondemand: OnDemand::new(engine.clone()),
            engine,
            urls: UrlGenerator::new(&settings),
            settings,
            emf: Emitter::stdout(),
            events: None,
        }
    }

    /// The production app: S3 as configured in `settings.s3` (credentials from the
    /// standard AWS chain, i.e. the function's execution role), rendering in the sandbox
    /// as configured. One invocation runs at a time per execution environment, so the
    /// pool is one helper: the function's memory size bounds the environment, and the
    /// helper's budgets bound one render inside it, so a decoder crash or a bomb is a
    /// typed failure of that invocation instead of a dead runtime and a retried event.
    pub async fn from_settings(mut settings: Settings) -> Result<App, RenderError> {
        if settings.render.pool_size == 0 {
            settings.render.pool_size = 1;
        }
        let renderer = Renderer::from_settings(&settings.limits, &settings.render).await?;
        let store = S3Store::from_settings(&settings.s3).await;
        let cdn = CloudFront::from_settings(&settings.cdn).await;
        let bucket = settings.s3.bucket.clone();
        let events = SnsPublisher::from_settings(&settings.events).await;
        let mut app = App::new(settings, Arc::new(store), bucket, renderer);
        app.events = events;
        if let Some(cdn) = cdn {
            app.engine = app.engine.with_cdn(Arc::new(cdn));
        }
        Ok(app)
    }
}
