//! Rendition's image layer: what a variant is, and how its pixels are made from a
//! source's bytes, safely. It knows no store, queue, HTTP server or cloud: its inputs are
//! bytes, specs and limits, its outputs encoded bytes and typed errors.
//!
//! # Layout
//! - [`spec`]: `VariantSpec` and its one canonical text form (`w=320,fit=cover,fm=webp`),
//!   and the spec hash that versions a preset's names (`spec/`: types, errors, parse,
//!   display, hash).
//! - [`geometry`]: pure fit/crop/gravity math, no libvips.
//! - [`settings`]: the `[limits]` and `[render]` configuration sections.
//! - [`sniff`]: source format from magic bytes, with an allow-list.
//! - [`container`]: scans, frames and pages counted from container markers, before decoding.
//! - [`vips`]: a small safe layer over the libvips 8.14 C API (own FFI; see there why):
//!   `vips/` holds the FFI, errors, the process-wide runtime, the image, its operations,
//!   encoding, and images whose rows Rust produces.
//! - [`render`]: the pipeline as ordered named steps; one decode, many variants. `render/`
//!   holds the entry point and the steps' order in `mod.rs`, one file per step (inspect,
//!   plan, decode, transform, encode), its types and its errors.
//! - [`png_fast`]: 8-bit PNGs decoded by the `png` crate and streamed into libvips,
//!   pixel-identical to libvips' loader and faster.
//! - [`progressive`]: DC-only rebuilds of progressive JPEGs, for thumbnails decoded at 1/8.
//! - [`placeholder`]: BlurHash, dominant colour and LQIP from the pixels already decoded.
//! - [`sandbox`]: render helper processes with memory, CPU and time budgets and a seccomp
//!   filter; [`renderer`]: one way to render, in a helper or in process.
//! - [`kinds`]: every stable error kind in one list, and the `kind()` / `is_retryable()` /
//!   `status()` trait each error source defines once (here and in the crates above).
//! - [`text`]: safe truncation for messages that go on queues, headers and logs.
//!
//! Modules point one way: `spec` → `geometry` → `render` → `sandbox` → `renderer`;
//! `vips`, `container`, `sniff` and the decoders below `render`.

pub mod container;
pub mod geometry;
pub mod kinds;
pub mod placeholder;
pub mod png_fast;
pub mod progressive;
pub mod render;
pub mod renderer;
pub mod sandbox;
pub mod settings;
pub mod sniff;
pub mod spec;
pub mod text;
pub mod vips;
