//! The one layering (defaults → `rendition.toml` → `RENDITION__*`), the adapter sections
//! every loader accepts by name, and the mapping of what goes wrong into [`ConfigError`]s
//! that say where a value came from.

use std::path::Path;

use figment::providers::{Format as _, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{default_presets, ConfigError, Origin, Settings};

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
        match self.origin_of(section) {
            Origin::Env(name) => format!(" (from {name})"),
            Origin::File(file) => format!(" in {file}"),
            Origin::Defaults => String::new(),
        }
    }

    /// Where the value at the dotted `key` came from: the last variable setting it (or a
    /// table holding it, or a key inside it), else the file, else the defaults.
    fn origin_of(&self, key: &str) -> Origin {
        let related = |path: &str| {
            path == key
                || key.strip_prefix(path).is_some_and(|r| r.starts_with('.'))
                || path.strip_prefix(key).is_some_and(|r| r.starts_with('.'))
        };
        if let Some((name, _, _)) = self.env.iter().rev().find(|(_, path, _)| related(path)) {
            return Origin::Env(name.clone());
        }
        match &self.file {
            Some(file) => Origin::File(file.display().to_string()),
            None => Origin::Defaults,
        }
    }

    /// A rule's message with where its value came from in front: the first `section.key`
    /// (or `preset "NAME"`) it names.
    fn locate(&self, error: ConfigError) -> ConfigError {
        let ConfigError::Rule(message) = error else {
            return error;
        };
        let mut known = section_names(&Settings::default());
        known.extend(ADAPTER_SECTIONS.iter().map(|s| s.to_string()));
        let words: Vec<&str> = message
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '"')))
            .collect();
        let key = words.iter().enumerate().find_map(|(i, word)| {
            let word = word.trim_matches(|c| c == '.' || c == '"');
            match word.split_once('.') {
                Some((section, _)) if known.iter().any(|k| k == section) => Some(word.to_string()),
                None if word == "preset" => words[i + 1..]
                    .iter()
                    .take(2)
                    .find(|name| name.starts_with('"'))
                    .map(|name| format!("presets.{}", name.trim_matches('"'))),
                _ => None,
            }
        });
        match key.map(|key| self.origin_of(&key)) {
            Some(origin @ (Origin::Env(_) | Origin::File(_))) => {
                ConfigError::Rule(format!("{origin}: {message}"))
            }
            _ => ConfigError::Rule(message),
        }
    }

    /// Our error for figment's, naming where the value came from (`merged`: every layer
    /// above the defaults, for the value as written).
    fn error(&self, error: figment::Error, merged: &Figment) -> ConfigError {
        ConfigError::from_figment(error, &|key| self.origin_of(key), &|key| {
            merged.find_value(key).ok()
        })
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
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                let near = match super::error::nearest(unknown, &known) {
                    Some(near) => format!(" (did you mean `{near}`?)"),
                    None => String::new(),
                };
                return Err(ConfigError::Rule(format!(
                    "unknown section `{unknown}`{from}{near}; the sections are {}",
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
        let mut settings: Settings = core.extract().map_err(|e| layers.error(e, &everything))?;
        if settings.presets.is_empty() {
            settings.presets = default_presets();
        }

        let owned = A::sections();
        let adapters = layers.onto(
            Figment::from(Serialized::defaults(A::default())),
            &|section| owned.iter().any(|o| o == section),
        );
        let adapters: A = adapters
            .extract()
            .map_err(|e| layers.error(e, &everything))?;

        settings.validate().map_err(|e| layers.locate(e))?;
        adapters.validate(&settings).map_err(|e| layers.locate(e))?;
        Ok((settings, adapters))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::config::{CdnSettings, EventsSettings};

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

    #[test]
    fn a_bad_value_names_its_variable_or_its_file_and_key() {
        let err = Settings::load(
            None,
            env(&[("RENDITION__LIMITS__MAX_INPUT_PIXELS", "lots")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "RENDITION__LIMITS__MAX_INPUT_PIXELS: found \"lots\", expected a whole number, 0 or more"
        );
        assert!(std::error::Error::source(&err).is_none(), "said once");
        let file = toml_file("[log]\nformat = \"yaml\"\n");
        let err = Settings::load(Some(file.path()), env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: log.format: found \"yaml\", expected one of \"pretty\" or \"json\"",
                file.path().display()
            )
        );
        let file = toml_file("[presets.x]\neager = true\n");
        let err = Settings::load(Some(file.path()), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::MissingKey { .. }), "{err}");
        assert!(
            err.to_string().ends_with("presets.x: `spec` is missing"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_gets_the_nearest_known_one() {
        let file = toml_file("[render]\nconcurency = 4\n");
        match Settings::load(Some(file.path()), env(&[])).unwrap_err() {
            ConfigError::UnknownKey {
                origin,
                key,
                suggestion,
                ..
            } => {
                assert_eq!(origin, Origin::File(file.path().display().to_string()));
                assert_eq!(key, "render.concurency");
                assert_eq!(suggestion.as_deref(), Some("concurrency"));
            }
            other => panic!("{other:?}"),
        }
        let err = Settings::load(None, env(&[("RENDITION__LIMITS__WHATEVER", "1")])).unwrap_err();
        assert!(
            err.hint().is_some_and(|h| h.contains("max_input_pixels")),
            "{err}"
        );
    }

    #[test]
    fn a_broken_rule_says_where_the_value_came_from() {
        let message = rule(Settings::load(
            None,
            env(&[("RENDITION__URLS__SCHEME", "ftp")]),
        ));
        assert!(
            message.starts_with("RENDITION__URLS__SCHEME: urls.scheme"),
            "{message}"
        );
        let file = toml_file("[presets.\"Bad Name\"]\nspec = \"w=10\"\n");
        let message = rule(Settings::load(Some(file.path()), env(&[])));
        assert!(
            message.starts_with(&format!("{}: preset", file.path().display())),
            "{message}"
        );
    }
}
