//! `config::Settings::load`: defaults → a TOML file → `RENDITION__*` variables, then
//! validation.
//!
//! Input: TOML text, optionally followed by a NUL byte and environment lines
//! `SECTION__KEY=value` (the `RENDITION__` prefix is added). The TOML goes through a
//! real file, as `load` reads one.
//!
//! Properties, beyond "never panics":
//! - errors are typed (`ConfigError`), never a missing file, and print;
//! - loaded settings pass `validate` and have presets;
//! - loaded settings written back as TOML load again as the same settings.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rendition_pipeline::config::{ConfigError, Settings};

/// One scratch file per process (`-fork`/`-jobs` run several), under `$TMPDIR`.
fn scratch() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("rendition-fuzz-config-{}.toml", std::process::id()))
    })
}

fn load(toml: &[u8], env: Vec<(String, String)>) -> Result<Settings, ConfigError> {
    std::fs::write(scratch(), toml).expect("write the scratch config");
    Settings::load(Some(scratch()), env)
}

fuzz_target!(|data: &[u8]| {
    let (toml, env) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(env) = std::str::from_utf8(env) else {
        return;
    };
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (format!("RENDITION__{name}"), value.to_string()))
        .collect();

    let settings = match load(toml, env) {
        Ok(settings) => settings,
        Err(e) => {
            assert!(!matches!(e, ConfigError::MissingFile(_)), "{e:?}");
            let _ = e.to_string();
            return;
        }
    };
    if let Err(e) = settings.validate() {
        panic!("loaded settings do not validate: {e}");
    }
    assert!(
        !settings.presets.is_empty(),
        "presets default to the built-in set"
    );
    let _ = format!("{settings:?}");

    // Written back and loaded again: the same settings. (TOML has no integers above
    // i64::MAX, so such a u64 limit cannot be written back; that is not a load bug.)
    let Ok(text) = toml::to_string(&settings) else {
        return;
    };
    let again = load(text.as_bytes(), Vec::new())
        .unwrap_or_else(|e| panic!("settings written as\n{text}\ndo not load: {e}"));
    assert_eq!(again, settings, "TOML round trip of\n{text}");
});
