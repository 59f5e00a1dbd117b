//! [`SpecError`]: why a spec's text was refused.

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
