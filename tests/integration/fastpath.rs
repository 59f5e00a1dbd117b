//! The fast PNG decode (`rendition_image::png_fast`), guarded for fidelity: every render
//! of an eligible PNG (the fetched photos, and generated grey, grey + alpha, RGB, RGBA and
//! ICC-tagged ones) is byte-for-byte the render of the same pixels and chunks written as
//! an Adam7-interlaced PNG, which always goes through libvips' own loader (libpng). Each
//! test checks which decoder ran, so it fails when the fast path is not taken, and what
//! libvips transforms (palette, 16-bit, `tRNS`, Adam7) is checked to stay with libvips.

use std::io::Write;

use rendition_image::render::{render, RenderOutput, VariantRequest};
use rendition_image::vips::Image;
use rendition_pipeline::config::{Limits, RenderSettings};

use crate::harness::*;
use crate::progressive::decoder_of;

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Chunks as (type, data).
type Chunks = Vec<([u8; 4], Vec<u8>)>;

/// Specs covering the decode's uses: a thumbnail, a larger frame, a cover crop, alpha
/// flattened to JPEG, lossless WebP (every pixel counts).
const SPECS: &[&str] = &[
    "w=300,fm=png",
    "w=1000,fm=webp,lossless=true",
    "w=400,h=400,fit=cover,fm=png",
    "w=640,fm=jpeg,q=90",
];

fn render_all(source: &[u8]) -> RenderOutput {
    let requests: Vec<VariantRequest> = SPECS
        .iter()
        .enumerate()
        .map(|(i, spec)| VariantRequest {
            name: format!("v{i}"),
            spec: spec.parse().unwrap(),
        })
        .collect();
    render(
        source,
        &requests,
        &Limits::default(),
        &RenderSettings::default(),
    )
    .expect("renders")
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// The chunks of a PNG as (type, data).
fn chunks(png: &[u8]) -> Chunks {
    let mut rest = png.strip_prefix(SIGNATURE).expect("a PNG");
    let mut out = Vec::new();
    while rest.len() >= 12 {
        let len = u32::from_be_bytes(rest[0..4].try_into().unwrap()) as usize;
        out.push((rest[4..8].try_into().unwrap(), rest[8..8 + len].to_vec()));
        rest = &rest[12 + len..];
    }
    out
}

/// The 7 Adam7 passes: (x start, y start, x step, y step).
const ADAM7: [(usize, usize, usize, usize); 7] = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
];

/// A PNG of `pixels` (`width × height × bytes_per_pixel`, samples of `depth` bits,
/// big-endian when 16), colour type `colour`, rows unfiltered, Adam7-interlaced when
/// `interlaced`, with `extra` chunks (type, data) before the image data.
fn write_png(
    width: usize,
    height: usize,
    colour: u8,
    depth: u8,
    pixels: &[u8],
    interlaced: bool,
    extra: &[([u8; 4], Vec<u8>)],
) -> Vec<u8> {
    let bpp = pixels.len() / (width * height);
    let mut raw = Vec::with_capacity(pixels.len() + height * 2);
    let passes: &[(usize, usize, usize, usize)] = if interlaced { &ADAM7 } else { &[(0, 0, 1, 1)] };
    for &(x0, y0, dx, dy) in passes {
        if x0 >= width || y0 >= height {
            continue;
        }
        for y in (y0..height).step_by(dy) {
            raw.push(0); // filter: none
            for x in (x0..width).step_by(dx) {
                let at = (y * width + x) * bpp;
                raw.extend_from_slice(&pixels[at..at + bpp]);
            }
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&raw).unwrap();
    let idat = z.finish().unwrap();
    let mut ihdr = (width as u32).to_be_bytes().to_vec();
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[depth, colour, 0, 0, u8::from(interlaced)]);
    let mut out = SIGNATURE.to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    for (kind, data) in extra {
        out.extend(chunk(kind, data));
    }
    for part in idat.chunks(1 << 20) {
        out.extend(chunk(b"IDAT", part));
    }
    out.extend(chunk(b"IEND", &[]));
    out
}

/// The same pixels and chunks as `png` (8-bit, not interlaced), Adam7-interlaced: what
/// only libvips' loader decodes. The pixels are libvips' own decode of `png`.
fn interlaced_copy(png: &[u8]) -> Vec<u8> {
    let all = chunks(png);
    let ihdr = &all[0].1;
    assert_eq!(&all[0].0, b"IHDR");
    let width = u32::from_be_bytes(ihdr[0..4].try_into().unwrap()) as usize;
    let height = u32::from_be_bytes(ihdr[4..8].try_into().unwrap()) as usize;
    let (depth, colour) = (ihdr[8], ihdr[9]);
    assert_eq!(depth, 8);
    let pixels = Image::open(png).unwrap().pixels().unwrap();
    let before_idat: Vec<_> = all[1..]
        .iter()
        .take_while(|(kind, _)| kind != b"IDAT")
        .cloned()
        .collect();
    write_png(width, height, colour, 8, &pixels, true, &before_idat)
}

/// Renders `png` and its interlaced copy; asserts the fast path ran for the one and not
/// for the other, and that every variant is the same bytes.
fn assert_same_as_libvips(name: &str, png: &[u8]) {
    let fast = render_all(png);
    assert_eq!(decoder_of(&fast), "png_fast", "{name}: fast path not taken");
    let reference = render_all(&interlaced_copy(png));
    assert_eq!(decoder_of(&reference), "libvips", "{name}: reference");
    assert_eq!(fast.variants.len(), SPECS.len(), "{name}");
    for (got, want) in fast.variants.iter().zip(&reference.variants) {
        assert_eq!(got.size, want.size, "{name} {}", got.spec);
        assert!(
            got.bytes == want.bytes,
            "{name} {}: output differs from libvips' decode",
            got.spec
        );
    }
    assert_eq!(fast.placeholder, reference.placeholder, "{name}");
}

/// Deterministic test pixels: gradients and a pattern in every band, alpha from fully
/// transparent to opaque.
fn pattern(width: usize, height: usize, bands: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height * bands);
    for y in 0..height {
        for x in 0..width {
            for b in 0..bands {
                let v = match b {
                    0 => (x * 255 / width.max(1)) ^ ((y * 3) & 0x18),
                    1 => y * 255 / height.max(1),
                    2 => (x * 7 + y * 13) ^ (x * y / 5),
                    _ => (x + 2 * y) * 255 / (width + 2 * height),
                };
                out.push(v as u8);
            }
        }
    }
    out
}

/// The iCCP chunk of a fetched photo that has one: a real camera/display profile.
fn real_iccp() -> Vec<u8> {
    photos("png", 0)
        .into_iter()
        .find_map(|(path, ..)| {
            let bytes = std::fs::read(path).unwrap();
            chunks(&bytes)
                .into_iter()
                .find(|(kind, _)| kind == b"iCCP")
                .map(|(_, data)| data)
        })
        .expect("a fetched PNG with an ICC profile")
}

#[test]
fn fetched_pngs_decode_fast_to_libvips_pixels() {
    let found = photos("png", 0);
    assert!(
        found.len() >= 6,
        "the fetched photos hold 8 PNGs, found {}",
        found.len()
    );
    for (path, ..) in found {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_same_as_libvips(&name, &std::fs::read(&path).unwrap());
    }
}

#[test]
fn generated_eligible_pngs_decode_fast_to_libvips_pixels() {
    let (w, h) = (1283, 851);
    let iccp = real_iccp();
    let cases: Vec<(&str, u8, usize, Chunks)> = vec![
        ("grey", 0, 1, vec![]),
        ("grey+alpha", 4, 2, vec![]),
        (
            "rgb",
            2,
            3,
            vec![(*b"pHYs", vec![0, 0, 11, 19, 0, 0, 11, 19, 1])],
        ),
        (
            "rgba",
            6,
            4,
            vec![(*b"gAMA", 45455u32.to_be_bytes().to_vec())],
        ),
        ("rgb+iccp", 2, 3, vec![(*b"iCCP", iccp.clone())]),
        ("rgba+iccp", 6, 4, vec![(*b"iCCP", iccp)]),
    ];
    for (name, colour, bands, extra) in cases {
        let png = write_png(w, h, colour, 8, &pattern(w, h, bands), false, &extra);
        assert_same_as_libvips(name, &png);
    }
}

#[test]
fn what_libvips_transforms_stays_with_libvips() {
    let (w, h) = (301, 207);
    let grey = pattern(w, h, 1);
    let wide: Vec<u8> = pattern(w, h, 3)
        .iter()
        .flat_map(|&v| [v, v ^ 0x5a])
        .collect();
    let palette: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, i / 2]).collect();
    let cases = [
        (
            "palette",
            write_png(w, h, 3, 8, &grey, false, &[(*b"PLTE", palette)]),
        ),
        ("16-bit", write_png(w, h, 2, 16, &wide, false, &[])),
        ("interlaced", write_png(w, h, 0, 8, &grey, true, &[])),
        (
            "tRNS",
            write_png(w, h, 0, 8, &grey, false, &[(*b"tRNS", vec![0, 128])]),
        ),
    ];
    for (name, png) in cases {
        let out = render_all(&png);
        assert_eq!(decoder_of(&out), "libvips", "{name}");
        assert_eq!(out.variants.len(), SPECS.len(), "{name}");
    }
}

#[test]
fn a_truncated_png_gets_libvips_answer() {
    let (w, h) = (640, 480);
    let png = write_png(w, h, 2, 8, &pattern(w, h, 3), false, &[]);
    let cut = &png[..png.len() * 2 / 3];
    let requests = [VariantRequest {
        name: "v".into(),
        spec: "w=100,fm=png".parse().unwrap(),
    }];
    let got = render(
        cut,
        &requests,
        &Limits::default(),
        &RenderSettings::default(),
    );
    // libvips (fail_on=error) refuses the truncated pixels; so must the fast path.
    let error = got.expect_err("a truncated PNG does not render");
    assert_eq!(error.kind(), "corrupt_image", "{error}");
}
