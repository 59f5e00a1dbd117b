//! JSON Schemas generated from the Rust types. `schemas/` holds the checked-in copies;
//! `rendition schema --out schemas` rewrites them and a test fails when they are stale.

use schemars::schema_for;

/// `(file name, pretty JSON)` for every published schema.
pub fn all() -> Vec<(&'static str, String)> {
    let pretty = |s: schemars::schema::RootSchema| {
        let mut text = serde_json::to_string_pretty(&s).expect("schema serializes");
        text.push('\n');
        text
    };
    vec![
        (
            "config.schema.json",
            pretty(schema_for!(crate::config::Settings)),
        ),
        (
            "manifest.schema.json",
            pretty(schema_for!(crate::manifest::Manifest)),
        ),
        (
            "failure.schema.json",
            pretty(schema_for!(crate::manifest::FailureRecord)),
        ),
        ("job.schema.json", pretty(schema_for!(crate::event::Job))),
    ]
}
