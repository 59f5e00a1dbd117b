//! What a render takes and gives: the requests, what was learnt about the source, the
//! encoded variants and the skipped ones, the timed phases and which decoder ran.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::errors::{RenderError, Unsupported};
use crate::geometry::Size;
use crate::placeholder::Placeholder;
use crate::sniff::SourceFormat;
use crate::spec::{Format, VariantSpec};

/// What was learnt about the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub format: SourceFormat,
    /// Size after EXIF orientation (of one frame, for an animation).
    pub size: Size,
    pub bytes: u64,
    pub has_alpha: bool,
    /// Frames (pages) in the source: 1 for a still image.
    pub frames: u32,
}

/// One requested variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantRequest {
    pub name: String,
    pub spec: VariantSpec,
}

/// One encoded variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub name: String,
    pub spec: VariantSpec,
    pub format: Format,
    /// Size of the output (of each frame, for an animation).
    pub size: Size,
    /// Frames in the output: 1 unless an animation was kept.
    pub frames: u32,
    pub bytes: Vec<u8>,
}

/// A variant refused for a reason of its own (its output over the limit, a smart crop
/// of an animation, …) while its siblings could be made: an eager job writes the others
/// and lists this one in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub name: String,
    pub spec: VariantSpec,
    pub error: RenderError,
}

/// One timed step of a render (`decode`, or the `encode` of a variant), relative to the
/// render's start: the trace's child spans of `render`, wherever the render ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub variant: Option<String>,
    pub format: Option<String>,
    pub start_us: u64,
    pub dur_us: u64,
    /// For `decode`: which decoder made the pixels ([`Decoder::as_str`]).
    #[serde(default)]
    pub decoder: Option<String>,
}

/// How the source's pixels were decoded (recorded on the `decode` phase, so traces, the
/// bench and the fidelity tests see which one ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// libvips' `thumbnail` loader with its own shrink-on-load, as vipsthumbnail decodes.
    Libvips,
    /// A JPEG decoded at 1/`factor` where libvips would decode larger: sharp's default
    /// shrink-on-load (`render.fast_shrink_on_load`).
    JpegShrink(u32),
    /// A progressive JPEG decoded at 1/8 from its DC scans alone ([`crate::progressive`]):
    /// the same pixels as the 1/8 decode of the whole file, for a fraction of the
    /// entropy decoding.
    JpegDcOnly,
    /// An 8-bit, non-interlaced PNG whose rows the `png` crate decodes and streams into
    /// libvips' `thumbnail`: the same pixels, less CPU ([`crate::png_fast`]).
    PngFast,
}

impl Decoder {
    pub fn as_str(self) -> &'static str {
        match self {
            Decoder::Libvips => "libvips",
            Decoder::JpegShrink(2) => "jpeg_shrink_2",
            Decoder::JpegShrink(4) => "jpeg_shrink_4",
            Decoder::JpegShrink(_) => "jpeg_shrink_8",
            Decoder::JpegDcOnly => "jpeg_dc_only",
            Decoder::PngFast => "png_fast",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOutput {
    pub source: SourceInfo,
    /// `decode` and each `encode`, timed (see [`Phase`]).
    pub phases: Vec<Phase>,
    /// BlurHash, dominant colour and LQIP of the source, from its one decode (`None`
    /// when no variant was made, or libvips could not shrink the frame).
    pub placeholder: Option<Placeholder>,
    /// The variants made, in request order (skipped ones left out).
    pub variants: Vec<Rendered>,
    /// The variants refused on their own, in request order.
    pub skipped: Vec<Skipped>,
}

impl RenderOutput {
    /// The one variant of a single-variant render, or why it was refused: the on-demand
    /// path and `rendition render` answer with the variant's own error.
    pub fn into_only(self) -> Result<Rendered, RenderError> {
        match (
            self.skipped.into_iter().next(),
            self.variants.into_iter().next(),
        ) {
            (Some(skipped), _) => Err(skipped.error),
            (None, Some(variant)) => Ok(variant),
            (None, None) => Err(RenderError::Unsupported(Unsupported::Variant {
                variant: String::new(),
                reason: Cow::Borrowed("no variant was requested"),
            })),
        }
    }
}
