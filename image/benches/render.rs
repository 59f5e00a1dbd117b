//! `cargo bench -p rendition-image --bench render`: one decode → one variant, and the eager
//! set, on a 4000×3000 JPEG made in-process (no photo files needed). libvips runs one
//! thread per image, as in production. For whole-folder figures against sharp and
//! vipsthumbnail on real photos see `rendition-bench` (scripts/bench.sh).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rendition_image::render::{render, VariantRequest};
use rendition_image::settings::{Limits, RenderSettings};

const WIDTHS: [u32; 5] = [2048, 1024, 640, 320, 160];

/// A 4000×3000 photo-like JPEG (q85): smooth gradients with fine texture, so neither the
/// decoder nor the encoders see a trivially flat image.
fn source() -> Vec<u8> {
    let (w, h) = (4000u32, 3000u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 27;
        let r = (x * 255 / w) as u8;
        let g = (y * 255 / h) as u8;
        let b = (((x / 7) ^ (y / 5)) & 0xff) as u8;
        image::Rgb([
            r.saturating_add(noise as u8),
            g.saturating_sub(noise as u8),
            b,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encode the bench JPEG");
    out
}

fn requests(specs: &[String]) -> Vec<VariantRequest> {
    specs
        .iter()
        .map(|s| VariantRequest {
            name: s.clone(),
            spec: s.parse().expect("valid bench spec"),
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let src = source();
    let limits = Limits::default();
    let settings = RenderSettings {
        vips_threads: 1,
        ..RenderSettings::default()
    };
    let one = requests(&["w=300,fm=jpeg,q=80".to_string()]);
    let eager5 = requests(&WIDTHS.map(|w| format!("w={w},fm=webp,q=75")));
    let eager10 = requests(
        &WIDTHS
            .iter()
            .flat_map(|w| [format!("w={w},fm=jpeg,q=80"), format!("w={w},fm=webp,q=75")])
            .collect::<Vec<_>>(),
    );

    let mut group = c.benchmark_group("render_4000x3000_jpeg");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(1));
    for (name, reqs) in [
        ("one_w300_jpeg", &one),
        ("eager5_webp", &eager5),
        ("eager10_jpeg_webp", &eager10),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let out = render(black_box(&src), reqs, &limits, &settings).expect("render");
                black_box(out.variants.len())
            })
        });
    }
    group.finish();
}

criterion_group!(render_benches, benches);
criterion_main!(render_benches);
