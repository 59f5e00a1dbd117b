//! The decode boundary: `sniff::sniff` (allow-list by magic bytes) and
//! `render::inspect` (byte limit, sniff, libvips header read, pixel and frame limits),
//! then — only for sources the limits admit and that are tiny — the rest of the
//! pipeline (`render::render`), so headers that lie about the pixels behind them reach
//! our geometry, cascade and per-frame code. libvips itself is not instrumented; its
//! crashes still show up, its coverage does not steer the fuzzer.
//!
//! Properties, beyond "never panics":
//! - the byte limit is checked before anything else looks at the bytes;
//! - what sniff refuses never reaches libvips: inspect refuses it with the same reason;
//! - what inspect admits is the sniffed format, within the pixel and frame limits, at
//!   least 1×1, with the size oriented by EXIF;
//! - a render returns every requested variant, each encoded as its format says, within
//!   the output limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_pipeline::config::{Limits, RenderSettings};
use rendition_image::render::{inspect, render, RenderError, Unsupported, VariantRequest};
use rendition_image::sniff::{sniff, SourceFormat};
use rendition_image::spec::Format;

/// Small on purpose: the fuzzer must never get libvips to decode a big image.
fn limits() -> Limits {
    Limits {
        max_input_bytes: 1 << 20,
        max_input_pixels: 1 << 20,
        max_output_dimension: 256,
        max_frames: 8,
        // 1 MP of 16-bit RGBA: the decoded budget stays small too.
        max_decoded_bytes: 8 << 20,
        max_scans: 100,
    }
}

/// Sources at most this many pixels (per frame) × frames are rendered, not just inspected.
const RENDER_PIXELS: u64 = 64 * 64 * 4;

fn variants() -> Vec<VariantRequest> {
    [
        ("cover", "w=16,h=12,fit=cover,fm=jpeg"),
        ("contain", "w=12,h=16,fit=contain,fm=png"),
        ("anim", "w=10,fm=gif"),
        ("focal", "w=9,h=9,fit=cover,fm=webp,fx=0.25,fy=0.75"),
    ]
    .into_iter()
    .map(|(name, spec)| VariantRequest {
        name: name.to_string(),
        spec: spec.parse().expect("valid spec"),
    })
    .collect()
}

/// What a rendered variant's bytes sniff as: a render always resolves `original` and
/// `auto` to a concrete format, so those never match.
fn sniffed_as(format: Format) -> Option<SourceFormat> {
    SourceFormat::from_format(format)
}

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    // In process: the fuzzer is the sandbox here (ASan, its own memory and time limits).
    let settings = RenderSettings {
        concurrency: 1,
        vips_threads: 1,
        avif_effort: 0,
        sandbox: false,
        // Both JPEG shrink-on-load policies (and so both DC-only regimes).
        fast_shrink_on_load: data.len() % 2 == 0,
        ..RenderSettings::default()
    };
    rendition_image::vips::init(settings.vips_threads).expect("libvips starts");

    // The byte limit comes first, whatever the bytes are.
    if !data.is_empty() {
        let tight = Limits {
            max_input_bytes: data.len() as u64 - 1,
            ..limits.clone()
        };
        assert!(matches!(
            inspect(data, &tight),
            Err(RenderError::InputTooLarge { .. })
        ));
    }

    // The decode fast paths' own parsers: never panic, and a DC-only rebuild is only of a
    // progressive JPEG and never much larger than it (tables and a few end-of-band runs).
    if let Some(dc) = rendition_image::progressive::dc_only(data) {
        assert!(rendition_image::progressive::is_progressive(data));
        assert!(
            dc.len() <= data.len() + 64 + 4 * (10 + 5 * 1024),
            "{} → {}",
            data.len(),
            dc.len()
        );
    }
    let _ = rendition_image::png_fast::eligible(data);

    let sniffed = sniff(data);
    let inspected = inspect(data, &limits);
    let (info, header) = match (&sniffed, inspected) {
        (Err(refused), Err(e)) => {
            assert_eq!(
                e,
                RenderError::Unsupported(Unsupported::Format(refused.clone())),
                "a refused format must not reach libvips"
            );
            return;
        }
        (Err(refused), Ok(_)) => panic!("sniff refused ({refused}) but inspect admitted it"),
        (Ok(_), Err(e)) => {
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
            return;
        }
        (Ok(format), Ok((info, header))) => {
            assert_eq!(info.format, *format);
            (info, header)
        }
    };
    assert_eq!(info.bytes, data.len() as u64);
    assert!(
        info.frames >= 1 && info.frames <= limits.max_frames,
        "{info:?}"
    );
    assert!(header.width >= 1 && header.height >= 1, "{header:?}");
    let pixels = u64::from(header.width) * u64::from(header.height);
    assert!(pixels <= limits.max_input_pixels, "{header:?}");
    let (w, h) = (info.size.width, info.size.height);
    if header.orientation >= 5 {
        assert_eq!((w, h), (header.height, header.width));
    } else {
        assert_eq!((w, h), (header.width, header.height));
    }

    if pixels * u64::from(info.frames) > RENDER_PIXELS {
        return;
    }
    let requests = variants();
    match render(data, &requests, &limits, &settings) {
        Ok(out) => {
            assert_eq!(out.source, info);
            assert_eq!(out.variants.len() + out.skipped.len(), requests.len());
            for skipped in &out.skipped {
                assert!(skipped.error.is_variant_specific(), "{skipped:?}");
            }
            let made = requests
                .iter()
                .filter(|r| !out.skipped.iter().any(|s| s.name == r.name));
            for (rendered, request) in out.variants.iter().zip(made) {
                assert_eq!(rendered.name, request.name);
                assert_eq!(rendered.format, request.spec.format);
                assert!(rendered.frames >= 1, "{}", rendered.name);
                assert!(
                    rendered.size.width.max(rendered.size.height) <= limits.max_output_dimension
                );
                let format = sniff(&rendered.bytes).expect("our own output sniffs");
                assert_eq!(
                    Some(format),
                    sniffed_as(rendered.format),
                    "{}",
                    rendered.name
                );
            }
        }
        Err(e) => {
            assert!(
                !matches!(e, RenderError::Init(_)),
                "libvips started above: {e:?}"
            );
            let _ = e.kind();
            let _ = e.to_string();
        }
    }
});
