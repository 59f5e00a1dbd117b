//! Step 2: each variant's geometry, output format and limits, before any pixel is
//! decoded; a variant refused for a reason of its own is skipped, not fatal.

use std::borrow::Cow;

use super::errors::{RenderError, Unsupported};
use super::inspect::check_decoded;
use super::types::{Skipped, SourceInfo, VariantRequest};
use crate::geometry::{self, Plan, Request};
use crate::settings::Limits;
use crate::sniff::SourceFormat;
use crate::spec::Format;
use crate::vips::Header;

pub(super) struct Planned<'r> {
    pub(super) request: &'r VariantRequest,
    pub(super) plan: Plan,
    pub(super) format: Format,
    /// Every frame of an animated source is kept.
    pub(super) animated: bool,
}

/// Whether a variant in `format` of this source keeps its animation.
pub fn is_animated(info: &SourceInfo, format: Format) -> bool {
    info.frames > 1
        && matches!(info.format, SourceFormat::Gif | SourceFormat::Webp)
        && matches!(format, Format::Gif | Format::Webp)
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

/// Step 2: geometry per variant (box × `dpr`), its limits (output sides, the frame it is
/// cropped from, a kept animation's pixels), whether it is animated. A variant refused
/// for a reason of its own ([`RenderError::is_variant_specific`]) is [`Skipped`]; an
/// input limit refuses the whole source.
pub(super) fn plan_variants<'r>(
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
