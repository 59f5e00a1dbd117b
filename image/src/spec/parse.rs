//! A spec from its text: [`VariantSpec`]'s `FromStr` (lenient about order) and
//! `parse_canonical` (the canonical form only), each value's parser and the rules between
//! keys.

use std::str::FromStr;

use super::errors::SpecError;
use super::types::{Dpr, Fit, FocalPoint, Format, Gravity, Rgb, VariantSpec, MAX_DIMENSION};

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
    /// Parses the canonical form only: the text must be exactly what
    /// [`fmt::Display`](std::fmt::Display) prints. This is what URLs and names use, so one
    /// spec never gets two names.
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
