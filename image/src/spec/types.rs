//! What a spec is made of: [`VariantSpec`] and the values of its keys ([`Fit`],
//! [`Gravity`], [`Format`], [`Rgb`], [`FocalPoint`], [`Dpr`]), with their names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Largest width or height a spec may ask for (WebP's own limit is 16383).
pub const MAX_DIMENSION: u32 = 16_383;

/// How the image is fitted into the `w`×`h` box: sharp's semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the box, keeping the aspect ratio, cropping what overflows (by gravity).
    Cover,
    /// Fit inside the box, keeping the aspect ratio, letterboxed to exactly the box.
    Contain,
    /// Stretch to exactly the box, ignoring the aspect ratio.
    Fill,
    /// Fit inside the box, keeping the aspect ratio; output may be smaller than the box.
    #[default]
    Inside,
    /// Cover the box, keeping the aspect ratio; output may be larger than the box.
    Outside,
}

/// Where the crop window (cover) or the image on its canvas (contain) sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gravity {
    #[default]
    Centre,
    North,
    NorthEast,
    East,
    SouthEast,
    South,
    SouthWest,
    West,
    NorthWest,
    /// Smart crop (cover only): the window libvips finds most interesting by its
    /// attention model (skin tones, saturated colour, edges).
    Attention,
    /// Smart crop (cover only): the window with the highest entropy.
    Entropy,
}

/// Output encoding. `Original` keeps the source's format (TIFF becomes PNG, HEIF becomes
/// AVIF). `Auto` is chosen per request from what the client accepts
/// (`crate::negotiate`): AVIF, then WebP, then JPEG (PNG for a source with alpha); its
/// URLs end in `.auto` and each format it gives is stored under its own extension.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    Avif,
    Gif,
    #[default]
    Original,
    Auto,
}

/// An sRGB colour, written as six hex digits (`bg=ff8800`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// A focal point in thousandths of the (oriented) source's width and height, each
/// 0–1000: `fx=0.25,fy=0.5` is `FocalPoint { x: 250, y: 500 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FocalPoint {
    pub x: u16,
    pub y: u16,
}

/// Device pixel ratio in tenths, 10–40 (`dpr=1.5` is `Dpr(15)`); multiplies `w` and `h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dpr(u8);

impl Dpr {
    pub const ONE: Dpr = Dpr(10);
    pub const MIN_TENTHS: u8 = 10;
    pub const MAX_TENTHS: u8 = 40;

    /// `tenths` must be 10–40.
    pub fn from_tenths(tenths: u8) -> Option<Dpr> {
        (Self::MIN_TENTHS..=Self::MAX_TENTHS)
            .contains(&tenths)
            .then_some(Dpr(tenths))
    }
    pub fn tenths(self) -> u8 {
        self.0
    }
    /// `len` device-independent pixels in device pixels (rounded, at least 1).
    pub fn apply(self, len: u32) -> u32 {
        let scaled = (u64::from(len) * u64::from(self.0) + 5) / 10;
        u32::try_from(scaled).unwrap_or(u32::MAX).max(1)
    }
}

impl Default for Dpr {
    fn default() -> Self {
        Dpr::ONE
    }
}

impl fmt::Display for Dpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 % 10 {
            0 => write!(f, "{}", self.0 / 10),
            tenth => write!(f, "{}.{}", self.0 / 10, tenth),
        }
    }
}

/// One derivative's recipe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct VariantSpec {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub gravity: Gravity,
    pub format: Format,
    /// 1–100; `None` means the output format's default.
    pub quality: Option<u8>,
    pub background: Option<Rgb>,
    pub enlarge: bool,
    /// Cover crop centred as near this point as the image allows (`fx`, `fy`).
    pub focus: Option<FocalPoint>,
    /// Multiplies the requested box (`dpr`).
    pub dpr: Dpr,
    /// Progressive (interlaced) JPEG (`pj`).
    pub progressive: bool,
    /// PNG quantised to an 8-bit palette (`palette`).
    pub palette: bool,
    /// Lossless WebP (`lossless`).
    pub lossless: bool,
}

/// Every key, in canonical order.
pub const KEYS: [&str; 14] = [
    "w", "h", "fit", "g", "fm", "q", "bg", "enlarge", "fx", "fy", "dpr", "pj", "palette",
    "lossless",
];

impl Fit {
    pub const ALL: [Fit; 5] = [
        Fit::Cover,
        Fit::Contain,
        Fit::Fill,
        Fit::Inside,
        Fit::Outside,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Fit::Cover => "cover",
            Fit::Contain => "contain",
            Fit::Fill => "fill",
            Fit::Inside => "inside",
            Fit::Outside => "outside",
        }
    }
}

impl Gravity {
    pub const ALL: [Gravity; 11] = [
        Gravity::Centre,
        Gravity::North,
        Gravity::NorthEast,
        Gravity::East,
        Gravity::SouthEast,
        Gravity::South,
        Gravity::SouthWest,
        Gravity::West,
        Gravity::NorthWest,
        Gravity::Attention,
        Gravity::Entropy,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Gravity::Centre => "centre",
            Gravity::North => "north",
            Gravity::NorthEast => "northeast",
            Gravity::East => "east",
            Gravity::SouthEast => "southeast",
            Gravity::South => "south",
            Gravity::SouthWest => "southwest",
            Gravity::West => "west",
            Gravity::NorthWest => "northwest",
            Gravity::Attention => "attention",
            Gravity::Entropy => "entropy",
        }
    }
    /// Whether the crop window is found by libvips' smart crop rather than placed.
    pub fn is_smart(self) -> bool {
        matches!(self, Gravity::Attention | Gravity::Entropy)
    }
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Jpeg,
        Format::Png,
        Format::Webp,
        Format::Avif,
        Format::Gif,
        Format::Original,
        Format::Auto,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Avif => "avif",
            Format::Gif => "gif",
            Format::Original => "original",
            Format::Auto => "auto",
        }
    }
    /// File extension of an encoded output and of its URL (`None` for `Original`, which
    /// depends on the source; `auto` for `Auto`, whose URL ends in `.auto` and whose stored
    /// objects carry the extension of the format each request got).
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Format::Jpeg => Some("jpg"),
            Format::Png => Some("png"),
            Format::Webp => Some("webp"),
            Format::Avif => Some("avif"),
            Format::Gif => Some("gif"),
            Format::Original => None,
            Format::Auto => Some("auto"),
        }
    }
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            Format::Jpeg => Some("image/jpeg"),
            Format::Png => Some("image/png"),
            Format::Webp => Some("image/webp"),
            Format::Avif => Some("image/avif"),
            Format::Gif => Some("image/gif"),
            Format::Original | Format::Auto => None,
        }
    }
    /// Whether the encoded format can carry an alpha channel.
    pub fn has_alpha(self) -> bool {
        matches!(
            self,
            Format::Png | Format::Webp | Format::Avif | Format::Gif
        )
    }
    /// Quality used when the spec gives none (sharp's defaults).
    pub fn default_quality(self) -> u8 {
        match self {
            Format::Avif => 50,
            _ => 80,
        }
    }
    /// Format for an output file extension (`jpg`, `jpeg`, `png`, `webp`, `avif`, `gif`).
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "webp" => Some(Format::Webp),
            "avif" => Some(Format::Avif),
            "gif" => Some(Format::Gif),
            _ => None,
        }
    }
}

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpr_multiplies_and_rounds() {
        let d = |t| Dpr::from_tenths(t).unwrap();
        assert_eq!(d(10).apply(320), 320);
        assert_eq!(d(20).apply(320), 640);
        assert_eq!(d(15).apply(333), 500, "499.5 rounds up");
        assert_eq!(d(40).apply(1), 4);
        assert_eq!(Dpr::from_tenths(9), None);
        assert_eq!(Dpr::from_tenths(41), None);
    }
}
