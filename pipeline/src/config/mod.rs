//! Typed configuration, loaded once at start: built-in defaults, then a TOML file
//! (`rendition.toml`), then `RENDITION__SECTION__KEY` environment variables; validated
//! before anything runs. Unknown keys are errors. Handlers receive these values; nothing
//! else reads the environment.
//!
//! One file, one layering, one JSON Schema, two owners: the core's sections are here
//! ([`Settings`]); the sections of a binary's adapters (queues, worker process, `serve`)
//! are defined next to those adapters and declared to the loader through
//! [`AdapterSections`] ([`Settings::load_with`]).

//!
//! # Layout
//! - `mod.rs` (here): [`Settings`], the built-in presets;
//! - `sections`: the core's other sections and [`Preset`];
//! - `load`: the layering, [`AdapterSections`], [`ADAPTER_SECTIONS`];
//! - `error`: [`ConfigError`], each saying where the bad value came from (the file and key,
//!   or the variable), what was found and what is allowed;
//! - `validate`: the rules types cannot express ([`Settings::validate`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod error;
mod load;
mod sections;
mod validate;

pub use error::{ConfigError, Origin};
pub use load::{AdapterSections, NoSections, ADAPTER_SECTIONS};
/// The image layer's sections (`[limits]`, `[render]`), part of these settings.
pub use rendition_image::settings::{Limits, RenderSettings};
pub use sections::{
    CdnSettings, EventsSettings, LogFormat, LogSettings, Preset, S3Settings, StorageSettings,
    TelemetrySettings, UrlSettings,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub storage: StorageSettings,
    pub limits: Limits,
    pub render: RenderSettings,
    pub log: LogSettings,
    /// Traces: where spans go besides the logs.
    pub telemetry: TelemetrySettings,
    /// The object store (S3 or compatible) the queue workers read and write.
    pub s3: S3Settings,
    /// Derivative URLs: CDN hosts, sharding, and signing of explicit specs.
    pub urls: UrlSettings,
    /// The CDN in front of the derived prefix, told when a removed source's derivatives go.
    pub cdn: CdnSettings,
    /// Outcome events (`derivatives.ready`, `.failed`, `.removed`) of the SQS worker and
    /// the Lambda.
    pub events: EventsSettings,
    /// Named variants. When none are configured the built-in set is used.
    pub presets: BTreeMap<String, Preset>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            storage: StorageSettings::default(),
            limits: Limits::default(),
            render: RenderSettings::default(),
            log: LogSettings::default(),
            telemetry: TelemetrySettings::default(),
            s3: S3Settings::default(),
            urls: UrlSettings::default(),
            cdn: CdnSettings::default(),
            events: EventsSettings::default(),
            presets: default_presets(),
        }
    }
}

/// The built-in presets: a responsive WebP ladder rendered eagerly, plus a social card
/// rendered on demand.
pub fn default_presets() -> BTreeMap<String, Preset> {
    let p = |spec: &str, eager: bool| Preset {
        spec: spec.parse().expect("built-in preset specs are valid"),
        eager,
        formats: Vec::new(),
    };
    BTreeMap::from([
        ("xl".to_string(), p("w=2048,fm=webp,q=75", true)),
        ("lg".to_string(), p("w=1024,fm=webp,q=75", true)),
        ("md".to_string(), p("w=640,fm=webp,q=75", true)),
        ("sm".to_string(), p("w=320,fm=webp,q=75", true)),
        (
            "thumb".to_string(),
            p("w=160,h=160,fit=cover,fm=webp,q=75", true),
        ),
        (
            "og".to_string(),
            p("w=1200,h=630,fit=cover,fm=jpeg,q=82", false),
        ),
    ])
}

impl Settings {
    /// Sources rendered at once: the configured value, or the number of CPUs.
    pub fn concurrency(&self) -> usize {
        self.render.concurrency()
    }

    /// Render helpers in the sandbox pool: the configured value, or `concurrency`.
    pub fn pool_size(&self) -> usize {
        self.render.pool_size()
    }

    /// Eager presets, in name order.
    pub fn eager_presets(&self) -> impl Iterator<Item = (&str, &Preset)> {
        self.presets
            .iter()
            .filter(|(_, p)| p.eager)
            .map(|(n, p)| (n.as_str(), p))
    }
}

/// Preset names are path segments and URL parts: keep them plain. They never contain
/// `=`, so they can't be confused with a spec.
pub fn is_preset_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}
