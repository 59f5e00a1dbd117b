//! Rendition's pipeline: what happens to a source between its upload and its derivatives,
//! and to a request for a derivative that may not exist yet. It speaks to storage through
//! one port ([`store::BlobStore`]) and to the CDN through another ([`cdn::Cdn`]); the AWS
//! adapters behind them live in `rendition-aws`, the image work in `rendition-image`. No
//! AWS SDK, queue client or HTTP server here.
//!
//! # Layout
//! - [`naming`]: immutable, GUID-based derivative keys, and parsing them back.
//! - [`manifest`]: the per-source JSON written after its derivatives.
//! - [`config`]: typed settings (defaults → `rendition.toml` → `RENDITION__*`), presets;
//!   the image layer's sections (`[limits]`, `[render]`) and the pipeline's, and the one
//!   loader that also hands a binary the sections its adapters own (`AdapterSections`).
//! - [`schema`]: JSON Schemas of the config (these sections plus a binary's adapter
//!   sections, one file), manifest, failure record, event job and outcome event.
//! - [`store`]: the async `BlobStore` port, the filesystem adapter and the source cache.
//! - [`cdn`]: the CDN port (invalidating a removed source's cached derivatives).
//! - [`event`]: storage notifications (S3, SNS, EventBridge, MinIO) parsed into jobs.
//! - [`message`]: one queue message → events → eager jobs / removals, or a `MessageError`.
//! - [`job`]: the idempotent eager job (`Engine`) as named steps.
//! - [`disposition`]: a job's result → done, retry after a delay, or dead-letter, decided
//!   once; every queue edge, the Lambda triggers and the folder mode only translate it.
//! - [`outcome`]: what became of a message's sources as CloudEvents (`derivatives.ready`,
//!   `.failed`, `.removed`), built once from its disposition for every edge to publish.
//! - [`ondemand`]: a request for a derivative that may not exist yet: verify, find, render, store.
//! - [`respond`]: status, headers and body of every on-demand answer, for every front door.
//! - [`negotiate`]: `fm=auto`: what a client accepts (`Accept`, or the CDN's header) and
//!   the format it gets.
//! - `kinds` (tests only): every error of the image layer and the pipeline answers with a
//!   listed kind.
//! - [`url`]: derivative URLs (path = `/` + derived key), signed specs, host sharding.
//! - `telemetry` (feature `telemetry`): the tracing set-up both binaries share.
//!
//! Modules point one way: `config` → `naming` → `store`/`event` → `job` → `message` →
//! `disposition`/`outcome`; `ondemand` → `respond`.

pub mod cdn;
pub mod config;
pub mod disposition;
pub mod event;
pub mod job;
mod kinds;
pub mod manifest;
pub mod message;
pub mod naming;
pub mod negotiate;
pub mod ondemand;
pub mod outcome;
pub mod respond;
pub mod schema;
pub mod store;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod url;
