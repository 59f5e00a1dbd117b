//! Rendition on AWS Lambda: one function, three kinds of trigger.
//!
//! - **HTTP** (a Lambda Function URL, or an API Gateway HTTP API with payload 2.0): the
//!   on-demand path, usually the failover origin behind the CDN. `GET`/`HEAD` of a
//!   derivative URL renders it if it does not exist yet, stores it, and returns it.
//! - **Storage events** (S3 invoking the function asynchronously; also SNS and
//!   EventBridge wrappings of S3 events): the eager job for every created source.
//! - **SQS** (an event source mapping on the queue that S3 notifies): the same eager job
//!   per message, with partial batch responses.
//!
//! Settings are loaded once per cold start (`Settings::load(None, env)`: defaults, then
//! `rendition.toml` in the task root when present, then `RENDITION__*`); handlers never
//! read the environment. The Lambda has no sections of its own: the core's are read, and
//! the `rendition` binary's (`[rabbitmq]`, `[sqs]`, `[worker]`, `[serve]`) are accepted
//! by name and not read, so one file (one SSM parameter) can configure both.
//!
//! # Layout
//! - [`app`]: [`App`], what a cold start builds once (settings, store, on-demand renderer,
//!   eager job engine with the CDN its removals invalidate, URL generator).
//! - [`handler`]: the one entry point [`handler::handle`], which tells the triggers apart
//!   by the payload's shape.
//! - [`error`]: [`HandlerError`], which becomes the Lambda error type
//!   (`Rendition.Retryable.<kind>` / `Rendition.Permanent.<kind>`).
//! - [`emf`]: CloudWatch metrics as embedded-metric-format lines on stdout (render ms,
//!   bytes, outcome, cold start), one per request or job.
//! - [`http`]: Function URL / API Gateway requests in, HTTP responses out: the shapes
//!   only — status, headers and body are decided by the core's one responder
//!   (`rendition_pipeline::respond`, shared with `rendition serve`) — and the 6 MB response
//!   limit (a redirect to the CDN past it).
//! - [`triggers`]: S3 (and SNS / EventBridge) events, handed to the core as the JSON they
//!   came as (`handle_event`), and SQS batches through the core's `handle_message`.
//!
//! Modules point one way: `handler` → `http`, `triggers` → `error`, `app` → `emf`.

pub mod app;
pub mod emf;
pub mod error;
pub mod handler;
pub mod http;
pub mod triggers;

pub use app::App;
pub use error::HandlerError;
pub use handler::handle;
