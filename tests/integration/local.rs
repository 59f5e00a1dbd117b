//! `rendition run --local DIR` as a user runs it: the real binary, a real folder.

use std::path::Path;
use std::time::Duration;

use rendition_pipeline::config::Settings;
use rendition_pipeline::manifest::{FailureRecord, Manifest};

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(120);

fn is_msg(v: &serde_json::Value, msg: &str, key: &str) -> bool {
    field(v, "message") == Some(msg) && field(v, "key") == Some(key)
}

fn manifests_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(manifests_under(&p));
        } else if p.file_name().is_some_and(|n| n == "manifest.json") {
            out.push(p);
        }
    }
    out
}

/// Checks a manifest against the files on disk and the configured eager presets.
fn check_manifest(bucket: &Path, manifest: &Manifest, source_w: u32) {
    let settings = Settings::default();
    let eager: Vec<&str> = settings.eager_presets().map(|(n, _)| n).collect();
    let names: Vec<&str> = manifest.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, eager, "every eager preset, in name order");
    assert_eq!(manifest.source.width, source_w);
    for v in &manifest.variants {
        let bytes =
            std::fs::read(bucket.join(&v.key)).unwrap_or_else(|_| panic!("{} missing", v.key));
        assert_eq!(bytes.len() as u64, v.bytes, "{}", v.key);
        let img = decode(&bytes);
        assert_eq!(
            (img.width(), img.height()),
            (v.width, v.height),
            "{}",
            v.key
        );
        assert_eq!(v.content_type, "image/webp");
        assert!(v.key.starts_with(&format!(
            "derived/{}/{}/",
            manifest.source.key.trim_start_matches("originals/"),
            manifest.source.guid
        )));
    }
}

#[tokio::test]
async fn watches_renders_eager_presets_and_survives_corrupt_files() {
    let world = World::local();
    let bucket = world.folder().to_path_buf();
    let (mut app, _) = world
        .rendition()
        .args(["run", "--local"])
        .arg(&bucket)
        .ready(WAIT, "startup", |v| {
            field(v, "message") == Some("local mode started")
        })
        .await;

    let (photo, w, _) = photos(".jpg", 5000)
        .into_iter()
        .next()
        .expect("a ≥5000 px photo");
    std::fs::copy(&photo, bucket.join("originals/big photo.jpg")).unwrap();
    let real = std::fs::read(&photo).unwrap();
    std::fs::write(bucket.join("originals/broken.jpg"), &real[..real.len() / 3]).unwrap();
    std::fs::write(bucket.join("originals/notes.jpg"), b"not an image").unwrap();

    app.wait_for(WAIT, "the photo's derivatives", |v| {
        is_msg(v, "derivatives written", "originals/big photo.jpg")
    })
    .await;
    app.wait_for(WAIT, "the truncated file's failure", |v| {
        is_msg(v, "source failed", "originals/broken.jpg")
    })
    .await;
    app.wait_for(WAIT, "the text file's failure", |v| {
        is_msg(v, "source failed", "originals/notes.jpg")
    })
    .await;

    let manifests = manifests_under(&bucket.join("derived/big photo.jpg"));
    assert_eq!(manifests.len(), 1);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&manifests[0]).unwrap()).unwrap();
    check_manifest(&bucket, &manifest, w);

    let record: FailureRecord =
        serde_json::from_slice(&std::fs::read(bucket.join("failed/broken.jpg.json")).unwrap())
            .unwrap();
    assert_eq!(record.kind, "corrupt_image");
    assert!(!record.retryable);
    let record: FailureRecord =
        serde_json::from_slice(&std::fs::read(bucket.join("failed/notes.jpg.json")).unwrap())
            .unwrap();
    assert_eq!(record.kind, "unsupported_format");

    // Still up: a file renamed into place after the failures is processed too.
    let staging = bucket.join("staging.tmp");
    std::fs::write(&staging, encode_jpeg(&quadrants(800, 600), 90)).unwrap();
    std::fs::create_dir_all(bucket.join("originals/later")).unwrap();
    std::fs::rename(&staging, bucket.join("originals/later/card.jpg")).unwrap();
    app.wait_for(WAIT, "the renamed file", |v| {
        is_msg(v, "derivatives written", "originals/later/card.jpg")
    })
    .await;
    assert!(app.child.try_wait().unwrap().is_none(), "still running");

    // Fixing a failed file clears its failure record.
    std::fs::write(
        bucket.join("originals/notes.jpg"),
        encode_jpeg(&quadrants(64, 64), 90),
    )
    .unwrap();
    app.wait_for(WAIT, "the fixed file", |v| {
        is_msg(v, "derivatives written", "originals/notes.jpg")
    })
    .await;
    assert!(!bucket.join("failed/notes.jpg.json").exists());

    app.terminate();
    let status = tokio::time::timeout(WAIT, app.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "SIGTERM drains and exits 0, got {status:?}"
    );
}

#[tokio::test]
async fn scan_at_start_and_idempotent_reruns() {
    let world = World::local();
    let bucket = world.folder().to_path_buf();
    std::fs::create_dir_all(bucket.join("originals/nested")).unwrap();
    std::fs::write(
        bucket.join("originals/a.jpg"),
        encode_jpeg(&quadrants(1200, 900), 90),
    )
    .unwrap();
    std::fs::write(
        bucket.join("originals/nested/b.png"),
        encode_png(&quadrants(900, 1200)),
    )
    .unwrap();

    let run_once = || {
        let out = world
            .rendition()
            .args(["run", "--local"])
            .arg(&bucket)
            .arg("--once")
            .output_blocking();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run_once();
    assert!(
        first.contains("rendered 2, already done 0, failed 0"),
        "{first}"
    );
    let snapshot = |root: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = walk_files(&root.join("derived"))
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&bucket);
    assert_eq!(before.len(), 2 * 6, "5 eager presets + manifest per source");

    let second = run_once();
    assert!(
        second.contains("rendered 0, already done 2, failed 0"),
        "{second}"
    );
    assert_eq!(
        snapshot(&bucket),
        before,
        "a re-run writes nothing new and changes no bytes"
    );

    // Replacing a source gives new names; the old derivatives stay valid for old URLs.
    std::fs::write(
        bucket.join("originals/a.jpg"),
        encode_jpeg(&quadrants(1000, 1000), 90),
    )
    .unwrap();
    let third = run_once();
    assert!(third.contains("rendered 1, already done 1"), "{third}");
    assert_eq!(manifests_under(&bucket.join("derived/a.jpg")).len(), 2);
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
