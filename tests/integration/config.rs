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

/// `rendition ARGS` in a scratch folder with only `vars` of our own: (exit code, stderr
/// lines).
fn rendition_fails(
    cwd: &std::path::Path,
    args: &[&str],
    vars: &[(&str, &str)],
) -> (i32, Vec<String>) {
    let out = crate::harness::Spawn::rendition(cwd)
        .args(args)
        .hermetic()
        .env_remove("RUST_LOG")
        .envs(vars.iter().copied())
        .output_blocking();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // What the program says, without its log lines (a timestamp first; `render` logs its
    // helper's start and its span).
    let lines: Vec<String> = stderr
        .lines()
        .filter(|l| !l.starts_with("20"))
        .map(str::to_string)
        .collect();
    // What a newcomer must never have to read.
    for banned in [".rs:", "figment", "default.", "Caused by", "u64"] {
        assert!(
            !stderr.contains(banned),
            "{args:?} says {banned:?}:\n{stderr}"
        );
    }
    assert!(
        lines.len() <= 3,
        "{args:?}: more than three lines besides the logs:\n{stderr}"
    );
    (out.status.code().expect("exited"), lines)
}

#[test]
fn a_bad_variable_is_named_once_with_what_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let (code, lines) = rendition_fails(
        dir.path(),
        &["run", "--local", bucket.to_str().unwrap(), "--once"],
        &[("RENDITION__LIMITS__MAX_INPUT_PIXELS", "lots")],
    );
    assert_eq!(
        (code, lines),
        (
            2,
            vec![
                "error: RENDITION__LIMITS__MAX_INPUT_PIXELS: found \"lots\", expected a whole number, 0 or more (config)".to_string()
            ]
        )
    );
}

#[test]
fn a_bad_preset_spec_names_the_file_and_key_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rendition.toml"),
        "[presets.x]\nspec = \"w=abc\"\n",
    )
    .unwrap();
    let (code, lines) = rendition_fails(dir.path(), &["schema"], &[]);
    let expected = "w=abc"
        .parse::<rendition_image::spec::VariantSpec>()
        .unwrap_err();
    assert_eq!(
        (code, lines),
        (
            2,
            vec![format!(
                "error: rendition.toml: presets.x.spec: found \"w=abc\": {expected} (config)"
            )]
        )
    );
}

#[test]
fn a_misspelt_key_gets_the_nearest_known_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rendition.toml"),
        "[render]\nconcurency = 4\n",
    )
    .unwrap();
    let (code, lines) = rendition_fails(dir.path(), &["schema"], &[]);
    assert_eq!(
        (code, lines),
        (
            2,
            vec![
                "error: rendition.toml: unknown key `render.concurency`; did you mean `concurrency`? (config)".to_string()
            ]
        )
    );
    // From a variable: the variable, and the one to set instead.
    let (code, lines) = rendition_fails(
        dir.path(),
        &["--config", "/dev/null", "schema"],
        &[("RENDITION__RENDER__CONCURENCY", "4")],
    );
    assert_eq!(
        (code, lines),
        (
            2,
            vec![
                "error: RENDITION__RENDER__CONCURENCY: unknown key `render.concurency`; did you mean `concurrency` (RENDITION__RENDER__CONCURRENCY)? (config)".to_string()
            ]
        )
    );
}

#[test]
fn a_worker_without_a_queue_fails_at_once_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, lines) = rendition_fails(dir.path(), &["worker", "--queue", "sqs"], &[]);
    assert_eq!(
        (code, lines),
        (
            2,
            vec![
                "error: sqs.queue_url is not set: `rendition worker --queue sqs` needs it (config)"
                    .to_string(),
                "hint: set RENDITION__SQS__QUEUE_URL, or `queue_url` under [sqs] in rendition.toml"
                    .to_string(),
            ]
        )
    );
    // Before any AWS client: no credential or region discovery (IMDS takes seconds).
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (code, lines) = rendition_fails(
        dir.path(),
        &["worker", "--queue", "rabbitmq"],
        &[("RENDITION__RABBITMQ__URL", "")],
    );
    assert_eq!(code, 2);
    assert_eq!(
        lines[0],
        "error: rabbitmq.url is not set: `rendition worker --queue rabbitmq` needs it (config)"
    );
    let (code, lines) = rendition_fails(dir.path(), &["gc"], &[("RENDITION__S3__BUCKET", "")]);
    assert_eq!(
        (code, lines[0].as_str()),
        (
            2,
            "error: s3.bucket is not set: `rendition gc` without --local needs it (config)"
        )
    );
    let (code, lines) = rendition_fails(
        dir.path(),
        &["url", "originals/a.jpg", "--spec", "w=10", "--local", "."],
        &[],
    );
    assert_eq!(
        (code, lines[1].as_str()),
        (
            2,
            "hint: set RENDITION__URLS__SIGNING_KEYS, or `signing_keys` under [urls] in rendition.toml"
        )
    );
}

#[test]
fn a_missing_input_is_said_once_and_is_a_runtime_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines) = rendition_fails(
        dir.path(),
        &["render", "missing.jpg", "--spec", "w=10", "-o", "out.webp"],
        &[],
    );
    assert_eq!(
        (code, lines),
        (
            1,
            vec![
                "error: cannot read missing.jpg: No such file or directory (os error 2) (io)"
                    .to_string()
            ]
        )
    );
}

#[test]
fn an_over_limit_render_says_which_limit_to_raise() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jpg");
    let jpeg = crate::harness::encode_jpeg(&crate::harness::quadrants(64, 32), 90);
    std::fs::write(&input, jpeg).unwrap();
    let (code, lines) = rendition_fails(
        dir.path(),
        &["render", "in.jpg", "--spec", "w=10", "-o", "out.webp"],
        &[("RENDITION__LIMITS__MAX_INPUT_PIXELS", "100")],
    );
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [
            "error: source is 64×32 = 2048 pixels, over the limit of 100 (too_many_pixels)",
            "hint: if the source is trusted, raise limits.max_input_pixels (RENDITION__LIMITS__MAX_INPUT_PIXELS); the limit guards against hostile input",
        ],
        "{lines:?}"
    );
}
