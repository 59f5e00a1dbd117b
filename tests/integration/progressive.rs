//! JPEG decode fast paths (`rendition_image::progressive`, `render.fast_shrink_on_load`),
//! guarded on the real photos: a progressive JPEG decoded at 1/8 from its DC scans alone
//! gives the pixels of the 1/8 decode of the whole file, bit for bit — libvips' own output
//! where libvips decodes at 1/8 itself (shrink ≥ 16), and sharp's where sharp does (shrink
//! ≥ 8, its default `fastShrinkOnLoad`). Each test also checks which decoder ran, so it
//! fails when a fast path is not taken. `--nocapture` prints the figures.

use image::RgbImage;
use rendition_image::progressive;
use rendition_image::render::{render, RenderOutput, VariantRequest};
use rendition_image::vips::Image;
use rendition_pipeline::config::{Limits, RenderSettings};

use crate::fidelity::psnr;
use crate::harness::*;

/// Least PSNR (dB, R, G and B) between a decode at 1/8 and libvips' at 1/4 for the same
/// output (shrink 8–16), as `fidelity.rs` requires against libvips' CLI. Measured on the
/// fetched photos: 34–46 dB, the same for sharp's output, which makes the same choice.
const MIN_PSNR_FAST_VS_LIBVIPS: f64 = 30.0;

fn progressive_photos() -> Vec<(Vec<u8>, String, u32)> {
    let found: Vec<_> = photos("jpg", 0)
        .into_iter()
        .map(|(path, w, _)| {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (bytes, name, w)
        })
        .filter(|(bytes, ..)| progressive::is_progressive(bytes))
        .collect();
    assert!(
        found.len() >= 6,
        "the fetched photos hold 8 progressive JPEGs, found {}",
        found.len()
    );
    found
}

fn settings(fast_shrink_on_load: bool) -> RenderSettings {
    RenderSettings {
        fast_shrink_on_load,
        ..RenderSettings::default()
    }
}

fn render_png(source: &[u8], width: u32, settings: &RenderSettings) -> RenderOutput {
    let request = VariantRequest {
        name: "v".into(),
        spec: format!("w={width},fm=png").parse().unwrap(),
    };
    render(source, &[request], &Limits::default(), settings).expect("renders")
}

/// The decoder the render's `decode` phase names.
pub(crate) fn decoder_of(out: &RenderOutput) -> &str {
    out.phases
        .iter()
        .find(|p| p.name == "decode")
        .and_then(|p| p.decoder.as_deref())
        .expect("the decode phase names its decoder")
}

fn rgb(image: Image<'_>, width: u32, height: u32) -> RgbImage {
    assert_eq!(
        (image.width(), image.height(), image.bands()),
        (width, height, 3)
    );
    RgbImage::from_raw(width, height, image.pixels().unwrap()).unwrap()
}

/// libvips' own decode of the whole file, as Rendition's normal path calls it.
fn libvips_decode(source: &[u8], width: u32, height: u32) -> RgbImage {
    let image = Image::thumbnail_buffer(source, width, height, false, false).unwrap();
    rgb(image, width, height)
}

/// The whole file decoded at 1/`factor`, then resized: what sharp does by default.
fn shrunk_decode(source: &[u8], factor: u32, width: u32, height: u32) -> RgbImage {
    let image = Image::open_shrunk(source, factor)
        .and_then(|i| i.thumbnail(width, height, false))
        .unwrap();
    rgb(image, width, height)
}

#[test]
fn dc_only_decodes_are_libvips_pixels_where_libvips_decodes_at_one_eighth() {
    for (source, name, w) in progressive_photos() {
        // A shrink of at least 16: libvips' thumbnail loads at 1/8 itself.
        let width = w / 17;
        for fast in [false, true] {
            let out = render_png(&source, width, &settings(fast));
            assert_eq!(decoder_of(&out), "jpeg_dc_only", "{name}");
            let got = decode(&out.variants[0].bytes);
            let reference = libvips_decode(&source, got.width(), got.height());
            assert!(
                got.as_raw() == reference.as_raw(),
                "{name} at w={width}: pixels differ from libvips' decode"
            );
        }
        let dc = progressive::dc_only(&source).unwrap();
        println!(
            "{name}: w={width} identical to libvips; {} → {} bytes decoded ({:.0}%)",
            source.len(),
            dc.len(),
            100.0 * dc.len() as f64 / source.len() as f64
        );
    }
}

#[test]
fn fast_shrink_on_load_decodes_at_one_eighth_from_dc_as_sharp_does_from_everything() {
    for (source, name, w) in progressive_photos() {
        // A shrink between 8 and 16: libvips would load at 1/4, sharp at 1/8.
        let width = w / 10;
        let out = render_png(&source, width, &settings(true));
        assert_eq!(decoder_of(&out), "jpeg_dc_only", "{name}");
        let got = decode(&out.variants[0].bytes);
        let (gw, gh) = got.dimensions();
        assert!(
            got.as_raw() == shrunk_decode(&source, 8, gw, gh).as_raw(),
            "{name} at w={width}: pixels differ from the whole file decoded at 1/8"
        );
        let db = psnr(&got, &libvips_decode(&source, gw, gh));
        println!("{name}: w={width} PSNR {db:.1} dB against libvips' 1/4 decode");
        assert!(db >= MIN_PSNR_FAST_VS_LIBVIPS, "{name}: {db:.1} dB");
        // Off, the decode is libvips' own.
        let off = render_png(&source, width, &settings(false));
        assert_eq!(decoder_of(&off), "libvips", "{name}");
        assert!(
            decode(&off.variants[0].bytes).as_raw() == libvips_decode(&source, gw, gh).as_raw()
        );
    }
}

#[test]
fn baseline_jpegs_and_smaller_shrinks_take_sharps_factor_from_the_whole_file() {
    let (source, name, w) = progressive_photos().remove(0);
    // Shrink 7: sharp's 1/4 (libvips' 1/2), every scan read.
    let out = render_png(&source, w / 7, &settings(true));
    assert_eq!(decoder_of(&out), "jpeg_shrink_4", "{name}");
    let got = decode(&out.variants[0].bytes);
    let (gw, gh) = got.dimensions();
    assert!(got.as_raw() == shrunk_decode(&source, 4, gw, gh).as_raw());
    // Shrink 3: sharp's 1/2, libvips' 1/1; below 2 both decode it all.
    let third = render_png(&source, w / 3, &settings(true));
    assert_eq!(decoder_of(&third), "jpeg_shrink_2", "{name}");
    let two_thirds = render_png(&source, w * 2 / 3, &settings(true));
    assert_eq!(decoder_of(&two_thirds), "libvips", "{name}");

    let baseline = encode_jpeg(&quadrants(1600, 1200), 90);
    assert!(!progressive::is_progressive(&baseline));
    let out = render_png(&baseline, 160, &settings(true));
    assert_eq!(decoder_of(&out), "jpeg_shrink_8");
    let got = decode(&out.variants[0].bytes);
    assert!(got.as_raw() == shrunk_decode(&baseline, 8, 160, 120).as_raw());
    assert_eq!(
        decoder_of(&render_png(&baseline, 90, &settings(true))),
        "libvips"
    );
}

#[test]
fn progressive_jpegs_libvips_writes_take_the_fast_path_exactly() {
    // Generated, so the case does not depend on the fetched photos' encoder: libvips'
    // progressive writer (libjpeg-turbo's default script), 4:2:0 and 4:4:4 chroma (4:2:0
    // keeps its chroma AC scans: libjpeg reads them at 1/8).
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("in.png");
    std::fs::write(&png, encode_png(&quadrants(2048, 1536))).unwrap();
    for subsample in ["on", "off"] {
        let jpg = dir.path().join(format!("p-{subsample}.jpg"));
        let status = std::process::Command::new("vips")
            .arg("copy")
            .arg(&png)
            .arg(format!(
                "{}[Q=85,interlace,subsample_mode={subsample}]",
                jpg.display()
            ))
            .status()
            .expect("run vips");
        assert!(status.success());
        let bytes = std::fs::read(&jpg).unwrap();
        assert!(progressive::is_progressive(&bytes));
        for width in [120, 200] {
            let out = render_png(&bytes, width, &settings(true));
            assert_eq!(decoder_of(&out), "jpeg_dc_only");
            let got = decode(&out.variants[0].bytes);
            let (gw, gh) = got.dimensions();
            assert!(
                got.as_raw() == shrunk_decode(&bytes, 8, gw, gh).as_raw(),
                "subsample {subsample}, w={width}"
            );
        }
    }
}
