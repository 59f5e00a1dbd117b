//! `rendition gc [--dry-run | --delete] [--grace 30d] [--local DIR]`: removes the
//! derivatives no URL of the current configuration names any more, once they are older
//! than the grace period.
//!
//! Lists the derived prefix and files every object under its source and GUID folder
//! (`{derived}{rel}/{guid}/…`). For each source that still exists, the GUID of its
//! current version is current; then:
//! - every object of another GUID folder of that source (a version replaced under the
//!   same key), its manifest included, is **superseded**;
//! - in the current folder, a preset's derivative whose spec hash is not the preset's
//!   current hash (in any of its formats, or its `.auto` version) is **retired-spec**,
//!   unless the current manifest still lists it (the preset was edited but not yet
//!   backfilled: run `rendition backfill --changed` first);
//! - a key written before presets were versioned (`thumb.webp`, no hash) is **legacy**
//!   once the current version of that preset in that extension is stored, and the
//!   manifest no longer lists it.
//!
//! Everything else is kept: the current manifest, explicit-spec (signed URL) derivatives
//! (they are not versions of a preset), presets no longer configured, keys gc cannot
//! parse, and every derivative of a source that no longer exists (removing those is the
//! removal path's job, `storage.delete_on_remove`). gc never rewrites a manifest: a job
//! that re-renders a preset replaces its entry, so the manifest never lists what gc
//! removes.
//!
//! Only objects last modified longer than `grace` ago are removed; younger ones are
//! reported as waiting. A dry run (the default) removes nothing. Deletes are idempotent
//! and in a superseded folder the manifest goes last, so an interrupted run is resumed by
//! running it again: what was deleted is gone, what is left is found again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rendition_image::spec::Format;
use rendition_pipeline::config::Settings;
use rendition_pipeline::naming::{parse_derivative_key, SourceNames, Variant};
use rendition_pipeline::store::{BlobStore, ObjectMeta, StoreError};
use tracing::{debug, info};
use uuid::Uuid;

const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("--grace {0:?}: expected a number and a unit, e.g. 30d, 12h, 90m, 0s")]
    Grace(String),
    #[error("listing derivatives: {0}")]
    List(StoreError),
    #[error("{key}: {source}")]
    Store { key: String, source: StoreError },
}

/// Parses a grace period: digits then one of `d`, `h`, `m`, `s`.
pub fn parse_grace(text: &str) -> Result<Duration, GcError> {
    let bad = || GcError::Grace(text.to_string());
    let unit = text.chars().last().ok_or_else(bad)?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = match unit {
        'd' => n.checked_mul(86_400),
        'h' => n.checked_mul(3_600),
        'm' => n.checked_mul(60),
        's' => Some(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_secs(secs))
}

/// An age in its largest whole unit: `3d`, `5h`, `12m`, `40s`.
pub fn age_text(age: Duration) -> String {
    let s = age.as_secs();
    if s >= 86_400 {
        format!("{}d", s / 86_400)
    } else if s >= 3_600 {
        format!("{}h", s / 3_600)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Remove what is retired and older than `grace`; otherwise only report it.
    pub delete: bool,
    pub grace: Duration,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// Why an object is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Superseded,
    RetiredSpec,
    Legacy,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Superseded => "superseded",
            Reason::RetiredSpec => "retired-spec",
            Reason::Legacy => "legacy",
        }
    }
}

/// One retired object, as found (and, unless waiting, removed or to be removed).
#[derive(Debug, Clone)]
pub struct Retired {
    pub key: String,
    pub bytes: u64,
    pub reason: Reason,
    pub age: Duration,
    /// Younger than the grace period: left for a later run.
    pub waiting: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Retired objects older than the grace period (removed, or with a dry run: to be).
    pub retired: usize,
    pub retired_bytes: u64,
    /// Retired objects younger than the grace period.
    pub waiting: usize,
    /// Every other object under the derived prefix.
    pub kept: usize,
}

impl Summary {
    /// `gc: retired N objects (B bytes), waiting M, kept K`.
    pub fn line(&self) -> String {
        format!(
            "gc: retired {} objects ({} bytes), waiting {}, kept {}",
            self.retired, self.retired_bytes, self.waiting, self.kept
        )
    }
}

/// The objects of one GUID folder of one source.
#[derive(Default)]
struct Folder {
    manifest: Option<ObjectMeta>,
    derivatives: Vec<(ObjectMeta, Variant, String)>,
}

/// Objects in a source's GUID folders (derivatives and manifests), all kept.
fn objects_in<'a>(folders: impl IntoIterator<Item = (&'a Uuid, &'a Folder)>) -> usize {
    folders
        .into_iter()
        .map(|(_, f)| f.derivatives.len() + usize::from(f.manifest.is_some()))
        .sum()
}

/// Runs one gc pass; `on_retired` is told each retired object (after it was removed,
/// when deleting).
pub async fn run(
    store: &Arc<dyn BlobStore>,
    settings: &Settings,
    bucket: &str,
    options: &Options,
    mut on_retired: impl FnMut(&Retired),
) -> Result<Summary, GcError> {
    let storage = &settings.storage;
    let derived = &storage.derived_prefix;
    let listed = store.list(derived).await.map_err(GcError::List)?;
    info!(prefix = %derived, objects = listed.len(), "gc: listed derivatives");
    let mut summary = Summary::default();
    // source rel → guid → folder
    let mut sources: BTreeMap<String, BTreeMap<Uuid, Folder>> = BTreeMap::new();
    for meta in listed {
        match file(derived, &meta.key) {
            Some((rel, guid, name)) if name == MANIFEST => {
                sources
                    .entry(rel)
                    .or_default()
                    .entry(guid)
                    .or_default()
                    .manifest = Some(meta);
            }
            _ => match parse_derivative_key(derived, &meta.key) {
                Ok(parsed) => sources
                    .entry(parsed.source_rel)
                    .or_default()
                    .entry(parsed.guid)
                    .or_default()
                    .derivatives
                    .push((meta, parsed.variant, parsed.ext)),
                Err(e) => {
                    debug!(key = %meta.key, error = %e, "gc keeps a key it cannot parse");
                    summary.kept += 1;
                }
            },
        }
    }

    let now = SystemTime::now();
    let age_of = |meta: &ObjectMeta| {
        meta.last_modified
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default()
    };
    let bar = crate::backfill::progress_bar("gc", options.progress, sources.len() as u64);
    for (rel, folders) in sources {
        let source_key = format!("{}{rel}", storage.source_prefix);
        let head = store
            .head(&source_key)
            .await
            .map_err(|source| GcError::Store {
                key: source_key.clone(),
                source,
            })?;
        let Some(head) = head else {
            // Gone: its derivatives are the removal path's to delete.
            debug!(source = %source_key, "gc keeps the derivatives of a missing source");
            summary.kept += objects_in(&folders);
            bar.inc(1);
            continue;
        };
        let current = match SourceNames::of(storage, bucket, &source_key, head.version()) {
            Ok(names) => names.guid(),
            Err(e) => {
                debug!(source = %source_key, error = %e, "gc keeps what it cannot name");
                summary.kept += objects_in(&folders);
                bar.inc(1);
                continue;
            }
        };
        // The current version must be complete (its manifest written) before the versions
        // it supersedes go: a source replaced while its job is still running, or a GUID
        // that moved for another reason (e.g. versioning switched on: `null` version ids),
        // keeps its old derivatives until the current ones exist.
        let current_done = folders
            .get(&current)
            .is_some_and(|folder| folder.manifest.is_some());
        if !current_done {
            debug!(source = %source_key, "gc keeps older versions: the current one has no manifest yet");
            summary.kept += objects_in(&folders);
            bar.inc(1);
            continue;
        }
        for (guid, folder) in folders {
            let mut retired: Vec<(ObjectMeta, Reason)> = Vec::new();
            if guid != current {
                // Derivatives first, the manifest last: an interrupted run still finds it.
                retired.extend(
                    folder
                        .derivatives
                        .into_iter()
                        .map(|(m, _, _)| (m, Reason::Superseded)),
                );
                retired.extend(folder.manifest.map(|m| (m, Reason::Superseded)));
            } else {
                let listed = manifest_keys(store, folder.manifest.as_ref()).await?;
                if folder.manifest.is_some() {
                    summary.kept += 1;
                }
                let stored: BTreeSet<&str> = folder
                    .derivatives
                    .iter()
                    .map(|(m, _, _)| m.key.as_str())
                    .collect();
                let mut verdicts = Vec::new();
                for (meta, variant, ext) in &folder.derivatives {
                    let reason =
                        verdict(settings, &listed, &stored, &source_key, guid, variant, ext);
                    verdicts.push((meta.clone(), reason));
                }
                for (meta, reason) in verdicts {
                    match reason {
                        Some(reason) => retired.push((meta, reason)),
                        None => summary.kept += 1,
                    }
                }
            }
            for (meta, reason) in retired {
                let age = age_of(&meta);
                let item = Retired {
                    waiting: age < options.grace,
                    key: meta.key,
                    bytes: meta.size,
                    reason,
                    age,
                };
                if item.waiting {
                    summary.waiting += 1;
                } else {
                    if options.delete {
                        store
                            .delete(&item.key)
                            .await
                            .map_err(|source| GcError::Store {
                                key: item.key.clone(),
                                source,
                            })?;
                        info!(key = %item.key, reason = reason.as_str(), "gc: deleted");
                    }
                    summary.retired += 1;
                    summary.retired_bytes += item.bytes;
                }
                on_retired(&item);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// `(rel, guid, file)` of `{derived}{rel}/{guid}/{file}`.
fn file(derived: &str, key: &str) -> Option<(String, Uuid, String)> {
    let rest = key.strip_prefix(derived)?;
    let (head, name) = rest.rsplit_once('/')?;
    let (rel, guid) = head.rsplit_once('/')?;
    let guid = Uuid::try_parse(guid).ok()?;
    (!rel.is_empty()).then(|| (rel.to_string(), guid, name.to_string()))
}

/// The keys the manifest lists (none without one). An unreadable manifest is an error:
/// gc will not guess what it lists.
async fn manifest_keys(
    store: &Arc<dyn BlobStore>,
    manifest: Option<&ObjectMeta>,
) -> Result<BTreeSet<String>, GcError> {
    let Some(meta) = manifest else {
        return Ok(BTreeSet::new());
    };
    let object = match store.get(&meta.key, 64 << 20).await {
        Ok(object) => object,
        Err(StoreError::NotFound { .. }) => return Ok(BTreeSet::new()),
        Err(source) => {
            return Err(GcError::Store {
                key: meta.key.clone(),
                source,
            })
        }
    };
    // Only the keys are needed; unknown fields are fine.
    #[derive(serde::Deserialize)]
    struct Listed {
        #[serde(default)]
        variants: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        key: String,
    }
    let listed: Listed = serde_json::from_slice(&object.body).map_err(|e| GcError::Store {
        key: meta.key.clone(),
        source: StoreError::Other(format!("unreadable manifest: {e}")),
    })?;
    Ok(listed.variants.into_iter().map(|e| e.key).collect())
}

/// Why a derivative of the current version is retired, or `None` to keep it.
fn verdict(
    settings: &Settings,
    listed: &BTreeSet<String>,
    stored: &BTreeSet<&str>,
    source_key: &str,
    guid: Uuid,
    variant: &Variant,
    ext: &str,
) -> Option<Reason> {
    let Variant::Preset { name, hash } = variant else {
        return None; // an explicit spec: not a version of anything
    };
    let preset = settings.presets.get(name)?; // no longer configured: kept
    let current = current_hashes(preset, ext);
    match hash {
        Some(hash) if current.contains(hash) => None,
        Some(_) => {
            let key = key_of(settings, source_key, guid, variant, ext)?;
            (!listed.contains(&key)).then_some(Reason::RetiredSpec)
        }
        None => {
            let key = key_of(settings, source_key, guid, variant, ext)?;
            if listed.contains(&key) {
                return None;
            }
            let replaced = current.iter().any(|h| {
                key_of(
                    settings,
                    source_key,
                    guid,
                    &Variant::preset(name, h.clone()),
                    ext,
                )
                .is_some_and(|k| stored.contains(k.as_str()))
            });
            replaced.then_some(Reason::Legacy)
        }
    }
}

/// The hashes the current configuration names `preset`'s objects with `ext` by: the spec
/// in the extension's format, as `fm=original`, as `fm=auto`, and its `.auto` version.
fn current_hashes(preset: &rendition_pipeline::config::Preset, ext: &str) -> BTreeSet<String> {
    let mut formats = vec![Format::Original, Format::Auto];
    formats.extend(Format::from_extension(ext));
    let mut out: BTreeSet<String> = formats.into_iter().map(|f| preset.hash_in(f)).collect();
    out.insert(preset.negotiated_hash());
    out
}

fn key_of(
    settings: &Settings,
    source_key: &str,
    guid: Uuid,
    variant: &Variant,
    ext: &str,
) -> Option<String> {
    let rel = source_key.strip_prefix(&settings.storage.source_prefix)?;
    rendition_pipeline::naming::derivative_key(
        &settings.storage.derived_prefix,
        rel,
        guid,
        variant,
        ext,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_parse() {
        assert_eq!(
            parse_grace("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_grace("12h").unwrap(), Duration::from_secs(12 * 3_600));
        assert_eq!(parse_grace("90m").unwrap(), Duration::from_secs(90 * 60));
        assert_eq!(parse_grace("0s").unwrap(), Duration::ZERO);
        for bad in ["", "d", "30", "3x", "-1d", "1.5h", "30 d"] {
            assert!(parse_grace(bad).is_err(), "{bad}");
        }
        assert_eq!(age_text(Duration::from_secs(90)), "1m");
        assert_eq!(age_text(Duration::from_secs(3 * 86_400 + 5)), "3d");
    }

    #[test]
    fn folders_are_found_in_keys() {
        let guid = "0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81";
        let (rel, g, name) =
            file("derived/", &format!("derived/a/b.jpg/{guid}/manifest.json")).unwrap();
        assert_eq!(
            (rel.as_str(), g.to_string(), name.as_str()),
            ("a/b.jpg", guid.to_string(), MANIFEST)
        );
        assert!(file("derived/", "derived/x/manifest.json").is_none());
    }
}
