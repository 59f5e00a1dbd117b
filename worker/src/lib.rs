//! The `rendition` program: wiring from configuration to adapters, and the long-running
//! modes built on `rendition-core`.
//!
//! # Layout
//! - [`cli`]: the command line (clap), with an example in every command's `--help`.
//! - [`local`]: `run --local DIR`, a folder as the bucket (scan + inotify + eager jobs).
//! - [`oneoff`]: `render IN --spec S -o OUT`, one variant of one file.
//! - [`telemetry`]: tracing setup (pretty or JSON lines).
//! - [`shutdown`]: the Ctrl-C / SIGTERM future handed to every `run`.

pub mod cli;
pub mod local;
pub mod oneoff;
pub mod shutdown;
pub mod telemetry;
