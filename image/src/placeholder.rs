//! Placeholders a page paints before the image arrives, computed from pixels the render
//! already decoded (a tiny copy of its one decode, never a second one) and written into
//! the manifest:
//!
//! - **BlurHash** with [`COMPONENTS`] = 4 × 3 components (4 across, 3 down: enough for
//!   a landscape's sky and ground; woltapp/blurhash's recommended default), over a copy at
//!   most [`SAMPLE_SIDE`] px on its longer side, so its cost does not grow with the source;
//! - the **dominant colour** as `#rrggbb`: sharp's method (`stats().dominant`: a 16 × 16 × 16
//!   histogram of the sRGB pixels, fully transparent ones left out), answering the mean
//!   colour of the fullest bin rather than its centre, so a flat colour comes back exact;
//! - a **LQIP**: a WebP data URI at most [`LQIP_MAX_BYTES`] long, of a copy at most
//!   [`LQIP_SIDE`] px on its longer side (smaller when it would not fit).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// BlurHash components, across and down.
pub const COMPONENTS: (u32, u32) = (4, 3);

/// Longer side of the copy the BlurHash and the dominant colour are computed on.
pub const SAMPLE_SIDE: u32 = 64;

/// Longer side of the LQIP, at first.
pub const LQIP_SIDE: u32 = 16;

/// The LQIP data URI is at most this long.
pub const LQIP_MAX_BYTES: usize = 1024;

/// What a page can paint before a source's image arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Placeholder {
    /// BlurHash of the image ([`COMPONENTS`] components).
    pub blurhash: String,
    /// Dominant colour, `#rrggbb`.
    pub dominant: String,
    /// A tiny WebP as a `data:` URI, at most 1 KiB.
    pub lqip: String,
}

/// RGBA pixels, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

impl Pixels {
    /// `None` unless `rgba` holds exactly width × height pixels of 4 bytes.
    pub fn new(width: u32, height: u32, rgba: Vec<u8>) -> Option<Pixels> {
        (width > 0 && height > 0 && rgba.len() as u64 == u64::from(width) * u64::from(height) * 4)
            .then_some(Pixels {
                width,
                height,
                rgba,
            })
    }
}

/// The BlurHash of `pixels`.
pub fn blurhash(pixels: &Pixels) -> Option<String> {
    blurhash::encode(
        COMPONENTS.0,
        COMPONENTS.1,
        pixels.width,
        pixels.height,
        &pixels.rgba,
    )
    .ok()
}

/// The dominant colour of `pixels` (sharp's 4096-bin histogram; the mean of the fullest
/// bin). Fully transparent pixels do not count; an image with no other is black.
pub fn dominant(pixels: &Pixels) -> [u8; 3] {
    let mut count = vec![0u32; 4096];
    let mut sums = vec![[0u64; 3]; 4096];
    for px in pixels.rgba.chunks_exact(4) {
        if px[3] == 0 {
            continue;
        }
        let bin =
            usize::from(px[0] >> 4) << 8 | usize::from(px[1] >> 4) << 4 | usize::from(px[2] >> 4);
        count[bin] += 1;
        for c in 0..3 {
            sums[bin][c] += u64::from(px[c]);
        }
    }
    // The fullest bin; the first of equals, so the answer is deterministic.
    let (bin, &n) = count
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        .expect("4096 bins");
    if n == 0 {
        return [0, 0, 0];
    }
    let mean = |c: usize| ((sums[bin][c] + u64::from(n) / 2) / u64::from(n)) as u8;
    [mean(0), mean(1), mean(2)]
}

/// `#rrggbb`.
pub fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// A `data:` URI of an encoded WebP, when it fits in [`LQIP_MAX_BYTES`].
pub fn data_uri(webp: &[u8]) -> Option<String> {
    const PREFIX: &str = "data:image/webp;base64,";
    let encoded = base64::engine::general_purpose::STANDARD.encode(webp);
    (PREFIX.len() + encoded.len() <= LQIP_MAX_BYTES).then(|| format!("{PREFIX}{encoded}"))
}

/// The size to shrink a `width` × `height` image to so its longer side is at most `side`.
pub fn fit_within(width: u32, height: u32, side: u32) -> (u32, u32) {
    let longer = width.max(height);
    if longer <= side {
        return (width, height);
    }
    let scale = |len: u32| {
        ((u64::from(len) * u64::from(side) + u64::from(longer) / 2) / u64::from(longer)).max(1)
            as u32
    };
    (scale(width), scale(height))
}

// ---- colour measures (how the placeholders are checked) ----

/// An sRGB component (0–255) in linear light (0–1).
fn to_linear(c: f64) -> f64 {
    let c = c / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// A linear-light component (0–1) as sRGB (0–255).
fn to_srgb(v: f64) -> f64 {
    255.0
        * if v <= 0.003_130_8 {
            v * 12.92
        } else {
            1.055 * v.powf(1.0 / 2.4) - 0.055
        }
}

/// CIE L*a*b* (D65) of an sRGB colour.
pub fn lab(rgb: [f64; 3]) -> [f64; 3] {
    let [r, g, b] = rgb.map(to_linear);
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 216.0 / 24389.0 {
            t.cbrt()
        } else {
            (24389.0 / 27.0 * t + 16.0) / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIE76 ΔE between two sRGB colours.
pub fn delta_e(a: [f64; 3], b: [f64; 3]) -> f64 {
    let (a, b) = (lab(a), lab(b));
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The mean colour of RGBA pixels, averaged in linear light (as light mixes, and as
/// BlurHash's DC term is), as sRGB.
pub fn mean_rgb(rgba: &[u8]) -> [f64; 3] {
    let n = (rgba.len() / 4) as f64;
    let mut sum = [0.0; 3];
    for px in rgba.chunks_exact(4) {
        for c in 0..3 {
            sum[c] += to_linear(f64::from(px[c]));
        }
    }
    sum.map(|s| to_srgb(s / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: u32, height: u32, rgba: [u8; 4]) -> Pixels {
        let data = rgba.repeat((width * height) as usize);
        Pixels::new(width, height, data).unwrap()
    }

    #[test]
    fn dominant_is_the_fullest_bin_not_the_mean() {
        assert_eq!(dominant(&solid(8, 8, [37, 99, 250, 255])), [37, 99, 250]);
        // 70 % one colour, 30 % another: the first wins, unlike the mean.
        let mut px = solid(10, 10, [200, 30, 30, 255]);
        for p in px.rgba.chunks_exact_mut(4).take(30) {
            p.copy_from_slice(&[20, 20, 220, 255]);
        }
        assert_eq!(dominant(&px), [200, 30, 30]);
        // Transparent pixels do not count, however many.
        for p in px.rgba.chunks_exact_mut(4).skip(30).take(60) {
            p.copy_from_slice(&[255, 255, 255, 0]);
        }
        assert_eq!(dominant(&px), [20, 20, 220]);
        assert_eq!(dominant(&solid(2, 2, [9, 9, 9, 0])), [0, 0, 0]);
        assert_eq!(hex([1, 171, 255]), "#01abff");
    }

    /// The BlurHash decoded back keeps the source's mean colour (in linear light) within
    /// ΔE 3 (CIE76): the format quantises the mean to 8 bits sRGB and the AC terms to 19
    /// levels.
    const MAX_MEAN_DELTA_E: f64 = 3.0;

    #[test]
    fn blurhash_keeps_the_mean_colour() {
        // A flat colour, and two halves of very different colours.
        let mut halves = solid(40, 30, [230, 200, 30, 255]);
        for row in halves.rgba.chunks_exact_mut(40 * 4).skip(15) {
            for p in row.chunks_exact_mut(4) {
                p.copy_from_slice(&[20, 60, 160, 255]);
            }
        }
        for px in [solid(32, 24, [200, 40, 40, 255]), halves] {
            let hash = blurhash(&px).unwrap();
            let back = blurhash::decode(&hash, px.width, px.height, 1.0).unwrap();
            let de = delta_e(mean_rgb(&back), mean_rgb(&px.rgba));
            assert!(de <= MAX_MEAN_DELTA_E, "ΔE {de:.2} for {hash}");
        }
        // 4 × 3 components: 1 size + 1 max-AC + 4 DC + 2 per AC component.
        let hash = blurhash(&solid(8, 8, [1, 2, 3, 255])).unwrap();
        assert_eq!(hash.len(), 1 + 1 + 4 + 2 * (4 * 3 - 1));
    }

    #[test]
    fn sizes_and_uris_are_bounded() {
        assert_eq!(fit_within(4000, 3000, 64), (64, 48));
        assert_eq!(fit_within(10_000, 10, 64), (64, 1));
        assert_eq!(fit_within(30, 20, 64), (30, 20));
        assert!(data_uri(&[0u8; 100])
            .unwrap()
            .starts_with("data:image/webp;base64,"));
        assert_eq!(data_uri(&[0u8; 800]), None);
        assert!(Pixels::new(2, 2, vec![0; 15]).is_none());
    }
}
