//! The contact sheet as a person sees it: `rendition sheet` (a self-contained file) and
//! `serve`'s `/sheet/…` page, opened in headless Chromium (Debian's `chromium`, installed
//! by scripts/install-deps.sh; without it these tests fail). Chromium's `--dump-dom`
//! output must show every image loaded, at the size the manifest on disk claims.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use image::{ImageEncoder, Rgba, RgbaImage};

use crate::harness::*;
use crate::serve::start;

const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

/// Debian's chromium; a missing browser is a failure, not a skip.
fn chromium() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()))
        .expect("chromium is not installed: run scripts/install-deps.sh (apt-get install chromium)")
}

/// The DOM of `url` after its load event, as headless Chromium serializes it.
async fn dump_dom(url: &str, scratch: &Path) -> String {
    dump_dom_with(url, scratch, &["--window-size=1280,2000"]).await
}

/// [`dump_dom`] with `flags` (the window size, a device scale factor…) added; also used
/// by the `rendition html` tests.
pub(crate) async fn dump_dom_with(url: &str, scratch: &Path, flags: &[&str]) -> String {
    let home = scratch.join("chromium-home");
    let profile = scratch.join("chromium-profile");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
    ])
    .args(flags)
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--dump-dom")
    .arg(url)
    .env("HOME", &home)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let out = tokio::time::timeout(CHROMIUM_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("chromium --dump-dom {url} took over {CHROMIUM_TIMEOUT:?}"))
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chromium --dump-dom {url}: {}\n{stderr}",
        out.status
    );
    let dom = String::from_utf8(out.stdout).expect("UTF-8 DOM");
    assert!(
        dom.contains("</html>"),
        "chromium printed no document for {url}:\n{stderr}"
    );
    dom
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The attributes of a start tag's inside (`img src="…" data-x="…"`), unescaped.
fn attributes(tag: &str) -> HashMap<String, String> {
    let mut attrs = HashMap::new();
    let mut rest = tag
        .split_once(char::is_whitespace)
        .map_or("", |(_, rest)| rest);
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with('/') {
            return attrs;
        }
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..end].to_ascii_lowercase();
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix("=\"") {
            let close = after.find('"').expect("closing quote");
            attrs.insert(name, unescape(&after[..close]));
            rest = &after[close + 1..];
        } else {
            attrs.insert(name, String::new());
        }
    }
}

/// Every start tag `<{name} …>` in `dom`, as attribute maps. Chromium escapes `<`, `>`
/// and `"` inside attribute values, so a tag ends at the first `>`.
pub(crate) fn tags(dom: &str, name: &str) -> Vec<HashMap<String, String>> {
    let open = format!("<{name}");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = dom[from..].find(&open) {
        let start = from + at;
        let after = &dom[start + open.len()..];
        from = start + open.len();
        if !after.starts_with(|c: char| c.is_whitespace() || c == '>') {
            continue;
        }
        let end = after.find('>').expect("end of tag");
        found.push(attributes(&dom[start + 1..start + open.len() + end]));
    }
    found
}

/// The manifest `rendition run` wrote for `originals/{rel}`, read from disk.
pub(crate) fn manifest_on_disk(bucket: &Path, rel: &str) -> serde_json::Value {
    let dir = bucket.join("derived").join(rel);
    let guids: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(guids.len(), 1, "one version of {rel}: {guids:?}");
    let text = std::fs::read_to_string(guids[0].join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).unwrap()
}

fn dims(v: &serde_json::Value) -> (u64, u64) {
    (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap())
}

fn natural(img: &HashMap<String, String>) -> (u64, u64) {
    let n = |k: &str| -> u64 {
        img.get(k)
            .unwrap_or_else(|| panic!("no {k} on {:?}", brief(img)))
            .parse()
            .unwrap()
    };
    (n("data-natural-width"), n("data-natural-height"))
}

/// An img's attributes without its (possibly megabytes of) `src`.
fn brief(img: &HashMap<String, String>) -> HashMap<&str, &str> {
    img.iter()
        .map(|(k, v)| {
            let v = if k == "src" && v.len() > 80 {
                &v[..80]
            } else {
                v
            };
            (k.as_str(), v)
        })
        .collect()
}

/// What the browser made of the page agrees with the manifest on disk: every image
/// loaded, the source and each variant once, each at its manifest size.
fn assert_sheet(dom: &str, manifest: &serde_json::Value, what: &str) {
    let body = tags(dom, "body");
    assert_eq!(body.len(), 1, "{what}: one body");
    assert_eq!(
        body[0].get("data-checked").map(String::as_str),
        Some("true"),
        "{what}: the page's check ran (body {:?})",
        body[0]
    );
    let imgs = tags(dom, "img");
    let variants = manifest["variants"].as_array().unwrap();
    assert!(!variants.is_empty(), "{what}: the manifest lists variants");
    assert_eq!(
        imgs.len(),
        1 + variants.len(),
        "{what}: the source and every variant"
    );
    for img in &imgs {
        assert_eq!(
            img.get("data-loaded").map(String::as_str),
            Some("true"),
            "{what}: image did not load: {:?}",
            brief(img)
        );
        let (w, h) = natural(img);
        assert!(w > 0 && h > 0, "{what}: {:?}", brief(img));
    }
    let role = |r: &str| -> Vec<&HashMap<String, String>> {
        imgs.iter()
            .filter(|i| i.get("data-role").map(String::as_str) == Some(r))
            .collect()
    };
    let source = role("source");
    assert_eq!(source.len(), 1, "{what}: one source image");
    assert_eq!(
        natural(source[0]),
        dims(&manifest["source"]),
        "{what}: the source at its manifest size"
    );
    // The placeholder the manifest holds, shown beside the source.
    let placeholder = &manifest["placeholder"];
    let spans = tags(dom, "span");
    let shown_as = |part: &str| -> &str {
        spans
            .iter()
            .find(|s| s.get("data-placeholder").map(String::as_str) == Some(part))
            .and_then(|s| s.get("style"))
            .unwrap_or_else(|| panic!("{what}: no placeholder {part}"))
    };
    let dominant = placeholder["dominant"].as_str().expect("a placeholder");
    assert_eq!(shown_as("dominant"), format!("background-color:{dominant}"));
    let lqip = placeholder["lqip"].as_str().unwrap();
    assert!(
        shown_as("lqip").contains(&format!("url(\"{lqip}\")")),
        "{what}"
    );
    let blurhash = placeholder["blurhash"].as_str().unwrap();
    assert!(
        dom.contains(&format!(
            "<code data-placeholder=\"blurhash\">{blurhash}</code>"
        )),
        "{what}: the BlurHash"
    );
    let shown = role("variant");
    assert_eq!(shown.len(), variants.len(), "{what}: every variant once");
    for v in variants {
        let name = v["name"].as_str().unwrap();
        let img = shown
            .iter()
            .find(|i| i.get("data-name").map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{what}: no image of variant {name}"));
        assert_eq!(natural(img), dims(v), "{what}: variant {name}");
        assert_eq!(
            img.get("data-key").map(String::as_str),
            v["key"].as_str(),
            "{what}: variant {name}"
        );
    }
}

/// A PNG with real transparency: a colour wheel fading out from the centre.
fn alpha_png(width: u32, height: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(width, height, |x, y| {
        let (cx, cy) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
        let (dx, dy) = (f64::from(x) - cx, f64::from(y) - cy);
        let r = (dx * dx + dy * dy).sqrt() / cx.min(cy);
        let alpha = (255.0 * (1.0 - r).clamp(0.0, 1.0)) as u8;
        Rgba([
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            160,
            alpha,
        ])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}

async fn rendition(cwd: &Path, args: &[&str]) -> std::process::Output {
    Spawn::rendition(cwd)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
}

pub(crate) async fn run_once(cwd: &Path, bucket: &Path) {
    let out = rendition(cwd, &["run", "--local", bucket.to_str().unwrap(), "--once"]).await;
    assert!(
        out.status.success(),
        "rendition run --once: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("failed 0"), "{stdout}");
}

#[tokio::test]
async fn sheet_file_opens_in_chromium_with_every_image_at_its_manifest_size() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(bucket.join("originals")).unwrap();
    let (photo, _, _) = photos(".jpg", 2000)
        .into_iter()
        .next()
        .expect("a real photo");
    std::fs::copy(&photo, bucket.join("originals/x.jpg")).unwrap();
    std::fs::write(bucket.join("originals/alpha.png"), alpha_png(900, 600)).unwrap();
    run_once(tmp.path(), &bucket).await;
    let dir = bucket.to_str().unwrap();

    for (source, rel) in [
        ("originals/x.jpg", "x.jpg"),
        ("originals/alpha.png", "alpha.png"),
    ] {
        let manifest = manifest_on_disk(&bucket, rel);
        let images = 1 + manifest["variants"].as_array().unwrap().len();
        let file = tmp.path().join(format!("sheet-{rel}.html"));
        let out = rendition(
            tmp.path(),
            &[
                "sheet",
                source,
                "--local",
                dir,
                "-o",
                file.to_str().unwrap(),
            ],
        )
        .await;
        assert!(
            out.status.success(),
            "rendition sheet {source}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("sheet: {source} → {} ({images} images)", file.display())
        );
        let html = std::fs::read_to_string(&file).unwrap();
        assert!(
            html.contains("data:image/webp;base64,"),
            "{source}: images are embedded"
        );

        // Without -o the same page goes to stdout.
        let out = rendition(tmp.path(), &["sheet", source, "--local", dir]).await;
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), html);

        let url = format!("file://{}", file.display());
        let dom = dump_dom(&url, tmp.path()).await;
        assert_sheet(&dom, &manifest, source);
    }

    // No such source; a source with no manifest yet (dropped after the run): clear
    // errors, non-zero exit, no file written.
    std::fs::copy(&photo, bucket.join("originals/late.jpg")).unwrap();
    for (source, says) in [
        ("originals/nope.jpg", "no source at \"originals/nope.jpg\""),
        ("originals/late.jpg", "has no manifest yet"),
    ] {
        let file = tmp.path().join("not-written.html");
        let out = rendition(
            tmp.path(),
            &[
                "sheet",
                source,
                "--local",
                dir,
                "-o",
                file.to_str().unwrap(),
            ],
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{source}: must fail");
        assert!(stderr.contains(says), "{source}: {stderr}");
        assert!(!file.exists(), "{source}: no page written");
    }
}

#[tokio::test]
async fn serve_sheet_page_opens_in_chromium_with_every_image_at_its_manifest_size() {
    let s = start(&[]).await;
    let (photo, _, _) = photos(".jpg", 2000)
        .into_iter()
        .next()
        .expect("a real photo");
    // A name that needs escaping in HTML and encoding in URLs.
    let source = "originals/big cat & <co>.jpg";
    std::fs::copy(&photo, s.bucket.join(source)).unwrap();
    run_once(s.tmp.path(), &s.bucket).await;
    let manifest = manifest_on_disk(&s.bucket, "big cat & <co>.jpg");

    // A variant missing from storage is rendered on demand when the page asks for it.
    let sm = manifest["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "sm")
        .expect("an sm variant");
    std::fs::remove_file(s.bucket.join(sm["key"].as_str().unwrap())).unwrap();

    let path = "/sheet/originals/big%20cat%20%26%20%3Cco%3E.jpg";
    let page = get(&s.addr, path, &[]).await;
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(page.body).unwrap();
    assert!(!html.contains("<co>"), "the key is escaped");
    assert!(
        html.contains("src=\"/derived/big%20cat%20%26%20%3Cco%3E.jpg/"),
        "variants are linked by their derivative URLs"
    );

    let dom = dump_dom(&format!("http://{}{path}", s.addr), s.tmp.path()).await;
    assert_sheet(&dom, &manifest, "serve /sheet/");
    assert!(
        s.bucket.join(sm["key"].as_str().unwrap()).exists(),
        "the missing variant was rendered on demand and stored"
    );

    // No such source; no manifest yet: 404 with the reason.
    std::fs::copy(&photo, s.bucket.join("originals/late.jpg")).unwrap();
    for (target, kind) in [
        ("/sheet/originals/nope.jpg", "source_missing"),
        ("/sheet/originals/late.jpg", "manifest_missing"),
    ] {
        let r = get(&s.addr, target, &[]).await;
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 404, "{target}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], kind, "{target}: {body}");
    }
}
