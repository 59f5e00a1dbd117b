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

use crate::spec::{Format, VariantSpec};

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
    /// RabbitMQ consumer (`rendition worker --queue rabbitmq`).
    pub rabbitmq: RabbitSettings,
    /// SQS consumer (`rendition worker --queue sqs`).
    pub sqs: SqsSettings,
    /// The long-running worker process.
    pub worker: WorkerSettings,
    /// `rendition serve`: the on-demand path on a local folder.
    pub serve: ServeSettings,
    /// Derivative URLs: CDN hosts, sharding, and signing of explicit specs.
    pub urls: UrlSettings,
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
    /// Width × height of the source (75 MP by default); when an animation is kept (GIF or
    /// WebP output), all its frames count together.
    pub max_input_pixels: u64,
    /// Largest width or height of any output (after `dpr`).
    pub max_output_dimension: u32,
    /// Frames (pages) of a source, e.g. an animated GIF or WebP. A source with more is
    /// refused from its header, never truncated. A still output (JPEG, PNG, AVIF) decodes
    /// only the first frame; a kept animation counts every frame's pixels against
    /// `max_input_pixels`.
    pub max_frames: u32,
    /// Width × height × bands × bytes per sample × frames kept, from the header: what the
    /// decode would have to produce. The pixel limit alone ignores bands and bit depth (a
    /// 73 MP TIFF with 200 samples per pixel is 14.6 GB). Default 600 MB = 75 MP of
    /// 16-bit RGBA.
    pub max_decoded_bytes: u64,
    /// Scans of a JPEG, counted from its markers before decoding. A progressive decode
    /// costs about one pass over every block per scan, so repeated scans make a small file
    /// cost minutes of CPU. Default 100, the most libjpeg's own scan scripts can express.
    pub max_scans: u32,
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
    /// Render in sandboxed helper processes (the same binary, pre-started): decoders run
    /// with a memory and CPU budget, a wall-clock deadline, `no_new_privs` and a seccomp
    /// filter, so a crash or a budget exceeded costs one job, not the process. See the
    /// README's "Security" section. Off: renders run in this process (no budgets beyond
    /// the limits).
    pub sandbox: bool,
    /// Address space of a render helper (RLIMIT_AS), in MiB.
    pub max_memory_mb: u64,
    /// CPU time one render may use in its helper (RLIMIT_CPU), in seconds.
    pub max_cpu_secs: u64,
    /// Wall-clock time one render may take before its helper is killed, in seconds.
    pub deadline_secs: u64,
    /// Render helpers kept running (0 = `concurrency`).
    pub pool_size: usize,
    /// A helper is replaced after this many renders…
    pub recycle_after_jobs: u32,
    /// …or when its resident memory after a render is above this, in MiB (this also caps
    /// allocator fragmentation).
    pub recycle_above_rss_mb: u64,
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

/// Traces of jobs and requests (`tracing` spans; see the README's "Traces").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// OTLP/HTTP (JSON) endpoint of a collector, e.g. `http://127.0.0.1:4318`: spans are
    /// exported to `{endpoint}/v1/traces`. Unset: spans are only in the logs.
    pub otlp_endpoint: Option<String>,
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

/// RabbitMQ topology and retry policy; see the README's "Queues" section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RabbitSettings {
    pub url: String,
    /// The durable work queue (a quorum queue).
    pub queue: String,
    /// Exchange that upload events arrive on (MinIO's AMQP target publishes here); bound to
    /// the work queue with routing key `#`.
    pub uploads_exchange: String,
    /// Topic exchange receiving `derivatives.ready` completion events.
    pub events_exchange: String,
    /// Attempts for retryable errors before dead-lettering.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt.
    pub retry_base_ms: u64,
    /// Upper bound of the retry delay.
    pub retry_max_ms: u64,
    /// Quorum-queue delivery limit: a message that keeps crashing workers is dead-lettered.
    pub delivery_limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SqsSettings {
    /// Queue receiving S3 event notifications.
    pub queue_url: String,
    /// Custom endpoint (moto, ElasticMQ).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Long-poll wait (0-20 s).
    pub wait_seconds: i32,
    /// Visibility timeout to hold while a job runs; extended while it is still running.
    pub visibility_timeout_secs: i32,
    /// Messages per receive (1-10).
    pub batch_size: i32,
    /// Optional queue receiving `derivatives.ready` completion events.
    pub events_queue_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub http_addr: String,
    /// After SIGTERM, how long jobs in flight may take before the process exits anyway.
    pub shutdown_grace_secs: u64,
    /// `ObjectRemoved` events delete that source's derivatives and manifests.
    pub delete_on_remove: bool,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSettings {
    /// Listen address (loopback by default).
    pub addr: String,
    /// How long a request waits for a render before giving up (the render carries on).
    pub wait_timeout_secs: u64,
    /// Memory for recently used sources, so several variants of one source read it once.
    pub source_cache_bytes: u64,
    /// Renders (misses) at once (0 = number of CPUs). Misses of one derivative share a
    /// render.
    pub max_renders: usize,
    /// How long a miss may wait for a render slot before it is answered
    /// `503 Service Unavailable` with `Retry-After`, in milliseconds.
    pub render_queue_ms: u64,
    /// Open connections at most; past it new connections are closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this many seconds of the connection (or of
    /// the previous response), else the connection is closed.
    pub header_read_timeout_secs: u64,
    /// A connection with no request in progress is closed after this many seconds.
    pub idle_timeout_secs: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            addr: "127.0.0.1:8080".into(),
            wait_timeout_secs: 30,
            source_cache_bytes: 256 * 1024 * 1024,
            max_renders: 0,
            render_queue_ms: 2000,
            max_connections: 512,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
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

impl Default for RabbitSettings {
    fn default() -> Self {
        RabbitSettings {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            queue: "rendition.jobs".into(),
            uploads_exchange: "rendition.uploads".into(),
            events_exchange: "rendition.events".into(),
            max_attempts: 8,
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            delivery_limit: 10,
        }
    }
}

impl Default for SqsSettings {
    fn default() -> Self {
        SqsSettings {
            queue_url: String::new(),
            endpoint: None,
            region: None,
            wait_seconds: 20,
            visibility_timeout_secs: 60,
            batch_size: 10,
            events_queue_url: None,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            http_addr: "127.0.0.1:9464".into(),
            shutdown_grace_secs: 30,
            delete_on_remove: true,
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
            max_frames: 100,
            max_decoded_bytes: 600_000_000,
            max_scans: 100,
        }
    }
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            concurrency: 0,
            vips_threads: 1,
            avif_effort: 2,
            sandbox: true,
            max_memory_mb: 1024,
            max_cpu_secs: 8,
            deadline_secs: 20,
            pool_size: 0,
            recycle_after_jobs: 500,
            recycle_above_rss_mb: 512,
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
            rabbitmq: RabbitSettings::default(),
            sqs: SqsSettings::default(),
            worker: WorkerSettings::default(),
            serve: ServeSettings::default(),
            urls: UrlSettings::default(),
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
        // `/latest/…` is the redirect route of `serve` and the Lambda.
        if self.storage.derived_prefix.starts_with("latest/") {
            return rule(format!(
                "storage.derived_prefix must not start with \"latest/\" (the /latest/ route), got {:?}",
                self.storage.derived_prefix
            ));
        }
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
        if !(0..=20).contains(&self.sqs.wait_seconds) {
            return rule(format!(
                "sqs.wait_seconds must be 0-20, got {}",
                self.sqs.wait_seconds
            ));
        }
        if !(1..=10).contains(&self.sqs.batch_size) {
            return rule(format!(
                "sqs.batch_size must be 1-10, got {}",
                self.sqs.batch_size
            ));
        }
        if self.sqs.visibility_timeout_secs < 10 {
            return rule("sqs.visibility_timeout_secs must be at least 10".into());
        }
        if self.rabbitmq.max_attempts == 0
            || self.rabbitmq.retry_base_ms == 0
            || self.rabbitmq.retry_max_ms < self.rabbitmq.retry_base_ms
        {
            return rule("rabbitmq: max_attempts and retry_base_ms must be > 0 and retry_max_ms >= retry_base_ms".into());
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
        let v = &self.serve;
        if v.wait_timeout_secs <= r.deadline_secs {
            return rule(format!(
                "serve.wait_timeout_secs ({}) must be longer than render.deadline_secs ({}): a render over its budget is answered with its error, not a timeout",
                v.wait_timeout_secs, r.deadline_secs
            ));
        }
        if v.max_connections == 0 || v.header_read_timeout_secs == 0 || v.idle_timeout_secs == 0 {
            return rule(
                "serve: max_connections, header_read_timeout_secs and idle_timeout_secs must be at least 1"
                    .into(),
            );
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
        match self.render.concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Render helpers in the sandbox pool: the configured value, or `concurrency`.
    pub fn pool_size(&self) -> usize {
        match self.render.pool_size {
            0 => self.concurrency(),
            n => n,
        }
    }

    /// Renders `serve` runs at once: the configured value, or the number of CPUs.
    pub fn serve_max_renders(&self) -> usize {
        match self.serve.max_renders {
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
