//! The manifest: one JSON document per source version, written after all its eager
//! derivatives, so its presence means "done". When a preset is added later,
//! `rendition backfill` has its variants made and the manifest rewritten to list them
//! too (so, unlike derivatives, a manifest is not immutable). Its schema is
//! `schemas/manifest.schema.json`. Readers tolerate fields they do not know (a newer
//! writer may add some), so these types do not deny unknown fields.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use rendition_image::placeholder::Placeholder;
use rendition_image::sniff::SourceFormat;

/// The manifest format this version writes: 2 added `version`, `skipped`, presets in
/// several formats (one entry per format, same `name`); 3 added each variant's
/// `spec_hash`, which its key carries (`thumb.3fa9c2e1.webp`).
pub const MANIFEST_VERSION: u32 = 3;

fn first_version() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    /// The manifest format: [`MANIFEST_VERSION`] when written by this version; 1 when
    /// absent (written before the field existed). A reader accepts every version and
    /// ignores fields it does not know, so adding fields never breaks a reader during a
    /// rolling upgrade.
    #[serde(default = "first_version")]
    pub version: u32,
    pub source: ManifestSource,
    /// What a page can paint before the image arrives: BlurHash (4 × 3 components),
    /// dominant colour, a ≤ 1 KiB WebP data URI ([`rendition_image::placeholder`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
    /// Variants made by jobs (the eager presets, and presets backfilled since), in
    /// preset-name order; a preset made in several formats has one entry per format.
    pub variants: Vec<ManifestVariant>,
    /// Presets that cannot be made from this source for a reason of their own (e.g. an
    /// output side over `limits.max_output_dimension`), in preset-name order. Their
    /// URLs answer with the same typed error (422).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<ManifestSkipped>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestSkipped {
    /// Preset name.
    pub variant: String,
    /// Canonical spec of the preset when it was refused.
    pub spec: String,
    /// Stable error kind, e.g. `output_too_large`.
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestSource {
    pub bucket: String,
    pub key: String,
    pub guid: Uuid,
    /// Version id or ETag the derivatives were made from.
    pub version: String,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    pub format: SourceFormat,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestVariant {
    /// Preset name.
    pub name: String,
    /// Canonical spec of the preset when rendered.
    pub spec: String,
    /// [`crate::naming::spec_hash`] of `spec`, the version in `key`; empty in manifests
    /// written before presets were versioned (version < 3), whose keys carry none, so a
    /// backfill makes those variants again under versioned names.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spec_hash: String,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub content_type: String,
}

/// Record written when a source cannot be rendered (local mode), so a person can see why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailureRecord {
    pub source_key: String,
    /// Stable error kind, e.g. `corrupt_image`, `too_many_pixels`.
    pub kind: String,
    pub message: String,
    pub retryable: bool,
}
