//! Variant specs: what a derivative looks like, and its one canonical text form.
//!
//! A spec is a comma-separated list of `key=value` pairs, for example
//! `w=320,h=320,fit=cover,fm=webp,q=75`. The canonical form prints the keys in a
//! fixed order (`w, h, fit, g, fm, q, bg, enlarge`) and leaves out every value that
//! equals its default, so one spec has exactly one text form; that text is part of
//! the derivative's name (see [`crate::naming`]).
//!
//! Defaults: `fit=inside`, `g=centre`, `fm=original`, quality per output format,
//! no background (white when flattening, transparent when the format has alpha),
//! `enlarge=false`.

use std::fmt;
use std::str::FromStr;

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
}

/// Output encoding. `Original` keeps the source's format (TIFF becomes PNG, HEIF becomes AVIF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    Avif,
    Gif,
    #[default]
    Original,
}

/// An sRGB colour, written as six hex digits (`bg=ff8800`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

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
}

/// Why a spec's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty spec: give at least one of w, h or fm")]
    Empty,
    #[error("`{0}` is not a key=value pair")]
    NotAPair(String),
    #[error("unknown key `{0}` (known: w, h, fit, g, fm, q, bg, enlarge)")]
    UnknownKey(String),
    #[error("key `{0}` is given twice")]
    DuplicateKey(String),
    #[error("invalid value `{value}` for `{key}`: {expected}")]
    InvalidValue {
        key: &'static str,
        value: String,
        expected: &'static str,
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
    pub const ALL: [Gravity; 9] = [
        Gravity::Centre,
        Gravity::North,
        Gravity::NorthEast,
        Gravity::East,
        Gravity::SouthEast,
        Gravity::South,
        Gravity::SouthWest,
        Gravity::West,
        Gravity::NorthWest,
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
        }
    }
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Jpeg,
        Format::Png,
        Format::Webp,
        Format::Avif,
        Format::Gif,
        Format::Original,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Avif => "avif",
            Format::Gif => "gif",
            Format::Original => "original",
        }
    }
    /// File extension of an encoded output (`None` for `Original`, which depends on the source).
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Format::Jpeg => Some("jpg"),
            Format::Png => Some("png"),
            Format::Webp => Some("webp"),
            Format::Avif => Some("avif"),
            Format::Gif => Some("gif"),
            Format::Original => None,
        }
    }
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            Format::Jpeg => Some("image/jpeg"),
            Format::Png => Some("image/png"),
            Format::Webp => Some("image/webp"),
            Format::Avif => Some("image/avif"),
            Format::Gif => Some("image/gif"),
            Format::Original => None,
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
}

impl FromStr for VariantSpec {
    type Err = SpecError;

    /// Lenient about order (for people typing specs); strict about everything else.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut spec = VariantSpec::default();
        let mut seen: Vec<&str> = Vec::new();
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
                        "one of centre, north, northeast, east, southeast, south, southwest, west, northwest",
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
                "enlarge" => {
                    spec.enlarge = match value {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(SpecError::InvalidValue {
                                key: "enlarge",
                                value: value.to_string(),
                                expected: "true or false",
                            })
                        }
                    }
                }
                other => return Err(SpecError::UnknownKey(other.to_string())),
            }
            seen.push(key);
        }
        if spec.is_noop() {
            return Err(SpecError::Empty);
        }
        Ok(spec)
    }
}

impl fmt::Display for VariantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::with_capacity(8);
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
        schema.string().pattern = Some(
            "^(w|h|fit|g|fm|q|bg|enlarge)=[a-z0-9]+(,(w|h|fit|g|fm|q|bg|enlarge)=[a-z0-9]+)*$"
                .into(),
        );
        schema.metadata().description = Some(
            "Variant spec, e.g. `w=320,h=320,fit=cover,fm=webp,q=75`. Keys: w, h (1-16383), \
             fit (cover|contain|fill|inside|outside, default inside), g (centre|north|northeast|east|\
             southeast|south|southwest|west|northwest), fm (jpeg|png|webp|avif|gif|original), \
             q (1-100), bg (rrggbb), enlarge (true|false)."
                .into(),
        );
        schema.into()
    }
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
        ];
        for (text, check) in cases {
            let err = text.parse::<VariantSpec>().expect_err(text);
            assert!(check(&err), "{text}: unexpected error {err:?}");
        }
    }

    fn arb_spec() -> impl Strategy<Value = VariantSpec> {
        (
            proptest::option::of(1..=MAX_DIMENSION),
            proptest::option::of(1..=MAX_DIMENSION),
            proptest::sample::select(Fit::ALL.to_vec()),
            proptest::sample::select(Gravity::ALL.to_vec()),
            proptest::sample::select(Format::ALL.to_vec()),
            proptest::option::of(1u8..=100),
            proptest::option::of(any::<(u8, u8, u8)>()),
            any::<bool>(),
        )
            .prop_map(
                |(width, height, fit, gravity, format, quality, bg, enlarge)| VariantSpec {
                    width,
                    height,
                    fit,
                    gravity,
                    format,
                    quality,
                    background: bg.map(|(r, g, b)| Rgb(r, g, b)),
                    enlarge,
                },
            )
            .prop_filter("a spec must change something", |s| !s.is_noop())
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
        fn parse_never_panics(text in "[a-z0-9=,+#-]{0,40}") {
            let _ = text.parse::<VariantSpec>();
        }
    }
}
