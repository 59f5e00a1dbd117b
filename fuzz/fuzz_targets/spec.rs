//! Variant spec text: the lenient parser (any key order) and the canonical one (names
//! and URLs).
//!
//! Properties, beyond "never panics":
//! - a spec that parses prints a canonical text that parses (canonically) to the same
//!   spec and prints the same text again (round trip identity);
//! - `parse_canonical` accepts exactly the texts that are already canonical, and says
//!   which text is canonical otherwise;
//! - the canonical text keeps the keys in `spec::KEYS` order, each once, with values
//!   in `[a-z0-9.]` (the JSON Schema's pattern);
//! - the spec survives serde (JSON) and a derivative key (`naming`);
//! - the parsed values are in their documented ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_pipeline::naming::{derivative_key, parse_derivative_key, Variant};
use rendition_image::spec::{SpecError, VariantSpec, KEYS, MAX_DIMENSION};

fn check_canonical_text(text: &str) {
    let mut last = None;
    for pair in text.split(',') {
        let (key, value) = pair.split_once('=').expect("key=value");
        let index = KEYS.iter().position(|k| *k == key).expect("known key");
        assert!(
            last.is_none_or(|l| l < index),
            "keys out of order in {text:?}"
        );
        last = Some(index);
        assert!(
            !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.'),
            "value outside the schema's [a-z0-9.]+ in {text:?}"
        );
    }
}

fn check_ranges(spec: &VariantSpec) {
    for len in [spec.width, spec.height].into_iter().flatten() {
        assert!((1..=MAX_DIMENSION).contains(&len), "{spec:?}");
    }
    if let Some(q) = spec.quality {
        assert!((1..=100).contains(&q), "{spec:?}");
    }
    if let Some(f) = spec.focus {
        assert!(f.x <= 1000 && f.y <= 1000, "{spec:?}");
    }
    assert!((10..=40).contains(&spec.dpr.tenths()), "{spec:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lenient = text.parse::<VariantSpec>();
    let canonical = VariantSpec::parse_canonical(text);
    let spec = match lenient {
        Ok(spec) => spec,
        Err(e) => {
            let _ = e.to_string();
            assert_eq!(canonical, Err(e), "both parsers refuse alike");
            return;
        }
    };
    check_ranges(&spec);

    let printed = spec.to_string();
    check_canonical_text(&printed);
    let again = VariantSpec::parse_canonical(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, spec, "{text:?} → {printed:?}");
    assert_eq!(again.to_string(), printed);

    match canonical {
        Ok(c) => {
            assert_eq!(
                text, printed,
                "parse_canonical accepted a non-canonical text"
            );
            assert_eq!(c, spec);
        }
        Err(SpecError::NotCanonical { given, canonical }) => {
            assert_ne!(text, printed);
            assert_eq!(given, text);
            assert_eq!(canonical, printed);
        }
        Err(e) => panic!("{text:?}: lenient parse ok but canonical parse failed with {e:?}"),
    }

    let json = serde_json::to_string(&spec).expect("a spec serializes");
    let back: VariantSpec = serde_json::from_str(&json).expect("its JSON deserializes");
    assert_eq!(back, spec);

    let ext = spec.format.extension().unwrap_or("jpg");
    let variant = Variant::Spec(spec);
    let key =
        derivative_key("derived/", "a/b.jpg", uuid::Uuid::nil(), &variant, ext).expect("short key");
    let parsed = parse_derivative_key("derived/", &key).expect("derivative key parses");
    assert_eq!(parsed.variant, variant);
    assert_eq!(parsed.ext, ext);
});
