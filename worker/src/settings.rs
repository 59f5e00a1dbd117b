//! The `rendition` binary's configuration: the core's [`Settings`] and the sections its
//! adapters own, each defined (type, defaults, doc comments, rules) next to its adapter —
//! `[rabbitmq]` in [`crate::rabbit`], `[sqs]` in [`crate::sqs`], `[serve]` in
//! [`crate::serve::settings`] — and `[worker]`, the process's own section, here. One file, one layering
//! (`RENDITION__SECTION__KEY` reaches these sections too) and one JSON Schema
//! ([`schemas`]), loaded once by `main` ([`load`]).

use std::path::Path;

use rendition_pipeline::config::{AdapterSections, ConfigError, Settings};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rabbit::RabbitSettings;
use crate::serve::settings::ServeSettings;
use crate::sqs::SqsSettings;

/// The sections the CLI's adapters own (their names are
/// [`rendition_pipeline::config::ADAPTER_SECTIONS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CliSections {
    /// RabbitMQ consumer (`rendition worker --queue rabbitmq`).
    pub rabbitmq: RabbitSettings,
    /// SQS consumer (`rendition worker --queue sqs`).
    pub sqs: SqsSettings,
    /// The long-running worker process.
    pub worker: WorkerSettings,
    /// `rendition serve`: the on-demand path on a local folder.
    pub serve: ServeSettings,
}

impl AdapterSections for CliSections {
    fn validate(&self, core: &Settings) -> Result<(), ConfigError> {
        self.sqs.validate()?;
        self.rabbitmq.validate()?;
        self.serve.validate(core)?;
        Ok(())
    }
}

// `[worker]`: the long-running process (its operations endpoint and shutdown); `serve`
// reads its grace period too. (The section's description in the schema is its field's
// doc, in `crate::settings::CliSections`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub http_addr: String,
    /// After SIGTERM, how long jobs in flight may take before the process exits anyway.
    pub shutdown_grace_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            http_addr: "127.0.0.1:9464".into(),
            shutdown_grace_secs: 30,
        }
    }
}

/// Defaults → `file` (or `./rendition.toml` when present) → `RENDITION__*` from `env`: the
/// core's settings and the CLI's sections, both validated.
pub fn load<I>(file: Option<&Path>, env: I) -> Result<(Settings, CliSections), ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    Settings::load_with::<CliSections, _>(file, env)
}

/// `(file name, pretty JSON)` for every published schema; `config.schema.json` describes
/// the whole file, the CLI's sections included.
pub fn schemas() -> Vec<(&'static str, String)> {
    rendition_pipeline::schema::all::<CliSections>()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use rendition_pipeline::config::ADAPTER_SECTIONS;

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

    fn load_text(text: &str) -> Result<(Settings, CliSections), ConfigError> {
        let file = toml_file(text);
        load(Some(file.path()), env(&[]))
    }

    #[test]
    fn the_sections_are_the_ones_the_core_lists() {
        // Every loader accepts ADAPTER_SECTIONS by name: a section missing from the list
        // would be refused by the core, one listed but not here accepted unread.
        let mut ours = CliSections::sections();
        ours.sort();
        let mut listed: Vec<_> = ADAPTER_SECTIONS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(ours, listed);
    }

    #[test]
    fn defaults_then_file_then_env_reach_the_adapter_sections() {
        let (_, defaults) = load(None, env(&[])).unwrap();
        assert_eq!(defaults, CliSections::default());
        assert_eq!(defaults.rabbitmq.queue, "rendition.jobs");

        let file = toml_file(
            "[rabbitmq]\nqueue = \"from-file\"\nmax_attempts = 3\n[serve]\naddr = \"0.0.0.0:80\"\n",
        );
        let (_, s) = load(Some(file.path()), env(&[])).unwrap();
        assert_eq!(s.rabbitmq.queue, "from-file");
        assert_eq!(s.rabbitmq.max_attempts, 3);
        assert_eq!(
            s.rabbitmq.url,
            RabbitSettings::default().url,
            "defaults fill the rest"
        );
        assert_eq!(s.serve.addr, "0.0.0.0:80");

        let (core, s) = load(
            Some(file.path()),
            env(&[
                ("RENDITION__RABBITMQ__QUEUE", "from-env"),
                ("RENDITION__SQS__BATCH_SIZE", "2"),
                ("RENDITION__WORKER__SHUTDOWN_GRACE_SECS", "5"),
                ("RENDITION__LIMITS__MAX_INPUT_PIXELS", "2000"),
            ]),
        )
        .unwrap();
        assert_eq!(s.rabbitmq.queue, "from-env");
        assert_eq!(s.rabbitmq.max_attempts, 3, "the file's other keys stay");
        assert_eq!(s.sqs.batch_size, 2);
        assert_eq!(s.worker.shutdown_grace_secs, 5);
        assert_eq!(core.limits.max_input_pixels, 2000);
    }

    #[test]
    fn unknown_keys_in_adapter_sections_are_refused() {
        for text in [
            "[rabbitmq]\nqueeue = \"x\"\n",
            "[sqs]\nwait_secs = 1\n",
            "[worker]\nhttp_adr = \"127.0.0.1:1\"\n",
            "[serve]\nmax_render = 2\n",
        ] {
            let err = load_text(text).unwrap_err();
            assert!(
                matches!(err, ConfigError::UnknownKey { .. }),
                "{text}: {err}"
            );
        }
        let err = load(None, env(&[("RENDITION__SERVE__NOPE", "1")])).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        // The core's loader (the Lambda's) accepts what the CLI refuses here.
        let file = toml_file("[rabbitmq]\nqueeue = \"x\"\n");
        assert!(Settings::load(Some(file.path()), env(&[])).is_ok());
    }

    #[test]
    fn an_unknown_top_level_section_is_refused() {
        let err = load_text("[nonsense]\nx = 1\n").unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
        assert!(load(None, env(&[("RENDITION__RABBIT__QUEUE", "x")])).is_err());
    }

    #[test]
    fn the_old_delete_on_remove_says_where_it_moved() {
        match load_text("[worker]\ndelete_on_remove = false\n") {
            Err(ConfigError::Rule(message)) => assert!(
                message.contains("worker.delete_on_remove")
                    && message.contains("storage.delete_on_remove"),
                "{message}"
            ),
            other => panic!("expected the moved-key rule, got {other:?}"),
        }
        let (core, _) = load_text("[storage]\ndelete_on_remove = false\n").unwrap();
        assert!(!core.storage.delete_on_remove);
    }

    #[test]
    fn the_adapter_rules_are_checked_at_start() {
        let refused = [
            ("[sqs]\nwait_seconds = 21\n", "sqs.wait_seconds"),
            ("[sqs]\nbatch_size = 0\n", "sqs.batch_size"),
            (
                "[sqs]\nvisibility_timeout_secs = 9\n",
                "sqs.visibility_timeout_secs",
            ),
            ("[rabbitmq]\nmax_attempts = 0\n", "rabbitmq"),
            ("[rabbitmq]\nretry_base_ms = 0\n", "rabbitmq"),
            (
                "[rabbitmq]\nretry_base_ms = 1000\nretry_max_ms = 999\n",
                "rabbitmq",
            ),
            (
                "[render]\ndeadline_secs = 30\n[serve]\nwait_timeout_secs = 30\n",
                "serve.wait_timeout_secs",
            ),
            ("[serve]\nmax_connections = 0\n", "serve"),
            ("[serve]\nheader_read_timeout_secs = 0\n", "serve"),
            ("[serve]\nidle_timeout_secs = 0\n", "serve"),
        ];
        for (text, names) in refused {
            match load_text(text) {
                Err(ConfigError::Rule(message)) => {
                    assert!(message.contains(names), "{text}: {message}")
                }
                other => panic!("{text}: expected a rule error, got {other:?}"),
            }
        }
        // Each rule is about the value, not the section: the edges are accepted.
        load_text("[sqs]\nwait_seconds = 0\nbatch_size = 10\nvisibility_timeout_secs = 10\n")
            .unwrap();
        load_text("[render]\ndeadline_secs = 30\n[serve]\nwait_timeout_secs = 31\n").unwrap();
    }

    #[test]
    fn the_schema_describes_the_whole_file() {
        let config = rendition_pipeline::schema::config::<CliSections>();
        let text = serde_json::to_value(&config).unwrap();
        let properties = text["properties"].as_object().unwrap();
        for section in ADAPTER_SECTIONS
            .iter()
            .chain(&["storage", "render", "presets"])
        {
            assert!(properties.contains_key(*section), "{section} is missing");
        }
        assert_eq!(text["additionalProperties"], false);
        assert_eq!(
            text["properties"]["rabbitmq"]["description"],
            "RabbitMQ consumer (`rendition worker --queue rabbitmq`)."
        );
        assert!(text["definitions"]["RabbitSettings"]["properties"]["queue"].is_object());
        assert_eq!(
            text["properties"]["storage"]["default"]["delete_on_remove"],
            true
        );
        assert!(text["definitions"]["WorkerSettings"]["properties"]
            .get("delete_on_remove")
            .is_none());
    }
}
