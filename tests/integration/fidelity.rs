//! Checked against a reference: our output next to what libvips' own command line
//! (`vips thumbnail`, `vipsthumbnail`, `vips gravity`) makes of the same file, on real
//! photos and generated images, compared by size (exactly) and by PSNR over R, G and B;
//! and real EXIF-tagged JPEGs (Debian's copy of the Go imaging library's test data)
//! against their upright original.
//!
//! Thresholds: [`MIN_PSNR_VS_VIPS`] = 30 dB against libvips' CLI, and
//! [`MIN_PSNR_ORIENTATION`] = 25 dB between each orientation sample and
//! `orientation_1.jpg` rendered the same way. Run with `--nocapture` to see the figures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use image::RgbImage;
use rendition_image::render::{render, VariantRequest};
use rendition_image::vips::Image;
use rendition_pipeline::config::{Limits, RenderSettings};

use crate::harness::*;

/// Least PSNR (dB, R, G and B) between our output and libvips' CLI for the same request.
const MIN_PSNR_VS_VIPS: f64 = 30.0;
/// Least PSNR (dB) between an EXIF orientation sample and `orientation_1` rendered alike.
const MIN_PSNR_ORIENTATION: f64 = 25.0;

/// Peak signal-to-noise ratio over the R, G and B samples of two same-sized images.
pub(crate) fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "PSNR needs equal sizes");
    let sum: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let mse = sum / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

#[test]
fn psnr_is_what_the_formula_says() {
    let a = RgbImage::from_pixel(10, 10, image::Rgb([100, 100, 100]));
    assert_eq!(psnr(&a, &a), f64::INFINITY);
    // Every sample off by 5: MSE 25, PSNR = 10·log10(65025 / 25) ≈ 34.15 dB.
    let b = RgbImage::from_pixel(10, 10, image::Rgb([105, 95, 105]));
    assert!((psnr(&a, &b) - 34.151).abs() < 0.01, "{}", psnr(&a, &b));
}

/// The real EXIF samples, fetched once by `scripts/fetch-exif-samples.sh` into a cache
/// outside git.
fn exif_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/fetch-exif-samples.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/fetch-exif-samples.sh");
        assert!(out.status.success(), "scripts/fetch-exif-samples.sh failed");
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("fetch-exif-samples prints its folder")
                .trim(),
        )
    })
}

fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (libvips-tools): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Our rendering of `spec`, decoded.
fn ours(bytes: &[u8], spec: &str) -> RgbImage {
    let req = VariantRequest {
        name: "v".into(),
        spec: spec.parse().unwrap(),
    };
    let out = render(
        bytes,
        &[req],
        &Limits::default(),
        &RenderSettings::default(),
    )
    .unwrap_or_else(|e| panic!("{spec}: {e}"));
    decode(&out.variants[0].bytes)
}

/// Whether the file carries an ICC profile (then both sides convert to sRGB).
fn has_icc(bytes: &[u8]) -> bool {
    rendition_image::vips::init(1).unwrap();
    Image::open(bytes).unwrap().header().has_icc
}

/// One request, as a spec for us and as libvips CLI calls for the reference.
struct Case {
    name: &'static str,
    spec: String,
    /// (program, args) with `{in}`, `{out}`, `{tmp}` placeholders; the last writes `{out}`.
    reference: Vec<(&'static str, Vec<String>)>,
}

fn thumbnail(width: u32, height: u32, extra: &[&str]) -> (&'static str, Vec<String>) {
    let mut args: Vec<String> = ["thumbnail", "{in}", "{out}"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(width.to_string());
    args.extend(["--height".to_string(), height.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    ("vips", args)
}

/// The four checked requests, for a box of `w`×`h`.
fn cases(w: u32, h: u32, icc: bool) -> Vec<Case> {
    let profile: &[&str] = if icc {
        &["--export-profile", "srgb"]
    } else {
        &[]
    };
    let with = |extra: &[&'static str]| -> Vec<&'static str> { [profile, extra].concat() };
    // libvips' largest coordinate: "no limit" on the other axis.
    const ANY: u32 = 10_000_000;
    let mut contain_thumb = thumbnail(w, h, profile);
    contain_thumb.1[2] = "{tmp}".into();
    let mut vipsthumbnail = vec!["{in}".to_string(), "-s".into(), format!("{w}x")];
    if icc {
        vipsthumbnail.extend(["-e".to_string(), "srgb".into()]);
    }
    vipsthumbnail.extend(["-o".to_string(), "{out}".into()]);
    vec![
        Case {
            name: "width-only downscale (vips thumbnail)",
            spec: format!("w={w},fm=png"),
            reference: vec![thumbnail(w, ANY, profile)],
        },
        Case {
            name: "width-only downscale (vipsthumbnail)",
            spec: format!("w={w},fm=png"),
            reference: vec![("vipsthumbnail", vipsthumbnail)],
        },
        Case {
            name: "cover centre",
            spec: format!("w={w},h={h},fit=cover,fm=png"),
            reference: vec![thumbnail(w, h, &with(&["--crop", "centre"]))],
        },
        Case {
            name: "cover attention",
            spec: format!("w={w},h={h},fit=cover,g=attention,fm=png"),
            reference: vec![thumbnail(w, h, &with(&["--crop", "attention"]))],
        },
        Case {
            name: "cover entropy",
            spec: format!("w={w},h={h},fit=cover,g=entropy,fm=png"),
            reference: vec![thumbnail(w, h, &with(&["--crop", "entropy"]))],
        },
        Case {
            name: "contain",
            spec: format!("w={w},h={h},fit=contain,bg=ffffff,fm=png"),
            reference: vec![
                contain_thumb,
                (
                    "vips",
                    [
                        "gravity",
                        "{tmp}",
                        "{out}",
                        "centre",
                        &w.to_string(),
                        &h.to_string(),
                        "--extend",
                        "background",
                        "--background",
                        "255 255 255",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ),
            ],
        },
    ]
}

/// Renders every case for the file at `input` both ways and checks size and PSNR.
/// Returns the lowest PSNR seen.
fn compare_with_vips(label: &str, input: &Path, w: u32, h: u32) -> f64 {
    let bytes = std::fs::read(input).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut worst = f64::INFINITY;
    for (i, case) in cases(w, h, has_icc(&bytes)).iter().enumerate() {
        let out = dir.path().join(format!("ref-{i}.png"));
        let tmp = dir.path().join(format!("tmp-{i}.png"));
        for (program, args) in &case.reference {
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    a.replace("{in}", input.to_str().unwrap())
                        .replace("{out}", out.to_str().unwrap())
                        .replace("{tmp}", tmp.to_str().unwrap())
                })
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tool(program, &args);
        }
        let reference = decode(&std::fs::read(&out).unwrap());
        let got = ours(&bytes, &case.spec);
        assert_eq!(
            got.dimensions(),
            reference.dimensions(),
            "{label}, {}: size differs from libvips",
            case.name
        );
        let db = psnr(&got, &reference);
        eprintln!(
            "fidelity: {label:<28} {:<38} {:>4}×{:<4} PSNR {db:6.2} dB",
            case.name,
            got.width(),
            got.height()
        );
        assert!(
            db >= MIN_PSNR_VS_VIPS,
            "{label}, {} ({}): PSNR {db:.2} dB < {MIN_PSNR_VS_VIPS} dB",
            case.name,
            case.spec
        );
        worst = worst.min(db);
    }
    worst
}

#[test]
fn real_photos_match_libvips_cli() {
    let photos = photos(".jpg", 4000);
    assert!(photos.len() >= 2, "need two real photos ≥ 4000 px");
    for (path, _, _) in photos.iter().take(3) {
        let label = path.file_name().unwrap().to_string_lossy().to_string();
        // A square box crops both landscape and portrait photos.
        compare_with_vips(&label, path, 480, 480);
        compare_with_vips(&label, path, 640, 360);
    }
}

#[test]
fn real_png_with_icc_matches_libvips_cli() {
    // The first real PNG that carries an ICC profile: both sides convert to sRGB.
    let pngs = photos(".png", 3000);
    let with_icc = pngs
        .iter()
        .find(|(p, _, _)| has_icc(&std::fs::read(p).unwrap()))
        .expect("a real PNG with an ICC profile");
    let label = with_icc
        .0
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    compare_with_vips(&label, &with_icc.0, 400, 400);
}

/// A generated "scene": smooth gradients, hard-edged shapes and fine texture, so that
/// resampling differences would show.
fn scene(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (
            f64::from(x) / f64::from(width),
            f64::from(y) / f64::from(height),
        );
        let (cx, cy) = (fx - 0.7, fy - 0.35);
        if cx * cx + cy * cy < 0.02 {
            // A saturated disc with a checker texture.
            if (x / 6 + y / 6) % 2 == 0 {
                return image::Rgb([230, 40, 30]);
            }
            return image::Rgb([250, 200, 20]);
        }
        if (0.1..0.3).contains(&fx) && (0.6..0.9).contains(&fy) {
            return image::Rgb([20, 60, 200]);
        }
        let wave = ((f64::from(x) * 0.05).sin() * (f64::from(y) * 0.03).cos() * 20.0) as i32;
        let r = (fx * 180.0) as i32 + 40 + wave;
        let g = (fy * 160.0) as i32 + 50 - wave;
        let b = ((1.0 - fx) * 120.0) as i32 + 60;
        image::Rgb([r.clamp(0, 255) as u8, g.clamp(0, 255) as u8, b as u8])
    })
}

#[test]
fn generated_images_match_libvips_cli() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        (
            "scene 1600×1000 PNG",
            "scene.png",
            encode_png(&scene(1600, 1000)),
        ),
        (
            "scene 1000×1600 JPEG",
            "scene-portrait.jpg",
            encode_jpeg(&scene(1000, 1600), 92),
        ),
        (
            "quadrants 1203×797 PNG",
            "quadrants.png",
            encode_png(&quadrants(1203, 797)),
        ),
    ];
    for (label, file, bytes) in inputs {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        compare_with_vips(label, &path, 300, 300);
        compare_with_vips(label, &path, 333, 111);
    }
}

#[test]
fn real_exif_orientations_match_the_upright_sample() {
    let dir = exif_dir();
    let read = |n: u32| std::fs::read(dir.join(format!("orientation_{n}.jpg"))).unwrap();
    let spec = "w=40,fm=png";
    let upright = ours(&read(1), spec);
    assert_eq!(
        upright.dimensions(),
        (40, 56),
        "the samples are 50×70 upright"
    );
    // The picture is asymmetric enough that a missed flip or rotation fails the check.
    for (what, wrong) in [
        ("flipped", image::imageops::flip_horizontal(&upright)),
        ("upside down", image::imageops::flip_vertical(&upright)),
        ("rotated 180°", image::imageops::rotate180(&upright)),
    ] {
        let db = psnr(&wrong, &upright);
        eprintln!("fidelity: orientation_1.jpg {what}: PSNR {db:6.2} dB (must fail)");
        assert!(
            db < MIN_PSNR_ORIENTATION,
            "{what}: {db:.2} dB would pass as upright"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    for n in 0..=8 {
        let got = ours(&read(n), spec);
        assert_eq!(
            got.dimensions(),
            upright.dimensions(),
            "orientation_{n}: size"
        );
        let db = psnr(&got, &upright);
        // libvips' own auto-rotating thumbnail of the same file, for reference.
        let input = dir.join(format!("orientation_{n}.jpg"));
        let out = tmp.path().join(format!("{n}.png"));
        tool(
            "vips",
            &[
                "thumbnail",
                input.to_str().unwrap(),
                out.to_str().unwrap(),
                "40",
                "--height",
                "10000000",
            ],
        );
        let reference = decode(&std::fs::read(&out).unwrap());
        let vs_vips = psnr(&got, &reference);
        eprintln!(
            "fidelity: orientation_{n}.jpg vs orientation_1: PSNR {db:6.2} dB; vs vips thumbnail: {vs_vips:6.2} dB"
        );
        assert!(
            db >= MIN_PSNR_ORIENTATION,
            "orientation_{n}: PSNR {db:.2} dB against orientation_1 < {MIN_PSNR_ORIENTATION} dB"
        );
        assert!(
            vs_vips >= MIN_PSNR_VS_VIPS,
            "orientation_{n}: PSNR {vs_vips:.2} dB against vips thumbnail"
        );
    }
}
