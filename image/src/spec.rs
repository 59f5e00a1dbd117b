//! Variant specs: what a derivative looks like, and its one canonical text form.
//!
//! A spec is a comma-separated list of `key=value` pairs, for example
//! `w=320,h=320,fit=cover,fm=webp,q=75`. The canonical form prints the keys in a
//! fixed order (`w, h, fit, g, fm, q, bg, enlarge, fx, fy, dpr, pj, palette, lossless`)
//! and leaves out every value that equals its default, so one spec has exactly one text
//! form; that text is part of the derivative's name (see `crate::naming`).
//!
//! Defaults: `fit=inside`, `g=centre`, `fm=original`, quality per output format,
//! no background (white when flattening, transparent when the format has alpha),
//! `enlarge=false`, no focal point, `dpr=1`, `pj=false`, `palette=false`,
//! `lossless=false`.
//!
//! Rules between keys (each a typed [`SpecError`]): `fx` and `fy` come together, only
//! with `fit=cover` and without `g`; `g=attention|entropy` needs `fit=cover`; `dpr`
//! needs `w` or `h`; `pj` needs `fm=jpeg`, `palette` needs `fm=png`, `lossless` needs
//! `fm=webp`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// Why a spec's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty spec: give at least one of w, h or fm")]
    Empty,
    #[error("`{0}` is not a key=value pair")]
    NotAPair(String),
    #[error(
        "unknown key `{0}` (known: w, h, fit, g, fm, q, bg, enlarge, fx, fy, dpr, pj, palette, lossless)"
    )]
    UnknownKey(String),
    #[error("key `{0}` is given twice")]
    DuplicateKey(String),
    #[error("invalid value `{value}` for `{key}`: {expected}")]
    InvalidValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("`{key}` requires {requires}")]
    Requires {
        key: &'static str,
        requires: &'static str,
    },
    #[error("`{key}` cannot be combined with {with}")]
    Conflict {
        key: &'static str,
        with: &'static str,
    },
    #[error("spec `{given}` is not in canonical form; use `{canonical}`")]
    NotCanonical { given: String, canonical: String },
}

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

fn parse_enum<T: Copy>(
    key: &'static str,
    value: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    expected: &'static str,
) -> Result<T, SpecError> {
    all.iter()
        .copied()
        .find(|v| name(*v) == value)
        .ok_or_else(|| SpecError::InvalidValue {
            key,
            value: value.to_string(),
            expected,
        })
}

fn parse_dimension(key: &'static str, value: &str) -> Result<u32, SpecError> {
    let invalid = || SpecError::InvalidValue {
        key,
        value: value.to_string(),
        expected: "a whole number from 1 to 16383 without sign or leading zeros",
    };
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match value.parse::<u32>() {
        Ok(n) if (1..=MAX_DIMENSION).contains(&n) => Ok(n),
        _ => Err(invalid()),
    }
}

fn parse_quality(value: &str) -> Result<u8, SpecError> {
    let invalid = || SpecError::InvalidValue {
        key: "q",
        value: value.to_string(),
        expected: "a whole number from 1 to 100 without sign or leading zeros",
    };
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match value.parse::<u8>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(invalid()),
    }
}

fn parse_rgb(value: &str) -> Result<Rgb, SpecError> {
    let invalid = || SpecError::InvalidValue {
        key: "bg",
        value: value.to_string(),
        expected: "six lowercase hex digits, e.g. ff8800",
    };
    if value.len() != 6
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid());
    }
    let byte = |i: usize| u8::from_str_radix(&value[i..i + 2], 16).map_err(|_| invalid());
    Ok(Rgb(byte(0)?, byte(2)?, byte(4)?))
}

fn parse_bool(key: &'static str, value: &str) -> Result<bool, SpecError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SpecError::InvalidValue {
            key,
            value: value.to_string(),
            expected: "true or false",
        }),
    }
}

/// `0`–`1` with up to three decimals (`0.25`, `1`, `0.125`), in thousandths.
fn parse_fraction(key: &'static str, value: &str) -> Result<u16, SpecError> {
    let invalid = || SpecError::InvalidValue {
        key,
        value: value.to_string(),
        expected: "a number from 0 to 1 with at most 3 decimals, e.g. 0.25",
    };
    let (int, frac) = match value.split_once('.') {
        Some((int, frac)) if !frac.is_empty() && frac.len() <= 3 => (int, frac),
        Some(_) => return Err(invalid()),
        None => (value, ""),
    };
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let whole: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return Err(invalid()),
    };
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0'));
    let total = whole * 1000 + thousandths;
    if total > 1000 {
        return Err(invalid());
    }
    Ok(total)
}

/// Thousandths as the shortest decimal: `250` → `0.25`, `1000` → `1`, `0` → `0`.
fn fmt_fraction(thousandths: u16) -> String {
    let whole = thousandths / 1000;
    let frac = thousandths % 1000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:03}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `1`–`4`, whole or with one decimal (`1.5`).
fn parse_dpr(value: &str) -> Result<Dpr, SpecError> {
    let invalid = || SpecError::InvalidValue {
        key: "dpr",
        value: value.to_string(),
        expected: "a number from 1 to 4 with at most one decimal, e.g. 2 or 1.5",
    };
    let bytes = value.as_bytes();
    let tenths = match bytes {
        [d] if d.is_ascii_digit() => (d - b'0') * 10,
        [d, b'.', t] if d.is_ascii_digit() && t.is_ascii_digit() => (d - b'0') * 10 + (t - b'0'),
        _ => return Err(invalid()),
    };
    Dpr::from_tenths(tenths).ok_or_else(invalid)
}

impl VariantSpec {
    /// Parses the canonical form only: the text must be exactly what [`fmt::Display`]
    /// prints. This is what URLs and names use, so one spec never gets two names.
    pub fn parse_canonical(text: &str) -> Result<VariantSpec, SpecError> {
        let spec: VariantSpec = text.parse()?;
        let canonical = spec.to_string();
        if canonical != text {
            return Err(SpecError::NotCanonical {
                given: text.to_string(),
                canonical,
            });
        }
        Ok(spec)
    }

    /// Whether the spec changes nothing at all (no resize, same format).
    fn is_noop(&self) -> bool {
        *self == VariantSpec::default()
    }

    /// The rules between keys (see the module docs).
    fn check_combinations(&self, fx: Option<u16>, fy: Option<u16>) -> Result<(), SpecError> {
        match (fx, fy) {
            (Some(_), None) => {
                return Err(SpecError::Requires {
                    key: "fx",
                    requires: "fy",
                })
            }
            (None, Some(_)) => {
                return Err(SpecError::Requires {
                    key: "fy",
                    requires: "fx",
                })
            }
            _ => {}
        }
        if self.focus.is_some() {
            if self.fit != Fit::Cover {
                return Err(SpecError::Requires {
                    key: "fx",
                    requires: "fit=cover",
                });
            }
            if self.gravity != Gravity::Centre {
                return Err(SpecError::Conflict {
                    key: "fx",
                    with: "g (a focal point replaces the gravity)",
                });
            }
        }
        if self.gravity.is_smart() && self.fit != Fit::Cover {
            return Err(SpecError::Requires {
                key: "g",
                requires: "fit=cover for g=attention and g=entropy",
            });
        }
        if self.dpr != Dpr::ONE && self.width.is_none() && self.height.is_none() {
            return Err(SpecError::Requires {
                key: "dpr",
                requires: "w or h",
            });
        }
        let needs_format = [
            (self.progressive, "pj", Format::Jpeg, "fm=jpeg"),
            (self.palette, "palette", Format::Png, "fm=png"),
            (self.lossless, "lossless", Format::Webp, "fm=webp"),
        ];
        for (set, key, format, requires) in needs_format {
            if set && self.format != format {
                return Err(SpecError::Requires { key, requires });
            }
        }
        Ok(())
    }
}

impl FromStr for VariantSpec {
    type Err = SpecError;

    /// Lenient about order (for people typing specs); strict about everything else.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut spec = VariantSpec::default();
        let mut seen: Vec<&str> = Vec::new();
        let (mut fx, mut fy) = (None, None);
        for pair in text.split(',') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| SpecError::NotAPair(pair.to_string()))?;
            if seen.contains(&key) {
                return Err(SpecError::DuplicateKey(key.to_string()));
            }
            match key {
                "w" => spec.width = Some(parse_dimension("w", value)?),
                "h" => spec.height = Some(parse_dimension("h", value)?),
                "fit" => {
                    spec.fit = parse_enum(
                        "fit",
                        value,
                        &Fit::ALL,
                        Fit::as_str,
                        "one of cover, contain, fill, inside, outside",
                    )?
                }
                "g" => {
                    spec.gravity = parse_enum(
                        "g",
                        value,
                        &Gravity::ALL,
                        Gravity::as_str,
                        "one of centre, north, northeast, east, southeast, south, southwest, west, northwest, attention, entropy",
                    )?
                }
                "fm" => {
                    spec.format = parse_enum(
                        "fm",
                        value,
                        &Format::ALL,
                        Format::as_str,
                        "one of jpeg, png, webp, avif, gif, original",
                    )?
                }
                "q" => spec.quality = Some(parse_quality(value)?),
                "bg" => spec.background = Some(parse_rgb(value)?),
                "enlarge" => spec.enlarge = parse_bool("enlarge", value)?,
                "fx" => fx = Some(parse_fraction("fx", value)?),
                "fy" => fy = Some(parse_fraction("fy", value)?),
                "dpr" => spec.dpr = parse_dpr(value)?,
                "pj" => spec.progressive = parse_bool("pj", value)?,
                "palette" => spec.palette = parse_bool("palette", value)?,
                "lossless" => spec.lossless = parse_bool("lossless", value)?,
                other => return Err(SpecError::UnknownKey(other.to_string())),
            }
            seen.push(key);
        }
        if let (Some(x), Some(y)) = (fx, fy) {
            spec.focus = Some(FocalPoint { x, y });
        }
        spec.check_combinations(fx, fy)?;
        if spec.is_noop() {
            return Err(SpecError::Empty);
        }
        Ok(spec)
    }
}

impl fmt::Display for VariantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::with_capacity(KEYS.len());
        if let Some(w) = self.width {
            parts.push(format!("w={w}"));
        }
        if let Some(h) = self.height {
            parts.push(format!("h={h}"));
        }
        if self.fit != Fit::default() {
            parts.push(format!("fit={}", self.fit.as_str()));
        }
        if self.gravity != Gravity::default() {
            parts.push(format!("g={}", self.gravity.as_str()));
        }
        if self.format != Format::default() {
            parts.push(format!("fm={}", self.format.as_str()));
        }
        if let Some(q) = self.quality {
            parts.push(format!("q={q}"));
        }
        if let Some(bg) = self.background {
            parts.push(format!("bg={bg}"));
        }
        if self.enlarge {
            parts.push("enlarge=true".to_string());
        }
        if let Some(FocalPoint { x, y }) = self.focus {
            parts.push(format!("fx={}", fmt_fraction(x)));
            parts.push(format!("fy={}", fmt_fraction(y)));
        }
        if self.dpr != Dpr::ONE {
            parts.push(format!("dpr={}", self.dpr));
        }
        if self.progressive {
            parts.push("pj=true".to_string());
        }
        if self.palette {
            parts.push("palette=true".to_string());
        }
        if self.lossless {
            parts.push("lossless=true".to_string());
        }
        f.write_str(&parts.join(","))
    }
}

impl Serialize for VariantSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VariantSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for VariantSpec {
    fn schema_name() -> String {
        "VariantSpec".to_string()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut schema = schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            ..Default::default()
        };
        let keys = KEYS.join("|");
        schema.string().pattern = Some(format!("^({keys})=[a-z0-9.]+(,({keys})=[a-z0-9.]+)*$"));
        schema.metadata().description = Some(
            "Variant spec, e.g. `w=320,h=320,fit=cover,fm=webp,q=75`. Keys, in canonical order: \
             w, h (1-16383), fit (cover|contain|fill|inside|outside, default inside), \
             g (centre|north|northeast|east|southeast|south|southwest|west|northwest, or \
             attention|entropy with fit=cover), fm (jpeg|png|webp|avif|gif|original), \
             q (1-100), bg (rrggbb), enlarge (true|false), fx, fy (focal point 0-1, both, \
             fit=cover only), dpr (1-4, one decimal), pj (true: progressive JPEG, fm=jpeg), \
             palette (true: 8-bit palette PNG, fm=png), lossless (true: lossless WebP, fm=webp)."
                .into(),
        );
        schema.into()
    }
}

/// Hex digits of a preset's spec hash in its derivative names.
pub const SPEC_HASH_LEN: usize = 8;

/// The version of a preset's spec in its derivative names: the first [`SPEC_HASH_LEN`] lowercase hex
/// digits of SHA-256 over the canonical spec text (`VariantSpec`'s `Display`, e.g.
/// `w=160,h=160,fit=cover,fm=webp,q=75`). Simple on purpose: the URL clients compute it.
pub fn spec_hash(canonical: &str) -> String {
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = hex::encode(&digest[..SPEC_HASH_LEN / 2]);
    hex.truncate(SPEC_HASH_LEN);
    hex
}

/// Whether `text` is spelled as [`spec_hash`] spells hashes.
pub fn is_spec_hash(text: &str) -> bool {
    text.len() == SPEC_HASH_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn example_round_trips_and_is_canonical() {
        let text = "w=320,h=320,fit=cover,fm=webp,q=75";
        let spec = VariantSpec::parse_canonical(text).unwrap();
        assert_eq!(spec.width, Some(320));
        assert_eq!(spec.fit, Fit::Cover);
        assert_eq!(spec.format, Format::Webp);
        assert_eq!(spec.quality, Some(75));
        assert_eq!(spec.to_string(), text);
    }

    #[test]
    fn defaults_are_elided_and_order_is_fixed() {
        let spec: VariantSpec = "fm=webp,fit=inside,g=centre,w=100,enlarge=false"
            .parse()
            .unwrap();
        assert_eq!(spec.to_string(), "w=100,fm=webp");
        assert!(matches!(
            VariantSpec::parse_canonical("fm=webp,w=100"),
            Err(SpecError::NotCanonical { canonical, .. }) if canonical == "w=100,fm=webp"
        ));
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        type Case = (&'static str, fn(&SpecError) -> bool);
        let cases: &[Case] = &[
            ("", |e| matches!(e, SpecError::NotAPair(_))),
            ("fm=original", |e| matches!(e, SpecError::Empty)),
            ("w=0", |e| {
                matches!(e, SpecError::InvalidValue { key: "w", .. })
            }),
            ("w=16384", |e| {
                matches!(e, SpecError::InvalidValue { key: "w", .. })
            }),
            ("w=+5", |e| {
                matches!(e, SpecError::InvalidValue { key: "w", .. })
            }),
            ("w=050", |e| {
                matches!(e, SpecError::InvalidValue { key: "w", .. })
            }),
            ("h=abc", |e| {
                matches!(e, SpecError::InvalidValue { key: "h", .. })
            }),
            ("q=101", |e| {
                matches!(e, SpecError::InvalidValue { key: "q", .. })
            }),
            ("fit=squash", |e| {
                matches!(e, SpecError::InvalidValue { key: "fit", .. })
            }),
            ("fm=bmp", |e| {
                matches!(e, SpecError::InvalidValue { key: "fm", .. })
            }),
            ("bg=FFFFFF", |e| {
                matches!(e, SpecError::InvalidValue { key: "bg", .. })
            }),
            ("bg=fff", |e| {
                matches!(e, SpecError::InvalidValue { key: "bg", .. })
            }),
            ("enlarge=1", |e| {
                matches!(e, SpecError::InvalidValue { key: "enlarge", .. })
            }),
            (
                "w=10,w=20",
                |e| matches!(e, SpecError::DuplicateKey(k) if k == "w"),
            ),
            (
                "width=10",
                |e| matches!(e, SpecError::UnknownKey(k) if k == "width"),
            ),
            ("w=10,", |e| matches!(e, SpecError::NotAPair(_))),
            ("w", |e| matches!(e, SpecError::NotAPair(_))),
            // Focal point: values, pairing, fit and gravity.
            ("w=10,h=10,fit=cover,fx=1.5,fy=0", |e| {
                matches!(e, SpecError::InvalidValue { key: "fx", .. })
            }),
            ("w=10,h=10,fit=cover,fx=0,fy=-0.5", |e| {
                matches!(e, SpecError::InvalidValue { key: "fy", .. })
            }),
            ("w=10,h=10,fit=cover,fx=0.1234,fy=0", |e| {
                matches!(e, SpecError::InvalidValue { key: "fx", .. })
            }),
            ("w=10,h=10,fit=cover,fx=.5,fy=0", |e| {
                matches!(e, SpecError::InvalidValue { key: "fx", .. })
            }),
            ("w=10,h=10,fit=cover,fx=0.,fy=0", |e| {
                matches!(e, SpecError::InvalidValue { key: "fx", .. })
            }),
            ("w=10,h=10,fit=cover,fx=1.001,fy=0", |e| {
                matches!(e, SpecError::InvalidValue { key: "fx", .. })
            }),
            ("w=10,h=10,fit=cover,fx=0.5", |e| {
                matches!(
                    e,
                    SpecError::Requires {
                        key: "fx",
                        requires: "fy"
                    }
                )
            }),
            ("fx=0.5", |e| {
                matches!(
                    e,
                    SpecError::Requires {
                        key: "fx",
                        requires: "fy"
                    }
                )
            }),
            ("w=10,h=10,fit=cover,fy=0.5", |e| {
                matches!(
                    e,
                    SpecError::Requires {
                        key: "fy",
                        requires: "fx"
                    }
                )
            }),
            ("w=10,h=10,fx=0.5,fy=0.5", |e| {
                matches!(
                    e,
                    SpecError::Requires {
                        key: "fx",
                        requires: "fit=cover"
                    }
                )
            }),
            ("w=10,h=10,fit=contain,fx=0.5,fy=0.5", |e| {
                matches!(
                    e,
                    SpecError::Requires {
                        key: "fx",
                        requires: "fit=cover"
                    }
                )
            }),
            ("w=10,h=10,fit=cover,g=north,fx=0.5,fy=0.5", |e| {
                matches!(e, SpecError::Conflict { key: "fx", .. })
            }),
            ("w=10,h=10,fit=cover,g=attention,fx=0.5,fy=0.5", |e| {
                matches!(e, SpecError::Conflict { key: "fx", .. })
            }),
            // Smart crop needs cover.
            ("w=10,h=10,g=attention", |e| {
                matches!(e, SpecError::Requires { key: "g", .. })
            }),
            ("w=10,h=10,fit=contain,g=entropy", |e| {
                matches!(e, SpecError::Requires { key: "g", .. })
            }),
            ("w=10,h=10,fit=cover,g=smart", |e| {
                matches!(e, SpecError::InvalidValue { key: "g", .. })
            }),
            // dpr: 1-4, one decimal, only with a box.
            ("w=10,dpr=0.5", |e| {
                matches!(e, SpecError::InvalidValue { key: "dpr", .. })
            }),
            ("w=10,dpr=5", |e| {
                matches!(e, SpecError::InvalidValue { key: "dpr", .. })
            }),
            ("w=10,dpr=4.1", |e| {
                matches!(e, SpecError::InvalidValue { key: "dpr", .. })
            }),
            ("w=10,dpr=1.25", |e| {
                matches!(e, SpecError::InvalidValue { key: "dpr", .. })
            }),
            ("w=10,dpr=2x", |e| {
                matches!(e, SpecError::InvalidValue { key: "dpr", .. })
            }),
            ("w=10,dpr=", |e| {
                matches!(e, SpecError::InvalidValue { key: "dpr", .. })
            }),
            ("fm=webp,dpr=2", |e| {
                matches!(e, SpecError::Requires { key: "dpr", .. })
            }),
            // Encoder flags: boolean, and only for their format.
            ("w=10,fm=jpeg,pj=yes", |e| {
                matches!(e, SpecError::InvalidValue { key: "pj", .. })
            }),
            ("w=10,fm=webp,pj=true", |e| {
                matches!(
                    e,
                    SpecError::Requires {
                        key: "pj",
                        requires: "fm=jpeg"
                    }
                )
            }),
            ("w=10,pj=true", |e| {
                matches!(e, SpecError::Requires { key: "pj", .. })
            }),
            ("w=10,fm=png,palette=1", |e| {
                matches!(e, SpecError::InvalidValue { key: "palette", .. })
            }),
            ("w=10,fm=jpeg,palette=true", |e| {
                matches!(
                    e,
                    SpecError::Requires {
                        key: "palette",
                        requires: "fm=png"
                    }
                )
            }),
            ("w=10,fm=avif,lossless=true", |e| {
                matches!(
                    e,
                    SpecError::Requires {
                        key: "lossless",
                        requires: "fm=webp"
                    }
                )
            }),
            ("w=10,fm=webp,lossless=on", |e| {
                matches!(
                    e,
                    SpecError::InvalidValue {
                        key: "lossless",
                        ..
                    }
                )
            }),
            (
                "w=10,fm=webp,lossless=true,lossless=false",
                |e| matches!(e, SpecError::DuplicateKey(k) if k == "lossless"),
            ),
            (
                "w=10,anim=true",
                |e| matches!(e, SpecError::UnknownKey(k) if k == "anim"),
            ),
        ];
        for (text, check) in cases {
            let err = text.parse::<VariantSpec>().expect_err(text);
            assert!(check(&err), "{text}: unexpected error {err:?}");
        }
    }

    /// Any valid spec: free choices first, then the rules between keys applied by
    /// adjusting the draw (so no draw is thrown away for breaking a rule).
    fn arb_spec() -> impl Strategy<Value = VariantSpec> {
        let base = (
            proptest::option::of(1..=MAX_DIMENSION),
            proptest::option::of(1..=MAX_DIMENSION),
            proptest::sample::select(Fit::ALL.to_vec()),
            proptest::sample::select(Gravity::ALL.to_vec()),
            proptest::sample::select(Format::ALL.to_vec()),
            proptest::option::of(1u8..=100),
            proptest::option::of(any::<(u8, u8, u8)>()),
            any::<bool>(),
        );
        let extra = (
            proptest::option::of((0u16..=1000, 0u16..=1000)),
            Dpr::MIN_TENTHS..=Dpr::MAX_TENTHS,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        );
        (base, extra)
            .prop_map(
                |(
                    (width, height, fit, gravity, format, quality, bg, enlarge),
                    (focus, dpr, progressive, palette, lossless),
                )| {
                    let mut spec = VariantSpec {
                        width,
                        height,
                        fit,
                        gravity,
                        format,
                        quality,
                        background: bg.map(|(r, g, b)| Rgb(r, g, b)),
                        enlarge,
                        focus: focus.map(|(x, y)| FocalPoint { x, y }),
                        dpr: Dpr::from_tenths(dpr).unwrap(),
                        progressive: progressive && format == Format::Jpeg,
                        palette: palette && format == Format::Png,
                        lossless: lossless && format == Format::Webp,
                    };
                    if spec.focus.is_some() {
                        spec.fit = Fit::Cover;
                        spec.gravity = Gravity::Centre;
                    }
                    if spec.gravity.is_smart() {
                        spec.fit = Fit::Cover;
                    }
                    if spec.width.is_none() && spec.height.is_none() {
                        spec.dpr = Dpr::ONE;
                    }
                    spec
                },
            )
            .prop_filter("a spec must change something", |s| !s.is_noop())
    }

    #[test]
    fn new_keys_have_a_fixed_order_after_the_old_ones() {
        let spec: VariantSpec =
            "lossless=true,dpr=2,fm=webp,w=100,h=50,fy=0.500,fx=0.25,fit=cover,q=90"
                .parse()
                .unwrap();
        assert_eq!(
            spec.focus,
            Some(FocalPoint { x: 250, y: 500 }),
            "thousandths"
        );
        assert_eq!(spec.dpr.tenths(), 20);
        assert_eq!(
            spec.to_string(),
            "w=100,h=50,fit=cover,fm=webp,q=90,fx=0.25,fy=0.5,dpr=2,lossless=true"
        );
        let spec: VariantSpec = "palette=true,fm=png,w=10,dpr=1.5".parse().unwrap();
        assert_eq!(spec.to_string(), "w=10,fm=png,dpr=1.5,palette=true");
        let spec: VariantSpec = "pj=true,fm=jpeg,w=10,g=attention,h=10,fit=cover"
            .parse()
            .unwrap();
        assert_eq!(
            spec.to_string(),
            "w=10,h=10,fit=cover,g=attention,fm=jpeg,pj=true"
        );
        // Defaults of the new keys are elided.
        let spec: VariantSpec = "w=10,dpr=1,pj=false,palette=false,lossless=false"
            .parse()
            .unwrap();
        assert_eq!(spec.to_string(), "w=10");
        assert_eq!(spec, "w=10".parse().unwrap());
    }

    #[test]
    fn decimals_have_one_canonical_text() {
        for (given, canonical) in [
            ("fx=0.250,fy=1.0", "fx=0.25,fy=1"),
            ("fx=0.000,fy=0.5", "fx=0,fy=0.5"),
            ("fx=0.005,fy=0.999", "fx=0.005,fy=0.999"),
            ("fx=1,fy=0", "fx=1,fy=0"),
        ] {
            let spec: VariantSpec = format!("w=9,h=9,fit=cover,{given}").parse().unwrap();
            let want = format!("w=9,h=9,fit=cover,{canonical}");
            assert_eq!(spec.to_string(), want);
            assert!(VariantSpec::parse_canonical(&want).is_ok());
            if given != canonical {
                assert!(matches!(
                    VariantSpec::parse_canonical(&format!("w=9,h=9,fit=cover,{given}")),
                    Err(SpecError::NotCanonical { .. })
                ));
            }
        }
        for (given, canonical) in [("2.0", "2"), ("1.5", "1.5"), ("4", "4"), ("1.0", "")] {
            let spec: VariantSpec = format!("w=9,dpr={given}").parse().unwrap();
            let want = if canonical.is_empty() {
                "w=9".to_string()
            } else {
                format!("w=9,dpr={canonical}")
            };
            assert_eq!(spec.to_string(), want);
        }
    }

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

    #[test]
    fn existing_canonical_forms_are_unchanged() {
        for text in [
            "w=320,h=320,fit=cover,fm=webp,q=75",
            "w=100,fm=webp",
            "w=320,h=320,fit=cover,g=north",
            "w=320,h=320,fit=contain,bg=000000",
            "w=4000,enlarge=true",
            "h=60",
            "fm=avif",
        ] {
            let spec = VariantSpec::parse_canonical(text).unwrap();
            assert_eq!(spec.to_string(), text);
            assert_eq!(spec.focus, None);
            assert_eq!(spec.dpr, Dpr::ONE);
            assert!(!spec.progressive && !spec.palette && !spec.lossless);
        }
    }

    proptest! {
        #[test]
        fn print_then_parse_is_identity(spec in arb_spec()) {
            let text = spec.to_string();
            let parsed = VariantSpec::parse_canonical(&text).unwrap();
            prop_assert_eq!(&parsed, &spec);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn parse_never_panics(text in "[a-z0-9=,+#.-]{0,40}") {
            let _ = text.parse::<VariantSpec>();
        }
    }
}
