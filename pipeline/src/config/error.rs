//! What goes wrong while loading the configuration, said so a newcomer can act on it: where
//! the bad value came from (the file and key, or the `RENDITION__*` variable), what was
//! found and what is allowed, and for an unknown key the nearest known one. Never a source
//! location or a library type: figment's errors are mapped here ([`ConfigError::from_figment`]).

use std::fmt;

use figment::error::{Actual, Kind};
use figment::value::Value;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The TOML file, as its path was given (e.g. `rendition.toml`).
    File(String),
    /// A `RENDITION__SECTION__KEY` environment variable.
    Env(String),
    /// Neither: the built-in defaults.
    Defaults,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => f.write_str(path),
            Origin::Env(var) => f.write_str(var),
            Origin::Defaults => f.write_str("the defaults"),
        }
    }
}

/// `rendition.toml: presets.x.spec`, or the variable alone (`RENDITION__LIMITS__X` names its
/// key), or the key alone when it came from nowhere the user wrote.
struct At<'a>(&'a Origin, &'a str);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Origin::File(path) => write!(f, "{path}: {}", self.1),
            Origin::Env(var) => f.write_str(var),
            Origin::Defaults => f.write_str(self.1),
        }
    }
}

/// `rendition.toml: ` or `RENDITION__X: `, nothing for the defaults.
struct Prefix<'a>(&'a Origin);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Origin::Defaults => Ok(()),
            origin => write!(f, "{origin}: "),
        }
    }
}

/// Each variant's text is complete (no `source()` repeats it), one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    /// The file is not TOML.
    #[error("{file}: not valid TOML: {message}")]
    Syntax { file: String, message: String },
    /// A value its key's type refuses: `found` is the value as written, `expected` what the
    /// key takes.
    #[error("{}: found {found}, expected {expected}", At(origin, key))]
    Value {
        origin: Origin,
        key: String,
        found: String,
        expected: String,
    },
    /// A key no section has; `suggestion` is the nearest known one, if any is near.
    #[error("{}unknown key `{key}`{}", Prefix(origin), did_you_mean(origin, key, suggestion.as_deref(), known))]
    UnknownKey {
        origin: Origin,
        key: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    /// A value its type's own parser refuses (a variant spec), with the parser's reason.
    #[error("{}: found {found}: {reason}", At(origin, key))]
    Refused {
        origin: Origin,
        key: String,
        found: String,
        reason: String,
    },
    /// A required key (e.g. a preset's `spec`) is absent.
    #[error("{}: `{key}` is missing", At(origin, section))]
    MissingKey {
        origin: Origin,
        section: String,
        key: String,
    },
    /// A rule types cannot express ([`super::Settings::validate`], the adapters' rules).
    #[error("{0}")]
    Rule(String),
    /// A setting the command needs is not set: checked before anything is set up.
    #[error("{key} is not set: {needed_by} needs it")]
    Required { key: String, needed_by: String },
}

impl ConfigError {
    /// A setting `needed_by` (e.g. "`rendition worker --queue sqs`") cannot run without.
    pub fn required(key: &str, needed_by: impl Into<String>) -> ConfigError {
        ConfigError::Required {
            key: key.to_string(),
            needed_by: needed_by.into(),
        }
    }

    /// What to do about it, where that is more than the message says.
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::MissingFile(_) => {
                Some("--config names a file that must exist; without --config, ./rendition.toml is read when present".into())
            }
            ConfigError::UnknownKey {
                suggestion: None,
                known,
                ..
            } if !known.is_empty() => Some(format!("the keys here are {}", known.join(", "))),
            ConfigError::Required { key, .. } => Some(match key.split_once('.') {
                Some((section, name)) => format!(
                    "set {}, or `{name}` under [{section}] in rendition.toml",
                    var_of(key)
                ),
                None => format!("set {}", var_of(key)),
            }),
            _ => None,
        }
    }

    /// Maps figment's error (its first, when it holds several) into ours; `origin_of`
    /// says where the value at a dotted key came from, `value_at` what it is.
    pub(super) fn from_figment(
        error: figment::Error,
        origin_of: &dyn Fn(&str) -> Origin,
        value_at: &dyn Fn(&str) -> Option<Value>,
    ) -> ConfigError {
        let error = error
            .into_iter()
            .next()
            .expect("an error holds at least one");
        let path = error.path.join(".");
        let found = |actual: &Actual| match value_at(&path) {
            Some(value) => show(&value),
            None => show_actual(actual),
        };
        match &error.kind {
            Kind::UnknownField(field, expected) => {
                // The path is the table's, or already ends in the field.
                let key = if error.path.last() == Some(field) {
                    path.clone()
                } else if path.is_empty() {
                    field.clone()
                } else {
                    format!("{path}.{field}")
                };
                ConfigError::UnknownKey {
                    origin: origin_of(&key),
                    suggestion: nearest(field, expected).map(str::to_string),
                    known: expected.iter().map(|k| k.to_string()).collect(),
                    key,
                }
            }
            Kind::MissingField(field) => ConfigError::MissingKey {
                origin: origin_of(&path),
                section: path.clone(),
                key: field.to_string(),
            },
            Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                ConfigError::Value {
                    origin: origin_of(&path),
                    found: found(actual),
                    expected: allowed(expected),
                    key: path,
                }
            }
            Kind::UnknownVariant(variant, expected) => ConfigError::Value {
                origin: origin_of(&path),
                found: format!("{variant:?}"),
                expected: one_of(expected),
                key: path,
            },
            Kind::InvalidLength(len, expected) => ConfigError::Value {
                origin: origin_of(&path),
                found: format!("{len} items"),
                expected: allowed(expected),
                key: path,
            },
            // A type's own message (a variant spec's parser): it says what is allowed.
            Kind::Message(message) => match (&error.metadata, path.is_empty()) {
                (Some(meta), true) => ConfigError::Syntax {
                    file: match &meta.source {
                        Some(figment::Source::File(file)) => file.display().to_string(),
                        _ => meta.name.to_string(),
                    },
                    message: one_line(message),
                },
                _ => ConfigError::Refused {
                    origin: origin_of(&path),
                    found: value_at(&path).map_or_else(|| "a value".into(), |v| show(&v)),
                    reason: one_line(message),
                    key: path,
                },
            },
            other => ConfigError::Value {
                origin: origin_of(&path),
                found: value_at(&path).map_or_else(|| "a value".into(), |v| show(&v)),
                expected: format!("something else ({other})"),
                key: path,
            },
        }
    }
}

/// A parser's message on one line: the TOML parser's drawing of the line (`1 | [limits`,
/// `  |        ^`) left out, the rest joined.
fn one_line(message: &str) -> String {
    let drawing = |line: &str| {
        let rest = line
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit());
        rest.trim_start().starts_with('|')
    };
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !drawing(line))
        .collect();
    parts.join(": ")
}

/// The variable that sets a dotted key.
pub(crate) fn var_of(key: &str) -> String {
    format!("RENDITION__{}", key.replace('.', "__").to_ascii_uppercase())
}

fn did_you_mean(origin: &Origin, key: &str, suggestion: Option<&str>, known: &[String]) -> String {
    let Some(near) = suggestion else {
        return if known.is_empty() {
            String::new()
        } else {
            "; it is not one of this table's keys".into()
        };
    };
    match origin {
        Origin::Env(_) => {
            let parent = key.rsplit_once('.').map_or("", |(p, _)| p);
            let full = if parent.is_empty() {
                near.to_string()
            } else {
                format!("{parent}.{near}")
            };
            format!("; did you mean `{near}` ({})?", var_of(&full))
        }
        _ => format!("; did you mean `{near}`?"),
    }
}

/// The known key nearest to `typed` (edit distance at most a third of its length, at
/// least 1 and at most 3), if one is that near.
pub(super) fn nearest<'a>(typed: &str, known: &[&'a str]) -> Option<&'a str> {
    let budget = (typed.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(typed, k), *k))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A value as the user wrote it (TOML-like).
fn show(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => show_actual(&n.to_actual()),
        Value::Empty(..) => "nothing".into(),
        Value::Dict(..) => "a table".into(),
        Value::Array(..) => "a list".into(),
    }
}

fn show_actual(actual: &Actual) -> String {
    match actual {
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(f) => f.to_string(),
        Actual::Char(c) => format!("{:?}", c.to_string()),
        Actual::Str(s) => format!("{s:?}"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a table".into(),
        Actual::Unit | Actual::Option => "nothing".into(),
        _ => "a value of another kind".into(),
    }
}

/// serde's "expected …" in words a TOML writer uses (no Rust type names).
fn allowed(expected: &str) -> String {
    let unsigned = |max: u64| format!("a whole number from 0 to {max}");
    match expected {
        "u8" => unsigned(u8::MAX.into()),
        "u16" => unsigned(u16::MAX.into()),
        "u32" => unsigned(u32::MAX.into()),
        "u64" | "u128" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" => "text (a quoted string)".into(),
        "a sequence" => "a list, e.g. [\"a\", \"b\"]".into(),
        "a map" => "a table".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.to_string(),
    }
}

fn one_of(expected: &[&str]) -> String {
    let quoted: Vec<String> = expected.iter().map(|v| format!("{v:?}")).collect();
    match quoted.as_slice() {
        [] => "nothing here".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("one of {} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_key_is_suggested_when_it_is_near() {
        let render = ["concurrency", "pool_size", "sandbox", "avif_effort"];
        assert_eq!(nearest("concurency", &render), Some("concurrency"));
        assert_eq!(nearest("sandbx", &render), Some("sandbox"));
        assert_eq!(nearest("colour", &render), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }

    #[test]
    fn expectations_are_in_words_not_rust_types() {
        assert_eq!(allowed("u64"), "a whole number, 0 or more");
        assert_eq!(allowed("u8"), "a whole number from 0 to 255");
        assert_eq!(allowed("a boolean"), "true or false");
        assert_eq!(one_of(&["pretty", "json"]), "one of \"pretty\" or \"json\"");
        assert_eq!(var_of("sqs.queue_url"), "RENDITION__SQS__QUEUE_URL");
        assert_eq!(
            one_line("TOML parse error at line 1, column 8\n  |\n1 | [limits\n  |        ^\ninvalid table header\nexpected `.`, `]`\n"),
            "TOML parse error at line 1, column 8: invalid table header: expected `.`, `]`"
        );
    }
}
