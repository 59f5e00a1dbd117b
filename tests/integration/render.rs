//! The render pipeline on generated images and real photos: dimensions, formats (by
//! magic bytes), EXIF orientation (by pixels), CMYK, limits and bad input.

use rendition_core::config::{Limits, RenderSettings};
use rendition_core::render::{render, RenderError, RenderOutput, VariantRequest};
use rendition_core::sniff::SniffError;
use rendition_core::spec::Format;

use crate::harness::*;

fn req(name: &str, spec: &str) -> VariantRequest {
    VariantRequest {
        name: name.into(),
        spec: spec.parse().unwrap(),
    }
}

fn run(bytes: &[u8], specs: &[&str]) -> Result<RenderOutput, RenderError> {
    let reqs: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| req(&format!("v{i}"), s))
        .collect();
    render(bytes, &reqs, &Limits::default(), &RenderSettings::default())
}

fn magic_format(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Format::Webp)
    } else if bytes.len() > 12 && &bytes[4..12] == b"ftypavif" {
        Some(Format::Avif)
    } else if bytes.starts_with(b"GIF8") {
        Some(Format::Gif)
    } else {
        None
    }
}

#[test]
fn every_fit_gives_documented_dimensions() {
    let src = encode_jpeg(&quadrants(400, 300), 90);
    let cases = [
        ("w=100", (100, 75)),
        ("h=60", (80, 60)),
        ("w=100,h=100,fit=cover", (100, 100)),
        ("w=100,h=100,fit=contain", (100, 100)),
        ("w=100,h=100,fit=fill", (100, 100)),
        ("w=100,h=100", (100, 75)),
        ("w=100,h=100,fit=outside", (133, 100)),
        ("w=800", (400, 300)),
        ("w=800,enlarge=true", (800, 600)),
    ];
    let specs: Vec<&str> = cases.iter().map(|(s, _)| *s).collect();
    let out = run(&src, &specs).unwrap();
    assert_eq!(out.source.size.width, 400);
    for ((spec, (w, h)), v) in cases.iter().zip(&out.variants) {
        assert_eq!((v.size.width, v.size.height), (*w, *h), "{spec}");
        let img = decode(&v.bytes);
        assert_eq!(
            (img.width(), img.height()),
            (*w, *h),
            "{spec}: encoded size"
        );
    }
}

#[test]
fn formats_are_what_the_magic_bytes_say() {
    let src = encode_png(&quadrants(200, 150));
    for fm in ["jpeg", "png", "webp", "avif", "gif"] {
        let out = run(&src, &[&format!("w=64,fm={fm}")]).unwrap();
        let v = &out.variants[0];
        assert_eq!(magic_format(&v.bytes), Some(v.format), "fm={fm}");
        assert_eq!(v.format.as_str(), fm);
    }
    // fm=original keeps the source's format.
    let out = run(&src, &["w=64"]).unwrap();
    assert_eq!(magic_format(&out.variants[0].bytes), Some(Format::Png));
}

#[test]
fn cover_crop_follows_gravity() {
    // 400×100: red | green halves. A 100×100 cover crop from the west is red, east green.
    let src = encode_png(&quadrants(400, 100));
    let out = run(
        &src,
        &[
            "w=100,h=100,fit=cover,g=west,fm=png",
            "w=100,h=100,fit=cover,g=east,fm=png",
        ],
    )
    .unwrap();
    let west = decode(&out.variants[0].bytes);
    let east = decode(&out.variants[1].bytes);
    assert!(
        close(sample(&west, 0.5, 0.25), RED, 40),
        "{:?}",
        sample(&west, 0.5, 0.25)
    );
    assert!(
        close(sample(&east, 0.5, 0.25), GREEN, 40),
        "{:?}",
        sample(&east, 0.5, 0.25)
    );
}

#[test]
fn contain_letterboxes_with_background() {
    let src = encode_jpeg(&quadrants(400, 200), 90);
    let out = run(&src, &["w=100,h=100,fit=contain,bg=0000ff,fm=png"]).unwrap();
    let img = decode(&out.variants[0].bytes);
    assert_eq!((img.width(), img.height()), (100, 100));
    assert!(
        close(sample(&img, 0.5, 0.05), [0, 0, 255], 10),
        "top band is the background"
    );
    assert!(
        close(sample(&img, 0.25, 0.4), RED, 40),
        "image in the middle"
    );
}

#[test]
fn exif_orientations_1_to_8_are_applied_by_pixels() {
    let stored = quadrants(96, 64);
    let jpeg = encode_jpeg(&stored, 95);
    for orientation in 1..=8u16 {
        let tagged = with_exif_orientation(&jpeg, orientation);
        let expected = apply_orientation(&stored, orientation);
        let out = run(&tagged, &["w=48,fm=png"]).unwrap();
        let v = &out.variants[0];
        let img = decode(&v.bytes);
        let (ew, eh) = (48, 48 * expected.height() / expected.width());
        assert_eq!(
            (img.width(), img.height()),
            (ew, eh),
            "orientation {orientation}: size"
        );
        for (fx, fy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            let got = sample(&img, fx, fy);
            let want = sample(&expected, fx, fy);
            assert!(
                close(got, want, 45),
                "orientation {orientation} at ({fx},{fy}): got {got:?}, want {want:?}"
            );
        }
        // Metadata is stripped: a re-render must not rotate again.
        let again = run(&v.bytes, &["w=48,fm=png"]).unwrap();
        assert_eq!(
            again.variants[0].size, v.size,
            "orientation {orientation}: tag removed"
        );
    }
}

fn vips_cli(args: &[&str]) {
    let status = std::process::Command::new("vips")
        .args(args)
        .status()
        .expect("vips CLI (libvips-tools)");
    assert!(status.success(), "vips {args:?}");
}

#[test]
fn cmyk_jpegs_come_out_srgb() {
    let dir = tempfile::tempdir().unwrap();
    let rgb = dir.path().join("rgb.jpg");
    std::fs::write(&rgb, encode_jpeg(&quadrants(200, 200), 95)).unwrap();
    let with_profile = dir.path().join("cmyk-profile.jpg");
    let without = dir.path().join("cmyk-bare.jpg");
    vips_cli(&[
        "icc_export",
        rgb.to_str().unwrap(),
        with_profile.to_str().unwrap(),
        "--output-profile",
        "cmyk",
    ]);
    vips_cli(&[
        "jpegsave",
        with_profile.to_str().unwrap(),
        without.to_str().unwrap(),
        "--strip",
    ]);
    for path in [&with_profile, &without] {
        let bytes = std::fs::read(path).unwrap();
        let out = run(&bytes, &["w=100,fm=png"]).unwrap();
        let img = decode(&out.variants[0].bytes);
        // Without conversion a CMYK red would decode as cyan-ish garbage.
        let got = sample(&img, 0.25, 0.25);
        assert!(close(got, RED, 50), "{}: top-left {got:?}", path.display());
        let got = sample(&img, 0.75, 0.75);
        assert!(
            close(got, YELLOW, 50),
            "{}: bottom-right {got:?}",
            path.display()
        );
    }
}

#[test]
fn alpha_is_flattened_for_jpeg_and_kept_for_png() {
    let rgba = image::RgbaImage::from_fn(64, 64, |x, _| {
        if x < 32 {
            image::Rgba([255, 0, 0, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    });
    let mut src = Vec::new();
    image::codecs::png::PngEncoder::new(&mut src)
        .write_image(rgba.as_raw(), 64, 64, image::ExtendedColorType::Rgba8)
        .unwrap();
    use image::ImageEncoder;
    let out = run(
        &src,
        &["w=32,fm=jpeg", "w=32,fm=png,bg=00ff00", "w=32,fm=png"],
    )
    .unwrap();
    let jpeg = decode(&out.variants[0].bytes);
    assert!(
        close(sample(&jpeg, 0.9, 0.5), [255, 255, 255], 10),
        "transparent → white in JPEG"
    );
    let png = image::load_from_memory(&out.variants[2].bytes).unwrap();
    assert!(png.color().has_alpha(), "PNG keeps alpha");
}

#[test]
fn real_photos_over_4000px() {
    let photos = photos(".jpg", 4000);
    assert!(
        photos.len() >= 2,
        "need at least two real photos ≥ 4000 px, have {photos:?}"
    );
    for (path, w, h) in photos.iter().take(3) {
        let bytes = std::fs::read(path).unwrap();
        let specs = [
            "w=2048,fm=webp,q=75",
            "w=640,fm=jpeg",
            "w=160,h=160,fit=cover,fm=webp",
            "w=320,fm=avif",
        ];
        let out = run(&bytes, &specs).unwrap();
        assert_eq!((out.source.size.width, out.source.size.height), (*w, *h));
        let expect_h = |tw: u32| ((f64::from(*h) * f64::from(tw) / f64::from(*w)).round()) as u32;
        let want = [
            (2048, expect_h(2048)),
            (640, expect_h(640)),
            (160, 160),
            (320, expect_h(320)),
        ];
        for ((v, spec), (ww, wh)) in out.variants.iter().zip(specs).zip(want) {
            assert_eq!(
                (v.size.width, v.size.height),
                (ww, wh),
                "{}: {spec}",
                path.display()
            );
            assert_eq!(
                magic_format(&v.bytes),
                Some(v.format),
                "{}: {spec}",
                path.display()
            );
            if v.format != Format::Avif {
                let img = decode(&v.bytes);
                assert_eq!((img.width(), img.height()), (ww, wh));
            }
        }
    }
}

#[test]
fn a_real_png_renders() {
    let pngs = photos(".png", 5000);
    let (path, w, h) = pngs.first().expect("a 5000 px PNG");
    let out = run(&std::fs::read(path).unwrap(), &["w=400,fm=webp"]).unwrap();
    assert_eq!(out.variants[0].size.width, 400);
    assert_eq!(
        out.variants[0].size.height,
        (f64::from(*h) * 400.0 / f64::from(*w)).round() as u32
    );
}

#[test]
fn bad_input_gets_typed_errors() {
    let real = std::fs::read(&photos(".jpg", 4000)[0].0).unwrap();
    let truncated = &real[..real.len() / 2];
    type Case = (&'static str, Vec<u8>, fn(&RenderError) -> bool);
    let cases: Vec<Case> = vec![
        ("zero bytes", vec![], |e| {
            matches!(e, RenderError::Unsupported(SniffError::Empty))
        }),
        ("text named .jpg", b"this is not an image\n".to_vec(), |e| {
            matches!(e, RenderError::Unsupported(SniffError::Unsupported(_)))
        }),
        (
            "svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            |e| matches!(e, RenderError::Unsupported(SniffError::Unsupported("SVG"))),
        ),
        (
            "png declaring 30000x30000",
            png_bomb_header(30_000, 30_000),
            |e| {
                matches!(
                    e,
                    RenderError::TooManyPixels {
                        width: 30_000,
                        height: 30_000,
                        ..
                    }
                )
            },
        ),
        ("truncated jpeg", truncated.to_vec(), |e| {
            matches!(e, RenderError::Decode(_))
        }),
        (
            "jpeg magic then garbage",
            [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0x55; 200]].concat(),
            |e| matches!(e, RenderError::Header(_) | RenderError::Decode(_)),
        ),
    ];
    for (name, bytes, check) in cases {
        let err = run(&bytes, &["w=100,fm=webp"]).expect_err(name);
        assert!(check(&err), "{name}: unexpected {err:?}");
    }
}

#[test]
fn limits_are_enforced_before_decoding() {
    let src = encode_jpeg(&quadrants(400, 300), 90);
    let tight = Limits {
        max_input_bytes: 100,
        ..Limits::default()
    };
    let err = render(
        &src,
        &[req("a", "w=10")],
        &tight,
        &RenderSettings::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::InputTooLarge { .. }), "{err:?}");
    let tight = Limits {
        max_input_pixels: 400 * 300 - 1,
        ..Limits::default()
    };
    let err = render(
        &src,
        &[req("a", "w=10")],
        &tight,
        &RenderSettings::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::TooManyPixels { .. }), "{err:?}");
    let tight = Limits {
        max_output_dimension: 500,
        ..Limits::default()
    };
    let err = render(
        &src,
        &[req("a", "w=800,enlarge=true")],
        &tight,
        &RenderSettings::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::OutputTooLarge { .. }), "{err:?}");
}

#[test]
fn cascade_matches_independent_renders() {
    // Rendering five sizes from one decode must give the same dimensions as rendering
    // each alone, and visually the same pixels.
    let src = encode_jpeg(&quadrants(1200, 800), 92);
    let specs = [
        "w=1024,fm=png",
        "w=640,fm=png",
        "w=320,fm=png",
        "w=160,fm=png",
        "w=100,h=100,fit=cover,fm=png",
    ];
    let together = run(&src, &specs).unwrap();
    for (spec, v) in specs.iter().zip(&together.variants) {
        let alone = run(&src, &[spec]).unwrap();
        assert_eq!(alone.variants[0].size, v.size, "{spec}");
        let (a, b) = (decode(&alone.variants[0].bytes), decode(&v.bytes));
        for (fx, fy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            assert!(
                close(sample(&a, fx, fy), sample(&b, fx, fy), 8),
                "{spec} at ({fx},{fy})"
            );
        }
    }
}
