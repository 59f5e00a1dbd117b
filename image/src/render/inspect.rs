//! Step 1: what the source is and whether it may be decoded, from its bytes and its
//! header alone.

use super::errors::{RenderError, Unsupported};
use super::types::SourceInfo;
use crate::geometry::Size;
use crate::settings::Limits;
use crate::sniff::{sniff, SourceFormat};
use crate::vips::{Header, Image};

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
pub(super) fn check_decoded(
    header: &Header,
    frames: u32,
    limits: &Limits,
) -> Result<(), RenderError> {
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
