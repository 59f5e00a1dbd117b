//! The hostile-input corpus: one table of named bad inputs, generated at test time (no
//! binaries in git), each with the exact typed outcome it must get, asserted at three
//! layers: the render function, `rendition run --local DIR --once` over a folder holding
//! the whole corpus, and `rendition serve --local DIR` answering URLs for every source.
//! Then the hostile keys (the filesystem store refuses every key that would leave its
//! root) and hostile URLs (forged, truncated, expired, wrong-key and smuggled signatures;
//! path tricks), and after all of it the processes are still up and nothing was written
//! outside the places they may write.
//!
//! A source is what its magic bytes say, whatever its name: every case is uploaded as
//! `.jpg` unless its name says otherwise. Polyglots that *are* valid images in an
//! allowed format (a JPEG with a ZIP or HTML appended, a GIF that is also JavaScript)
//! render — they are decoded only as that image and re-encoded, so no byte of the payload
//! reaches a derivative, which is asserted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image::{ImageEncoder, Rgb, RgbImage};
use rendition_image::render::{render, VariantRequest};
use rendition_image::sniff::sniff;
use rendition_image::spec::Format;
use rendition_pipeline::config::{Limits, RenderSettings, Settings};
use rendition_pipeline::manifest::{FailureRecord, Manifest};
use rendition_pipeline::naming::{self, SourceId, Variant};
use rendition_pipeline::store::{BlobStore, FsStore, PutOptions, StoreError};
use rendition_pipeline::url::{sign, UrlGenerator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(120);

/// The corpus runs with a 1 MiB byte limit, so "over the byte limit" stays cheap.
const MAX_BYTES: u64 = 1 << 20;

fn limits() -> Limits {
    Limits {
        max_input_bytes: MAX_BYTES,
        ..Limits::default()
    }
}

const SIGNING_KEY: &str = "hostile-corpus-signing-key-0123456789abcdef";
const WRONG_KEY: &str = "not-the-configured-key-0123456789abcdefghij";

/// The environment of every `rendition` process here, and the settings it loads.
fn env() -> Vec<(&'static str, String)> {
    vec![
        ("RENDITION__LIMITS__MAX_INPUT_BYTES", MAX_BYTES.to_string()),
        (
            "RENDITION__URLS__SIGNING_KEYS",
            format!("[\"{SIGNING_KEY}\"]"),
        ),
        ("RENDITION__URLS__SCHEME", "http".to_string()),
        ("RENDITION__RENDER__CONCURRENCY", "2".to_string()),
    ]
}

fn settings() -> Settings {
    let mut s = Settings {
        limits: limits(),
        ..Settings::default()
    };
    s.urls.signing_keys = vec![SIGNING_KEY.to_string()];
    s.urls.scheme = "http".into();
    s.validate().expect("valid test settings");
    s
}

// ---- the corpus ---------------------------------------------------------------------------

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Refused with this stable error kind (`RenderError::kind`, `JobError::kind`,
    /// `OnDemandError::kind`: the same string at every layer).
    Refused(&'static str),
    /// A valid image in an allowed format: rendered from a source of `size` (after EXIF
    /// orientation), and no derivative contains `payload`.
    Renders {
        size: (u32, u32),
        payload: &'static [u8],
    },
}

struct Case {
    /// Also its file name under `originals/`.
    file: String,
    bytes: Vec<u8>,
    expect: Expect,
}

fn noise(width: u32, height: u32, seed: u32) -> RgbImage {
    let mut s = seed.wrapping_mul(0x9E37_79B9) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s >> 24) as u8
    };
    RgbImage::from_fn(width, height, |_, _| Rgb([next(), next(), next()]))
}

fn encode_webp(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn encode_gif(frames: &[image::RgbaImage]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .unwrap();
        for f in frames {
            let delay = image::Delay::from_numer_denom_ms(100, 1);
            enc.encode_frame(image::Frame::from_parts(f.clone(), 0, 0, delay))
                .unwrap();
        }
    }
    out
}

fn solid_frames(n: usize, width: u32, height: u32) -> Vec<image::RgbaImage> {
    (0..n)
        .map(|i| {
            let c = [RED, GREEN, BLUE][i % 3];
            image::RgbaImage::from_pixel(width, height, image::Rgba([c[0], c[1], c[2], 255]))
        })
        .collect()
}

/// A GIF whose logical screen says `width`×`height`, whatever its frames are.
fn with_gif_screen(mut gif: Vec<u8>, width: u16, height: u16) -> Vec<u8> {
    gif[6..8].copy_from_slice(&width.to_le_bytes());
    gif[8..10].copy_from_slice(&height.to_le_bytes());
    gif
}

/// A small JPEG whose SOF0 header declares `width`×`height`.
fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut j = encode_jpeg(&quadrants(16, 16), 80);
    let sof = j
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline SOF0 segment");
    j[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    j
}

/// A lossless WebP whose VP8L header declares `width`×`height` (≤ 16384), then noise.
fn webp_declaring(width: u32, height: u32) -> Vec<u8> {
    let bits: u32 = (width - 1) | ((height - 1) << 14);
    let mut vp8l = vec![0x2F];
    vp8l.extend_from_slice(&bits.to_le_bytes());
    vp8l.extend_from_slice(&[0x5A; 27]);
    let mut riff = b"WEBPVP8L".to_vec();
    riff.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    riff.extend_from_slice(&vp8l);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(riff.len() as u32).to_le_bytes());
    out.extend_from_slice(&riff);
    out
}

/// A minimal uncompressed greyscale TIFF whose IFD declares `width`×`height`.
fn tiff_declaring(width: u32, height: u32) -> Vec<u8> {
    // (tag, type: 3 = SHORT, 4 = LONG, value)
    let entries: [(u16, u16, u32); 9] = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8 + 2 + 9 * 12 + 4),
        (277, 3, 1),
        (278, 4, height),
        (279, 4, 16),
    ];
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        if kind == 3 {
            t.extend_from_slice(&(value as u16).to_le_bytes());
            t.extend_from_slice(&[0, 0]);
        } else {
            t.extend_from_slice(&value.to_le_bytes());
        }
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&[0x80; 16]);
    t
}

/// Inserts an `APPn` segment (`marker` = 0xE0 + n) with `payload` right after SOI.
fn with_app_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut out = vec![0xFF, 0xD8, 0xFF, marker];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// `frames` one-pixel frames, the last pixel of a `side`×`side` logical screen.
fn frame_bomb(side: u16, frames: usize) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .unwrap();
        for f in solid_frames(frames, 1, 1) {
            let at = u32::from(side) - 1;
            let delay = image::Delay::from_numer_denom_ms(100, 1);
            enc.encode_frame(image::Frame::from_parts(f, at, at, delay))
                .unwrap();
        }
    }
    with_gif_screen(out, side, side)
}

/// A CMYK JPEG with no ICC profile, made with the `vips` CLI (libvips-tools).
fn cmyk_jpeg_without_profile() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let rgb = dir.path().join("rgb.jpg");
    let cmyk = dir.path().join("cmyk.jpg");
    let bare = dir.path().join("bare.jpg");
    std::fs::write(&rgb, encode_jpeg(&quadrants(320, 240), 95)).unwrap();
    for args in [
        vec![
            "icc_export",
            rgb.to_str().unwrap(),
            cmyk.to_str().unwrap(),
            "--output-profile",
            "cmyk",
        ],
        vec![
            "jpegsave",
            cmyk.to_str().unwrap(),
            bare.to_str().unwrap(),
            "--strip",
        ],
    ] {
        let status = std::process::Command::new("vips")
            .args(&args)
            .status()
            .expect("vips CLI (libvips-tools)");
        assert!(status.success(), "vips {args:?}");
    }
    std::fs::read(&bare).unwrap()
}

/// The one good image of every run: 640×480, so every eager preset fits.
fn good_jpeg() -> Vec<u8> {
    encode_jpeg(&quadrants(640, 480), 90)
}

const SCRIPT: &[u8] = b"<script>alert(document.domain)</script>";

fn corpus() -> Vec<Case> {
    use Expect::*;
    let noisy_jpeg = encode_jpeg(&noise(256, 256, 1), 90);
    let noisy_png = encode_png(&noise(256, 256, 2));
    let noisy_webp = encode_webp(&noise(256, 256, 3));
    let noisy_gif = encode_gif(&[image::DynamicImage::ImageRgb8(noise(64, 48, 4)).to_rgba8()]);
    let good = good_jpeg();
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'>\
                <script>alert(1)</script><image href='file:///etc/passwd'/></svg>"
        .to_vec();

    let mut png_bad_crc = noisy_png.clone();
    let idat = png_bad_crc
        .windows(4)
        .position(|w| w == b"IDAT")
        .expect("an IDAT chunk");
    png_bad_crc[idat + 100] ^= 0xFF;

    let mut gif_js = with_gif_screen(encode_gif(&solid_frames(1, 16, 16)), 0x2A2F, 16);
    gif_js.extend_from_slice(b"*/=1;alert(document.domain);//");

    let mut jpeg_zip = good.clone();
    jpeg_zip.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0payload.html");
    jpeg_zip.extend_from_slice(SCRIPT);
    jpeg_zip.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\0\0\0\0\0\0\0\0\0\0");

    let mut jpeg_html = good.clone();
    jpeg_html.extend_from_slice(b"<!DOCTYPE html><html>");
    jpeg_html.extend_from_slice(SCRIPT);

    let mut over_limit = vec![0xFF, 0xD8, 0xFF, 0xE0];
    over_limit.resize(MAX_BYTES as usize + 1, 0);

    let mut exif_garbage = b"Exif\0\0MM\0\x2a\0\0\0\x08\xFF\xFF".to_vec();
    exif_garbage.extend_from_slice(&[0xEE; 40]);
    let mut broken_icc = b"ICC_PROFILE\0\x01\x01".to_vec();
    broken_icc.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // claims 64 KiB
    broken_icc.extend_from_slice(&[0x41; 124]);

    let case = |file: &str, bytes: Vec<u8>, expect| Case {
        file: file.to_string(),
        bytes,
        expect,
    };
    vec![
        // Not an image at all, or not an allowed one: refused by the magic bytes, before
        // libvips sees a byte.
        case("zero-bytes.jpg", vec![], Refused("unsupported_format")),
        case(
            "html.jpg",
            b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(),
            Refused("unsupported_format"),
        ),
        case(
            "html-bom-whitespace.png",
            b"\xEF\xBB\xBF \r\n<html><script>alert(1)</script>".to_vec(),
            Refused("unsupported_format"),
        ),
        case(
            "plain-text.jpg",
            b"just some text\n".to_vec(),
            Refused("unsupported_format"),
        ),
        case("svg-named.jpg", svg.clone(), Refused("unsupported_format")),
        case(
            "svg-xml-prolog.jpg",
            [&b"<?xml version='1.0'?>\n"[..], &svg].concat(),
            Refused("unsupported_format"),
        ),
        case(
            "svg-behind-long-comment.jpg",
            [&b"<!--"[..], &[b' '; 700], b"-->", &svg].concat(),
            Refused("unsupported_format"),
        ),
        case(
            "svgz-gzip.jpg",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03junk".to_vec(),
            Refused("unsupported_format"),
        ),
        case(
            "pdf-named.jpg",
            b"%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n".to_vec(),
            Refused("unsupported_format"),
        ),
        case(
            "pdf-after-junk.jpg",
            [&[0x00, 0x9F, 0x92, 0x96][..], b"%PDF-1.7\n%%EOF\n"].concat(),
            Refused("unsupported_format"),
        ),
        case(
            "postscript.jpg",
            b"%!PS-Adobe-3.0\n(/etc/passwd) (r) file\n".to_vec(),
            Refused("unsupported_format"),
        ),
        case(
            "bmp.jpg",
            [&b"BM"[..], &[0; 60]].concat(),
            Refused("unsupported_format"),
        ),
        case(
            // libvips has a loader for PPM, the sniff allow-list does not.
            "ppm.jpg",
            [&b"P6\n1 1\n255\n"[..], &[0xFF, 0x00, 0x80]].concat(),
            Refused("unsupported_format"),
        ),
        case(
            "vips-native.jpg",
            [&[0x08, 0xF2, 0xA6, 0xB6][..], &[0; 60]].concat(),
            Refused("unsupported_format"),
        ),
        case(
            "jpeg-xl.jpg",
            b"\xFF\x0A\xFA\x7F\x01\x90\x08".to_vec(),
            Refused("unsupported_format"),
        ),
        case(
            "jpeg-2000.jpg",
            b"\0\0\0\x0cjP  \r\n\x87\n\0\0\0\x14ftypjp2 ".to_vec(),
            Refused("unsupported_format"),
        ),
        case(
            "mp4-video.jpg",
            b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec(),
            Refused("unsupported_format"),
        ),
        // Allowed magic, broken body.
        case(
            "truncated-jpeg.jpg",
            noisy_jpeg[..noisy_jpeg.len() / 2].to_vec(),
            Refused("corrupt_image"),
        ),
        case(
            "jpeg-soi-only.jpg",
            vec![0xFF, 0xD8, 0xFF],
            Refused("corrupt_image"),
        ),
        case(
            "jpeg-magic-then-garbage.jpg",
            [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0x55; 300]].concat(),
            Refused("corrupt_image"),
        ),
        case(
            "truncated-png.png",
            noisy_png[..noisy_png.len() / 2].to_vec(),
            Refused("corrupt_image"),
        ),
        case("png-bad-crc.png", png_bad_crc, Refused("corrupt_image")),
        case(
            "png-signature-only.png",
            b"\x89PNG\r\n\x1a\n".to_vec(),
            Refused("corrupt_image"),
        ),
        case(
            "png-zero-width.png",
            png_bomb_header(0, 100),
            Refused("corrupt_image"),
        ),
        case(
            "truncated-webp.webp",
            noisy_webp[..noisy_webp.len() / 2].to_vec(),
            Refused("corrupt_image"),
        ),
        case(
            "webp-riff-only.webp",
            b"RIFF\x04\0\0\0WEBP".to_vec(),
            Refused("corrupt_image"),
        ),
        case(
            "truncated-gif.gif",
            noisy_gif[..noisy_gif.len() / 2].to_vec(),
            Refused("corrupt_image"),
        ),
        case(
            "gif-header-only.gif",
            noisy_gif[..13].to_vec(),
            Refused("corrupt_image"),
        ),
        case(
            "tiff-header-only.tif",
            b"II*\0\x08\0\0\0".to_vec(),
            Refused("corrupt_image"),
        ),
        case(
            "avif-ftyp-only.avif",
            b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec(),
            Refused("corrupt_image"),
        ),
        // Polyglots.
        case(
            "png-magic-then-svg.png",
            [&b"\x89PNG\r\n\x1a\n"[..], &svg].concat(),
            Refused("corrupt_image"),
        ),
        case(
            "jpeg-magic-then-svg.jpg",
            [&[0xFF, 0xD8, 0xFF][..], &svg].concat(),
            Refused("corrupt_image"),
        ),
        case(
            "gif-magic-then-html.gif",
            [&b"GIF89a"[..], b"<html>", SCRIPT].concat(),
            Refused("corrupt_image"),
        ),
        case(
            "jpeg-with-zip.jpg",
            jpeg_zip,
            Renders {
                size: (640, 480),
                payload: b"PK\x03\x04",
            },
        ),
        case(
            "jpeg-with-html.jpg",
            jpeg_html,
            Renders {
                size: (640, 480),
                payload: SCRIPT,
            },
        ),
        // `GIF89a/*…*/=1;alert(…)` is JavaScript too. Its screen width is "/*" = 10799
        // px; libnsgif ignores screen sizes over 2048 and sizes the canvas by the frames.
        case(
            "gif-js-polyglot.gif",
            gif_js,
            Renders {
                size: (16, 16),
                payload: b"alert(",
            },
        ),
        // Limits, from the header: pixel bombs (huge declared size, tiny file), frame
        // bombs, the byte limit.
        case(
            "png-30000x30000.png",
            png_bomb_header(30_000, 30_000),
            Refused("too_many_pixels"),
        ),
        case(
            "jpeg-65500x65500.jpg",
            jpeg_declaring(65_500, 65_500),
            Refused("too_many_pixels"),
        ),
        // The same screen-size rule: a GIF cannot declare its way past the limit (nor
        // make libvips allocate its declared canvas).
        case(
            "gif-screen-65535x65535.gif",
            with_gif_screen(encode_gif(&solid_frames(1, 4, 4)), 65_535, 65_535),
            Renders {
                size: (4, 4),
                payload: b"",
            },
        ),
        case(
            "webp-16383x16383.webp",
            webp_declaring(16_383, 16_383),
            Refused("too_many_pixels"),
        ),
        case(
            "tiff-100000x100000.tif",
            tiff_declaring(100_000, 100_000),
            Refused("too_many_pixels"),
        ),
        case(
            "gif-150-frames.gif",
            encode_gif(&solid_frames(150, 1, 1)),
            Refused("too_many_frames"),
        ),
        // Both limits kept (2048×2048 = 4 MP a frame, 100 frames), 3 KiB of file: but
        // keeping the animation (every eager preset is WebP) decodes 419 MP.
        case(
            "gif-100-frames-2048x2048.gif",
            frame_bomb(2048, 100),
            Refused("too_many_pixels"),
        ),
        case(
            "over-byte-limit.jpg",
            over_limit,
            Refused("input_too_large"),
        ),
        // Shapes (1×100000 strips and others) are not refusals of the source: their
        // variants that fit are made and the rest skipped; see `strips_*` and shapes.rs.
        // Colour and metadata: CMYK without a profile, a broken ICC profile, EXIF with
        // absurd orientations or a broken IFD all render (upright = as stored).
        case(
            "cmyk-no-profile.jpg",
            cmyk_jpeg_without_profile(),
            Renders {
                size: (320, 240),
                payload: b"",
            },
        ),
        case(
            "broken-icc.jpg",
            with_app_segment(&good, 0xE2, &broken_icc),
            Renders {
                size: (640, 480),
                payload: b"ICC_PROFILE",
            },
        ),
        case(
            "exif-orientation-0.jpg",
            with_exif_orientation(&good, 0),
            Renders {
                size: (640, 480),
                payload: b"Exif",
            },
        ),
        case(
            "exif-orientation-9.jpg",
            with_exif_orientation(&good, 9),
            Renders {
                size: (640, 480),
                payload: b"Exif",
            },
        ),
        case(
            "exif-orientation-65535.jpg",
            with_exif_orientation(&good, 65_535),
            Renders {
                size: (640, 480),
                payload: b"Exif",
            },
        ),
        case(
            "exif-broken-ifd.jpg",
            with_app_segment(&good, 0xE1, &exif_garbage),
            Renders {
                size: (640, 480),
                payload: b"Exif",
            },
        ),
    ]
}

fn eager_requests(settings: &Settings) -> Vec<VariantRequest> {
    settings
        .eager_presets()
        .map(|(name, preset)| VariantRequest {
            name: name.to_string(),
            spec: preset.spec.clone(),
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// At least 30 distinct cases, covering every refusal kind a source can get.
fn check_corpus_shape(cases: &[Case]) {
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    for c in cases {
        assert!(names.insert(c.file.as_str()), "duplicate case {}", c.file);
        assert_ne!(c.file, "good.jpg");
    }
    let kinds: std::collections::BTreeSet<&str> = cases
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Refused(kind) => Some(kind),
            Expect::Renders { .. } => None,
        })
        .collect();
    for kind in [
        "unsupported_format",
        "corrupt_image",
        "too_many_pixels",
        "too_many_frames",
        "input_too_large",
    ] {
        assert!(kinds.contains(kind), "no case for {kind}");
    }
}

/// Checks a derivative of a case that renders: a WebP (by magic bytes) without the payload.
fn check_clean(what: &str, bytes: &[u8], payload: &[u8]) {
    assert_eq!(
        sniff(bytes).map(|f| f.as_str()),
        Ok("webp"),
        "{what}: not a WebP"
    );
    assert!(!contains(bytes, payload), "{what}: carries the payload");
}

// ---- layer 1: the render function ------------------------------------------------------------

#[test]
fn corpus_render_gives_each_case_its_typed_error() {
    let s = settings();
    let requests = eager_requests(&s);
    let cases = corpus();
    check_corpus_shape(&cases);
    for case in &cases {
        let got = render(&case.bytes, &requests, &s.limits, &s.render);
        match (case.expect, got) {
            (Expect::Refused(kind), Err(e)) => assert_eq!(e.kind(), kind, "{}: {e}", case.file),
            (Expect::Refused(kind), Ok(_)) => panic!("{}: rendered, expected {kind}", case.file),
            (Expect::Renders { size, payload }, Ok(out)) => {
                let source = (out.source.size.width, out.source.size.height);
                assert_eq!(source, size, "{}: source size", case.file);
                assert_eq!(out.variants.len(), requests.len());
                for v in &out.variants {
                    check_clean(&format!("{} {}", case.file, v.name), &v.bytes, payload);
                }
            }
            (Expect::Renders { .. }, Err(e)) => panic!("{}: {} ({e})", case.file, e.kind()),
        }
    }
}

#[test]
fn strips_get_the_variants_that_fit_and_skip_the_rest() {
    // A legal 1×100000 strip cannot have the eager ladder's `w=…` variants (no enlarging
    // keeps them 100000 px tall, over `max_output_dimension`), but `thumb`'s cover crop
    // is a 1×160 window of the unscaled frame: it is made, the others are skipped. The
    // 100000×1 strip gets every one (2048×1 … 160×1).
    let s = settings();
    let tall = encode_png(&RgbImage::from_pixel(1, 100_000, Rgb(RED)));
    let wide = encode_png(&RgbImage::from_pixel(100_000, 1, Rgb(BLUE)));
    let requests = eager_requests(&s);
    let out = render(&tall, &requests, &s.limits, &s.render).unwrap();
    let made: Vec<&str> = out.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(made, ["thumb"]);
    let img = decode(&out.variants[0].bytes);
    assert_eq!(img.dimensions(), (1, 160));
    assert_eq!(out.skipped.len(), requests.len() - 1);
    for skipped in &out.skipped {
        assert_eq!(skipped.error.kind(), "output_too_large", "{}", skipped.name);
        assert!(
            skipped.error.to_string().contains("1×100000"),
            "names the size really over: {}",
            skipped.error
        );
    }
    let out = render(&wide, &requests, &s.limits, &s.render).unwrap();
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    for v in &out.variants {
        let img = decode(&v.bytes);
        assert_eq!(img.height(), 1, "{}", v.name);
        assert_eq!(img.width(), v.size.width, "{}", v.name);
    }
    // A variant that fits renders, correctly.
    for (src, spec, want, colour) in [
        (&tall, "h=1000,fm=png", (1, 1000), RED),
        (&wide, "w=1000,fm=png", (1000, 1), BLUE),
    ] {
        let req = VariantRequest {
            name: "v".into(),
            spec: spec.parse().unwrap(),
        };
        let out = render(src, &[req], &s.limits, &s.render)
            .unwrap()
            .into_only()
            .unwrap();
        let img = decode(&out.bytes);
        assert_eq!((img.width(), img.height()), want, "{spec}");
        assert!(close(sample(&img, 0.5, 0.5), colour, 2), "{spec}");
    }
}

#[test]
fn animation_pixels_count_every_frame_when_kept() {
    // Regression: `max_input_pixels` counted one frame only, so 100 one-pixel frames on a
    // 2048×2048 canvas (3 KiB) made a `w=2048,fm=webp` variant hold 1.4 GB for 13 s.
    let gif = encode_gif(&solid_frames(3, 10, 10));
    let with_limit = |max_input_pixels| Limits {
        max_input_pixels,
        ..Limits::default()
    };
    let req = |spec: &str| VariantRequest {
        name: "v".into(),
        spec: spec.parse().unwrap(),
    };
    let rs = RenderSettings::default();
    let out = render(&gif, &[req("w=10,fm=gif")], &with_limit(300), &rs).unwrap();
    assert_eq!(out.variants[0].frames, 3);
    let err = render(&gif, &[req("w=10,fm=webp")], &with_limit(299), &rs).unwrap_err();
    assert_eq!(err.kind(), "too_many_pixels");
    assert!(err.to_string().contains("3 frames of 10×10 = 300"), "{err}");
    // A still output decodes one frame: the per-frame limit is all that applies.
    let out = render(&gif, &[req("w=10,fm=png")], &with_limit(100), &rs).unwrap();
    assert_eq!(out.variants[0].frames, 1);
}

// ---- layer 2: `rendition run --local DIR --once` -----------------------------------------------

/// Every regular file and symbolic link under `dir` (links not followed), relative.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let ft = entry.file_type().unwrap();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_symlink() {
                out.insert(rel, None);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// A bucket holding the whole corpus, the good image and the planted traps, next to an
/// `outside/` folder that nothing may read or write.
struct Bucket {
    tmp: tempfile::TempDir,
    bucket: PathBuf,
    outside: PathBuf,
    /// What the test put there, before any `rendition` ran.
    before: BTreeMap<PathBuf, Option<Vec<u8>>>,
    outside_before: BTreeMap<PathBuf, Option<Vec<u8>>>,
}

/// 4 folders of 199 bytes and a 200-byte name: a 1010-byte source key (legal) whose
/// derivative keys would be over 1024 bytes.
fn long_rel() -> String {
    format!(
        "{}{}.jpg",
        format!("{}/", "d".repeat(199)).repeat(4),
        "l".repeat(196)
    )
}

/// Files whose names can never be keys.
fn bad_names() -> Vec<String> {
    vec![
        "ctl\u{1}char.jpg".into(),
        "new\nline.jpg".into(),
        "tab\there.jpg".into(),
        "back\\..\\slash.jpg".into(),
        ".rendition-evil.jpg".into(),
        format!("{}x.jpg", format!("{}/", "o".repeat(250)).repeat(5)),
    ]
}

fn bucket_with_corpus(cases: &[Case]) -> Bucket {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let outside = tmp.path().join("outside");
    let originals = bucket.join("originals");
    std::fs::create_dir_all(&originals).unwrap();
    std::fs::create_dir_all(bucket.join("derived")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.jpg"), good_jpeg()).unwrap();
    for case in cases {
        std::fs::write(originals.join(&case.file), &case.bytes).unwrap();
    }
    std::fs::write(originals.join("good.jpg"), good_jpeg()).unwrap();
    let long = originals.join(long_rel());
    std::fs::create_dir_all(long.parent().unwrap()).unwrap();
    std::fs::write(&long, good_jpeg()).unwrap();
    for name in bad_names() {
        let path = originals.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, good_jpeg()).unwrap();
    }
    // Links out of the bucket: a source file, a source folder, and a folder planted where
    // the derivatives of a real source would go.
    std::os::unix::fs::symlink(outside.join("secret.jpg"), originals.join("link-out.jpg")).unwrap();
    std::os::unix::fs::symlink(&outside, originals.join("link-dir")).unwrap();
    std::fs::write(originals.join("planted.jpg"), good_jpeg()).unwrap();
    std::os::unix::fs::symlink(&outside, bucket.join("derived/planted.jpg")).unwrap();
    let before = tree(&bucket);
    let outside_before = tree(&outside);
    Bucket {
        tmp,
        bucket,
        outside,
        before,
        outside_before,
    }
}

impl Bucket {
    /// Nothing left the bucket, the sources are untouched, and every new file is a
    /// derivative under `derived/{one of derived}/`, a failure record `failed/{one of
    /// failed}.json`, or the store's sidecar of one.
    fn check_nothing_escaped(&self, derived: &[String], failed: &[String]) {
        let top: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(top, ["bucket", "outside"], "new files next to the bucket");
        assert_eq!(tree(&self.outside), self.outside_before, "outside/ changed");
        let after = tree(&self.bucket);
        for (path, bytes) in &self.before {
            assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
        }
        for path in after.keys().filter(|p| !self.before.contains_key(*p)) {
            let text = path.to_str().unwrap();
            assert!(!text.contains(".rendition-tmp-"), "left over: {text}");
            let key = text.strip_prefix(".rendition/meta/").map_or(text, |k| {
                k.strip_suffix(".json").expect("sidecars are .json")
            });
            let ok = derived
                .iter()
                .any(|d| key.starts_with(&format!("derived/{d}/")))
                || failed.iter().any(|f| key == format!("failed/{f}.json"));
            assert!(ok, "unexpected file {text}");
        }
    }
}

async fn run_once(dir: &Path, bucket: &Path) -> (std::process::Output, Vec<serde_json::Value>) {
    let run = Spawn::rendition(dir)
        .args(["run", "--local"])
        .arg(bucket)
        .arg("--once")
        .json_logs()
        .envs(env())
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .expect("run --once finishes");
    let logs = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| serde_json::json!({ "raw": l })))
        .collect();
    (out, logs)
}

#[tokio::test]
async fn corpus_local_run_records_each_failure_and_writes_nothing_outside() {
    let cases = corpus();
    let b = bucket_with_corpus(&cases);
    let (out, logs) = run_once(b.tmp.path(), &b.bucket).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}: {stdout}\n{logs:#?}",
        out.status
    );

    let refused: Vec<(&str, &str)> = cases
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Refused(kind) => Some((c.file.as_str(), kind)),
            Expect::Renders { .. } => None,
        })
        .chain([
            (long_rel().leak() as &str, "invalid_key"),
            ("planted.jpg", "invalid_key"),
        ])
        .collect();
    let rendered: Vec<&str> = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Renders { .. }))
        .map(|c| c.file.as_str())
        .chain(["good.jpg"])
        .collect();
    assert!(
        stdout.contains(&format!(
            "rendered {}, already done 0, failed {}",
            rendered.len(),
            refused.len()
        )),
        "{stdout}"
    );

    for (file, kind) in &refused {
        let path = b.bucket.join(format!("failed/{file}.json"));
        let record: FailureRecord = serde_json::from_slice(
            &std::fs::read(&path).unwrap_or_else(|e| panic!("{file}: no failure record ({e})")),
        )
        .unwrap();
        assert_eq!(record.kind, *kind, "{file}: {}", record.message);
        assert_eq!(record.source_key, format!("originals/{file}"));
        assert!(!record.retryable, "{file}");
    }
    let derived_root = b.bucket.join("derived");
    for case in &cases {
        let Expect::Renders { payload, .. } = case.expect else {
            assert!(!derived_root.join(&case.file).exists(), "{}", case.file);
            continue;
        };
        let folder = derived_root.join(&case.file);
        let guids: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: no derivatives ({e})", case.file))
            .flatten()
            .collect();
        assert_eq!(guids.len(), 1, "{}", case.file);
        let manifest: Manifest =
            serde_json::from_slice(&std::fs::read(guids[0].path().join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest.variants.len(), 5, "{}", case.file);
        for v in &manifest.variants {
            check_clean(
                &v.key,
                &std::fs::read(b.bucket.join(&v.key)).unwrap(),
                payload,
            );
        }
    }
    assert!(derived_root.join("good.jpg").is_dir());

    // Names that cannot be keys and links are skipped, and said so.
    let warned = |msg: &str, name: &str| {
        logs.iter().any(|v| {
            field(v, "message") == Some(msg) && field(v, "path").is_some_and(|p| p.ends_with(name))
        })
    };
    for name in bad_names() {
        assert!(
            warned("ignoring a file whose name cannot be a key", &name),
            "{name:?} not reported: {logs:#?}"
        );
    }
    for name in ["link-out.jpg", "link-dir"] {
        assert!(warned("ignoring a symbolic link", name), "{name}");
    }

    let mut derived: Vec<String> = rendered.iter().map(|s| s.to_string()).collect();
    derived.push("planted.jpg".into()); // the planted link itself, checked unchanged
    let failed: Vec<String> = refused.iter().map(|(f, _)| f.to_string()).collect();
    b.check_nothing_escaped(&derived, &failed);
    let top: Vec<String> = std::fs::read_dir(&derived_root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut want = derived.clone();
    want.sort();
    assert_eq!(top, want, "derived/ holds the rendered sources only");
}

// ---- layer 3: `rendition serve --local DIR` ----------------------------------------------------

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The derivative key of `variant` of the source at `key`, named as the server will.
async fn derived_key(store: &FsStore, source: &str, variant: Variant, ext: &str) -> String {
    let meta = store.head(source).await.unwrap().expect("source exists");
    let guid = naming::source_guid(&SourceId {
        bucket: "local".into(),
        key: source.to_string(),
        version: meta.version().to_string(),
    });
    let rel = source.strip_prefix("originals/").unwrap();
    naming::derivative_key("derived/", rel, guid, &variant, ext).unwrap()
}

#[tokio::test]
async fn corpus_serve_answers_4xx_with_typed_bodies_and_stays_up() {
    let cases = corpus();
    let b = bucket_with_corpus(&cases);
    let mut app = Spawn::rendition(b.tmp.path())
        .serve(&b.bucket)
        .envs(env())
        .start();
    let addr = app.serving_addr(WAIT).await;
    let s = settings();
    let urls = UrlGenerator::new(&s);
    let store = FsStore::new(&b.bucket).unwrap();
    let thumb = preset("thumb", Format::Webp);
    let url_of = |key: &str| urls.for_key(key, now_unix()).unwrap();

    // Every source of the corpus, by the URL of its `thumb`.
    for case in &cases {
        let key = derived_key(
            &store,
            &format!("originals/{}", case.file),
            thumb.clone(),
            "webp",
        )
        .await;
        let r = get(&addr, url_of(&key).as_bytes(), &[]).await;
        match case.expect {
            Expect::Refused(kind) => {
                assert_eq!(
                    (r.status, r.error_kind().as_str()),
                    (422, kind),
                    "{}",
                    case.file
                );
            }
            Expect::Renders { payload, .. } => {
                assert_eq!(r.status, 200, "{}: {}", case.file, r.error_kind());
                check_clean(&case.file, &r.body, payload);
            }
        }
    }

    // Signed specs: every way to get a signature wrong is 403, every malformed query 400.
    let good = "originals/good.jpg";
    let spec_key = derived_key(
        &store,
        good,
        Variant::Spec("w=200,h=200,fit=cover,fm=webp".parse().unwrap()),
        "webp",
    )
    .await;
    let signed = url_of(&spec_key);
    let (path, query) = signed.split_once('?').expect("a signed URL");
    let sig = query.strip_prefix("sig=").expect("no expiry by default");
    let ok = get(&addr, signed.as_bytes(), &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.error_kind());
    assert_eq!(decode(&ok.body).dimensions(), (200, 200));

    let decoded_path = format!("/{spec_key}");
    let now = now_unix();
    let past = now - 60;
    let future = now + 3600;
    let sig_past = sign(SIGNING_KEY.as_bytes(), &decoded_path, Some(past));
    let sig_future = sign(SIGNING_KEY.as_bytes(), &decoded_path, Some(future));
    let mut forged = sig.to_string();
    let mid = forged.len() / 2;
    let flipped = if &forged[mid..=mid] == "A" { "B" } else { "A" };
    forged.replace_range(mid..=mid, flipped);
    let other_spec = spec_key.replace("w=200,h=200", "w=201,h=200");
    let reordered_key = spec_key.replace(
        "w=200,h=200,fit=cover,fm=webp",
        "fm=webp,fit=cover,h=200,w=200",
    );
    let defaults_key = spec_key.replace("fit=cover", "fit=cover,g=centre");
    let sign_path = |key: &str| sign(SIGNING_KEY.as_bytes(), &format!("/{key}"), None);
    let other_source = derived_key(
        &store,
        "originals/jpeg-with-zip.jpg",
        Variant::Spec("w=200,h=200,fit=cover,fm=webp".parse().unwrap()),
        "webp",
    )
    .await;
    let signature_cases: Vec<(&str, String, u16, &str)> = vec![
        ("unsigned", path.to_string(), 403, "missing_signature"),
        (
            "forged",
            format!("{path}?sig={forged}"),
            403,
            "bad_signature",
        ),
        (
            "truncated",
            format!("{path}?sig={}", &sig[..sig.len() - 4]),
            403,
            "bad_signature",
        ),
        (
            "empty signature",
            format!("{path}?sig="),
            403,
            "bad_signature",
        ),
        ("padded", format!("{path}?sig={sig}="), 403, "bad_signature"),
        (
            "expired",
            format!("{path}?exp={past}&sig={sig_past}"),
            403,
            "expired",
        ),
        (
            "expiry moved",
            format!("{path}?exp={future}&sig={sig_past}"),
            403,
            "bad_signature",
        ),
        (
            "expiry dropped",
            format!("{path}?sig={sig_future}"),
            403,
            "bad_signature",
        ),
        (
            "wrong key",
            format!(
                "{path}?sig={}",
                sign(WRONG_KEY.as_bytes(), &decoded_path, None)
            ),
            403,
            "bad_signature",
        ),
        (
            "another spec's signature",
            format!("/{}?sig={sig}", other_spec),
            403,
            "bad_signature",
        ),
        (
            "another source's signature",
            format!("/{}?sig={sig}", other_source),
            403,
            "bad_signature",
        ),
        (
            "duplicate sig",
            format!("{path}?sig={sig}&sig={sig}"),
            400,
            "bad_query",
        ),
        (
            "duplicate exp",
            format!("{path}?exp={future}&exp={future}&sig={sig_future}"),
            400,
            "bad_query",
        ),
        (
            "smuggled parameter",
            format!("{path}?sig={sig}&w=4000"),
            400,
            "bad_query",
        ),
        (
            "smuggled in the case",
            format!("{path}?SIG={sig}"),
            400,
            "bad_query",
        ),
        (
            "empty parameter",
            format!("{path}?sig={sig}&"),
            400,
            "bad_query",
        ),
        (
            "exp with a leading zero",
            format!("{path}?exp=0{future}&sig={sig_future}"),
            400,
            "bad_query",
        ),
        (
            "reordered spec, validly signed",
            format!("/{reordered_key}?sig={}", sign_path(&reordered_key)),
            400,
            "bad_key",
        ),
        (
            "defaults spelled out, validly signed",
            format!("/{defaults_key}?sig={}", sign_path(&defaults_key)),
            400,
            "bad_key",
        ),
    ];
    for (what, target, status, kind) in &signature_cases {
        let r = get(&addr, target.as_bytes(), &[]).await;
        assert_eq!(
            (r.status, r.error_kind().as_str()),
            (*status, *kind),
            "{what}: {target}"
        );
    }
    // The order of `exp` and `sig` is not signed and carries no meaning: both orders are
    // the same request, with the same bytes.
    let in_order = get(&addr, format!("{path}?exp={future}&sig={sig_future}"), &[]).await;
    let swapped = get(&addr, format!("{path}?sig={sig_future}&exp={future}"), &[]).await;
    assert_eq!((in_order.status, swapped.status), (200, 200));
    assert_eq!(in_order.body, ok.body);
    assert_eq!(swapped.body, ok.body);

    // Path tricks: 400 (or 404 for a well-formed key that names nothing), never a 500,
    // never a file outside the bucket.
    let guid = "00000000-0000-4000-8000-000000000000";
    let long = "x".repeat(1100);
    let link_out = derived_key(&store, "originals/good.jpg", thumb.clone(), "webp")
        .await
        .replace("/good.jpg/", "/link-out.jpg/");
    let planted = derived_key(&store, "originals/planted.jpg", thumb.clone(), "webp").await;
    let path_cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "dot-dot",
            b"/derived/../../outside/secret.jpg".to_vec(),
            &[400],
        ),
        (
            "encoded dot-dot",
            format!("/derived/%2e%2e/%2E%2E/outside/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "encoded slashes",
            format!("/derived/..%2F..%2Foutside%2Fsecret.jpg/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        ("absolute", b"//etc/passwd".to_vec(), &[400]),
        ("encoded absolute", b"/%2Fetc%2Fpasswd".to_vec(), &[400]),
        (
            "absolute source",
            format!("/derived//etc/passwd/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "backslashes",
            format!("/derived/..%5C..%5Coutside%5Csecret.jpg/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "encoded NUL",
            format!("/derived/a%00b.jpg/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "encoded SOH",
            format!("/derived/a%01b.jpg/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "encoded LF",
            format!("/derived/a%0Ab.jpg/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "encoded DEL",
            format!("/derived/a%7Fb.jpg/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "raw NUL",
            format!("/derived/a\0b.jpg/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "raw SOH",
            format!("/derived/a\u{1}b.jpg/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        ("bad escape", b"/derived/a%zzb.jpg".to_vec(), &[400]),
        ("not UTF-8", b"/derived/a%FFb.jpg".to_vec(), &[400]),
        (
            "over-long key",
            format!("/derived/{long}/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "huge request target",
            format!("/derived/{}/{guid}/thumb.webp", "y".repeat(100_000)).into_bytes(),
            &[400, 414, 431],
        ),
        (
            "a source, not a derivative",
            b"/originals/good.jpg".to_vec(),
            &[400],
        ),
        (
            "a failure record",
            b"/failed/html.jpg.json".to_vec(),
            &[400],
        ),
        (
            "a sidecar",
            b"/.rendition/meta/derived/x.json".to_vec(),
            &[400],
        ),
        (
            "a reserved name",
            format!("/derived/.rendition/{guid}/thumb.webp").into_bytes(),
            &[400],
        ),
        (
            "a source linked out of the bucket",
            format!("/{link_out}").into_bytes(),
            &[400],
        ),
        (
            "derivatives linked out of the bucket",
            format!("/{planted}").into_bytes(),
            &[400],
        ),
        (
            "a missing source",
            format!(
                "/derived/nothing.jpg/{guid}/{}",
                preset_file("thumb", Format::Webp)
            )
            .into_bytes(),
            &[404],
        ),
    ];
    for (what, target, allowed) in &path_cases {
        let r = get(&addr, target, &[]).await;
        assert!(
            allowed.contains(&r.status),
            "{what}: {} {}",
            r.status,
            r.error_kind()
        );
    }

    // Still up, still right.
    let after = get(&addr, signed.as_bytes(), &[]).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, ok.body);
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "serve is still running"
    );
    app.terminate();
    let status = tokio::time::timeout(WAIT, app.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    let mut derived: Vec<String> = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Renders { .. }))
        .map(|c| c.file.clone())
        .collect();
    derived.push("good.jpg".into());
    derived.push("planted.jpg".into());
    b.check_nothing_escaped(&derived, &[]);
}

// ---- the filesystem store ----------------------------------------------------------------------

#[tokio::test]
async fn store_refuses_every_key_that_would_leave_its_root() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsStore::new(tmp.path().join("root")).unwrap();
    let absolute = format!("{}/escape.jpg", tmp.path().display());
    let keys: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("dot-dot", "../escape.jpg".into()),
        ("dot-dot inside", "originals/../../escape.jpg".into()),
        ("dot-dot last", "originals/..".into()),
        ("dot", "originals/./x.jpg".into()),
        ("absolute", "/etc/passwd".into()),
        ("absolute into the parent", absolute),
        ("NUL", "originals/a\0b.jpg".into()),
        ("SOH", "originals/a\u{1}b.jpg".into()),
        ("newline", "originals/a\nb.jpg".into()),
        ("DEL", "originals/a\u{7f}b.jpg".into()),
        ("C1 control", "originals/a\u{85}b.jpg".into()),
        ("backslashes", "originals\\..\\..\\escape.jpg".into()),
        ("empty segment", "originals//x.jpg".into()),
        ("trailing slash", "originals/x/".into()),
        ("reserved", ".rendition/meta/x.json".into()),
        ("reserved temp name", "originals/.rendition-tmp-x".into()),
        ("over 1024 bytes", "k".repeat(1025)),
        ("over 1024 bytes of UTF-8", "é".repeat(513)),
    ];
    for (what, key) in &keys {
        let invalid = |r: Result<(), StoreError>, op: &str| {
            assert!(
                matches!(r, Err(StoreError::InvalidKey { .. })),
                "{what} ({key:?}) {op}: {r:?}"
            );
        };
        invalid(store.get(key, 1 << 20).await.map(|_| ()), "get");
        invalid(store.head(key).await.map(|_| ()), "head");
        let put = store
            .put(key, bytes::Bytes::from_static(b"x"), PutOptions::default())
            .await;
        invalid(put.map(|_| ()), "put");
        invalid(store.delete(key).await, "delete");
    }
    let long_prefix = format!("{}/", "k".repeat(1100));
    for prefix in [
        "../",
        "/etc/",
        "originals/../../",
        "originals//",
        "a\0/",
        "a\nb/",
        "a\\..\\/",
        ".rendition/",
        &long_prefix,
    ] {
        let r = store.list(prefix).await.map(|_| ());
        assert!(
            matches!(r, Err(StoreError::InvalidKey { .. })),
            "list {prefix:?}: {r:?}"
        );
    }
    let entries: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries, ["root"], "nothing written next to the root");
    assert!(
        tree(store.root()).is_empty(),
        "nothing written in the root either"
    );
}

// ---- work budgets: limits that count work, the render sandbox ------------------------------
//
// Each class of the render-sandbox issue, generated deterministically (tests/integration/
// bombs.rs), through `render`, `run --local`, `serve` and the SQS worker, with the default
// limits and budgets: the typed kind, and what the process (and the helpers it reaped) used,
// from wait4.

/// What a finished process used, itself and every child it waited for (its render helpers).
#[derive(Debug)]
struct Usage {
    success: bool,
    cpu: Duration,
    max_rss_bytes: u64,
    /// From start to exit, when the test started the process itself.
    wall: Option<Duration>,
}

/// Waits for our child `pid` with wait4, blocking: the CPU and peak RSS it reports cover the
/// process and its reaped descendants.
fn wait_usage(pid: u32) -> Usage {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid out-pointers.
    let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    assert_eq!(
        rc,
        pid as libc::pid_t,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Usage {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_bytes: ru.ru_maxrss as u64 * 1024,
        wall: None,
    }
}

/// The bounds every hostile job must stay within, with the default budgets
/// (render.max_cpu_secs = 8, render.max_memory_mb = 1024).
const MAX_CPU: Duration = Duration::from_secs(10);
const MAX_RSS: u64 = 1 << 30;

fn assert_bounded(what: &str, u: &Usage) {
    let wall = u.wall.map_or(String::new(), |w| {
        format!(", wall {:.2} s", w.as_secs_f64())
    });
    eprintln!(
        "{what}: cpu {:.2} s, peak rss {} MiB{wall}",
        u.cpu.as_secs_f64(),
        u.max_rss_bytes >> 20
    );
    assert!(u.cpu <= MAX_CPU, "{what}: {:?} of CPU", u.cpu);
    assert!(
        u.max_rss_bytes <= MAX_RSS,
        "{what}: {} MiB",
        u.max_rss_bytes >> 20
    );
}

/// The work bombs: name (under originals/), bytes, expected kind. The 8 GB sparse file is
/// written separately (`sparse.jpg`).
fn work_bombs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        // 3,000 legal extra scans: minutes of CPU for libjpeg, refused from the markers.
        (
            "scans.jpg",
            crate::bombs::repeated_scans_jpeg(1024, 1024, 3000),
            "too_many_scans",
        ),
        // 72 MP (under the pixel limit) × 200 samples: 14.4 GB decoded.
        (
            "deep.tif",
            crate::bombs::deep_tiff(8000, 9000, 200),
            "decoded_too_large",
        ),
        // 10,000 frames: libvips' n-pages says 1 past 9,999.
        (
            "frames.gif",
            crate::bombs::many_frames_gif(10_000),
            "too_many_frames",
        ),
    ]
}

const SPARSE_LEN: u64 = 8 << 30;

/// A temporary folder with an empty folder bucket (`bucket/originals/`) inside.
fn empty_bucket() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(bucket.join("originals")).unwrap();
    (tmp, bucket)
}

/// A folder bucket holding the work bombs and an 8 GB sparse file that starts like a JPEG.
fn bucket_with_bombs() -> (tempfile::TempDir, PathBuf) {
    let (tmp, bucket) = empty_bucket();
    for (name, bytes, _) in work_bombs() {
        std::fs::write(bucket.join("originals").join(name), bytes).unwrap();
    }
    crate::bombs::sparse_file(
        &bucket.join("originals/sparse.jpg"),
        SPARSE_LEN,
        &good_jpeg()[..64],
    );
    (tmp, bucket)
}

fn expected_kinds() -> Vec<(&'static str, &'static str)> {
    let mut kinds: Vec<_> = work_bombs()
        .into_iter()
        .map(|(name, _, kind)| (name, kind))
        .collect();
    kinds.push(("sparse.jpg", "input_too_large"));
    kinds
}

/// Runs `rendition ARGS` with JSON logs, waiting with wait4: (usage, stderr).
async fn run_measured(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (Usage, String) {
    let mut cmd = Spawn::rendition(cwd)
        .args(args)
        .json_logs()
        .env_remove("RUST_BACKTRACE")
        .envs(env.iter().copied())
        .command();
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut err = String::new();
        let mut out = String::new();
        let reader = std::thread::spawn(move || {
            stdout.read_to_string(&mut out).ok();
            out
        });
        stderr.read_to_string(&mut err).ok();
        let out = reader.join().unwrap();
        let usage = Usage {
            wall: Some(started.elapsed()),
            ..wait_usage(pid)
        };
        // The std Child must not wait again: forget it.
        std::mem::forget(child);
        (usage, format!("{out}{err}"))
    })
    .await
    .unwrap()
}

/// `rendition render INPUT --preset thumb -o OUT`, measured.
async fn render_thumb(
    cwd: &Path,
    input: &Path,
    out: &Path,
    env: &[(&str, &str)],
) -> (Usage, String) {
    let args = [
        "render",
        input.to_str().unwrap(),
        "--preset",
        "thumb",
        "-o",
        out.to_str().unwrap(),
    ];
    run_measured(cwd, &args, env).await
}

#[tokio::test]
async fn work_bombs_are_refused_by_render_within_bounds() {
    let (tmp, bucket) = bucket_with_bombs();
    for (name, kind) in expected_kinds() {
        let input = bucket.join("originals").join(name);
        let out = tmp.path().join(format!("{name}.webp"));
        let (usage, said) = render_thumb(tmp.path(), &input, &out, &[]).await;
        assert!(!usage.success, "{name}: {said}");
        assert!(said.contains(&format!("({kind})")), "{name}: {said}");
        assert!(!out.exists(), "{name}");
        assert_bounded(&format!("render {name}"), &usage);
    }
}

#[tokio::test]
async fn work_bombs_fail_their_job_alone_in_a_local_run_within_bounds() {
    let (tmp, bucket) = bucket_with_bombs();
    std::fs::write(bucket.join("originals/good.jpg"), good_jpeg()).unwrap();
    let (usage, said) = run_measured(
        tmp.path(),
        &["run", "--local", bucket.to_str().unwrap(), "--once"],
        &[],
    )
    .await;
    assert!(usage.success, "{said}");
    for (name, kind) in expected_kinds() {
        let record = bucket.join("failed").join(format!("{name}.json"));
        let record: FailureRecord = serde_json::from_slice(
            &std::fs::read(&record)
                .unwrap_or_else(|e| panic!("{name}: no failure record ({e}): {said}")),
        )
        .unwrap();
        assert_eq!(record.kind, kind, "{name}: {}", record.message);
    }
    let store = FsStore::new(&bucket).unwrap();
    let manifests = store.list("derived/").await.unwrap();
    assert!(
        manifests
            .iter()
            .any(|m| m.key.starts_with("derived/good.jpg/") && m.key.ends_with("manifest.json")),
        "the good source is rendered: {manifests:?}"
    );
    assert_bounded("run --local over the bombs", &usage);
}

#[tokio::test]
async fn work_bombs_get_422_from_serve_within_bounds() {
    let (tmp, bucket) = bucket_with_bombs();
    let mut app = spawn_serve(tmp.path(), &bucket, &[]);
    let addr = app.serving_addr(WAIT).await;
    let urls = UrlGenerator::new(&Settings::default());
    let store = FsStore::new(&bucket).unwrap();
    for (name, kind) in expected_kinds() {
        let source = format!("originals/{name}");
        let key = derived_key(&store, &source, preset("thumb", Format::Webp), "webp").await;
        let r = get(
            &addr,
            urls.for_key(&key, now_unix()).unwrap().as_bytes(),
            &[],
        )
        .await;
        assert_eq!((r.status, r.error_kind().as_str()), (422, kind), "{name}");
    }
    app.terminate();
    let pid = app.child.id().unwrap();
    let usage = tokio::task::spawn_blocking(move || wait_usage(pid))
        .await
        .unwrap();
    assert!(usage.success, "serve exits 0 on SIGTERM");
    assert_bounded("serve over the bombs", &usage);
}

#[tokio::test]
async fn a_fifo_in_the_bucket_is_refused_never_waited_on() {
    let (tmp, bucket) = empty_bucket();
    let fifo = bucket.join("originals/pipe.jpg");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let store = FsStore::new(&bucket).unwrap();
    // Nobody writes to the FIFO: opening it for reading would block forever.
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        store.get("originals/pipe.jpg", 1 << 20),
    )
    .await
    .expect("get answers without waiting on the FIFO");
    assert!(matches!(got, Err(StoreError::InvalidKey { .. })), "{got:?}");
    let head = tokio::time::timeout(Duration::from_secs(10), store.head("originals/pipe.jpg"))
        .await
        .expect("head answers without waiting on the FIFO");
    assert!(
        matches!(head, Err(StoreError::InvalidKey { .. })),
        "{head:?}"
    );
    // `render` on a FIFO: read without blocking, so it is an empty file, not a hang.
    let out = tmp.path().join("out.webp");
    let run = render_thumb(tmp.path(), &fifo, &out, &[]);
    let (usage, said) = tokio::time::timeout(WAIT, run).await.expect("render ends");
    assert!(!usage.success);
    assert!(said.contains("(unsupported_format)"), "{said}");
}

/// Polls for `bucket/failed/{name}.json` (bounded) and returns it.
async fn failure_record(bucket: &Path, name: &str) -> FailureRecord {
    let path = bucket.join("failed").join(format!("{name}.json"));
    eventually(WAIT, &format!("a failure record for {name}"), || async {
        serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
    })
    .await
}

/// The pid of the render helper that took the job for `key` (from the log).
async fn helper_of(app: &mut Running, key: &str) -> i32 {
    let line = app
        .wait_for(WAIT, "a helper taking the job", |v| {
            field(v, "message") == Some("rendering in sandbox") && field(v, "key") == Some(key)
        })
        .await;
    line.get("helper")
        .and_then(|p| p.as_i64())
        .expect("helper pid") as i32
}

/// Waits until `key` is rendered (its manifest written).
async fn rendered_in(app: &mut Running, key: &str) {
    app.wait_for(WAIT, "the next job rendered", |v| {
        field(v, "message") == Some("rendered") && field(v, "key") == Some(key)
    })
    .await;
}

/// A source libjpeg takes ~17 s of CPU to decode (30,000 legal extra scans), admitted by
/// raising `limits.max_scans`: the slow input the budgets must stop.
fn slow_jpeg() -> Vec<u8> {
    crate::bombs::repeated_scans_jpeg(2000, 2000, 30_000)
}

fn start_watching(tmp: &Path, bucket: &Path, env: &[(&str, &str)]) -> Running {
    let mut all = vec![
        ("RENDITION__LIMITS__MAX_SCANS", "100000"),
        ("RENDITION__RENDER__CONCURRENCY", "1"),
    ];
    all.extend_from_slice(env);
    Spawn::rendition(tmp)
        .args(["run", "--local"])
        .arg(bucket)
        .envs(all)
        .start()
}

async fn stop(app: Running) {
    app.terminate();
    let mut app = app;
    let status = tokio::time::timeout(WAIT, app.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_renderer_killed_mid_job_costs_that_job_alone() {
    let (tmp, bucket) = empty_bucket();
    let mut app = start_watching(tmp.path(), &bucket, &[]);
    let slow = slow_jpeg();
    for (name, signal) in [("segv", libc::SIGSEGV), ("kill", libc::SIGKILL)] {
        let file = format!("slow-{name}.jpg");
        std::fs::write(bucket.join("originals").join(&file), &slow).unwrap();
        let pid = helper_of(&mut app, &format!("originals/{file}")).await;
        // SAFETY: signalling the render helper (a child of our child) by its pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let record = failure_record(&bucket, &file).await;
        assert_eq!(record.kind, "decoder_crashed", "{}", record.message);
        assert!(!record.retryable);
        // The worker carries on with a new helper.
        let good = format!("good-{name}.jpg");
        std::fs::write(bucket.join("originals").join(&good), good_jpeg()).unwrap();
        rendered_in(&mut app, &format!("originals/{good}")).await;
    }
    stop(app).await;
}

#[tokio::test]
async fn a_render_over_its_time_budgets_costs_that_job_alone() {
    let slow = slow_jpeg();
    for (budget, env) in [
        ("deadline", ("RENDITION__RENDER__DEADLINE_SECS", "1")),
        ("cpu", ("RENDITION__RENDER__MAX_CPU_SECS", "1")),
    ] {
        let (tmp, bucket) = empty_bucket();
        let mut app = start_watching(tmp.path(), &bucket, &[env]);
        let started = std::time::Instant::now();
        std::fs::write(bucket.join("originals/slow.jpg"), &slow).unwrap();
        let record = failure_record(&bucket, "slow.jpg").await;
        assert_eq!(
            record.kind, "over_time_budget",
            "{budget}: {}",
            record.message
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{budget}: stopped after {:?}",
            started.elapsed()
        );
        std::fs::write(bucket.join("originals/good.jpg"), good_jpeg()).unwrap();
        rendered_in(&mut app, "originals/good.jpg").await;
        stop(app).await;
    }
}

#[tokio::test]
async fn a_render_over_its_memory_budget_costs_that_job_alone() {
    let (tmp, bucket) = empty_bucket();
    // One eager preset that holds a 6000×6000 frame in memory (smart crop) and encodes it.
    let mut app = start_watching(
        tmp.path(),
        &bucket,
        &[
            ("RENDITION__RENDER__MAX_MEMORY_MB", "450"),
            (
                "RENDITION__PRESETS__HUGE__SPEC",
                "w=6000,h=6000,fit=cover,g=attention,fm=webp",
            ),
            ("RENDITION__PRESETS__HUGE__EAGER", "true"),
        ],
    );
    std::fs::write(
        bucket.join("originals/big.jpg"),
        encode_jpeg(&quadrants(6000, 6000), 80),
    )
    .unwrap();
    let record = failure_record(&bucket, "big.jpg").await;
    assert_eq!(record.kind, "over_memory_budget", "{}", record.message);
    std::fs::write(bucket.join("originals/good.jpg"), good_jpeg()).unwrap();
    rendered_in(&mut app, "originals/good.jpg").await;
    stop(app).await;
}

#[tokio::test]
async fn the_sqs_worker_dead_letters_bombs_and_forged_keys_and_stays_up() {
    let world = crate::sqs::SqsWorld::new().await;
    let mut worker = world.worker(&[]);
    // A forged event: a key a little over S3's 1,024 bytes, in two-byte characters, so a
    // byte index at 1,024 falls inside one (it made `String::truncate` panic).
    let long = format!("originals/{}", "é".repeat(510));
    let event = serde_json::json!({"Records": [{
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": world.bucket().name}, "object": {"key": long}}
    }]});
    world.send(&event.to_string()).await;
    for (name, bytes, _) in work_bombs() {
        world.upload(&format!("originals/{name}"), bytes).await;
    }
    let mut kinds = BTreeMap::new();
    for _ in 0..4 {
        let (body, attrs) = world.dlq_message().await;
        let name = ["scans.jpg", "deep.tif", "frames.gif"]
            .into_iter()
            .find(|n| body.contains(n))
            .unwrap_or("long key");
        let kind = attrs
            .get("rendition-error-kind")
            .cloned()
            .unwrap_or_default();
        assert!(
            attrs
                .get("rendition-error")
                .is_some_and(|reason| reason.len() <= 1024),
            "{attrs:?}"
        );
        kinds.insert(name, kind);
    }
    let expected: BTreeMap<&str, String> = work_bombs()
        .into_iter()
        .map(|(name, _, kind)| (name, kind.to_string()))
        .chain([("long key", "invalid_key".to_string())])
        .collect();
    assert_eq!(kinds, expected);
    // Still consuming, with a renderer: a good upload completes.
    world
        .upload("originals/fine.jpg", encode_jpeg(&quadrants(640, 480), 90))
        .await;
    worker
        .wait_for(WAIT, "the good upload", |v| {
            field(v, "message") == Some("rendered") && field(v, "key") == Some("originals/fine.jpg")
        })
        .await;
    assert!(
        !worker
            .seen
            .iter()
            .any(|v| v.to_string().contains("panicked")),
        "no task panicked"
    );
    worker.terminate();
    let pid = worker.child.id().unwrap();
    let usage = tokio::task::spawn_blocking(move || wait_usage(pid))
        .await
        .unwrap();
    assert!(usage.success, "the worker exits 0 on SIGTERM");
    assert_bounded("sqs worker over the bombs", &usage);
}

/// A key's peak resident memory (VmHWM) while it runs, from /proc.
fn vm_hwm_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Pids of the render helpers started by `parent`.
fn helper_pids(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(") ")?.1;
                    rest.split(' ').nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn spawn_serve(tmp: &Path, bucket: &Path, env: &[(&str, &str)]) -> Running {
    let mut all = vec![
        (
            "RENDITION__URLS__SIGNING_KEYS",
            "[\"hostile-corpus-signing-key-0123456789abcdef\"]",
        ),
        ("RENDITION__URLS__SCHEME", "http"),
    ];
    all.extend_from_slice(env);
    Spawn::rendition(tmp).serve(bucket).envs(all).start()
}

fn signing_settings() -> Settings {
    let mut s = Settings::default();
    s.urls.signing_keys = vec![SIGNING_KEY.to_string()];
    s.urls.scheme = "http".into();
    s
}

#[tokio::test]
async fn serve_bounds_concurrent_misses_with_503_and_retry_after() {
    let (tmp, bucket) = empty_bucket();
    // Five 6 MP sources, ten distinct signed specs each: 50 distinct misses at once.
    for i in 0..5 {
        std::fs::write(
            bucket.join(format!("originals/p{i}.jpg")),
            encode_jpeg(&noise(3000, 2000, i + 1), 85),
        )
        .unwrap();
    }
    let mut app = spawn_serve(
        tmp.path(),
        &bucket,
        &[
            ("RENDITION__SERVE__MAX_RENDERS", "2"),
            ("RENDITION__SERVE__RENDER_QUEUE_MS", "500"),
        ],
    );
    let addr = app.serving_addr(WAIT).await;
    let serve_pid = app.child.id().unwrap();
    let urls = UrlGenerator::new(&signing_settings());
    let store = FsStore::new(&bucket).unwrap();
    let mut targets = Vec::new();
    for i in 0..5 {
        for w in 0..10 {
            let spec = format!("w={},fm=webp", 200 + w).parse().unwrap();
            let key = derived_key(
                &store,
                &format!("originals/p{i}.jpg"),
                Variant::Spec(spec),
                "webp",
            )
            .await;
            targets.push(urls.for_key(&key, now_unix()).unwrap());
        }
    }
    let answers =
        futures::future::join_all(targets.iter().map(|t| get(&addr, t.as_bytes(), &[]))).await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let busy: Vec<&Http> = answers.iter().filter(|r| r.status == 503).collect();
    eprintln!("50 concurrent misses: {ok} rendered, {} busy", busy.len());
    assert_eq!(ok + busy.len(), 50, "only 200 or 503");
    assert!(ok >= 2, "renders went through");
    assert!(
        !busy.is_empty(),
        "the excess is refused, not queued without bound"
    );
    for r in &busy {
        assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
        assert_eq!(r.error_kind(), "busy");
    }
    let serve_peak = vm_hwm_bytes(serve_pid);
    let helpers = helper_pids(serve_pid);
    assert_eq!(helpers.len(), 2, "one helper per render slot (pool = CPUs)");
    let helper_peak = helpers.iter().map(|p| vm_hwm_bytes(*p)).max().unwrap_or(0);
    eprintln!(
        "serve peak rss {} MiB, largest helper {} MiB",
        serve_peak >> 20,
        helper_peak >> 20
    );
    assert!(serve_peak < 512 << 20, "serve: {} MiB", serve_peak >> 20);
    assert!(helper_peak < MAX_RSS, "helper: {} MiB", helper_peak >> 20);
    // Asked again one at a time, every refused one renders.
    for (t, r) in targets.iter().zip(&answers) {
        if r.status == 503 {
            let again = get(&addr, t.as_bytes(), &[]).await;
            assert_eq!(
                again.status,
                200,
                "{}",
                String::from_utf8_lossy(&again.body)
            );
        }
    }
    stop(app).await;
}

#[tokio::test]
async fn serve_answers_a_render_over_budget_422_and_sigterm_ends_renders_in_flight() {
    let (tmp, bucket) = empty_bucket();
    std::fs::write(bucket.join("originals/slow.jpg"), slow_jpeg()).unwrap();
    std::fs::write(bucket.join("originals/slow2.jpg"), slow_jpeg()).unwrap();
    let mut app = spawn_serve(
        tmp.path(),
        &bucket,
        &[
            ("RENDITION__LIMITS__MAX_SCANS", "100000"),
            ("RENDITION__RENDER__DEADLINE_SECS", "2"),
            ("RENDITION__SERVE__WAIT_TIMEOUT_SECS", "5"),
            ("RENDITION__WORKER__SHUTDOWN_GRACE_SECS", "2"),
        ],
    );
    let addr = app.serving_addr(WAIT).await;
    let urls = UrlGenerator::new(&Settings::default());
    let store = FsStore::new(&bucket).unwrap();
    let thumb = preset("thumb", Format::Webp);
    let key = derived_key(&store, "originals/slow.jpg", thumb.clone(), "webp").await;
    let started = std::time::Instant::now();
    let r = get(
        &addr,
        urls.for_key(&key, now_unix()).unwrap().as_bytes(),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.error_kind().as_str()),
        (422, "over_time_budget")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A render in flight when SIGTERM comes: serve ends within its grace period, and the
    // helper rendering it is gone.
    let key = derived_key(&store, "originals/slow2.jpg", thumb, "webp").await;
    let target = urls.for_key(&key, now_unix()).unwrap();
    let addr2 = addr.clone();
    let pending = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(&addr2).await.unwrap();
        let req = format!("GET {target} HTTP/1.1\r\nHost: {addr2}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
    });
    let helper = helper_of(&mut app, &key).await;
    let stopping = std::time::Instant::now();
    app.terminate();
    let status = tokio::time::timeout(Duration::from_secs(10), app.child.wait())
        .await
        .expect("serve ends within the grace period")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    let _ = pending.await;
    // The helper was killed with its parent's exit (kill on drop, PDEATHSIG); give the
    // kernel a moment to reap it.
    let what = format!("helper {helper} to go with serve");
    eventually(Duration::from_secs(5), &what, || async {
        // SAFETY: kill with signal 0 only checks whether the pid exists.
        (unsafe { libc::kill(helper, 0) } != 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn libvips_warnings_are_log_events_with_the_job_key_not_raw_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("cmyk.jpg");
    // A CMYK JPEG without a profile: libvips warns while converting it.
    std::fs::write(&input, cmyk_jpeg_without_profile()).unwrap();
    let out = tmp.path().join("out.webp");
    for sandbox in ["true", "false"] {
        let env = [("RENDITION__RENDER__SANDBOX", sandbox)];
        let (usage, said) = render_thumb(tmp.path(), &input, &out, &env).await;
        assert!(usage.success, "{said}");
        let mut warned = false;
        for line in said.lines().filter(|l| !l.contains(" → ")) {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|_| panic!("sandbox={sandbox}: a raw line on stderr: {line}"));
            if v.to_string().contains("VIPS-WARNING") || field(&v, "domain") == Some("VIPS") {
                assert_eq!(field(&v, "level"), Some("WARN"), "{v}");
                assert_eq!(field(&v, "key"), input.to_str(), "{v}");
                warned = true;
            }
        }
        assert!(
            warned,
            "sandbox={sandbox}: no libvips warning logged: {said}"
        );
    }
}

#[tokio::test]
async fn helpers_are_recycled_after_their_jobs_and_above_their_memory() {
    let (tmp, bucket) = empty_bucket();
    for i in 0..3 {
        std::fs::write(bucket.join(format!("originals/g{i}.jpg")), good_jpeg()).unwrap();
    }
    let args = ["run", "--local", bucket.to_str().unwrap(), "--once"];
    let derived = bucket.join("derived");
    // The helper pid of each of the three jobs of one `run --local --once` with `extra`.
    let helpers_of_a_run = |extra: Option<(&'static str, &'static str)>| {
        let (tmp, args, derived) = (tmp.path(), &args, &derived);
        async move {
            let _ = std::fs::remove_dir_all(derived);
            let mut env = vec![("RENDITION__RENDER__CONCURRENCY", "1")];
            env.extend(extra);
            let (usage, said) = run_measured(tmp, args, &env).await;
            assert!(usage.success, "{said}");
            let pids: Vec<i64> = said
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| field(v, "message") == Some("rendering in sandbox"))
                .filter_map(|v| v.get("helper").and_then(|p| p.as_i64()))
                .collect();
            assert_eq!(pids.len(), 3, "{said}");
            pids.into_iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        }
    };
    // Recycled after every job: three jobs, three helpers.
    let recycled = Some(("RENDITION__RENDER__RECYCLE_AFTER_JOBS", "1"));
    assert_eq!(helpers_of_a_run(recycled).await, 3);
    // Above the RSS threshold (1 MiB: every helper is) after each job: the same.
    let too_big = Some(("RENDITION__RENDER__RECYCLE_ABOVE_RSS_MB", "1"));
    assert_eq!(helpers_of_a_run(too_big).await, 3);
    // By default one helper does all three.
    assert_eq!(helpers_of_a_run(None).await, 1);
}
