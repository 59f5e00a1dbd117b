//! [`RenderError`], why a source or one of its variants could not be rendered (its
//! `kind()`, `is_retryable()` and `status()` defined here once), and [`Unsupported`],
//! what it refuses.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::sniff::SniffError;
use crate::spec::Format;
use crate::vips::VipsError;

/// Why a source could not be rendered. All but [`RenderError::Unavailable`] are
/// properties of the input or the configuration: retrying the same bytes gives the same
/// answer. Serializable, because a render helper (see [`crate::sandbox`]) sends it back
/// to the process that asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RenderError {
    /// The source or a variant of it is not something Rendition makes.
    #[error("{0}")]
    Unsupported(#[from] Unsupported),
    #[error("source is {bytes} bytes, over the limit of {limit}")]
    InputTooLarge { bytes: u64, limit: u64 },
    #[error("source is {width}×{height} = {pixels} pixels, over the limit of {limit}")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    /// Keeping an animation decodes every frame: their pixels together count against
    /// `max_input_pixels`, else a few KiB of GIF (100 one-pixel frames on a 2048×2048
    /// canvas) would make the decode hold gigabytes.
    #[error(
        "animation is {frames} frames of {width}×{height} = {pixels} pixels, over the limit \
         of {limit}"
    )]
    AnimationTooLarge {
        width: u32,
        height: u32,
        frames: u32,
        pixels: u64,
        limit: u64,
    },
    /// The variant's output (not an intermediate of it) has a side over
    /// `limits.max_output_dimension`.
    #[error(
        "variant {variant:?} would be {width}×{height}, over the limit of {limit} px per side"
    )]
    OutputTooLarge {
        variant: String,
        width: u32,
        height: u32,
        limit: u32,
    },
    /// The frame a variant is scaled to before its crop (a `cover` with `enlarge` of a
    /// thin strip) would hold more than `limits.max_decoded_bytes`: the work budget
    /// bounds intermediates, the output limit bounds outputs.
    #[error(
        "variant {variant:?} is cropped from a {width}×{height} frame = {bytes} bytes, over \
         the decoded-size limit of {limit}"
    )]
    IntermediateTooLarge {
        variant: String,
        width: u32,
        height: u32,
        bytes: u64,
        limit: u64,
    },
    /// What the header says the decode would produce (width × height × bands × bytes per
    /// sample × frames kept) is over `limits.max_decoded_bytes`.
    #[error(
        "source would decode to {width}×{height} × {bands} bands × {sample_bytes} bytes × \
         {frames} frame(s) = {bytes} bytes, over the limit of {limit}"
    )]
    DecodedTooLarge {
        width: u32,
        height: u32,
        bands: u32,
        sample_bytes: u32,
        frames: u32,
        bytes: u64,
        limit: u64,
    },
    /// A JPEG with more scans than `limits.max_scans` (counted from its markers).
    #[error("JPEG has {scans} scans, over the limit of {limit}")]
    TooManyScans { scans: u32, limit: u32 },
    /// The render helper died (a crash in a decoder, or killed from outside).
    #[error("decoder crashed: {reason}")]
    DecoderCrashed { reason: String },
    /// The render needed more memory than `render.max_memory_mb`.
    #[error("over the memory budget of {limit_mb} MiB: {reason}")]
    OverMemoryBudget { limit_mb: u64, reason: String },
    /// The render used more CPU than `render.max_cpu_secs` or took longer than
    /// `render.deadline_secs`.
    #[error("over the time budget: {reason}")]
    OverTimeBudget { reason: String },
    /// No render helper could be started or talked to: our failure, not the input's, and
    /// worth retrying.
    #[error("renderer unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt image header: {0}")]
    Header(VipsError),
    #[error("corrupt or truncated image: {0}")]
    Decode(VipsError),
    #[error("cannot encode {}: {source}", .format.as_str())]
    Encode { format: Format, source: VipsError },
    #[error("image library unavailable: {0}")]
    Init(VipsError),
}

impl RenderError {
    /// A short stable name for metrics, headers, failure records and HTTP error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            RenderError::Unsupported(Unsupported::Format(_)) => "unsupported_format",
            RenderError::Unsupported(Unsupported::TooManyFrames { .. }) => "too_many_frames",
            RenderError::Unsupported(Unsupported::Variant { .. }) => "unsupported_variant",
            RenderError::InputTooLarge { .. } => "input_too_large",
            RenderError::TooManyPixels { .. } | RenderError::AnimationTooLarge { .. } => {
                "too_many_pixels"
            }
            RenderError::OutputTooLarge { .. } => "output_too_large",
            RenderError::Header(_) | RenderError::Decode(_) => "corrupt_image",
            RenderError::Encode { .. } => "encode_failed",
            RenderError::Init(_) => "vips_init",
            RenderError::DecodedTooLarge { .. } | RenderError::IntermediateTooLarge { .. } => {
                "decoded_too_large"
            }
            RenderError::TooManyScans { .. } => "too_many_scans",
            RenderError::DecoderCrashed { .. } => "decoder_crashed",
            RenderError::OverMemoryBudget { .. } => "over_memory_budget",
            RenderError::OverTimeBudget { .. } => "over_time_budget",
            RenderError::Unavailable(_) => "renderer_unavailable",
        }
    }

    /// A refusal of one variant, not of the source: its output over the limit, the frame
    /// its crop is cut from over the work budget, a variant this source cannot have. Its
    /// siblings are still made ([`Skipped`](super::Skipped)). Input limits (pixels and decoded bytes of a
    /// kept animation included) refuse the whole source.
    pub fn is_variant_specific(&self) -> bool {
        matches!(
            self,
            RenderError::OutputTooLarge { .. }
                | RenderError::IntermediateTooLarge { .. }
                | RenderError::Unsupported(Unsupported::Variant { .. })
        )
    }

    /// Worth trying again later: only when no renderer could be had. Everything else is
    /// the same answer for the same bytes.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RenderError::Unavailable(_))
    }

    /// HTTP status of the on-demand path: 422 for anything about the source (its bytes,
    /// its limits and budgets), 503 when no renderer was available, 500 when libvips
    /// itself could not start.
    pub fn status(&self) -> u16 {
        match self {
            RenderError::Init(_) => 500,
            RenderError::Unavailable(_) => 503,
            _ => 422,
        }
    }
}

/// What [`RenderError::Unsupported`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Unsupported {
    /// Not an allowed image format (by magic bytes).
    #[error(transparent)]
    Format(#[from] SniffError),
    /// More frames (pages) than `limits.max_frames`, read from the header: never
    /// silently truncated.
    #[error("source has {frames} frames, over the limit of {limit}")]
    TooManyFrames { frames: u32, limit: u32 },
    /// A variant that cannot be made correctly from this source, e.g. a smart crop of an
    /// animation.
    #[error("variant {variant:?}: {reason}")]
    Variant {
        variant: String,
        reason: Cow<'static, str>,
    },
}

impl From<SniffError> for RenderError {
    fn from(e: SniffError) -> Self {
        RenderError::Unsupported(Unsupported::Format(e))
    }
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
crate::classified!(RenderError);
