//! Geometry at the extremes: generated strips (1×N, N×1, 10000×10, 9000×120, 20000×200)
//! through every fit, with and without `enlarge`.
//!
//! The expected sizes are the documented fit semantics (`image/src/geometry.rs`'s module
//! doc, sharp's `resize({ fit, withoutEnlargement })`) written out again here on their
//! own, and that oracle is checked against libvips' `vips thumbnail` (cover and inside;
//! fill when enlarging) and, when installed, against sharp itself for every fit
//! (`scripts/test.sh` installs it and sets `RENDITION_SHARP_DIR`; without it the sharp
//! half says so and is skipped). Where sharp differs on purpose it is listed in
//! [`sharp_agrees`].
//!
//! Then the renderer: a variant whose output fits is made at exactly the oracle's size;
//! one whose output is over `limits.max_output_dimension` is skipped as
//! `output_too_large`, one whose pre-crop frame is over the decoded-size budget as
//! `decoded_too_large`, and its siblings are still made. Last, a 9000×120 banner through
//! `run --local` gets every preset it can have and a manifest listing the one it cannot,
//! whose URL `serve` answers with that typed 422.

use std::path::{Path, PathBuf};
use std::process::Command;

use image::{Rgb, RgbImage};
use rendition_image::render::{render, VariantRequest};
use rendition_image::spec::{Fit, Format};
use rendition_pipeline::config::{Limits, RenderSettings, Settings};
use rendition_pipeline::manifest::Manifest;
use rendition_pipeline::naming::SourceNames;
use rendition_pipeline::url::UrlGenerator;

use crate::harness::*;

const SHAPES: [(u32, u32); 5] = [
    (1, 12_000),
    (12_000, 1),
    (10_000, 10),
    (9_000, 120),
    (20_000, 200),
];

/// Boxes: square ones (the `thumb` preset's among them), one side only, and one whose
/// `contain` output is really over the 8192 px limit.
const BOXES: [(Option<u32>, Option<u32>); 5] = [
    (Some(300), Some(300)),
    (Some(160), Some(160)),
    (Some(300), None),
    (None, Some(300)),
    (Some(10_000), Some(300)),
];

const FITS: [Fit; 5] = [
    Fit::Cover,
    Fit::Contain,
    Fit::Fill,
    Fit::Inside,
    Fit::Outside,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    source: (u32, u32),
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    enlarge: bool,
}

impl Case {
    fn spec(&self) -> String {
        let mut parts = Vec::new();
        if let Some(w) = self.width {
            parts.push(format!("w={w}"));
        }
        if let Some(h) = self.height {
            parts.push(format!("h={h}"));
        }
        parts.push(format!("fit={}", self.fit.as_str()));
        if self.enlarge {
            parts.push("enlarge=true".into());
        }
        parts.push("fm=png".into());
        parts.join(",")
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for source in SHAPES {
        for (width, height) in BOXES {
            for fit in FITS {
                for enlarge in [false, true] {
                    out.push(Case {
                        source,
                        width,
                        height,
                        fit,
                        enlarge,
                    });
                }
            }
        }
    }
    out
}

/// What the documented semantics say: the frame scaled before any crop or canvas, and
/// the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Want {
    scaled: (u64, u64),
    output: (u64, u64),
}

/// The fit semantics as documented, independently of `image/src/geometry.rs`:
/// - one side given: scale by it, the other side follows the aspect ratio, any fit;
/// - `fill`: each side to the box;
/// - `inside` / `contain`: the smaller factor (contain's output is the whole box);
/// - `cover` / `outside`: the larger factor (cover's output is the box, or less where the
///   scaled frame is smaller: it is cropped, never padded);
/// - without `enlarge` no factor exceeds 1 (for `fill`, per side).
fn oracle(c: &Case) -> Want {
    let (sw, sh) = (f64::from(c.source.0), f64::from(c.source.1));
    let limit = |f: f64| if c.enlarge { f } else { f.min(1.0) };
    let len = |side: f64, f: f64| ((side * f).round() as u64).max(1);
    let uniform = |f: f64| (len(sw, f), len(sh, f));
    match (c.width, c.height) {
        (None, None) => unreachable!("every box has a side"),
        (Some(w), None) => {
            let s = uniform(limit(f64::from(w) / sw));
            Want {
                scaled: s,
                output: s,
            }
        }
        (None, Some(h)) => {
            let s = uniform(limit(f64::from(h) / sh));
            Want {
                scaled: s,
                output: s,
            }
        }
        (Some(w), Some(h)) => {
            let (fx, fy) = (f64::from(w) / sw, f64::from(h) / sh);
            let (w, h) = (u64::from(w), u64::from(h));
            match c.fit {
                Fit::Fill => {
                    let s = (len(sw, limit(fx)), len(sh, limit(fy)));
                    Want {
                        scaled: s,
                        output: s,
                    }
                }
                Fit::Inside => {
                    let s = uniform(limit(fx.min(fy)));
                    Want {
                        scaled: s,
                        output: s,
                    }
                }
                Fit::Contain => Want {
                    scaled: uniform(limit(fx.min(fy))),
                    output: (w, h),
                },
                Fit::Outside => {
                    let s = uniform(limit(fx.max(fy)));
                    Want {
                        scaled: s,
                        output: s,
                    }
                }
                Fit::Cover => {
                    let s = uniform(limit(fx.max(fy)));
                    Want {
                        scaled: s,
                        output: (w.min(s.0), h.min(s.1)),
                    }
                }
            }
        }
    }
}

/// How Rendition must answer a case under `limits`: made at a size, or skipped with a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Made(u64, u64),
    Skipped(&'static str),
}

fn expected(c: &Case, limits: &Limits) -> Answer {
    let want = oracle(c);
    let max = u64::from(limits.max_output_dimension);
    if want.output.0 > max || want.output.1 > max {
        Answer::Skipped("output_too_large")
    } else if want.scaled.0 * want.scaled.1 * 3 > limits.max_decoded_bytes {
        Answer::Skipped("decoded_too_large")
    } else {
        Answer::Made(want.output.0, want.output.1)
    }
}

fn strip(width: u32, height: u32) -> Vec<u8> {
    encode_png(&RgbImage::from_pixel(width, height, Rgb([200, 40, 40])))
}

fn png_size(bytes: &[u8]) -> (u64, u64) {
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap();
    (u64::from(w), u64::from(h))
}

#[test]
fn every_fit_of_every_extreme_shape_gives_the_documented_size_or_a_typed_skip() {
    let limits = Limits::default();
    let settings = RenderSettings::default();
    let all = cases();
    let mut made = 0;
    let mut skipped = 0;
    // One render (one decode) per source shape and `enlarge`: every box and fit at once,
    // so a skipped variant is seen beside siblings that are made.
    for source in SHAPES {
        let png = strip(source.0, source.1);
        for enlarge in [false, true] {
            let group: Vec<&Case> = all
                .iter()
                .filter(|c| c.source == source && c.enlarge == enlarge)
                .collect();
            let requests: Vec<VariantRequest> = group
                .iter()
                .enumerate()
                .map(|(i, c)| VariantRequest {
                    name: format!("v{i}"),
                    spec: c.spec().parse().unwrap(),
                })
                .collect();
            let out = render(&png, &requests, &limits, &settings).unwrap();
            assert_eq!(out.variants.len() + out.skipped.len(), requests.len());
            for (i, c) in group.iter().enumerate() {
                let name = format!("v{i}");
                let got = match (
                    out.variants.iter().find(|v| v.name == name),
                    out.skipped.iter().find(|s| s.name == name),
                ) {
                    (Some(v), None) => {
                        let size = png_size(&v.bytes);
                        assert_eq!(
                            size,
                            (u64::from(v.size.width), u64::from(v.size.height)),
                            "{c:?}: the bytes are the size reported"
                        );
                        Answer::Made(size.0, size.1)
                    }
                    (None, Some(s)) => {
                        let text = s.error.to_string();
                        let want = oracle(c);
                        let named = match s.error.kind() {
                            "output_too_large" => want.output,
                            _ => want.scaled,
                        };
                        assert!(
                            text.contains(&format!("{}×{}", named.0, named.1)),
                            "{c:?}: the message names the size really over: {text}"
                        );
                        Answer::Skipped(s.error.kind())
                    }
                    other => panic!("{c:?}: {other:?}"),
                };
                assert_eq!(got, expected(c, &limits), "{c:?} ({})", c.spec());
                match got {
                    Answer::Made(..) => made += 1,
                    Answer::Skipped(_) => skipped += 1,
                }
            }
        }
    }
    // The cases reach both answers, and both kinds of skip.
    assert!(
        made >= 100 && skipped >= 50,
        "made {made}, skipped {skipped}"
    );
    let kinds: std::collections::BTreeSet<Answer> = all
        .iter()
        .map(|c| expected(c, &limits))
        .filter(|a| matches!(a, Answer::Skipped(_)))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

impl PartialOrd for Answer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Answer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        format!("{self:?}").cmp(&format!("{other:?}"))
    }
}

#[test]
fn the_issues_shapes_get_the_sizes_sharp_gives() {
    // The examples that used to fail: cover crops of wide strips without enlarging.
    let at = |source, w, h| {
        oracle(&Case {
            source,
            width: Some(w),
            height: Some(h),
            fit: Fit::Cover,
            enlarge: false,
        })
        .output
    };
    assert_eq!(at((9_000, 120), 160, 160), (160, 120));
    assert_eq!(at((10_000, 10), 300, 300), (300, 10));
    assert_eq!(at((10_000, 10), 160, 160), (160, 10));
    let limits = Limits::default();
    let contain = Case {
        source: (10_000, 10),
        width: Some(10_000),
        height: Some(300),
        fit: Fit::Contain,
        enlarge: false,
    };
    assert_eq!(oracle(&contain).output, (10_000, 300));
    assert_eq!(
        expected(&contain, &limits),
        Answer::Skipped("output_too_large")
    );
}

// ---- the oracle against libvips' CLI and sharp ------------------------------------------------

/// Source files for the external tools, one PNG per shape.
struct Sources {
    _dir: tempfile::TempDir,
    paths: Vec<((u32, u32), PathBuf)>,
}

impl Sources {
    fn write() -> Sources {
        let dir = tempfile::tempdir().unwrap();
        let paths = SHAPES
            .iter()
            .map(|&(w, h)| {
                let path = dir.path().join(format!("{w}x{h}.png"));
                std::fs::write(&path, strip(w, h)).unwrap();
                ((w, h), path)
            })
            .collect();
        Sources { _dir: dir, paths }
    }

    fn path(&self, shape: (u32, u32)) -> &Path {
        &self.paths.iter().find(|(s, _)| *s == shape).unwrap().1
    }
}

/// Cases an external tool is asked about: the output is made (no point asking for a
/// 300000-px strip), and the oracle is what the tool is compared with.
fn comparable(limits: &Limits) -> Vec<Case> {
    cases()
        .into_iter()
        .filter(|c| matches!(expected(c, limits), Answer::Made(..)))
        .collect()
}

#[test]
fn the_oracle_agrees_with_vips_thumbnail() {
    // `vips thumbnail` knows cover (`--crop`), inside (no crop) and, with `--size force`,
    // fill: but force ignores "no enlarging", so fill is only compared when enlarging.
    let sources = Sources::write();
    let out = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    let mut compared = 0;
    for c in comparable(&limits) {
        let crop = match c.fit {
            Fit::Cover => true,
            Fit::Inside => false,
            Fit::Fill if c.enlarge && c.width.is_some() && c.height.is_some() => false,
            _ => continue,
        };
        // One side only: the other is unbounded (libvips' largest coordinate).
        let width = c.width.unwrap_or(10_000_000).to_string();
        let height = c.height.unwrap_or(10_000_000).to_string();
        let size = match (c.fit, c.enlarge) {
            (Fit::Fill, _) => "force",
            (_, true) => "both",
            (_, false) => "down",
        };
        let target = out.path().join("out.v");
        let mut cmd = Command::new("vips");
        cmd.arg("thumbnail")
            .arg(sources.path(c.source))
            .arg(&target)
            .arg(&width)
            .args(["--height", &height, "--size", size]);
        // With one side only, cover is a plain scale (there is nothing to crop to).
        if crop && c.width.is_some() && c.height.is_some() {
            cmd.args(["--crop", "centre"]);
        }
        let status = cmd.status().expect("vips (libvips-tools) runs");
        assert!(status.success(), "{c:?}");
        let dim = |f: &str| -> u64 {
            let o = Command::new("vipsheader")
                .args(["-f", f])
                .arg(&target)
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        assert_eq!(
            (dim("width"), dim("height")),
            oracle(&c).output,
            "vips thumbnail: {c:?}"
        );
        compared += 1;
    }
    assert!(compared >= 60, "{compared} cases compared");
    eprintln!("vips thumbnail: {compared} cases compared");
}

/// Where sharp is not the documented semantics, on purpose: with one side given, sharp's
/// `contain` pads and its `fill` stretches to the source's other side; Rendition keeps
/// the aspect ratio whatever the fit (as imgproxy and thumbor do).
fn sharp_agrees(c: &Case) -> bool {
    c.width.is_some() && c.height.is_some() || !matches!(c.fit, Fit::Contain | Fit::Fill)
}

const SHARP_SCRIPT: &str = r#"
const sharp = require(process.env.SHARP_DIR + '/node_modules/sharp');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
(async () => {
  const out = [];
  for (const c of cases) {
    const { info } = await sharp(c.file)
      .resize({ width: c.width ?? undefined, height: c.height ?? undefined, fit: c.fit,
                withoutEnlargement: !c.enlarge })
      .raw()
      .toBuffer({ resolveWithObject: true });
    out.push([info.width, info.height]);
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn the_oracle_agrees_with_sharp() {
    let Some(dir) = std::env::var_os("RENDITION_SHARP_DIR").filter(|d| !d.is_empty()) else {
        // scripts/test.sh requires it wherever node is installed.
        assert!(
            std::env::var_os("RENDITION_REQUIRE_SHARP").is_none(),
            "RENDITION_REQUIRE_SHARP is set but sharp is not installed (scripts/install-sharp.sh)"
        );
        eprintln!("sharp is not installed (RENDITION_SHARP_DIR unset): compared with vips only");
        return;
    };
    let sources = Sources::write();
    let limits = Limits::default();
    let asked: Vec<Case> = comparable(&limits)
        .into_iter()
        .filter(sharp_agrees)
        .collect();
    let json: Vec<serde_json::Value> = asked
        .iter()
        .map(|c| {
            serde_json::json!({
                "file": sources.path(c.source),
                "width": c.width,
                "height": c.height,
                "fit": c.fit.as_str(),
                "enlarge": c.enlarge,
            })
        })
        .collect();
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), SHARP_SCRIPT).unwrap();
    let mut child = Command::new("node")
        .arg(script.path())
        .env("SHARP_DIR", &dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (RENDITION_SHARP_DIR is set)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&json).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sharp failed");
    let sizes: Vec<(u64, u64)> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sizes.len(), asked.len());
    for (c, got) in asked.iter().zip(sizes) {
        assert_eq!(got, oracle(c).output, "sharp: {c:?}");
    }
    assert!(asked.len() >= 100, "{} cases compared", asked.len());
}

// ---- a banner through the product -----------------------------------------------------------

/// The default presets, and one (`strip`: 400 px tall, enlarged) that a 9000×120 banner
/// cannot have: 30000×400 is over the 8192 px limit.
const CONFIG: &str = r#"
[presets.strip]
spec = "h=400,enlarge=true,fm=webp"
eager = true
"#;

#[tokio::test]
async fn a_banner_gets_every_preset_it_can_have_and_lists_the_one_it_cannot() {
    // `serve` over the folder, with the configuration `run --local` uses too.
    let server = crate::serve::start_with_config(Some(CONFIG), &[]).await;
    let (cwd, bucket) = (server.tmp.path(), &server.bucket);
    let config = cwd.join("rendition.toml");
    std::fs::write(
        bucket.join("originals/banner.jpg"),
        encode_jpeg(&quadrants(9_000, 120), 85),
    )
    .unwrap();

    let out = run_local_once(cwd, bucket).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("rendered 1,"), "{stdout}");
    assert!(
        !bucket.join("failed/banner.jpg.json").exists(),
        "the source did not fail"
    );

    let settings = Settings::load(Some(&config), std::iter::empty()).unwrap();
    let store = rendition_pipeline::store::FsStore::new(bucket).unwrap();
    use rendition_pipeline::store::BlobStore as _;
    let meta = store.head("originals/banner.jpg").await.unwrap().unwrap();
    let names = SourceNames::of(
        &settings.storage,
        "local",
        "originals/banner.jpg",
        meta.version(),
    )
    .unwrap();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(bucket.join(names.manifest_key().unwrap())).unwrap())
            .unwrap();
    let sizes: Vec<(&str, u32, u32)> = manifest
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height))
        .collect();
    assert_eq!(
        sizes,
        [
            ("lg", 1024, 14),
            ("md", 640, 9),
            ("sm", 320, 4),
            ("thumb", 160, 120),
            ("xl", 2048, 27),
        ]
    );
    for v in &manifest.variants {
        let img = decode(&std::fs::read(bucket.join(&v.key)).unwrap());
        assert_eq!(
            (img.width(), img.height()),
            (v.width, v.height),
            "{}",
            v.key
        );
    }
    assert_eq!(manifest.skipped.len(), 1, "{manifest:?}");
    let skipped = &manifest.skipped[0];
    assert_eq!(
        (skipped.variant.as_str(), skipped.kind.as_str()),
        ("strip", "output_too_large")
    );
    assert!(skipped.reason.contains("30000×400"), "{}", skipped.reason);
    assert_eq!(skipped.spec, settings.presets["strip"].spec.to_string());

    // A second run has nothing to do: the skip is recorded, not retried.
    let again = run_local_once(cwd, bucket).await;
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(again.contains("already done 1"), "{again}");

    // The skipped preset's URL answers with its typed 422; the made one with its bytes.
    let addr = server.addr.clone();
    let urls = UrlGenerator::new(&settings);
    let url = |preset: &str| {
        let key = names
            .derivative_key(&preset_in(&settings, preset, Format::Webp), "webp")
            .unwrap();
        urls.for_key(&key, 0).unwrap()
    };
    let r = get(&addr, url("strip").as_bytes(), &[]).await;
    assert_eq!(
        (r.status, r.error_kind().as_str()),
        (422, "output_too_large")
    );
    let r = get(&addr, url("thumb").as_bytes(), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(decode(&r.body).dimensions(), (160, 120));
    server.app.terminate();
}
