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
//! `fm=webp`.//!
//! # Files
//! - `types.rs`: [`VariantSpec`] and its values' types, [`KEYS`], [`MAX_DIMENSION`];
//! - `errors.rs`: [`SpecError`];
//! - `parse.rs`: text to spec (`FromStr`, [`VariantSpec::parse_canonical`]);
//! - `display.rs`: spec to its canonical text (`Display`), serde and JSON Schema;
//! - `hash.rs`: [`spec_hash`] and [`is_spec_hash`].
//!
//! Files point one way: `types`, `errors` ← `parse`, `display`; `hash` stands alone.

mod display;
mod errors;
mod hash;
mod parse;
mod types;

pub use errors::SpecError;
pub use hash::{is_spec_hash, spec_hash, SPEC_HASH_LEN};
pub use types::{Dpr, Fit, FocalPoint, Format, Gravity, Rgb, VariantSpec, KEYS, MAX_DIMENSION};
