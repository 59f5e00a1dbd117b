//! Typed configuration, loaded once at start: built-in defaults, then a TOML file
//! (`rendition.toml`), then `RENDITION__SECTION__KEY` environment variables; validated
//! before anything runs. Unknown keys are errors. Handlers receive these values; nothing
//! else reads the environment.

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format as _, Serialized, Toml};
use figment::Figment;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::VariantSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub storage: StorageSettings,
    pub limits: Limits,
    pub render: RenderSettings,
    pub log: LogSettings,
    /// Named variants. When none are configured the built-in set is used.
    pub presets: BTreeMap<String, Preset>,
}

/// Where things live inside the bucket (or the local folder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Uploads under this prefix are sources.
    pub source_prefix: String,
    /// Derivatives and manifests are written under this prefix.
    pub derived_prefix: String,
    /// Local mode records sources that cannot be rendered here, with the reason.
    pub failed_prefix: String,
}

/// Hard limits, each checked from the header before pixels are decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_input_bytes: u64,
    /// Width × height of the source (75 MP by default).
    pub max_input_pixels: u64,
    /// Largest width or height of any output.
    pub max_output_dimension: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RenderSettings {
    /// Sources rendered at the same time (0 = number of CPUs).
    pub concurrency: usize,
    /// libvips threads per image; parallelism across images pays better.
    pub vips_threads: u32,
    /// AVIF encoder effort 0 (fastest) – 9 (smallest).
    pub avif_effort: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line (production).
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info,rendition=debug`.
    pub filter: String,
}

/// A named variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub spec: VariantSpec,
    /// Rendered as soon as a source arrives (otherwise only on demand).
    #[serde(default)]
    pub eager: bool,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            source_prefix: "originals/".into(),
            derived_prefix: "derived/".into(),
            failed_prefix: "failed/".into(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 100 * 1024 * 1024,
            max_input_pixels: 75_000_000,
            max_output_dimension: 8192,
        }
    }
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            concurrency: 0,
            vips_threads: 1,
            avif_effort: 2,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            storage: StorageSettings::default(),
            limits: Limits::default(),
            render: RenderSettings::default(),
            log: LogSettings::default(),
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Rule(String),
}

impl Settings {
    /// Defaults → `file` (or `./rendition.toml` when present) → `RENDITION__*` from `env`.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut base = Settings::default();
        base.presets.clear();
        let mut figment = Figment::from(Serialized::defaults(base));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::MissingFile(path.display().to_string()))
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("rendition.toml").exists() => {
                figment = figment.merge(Toml::file_exact("rendition.toml"))
            }
            None => {}
        }
        // Environment variables are passed in (main hands over `std::env::vars()`), so
        // tests stay hermetic and nothing below main reads the environment.
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix("RENDITION__") else {
                continue;
            };
            let path = rest
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
                .join(".");
            let value: figment::value::Value = raw.parse().unwrap_or_else(|_| raw.clone().into());
            figment = figment.merge(Serialized::default(&path, value));
        }
        let mut settings: Settings = figment.extract().map_err(Box::new)?;
        if settings.presets.is_empty() {
            settings.presets = default_presets();
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks rules types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |msg: String| Err(ConfigError::Rule(msg));
        let s = &self.storage;
        for (name, prefix) in [
            ("storage.source_prefix", &s.source_prefix),
            ("storage.derived_prefix", &s.derived_prefix),
            ("storage.failed_prefix", &s.failed_prefix),
        ] {
            if prefix.len() < 2
                || !prefix.ends_with('/')
                || prefix.starts_with('/')
                || prefix.contains("..")
            {
                return rule(format!(
                    "{name} must be a relative folder ending in '/', got {prefix:?}"
                ));
            }
        }
        let prefixes = [&s.source_prefix, &s.derived_prefix, &s.failed_prefix];
        for (i, a) in prefixes.iter().enumerate() {
            for b in prefixes.iter().skip(i + 1) {
                if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                    return rule(format!(
                        "storage prefixes must not overlap: {a:?} and {b:?}"
                    ));
                }
            }
        }
        if self.limits.max_input_bytes == 0
            || self.limits.max_input_pixels == 0
            || self.limits.max_output_dimension == 0
        {
            return rule("limits must be greater than zero".into());
        }
        if self.render.avif_effort > 9 {
            return rule(format!(
                "render.avif_effort must be 0-9, got {}",
                self.render.avif_effort
            ));
        }
        if self.render.vips_threads == 0 {
            return rule("render.vips_threads must be at least 1".into());
        }
        for (name, preset) in &self.presets {
            if !is_preset_name(name) {
                return rule(format!(
                    "preset name {name:?} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
                ));
            }
            for (axis, len) in [("w", preset.spec.width), ("h", preset.spec.height)] {
                if len.is_some_and(|l| l > self.limits.max_output_dimension) {
                    return rule(format!(
                        "preset {name:?}: {axis} exceeds limits.max_output_dimension ({})",
                        self.limits.max_output_dimension
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sources rendered at once: the configured value, or the number of CPUs.
    pub fn concurrency(&self) -> usize {
        match self.render.concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
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
