//! A small, safe layer over the libvips calls in [`ffi`].
//!
//! Why our own FFI and not a bindings crate: Debian 12 ships libvips 8.14. The `libvips`
//! crate 2.x passes options that only 8.18 knows to every `*_with_opts` call, so they fail
//! at run time on 8.14; `rs-vips` 0.7 works but segfaults when asked for an operation 8.14
//! lacks. Declaring the dozen functions we use makes a missing one a link error, needs no
//! bindgen or libclang at build time, and lets us pass exactly the options 8.14 documents.
//!
//! Images borrow the buffer they were loaded from (libvips decodes lazily), which the
//! lifetime on [`Image`] enforces; [`Image::materialize`] decodes into memory and ends the
//! borrow.
//!
//! # Files
//! - [`ffi`]: the C declarations, and nothing else;
//! - `errors.rs`: [`VipsError`], libvips' error text;
//! - `runtime.rs`: [`init`] once per process, log lines and warnings through `tracing`
//!   ([`with_job`], [`warn`], [`log_to_tracing`]), [`version`];
//! - `image.rs`: [`Image`] and [`Header`]: open, read the header, materialize, metadata;
//! - `ops.rs`: thumbnail, resize, crop, smart crop ([`Interesting`]), colourspace, frames
//!   joined, embed, flatten, alpha;
//! - `encode.rs`: [`Image::save`] in a [`SaveFormat`], [`strip_webp_metadata`];
//! - [`rows`]: images whose rows Rust produces ([`RowSource`], [`RowsError`]).
//!
//! Files point one way: `ffi` ← `errors` ← `runtime`, `image` ← `ops`, `encode`, `rows`.

mod encode;
mod errors;
pub mod ffi;
mod image;
mod ops;
pub mod rows;
mod runtime;

pub use encode::{strip_webp_metadata, SaveFormat};
pub use errors::VipsError;
pub use image::{Header, Image};
pub use ops::Interesting;
pub use rows::{RowSource, RowsError};
pub use runtime::{init, log_to_tracing, version, warn, with_job};
