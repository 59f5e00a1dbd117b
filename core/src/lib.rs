//! Rendition's core: everything both the worker and the Lambda need, with no queue or
//! cloud SDK in sight.
//!
//! # Layout
//! - [`spec`]: `VariantSpec` and its one canonical text form (`w=320,fit=cover,fm=webp`).
//! - [`geometry`]: pure fit/crop/gravity math, no libvips.
//! - [`naming`]: immutable, GUID-based derivative keys, and parsing them back.
//! - [`config`]: typed settings (defaults → `rendition.toml` → `RENDITION__*`), presets;
//!   the core's sections, and the one loader that also hands a binary the sections its
//!   adapters own (`AdapterSections`, defined next to those adapters in the binaries).
//! - [`sniff`]: source format from magic bytes, with an allow-list.
//! - [`container`]: scans, frames and pages counted from container markers, before decoding.
//! - [`vips`]: a small safe layer over the libvips 8.14 C API (own FFI; see there why).
//! - [`render`]: the pipeline as ordered named steps; one decode, many variants.
//! - [`png_fast`]: 8-bit PNGs decoded by the `png` crate and streamed into libvips,
//!   pixel-identical to libvips' loader and faster.
//! - [`progressive`]: DC-only rebuilds of progressive JPEGs, for thumbnails decoded at 1/8.
//! - [`ondemand`]: a request for a derivative that may not exist yet: verify, find, render, store.
//! - [`respond`]: status, headers and body of every on-demand answer, for every front door.
//! - [`negotiate`]: `fm=auto`: what a client accepts (`Accept`, or the CDN's header) and
//!   the format it gets.
//! - [`manifest`]: the per-source JSON written after its derivatives.
//! - [`placeholder`]: BlurHash, dominant colour and LQIP from the pixels already decoded.
//! - [`store`]: the async `BlobStore` port and the filesystem adapter.
//! - [`event`]: storage notifications (S3, SNS, EventBridge, MinIO) parsed into jobs.
//! - [`message`]: one queue message → events → eager jobs / removals, or a `MessageError`.
//! - `aws` (features `s3`, `sns`, `cloudfront`): the one SDK configuration every AWS client
//!   starts from (credentials chain, region, timeouts, retries).
//! - [`cdn`]: the CDN port (invalidating a removed source's cached derivatives) and its
//!   CloudFront adapter (feature `cloudfront`).
//! - [`outcome`]: what became of a message's sources as CloudEvents (`derivatives.ready`,
//!   `.failed`, `.removed`), built once from its disposition for every edge to publish;
//!   `sns` (feature `sns`): the SNS publisher the SQS worker and the Lambda share.
//! - [`job`]: the idempotent eager job and its retryable/permanent error classification.
//! - [`kinds`]: every stable error kind in one list, and the `kind()` / `is_retryable()` /
//!   `status()` trait each error source defines once.
//! - [`disposition`]: a job's result → done, retry after a delay, or dead-letter, decided
//!   once; every queue edge, the Lambda triggers and the folder mode only translate it.
//! - [`schema`]: JSON Schemas of the config (the core's sections plus a binary's adapter
//!   sections, one file), manifest, failure record, event job and outcome event.
//! - [`url`]: derivative URLs (path = `/` + derived key), signed specs, host sharding.
//! - [`sandbox`]: render helper processes with memory, CPU and time budgets and a seccomp
//!   filter; [`renderer`]: one way to render, in a helper or in process.
//! - [`text`]: safe truncation for messages that go on queues, headers and logs.
//! - `telemetry` (feature `telemetry`): the tracing set-up both binaries share.

#[cfg(any(feature = "s3", feature = "sns", feature = "cloudfront"))]
pub mod aws;
pub mod cdn;
pub mod config;
pub mod container;
pub mod disposition;
pub mod event;
pub mod geometry;
pub mod job;
pub mod kinds;
pub mod manifest;
pub mod message;
pub mod naming;
pub mod negotiate;
pub mod ondemand;
pub mod outcome;
pub mod placeholder;
pub mod png_fast;
pub mod progressive;
pub mod render;
pub mod renderer;
pub mod respond;
pub mod sandbox;
pub mod schema;
pub mod sniff;
#[cfg(feature = "sns")]
pub mod sns;
pub mod spec;
pub mod store;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod text;
pub mod url;
pub mod vips;
