//! `rendition gc` (issue 16): in folder mode with the real binaries, after `thumb`'s spec
//! is edited and backfilled and a source is replaced under the same key, a dry run lists
//! exactly the retired objects (the old `thumb` of every source, a legacy unhashed key,
//! and every object of the replaced source's old GUID folder) with their bytes and
//! deletes nothing; the default grace keeps them waiting; `--delete` removes exactly
//! those and leaves the current keys and manifests; a second run finds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rendition_pipeline::manifest::Manifest;
use rendition_pipeline::naming::spec_hash;

use crate::harness::*;
use crate::versions::{configure, NEW_SPEC, OLD_SPEC};

const KEPT: &str = "originals/a.jpg";
const REPLACED: &str = "originals/b photo.jpg";

/// Every object under `derived/`, key → bytes.
fn objects(bucket: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![bucket.join("derived")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".rendition") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                let key = path
                    .strip_prefix(bucket)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The current manifest of `source` (the one whose `source.key` is it, newest version).
fn manifest_of(bucket: &Path, source: &str, guid_not: Option<&str>) -> (String, Manifest) {
    let found: Vec<(String, Manifest)> = objects(bucket)
        .into_iter()
        .filter(|(k, _)| k.ends_with("/manifest.json"))
        .map(|(k, body)| (k, serde_json::from_slice::<Manifest>(&body).unwrap()))
        .filter(|(_, m)| m.source.key == source)
        .filter(|(_, m)| guid_not.is_none_or(|g| m.source.guid.to_string() != g))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{source}: {:?}",
        found.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    found.into_iter().next().unwrap()
}

/// `rendition gc ARGS --local BUCKET`: exit code, per-object lines (verb, key, bytes,
/// reason) and the summary line.
async fn gc(
    cwd: &Path,
    bucket: &Path,
    args: &[&str],
) -> (i32, BTreeSet<(String, String, u64, String)>, String) {
    let out = Spawn::rendition(cwd)
        .arg("gc")
        .args(args)
        .arg("--local")
        .arg(bucket)
        .env("RENDITION__LOG__FORMAT", "json")
        .output()
        .await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = BTreeSet::new();
    let mut summary = None;
    for line in stdout.lines() {
        if line.starts_with("gc: ") {
            summary = Some(line.to_string());
            continue;
        }
        // VERB KEY bytes=B reason=R age=A (the key may hold spaces).
        let (verb, rest) = line.split_once(' ').unwrap();
        let (rest, _age) = rest.rsplit_once(" age=").unwrap();
        let (rest, reason) = rest.rsplit_once(" reason=").unwrap();
        let (key, bytes) = rest.rsplit_once(" bytes=").unwrap();
        lines.insert((
            verb.to_string(),
            key.to_string(),
            bytes.parse().unwrap(),
            reason.to_string(),
        ));
    }
    let summary = summary.unwrap_or_else(|| {
        panic!(
            "no summary in {stdout:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited"), lines, summary)
}

fn summary_of(retired: usize, bytes: u64, waiting: usize, kept: usize) -> String {
    format!("gc: retired {retired} objects ({bytes} bytes), waiting {waiting}, kept {kept}")
}

#[tokio::test]
async fn gc_lists_then_removes_exactly_the_retired_derivatives() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, bucket) = (tmp.path(), tmp.path().join("bucket"));
    std::fs::create_dir_all(bucket.join("originals")).unwrap();
    for (i, source) in [KEPT, REPLACED].iter().enumerate() {
        let jpeg = encode_jpeg(&quadrants(800 + 16 * i as u32, 600), 90);
        std::fs::write(bucket.join(source), jpeg).unwrap();
    }
    configure(cwd, OLD_SPEC);
    let out = run_local_once(cwd, &bucket).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The replaced source: new bytes under the same key, so a new GUID folder.
    let (old_manifest_key, old_manifest) = manifest_of(&bucket, REPLACED, None);
    let old_folder = old_manifest_key
        .trim_end_matches("manifest.json")
        .to_string();
    std::fs::write(bucket.join(REPLACED), encode_jpeg(&quadrants(720, 540), 85)).unwrap();
    let out = run_local_once(cwd, &bucket).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_guid = old_manifest.source.guid.to_string();
    let (new_manifest_key, _) = manifest_of(&bucket, REPLACED, Some(&old_guid));
    assert_ne!(new_manifest_key, old_manifest_key);

    // `thumb` edited and backfilled: new keys, the old ones stay.
    configure(cwd, NEW_SPEC);
    let out = Spawn::rendition(cwd)
        .args(["backfill", "--changed", "--local"])
        .arg(&bucket)
        .output()
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_hash = spec_hash(OLD_SPEC);

    // A key written before presets were versioned, next to the current thumb.
    let (kept_manifest_key, _) = manifest_of(&bucket, KEPT, None);
    let kept_folder = kept_manifest_key
        .trim_end_matches("manifest.json")
        .to_string();
    let legacy = format!("{kept_folder}thumb.webp");
    std::fs::write(bucket.join(&legacy), b"legacy bytes").unwrap();

    let before = objects(&bucket);
    let mut expected: BTreeSet<(String, u64, String)> = BTreeSet::new();
    for (key, body) in &before {
        let reason = if key.starts_with(&old_folder) {
            "superseded"
        } else if key.ends_with(&format!("/thumb.{old_hash}.webp")) {
            "retired-spec"
        } else if *key == legacy {
            "legacy"
        } else {
            continue;
        };
        expected.insert((key.clone(), body.len() as u64, reason.to_string()));
    }
    // The old thumb of both sources (the replaced one's new folder too), the legacy key,
    // and the whole old folder (at least its manifest and its thumb).
    assert_eq!(
        expected.iter().filter(|e| e.2 == "retired-spec").count(),
        2,
        "{expected:?}"
    );
    assert!(
        expected.iter().filter(|e| e.2 == "superseded").count() >= 2,
        "{expected:?}"
    );
    let total: u64 = expected.iter().map(|e| e.1).sum();
    let kept = before.len() - expected.len();
    let with = |verb: &str| -> BTreeSet<(String, String, u64, String)> {
        expected
            .iter()
            .map(|(k, b, r)| (verb.to_string(), k.clone(), *b, r.clone()))
            .collect()
    };

    // The dry run (explicit, then the default) lists exactly them and deletes nothing.
    for args in [&["--grace", "0s", "--dry-run"][..], &["--grace", "0s"][..]] {
        let (code, lines, line) = gc(cwd, &bucket, args).await;
        assert_eq!(code, 0, "{line}");
        assert_eq!(lines, with("would-delete"));
        assert_eq!(line, summary_of(expected.len(), total, 0, kept));
        assert_eq!(objects(&bucket), before, "a dry run deletes nothing");
    }

    // The default grace (30d): all of them are waiting, nothing is removed.
    let (code, lines, line) = gc(cwd, &bucket, &["--delete"]).await;
    assert_eq!(code, 0, "{line}");
    assert_eq!(lines, with("waiting"));
    assert_eq!(line, summary_of(0, 0, expected.len(), kept));
    assert_eq!(objects(&bucket), before);

    // Deleting: exactly those go; the current keys and manifests keep their bytes.
    let (code, lines, line) = gc(cwd, &bucket, &["--grace", "0s", "--delete"]).await;
    assert_eq!(code, 0, "{line}");
    assert_eq!(lines, with("deleted"));
    assert_eq!(line, summary_of(expected.len(), total, 0, kept));
    let after = objects(&bucket);
    let mut left = before.clone();
    left.retain(|k, _| !expected.iter().any(|e| &e.0 == k));
    assert_eq!(after, left);
    assert!(after.contains_key(&kept_manifest_key));
    assert!(after.contains_key(&new_manifest_key));

    // Nothing left to collect.
    let (code, lines, line) = gc(cwd, &bucket, &["--grace", "0s", "--delete"]).await;
    assert_eq!(code, 0, "{line}");
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(line, summary_of(0, 0, 0, kept));
}

/// The same rules on S3 (moto): ages come from `LastModified`, deletes go to the bucket.
#[tokio::test]
async fn gc_on_s3_removes_superseded_and_retired_objects() {
    use rendition_pipeline::config::StorageSettings;
    use rendition_pipeline::naming::{SourceNames, Variant};

    let world = World::s3().await;
    let repo = std::fs::read_to_string(repo_root().join("rendition.toml")).unwrap();
    std::fs::write(world.dir().join("rendition.toml"), repo).unwrap();
    let bucket = world.bucket();
    let source = "originals/cat.jpg";
    let etag = bucket
        .put(
            source,
            encode_jpeg(&quadrants(64, 48), 90),
            Some("image/jpeg"),
        )
        .await;
    let names = SourceNames::of(&StorageSettings::default(), &bucket.name, source, &etag).unwrap();
    let current = spec_hash(OLD_SPEC);
    let thumb = |hash: &str| {
        names
            .derivative_key(&Variant::preset("thumb", hash), "webp")
            .unwrap()
    };
    let (now, old) = (thumb(&current), thumb(&spec_hash(NEW_SPEC)));
    let manifest = names.manifest_key().unwrap();
    let gone_folder = format!("derived/cat.jpg/{}/", uuid::Uuid::nil());
    let superseded = [
        format!("{gone_folder}thumb.{current}.webp"),
        format!("{gone_folder}manifest.json"),
    ];
    bucket.put(&now, b"current".to_vec(), None).await;
    bucket.put(&old, b"old spec".to_vec(), None).await;
    for key in &superseded {
        bucket.put(key, b"older version".to_vec(), None).await;
    }

    let run = |args: &'static [&'static str]| {
        let spawn = world.rendition().arg("gc").args(args);
        async move {
            let out = spawn.output().await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    // The current version's job has not written its manifest yet (a source replaced
    // while its job runs): nothing of the source goes, the older version included.
    let early = run(&["--grace", "0s", "--delete", "--quiet"]).await;
    assert_eq!(early.trim(), summary_of(0, 0, 0, 4), "{early}");
    assert_eq!(bucket.keys("derived/").await.len(), 4);

    let listing = serde_json::json!({"source": {}, "variants": [{"key": now}]});
    bucket
        .put(&manifest, serde_json::to_vec(&listing).unwrap(), None)
        .await;
    let dry = run(&["--grace", "0s", "--quiet"]).await;
    assert_eq!(dry.trim(), summary_of(3, 8 + 13 + 13, 0, 2), "{dry}");
    let out = run(&["--grace", "0s", "--delete"]).await;
    for key in superseded.iter().chain([&old]) {
        assert!(out.contains(&format!("deleted {key} ")), "{key}: {out}");
    }
    let mut left = bucket.keys("derived/").await;
    left.sort();
    let mut want = vec![now.clone(), manifest.clone()];
    want.sort();
    assert_eq!(left, want);
    let out = run(&["--grace", "0s", "--delete"]).await;
    assert_eq!(out.trim(), summary_of(0, 0, 0, 2));
}
