//! Sources other tools accept (issue 15), found by running a public image test corpus
//! through `render`, each rebuilt here from a file generated at test time:
//! - a BigTIFF (`II+`/`MM\0+`), written by libvips' own `tiffsave --bigtiff`: allowed by
//!   the sniffer, its pages counted from the container;
//! - a JPEG whose ICC profile lcms cannot link (a sound header, garbage tag data), in an
//!   APP2 segment before or after the SOF marker: libvips' `thumbnail` fails on it, we
//!   ignore the profile with a warning and take the pixels as sRGB, as sharp does;
//! - a 10-bit HEIF (libheif's `heif-enc`) whose embedded thumbnail declares another size
//!   than it decodes to: libvips' shrink-on-load picks that thumbnail and fails ("bad
//!   image dimensions on decode"), we decode the full image instead, with a warning.
//!
//! Colours are checked on a four-quadrant card, sampled away from the edges.

use std::path::Path;
use std::process::Command;

use image::{DynamicImage, ImageBuffer, ImageFormat, RgbImage};
use rendition_image::container::tiff_pages;
use rendition_image::render::{render, RenderError, RenderOutput, Unsupported, VariantRequest};
use rendition_image::sniff::SourceFormat;
use rendition_image::vips::Image;
use rendition_pipeline::config::{Limits, RenderSettings};

use crate::harness::*;

fn run_with(bytes: &[u8], specs: &[&str], limits: &Limits) -> Result<RenderOutput, RenderError> {
    let reqs: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| VariantRequest {
            name: format!("v{i}"),
            spec: s.parse().unwrap(),
        })
        .collect();
    let out = render(bytes, &reqs, limits, &RenderSettings::default())?;
    match out.skipped.first() {
        Some(skipped) => Err(skipped.error.clone()),
        None => Ok(out),
    }
}

fn run(bytes: &[u8], specs: &[&str]) -> Result<RenderOutput, RenderError> {
    run_with(bytes, specs, &Limits::default())
}

/// Runs a command-line tool that must succeed; `package` is where it comes from.
fn tool(program: &str, package: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} ({package}, scripts/install-deps.sh --tests): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every quadrant of the test card within `tolerance` of its colour.
fn assert_quadrants(img: &RgbImage, tolerance: u8, what: &str) {
    for (fx, fy, want) in [
        (0.25, 0.25, RED),
        (0.75, 0.25, GREEN),
        (0.25, 0.75, BLUE),
        (0.75, 0.75, YELLOW),
    ] {
        let got = sample(img, fx, fy);
        assert!(
            close(got, want, tolerance),
            "{what} at ({fx},{fy}): {got:?}, want {want:?}"
        );
    }
}

// ---- BigTIFF --------------------------------------------------------------------------

#[test]
fn bigtiff_renders_and_its_pages_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("card.png");
    std::fs::write(&png, encode_png(&quadrants(120, 80))).unwrap();
    let tif = dir.path().join("card.tif");
    tool(
        "vips",
        "libvips-tools",
        &["tiffsave", path(&png), path(&tif), "--bigtiff"],
    );
    let bytes = std::fs::read(&tif).unwrap();
    assert!(bytes.starts_with(b"II+\0"), "a BigTIFF: {:?}", &bytes[..8]);
    assert_eq!(tiff_pages(&bytes), Some(1));
    let out = run(&bytes, &["w=60,fm=png", "w=60,fm=jpeg,q=95"])
        .unwrap_or_else(|e| panic!("BigTIFF: {e} ({})", e.kind()));
    assert_eq!(out.source.format, SourceFormat::Tiff);
    assert_eq!(out.source.frames, 1);
    for v in &out.variants {
        assert_eq!((v.size.width, v.size.height), (60, 40), "{}", v.spec);
        assert_quadrants(&decode(&v.bytes), 20, &format!("BigTIFF → {}", v.spec));
    }

    // Three pages of 120×80: the walker follows BigTIFF's 8-byte offsets (read as a
    // classic TIFF's 4-byte ones the chain would end at the first), and the frame limit
    // sees every page.
    let strip = dir.path().join("strip.png");
    std::fs::write(&strip, encode_png(&quadrants(120, 240))).unwrap();
    let pages = dir.path().join("pages.tif");
    tool(
        "vips",
        "libvips-tools",
        &[
            "tiffsave",
            path(&strip),
            path(&pages),
            "--bigtiff",
            "--page-height",
            "80",
        ],
    );
    let bytes = std::fs::read(&pages).unwrap();
    assert!(bytes.starts_with(b"II+\0"));
    assert_eq!(tiff_pages(&bytes), Some(3));
    let out = run(&bytes, &["w=60,fm=png"]).unwrap();
    assert_eq!(out.source.frames, 3);
    assert_eq!(
        (out.variants[0].size.width, out.variants[0].size.height),
        (60, 40),
        "the first page"
    );
    let limits = Limits {
        max_frames: 2,
        ..Limits::default()
    };
    assert_eq!(
        run_with(&bytes, &["w=60,fm=png"], &limits).unwrap_err(),
        RenderError::Unsupported(Unsupported::TooManyFrames {
            frames: 3,
            limit: 2
        })
    );
}

// ---- a broken ICC profile -------------------------------------------------------------

/// An RGB display profile lcms opens and cannot link: a sound 128-byte header and tag
/// table naming every tag a matrix/TRC profile needs (so libvips' checks of colour space,
/// bands and intent pass), each tag's data garbage.
fn broken_icc_profile() -> Vec<u8> {
    const TAGS: [&[u8; 4]; 7] = [
        b"wtpt", b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC",
    ];
    const TAG_LEN: u32 = 20;
    let table_end = 128 + 4 + 12 * TAGS.len() as u32;
    let size = table_end + TAG_LEN * TAGS.len() as u32;
    let mut p = Vec::with_capacity(size as usize);
    p.extend_from_slice(&size.to_be_bytes());
    p.extend_from_slice(&[0; 4]); // preferred CMM
    p.extend_from_slice(&[2, 0x10, 0, 0]); // version 2.1
    p.extend_from_slice(b"mntrRGB XYZ ");
    p.extend_from_slice(&[0; 12]); // date
    p.extend_from_slice(b"acsp");
    p.extend_from_slice(&[0; 4 + 4 + 4 + 4 + 8 + 4]); // platform … rendering intent
    for v in [0x0000_F6D6u32, 0x0001_0000, 0x0000_D32D] {
        p.extend_from_slice(&v.to_be_bytes()); // D50 illuminant
    }
    p.resize(128, 0); // creator, ID, reserved
    p.extend_from_slice(&(TAGS.len() as u32).to_be_bytes());
    for (i, sig) in TAGS.iter().enumerate() {
        p.extend_from_slice(*sig);
        p.extend_from_slice(&(table_end + TAG_LEN * i as u32).to_be_bytes());
        p.extend_from_slice(&TAG_LEN.to_be_bytes());
    }
    p.resize(size as usize, 0xAB);
    p
}

/// An APP2 segment carrying `profile` as the only chunk of an ICC profile.
fn icc_segment(profile: &[u8]) -> Vec<u8> {
    let mut payload = b"ICC_PROFILE\0\x01\x01".to_vec();
    payload.extend_from_slice(profile);
    let mut s = vec![0xFF, 0xE2];
    s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(&payload);
    s
}

/// `jpeg` with `segment` right after SOI, or right after the SOF segment.
fn with_segment(jpeg: &[u8], segment: &[u8], after_sof: bool) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let at = if after_sof {
        let mut pos = 2;
        loop {
            assert_eq!(jpeg[pos], 0xFF, "a marker at {pos}");
            let code = jpeg[pos + 1];
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            pos += 2 + len;
            if matches!(code, 0xC0..=0xC2) {
                break pos;
            }
            assert_ne!(code, 0xDA, "no SOF before the scan");
        }
    } else {
        2
    };
    [&jpeg[..at], segment, &jpeg[at..]].concat()
}

/// The card as a JPEG whose ICC profile is broken: before the SOF marker, after it (where
/// libjpeg still hands it to libvips), and one that is not a profile at all.
fn broken_profile_jpegs() -> Vec<(&'static str, Vec<u8>)> {
    let jpeg = encode_jpeg(&quadrants(160, 120), 95);
    let broken = icc_segment(&broken_icc_profile());
    let garbage = icc_segment(&[0x5A; 300]);
    vec![
        (
            "unlinkable profile before SOF",
            with_segment(&jpeg, &broken, false),
        ),
        (
            "unlinkable profile after SOF",
            with_segment(&jpeg, &broken, true),
        ),
        // libvips drops a profile it cannot even open, with a warning of its own; kept
        // so that both kinds of broken stay covered.
        (
            "garbage profile after SOF",
            with_segment(&jpeg, &garbage, true),
        ),
    ]
}

#[test]
fn jpeg_with_a_broken_icc_profile_renders_as_srgb() {
    for (what, bytes) in broken_profile_jpegs() {
        let header = Image::open(&bytes).unwrap().header();
        assert!(header.has_icc, "{what}: libvips sees the profile");
        let out = run(
            &bytes,
            &["w=80,fm=png", "w=80,fm=jpeg,q=95", "w=40,fm=webp,q=95"],
        )
        .unwrap_or_else(|e| panic!("{what}: {e} ({})", e.kind()));
        let sizes: Vec<_> = out
            .variants
            .iter()
            .map(|v| (v.size.width, v.size.height))
            .collect();
        assert_eq!(sizes, [(80, 60), (80, 60), (40, 30)], "{what}");
        for v in &out.variants {
            assert_quadrants(&decode(&v.bytes), 20, &format!("{what} → {}", v.spec));
        }
        // Ignoring the profile does not excuse the pixels: cut short, it is still corrupt.
        let truncated = &bytes[..bytes.len() * 2 / 3];
        let err = run(truncated, &["w=80,fm=png"]).unwrap_err();
        assert_eq!(err.kind(), "corrupt_image", "{what}, truncated: {err}");
    }
}

// ---- a HEIF thumbnail of other dimensions ---------------------------------------------

/// A box's payload range and type, from `bytes[pos..end]`.
fn next_box(bytes: &[u8], pos: usize, end: usize) -> Option<([u8; 4], usize, usize)> {
    let header = bytes.get(pos..pos + 8)?;
    let size = u32::from_be_bytes(header[0..4].try_into().unwrap()) as usize;
    let kind: [u8; 4] = header[4..8].try_into().unwrap();
    let (start, size) = match size {
        1 => {
            let large = bytes.get(pos + 8..pos + 16)?;
            (
                pos + 16,
                u64::from_be_bytes(large.try_into().unwrap()) as usize,
            )
        }
        0 => (pos + 8, end - pos),
        n => (pos + 8, n),
    };
    (size >= start - pos && pos + size <= end).then_some((kind, start, pos + size))
}

/// The boxes in `bytes[start..end]`: type, payload start, end.
fn boxes(bytes: &[u8], start: usize, end: usize) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut pos = start;
    while let Some(b) = next_box(bytes, pos, end) {
        pos = b.2;
        out.push(b);
    }
    out
}

fn child(list: &[([u8; 4], usize, usize)], kind: &[u8; 4]) -> ([u8; 4], usize, usize) {
    *list
        .iter()
        .find(|b| &b.0 == kind)
        .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(kind)))
}

/// Where the `ispe` (declared width and height) of a HEIF's thumbnail item is: the item
/// an `iref` `thmb` reference starts from, its properties from `ipma`, found in `ipco`.
/// Returns the offset of the width (the height follows) as written by libheif 1.15.
fn thumbnail_ispe(bytes: &[u8]) -> usize {
    let u16_at = |at: usize| usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
    let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let top = boxes(bytes, 0, bytes.len());
    let meta = child(&top, b"meta");
    let meta = boxes(bytes, meta.1 + 4, meta.2); // a full box
    let iref = child(&meta, b"iref");
    assert_eq!(bytes[iref.1], 0, "iref version 0: 16-bit item IDs");
    let thmb = child(&boxes(bytes, iref.1 + 4, iref.2), b"thmb");
    let thumbnail = u16_at(thmb.1);
    let iprp = child(&meta, b"iprp");
    let iprp = boxes(bytes, iprp.1, iprp.2);
    let properties = {
        let ipco = child(&iprp, b"ipco");
        boxes(bytes, ipco.1, ipco.2)
    };
    let ipma = child(&iprp, b"ipma");
    let (version, flags) = (bytes[ipma.1], bytes[ipma.1 + 3]);
    let mut pos = ipma.1 + 4;
    let entries = u32_at(pos);
    pos += 4;
    for _ in 0..entries {
        let item = if version < 1 {
            pos += 2;
            u16_at(pos - 2)
        } else {
            pos += 4;
            u32_at(pos - 4)
        };
        let count = usize::from(bytes[pos]);
        pos += 1;
        for _ in 0..count {
            let index = if flags & 1 == 1 {
                pos += 2;
                u16_at(pos - 2) & 0x7FFF
            } else {
                pos += 1;
                usize::from(bytes[pos - 1] & 0x7F)
            };
            // Property indices count from 1.
            let property = properties[index - 1];
            if item == thumbnail && &property.0 == b"ispe" {
                return property.1 + 4; // a full box
            }
        }
    }
    panic!("the thumbnail item {thumbnail} has no ispe");
}

/// The card, 640×480, as a 10-bit HEIF with a 64×48 thumbnail, by libheif's `heif-enc`.
fn ten_bit_heif_with_thumbnail(dir: &Path) -> Vec<u8> {
    let card = quadrants(640, 480);
    let deep: ImageBuffer<image::Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(640, 480, |x, y| {
        image::Rgb(card.get_pixel(x, y).0.map(|c| u16::from(c) * 257))
    });
    let png = dir.join("card16.png");
    DynamicImage::ImageRgb16(deep)
        .save_with_format(&png, ImageFormat::Png)
        .unwrap();
    let heic = dir.join("card.heic");
    tool(
        "heif-enc",
        "libheif-examples",
        &[
            "-b",
            "10",
            "-t",
            "64",
            "-q",
            "90",
            "-o",
            path(&heic),
            path(&png),
        ],
    );
    std::fs::read(&heic).unwrap()
}

#[test]
fn heif_whose_thumbnail_is_not_its_declared_size_renders_from_the_full_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = ten_bit_heif_with_thumbnail(dir.path());
    let header = Image::open(&bytes).unwrap().header();
    assert_eq!((header.width, header.height), (640, 480));
    assert_eq!(header.sample_bytes, 2, "10 bits a sample decode to 16");
    let at = thumbnail_ispe(&bytes);
    let declared = |b: &[u8]| {
        let v = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        (v(at), v(at + 4))
    };
    assert_eq!(declared(&bytes), (64, 48), "heif-enc's thumbnail");
    // As written, small variants come from the thumbnail and are right.
    let out = run(&bytes, &["w=32,h=24,fm=png"]).unwrap();
    assert_quadrants(&decode(&out.variants[0].bytes), 20, "intact HEIF");

    // The thumbnail now declares 80×60 but still decodes to 64×48.
    bytes[at..at + 4].copy_from_slice(&80u32.to_be_bytes());
    bytes[at + 4..at + 8].copy_from_slice(&60u32.to_be_bytes());
    assert_eq!(declared(&bytes), (80, 60));
    let broken = dir.path().join("broken.heic");
    std::fs::write(&broken, &bytes).unwrap();
    // libvips' own thumbnail fails on it: this is the file the corpus had.
    let cli = Command::new("vips")
        .args([
            "thumbnail",
            path(&broken),
            path(&dir.path().join("x.png")),
            "32",
        ])
        .output()
        .expect("vips CLI (libvips-tools)");
    assert!(!cli.status.success(), "libvips' thumbnail refuses it");
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("bad image dimensions on decode"),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    // Variants under the declared thumbnail size: the decode (to the larger of them)
    // shrinks on load to the thumbnail, which fails, then decodes the full image.
    let out = run(&bytes, &["w=32,h=24,fm=png", "w=60,fm=jpeg,q=95"])
        .unwrap_or_else(|e| panic!("{e} ({})", e.kind()));
    assert_eq!(out.source.format, SourceFormat::Heif);
    let sizes: Vec<_> = out
        .variants
        .iter()
        .map(|v| (v.size.width, v.size.height))
        .collect();
    assert_eq!(sizes, [(32, 24), (60, 45)]);
    for v in &out.variants {
        assert_quadrants(&decode(&v.bytes), 20, &format!("HEIF → {}", v.spec));
    }
}

// ---- the warnings ---------------------------------------------------------------------

/// The real binary (render helper, sandbox and all) renders both and says what it
/// ignored, with the key of the job.
#[test]
fn what_was_ignored_is_logged_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, jpeg) = broken_profile_jpegs().swap_remove(1);
    std::fs::write(dir.path().join("icc.jpg"), jpeg).unwrap();
    let mut heif = ten_bit_heif_with_thumbnail(dir.path());
    let at = thumbnail_ispe(&heif);
    heif[at..at + 8].copy_from_slice(&[0, 0, 0, 80, 0, 0, 0, 60]);
    std::fs::write(dir.path().join("thumb.heic"), heif).unwrap();
    for (name, said) in [
        ("icc.jpg", "ignoring a broken ICC profile"),
        ("thumb.heic", "ignoring a broken embedded thumbnail"),
    ] {
        let out = Spawn::rendition(dir.path())
            .args([
                "render",
                name,
                "--spec",
                "w=32,h=24,fm=png",
                "-o",
                "out.png",
            ])
            .json_logs()
            .output_blocking();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let warned = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| {
                field(&v, "level") == Some("WARN")
                    && field(&v, "key") == Some(name)
                    && field(&v, "message").is_some_and(|m| m.contains(said))
            });
        assert!(warned, "{name}: no warning {said:?} in\n{stderr}");
        let img = decode(&std::fs::read(dir.path().join("out.png")).unwrap());
        assert_eq!(img.dimensions(), (32, 24), "{name}");
        assert_quadrants(&img, 20, name);
    }
}
