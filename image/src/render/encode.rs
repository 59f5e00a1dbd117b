//! Step 4e: a variant's pixels encoded in its output format, metadata stripped.

use super::errors::RenderError;
use super::plan::Planned;
use crate::settings::RenderSettings;
use crate::spec::Format;
use crate::vips::{Image, SaveFormat};

/// Step 4e: encode, metadata stripped; a strip of frames becomes an animation.
pub(super) fn encode(
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
