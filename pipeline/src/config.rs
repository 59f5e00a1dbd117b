//! Typed configuration, loaded once at start: built-in defaults, then a TOML file
//! (`rendition.toml`), then `RENDITION__SECTION__KEY` environment variables; validated
//! before anything runs. Unknown keys are errors. Handlers receive these values; nothing
//! else reads the environment.
//!
//! One file, one layering, one JSON Schema, two owners: the core's sections are here
//! ([`Settings`]); the sections of a binary's adapters (queues, worker process, `serve`)
//! are defined next to those adapters and declared to the loader through
//! [`AdapterSections`] ([`Settings::load_with`]).

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format as _, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The image layer's sections (`[limits]`, `[render]`), part of these settings.
pub use rendition_image::settings::{Limits, RenderSettings};
use rendition_image::spec::{Format, VariantSpec};

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
    /// `ObjectRemoved` events delete that source's derivatives and manifests.
    pub delete_on_remove: bool,
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

/// Traces of jobs and requests (`tracing` spans; see docs/operations.md, "Traces").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// OTLP/HTTP (JSON) endpoint of a collector, e.g. `http://127.0.0.1:4318`: spans are
    /// exported to `{endpoint}/v1/traces`. Unset: spans are only in the logs.
    pub otlp_endpoint: Option<String>,
}

/// Where the SQS worker and the Lambda publish outcome events (`crate::outcome`); the
/// RabbitMQ worker publishes them on its events exchange instead. Credentials come from
/// the standard AWS chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// ARN of the SNS topic receiving every outcome event (a CloudEvent as the message,
    /// its type in the `type` message attribute), e.g.
    /// `arn:aws:sns:eu-west-1:123456789012:rendition-events`; its region is the
    /// client's. Unset: no events are published to SNS.
    pub sns_topic_arn: Option<String>,
    /// Custom SNS endpoint (moto, LocalStack), e.g. `http://127.0.0.1:5000`.
    pub endpoint: Option<String>,
}

impl EventsSettings {
    /// The topic's region, from its ARN (`arn:PARTITION:sns:REGION:ACCOUNT:NAME`).
    pub fn topic_region(&self) -> Option<&str> {
        let arn = self.sns_topic_arn.as_deref()?;
        arn.split(':').nth(3).filter(|r| !r.is_empty())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(arn) = &self.sns_topic_arn {
            let parts: Vec<&str> = arn.split(':').collect();
            let valid = parts.len() == 6
                && parts[0] == "arn"
                && parts[2] == "sns"
                && parts[1..].iter().all(|p| !p.is_empty());
            if !valid {
                return Err(ConfigError::Rule(format!(
                    "events.sns_topic_arn must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), got {arn:?}"
                )));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(ConfigError::Rule(format!(
                    "events.endpoint must be an http:// or https:// URL, got {endpoint:?}"
                )));
            }
        }
        Ok(())
    }
}

/// The CDN serving the derived prefix: when a source is removed and its derivatives and
/// manifests deleted (`storage.delete_on_remove`), one invalidation of
/// `/{derived_prefix}{source_rel}/*` makes it stop serving its cached copies. Credentials
/// come from the standard AWS chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CdnSettings {
    /// Id of the CloudFront distribution whose origin is the derived prefix (e.g.
    /// `E2QWRUHAPOMQZL`); it needs `cloudfront:CreateInvalidation` on it. Unset: removals
    /// call no CDN.
    pub cloudfront_distribution_id: Option<String>,
    /// Custom CloudFront API endpoint (moto), e.g. `http://127.0.0.1:5000`.
    pub endpoint: Option<String>,
}

impl CdnSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(id) = &self.cloudfront_distribution_id {
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ConfigError::Rule(format!(
                    "cdn.cloudfront_distribution_id must be a distribution id (letters and digits, e.g. E2QWRUHAPOMQZL), got {id:?}"
                )));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            let host = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"));
            if host.is_none_or(str::is_empty) {
                return Err(ConfigError::Rule(format!(
                    "cdn.endpoint must be an http:// or https:// URL, got {endpoint:?}"
                )));
            }
        }
        Ok(())
    }
}

/// S3 or an S3-compatible server. Credentials come from the standard AWS chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// The bucket holding sources and derivatives.
    pub bucket: String,
    /// Custom endpoint (MinIO, moto), e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Region; default from the AWS chain, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub force_path_style: bool,
    /// Per-request timeout in seconds.
    pub timeout_secs: u64,
}

/// Derivative URLs (see [`crate::url`]): `{scheme}://{host}/{derived key}`, with
/// `?exp=…&sig=…` on explicit specs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UrlSettings {
    /// CDN host names, e.g. `["img1.example.com", "img2.example.com"]`. Empty: URLs are
    /// relative (`/derived/…`).
    pub hosts: Vec<String>,
    /// `https` or `http`.
    pub scheme: String,
    /// Spread https URLs over all `hosts` (by a hash of the path). Off by default: over
    /// HTTP/2 one connection carries every request and each extra host costs a DNS
    /// lookup and a TLS handshake, so only `hosts[0]` is used. http URLs are always spread.
    pub shard_https: bool,
    /// Serve presets only: URLs with an explicit spec are refused (403).
    pub presets_only: bool,
    /// HMAC-SHA256 secrets signing explicit-spec URLs, at least 32 bytes each. The first
    /// signs, every one verifies: rotate by putting the new key first, and remove the old
    /// one once the URLs it signed are no longer in use. Without any key, explicit specs
    /// are refused.
    pub signing_keys: Vec<String>,
    /// Lifetime of newly signed spec URLs in seconds (`exp` = now + this). None: they
    /// never expire.
    pub default_ttl_secs: Option<u64>,
}

/// Redacts the signing keys.
impl std::fmt::Debug for UrlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSettings")
            .field("hosts", &self.hosts)
            .field("scheme", &self.scheme)
            .field("shard_https", &self.shard_https)
            .field("presets_only", &self.presets_only)
            .field(
                "signing_keys",
                &format_args!("[{} redacted]", self.signing_keys.len()),
            )
            .field("default_ttl_secs", &self.default_ttl_secs)
            .finish()
    }
}

impl Default for UrlSettings {
    fn default() -> Self {
        UrlSettings {
            hosts: Vec::new(),
            scheme: "https".into(),
            shard_https: false,
            presets_only: false,
            signing_keys: Vec::new(),
            default_ttl_secs: None,
        }
    }
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            bucket: "rendition".into(),
            endpoint: None,
            region: None,
            force_path_style: false,
            timeout_secs: 30,
        }
    }
}

/// A named variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub spec: VariantSpec,
    /// Rendered as soon as a source arrives (otherwise only on demand).
    #[serde(default)]
    pub eager: bool,
    /// Encodings of this preset, in the order `fm=auto` prefers them (e.g.
    /// `["avif", "webp", "jpeg"]`): an eager job makes each from the one decode, and the
    /// preset's `.auto` URL negotiates among them. The spec then says no `fm` (or
    /// `fm=auto`). Empty: the spec's `fm` alone (`fm=auto`: AVIF, WebP and the legacy
    /// format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<Format>,
}

impl Preset {
    /// The formats this preset is made in, in order of preference. [`Format::Auto`] in the
    /// list stands for the legacy format (JPEG, or PNG for a source with alpha).
    pub fn formats(&self) -> Vec<Format> {
        if !self.formats.is_empty() {
            self.formats.clone()
        } else if self.spec.format == Format::Auto {
            crate::negotiate::AUTO_ORDER.to_vec()
        } else {
            vec![self.spec.format]
        }
    }

    /// Whether its URLs may end in `.auto` (the format negotiated per request).
    pub fn negotiates(&self) -> bool {
        !self.formats.is_empty() || self.spec.format == Format::Auto
    }

    /// The spec of this preset in one of its formats.
    pub fn spec_in(&self, format: Format) -> VariantSpec {
        VariantSpec {
            format,
            ..self.spec.clone()
        }
    }

    /// The version of this preset in `format` ([`Format::Auto`]: its legacy format) that
    /// its derivative names carry: the spec hash of [`Preset::spec_in`]`(format)`
    /// ([`crate::naming::spec_hash`]).
    pub fn hash_in(&self, format: Format) -> String {
        crate::naming::spec_hash(&self.spec_in(format).to_string())
    }

    /// What the version of its negotiated (`.auto`) URL covers: the spec with `fm=auto`
    /// and, when the preset names its formats, `;formats=` and them in order
    /// (`w=160,fm=auto;formats=avif,webp,jpeg`), so adding or reordering formats, which
    /// changes what that URL may answer, gives it a new name too.
    pub fn negotiated_text(&self) -> String {
        let mut text = self.spec_in(Format::Auto).to_string();
        if !self.formats.is_empty() {
            let formats: Vec<&str> = self.formats.iter().map(|f| f.as_str()).collect();
            text.push_str(";formats=");
            text.push_str(&formats.join(","));
        }
        text
    }

    /// The version its `.auto` URL carries: the spec hash of [`Preset::negotiated_text`].
    pub fn negotiated_hash(&self) -> String {
        crate::naming::spec_hash(&self.negotiated_text())
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            source_prefix: "originals/".into(),
            derived_prefix: "derived/".into(),
            failed_prefix: "failed/".into(),
            delete_on_remove: true,
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Rule(String),
}

/// Top-level sections owned by an adapter of the `rendition` binary (its queue consumers,
/// its worker process, `serve`) rather than by the core. Each is defined, defaulted and
/// validated next to its adapter, and type-checked only by the binary that declares it
/// ([`AdapterSections`]); every loader accepts all of them by name, so one file (e.g. one
/// SSM parameter) configures both the CLI and the Lambda. A test in the CLI keeps this
/// list equal to its sections.
pub const ADAPTER_SECTIONS: &[&str] = &["rabbitmq", "serve", "sqs", "worker"];

/// Keys that moved, with where they live now: refused with a message naming the new place,
/// because a binary that does not own the old section would otherwise ignore them.
const MOVED: &[(&str, &str)] = &[("worker.delete_on_remove", "storage.delete_on_remove")];

/// The sections of the file a binary's adapters own, as one struct whose fields are
/// sections (named in [`ADAPTER_SECTIONS`]); `#[serde(deny_unknown_fields, default)]` like
/// [`Settings`]. Its doc comments become the JSON Schema's descriptions
/// ([`crate::schema::all`]).
pub trait AdapterSections: DeserializeOwned + Serialize + JsonSchema + Default {
    /// Checks rules types cannot express, after the core's own
    /// ([`Settings::validate`]) have passed.
    fn validate(&self, core: &Settings) -> Result<(), ConfigError>;

    /// The top-level section names (the fields of `Self`).
    fn sections() -> Vec<String> {
        section_names(&Self::default())
    }
}

/// The field names of a struct of sections, as it serializes.
fn section_names(sections: &impl Serialize) -> Vec<String> {
    match figment::value::Value::serialize(sections) {
        Ok(figment::value::Value::Dict(_, dict)) => dict.into_keys().collect(),
        _ => Vec::new(),
    }
}

/// A binary with no adapter sections of its own (the Lambda): the adapter sections in the
/// file are accepted by name and not read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoSections {}

impl AdapterSections for NoSections {
    fn validate(&self, _core: &Settings) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// The layers above the defaults, read once: the TOML file and the `RENDITION__*`
/// variables (as dotted paths).
struct Layers {
    file: Option<std::path::PathBuf>,
    /// `(variable, dotted path, value)`.
    env: Vec<(String, String, figment::value::Value)>,
}

impl Layers {
    fn read<I>(file: Option<&Path>, env: I) -> Result<Layers, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let file = match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::MissingFile(path.display().to_string()))
            }
            Some(path) => Some(path.to_path_buf()),
            None if Path::new("rendition.toml").exists() => Some("rendition.toml".into()),
            None => None,
        };
        // Environment variables are passed in (main hands over `std::env::vars()`), so
        // tests stay hermetic and nothing below main reads the environment.
        let env = env
            .into_iter()
            .filter_map(|(name, raw)| {
                let rest = name.strip_prefix("RENDITION__")?;
                let path = rest
                    .split("__")
                    .map(str::to_ascii_lowercase)
                    .collect::<Vec<_>>()
                    .join(".");
                let value = raw.parse().unwrap_or_else(|_| raw.clone().into());
                Some((name, path, value))
            })
            .collect();
        Ok(Layers { file, env })
    }

    /// Where `section` was set, for a message: the last variable naming it, else the file.
    fn origin(&self, section: &str) -> String {
        let var = self
            .env
            .iter()
            .rev()
            .find(|(_, path, _)| path.split('.').next() == Some(section));
        match (var, &self.file) {
            (Some((name, _, _)), _) => format!(" (from {name})"),
            (None, Some(file)) => format!(" in {}", file.display()),
            (None, None) => String::new(),
        }
    }

    /// `figment`, then the file, then the variables: only the top-level sections `keep`
    /// accepts.
    fn onto(&self, mut figment: Figment, keep: &dyn Fn(&str) -> bool) -> Figment {
        if let Some(path) = &self.file {
            figment = figment.merge(Only {
                inner: Toml::file_exact(path),
                keep,
            });
        }
        for (_, path, value) in &self.env {
            let section = path.split('.').next().unwrap_or_default();
            if keep(section) {
                figment = figment.merge(Serialized::default(path, value));
            }
        }
        figment
    }
}

/// A provider's data with only the top-level sections `keep` accepts. Its metadata is the
/// inner provider's, so an error still names the file.
struct Only<'a, P> {
    inner: P,
    keep: &'a dyn Fn(&str) -> bool,
}

impl<P: Provider> Provider for Only<'_, P> {
    fn metadata(&self) -> Metadata {
        self.inner.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = self.inner.data()?;
        for dict in data.values_mut() {
            dict.retain(|section, _| (self.keep)(section));
        }
        Ok(data)
    }
}

impl Settings {
    /// The core's sections: defaults → `file` (or `./rendition.toml` when present) →
    /// `RENDITION__*` from `env`. Adapter sections ([`ADAPTER_SECTIONS`]) are accepted by
    /// name and not read: the Lambda's loader. A binary with adapters uses
    /// [`Settings::load_with`].
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Settings::load_with::<NoSections, _>(file, env).map(|(settings, _)| settings)
    }

    /// The core's sections and `A`'s, from one layering (defaults → `file` →
    /// `RENDITION__*`). A top-level section that is neither the core's nor in
    /// [`ADAPTER_SECTIONS`] is refused, and so is a key that moved ([`ConfigError::Rule`],
    /// saying where). Then the core reads its sections and `A` its own, each with
    /// `deny_unknown_fields`; the adapter sections `A` does not own (another binary's) are
    /// accepted by name and not read. Types first, then the core's rules, then `A`'s.
    pub fn load_with<A, I>(file: Option<&Path>, env: I) -> Result<(Settings, A), ConfigError>
    where
        A: AdapterSections,
        I: IntoIterator<Item = (String, String)>,
    {
        let layers = Layers::read(file, env)?;
        let everything = layers.onto(Figment::new(), &|_| true);
        // Checked here, not by the core's `deny_unknown_fields` alone, so the message
        // lists every section, the adapters' included.
        if let Ok(top) = everything.extract::<Dict>() {
            let mut known = section_names(&Settings::default());
            known.extend(ADAPTER_SECTIONS.iter().map(|s| s.to_string()));
            if let Some(unknown) = top.keys().find(|k| !known.contains(k)) {
                let from = layers.origin(unknown);
                return Err(ConfigError::Rule(format!(
                    "unknown section `{unknown}`{from}; the sections are {}",
                    known.join(", ")
                )));
            }
        }
        for (old, new) in MOVED {
            if everything.contains(old) {
                return Err(ConfigError::Rule(format!(
                    "{old} has moved to {new} (RENDITION__{}): set it there",
                    new.replace('.', "__").to_ascii_uppercase()
                )));
            }
        }

        let mut base = Settings::default();
        base.presets.clear();
        let core = layers.onto(Figment::from(Serialized::defaults(base)), &|section| {
            !ADAPTER_SECTIONS.contains(&section)
        });
        let mut settings: Settings = core.extract().map_err(Box::new)?;
        if settings.presets.is_empty() {
            settings.presets = default_presets();
        }

        let owned = A::sections();
        let adapters = layers.onto(
            Figment::from(Serialized::defaults(A::default())),
            &|section| owned.iter().any(|o| o == section),
        );
        let adapters: A = adapters.extract().map_err(Box::new)?;

        settings.validate()?;
        adapters.validate(&settings)?;
        Ok((settings, adapters))
    }

    /// Checks rules types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |msg: String| Err(ConfigError::Rule(msg));
        // `/latest/…` is the redirect route of `serve` and the Lambda.
        if self.storage.derived_prefix.starts_with("latest/") {
            return rule(format!(
                "storage.derived_prefix must not start with \"latest/\" (the /latest/ route), got {:?}",
                self.storage.derived_prefix
            ));
        }
        self.events.validate()?;
        self.cdn.validate()?;
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            if !endpoint.starts_with("http://") || endpoint.len() <= "http://".len() {
                return rule(format!(
                    "telemetry.otlp_endpoint must be an http:// URL of a collector (got {endpoint:?})"
                ));
            }
        }
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
            || self.limits.max_frames == 0
            || self.limits.max_decoded_bytes == 0
            || self.limits.max_scans == 0
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
        let r = &self.render;
        if r.max_memory_mb < 128 || r.max_cpu_secs == 0 || r.deadline_secs == 0 {
            return rule(
                "render: max_memory_mb must be at least 128, max_cpu_secs and deadline_secs at least 1"
                    .into(),
            );
        }
        if r.recycle_after_jobs == 0 {
            return rule("render.recycle_after_jobs must be at least 1".into());
        }
        let u = &self.urls;
        if u.scheme != "https" && u.scheme != "http" {
            return rule(format!(
                "urls.scheme must be \"https\" or \"http\", got {:?}",
                u.scheme
            ));
        }
        for host in &u.hosts {
            if host.is_empty()
                || host.chars().any(|c| {
                    matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace() || c.is_control()
                })
            {
                return rule(format!(
                    "urls.hosts entries must be host names (optionally with a port), got {host:?}"
                ));
            }
        }
        if let Some(i) = u.signing_keys.iter().position(|k| k.len() < 32) {
            return rule(format!("urls.signing_keys[{i}] is shorter than 32 bytes"));
        }
        if u.default_ttl_secs == Some(0) {
            return rule("urls.default_ttl_secs must be at least 1 (or unset)".into());
        }
        for (name, preset) in &self.presets {
            if !is_preset_name(name) {
                return rule(format!(
                    "preset name {name:?} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
                ));
            }
            if !preset.formats.is_empty() {
                if !matches!(preset.spec.format, Format::Original | Format::Auto) {
                    return rule(format!(
                        "preset {name:?}: a preset with `formats` has no `fm` in its spec (or fm=auto)"
                    ));
                }
                for (i, f) in preset.formats.iter().enumerate() {
                    if matches!(f, Format::Original | Format::Auto) {
                        return rule(format!(
                            "preset {name:?}: formats[{i}] must be jpeg, png, webp, avif or gif"
                        ));
                    }
                    if preset.formats[..i].contains(f) {
                        return rule(format!(
                            "preset {name:?}: {} is listed twice in formats",
                            f.as_str()
                        ));
                    }
                }
                for &f in &preset.formats {
                    if let Err(e) = preset.spec_in(f).to_string().parse::<VariantSpec>() {
                        return rule(format!("preset {name:?} as {}: {e}", f.as_str()));
                    }
                }
            }
            for (axis, len) in [("w", preset.spec.width), ("h", preset.spec.height)] {
                let len = len.map(|l| preset.spec.dpr.apply(l));
                if len.is_some_and(|l| l > self.limits.max_output_dimension) {
                    return rule(format!(
                        "preset {name:?}: {axis} (× dpr) exceeds limits.max_output_dimension ({})",
                        self.limits.max_output_dimension
                    ));
                }
            }
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn rule(result: Result<Settings, ConfigError>) -> String {
        match result {
            Err(ConfigError::Rule(message)) => message,
            other => panic!("expected a rule error, got {other:?}"),
        }
    }

    #[test]
    fn the_core_loader_accepts_every_adapter_section_without_reading_it() {
        // One file for the CLI and the Lambda: the Lambda's loader must not refuse the
        // CLI's sections, whatever they hold (the CLI type-checks them).
        let file = toml_file(
            "[limits]\nmax_input_pixels = 1000\n[rabbitmq]\nqueue = \"jobs\"\nnot_ours = 1\n[sqs]\nwait_seconds = 99\n[serve]\naddr = 5\n[worker]\nhttp_addr = \"0.0.0.0:9464\"\n",
        );
        let s = Settings::load(
            Some(file.path()),
            env(&[("RENDITION__RABBITMQ__QUEUE", "other")]),
        )
        .unwrap();
        assert_eq!(s.limits.max_input_pixels, 1000);
    }

    #[test]
    fn an_unknown_top_level_section_is_refused() {
        let file = toml_file("[nonsense]\nx = 1\n");
        let message = rule(Settings::load(Some(file.path()), env(&[])));
        assert!(message.contains("`nonsense`"), "{message}");
        assert!(
            message.contains(&file.path().display().to_string()),
            "names the file: {message}"
        );
        assert!(
            message.contains("storage") && message.contains("rabbitmq"),
            "lists the sections, the adapters' too: {message}"
        );
        let message = rule(Settings::load(
            None,
            env(&[("RENDITION__NONSENSE__X", "1")]),
        ));
        assert!(
            message.contains("`nonsense`") && message.contains("RENDITION__NONSENSE__X"),
            "{message}"
        );
    }

    #[test]
    fn errors_still_name_the_file() {
        let file = toml_file("[limits]\nmax_input_pixls = 5\n");
        let err = Settings::load(Some(file.path()), env(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("max_input_pixls"), "{text}");
        assert!(
            text.contains(&file.path().display().to_string()),
            "the message names the file: {text}"
        );
    }

    #[test]
    fn delete_on_remove_is_a_storage_setting() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert!(s.storage.delete_on_remove);
        let file = toml_file("[storage]\ndelete_on_remove = false\n");
        assert!(
            !Settings::load(Some(file.path()), env(&[]))
                .unwrap()
                .storage
                .delete_on_remove
        );
        let s = Settings::load(
            None,
            env(&[("RENDITION__STORAGE__DELETE_ON_REMOVE", "false")]),
        )
        .unwrap();
        assert!(!s.storage.delete_on_remove);
    }

    #[test]
    fn the_old_delete_on_remove_says_where_it_moved() {
        let file =
            toml_file("[worker]\nhttp_addr = \"127.0.0.1:9464\"\ndelete_on_remove = false\n");
        for message in [
            rule(Settings::load(Some(file.path()), env(&[]))),
            rule(Settings::load(
                None,
                env(&[("RENDITION__WORKER__DELETE_ON_REMOVE", "true")]),
            )),
        ] {
            assert!(
                message.contains("worker.delete_on_remove")
                    && message.contains("storage.delete_on_remove"),
                "{message}"
            );
        }
    }

    #[test]
    fn no_sections_owns_none() {
        assert!(NoSections::sections().is_empty());
    }

    #[test]
    fn the_cdn_is_off_unless_a_distribution_is_named() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.cdn, CdnSettings::default());
        let s = Settings::load(
            None,
            env(&[
                (
                    "RENDITION__CDN__CLOUDFRONT_DISTRIBUTION_ID",
                    "E2QWRUHAPOMQZL",
                ),
                ("RENDITION__CDN__ENDPOINT", "http://127.0.0.1:5000"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.cdn.cloudfront_distribution_id.as_deref(),
            Some("E2QWRUHAPOMQZL")
        );
        assert_eq!(s.cdn.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        for (var, value) in [
            ("RENDITION__CDN__CLOUDFRONT_DISTRIBUTION_ID", "E2QW/../x"),
            ("RENDITION__CDN__CLOUDFRONT_DISTRIBUTION_ID", ""),
            ("RENDITION__CDN__ENDPOINT", "127.0.0.1:5000"),
            ("RENDITION__CDN__ENDPOINT", "http://"),
        ] {
            let message = rule(Settings::load(None, env(&[(var, value)])));
            assert!(message.contains("cdn."), "{var}={value:?}: {message}");
        }
    }

    #[test]
    fn events_go_to_sns_only_when_a_topic_is_named() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.events, EventsSettings::default());
        assert_eq!(s.events.topic_region(), None);
        let arn = "arn:aws:sns:eu-west-1:123456789012:rendition-events";
        let s = Settings::load(
            None,
            env(&[
                ("RENDITION__EVENTS__SNS_TOPIC_ARN", arn),
                ("RENDITION__EVENTS__ENDPOINT", "http://127.0.0.1:5000"),
            ]),
        )
        .unwrap();
        assert_eq!(s.events.sns_topic_arn.as_deref(), Some(arn));
        assert_eq!(s.events.topic_region(), Some("eu-west-1"));
        for (var, value) in [
            ("RENDITION__EVENTS__SNS_TOPIC_ARN", "rendition-events"),
            (
                "RENDITION__EVENTS__SNS_TOPIC_ARN",
                "arn:aws:sqs:eu-west-1:1:q",
            ),
            (
                "RENDITION__EVENTS__SNS_TOPIC_ARN",
                "arn:aws:sns::123456789012:t",
            ),
            ("RENDITION__EVENTS__ENDPOINT", "127.0.0.1:5000"),
        ] {
            let message = rule(Settings::load(None, env(&[(var, value)])));
            assert!(message.contains("events."), "{var}={value:?}: {message}");
        }
    }
}
