//! The render pipeline on generated images and real photos: dimensions, formats (by
//! magic bytes), EXIF orientation (by pixels), CMYK, limits and bad input; gravity
//! (focal point, smart crop), dpr, encoder options (progressive JPEG, chroma
//! subsampling, palette PNG, lossless WebP), colour (16-bit, grey, ICC) and animation.

use rendition_image::render::{render, RenderError, RenderOutput, Unsupported, VariantRequest};
use rendition_image::sniff::SniffError;
use rendition_image::spec::Format;
use rendition_pipeline::config::{Limits, RenderSettings};

use image::ImageEncoder;

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
    let out = render(bytes, &reqs, &Limits::default(), &RenderSettings::default())?;
    // These tests want every variant: the first one skipped is the answer.
    match out.skipped.first() {
        Some(skipped) => Err(skipped.error.clone()),
        None => Ok(out),
    }
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
            matches!(
                e,
                RenderError::Unsupported(Unsupported::Format(SniffError::Empty))
            )
        }),
        ("text named .jpg", b"this is not an image\n".to_vec(), |e| {
            matches!(
                e,
                RenderError::Unsupported(Unsupported::Format(SniffError::Unsupported(_)))
            )
        }),
        (
            "svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            |e| {
                matches!(
                    e,
                    RenderError::Unsupported(Unsupported::Format(SniffError::Unsupported(name))) if name == "SVG"
                )
            },
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
    .and_then(|out| out.into_only())
    .unwrap_err();
    assert!(matches!(err, RenderError::OutputTooLarge { .. }), "{err:?}");
    // dpr multiplies the box before the output limit applies.
    let err = render(
        &src,
        &[req("a", "w=300,dpr=2,enlarge=true")],
        &tight,
        &RenderSettings::default(),
    )
    .and_then(|out| out.into_only())
    .unwrap_err();
    assert!(
        matches!(err, RenderError::OutputTooLarge { width: 600, .. }),
        "{err:?}"
    );
    // Frames: from the header, whatever the output format.
    let gif = animated_gif(&three_frames(60, 40), 100);
    let tight = Limits {
        max_frames: 2,
        ..Limits::default()
    };
    for spec in ["w=10,fm=gif", "w=10,fm=jpeg"] {
        let err = render(&gif, &[req("a", spec)], &tight, &RenderSettings::default()).unwrap_err();
        assert_eq!(
            err,
            RenderError::Unsupported(Unsupported::TooManyFrames {
                frames: 3,
                limit: 2
            }),
            "{spec}"
        );
    }
    let ok = Limits {
        max_frames: 3,
        ..Limits::default()
    };
    assert!(render(&gif, &[req("a", "w=10")], &ok, &RenderSettings::default()).is_ok());
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

// ---- gravity: focal point and smart crop ---------------------------------------------

/// Vertical stripes of equal width, one per colour.
fn stripes(width: u32, height: u32, colours: &[[u8; 3]]) -> image::RgbImage {
    let n = colours.len() as u32;
    image::RgbImage::from_fn(width, height, |x, _| {
        image::Rgb(colours[(x * n / width) as usize])
    })
}

#[test]
fn focal_point_centres_the_cover_window() {
    // 800×200 in four 200 px stripes; a 100×100 cover scales to 400×100 (stripes of 100),
    // so a focal point in the middle of a stripe gives exactly that stripe.
    let src = encode_png(&stripes(800, 200, &[RED, GREEN, BLUE, YELLOW]));
    let cases = [
        ("fx=0.125,fy=0.5", RED),
        ("fx=0.375,fy=0.5", GREEN),
        ("fx=0.625,fy=0", BLUE),
        ("fx=0.875,fy=1", YELLOW),
        ("fx=1,fy=0.5", YELLOW),
        ("fx=0,fy=0.5", RED),
    ];
    let specs: Vec<String> = cases
        .iter()
        .map(|(f, _)| format!("w=100,h=100,fit=cover,fm=png,{f}"))
        .collect();
    let refs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let out = run(&src, &refs).unwrap();
    for ((spec, want), v) in specs.iter().zip(cases.map(|c| c.1)).zip(&out.variants) {
        let img = decode(&v.bytes);
        assert_eq!((img.width(), img.height()), (100, 100), "{spec}");
        for fx in [0.05, 0.5, 0.95] {
            let got = sample(&img, fx, 0.5);
            assert!(
                close(got, want, 12),
                "{spec} at x={fx}: {got:?}, want {want:?}"
            );
        }
    }
}

/// Flat grey with one small, saturated, busy patch near the right edge.
fn grey_with_patch(width: u32, height: u32, patch: (u32, u32, u32)) -> image::RgbImage {
    let (px, py, size) = patch;
    image::RgbImage::from_fn(width, height, |x, y| {
        let inside = (px..px + size).contains(&x) && (py..py + size).contains(&y);
        if inside {
            if ((x - px) / 8 + (y - py) / 8) % 2 == 0 {
                image::Rgb([240, 20, 20])
            } else {
                image::Rgb([250, 230, 10])
            }
        } else {
            image::Rgb([128, 128, 128])
        }
    })
}

fn saturated_pixels(img: &image::RgbImage) -> usize {
    img.pixels()
        .filter(|p| {
            let (max, min) = (p.0.iter().max().unwrap(), p.0.iter().min().unwrap());
            max - min > 100
        })
        .count()
}

#[test]
fn smart_crop_keeps_the_interesting_part() {
    let src = encode_png(&grey_with_patch(600, 200, (470, 50, 100)));
    let out = run(
        &src,
        &[
            "w=200,h=200,fit=cover,fm=png",
            "w=200,h=200,fit=cover,g=attention,fm=png",
            "w=200,h=200,fit=cover,g=entropy,fm=png",
        ],
    )
    .unwrap();
    let centre = decode(&out.variants[0].bytes);
    assert_eq!(
        saturated_pixels(&centre),
        0,
        "the centre window is all grey"
    );
    for v in &out.variants[1..] {
        let img = decode(&v.bytes);
        assert_eq!((img.width(), img.height()), (200, 200), "{}", v.spec);
        let n = saturated_pixels(&img);
        assert!(
            n >= 100 * 100 * 9 / 10,
            "{}: the whole patch should be in the window, saw {n} px of it",
            v.spec
        );
    }
}

// ---- dpr -------------------------------------------------------------------------------

#[test]
fn dpr_multiplies_the_box() {
    let src = encode_jpeg(&quadrants(800, 600), 90);
    let cases = [
        ("w=100,dpr=2", (200, 150)),
        ("w=100,dpr=1.5", (150, 113)),
        ("h=50,dpr=3", (200, 150)),
        ("w=100,h=100,fit=cover,dpr=2", (200, 200)),
        ("w=100,h=100,fit=contain,dpr=4,fm=png", (400, 400)),
        // Never an enlargement unless asked: the source is only 800 px wide.
        ("w=500,dpr=2", (800, 600)),
        ("w=500,dpr=2,enlarge=true", (1000, 750)),
    ];
    let specs: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let out = run(&src, &specs).unwrap();
    for ((spec, (w, h)), v) in cases.iter().zip(&out.variants) {
        assert_eq!((v.size.width, v.size.height), (*w, *h), "{spec}");
        let img = decode(&v.bytes);
        assert_eq!((img.width(), img.height()), (*w, *h), "{spec}: encoded");
    }
}

// ---- encoders --------------------------------------------------------------------------

/// The SOF marker of a JPEG and each component's sampling byte (0x22 = 2×2, 0x11 = 1×1).
fn jpeg_sof(bytes: &[u8]) -> (u8, Vec<u8>) {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        assert_eq!(bytes[i], 0xFF, "marker at {i}");
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let seg = &bytes[i + 4..i + 2 + len];
            let n = usize::from(seg[5]);
            return (marker, (0..n).map(|c| seg[6 + 3 * c + 1]).collect());
        }
        i += 2 + len;
    }
    panic!("no SOF marker");
}

#[test]
fn progressive_jpeg_and_chroma_subsampling() {
    let src = encode_png(&quadrants(200, 150));
    let out = run(
        &src,
        &[
            "w=100,fm=jpeg",
            "w=100,fm=jpeg,pj=true",
            "w=100,fm=jpeg,q=90",
            "w=100,fm=jpeg,q=95,pj=true",
        ],
    )
    .unwrap();
    let sofs: Vec<_> = out.variants.iter().map(|v| jpeg_sof(&v.bytes)).collect();
    assert_eq!(sofs[0], (0xC0, vec![0x22, 0x11, 0x11]), "baseline, 4:2:0");
    assert_eq!(
        sofs[1],
        (0xC2, vec![0x22, 0x11, 0x11]),
        "progressive, 4:2:0"
    );
    assert_eq!(sofs[2], (0xC0, vec![0x11, 0x11, 0x11]), "q ≥ 90: 4:4:4");
    assert_eq!(sofs[3], (0xC2, vec![0x11, 0x11, 0x11]), "progressive 4:4:4");
    for v in &out.variants {
        let img = decode(&v.bytes);
        assert!(close(sample(&img, 0.25, 0.25), RED, 30), "{}", v.spec);
        assert!(close(sample(&img, 0.75, 0.75), YELLOW, 30), "{}", v.spec);
    }
}

/// PNG IHDR: (bit depth, colour type).
fn png_depth_and_colour(bytes: &[u8]) -> (u8, u8) {
    assert_eq!(&bytes[12..16], b"IHDR");
    (bytes[24], bytes[25])
}

fn png_has_chunk(bytes: &[u8], kind: &[u8; 4]) -> bool {
    let mut i = 8;
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        if &bytes[i + 4..i + 8] == kind {
            return true;
        }
        i += 12 + len;
    }
    false
}

#[test]
fn palette_png() {
    let src = encode_jpeg(&quadrants(200, 150), 95);
    let out = run(
        &src,
        &[
            "w=100,fm=png",
            "w=100,fm=png,palette=true",
            "w=100,fm=png,q=20,palette=true",
        ],
    )
    .unwrap();
    assert_eq!(png_depth_and_colour(&out.variants[0].bytes), (8, 2), "RGB");
    for v in &out.variants[1..] {
        assert_eq!(
            png_depth_and_colour(&v.bytes),
            (8, 3),
            "{}: 8-bit palette",
            v.spec
        );
        assert!(png_has_chunk(&v.bytes, b"PLTE"), "{}", v.spec);
        let img = decode(&v.bytes);
        assert_eq!((img.width(), img.height()), (100, 75));
        for (fx, fy, want) in [(0.25, 0.25, RED), (0.75, 0.25, GREEN), (0.25, 0.75, BLUE)] {
            let got = sample(&img, fx, fy);
            assert!(close(got, want, 30), "{} at ({fx},{fy}): {got:?}", v.spec);
        }
    }
    assert!(
        out.variants[1].bytes.len() < out.variants[0].bytes.len(),
        "a palette is smaller"
    );
}

#[test]
fn lossless_webp_is_exact() {
    let img = stripes(
        64,
        48,
        &[RED, GREEN, BLUE, YELLOW, [7, 8, 9], [250, 251, 252]],
    );
    let src = encode_png(&img);
    let out = run(&src, &["fm=webp,lossless=true", "fm=webp"]).unwrap();
    let lossless = &out.variants[0].bytes;
    assert_eq!(&lossless[12..16], b"VP8L", "lossless bitstream");
    assert_eq!(decode(lossless), img, "every pixel kept");
    assert_eq!(&out.variants[1].bytes[12..16], b"VP8 ", "lossy by default");
}

#[test]
fn default_quality_per_format_is_unchanged() {
    let src = encode_png(&quadrants(120, 90));
    let out = run(
        &src,
        &[
            "w=64,fm=jpeg",
            "w=64,fm=jpeg,q=80",
            "w=64,fm=webp",
            "w=64,fm=webp,q=80",
            "w=64,fm=avif",
            "w=64,fm=avif,q=50",
        ],
    )
    .unwrap();
    for pair in out.variants.chunks(2) {
        assert_eq!(
            pair[0].bytes, pair[1].bytes,
            "{} = {}",
            pair[0].spec, pair[1].spec
        );
    }
}

// ---- colour and metadata ---------------------------------------------------------------

fn encode_dynamic(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

#[test]
fn sixteen_bit_png_becomes_correct_8_bit() {
    let rgb8 = quadrants(200, 150);
    let wide = |c: u8| u16::from(c) * 257;
    let rgb16 = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(200, 150, |x, y| {
        let p = rgb8.get_pixel(x, y).0;
        image::Rgb([wide(p[0]), wide(p[1]), wide(p[2])])
    });
    let rgba16 = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_fn(200, 150, |x, y| {
        let p = rgb8.get_pixel(x, y).0;
        let alpha = if x < 100 { 65535 } else { 0 };
        image::Rgba([wide(p[0]), wide(p[1]), wide(p[2]), alpha])
    });
    let png = image::ImageFormat::Png;
    let sources = [
        (
            "rgb16",
            encode_dynamic(image::DynamicImage::ImageRgb16(rgb16), png),
        ),
        (
            "rgba16",
            encode_dynamic(image::DynamicImage::ImageRgba16(rgba16), png),
        ),
    ];
    for (name, src) in &sources {
        assert_eq!(png_depth_and_colour(src).0, 16, "{name}: source is 16-bit");
        let out = run(src, &["w=100,fm=png", "w=100,fm=jpeg", "w=100,fm=webp"]).unwrap();
        for v in &out.variants {
            if v.format == Format::Png {
                assert_eq!(png_depth_and_colour(&v.bytes).0, 8, "{name} {}", v.spec);
            }
            let img = decode(&v.bytes);
            assert!(
                close(sample(&img, 0.25, 0.25), RED, 30),
                "{name} {}",
                v.spec
            );
            assert!(
                close(sample(&img, 0.25, 0.75), BLUE, 30),
                "{name} {}",
                v.spec
            );
            let right = sample(&img, 0.75, 0.75);
            if *name == "rgb16" {
                assert!(close(right, YELLOW, 30), "{name} {}: {right:?}", v.spec);
            } else if v.format == Format::Jpeg {
                assert!(
                    close(right, [255, 255, 255], 10),
                    "{name} {}: flattened",
                    v.spec
                );
            }
        }
    }
}

#[test]
fn greyscale_stays_correct() {
    let grey = image::GrayImage::from_fn(200, 100, |x, _| {
        image::Luma([if x < 100 { 40 } else { 200 }])
    });
    let src = encode_dynamic(
        image::DynamicImage::ImageLuma8(grey),
        image::ImageFormat::Png,
    );
    let jpeg_src = {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
            .write_image(
                image::GrayImage::from_fn(200, 100, |x, _| {
                    image::Luma([if x < 100 { 40 } else { 200 }])
                })
                .as_raw(),
                200,
                100,
                image::ExtendedColorType::L8,
            )
            .unwrap();
        out
    };
    for src in [&src, &jpeg_src] {
        let out = run(
            src,
            &[
                "w=100,fm=png",
                "w=100,fm=jpeg",
                "w=100,fm=webp",
                "w=50,h=50,fit=cover,g=east,fm=png",
            ],
        )
        .unwrap();
        for v in &out.variants[..3] {
            let img = decode(&v.bytes);
            assert_eq!((img.width(), img.height()), (100, 50), "{}", v.spec);
            assert!(
                close(sample(&img, 0.2, 0.5), [40, 40, 40], 6),
                "{}: {:?}",
                v.spec,
                sample(&img, 0.2, 0.5)
            );
            assert!(
                close(sample(&img, 0.8, 0.5), [200, 200, 200], 6),
                "{}",
                v.spec
            );
        }
        assert_eq!(
            png_depth_and_colour(&out.variants[0].bytes),
            (8, 0),
            "grey PNG stays grey"
        );
        let east = decode(&out.variants[3].bytes);
        assert!(close(sample(&east, 0.5, 0.5), [200, 200, 200], 6));
    }
}

/// ΔE*ab (CIE 1976) between two sRGB colours.
fn delta_e(a: [u8; 3], b: [u8; 3]) -> f64 {
    rendition_image::placeholder::delta_e(a.map(f64::from), b.map(f64::from))
}

#[test]
fn display_p3_source_comes_out_srgb_without_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let srgb = dir.path().join("srgb.png");
    let p3 = dir.path().join("p3.png");
    let card = quadrants(200, 200);
    std::fs::write(&srgb, encode_png(&card)).unwrap();
    // libvips' built-in Display P3 profile: converts the pixels and embeds the profile.
    vips_cli(&[
        "icc_transform",
        srgb.to_str().unwrap(),
        p3.to_str().unwrap(),
        "p3",
    ]);
    let p3_bytes = std::fs::read(&p3).unwrap();
    assert!(
        png_has_chunk(&p3_bytes, b"iCCP"),
        "the P3 source carries its profile"
    );
    let quads = [
        (0.25, 0.25, RED),
        (0.75, 0.25, GREEN),
        (0.25, 0.75, BLUE),
        (0.75, 0.75, YELLOW),
    ];
    // Read without colour management, the P3 numbers are visibly off: the test has teeth.
    let raw = decode(&p3_bytes);
    let off = quads
        .iter()
        .map(|&(fx, fy, want)| delta_e(sample(&raw, fx, fy), want))
        .fold(0.0, f64::max);
    assert!(off > 5.0, "P3 and sRGB numbers differ (max ΔE {off:.1})");
    let out = run(
        &p3_bytes,
        &["w=100,fm=png", "w=100,fm=jpeg,q=95", "w=100,fm=webp,q=95"],
    )
    .unwrap();
    for v in &out.variants {
        let img = decode(&v.bytes);
        for &(fx, fy, want) in &quads {
            let got = sample(&img, fx, fy);
            let de = delta_e(got, want);
            eprintln!(
                "p3: {} at ({fx},{fy}): ΔE {de:.2} (unmanaged {off:.1})",
                v.spec
            );
            assert!(
                de < 3.0,
                "{} at ({fx},{fy}): {got:?} vs {want:?}, ΔE {de:.2}",
                v.spec
            );
        }
    }
    assert!(
        !png_has_chunk(&out.variants[0].bytes, b"iCCP"),
        "no profile in the PNG"
    );
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(&out.variants[1].bytes, b"ICC_PROFILE"),
        "no profile in the JPEG"
    );
    assert!(
        !contains(&out.variants[2].bytes, b"ICCP"),
        "no profile in the WebP"
    );
}

#[test]
fn exif_is_not_carried_to_the_output() {
    let tagged = with_exif_orientation(&encode_jpeg(&quadrants(96, 64), 95), 6);
    let out = run(&tagged, &["w=48,fm=jpeg", "w=48,fm=webp"]).unwrap();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for v in &out.variants {
        assert!(!contains(&v.bytes, b"Exif"), "{}: EXIF stripped", v.spec);
        assert_eq!(
            (v.size.width, v.size.height),
            (48, 72),
            "{}: rotated",
            v.spec
        );
    }
}

// ---- animation -------------------------------------------------------------------------

/// Three solid frames: red, green, blue.
fn three_frames(width: u32, height: u32) -> Vec<image::RgbaImage> {
    [RED, GREEN, BLUE]
        .iter()
        .map(|c| image::RgbaImage::from_pixel(width, height, image::Rgba([c[0], c[1], c[2], 255])))
        .collect()
}

fn animated_gif(frames: &[image::RgbaImage], delay_ms: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .unwrap();
        for f in frames {
            let delay = image::Delay::from_numer_denom_ms(delay_ms, 1);
            enc.encode_frame(image::Frame::from_parts(f.clone(), 0, 0, delay))
                .unwrap();
        }
    }
    out
}

/// Frames of an animated GIF or WebP, composited, with their delays in ms.
fn frames_of(bytes: &[u8]) -> Vec<(image::RgbImage, u32)> {
    use image::AnimationDecoder;
    let cursor = std::io::Cursor::new(bytes);
    let frames = match magic_format(bytes) {
        Some(Format::Gif) => image::codecs::gif::GifDecoder::new(cursor)
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap(),
        Some(Format::Webp) => {
            let dec = image::codecs::webp::WebPDecoder::new(cursor).unwrap();
            if !dec.has_animation() {
                return vec![(decode(bytes), 0)];
            }
            dec.into_frames().collect_frames().unwrap()
        }
        other => panic!("not an animation format: {other:?}"),
    };
    frames
        .into_iter()
        .map(|f| {
            let (n, d) = f.delay().numer_denom_ms();
            (
                image::DynamicImage::ImageRgba8(f.into_buffer()).to_rgb8(),
                n / d,
            )
        })
        .collect()
}

#[test]
fn animated_outputs_keep_every_frame() {
    let gif = animated_gif(&three_frames(60, 40), 120);
    let out = run(
        &gif,
        &[
            "w=30,fm=gif",
            "w=30,fm=webp",
            "w=30",
            "w=12,h=8,fit=fill,fm=gif",
        ],
    )
    .unwrap();
    assert_eq!(out.source.frames, 3);
    for v in &out.variants {
        assert_eq!(v.frames, 3, "{}", v.spec);
        assert!(matches!(v.format, Format::Gif | Format::Webp), "{}", v.spec);
        let frames = frames_of(&v.bytes);
        assert_eq!(frames.len(), 3, "{}: frames in the file", v.spec);
        for ((img, delay), want) in frames.iter().zip([RED, GREEN, BLUE]) {
            assert_eq!(
                (img.width(), img.height()),
                (v.size.width, v.size.height),
                "{}",
                v.spec
            );
            assert_eq!(*delay, 120, "{}: delay kept", v.spec);
            for (fx, fy) in [(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)] {
                let got = sample(img, fx, fy);
                assert!(close(got, want, 30), "{}: {got:?} vs {want:?}", v.spec);
            }
        }
    }
}

#[test]
fn still_outputs_of_an_animation_take_the_first_frame() {
    let gif = animated_gif(&three_frames(60, 40), 100);
    let out = run(
        &gif,
        &["w=30,fm=jpeg", "w=30,fm=png", "w=30,fm=avif", "w=45,fm=gif"],
    )
    .unwrap();
    for v in &out.variants[..3] {
        assert_eq!(v.frames, 1, "{}", v.spec);
        assert_eq!((v.size.width, v.size.height), (30, 20), "{}", v.spec);
        if v.format != Format::Avif {
            let img = decode(&v.bytes);
            assert_eq!((img.width(), img.height()), (30, 20));
            assert!(close(sample(&img, 0.5, 0.5), RED, 30), "{}", v.spec);
        }
    }
    // Mixed in one render with an animated variant (decoded once, as a strip).
    assert_eq!(out.variants[3].frames, 3);
    // A still taken from that strip is one frame even when its canvas or its enlarged
    // size is a multiple of the frame height.
    let out = run(
        &gif,
        &[
            "w=30,fm=gif",
            "w=30,h=60,fit=contain,fm=avif",
            "w=30,h=60,fit=contain,fm=png",
            "w=120,enlarge=true,fm=jpeg",
            "w=120,enlarge=true,fm=avif",
        ],
    )
    .unwrap();
    let frames: Vec<u32> = out.variants.iter().map(|v| v.frames).collect();
    assert_eq!(frames, [3, 1, 1, 1, 1]);
    let png = decode(&out.variants[2].bytes);
    assert_eq!((png.width(), png.height()), (30, 60));
    assert!(close(sample(&png, 0.5, 0.5), RED, 30));
    let jpeg = decode(&out.variants[3].bytes);
    assert_eq!((jpeg.width(), jpeg.height()), (120, 80));
    assert!(close(sample(&jpeg, 0.5, 0.9), RED, 30));
}

#[test]
fn cover_and_contain_apply_to_every_frame() {
    // Each frame: left half one colour, right half another, different per frame.
    let halves = [(RED, GREEN), (BLUE, YELLOW), (GREEN, RED)];
    let frames: Vec<image::RgbaImage> = halves
        .iter()
        .map(|(l, r)| {
            image::RgbaImage::from_fn(60, 20, |x, _| {
                let c = if x < 30 { l } else { r };
                image::Rgba([c[0], c[1], c[2], 255])
            })
        })
        .collect();
    let gif = animated_gif(&frames, 100);
    let out = run(
        &gif,
        &[
            "w=20,h=20,fit=cover,g=west,fm=gif",
            "w=20,h=20,fit=cover,g=east,fm=webp",
            "w=20,h=20,fit=cover,fx=0.9,fy=0.5,fm=gif",
            "w=60,h=60,fit=contain,bg=000000,fm=gif",
            "w=60,h=60,fit=contain,fm=webp",
        ],
    )
    .unwrap();
    type Halves = ([u8; 3], [u8; 3]);
    let check = |i: usize, pick: &dyn Fn(&Halves) -> [u8; 3], fx: f64, fy: f64| {
        let v = &out.variants[i];
        let got = frames_of(&v.bytes);
        assert_eq!(got.len(), 3, "{}", v.spec);
        for ((img, _), h) in got.iter().zip(&halves) {
            assert_eq!((img.width(), img.height()), (v.size.width, v.size.height));
            let want = pick(h);
            let seen = sample(img, fx, fy);
            assert!(
                close(seen, want, 30),
                "{} at ({fx},{fy}): {seen:?} vs {want:?}",
                v.spec
            );
        }
    };
    check(0, &|h| h.0, 0.5, 0.5);
    check(1, &|h| h.1, 0.5, 0.5);
    check(2, &|h| h.1, 0.5, 0.5);
    check(3, &|h| h.0, 0.25, 0.5);
    check(3, &|h| h.1, 0.75, 0.5);
    check(3, &|_| [0, 0, 0], 0.5, 0.1);
    check(4, &|h| h.1, 0.75, 0.5);
}

#[test]
fn smart_crop_of_an_animation_is_refused_not_wrong() {
    let gif = animated_gif(&three_frames(60, 40), 100);
    let err = run(&gif, &["w=20,h=20,fit=cover,g=attention,fm=gif"]).unwrap_err();
    assert!(
        matches!(&err, RenderError::Unsupported(Unsupported::Variant { variant, .. }) if variant == "v0"),
        "{err:?}"
    );
    // The same crop of a still output is fine.
    let out = run(&gif, &["w=20,h=20,fit=cover,g=attention,fm=png"]).unwrap();
    assert_eq!(out.variants[0].frames, 1);
}

#[test]
fn animated_webp_source_keeps_its_frames() {
    let gif = animated_gif(&three_frames(60, 40), 80);
    let webp = run(&gif, &["fm=webp,lossless=true"])
        .unwrap()
        .variants
        .remove(0);
    assert_eq!(webp.frames, 3);
    let out = run(&webp.bytes, &["w=30", "w=30,fm=gif", "w=30,fm=jpeg"]).unwrap();
    assert_eq!(out.source.frames, 3);
    let frames: Vec<u32> = out.variants.iter().map(|v| v.frames).collect();
    assert_eq!(frames, [3, 3, 1]);
    for v in &out.variants[..2] {
        let got = frames_of(&v.bytes);
        for ((img, delay), want) in got.iter().zip([RED, GREEN, BLUE]) {
            assert_eq!(*delay, 80, "{}", v.spec);
            assert!(close(sample(img, 0.5, 0.5), want, 30), "{}", v.spec);
        }
    }
}
