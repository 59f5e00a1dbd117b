//! `rendition html` as a page uses it: the real binary prints a `<picture>` for a source
//! whose eager presets make a 320/640/1280 ladder in AVIF, WebP and JPEG; headless
//! Chromium (Debian's `chromium`) opens a page holding it, with the derivatives served by
//! `rendition serve`, and reports which candidate it chose (`currentSrc`), what it decoded
//! and the placeholder background it painted. At 600 CSS px (DPR 1, `sizes="100vw"`) it
//! must take the 640 px AVIF, at 1000 px the 1280 px one (the 640 px one with
//! `sizes="(min-width: 900px) 50vw, 100vw"`); without the AVIF `<source>` the WebP,
//! without both the `<img>`'s JPEG.

use std::collections::HashMap;
use std::path::Path;

use rendition_pipeline::manifest::{Manifest, ManifestVariant};
use rendition_pipeline::url::encode_key;

use crate::harness::*;
use crate::serve::start_with_config;
use crate::sheet::{dump_dom_with, manifest_on_disk, run_once, tags};

const CONFIG: &str = r#"
[presets.w320]
spec = "w=320,q=60"
formats = ["avif", "webp", "jpeg"]
eager = true

[presets.w640]
spec = "w=640,q=60"
formats = ["avif", "webp", "jpeg"]
eager = true

[presets.w1280]
spec = "w=1280,q=60"
formats = ["avif", "webp", "jpeg"]
eager = true
"#;

/// A name that needs escaping in HTML and encoding in URLs.
const SOURCE: &str = "originals/a cat & <co>.jpg";

/// `rendition html …` with `env`; its stdout (the markup) and stderr.
async fn html(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = Spawn::rendition(cwd)
        .arg("html")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "rendition html {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// The manifest entry of `preset` in `content_type`.
fn entry<'m>(m: &'m Manifest, preset: &str, content_type: &str) -> &'m ManifestVariant {
    m.variants
        .iter()
        .find(|v| v.name == preset && v.content_type == content_type)
        .unwrap_or_else(|| panic!("no {preset} in {content_type} in the manifest"))
}

/// `srcset` candidates as (URL, width descriptor).
fn candidates(srcset: &str) -> Vec<(String, u32)> {
    srcset
        .split(", ")
        .map(|c| {
            let (url, w) = c.rsplit_once(' ').expect("URL and descriptor");
            (
                url.to_string(),
                w.strip_suffix('w').unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn rgb(hex: &str) -> String {
    let c = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap();
    format!("rgb({}, {}, {})", c(1), c(3), c(5))
}

/// Records what the browser made of the picture on `<body>`, for `--dump-dom`, once the
/// image has loaded or failed (polled: a lazy image does not hold up the load event).
/// `naturalWidth` of a `w`-descriptor candidate is divided by its density (width / slot),
/// so the chosen file is loaded once more without `srcset` for its own pixel size.
const PROBE: &str = r#"
<script>
(function () {
  "use strict";
  var img = document.querySelector("picture img"), b = document.body, tries = 0;
  function record(alone) {
    var css = getComputedStyle(img);
    b.setAttribute("data-current-src", img.currentSrc);
    b.setAttribute("data-natural-width", String(img.naturalWidth));
    b.setAttribute("data-natural-height", String(img.naturalHeight));
    b.setAttribute("data-decoded-width", String(alone.naturalWidth));
    b.setAttribute("data-decoded-height", String(alone.naturalHeight));
    b.setAttribute("data-viewport", String(window.innerWidth));
    b.setAttribute("data-dpr", String(window.devicePixelRatio));
    b.setAttribute("data-bg-color", css.backgroundColor);
    b.setAttribute("data-bg-image", css.backgroundImage.slice(0, 40));
    b.setAttribute("data-checked", "true");
  }
  function settle() {
    var done = img.complete && img.currentSrc !== "";
    if (!done && tries++ < 400) { setTimeout(settle, 25); return; }
    var alone = new Image();
    alone.onload = alone.onerror = function () { record(alone); };
    alone.src = img.currentSrc;
  }
  settle();
})();
</script>
"#;

/// `picture` with its `<source>` of `content_type` removed (each is a line of its own).
fn without(picture: &str, content_type: &str) -> String {
    let tag = format!("<source type=\"{content_type}\"");
    let kept: String = picture
        .lines()
        .filter(|l| !l.contains(&tag))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        kept.matches("<source").count() + 1,
        picture.matches("<source").count()
    );
    kept
}

/// What Chromium chose for the page `picture` is on, at `viewport` CSS px wide, DPR 1.
async fn chosen(
    picture: &str,
    viewport: u32,
    scratch: &Path,
    label: &str,
) -> HashMap<String, String> {
    let dir = scratch.join(label);
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.html");
    std::fs::write(
        &page,
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <style>body {{ margin: 0 }} img {{ max-width: 100%; height: auto; display: block }}</style>\n\
             </head>\n<body>\n{picture}{PROBE}</body>\n</html>\n"
        ),
    )
    .unwrap();
    // A fresh profile each time: nothing cached sways the choice.
    let window = format!("--window-size={viewport},900");
    let dom = dump_dom_with(
        &format!("file://{}", page.display()),
        &dir,
        &[&window, "--force-device-scale-factor=1"],
    )
    .await;
    let body = tags(&dom, "body").remove(0);
    assert_eq!(
        body.get("data-checked").map(String::as_str),
        Some("true"),
        "{label}: the probe ran: {body:?}"
    );
    assert_eq!(body["data-viewport"], viewport.to_string(), "{label}");
    assert_eq!(body["data-dpr"], "1", "{label}");
    body
}

#[tokio::test]
async fn html_picture_makes_chromium_pick_the_width_and_format_it_should() {
    let server = start_with_config(Some(CONFIG), &[]).await;
    let (cwd, bucket, addr) = (server.tmp.path(), &server.bucket, &server.addr);
    let (photo, _, _) = photos(".jpg", 2000)
        .into_iter()
        .next()
        .expect("a real photo");
    std::fs::copy(&photo, bucket.join(SOURCE)).unwrap();
    run_once(cwd, bucket).await;
    let m: Manifest = serde_json::from_value(manifest_on_disk(bucket, "a cat & <co>.jpg")).unwrap();
    let placeholder = m.placeholder.clone().expect("a placeholder");

    // Absolute URLs on the server's address, as a CDN host would be.
    let hosts = format!("[\"{addr}\"]");
    let env = [
        ("RENDITION__URLS__SCHEME", "http"),
        ("RENDITION__URLS__HOSTS", hosts.as_str()),
    ];
    let url = |v: &ManifestVariant| format!("http://{addr}/{}", encode_key(&v.key));
    let dir = bucket.to_str().unwrap();
    let ladder = ["w320", "w640", "w1280"];
    let of_ladder = |more: &[&'static str]| -> Vec<&str> {
        let mut args = vec![SOURCE, "--local", dir];
        for p in ladder {
            args.extend(["--preset", p]);
        }
        args.extend(more);
        args
    };
    let more = ["--sizes", "100vw", "--alt", "A \"cat\" & <co>"];
    let (picture, notes) = html(cwd, &of_ladder(&more), &env).await;
    assert!(!notes.contains("note:"), "JPEG is the fallback: {notes}");
    assert!(!picture.contains("<co>"), "escaped:\n{picture}");

    // What the markup says, attribute by attribute (unescaped), against the manifest.
    let sources = tags(&picture, "source");
    let types: Vec<&str> = sources.iter().map(|s| s["type"].as_str()).collect();
    assert_eq!(types, ["image/avif", "image/webp"], "{picture}");
    let expect = |content_type: &str| -> Vec<(String, u32)> {
        ladder
            .iter()
            .map(|p| entry(&m, p, content_type))
            .map(|v| (url(v), v.width))
            .collect()
    };
    for s in &sources {
        assert_eq!(candidates(&s["srcset"]), expect(&s["type"]), "{picture}");
        assert_eq!(s["sizes"], "100vw");
    }
    let img = tags(&picture, "img").remove(0);
    let widest = entry(&m, "w1280", "image/jpeg");
    assert_eq!(candidates(&img["srcset"]), expect("image/jpeg"));
    assert_eq!(img["src"], url(widest));
    assert_eq!(
        (img["width"].as_str(), img["height"].as_str()),
        (
            widest.width.to_string().as_str(),
            widest.height.to_string().as_str()
        )
    );
    assert_eq!(widest.width, 1280);
    assert_eq!(img["sizes"], "100vw");
    assert_eq!(img["alt"], "A \"cat\" & <co>");
    assert_eq!(img["loading"], "lazy");
    assert_eq!(img["decoding"], "async");
    assert_eq!(
        img["style"],
        format!(
            "background-color:{};background-image:url(\"{}\");background-size:cover",
            placeholder.dominant, placeholder.lqip
        )
    );

    // Without --preset: every eager width-only preset (the default WebP ladder too), one
    // candidate per width; `thumb` (a crop) and `og` (not eager) left out.
    let (all, _) = html(cwd, &[SOURCE, "--local", dir], &env).await;
    let widths = |tag: &HashMap<String, String>| -> Vec<u32> {
        candidates(&tag["srcset"])
            .into_iter()
            .map(|c| c.1)
            .collect()
    };
    let sources = tags(&all, "source");
    assert_eq!(widths(&sources[0]), [320, 640, 1280], "{all}");
    let xl = entry(&m, "xl", "image/webp").width;
    assert_eq!(widths(&sources[1]), [320, 640, 1024, 1280, xl], "{all}");
    assert_eq!(widths(&tags(&all, "img")[0]), [320, 640, 1280], "{all}");
    assert_eq!(tags(&all, "img")[0]["sizes"], "100vw", "the default sizes");

    // Chromium picks the narrowest candidate at least the displayed width, in the first
    // format it decodes; and paints the placeholder behind it.
    let scratch = cwd.join("chromium");
    let no_avif = without(&picture, "image/avif");
    let jpeg_only = without(&no_avif, "image/webp");
    assert_eq!(jpeg_only.matches("<source").count(), 0);
    // Shown at half the width from 900 px up: at 1000 px, 500 px wanted.
    let more = ["--sizes", "(min-width: 900px) 50vw, 100vw"];
    let (half, _) = html(cwd, &of_ladder(&more), &env).await;
    assert_eq!(
        tags(&half, "img")[0]["sizes"],
        "(min-width: 900px) 50vw, 100vw"
    );
    // Headless Chromium's window is at least 500 px wide, so 600 px stands for a phone.
    let cases = [
        ("avif-600", picture.as_str(), 600, "w640", "image/avif", 600),
        (
            "avif-1000",
            picture.as_str(),
            1000,
            "w1280",
            "image/avif",
            1000,
        ),
        (
            "avif-1000-half",
            half.as_str(),
            1000,
            "w640",
            "image/avif",
            500,
        ),
        ("webp-600", no_avif.as_str(), 600, "w640", "image/webp", 600),
        (
            "webp-1000",
            no_avif.as_str(),
            1000,
            "w1280",
            "image/webp",
            1000,
        ),
        (
            "jpeg-600",
            jpeg_only.as_str(),
            600,
            "w640",
            "image/jpeg",
            600,
        ),
        (
            "jpeg-1000",
            jpeg_only.as_str(),
            1000,
            "w1280",
            "image/jpeg",
            1000,
        ),
    ];
    for (label, page, viewport, preset, content_type, slot) in cases {
        let body = chosen(page, viewport, &scratch, label).await;
        let want = entry(&m, preset, content_type);
        assert_eq!(
            body["data-current-src"],
            url(want),
            "{label}: the browser's choice"
        );
        assert_eq!(
            (
                body["data-decoded-width"].as_str(),
                body["data-decoded-height"].as_str()
            ),
            (
                want.width.to_string().as_str(),
                want.height.to_string().as_str()
            ),
            "{label}: decoded at its manifest size"
        );
        // The slot `sizes` gave it: the candidate's density is its width / the slot.
        let natural: u32 = body["data-natural-width"].parse().unwrap();
        assert!(
            natural.abs_diff(slot) <= 1,
            "{label}: shown as {natural} px wide, the slot is {slot}"
        );
        assert_eq!(body["data-bg-color"], rgb(&placeholder.dominant), "{label}");
        assert!(
            body["data-bg-image"].starts_with("url(\"data:image/webp;base64,"),
            "{label}: {body:?}"
        );
    }
}
