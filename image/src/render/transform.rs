//! Steps 4a–4d, per variant: scale (the cascade), crop, embed and flatten, frame by
//! frame for an animation strip.

use super::errors::RenderError;
use super::plan::Planned;
use crate::geometry::{Plan, Size};
use crate::spec::{Format, Gravity, Rgb};
use crate::vips::{Image, Interesting, VipsError};

fn interesting(gravity: Gravity) -> Option<Interesting> {
    match gravity {
        Gravity::Attention => Some(Interesting::Attention),
        Gravity::Entropy => Some(Interesting::Entropy),
        _ => None,
    }
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
pub(super) fn scale(
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
pub(super) fn crop<'a>(image: Image<'a>, p: &Planned) -> Result<Image<'a>, RenderError> {
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
pub(super) fn embed<'a>(
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
pub(super) fn flatten(
    image: Image<'_>,
    format: Format,
    bg: Option<Rgb>,
) -> Result<Image<'_>, RenderError> {
    if format.has_alpha() || !image.has_alpha() {
        return Ok(image);
    }
    let bg = background_for(image.bands() - 1, bg.unwrap_or(WHITE), None);
    image.flatten(&bg).map_err(RenderError::Decode)
}
