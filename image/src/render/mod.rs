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
//!
//! # Files
//! - `mod.rs`: [`render`] and [`render_owned`], the steps above in order, and the clock
//!   that times them;
//! - `errors.rs`: [`RenderError`] and [`Unsupported`];
//! - `types.rs`: what a render takes and gives ([`VariantRequest`], [`SourceInfo`],
//!   [`RenderOutput`], [`Rendered`], [`Skipped`], [`Phase`], [`Decoder`]);
//! - `inspect.rs`: step 1; `plan.rs`: step 2 (and [`output_format`], [`is_animated`]);
//!   `decode.rs`: step 3 and the placeholders; `transform.rs`: steps 4a–4d (scale, crop,
//!   embed, flatten); `encode.rs`: step 4e.
//!
//! Files point one way: `errors` ← `types` ← `inspect` ← `plan` ← `decode`, `transform`,
//! `encode` ← `mod.rs`.

mod decode;
mod encode;
mod errors;
mod inspect;
mod plan;
mod transform;
mod types;

use std::borrow::Cow;

pub use errors::{RenderError, Unsupported};
pub use inspect::inspect;
pub use plan::{is_animated, output_format};
pub use types::{Decoder, Phase, RenderOutput, Rendered, Skipped, SourceInfo, VariantRequest};

use decode::{decode, placeholder};
use encode::encode;
use plan::plan_variants;
use transform::{crop, embed, flatten, scale};

use crate::settings::{Limits, RenderSettings};
use crate::spec::Format;
use crate::vips::{self, Image};

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
