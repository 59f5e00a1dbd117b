//! The render pipeline: one source in, any number of variants out, from one decode.
//!
//! Steps, in order, each a small function below:
//! 1. [`inspect`]: sniff the magic bytes (allow-list), read the header without decoding
//!    pixels, enforce the byte, pixel and frame limits, work out the size after EXIF
//!    orientation;
//! 2. `plan_variants`: pure geometry per variant ([`crate::geometry`], `dpr` applied),
//!    the output limit on the output itself and the work budget on the frame a crop is
//!    cut from, whether the variant is animated; a variant refused here is [`Skipped`]
//!    and its siblings are still made;
//! 3. `decode`: one shrink-on-load decode (libvips `thumbnail`) straight to the largest
//!    frame any variant needs, auto-oriented, converted to sRGB when the source carries an
//!    ICC profile or is CMYK, always 8 bits per sample (16-bit PNG/TIFF included), held in
//!    memory; every frame, stacked in one strip, when an animated variant needs them.
//!    Sources other tools render get one retry, never more: a broken ICC profile is
//!    ignored (pixels taken as sRGB, with a warning), and a HEIF whose embedded thumbnail
//!    is not its declared size is decoded in full;
//!    then the placeholders ([`crate::placeholder`]) from a tiny copy of that decode;
//! 4. per variant, largest first: `scale` from the smallest frame already made that
//!    covers it (the cascade; still variants of an animation take its first frame),
//!    `crop` (cover: placed window per frame, or libvips' smart crop), `embed`
//!    (contain, per frame), `flatten` alpha when the format has none, `encode` with
//!    metadata stripped.
//!
//! Animation: a GIF or WebP source with several frames keeps them when the output is GIF
//! or WebP (up to `limits.max_frames`, else [`Unsupported::TooManyFrames`] from the
//! header, and with all frames' pixels together within `limits.max_input_pixels`, else
//! [`RenderError::AnimationTooLarge`]); JPEG, PNG and AVIF outputs take the first frame.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::geometry::{self, Plan, Request, Size};
use crate::placeholder::{self, Pixels, Placeholder};
use crate::settings::{Limits, RenderSettings};
use crate::sniff::{sniff, SniffError, SourceFormat};
use crate::spec::{Format, Gravity, Rgb, VariantSpec};
use crate::vips::{self, Header, Image, Interesting, SaveFormat, VipsError};

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
    /// siblings are still made ([`Skipped`]). Input limits (pixels and decoded bytes of a
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

/// Times the phases of one render.
struct Clock {
    started: std::time::Instant,
    phases: Vec<Phase>,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            started: std::time::Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Runs `f` as the phase `name` (of `variant` in `format`).
    fn time<T>(&mut self, name: &str, variant: Option<(&str, Format)>, f: impl FnOnce() -> T) -> T {
        let start = self.started.elapsed();
        let out = f();
        self.phases.push(Phase {
            name: name.to_string(),
            variant: variant.map(|(v, _)| v.to_string()),
            format: variant.map(|(_, f)| f.as_str().to_string()),
            start_us: start.as_micros() as u64,
            dur_us: (self.started.elapsed() - start).as_micros() as u64,
            decoder: None,
        });
        out
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

/// The output format a spec resolves to for a given source. `Auto` left to the renderer
/// (no negotiated format: the client takes neither AVIF nor WebP) is the legacy format:
/// PNG for a source with alpha, JPEG otherwise.
pub fn output_format(spec_format: Format, source: SourceFormat, has_alpha: bool) -> Format {
    match spec_format {
        Format::Auto if has_alpha => Format::Png,
        Format::Auto => Format::Jpeg,
        Format::Original => match source {
            SourceFormat::Jpeg => Format::Jpeg,
            SourceFormat::Png | SourceFormat::Tiff => Format::Png,
            SourceFormat::Webp => Format::Webp,
            SourceFormat::Gif => Format::Gif,
            SourceFormat::Heif | SourceFormat::Avif => Format::Avif,
        },
        other => other,
    }
}

/// Renders every variant of one source from a single decode.
pub fn render(
    source: &[u8],
    variants: &[VariantRequest],
    limits: &Limits,
    settings: &RenderSettings,
) -> Result<RenderOutput, RenderError> {
    render_source(Cow::Borrowed(source), variants, limits, settings)
}

/// [`render`] of a source the caller hands over: its bytes are freed as soon as they are
/// decoded, before the variants are resized and encoded (a render helper's peak memory
/// then holds the decoded frame and the encoders' buffers, not the source as well).
pub fn render_owned(
    source: Vec<u8>,
    variants: &[VariantRequest],
    limits: &Limits,
    settings: &RenderSettings,
) -> Result<RenderOutput, RenderError> {
    render_source(Cow::Owned(source), variants, limits, settings)
}

fn render_source(
    source: Cow<'_, [u8]>,
    variants: &[VariantRequest],
    limits: &Limits,
    settings: &RenderSettings,
) -> Result<RenderOutput, RenderError> {
    vips::init(settings.vips_threads).map_err(RenderError::Init)?;
    let mut clock = Clock::new();
    let (info, header) = inspect(&source, limits)?;
    let (plans, skipped) = plan_variants(&info, &header, variants, limits)?;
    if plans.is_empty() {
        return Ok(RenderOutput {
            source: info,
            phases: clock.phases,
            placeholder: None,
            variants: Vec::new(),
            skipped,
        });
    }
    let (first, decoder) = clock.time("decode", None, || {
        decode(&source, &info, &header, &plans, settings)
    })?;
    // In memory now (`decode` materializes): the source is not read again.
    drop(source);
    if let Some(phase) = clock.phases.last_mut() {
        phase.decoder = Some(decoder.as_str().to_string());
    }
    let placeholder = placeholder(&first);

    // Largest first, so each variant can be scaled from a frame just above it.
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(plans[i].plan.scaled.pixels()));
    let mut frames: Vec<Image<'static>> = vec![first];
    let mut out: Vec<Option<Rendered>> = vec![None; plans.len()];
    for (pos, &i) in order.iter().enumerate() {
        let p = &plans[i];
        let more_to_come = pos + 1 < order.len();
        let frame = scale(&mut frames, &p.plan, more_to_come, p.animated)?;
        let image = crop(frame, p)?;
        let image = embed(image, &p.plan, p.format, p.request.spec.background)?;
        let image = flatten(image, p.format, p.request.spec.background)?;
        let bytes = clock.time("encode", Some((&p.request.name, p.format)), || {
            encode(&image, p, settings)
        })?;
        out[i] = Some(Rendered {
            name: p.request.name.clone(),
            spec: p.request.spec.clone(),
            format: p.format,
            size: p.plan.output,
            frames: image.pages_loaded(),
            bytes,
        });
    }
    Ok(RenderOutput {
        source: info,
        phases: clock.phases,
        placeholder,
        variants: out
            .into_iter()
            .map(|r| r.expect("every planned variant rendered"))
            .collect(),
        skipped,
    })
}

/// Step 1: allow-listed format, header, limits (bytes, pixels, frames) — no pixels
/// decoded.
pub fn inspect(source: &[u8], limits: &Limits) -> Result<(SourceInfo, Header), RenderError> {
    let bytes = source.len() as u64;
    if bytes > limits.max_input_bytes {
        return Err(RenderError::InputTooLarge {
            bytes,
            limit: limits.max_input_bytes,
        });
    }
    let format = sniff(source)?;
    // Counted from the container before libvips parses anything: a progressive JPEG's
    // decode costs a pass over every block per scan.
    if format == SourceFormat::Jpeg {
        let scans = crate::container::jpeg_scans(source).unwrap_or(0);
        if scans > limits.max_scans {
            return Err(RenderError::TooManyScans {
                scans,
                limit: limits.max_scans,
            });
        }
    }
    // libvips' WebP loader allocates the whole canvas while reading the header: refuse a
    // canvas over the pixel limit from the container first.
    if let Some((width, height)) = crate::container::webp_dimensions(source) {
        let pixels = u64::from(width) * u64::from(height);
        if pixels > limits.max_input_pixels {
            return Err(RenderError::TooManyPixels {
                width,
                height,
                pixels,
                limit: limits.max_input_pixels,
            });
        }
    }
    let mut header = Image::open(source).map_err(RenderError::Header)?.header();
    // Frames as the container counts them, when that is more than the loader said: a
    // frame count that saturates must not let frames be dropped silently.
    let counted = match format {
        SourceFormat::Gif => crate::container::gif_frames(source),
        SourceFormat::Webp => crate::container::webp_frames(source),
        SourceFormat::Tiff => crate::container::tiff_pages(source),
        _ => None,
    };
    header.pages = header.pages.max(counted.unwrap_or(1));
    let pixels = u64::from(header.width) * u64::from(header.height);
    if pixels > limits.max_input_pixels {
        return Err(RenderError::TooManyPixels {
            width: header.width,
            height: header.height,
            pixels,
            limit: limits.max_input_pixels,
        });
    }
    if header.pages > limits.max_frames {
        return Err(Unsupported::TooManyFrames {
            frames: header.pages,
            limit: limits.max_frames,
        }
        .into());
    }
    check_decoded(&header, 1, limits)?;
    let size = if header.orientation >= 5 {
        Size::new(header.height, header.width)
    } else {
        Size::new(header.width, header.height)
    };
    Ok((
        SourceInfo {
            format,
            size,
            bytes,
            has_alpha: header.has_alpha,
            frames: header.pages,
        },
        header,
    ))
}

/// The decoded-size budget: width × height × bands × bytes per sample × `frames`, from
/// the header, against `limits.max_decoded_bytes`.
fn check_decoded(header: &Header, frames: u32, limits: &Limits) -> Result<(), RenderError> {
    let bytes = u64::from(header.width)
        .saturating_mul(u64::from(header.height))
        .saturating_mul(u64::from(header.bands))
        .saturating_mul(u64::from(header.sample_bytes))
        .saturating_mul(u64::from(frames));
    if bytes > limits.max_decoded_bytes {
        return Err(RenderError::DecodedTooLarge {
            width: header.width,
            height: header.height,
            bands: header.bands,
            sample_bytes: header.sample_bytes,
            frames,
            bytes,
            limit: limits.max_decoded_bytes,
        });
    }
    Ok(())
}

struct Planned<'r> {
    request: &'r VariantRequest,
    plan: Plan,
    format: Format,
    /// Every frame of an animated source is kept.
    animated: bool,
}

/// Whether a variant in `format` of this source keeps its animation.
pub fn is_animated(info: &SourceInfo, format: Format) -> bool {
    info.frames > 1
        && matches!(info.format, SourceFormat::Gif | SourceFormat::Webp)
        && matches!(format, Format::Gif | Format::Webp)
}

fn interesting(gravity: Gravity) -> Option<Interesting> {
    match gravity {
        Gravity::Attention => Some(Interesting::Attention),
        Gravity::Entropy => Some(Interesting::Entropy),
        _ => None,
    }
}

/// Step 2: geometry per variant (box × `dpr`), its limits (output sides, the frame it is
/// cropped from, a kept animation's pixels), whether it is animated. A variant refused
/// for a reason of its own ([`RenderError::is_variant_specific`]) is [`Skipped`]; an
/// input limit refuses the whole source.
fn plan_variants<'r>(
    info: &SourceInfo,
    header: &Header,
    variants: &'r [VariantRequest],
    limits: &Limits,
) -> Result<(Vec<Planned<'r>>, Vec<Skipped>), RenderError> {
    let mut planned = Vec::with_capacity(variants.len());
    let mut skipped = Vec::new();
    for request in variants {
        match plan_one(info, header, request, limits) {
            Ok(p) => planned.push(p),
            Err(error) if error.is_variant_specific() => skipped.push(Skipped {
                name: request.name.clone(),
                spec: request.spec.clone(),
                error,
            }),
            Err(error) => return Err(error),
        }
    }
    Ok((planned, skipped))
}

fn plan_one<'r>(
    info: &SourceInfo,
    header: &Header,
    request: &'r VariantRequest,
    limits: &Limits,
) -> Result<Planned<'r>, RenderError> {
    let spec = &request.spec;
    let plan = geometry::plan(info.size, &Request::from_spec(spec));
    let limit = limits.max_output_dimension;
    if plan.output.width.max(plan.output.height) > limit {
        return Err(RenderError::OutputTooLarge {
            variant: request.name.clone(),
            width: plan.output.width,
            height: plan.output.height,
            limit,
        });
    }
    let format = output_format(spec.format, info.format, info.has_alpha);
    let animated = is_animated(info, format);
    let frames = if animated { info.frames } else { 1 };
    // The frame scaled before the crop, 8 bits a sample after decode (at most 4 bands).
    let scaled_bytes = plan
        .scaled
        .pixels()
        .saturating_mul(u64::from(header.bands.clamp(1, 4)))
        .saturating_mul(u64::from(frames));
    if scaled_bytes > limits.max_decoded_bytes {
        return Err(RenderError::IntermediateTooLarge {
            variant: request.name.clone(),
            width: plan.scaled.width,
            height: plan.scaled.height,
            bytes: scaled_bytes,
            limit: limits.max_decoded_bytes,
        });
    }
    let all_frames = info.size.pixels().saturating_mul(u64::from(info.frames));
    if animated && all_frames > limits.max_input_pixels {
        return Err(RenderError::AnimationTooLarge {
            width: info.size.width,
            height: info.size.height,
            frames: info.frames,
            pixels: all_frames,
            limit: limits.max_input_pixels,
        });
    }
    if animated {
        check_decoded(header, info.frames, limits)?;
    }
    if animated && spec.gravity.is_smart() {
        return Err(Unsupported::Variant {
            variant: request.name.clone(),
            reason: Cow::Borrowed(
                "smart crop (g=attention|entropy) of an animation; use a compass \
                 gravity or a focal point, or a still format",
            ),
        }
        .into());
    }
    Ok(Planned {
        request,
        plan,
        format,
        animated,
    })
}

/// Step 3: one decode, shrunk on load to the largest frame any variant needs.
fn decode(
    source: &[u8],
    info: &SourceInfo,
    header: &Header,
    plans: &[Planned],
    settings: &RenderSettings,
) -> Result<(Image<'static>, Decoder), RenderError> {
    let ratio = |p: &Planned| {
        let sx = f64::from(p.plan.scaled.width) / f64::from(info.size.width);
        let sy = f64::from(p.plan.scaled.height) / f64::from(info.size.height);
        sx.max(sy)
    };
    let widest = plans
        .iter()
        .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
        .expect("at least one plan");
    let target = if ratio(widest) >= 1.0 {
        info.size
    } else if widest.plan.is_uniform() {
        widest.plan.scaled
    } else {
        let r = ratio(widest);
        Size::new(
            ((f64::from(info.size.width) * r).ceil() as u32).clamp(1, info.size.width),
            ((f64::from(info.size.height) * r).ceil() as u32).clamp(1, info.size.height),
        )
    };
    let to_srgb = header.has_icc || header.is_cmyk;
    let all_pages = plans.iter().any(|p| p.animated);
    // libvips' thumbnail already gives 8-bit sRGB or grey for 16-bit sources; make sure.
    let in_memory = |lazy: Image<'_>| -> Result<Image<'static>, VipsError> {
        let lazy = if lazy.is_uchar() {
            lazy
        } else {
            lazy.to_srgb8()?
        };
        lazy.materialize()
    };
    // Without shrink-on-load: the whole source decoded, as `inspect` budgeted for.
    let full_decode = |ignore_profile: bool| -> Result<Image<'static>, VipsError> {
        let opened = Image::open_pages(source, all_pages)?;
        let (opened, to_srgb) = if ignore_profile {
            (opened.without_profile()?, header.is_cmyk)
        } else {
            (opened, to_srgb)
        };
        in_memory(opened.thumbnail(target.width, target.height, to_srgb)?)
    };
    let libvips = || {
        Image::thumbnail_buffer(source, target.width, target.height, to_srgb, all_pages)
            .and_then(in_memory)
    };
    let (shrunk, decoder) = match jpeg_shrink(source, info, target, settings) {
        Some(plan) => {
            let image = match &plan.dc_only {
                // libvips would decode at 1/8 itself: its own call, on fewer scans.
                Some(dc) if plan.libvips_factor == 8 => {
                    Image::thumbnail_buffer(dc, target.width, target.height, to_srgb, false)
                }
                dc => Image::open_shrunk(dc.as_deref().unwrap_or(source), plan.factor)
                    .and_then(|image| image.thumbnail(target.width, target.height, to_srgb)),
            };
            match image.and_then(in_memory) {
                Ok(image) => (Ok(image), plan.decoder()),
                // Whatever libvips refuses here is asked of the source as it came, with
                // libvips' own answers (and retries) below.
                Err(_) => (libvips(), Decoder::Libvips),
            }
        }
        None => match crate::png_fast::thumbnail(source, header, target, to_srgb) {
            Some(image) => (Ok(image), Decoder::PngFast),
            None => (libvips(), Decoder::Libvips),
        },
    };
    // Sources other tools render get one more decode, never more.
    let (image, decoder) = match shrunk {
        Ok(image) => (image, decoder),
        // A profile lcms cannot link: sharp ignores it and takes the pixels as sRGB, and
        // so do we (a CMYK source through libvips' generic CMYK profile).
        Err(e) if to_srgb && header.has_icc && e.is_broken_profile() => {
            vips::warn("ignoring a broken ICC profile", &e);
            (
                full_decode(true).map_err(RenderError::Decode)?,
                Decoder::Libvips,
            )
        }
        // HEIF shrink-on-load decodes the file's embedded thumbnail instead of the image
        // and fails when that thumbnail is not the size it declares; the image is fine.
        Err(e)
            if matches!(info.format, SourceFormat::Heif | SourceFormat::Avif)
                && e.is_bad_dimensions() =>
        {
            vips::warn(
                "ignoring a broken embedded thumbnail: decoding the full image",
                &e,
            );
            (
                full_decode(false).map_err(RenderError::Decode)?,
                Decoder::Libvips,
            )
        }
        Err(e) => return Err(RenderError::Decode(e)),
    };
    if all_pages && image.pages_loaded() != info.frames {
        return Err(RenderError::Decode(VipsError::new(
            "load",
            format!("decoded {} of {} frames", image.pages_loaded(), info.frames),
        )));
    }
    Ok((image, decoder))
}

/// How a JPEG is shrunk on load when that differs from libvips' own choice.
struct JpegShrink {
    /// 1/`factor` of the source is decoded (2, 4 or 8).
    factor: u32,
    /// What libvips' `thumbnail` would have chosen.
    libvips_factor: u32,
    /// At 1/8, a progressive JPEG's DC-only rebuild.
    dc_only: Option<Vec<u8>>,
}

impl JpegShrink {
    fn decoder(&self) -> Decoder {
        match self.dc_only {
            Some(_) => Decoder::JpegDcOnly,
            None => Decoder::JpegShrink(self.factor),
        }
    }
}

/// Step 3's fast paths for JPEG: the shrink-on-load factor from the decode's shrink (the
/// smaller of the two axes', as libvips computes it) — libvips leaves a factor of two to
/// the resize (8 from a shrink of 16), sharp's default does not (8 from 8) — and at 1/8
/// a progressive JPEG read from its DC scans alone. `None`: libvips' own decode.
fn jpeg_shrink(
    source: &[u8],
    info: &SourceInfo,
    target: Size,
    settings: &RenderSettings,
) -> Option<JpegShrink> {
    if info.format != SourceFormat::Jpeg || target.width == 0 || target.height == 0 {
        return None;
    }
    let shrink = (f64::from(info.size.width) / f64::from(target.width))
        .min(f64::from(info.size.height) / f64::from(target.height));
    let factor_from = |leave: f64| match shrink / leave {
        s if s >= 8.0 => 8,
        s if s >= 4.0 => 4,
        s if s >= 2.0 => 2,
        _ => 1,
    };
    let libvips_factor = factor_from(2.0);
    let factor = if settings.fast_shrink_on_load {
        factor_from(1.0)
    } else {
        libvips_factor
    };
    let dc_only = if factor == 8 {
        crate::progressive::dc_only(source)
    } else {
        None
    };
    (dc_only.is_some() || factor != libvips_factor).then_some(JpegShrink {
        factor,
        libvips_factor,
        dc_only,
    })
}

/// Step 3b: placeholders from the decode (its first frame), shrunk to at most
/// [`placeholder::SAMPLE_SIDE`] px: BlurHash, dominant colour, LQIP. A failure here costs
/// the placeholder, never the render.
fn placeholder(image: &Image<'static>) -> Option<Placeholder> {
    let first;
    let frame = if image.pages_loaded() > 1 {
        first = image
            .extract(0, 0, image.width(), image.page_height())
            .and_then(|f| f.single_page())
            .ok()?;
        &first
    } else {
        image
    };
    let (w, h) = placeholder::fit_within(frame.width(), frame.height(), placeholder::SAMPLE_SIDE);
    let small = frame.resize_to(w, h).ok()?.materialize().ok()?;
    let pixels = Pixels::new(w, h, rgba(&small.pixels().ok()?, small.bands())?)?;
    // The LQIP: smaller until its data URI fits (16, 8, 4 px).
    let lqip = [
        placeholder::LQIP_SIDE,
        placeholder::LQIP_SIDE / 2,
        placeholder::LQIP_SIDE / 4,
    ]
    .into_iter()
    .find_map(|side| {
        let (lw, lh) = placeholder::fit_within(w, h, side);
        let tiny = small.resize_to(lw, lh).ok()?;
        let webp = tiny
            .save(SaveFormat::Webp {
                quality: 40,
                lossless: false,
            })
            .ok()?;
        placeholder::data_uri(&webp)
    })?;
    Some(Placeholder {
        blurhash: placeholder::blurhash(&pixels)?,
        dominant: placeholder::hex(placeholder::dominant(&pixels)),
        lqip,
    })
}

/// RGBA from 8-bit pixels of 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) bands.
fn rgba(raw: &[u8], bands: u32) -> Option<Vec<u8>> {
    let expand: fn(&[u8]) -> [u8; 4] = match bands {
        1 => |p| [p[0], p[0], p[0], 255],
        2 => |p| [p[0], p[0], p[0], p[1]],
        3 => |p| [p[0], p[1], p[2], 255],
        4 => |p| [p[0], p[1], p[2], p[3]],
        _ => return None,
    };
    Some(raw.chunks_exact(bands as usize).flat_map(expand).collect())
}

/// Size of one frame of `image` (the whole image unless it is an animation strip).
fn frame_size(image: &Image) -> Size {
    Size::new(image.width(), image.page_height())
}

/// Calls `f` on each frame of an animation strip and stacks the results again.
fn per_frame<'a>(
    image: &Image<'a>,
    mut f: impl FnMut(&Image<'a>, u32) -> Result<Image<'a>, VipsError>,
) -> Result<Image<'a>, RenderError> {
    let page_height = image.page_height();
    let pages = (0..image.pages_loaded())
        .map(|i| f(image, i * page_height))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RenderError::Decode)?;
    Image::join_pages(&pages).map_err(RenderError::Decode)
}

/// Step 4a: the variant's whole frame, from the smallest frame made so far that covers it.
/// Uniform frames that later variants may reuse are kept in memory (the cascade). An
/// animation strip is resized frame by frame (libvips keeps frame boundaries exact); a
/// still variant of an animation takes the first frame.
fn scale(
    frames: &mut Vec<Image<'static>>,
    plan: &Plan,
    more_to_come: bool,
    animated: bool,
) -> Result<Image<'static>, RenderError> {
    let want = plan.scaled;
    let base = (0..frames.len())
        .filter(|&i| frame_size(&frames[i]).covers(want))
        .min_by_key(|&i| frame_size(&frames[i]).pixels())
        .unwrap_or(0);
    let source = &frames[base];
    if !animated && source.pages_loaded() > 1 {
        let first = source
            .extract(0, 0, source.width(), source.page_height())
            .and_then(|frame| frame.single_page())
            .map_err(RenderError::Decode)?;
        if frame_size(&first) == want {
            return Ok(first);
        }
        return first
            .resize_to(want.width, want.height)
            .map_err(RenderError::Decode);
    }
    if frame_size(source) == want {
        // Same pixels, new reference.
        return source
            .extract(0, 0, want.width, source.height())
            .map_err(RenderError::Decode);
    }
    let resized = source
        .resize_to(want.width, want.height)
        .map_err(RenderError::Decode)?;
    if frame_size(&resized) != want || resized.pages_loaded() != source.pages_loaded() {
        return Err(RenderError::Decode(VipsError::new(
            "resize",
            format!(
                "expected {} frame(s) of {}×{}, got {} of {}×{}",
                source.pages_loaded(),
                want.width,
                want.height,
                resized.pages_loaded(),
                resized.width(),
                resized.page_height()
            ),
        )));
    }
    if more_to_come && plan.is_uniform() {
        let kept = resized.materialize().map_err(RenderError::Decode)?;
        let again = kept
            .extract(0, 0, kept.width(), kept.height())
            .map_err(RenderError::Decode)?;
        frames.push(kept);
        Ok(again)
    } else {
        Ok(resized)
    }
}

/// Step 4b: `cover` keeps the window geometry placed (gravity or focal point), in every
/// frame; with `g=attention|entropy` libvips' smart crop picks a window of that size.
fn crop<'a>(image: Image<'a>, p: &Planned) -> Result<Image<'a>, RenderError> {
    let Some(r) = p.plan.crop else {
        return Ok(image);
    };
    if let Some(measure) = interesting(p.request.spec.gravity) {
        // Smart crop reads the frame several times: give it pixels in memory.
        let frame = image.materialize().map_err(RenderError::Decode)?;
        return frame
            .smartcrop(r.width, r.height, measure)
            .map_err(RenderError::Decode);
    }
    if image.pages_loaded() > 1 {
        return per_frame(&image, |strip, top| {
            strip.extract(r.left, top + r.top, r.width, r.height)
        });
    }
    image
        .extract(r.left, r.top, r.width, r.height)
        .map_err(RenderError::Decode)
}

fn background_for(bands: u32, bg: Rgb, alpha: Option<f64>) -> Vec<f64> {
    let Rgb(r, g, b) = bg;
    let mut v = if bands <= 2 {
        // Greyscale: Rec. 601 luma of the colour.
        vec![0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b)]
    } else {
        vec![f64::from(r), f64::from(g), f64::from(b)]
    };
    v.extend(alpha);
    v
}

const WHITE: Rgb = Rgb(255, 255, 255);

/// Step 4c: `contain` places the image on its canvas: transparent when the format has
/// alpha and no background is given, else the background (white by default).
fn embed<'a>(
    image: Image<'a>,
    plan: &Plan,
    format: Format,
    bg: Option<Rgb>,
) -> Result<Image<'a>, RenderError> {
    let Some(at) = plan.embed else {
        return Ok(image);
    };
    let (image, fill) = match (format.has_alpha(), bg) {
        (true, None) => {
            let image = if image.has_alpha() {
                image
            } else {
                image.add_alpha().map_err(RenderError::Decode)?
            };
            let fill = background_for(image.bands() - 1, Rgb(0, 0, 0), Some(0.0));
            (image, fill)
        }
        (_, bg) => {
            let bg = bg.unwrap_or(WHITE);
            let image = flatten(image, Format::Jpeg, Some(bg))?;
            let fill = background_for(image.bands(), bg, None);
            (image, fill)
        }
    };
    if image.pages_loaded() > 1 {
        let (width, height) = (image.width(), image.page_height());
        return per_frame(&image, |strip, top| {
            strip
                .extract(0, top, width, height)?
                .embed(at.left, at.top, at.width, at.height, &fill)
        });
    }
    image
        .embed(at.left, at.top, at.width, at.height, &fill)
        .map_err(RenderError::Decode)
}

/// Step 4d: composite alpha onto the background when the format cannot carry it.
fn flatten(image: Image<'_>, format: Format, bg: Option<Rgb>) -> Result<Image<'_>, RenderError> {
    if format.has_alpha() || !image.has_alpha() {
        return Ok(image);
    }
    let bg = background_for(image.bands() - 1, bg.unwrap_or(WHITE), None);
    image.flatten(&bg).map_err(RenderError::Decode)
}

/// Step 4e: encode, metadata stripped; a strip of frames becomes an animation.
fn encode(
    image: &Image<'_>,
    p: &Planned,
    settings: &RenderSettings,
) -> Result<Vec<u8>, RenderError> {
    let spec = &p.request.spec;
    let format = p.format;
    let quality = spec.quality.unwrap_or(format.default_quality());
    let save = match format {
        Format::Jpeg => SaveFormat::Jpeg {
            quality,
            progressive: spec.progressive,
        },
        Format::Png => SaveFormat::Png {
            palette: spec.palette,
            // Quantisation quality (palette only): libvips' default is 100.
            quality: spec.quality.unwrap_or(100),
        },
        Format::Webp => SaveFormat::Webp {
            quality,
            lossless: spec.lossless,
        },
        Format::Avif => SaveFormat::Avif {
            quality,
            effort: settings.avif_effort,
        },
        Format::Gif => SaveFormat::Gif,
        Format::Original | Format::Auto => unreachable!("resolved by output_format"),
    };
    image
        .save(save)
        .map_err(|source| RenderError::Encode { format, source })
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
crate::classified!(RenderError);
