//! The core's sections other than the image layer's: `[storage]`, `[log]`, `[telemetry]`,
//! `[events]`, `[cdn]`, `[s3]`, `[urls]`, and a preset (`[presets.NAME]`), with their
//! defaults and the rules of the sections that check their own values.

use rendition_image::spec::{Format, VariantSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;

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

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
    /// ([`rendition_image::spec::spec_hash`]).
    pub fn hash_in(&self, format: Format) -> String {
        rendition_image::spec::spec_hash(&self.spec_in(format).to_string())
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
        rendition_image::spec::spec_hash(&self.negotiated_text())
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
