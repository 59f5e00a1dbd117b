//! The `rendition` program: wiring from configuration to adapters, and the long-running
//! modes built on `rendition-image`, `rendition-pipeline` and `rendition-aws`.
//!
//! # Layout
//! - [`settings`]: the configuration this binary loads: the core's settings and the
//!   sections its adapters own (`[rabbitmq]`, `[sqs]`, `[worker]`, `[serve]`, each defined
//!   next to its adapter), one file, one layering, one JSON Schema.
//! - [`app`]: `worker --queue rabbitmq|sqs`: store, engine, consumer, ops endpoint;
//!   `[worker]` ([`settings::WorkerSettings`]).
//! - [`backfill`]: `backfill --preset NAME`: enqueue (or render in place) the preset for
//!   every source whose manifest lacks it; paced, resumable, with a progress bar.
//! - [`gc`]: `gc [--delete] [--grace 30d]`: remove superseded and retired derivatives
//!   past a grace period (a dry run by default); resumable.
//! - [`cli`]: the command line (clap), with an example in every command's `--help`.
//! - [`local`]: `run --local DIR`, a folder as the bucket (scan + inotify + eager jobs;
//!   a file deleted or moved out is a removal).
//! - [`oneoff`]: `render IN --spec S -o OUT`, one variant of one file.
//! - [`commands`]: one function per command, called by `main` on one runtime; first the
//!   settings each command needs ([`commands::needs`]), before anything is set up.
//! - [`report`]: how `main` prints a failure (each cause once, its kind, a hint) and its
//!   exit code (2: configuration, 1: a failure while running).
//! - [`compose`]: the composition root: settings → store (folder or S3) → renderer →
//!   engine (and the CDN removals invalidate) / on-demand path.
//! - [`shutdown`]: the Ctrl-C / SIGTERM future handed to every `run`.
//! - [`rabbit`]: the RabbitMQ consumer (`worker --queue rabbitmq`): topology, retry queues,
//!   dead-lettering, publisher confirms, reconnects and draining shutdown; `[rabbitmq]`
//!   ([`rabbit::RabbitSettings`]).
//! - [`handler`]: one queue message → parsed events → eager jobs / removals, with the
//!   retryable-or-permanent verdict the consumers act on.
//! - [`serve`]: `serve --local DIR`: on-demand HTTP with request coalescing and a source
//!   cache; `[serve]` ([`serve::settings::ServeSettings`]).
//! - [`sheet`]: `sheet SOURCE` and `serve`'s `/sheet/{source}`: an HTML contact sheet of a
//!   source and every variant in its manifest, self-checking in a (headless) browser.
//! - [`html`]: `html SOURCE`: a ready-made `<picture>` (a srcset per format over the eager
//!   width ladder, size and placeholder from the manifest).
//! - [`markup`]: HTML escaping and the manifest's placeholder values checked for markup,
//!   shared by [`html`] and [`sheet`].
//! - [`urlcmd`]: `url SOURCE --preset|--spec`: a derivative's URL from the one generator.
//! - [`sqs`]: the SQS consumer (`client`, `consumer`: long polling, heartbeats, batch
//!   deletes, dead-lettering); `[sqs]` ([`sqs::SqsSettings`]).
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`]: the Prometheus registry.

pub mod app;
pub mod backfill;
pub mod cli;
pub mod commands;
pub mod compose;
pub mod gc;
pub mod handler;
pub mod html;
pub mod http;
pub mod local;
pub mod markup;
pub mod metrics;
pub mod oneoff;
pub mod rabbit;
pub mod report;
pub mod serve;
pub mod settings;
pub mod sheet;
pub mod shutdown;
pub mod sqs;
pub mod urlcmd;
