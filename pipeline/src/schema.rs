//! JSON Schemas generated from the Rust types. `schemas/` holds the checked-in copies;
//! `rendition schema --out schemas` rewrites them and a test fails when they are stale.

use schemars::schema::RootSchema;
use schemars::{schema_for, JsonSchema};

use crate::config::{AdapterSections, Settings};

/// `(file name, pretty JSON)` for every published schema. The configuration's describes
/// the whole file: the core's sections and `A`'s (the `rendition` binary's adapters).
pub fn all<A: AdapterSections>() -> Vec<(&'static str, String)> {
    let pretty = |s: RootSchema| {
        let mut text = serde_json::to_string_pretty(&s).expect("schema serializes");
        text.push('\n');
        text
    };
    vec![
        ("config.schema.json", pretty(config::<A>())),
        (
            "manifest.schema.json",
            pretty(schema_for!(crate::manifest::Manifest)),
        ),
        (
            "failure.schema.json",
            pretty(schema_for!(crate::manifest::FailureRecord)),
        ),
        ("job.schema.json", pretty(schema_for!(crate::event::Job))),
        (
            "event.schema.json",
            pretty(schema_for!(crate::outcome::OutcomeEvent)),
        ),
    ]
}

/// The configuration file: [`Settings`]' schema with `A`'s sections added as properties
/// (and their types as definitions), so one schema covers what one loader reads.
pub fn config<A: JsonSchema>() -> RootSchema {
    let mut root = schema_for!(Settings);
    let adapters = schema_for!(A);
    if let Some(object) = adapters.schema.object {
        root.schema.object().properties.extend(object.properties);
    }
    for (name, definition) in adapters.definitions {
        if let Some(ours) = root.definitions.get(&name) {
            // Both derive from the same Rust type (e.g. `Format`), or the names clash.
            assert_eq!(
                ours, &definition,
                "schema definition {name} differs between the core and the adapters"
            );
        }
        root.definitions.insert(name, definition);
    }
    root
}
