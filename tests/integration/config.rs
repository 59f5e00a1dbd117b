//! Configuration layering and validation, and the checked-in JSON Schemas.

use std::io::Write;

use rendition_pipeline::config::{ConfigError, Settings};

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

#[test]
fn defaults_then_file_then_env() {
    let defaults = Settings::load(None, env(&[])).unwrap();
    assert_eq!(defaults.storage.derived_prefix, "derived/");
    assert_eq!(defaults.limits.max_input_pixels, 75_000_000);
    assert!(defaults.eager_presets().count() >= 5);

    let file = toml_file(
        "[limits]\nmax_input_pixels = 1000\n[presets.card]\nspec = \"w=300,h=200,fit=cover,fm=webp\"\neager = true\n",
    );
    let s = Settings::load(Some(file.path()), env(&[])).unwrap();
    assert_eq!(s.limits.max_input_pixels, 1000);
    assert_eq!(
        s.presets.keys().collect::<Vec<_>>(),
        vec!["card"],
        "file presets replace the built-in set"
    );

    let s = Settings::load(
        Some(file.path()),
        env(&[
            ("RENDITION__LIMITS__MAX_INPUT_PIXELS", "2000"),
            ("RENDITION__STORAGE__DERIVED_PREFIX", "out/"),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(s.limits.max_input_pixels, 2000);
    assert_eq!(s.storage.derived_prefix, "out/");
}

#[test]
fn bad_config_is_refused_at_start() {
    let cases = [
        "[limits]\nmax_input_pixls = 5\n",
        "[nonsense]\nx = 1\n",
        "[presets.x]\nspec = \"w=0\"\n",
        "[presets.x]\nspec = \"w=10\"\nmystery = true\n",
        "[presets.\"Bad Name\"]\nspec = \"w=10\"\n",
        "[storage]\nderived_prefix = \"originals/x/\"\n",
        "[storage]\nsource_prefix = \"/abs/\"\n",
        "[limits]\nmax_output_dimension = 100\n[presets.big]\nspec = \"w=200\"\n",
        "[render]\navif_effort = 12\n",
    ];
    for text in cases {
        let file = toml_file(text);
        assert!(
            Settings::load(Some(file.path()), env(&[])).is_err(),
            "accepted:\n{text}"
        );
    }
    assert!(matches!(
        Settings::load(
            Some(std::path::Path::new("/nonexistent/rendition.toml")),
            env(&[])
        ),
        Err(ConfigError::MissingFile(_))
    ));
    assert!(Settings::load(None, env(&[("RENDITION__LIMITS__NOPE", "1")])).is_err());
}

#[test]
fn checked_in_schemas_are_current() {
    let dir = crate::harness::repo_root().join("schemas");
    for (name, text) in rendition_cli::settings::schemas() {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|_| {
            panic!("schemas/{name} is missing: run `rendition schema --out schemas`")
        });
        assert_eq!(
            on_disk, text,
            "schemas/{name} is stale: run `rendition schema --out schemas`"
        );
    }
}

#[test]
fn example_config_in_repo_is_valid() {
    let s = Settings::load(
        Some(&crate::harness::repo_root().join("rendition.toml")),
        env(&[]),
    )
    .unwrap();
    assert!(s.eager_presets().count() > 0);
}

/// The real binary reads its adapter sections from the same file and variables: a file
/// shared with the Lambda is accepted, a moved key or a typo in an adapter section stops it
/// before anything runs.
#[test]
fn the_binary_checks_its_sections_at_start() {
    let run = |text: &str, vars: &[(&str, &str)]| {
        let file = toml_file(text);
        let dir = tempfile::tempdir().unwrap();
        let out = crate::harness::Spawn::rendition(dir.path())
            .arg("schema")
            .arg("--config")
            .arg(file.path())
            .hermetic()
            .envs(vars.iter().copied())
            .output_blocking();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let shared = "[storage]\ndelete_on_remove = false\n[rabbitmq]\nqueue = \"q\"\n[sqs]\nbatch_size = 2\n[worker]\nshutdown_grace_secs = 5\n[serve]\naddr = \"127.0.0.1:1\"\n";
    let (ok, stderr) = run(shared, &[("RENDITION__RABBITMQ__MAX_ATTEMPTS", "3")]);
    assert!(ok, "{stderr}");

    let (ok, stderr) = run("[worker]\ndelete_on_remove = false\n", &[]);
    assert!(
        !ok && stderr.contains("storage.delete_on_remove"),
        "{stderr}"
    );
    let (ok, stderr) = run("[rabbitmq]\nqueeue = \"q\"\n", &[]);
    assert!(!ok && stderr.contains("queeue"), "{stderr}");
    let (ok, stderr) = run(shared, &[("RENDITION__SQS__WAIT_SECONDS", "30")]);
    assert!(!ok && stderr.contains("sqs.wait_seconds"), "{stderr}");
}
