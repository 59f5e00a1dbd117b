//! Step 3: the one decode every variant is made from (and its fast paths for JPEG and
//! PNG), then the placeholders from a tiny copy of it.

use super::errors::RenderError;
use super::plan::Planned;
use super::types::{Decoder, SourceInfo};
use crate::geometry::Size;
use crate::placeholder::{self, Pixels, Placeholder};
use crate::settings::RenderSettings;
use crate::sniff::SourceFormat;
use crate::vips::{self, Header, Image, SaveFormat, VipsError};

/// Step 3: one decode, shrunk on load to the largest frame any variant needs.
pub(super) fn decode(
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
pub(super) fn placeholder(image: &Image<'static>) -> Option<Placeholder> {
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
