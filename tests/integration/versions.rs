//! Versioned preset names (issue 16): a preset's key carries the hash of its spec, so an
//! edited preset gets new names. In folder mode with the real binaries: `run --local`
//! makes `thumb` as configured, `thumb`'s spec is edited, `backfill --changed` re-renders
//! it under new keys for every source (and adds it where there was no manifest), while the
//! old keys keep their bytes through `rendition serve`; `rendition url` and `/latest/`
//! name the new version; an old version's URL whose object is gone, and a key written
//! before presets were versioned, redirect to the current one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rendition_pipeline::manifest::{Manifest, MANIFEST_VERSION};
use rendition_pipeline::naming::spec_hash;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);
pub(crate) const OLD_SPEC: &str = "w=160,h=160,fit=cover,fm=webp,q=75";
pub(crate) const NEW_SPEC: &str = "w=200,h=200,fit=cover,fm=webp,q=75";
const SOURCES: [&str; 2] = ["originals/a.jpg", "originals/b photo.jpg"];
const LATE: &str = "originals/late.jpg";

/// `./rendition.toml`: the repository's configuration with `thumb`'s spec `spec`.
pub(crate) fn configure(cwd: &Path, spec: &str) {
    let repo = std::fs::read_to_string(repo_root().join("rendition.toml")).unwrap();
    assert!(repo.contains(OLD_SPEC), "the repository's thumb changed");
    std::fs::write(cwd.join("rendition.toml"), repo.replace(OLD_SPEC, spec)).unwrap();
}

/// Every manifest in the folder bucket, by source key.
fn manifests(bucket: &Path) -> BTreeMap<String, Manifest> {
    let mut out = BTreeMap::new();
    let mut stack = vec![bucket.join("derived")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "manifest.json") {
                let m: Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                out.insert(m.source.key.clone(), m);
            }
        }
    }
    out
}

/// The key and spec hash `thumb` has in `m`; exactly one entry.
fn thumb(m: &Manifest) -> (String, String) {
    let entries: Vec<_> = m.variants.iter().filter(|v| v.name == "thumb").collect();
    assert_eq!(entries.len(), 1, "{:?}", m.variants);
    (entries[0].key.clone(), entries[0].spec_hash.clone())
}

/// `rendition backfill ARGS --local BUCKET`: its exit code and summary line.
async fn backfill(cwd: &Path, bucket: &Path, args: &[&str]) -> (i32, String) {
    let out = Spawn::rendition(cwd)
        .arg("backfill")
        .args(args)
        .arg("--local")
        .arg(bucket)
        .env("RENDITION__LOG__FORMAT", "json")
        .output()
        .await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("backfill: "))
        .unwrap_or_else(|| {
            panic!(
                "no summary in {stdout:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    (out.status.code().expect("exited"), line)
}

/// The summary's value of `name`.
fn count(line: &str, name: &str) -> usize {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .parse()
        .unwrap()
}

fn url_of(cwd: &Path, bucket: &Path, source: &str) -> String {
    let out = Spawn::rendition(cwd)
        .args(["url", source, "--preset", "thumb", "--local"])
        .arg(bucket)
        .output_blocking();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let header = rendition_image::vips::Image::open(bytes).unwrap().header();
    (header.width, header.height)
}

#[tokio::test]
async fn an_edited_preset_gets_new_keys_and_old_urls_keep_their_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, bucket) = (tmp.path(), tmp.path().join("bucket"));
    std::fs::create_dir_all(bucket.join("originals")).unwrap();
    for (i, source) in SOURCES.iter().enumerate() {
        let jpeg = encode_jpeg(&quadrants(800 + 16 * i as u32, 600), 90);
        std::fs::write(bucket.join(source), jpeg).unwrap();
    }

    // Version 1: every source gets `thumb` under the hash of its spec.
    configure(cwd, OLD_SPEC);
    let out = run_local_once(cwd, &bucket).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = manifests(&bucket);
    assert_eq!(before.len(), SOURCES.len());
    let old_hash = spec_hash(OLD_SPEC);
    let mut old = BTreeMap::new();
    for (source, m) in &before {
        assert_eq!(m.version, MANIFEST_VERSION);
        let (key, hash) = thumb(m);
        assert_eq!(hash, old_hash);
        assert!(key.ends_with(&format!("/thumb.{old_hash}.webp")), "{key}");
        let bytes = std::fs::read(bucket.join(&key)).unwrap();
        assert_eq!(dimensions(&bytes), (160, 160));
        old.insert(source.clone(), (key, bytes));
    }
    // A source whose event never came: no manifest at all.
    std::fs::write(bucket.join(LATE), encode_jpeg(&quadrants(640, 480), 90)).unwrap();

    // Version 2: `thumb` edited. A dry run of the one preset counts the changed sources
    // apart from the one that only lacks it; nothing is written.
    configure(cwd, NEW_SPEC);
    let new_hash = spec_hash(NEW_SPEC);
    assert_ne!(new_hash, old_hash);
    let (code, line) = backfill(cwd, &bucket, &["--preset", "thumb", "--dry-run"]).await;
    assert_eq!(code, 0, "{line}");
    assert_eq!(count(&line, "sources"), 3, "{line}");
    assert_eq!(count(&line, "done"), 0, "{line}");
    assert_eq!(count(&line, "would_enqueue"), 3, "{line}");
    assert_eq!(count(&line, "added"), 1, "{line}");
    assert_eq!(count(&line, "re-rendered"), 2, "{line}");
    assert_eq!(manifests(&bucket), before, "a dry run writes nothing");

    // `--changed`: every eager preset added or changed, rendered in place.
    let (code, line) = backfill(cwd, &bucket, &["--changed"]).await;
    assert_eq!(code, 0, "{line}");
    assert!(line.starts_with("backfill: preset=* "), "{line}");
    assert_eq!(count(&line, "sources"), 3, "{line}");
    assert_eq!(count(&line, "rendered"), 3, "{line}");
    assert_eq!(count(&line, "added"), 1, "{line}");
    assert_eq!(count(&line, "re-rendered"), 2, "{line}");
    assert_eq!(count(&line, "failed"), 0, "{line}");

    let after = manifests(&bucket);
    assert_eq!(after.len(), 3);
    for (source, m) in &after {
        let (key, hash) = thumb(m);
        assert_eq!(hash, new_hash, "{source}");
        assert!(key.ends_with(&format!("/thumb.{new_hash}.webp")), "{key}");
        let bytes = std::fs::read(bucket.join(&key)).unwrap();
        assert_eq!(dimensions(&bytes), (200, 200), "{key}");
        let entry = m.variants.iter().find(|v| v.name == "thumb").unwrap();
        assert_eq!(entry.spec, NEW_SPEC);
        // The unchanged presets keep their keys.
        if let Some(was) = before.get(source) {
            for v in m.variants.iter().filter(|v| v.name != "thumb") {
                assert!(was.variants.contains(v), "{} changed: {v:?}", v.name);
            }
        }
    }
    // The old keys are still stored, with their bytes.
    for (key, bytes) in old.values() {
        assert_eq!(&std::fs::read(bucket.join(key)).unwrap(), bytes, "{key}");
    }
    // Nothing left: a second run finds every source done.
    let (code, line) = backfill(cwd, &bucket, &["--changed"]).await;
    assert_eq!(code, 0, "{line}");
    assert_eq!(count(&line, "done"), 3, "{line}");
    assert_eq!(count(&line, "rendered"), 0, "{line}");

    // `rendition url` names the current version.
    let (source, (old_key, old_bytes)) = old.iter().next().unwrap();
    let new_key = thumb(&after[source]).0;
    let url = url_of(cwd, &bucket, source);
    assert_eq!(
        url,
        format!("/{}", rendition_pipeline::url::encode_key(&new_key))
    );

    // Through `serve`: the old URL still returns its old bytes, the new one its new ones.
    let mut app = Spawn::rendition(cwd).serve(&bucket).start();
    let addr = app.serving_addr(WAIT).await;
    let old_url = format!("/{}", rendition_pipeline::url::encode_key(old_key));
    let r = get(&addr, &old_url, &[]).await;
    assert_eq!(r.status, 200, "{}", r.error_kind());
    assert_eq!(&r.body, old_bytes);
    let r = get(&addr, &url, &[]).await;
    assert_eq!(r.status, 200, "{}", r.error_kind());
    assert_eq!(r.body, std::fs::read(bucket.join(&new_key)).unwrap());
    // `/latest/` redirects to the current version.
    let latest = format!(
        "/latest/{}/thumb",
        rendition_pipeline::url::encode_key(source)
    );
    let r = get(&addr, &latest, &[]).await;
    assert_eq!((r.status, r.header("location")), (302, Some(url.as_str())));

    // The old version collected: its URL redirects to the current one, and renders
    // nothing under the old name.
    std::fs::remove_file(bucket.join(old_key)).unwrap();
    let r = get(&addr, &old_url, &[]).await;
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("location"), Some(url.as_str()));
    assert!(
        !bucket.join(old_key).exists(),
        "nothing rendered under the old name"
    );
    // A name written before presets were versioned, not stored: the same redirect.
    let legacy = old_url.replace(&format!("/thumb.{old_hash}.webp"), "/thumb.webp");
    assert_ne!(legacy, old_url);
    let r = get(&addr, &legacy, &[]).await;
    assert_eq!((r.status, r.header("location")), (302, Some(url.as_str())));
    // One that is stored is served as it is.
    let legacy_key = old_key.replace(&format!("/thumb.{old_hash}.webp"), "/thumb.webp");
    std::fs::write(bucket.join(&legacy_key), old_bytes).unwrap();
    let r = get(&addr, &legacy, &[]).await;
    assert_eq!(r.status, 200, "{}", r.error_kind());
    assert_eq!(&r.body, old_bytes);
    app.terminate();
}
