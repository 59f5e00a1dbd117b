//! The render pipeline: one source in, any number of variants out, from one decode.
//!
//! Steps, in order, each a small function below:
//! 1. [`inspect`]: sniff the magic bytes (allow-list), read the header without decoding
//!    pixels, enforce the byte and pixel limits, work out the size after EXIF orientation;
//! 2. [`plan_variants`]: pure geometry per variant ([`crate::geometry`]), output limits;
//! 3. [`decode`]: one shrink-on-load decode (libvips `thumbnail`) straight to the largest
//!    frame any variant needs, auto-oriented, converted to sRGB when the source carries an
//!    ICC profile or is CMYK, held in memory;
//! 4. per variant, largest first: [`scale`] from the smallest frame already made that
//!    covers it (the cascade), [`crop`] (cover), [`embed`] (contain), [`flatten`] alpha
//!    when the format has none, [`encode`] with metadata stripped.

use crate::config::{Limits, RenderSettings};
use crate::geometry::{self, Plan, Request, Size};
use crate::sniff::{sniff, SniffError, SourceFormat};
use crate::spec::{Format, Rgb, VariantSpec};
use crate::vips::{self, Header, Image, SaveFormat, VipsError};

/// Why a source could not be rendered. All of these are properties of the input or the
/// configuration: retrying the same bytes gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Unsupported(#[from] SniffError),
    #[error("source is {bytes} bytes, over the limit of {limit}")]
    InputTooLarge { bytes: u64, limit: u64 },
    #[error("source is {width}×{height} = {pixels} pixels, over the limit of {limit}")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error(
        "variant {variant:?} would be {width}×{height}, over the limit of {limit} px per side"
    )]
    OutputTooLarge {
        variant: String,
        width: u32,
        height: u32,
        limit: u32,
    },
    #[error("corrupt image header: {0}")]
    Header(VipsError),
    #[error("corrupt or truncated image: {0}")]
    Decode(VipsError),
    #[error("cannot encode {format}: {source}")]
    Encode {
        format: &'static str,
        source: VipsError,
    },
    #[error("image library unavailable: {0}")]
    Init(VipsError),
}

/// What was learnt about the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub format: SourceFormat,
    /// Size after EXIF orientation.
    pub size: Size,
    pub bytes: u64,
    pub has_alpha: bool,
}

/// One requested variant.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub size: Size,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOutput {
    pub source: SourceInfo,
    pub variants: Vec<Rendered>,
}

/// The output format a spec resolves to for a given source.
pub fn output_format(spec_format: Format, source: SourceFormat) -> Format {
    match spec_format {
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
    vips::init(settings.vips_threads).map_err(RenderError::Init)?;
    let (info, header) = inspect(source, limits)?;
    let plans = plan_variants(&info, variants, limits)?;
    if plans.is_empty() {
        return Ok(RenderOutput {
            source: info,
            variants: Vec::new(),
        });
    }
    let first = decode(source, &info, &header, &plans)?;

    // Largest first, so each variant can be scaled from a frame just above it.
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(plans[i].plan.scaled.pixels()));
    let mut frames: Vec<Image<'static>> = vec![first];
    let mut out: Vec<Option<Rendered>> = vec![None; plans.len()];
    for (pos, &i) in order.iter().enumerate() {
        let p = &plans[i];
        let more_to_come = pos + 1 < order.len();
        let frame = scale(&mut frames, &p.plan, more_to_come)?;
        let image = crop(frame, &p.plan)?;
        let image = embed(image, &p.plan, p.format, p.request.spec.background)?;
        let image = flatten(image, p.format, p.request.spec.background)?;
        let bytes = encode(&image, p.format, p.request.spec.quality, settings)?;
        out[i] = Some(Rendered {
            name: p.request.name.clone(),
            spec: p.request.spec.clone(),
            format: p.format,
            size: p.plan.output,
            bytes,
        });
    }
    Ok(RenderOutput {
        source: info,
        variants: out
            .into_iter()
            .map(|r| r.expect("every variant rendered"))
            .collect(),
    })
}

/// Step 1: allow-listed format, header, limits — no pixels decoded.
pub fn inspect(source: &[u8], limits: &Limits) -> Result<(SourceInfo, Header), RenderError> {
    let bytes = source.len() as u64;
    if bytes > limits.max_input_bytes {
        return Err(RenderError::InputTooLarge {
            bytes,
            limit: limits.max_input_bytes,
        });
    }
    let format = sniff(source)?;
    let header = Image::open(source).map_err(RenderError::Header)?.header();
    let pixels = u64::from(header.width) * u64::from(header.height);
    if pixels > limits.max_input_pixels {
        return Err(RenderError::TooManyPixels {
            width: header.width,
            height: header.height,
            pixels,
            limit: limits.max_input_pixels,
        });
    }
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
        },
        header,
    ))
}

struct Planned<'r> {
    request: &'r VariantRequest,
    plan: Plan,
    format: Format,
}

/// Step 2: geometry per variant, and the output-size limit.
fn plan_variants<'r>(
    info: &SourceInfo,
    variants: &'r [VariantRequest],
    limits: &Limits,
) -> Result<Vec<Planned<'r>>, RenderError> {
    variants
        .iter()
        .map(|request| {
            let spec = &request.spec;
            let plan = geometry::plan(
                info.size,
                &Request {
                    width: spec.width,
                    height: spec.height,
                    fit: spec.fit,
                    gravity: spec.gravity,
                    enlarge: spec.enlarge,
                },
            );
            let limit = limits.max_output_dimension;
            let biggest = plan
                .output
                .width
                .max(plan.output.height)
                .max(plan.scaled.width)
                .max(plan.scaled.height);
            if biggest > limit {
                return Err(RenderError::OutputTooLarge {
                    variant: request.name.clone(),
                    width: plan.output.width,
                    height: plan.output.height,
                    limit,
                });
            }
            Ok(Planned {
                request,
                plan,
                format: output_format(spec.format, info.format),
            })
        })
        .collect()
}

/// Step 3: one decode, shrunk on load to the largest frame any variant needs.
fn decode(
    source: &[u8],
    info: &SourceInfo,
    header: &Header,
    plans: &[Planned],
) -> Result<Image<'static>, RenderError> {
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
    let lazy = Image::thumbnail_buffer(source, target.width, target.height, to_srgb)
        .map_err(RenderError::Decode)?;
    lazy.materialize().map_err(RenderError::Decode)
}

/// Step 4a: the variant's whole frame, from the smallest frame made so far that covers it.
/// Uniform frames that later variants may reuse are kept in memory (the cascade).
fn scale(
    frames: &mut Vec<Image<'static>>,
    plan: &Plan,
    more_to_come: bool,
) -> Result<Image<'static>, RenderError> {
    let want = plan.scaled;
    let size_of = |img: &Image| Size::new(img.width(), img.height());
    let base = (0..frames.len())
        .filter(|&i| size_of(&frames[i]).covers(want))
        .min_by_key(|&i| size_of(&frames[i]).pixels())
        .unwrap_or(0);
    if size_of(&frames[base]) == want {
        // Same pixels, new reference.
        return frames[base]
            .extract(0, 0, want.width, want.height)
            .map_err(RenderError::Decode);
    }
    let resized = frames[base]
        .resize_to(want.width, want.height)
        .map_err(RenderError::Decode)?;
    if more_to_come && plan.is_uniform() {
        let kept = resized.materialize().map_err(RenderError::Decode)?;
        let again = kept
            .extract(0, 0, want.width, want.height)
            .map_err(RenderError::Decode)?;
        frames.push(kept);
        Ok(again)
    } else {
        Ok(resized)
    }
}

/// Step 4b: `cover` keeps the gravity-placed window.
fn crop<'a>(image: Image<'a>, plan: &Plan) -> Result<Image<'a>, RenderError> {
    match plan.crop {
        Some(r) => image
            .extract(r.left, r.top, r.width, r.height)
            .map_err(RenderError::Decode),
        None => Ok(image),
    }
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

/// Step 4e: encode, metadata stripped.
fn encode(
    image: &Image<'_>,
    format: Format,
    quality: Option<u8>,
    settings: &RenderSettings,
) -> Result<Vec<u8>, RenderError> {
    let quality = quality.unwrap_or(format.default_quality());
    let save = match format {
        Format::Jpeg => SaveFormat::Jpeg { quality },
        Format::Png => SaveFormat::Png,
        Format::Webp => SaveFormat::Webp { quality },
        Format::Avif => SaveFormat::Avif {
            quality,
            effort: settings.avif_effort,
        },
        Format::Gif => SaveFormat::Gif,
        Format::Original => unreachable!("resolved by output_format"),
    };
    image.save(save).map_err(|source| RenderError::Encode {
        format: format.as_str(),
        source,
    })
}
