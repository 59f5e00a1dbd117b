//! The `rendition` program: wiring from configuration to adapters, and the long-running
//! modes built on `rendition-core`.
//!
//! # Layout
//! - [`app`]: `worker --queue rabbitmq|sqs`: store, engine, consumer, ops endpoint.
//! - [`backfill`]: `backfill --preset NAME`: enqueue (or render in place) the preset for
//!   every source whose manifest lacks it; paced, resumable, with a progress bar.
//! - [`cli`]: the command line (clap), with an example in every command's `--help`.
//! - [`local`]: `run --local DIR`, a folder as the bucket (scan + inotify + eager jobs).
//! - [`oneoff`]: `render IN --spec S -o OUT`, one variant of one file.
//! - [`telemetry`]: tracing setup (pretty or JSON lines).
//! - [`shutdown`]: the Ctrl-C / SIGTERM future handed to every `run`.
//! - [`rabbit`]: the RabbitMQ consumer (`worker --queue rabbitmq`): topology, retry queues,
//!   dead-lettering, publisher confirms, reconnects and draining shutdown.
//! - [`handler`]: one queue message → parsed events → eager jobs / removals, with the
//!   retryable-or-permanent verdict the consumers act on.
//! - [`serve`]: `serve --local DIR`: on-demand HTTP with request coalescing and a source cache.
//! - [`sheet`]: `sheet SOURCE` and `serve`'s `/sheet/{source}`: an HTML contact sheet of a
//!   source and every variant in its manifest, self-checking in a (headless) browser.
//! - [`urlcmd`]: `url SOURCE --preset|--spec`: a derivative's URL from the one generator.
//! - [`sqs`]: the SQS consumer (long polling, heartbeats, batch deletes, dead-lettering).
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`]: the Prometheus registry.
//! - [`bench`]: `bench DIR`: images/s and peak RSS against sharp and vipsthumbnail, with the
//!   ratios, each case in its own measured process.

pub mod app;
pub mod backfill;
pub mod bench;
pub mod cli;
pub mod handler;
pub mod http;
pub mod local;
pub mod metrics;
pub mod oneoff;
pub mod rabbit;
pub mod serve;
pub mod sheet;
pub mod shutdown;
pub mod sqs;
pub mod telemetry;
pub mod urlcmd;
