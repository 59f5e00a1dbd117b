//! Responsive delivery: `fm=auto` negotiated per request with `Vary: Accept`, each format
//! stored once under its own extension; the CDN's normalised header; presets made in
//! several formats from one decode, listed per format in the manifest and printed by
//! `rendition url`.

use image::{Rgba, RgbaImage};
use rendition_image::sniff::{sniff, SourceFormat};
use rendition_image::spec::Format;
use rendition_pipeline::manifest::{Manifest, MANIFEST_VERSION};
use rendition_pipeline::respond::VARY;

use crate::harness::*;
use crate::serve::{env_keys, start_with_config, url_of};

/// Real `Accept` headers of image requests.
const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
const SAFARI_14: &str = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
const CURL: &str = "*/*";

const CONFIG: &str = r#"
[presets.pic]
spec = "w=200,h=150,fit=cover,q=60"
formats = ["avif", "webp", "jpeg"]
eager = true

[presets.any]
spec = "w=120,fm=auto"
"#;

/// The stored files of one source's derivatives, by name.
fn stored(bucket: &std::path::Path, rel: &str) -> Vec<String> {
    let root = bucket.join("derived").join(rel);
    let mut out = Vec::new();
    for guid in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(guid.path()).unwrap().flatten() {
            out.push(file.file_name().into_string().unwrap());
        }
    }
    out.sort();
    out
}

/// The stored file names of `preset` of [`CONFIG`] in each `(format, ext)`, sorted.
fn files(preset: &str, made: &[(Format, &str)]) -> Vec<String> {
    let s = settings_of(CONFIG);
    let mut out: Vec<String> = made
        .iter()
        .map(|(f, ext)| stored_file_in(&s, preset, *f, ext))
        .collect();
    out.sort();
    out
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let header = rendition_image::vips::Image::open(bytes).unwrap().header();
    (header.width, header.height)
}

#[tokio::test]
async fn one_url_gives_each_client_its_format_with_vary_and_stores_each_once() {
    let env = env_keys();
    let server = start_with_config(Some(CONFIG), &env).await;
    let (cwd, bucket, addr) = (server.tmp.path(), &server.bucket, &server.addr);
    std::fs::write(
        bucket.join("originals/cat.jpg"),
        encode_jpeg(&quadrants(800, 600), 90),
    )
    .unwrap();

    // `rendition url` prints the negotiated URL first, then one per format.
    let printed = url_of(cwd, bucket, "originals/cat.jpg", &["--preset", "pic"], &env);
    let urls: Vec<&str> = printed.lines().collect();
    assert_eq!(urls.len(), 4, "{printed}");
    let s = settings_of(CONFIG);
    let pic_auto = preset_file_in(&s, "pic", Format::Auto);
    assert!(urls[0].ends_with(&format!("/{pic_auto}")), "{}", urls[0]);
    for (url, f) in urls[1..]
        .iter()
        .zip([Format::Avif, Format::Webp, Format::Jpeg])
    {
        let file = preset_file_in(&s, "pic", f);
        assert!(url.ends_with(&format!("/{file}")), "{url}");
    }
    let auto = urls[0].to_string();

    let app = server.app;
    for (accept, cdn, want) in [
        (CHROME, None, SourceFormat::Avif),
        (SAFARI_14, None, SourceFormat::Webp),
        (CURL, None, SourceFormat::Jpeg),
        // The CDN's normalised header wins over Accept.
        (CURL, Some("webp"), SourceFormat::Webp),
        (CHROME, Some("jpeg"), SourceFormat::Jpeg),
        // Again, from storage.
        (CHROME, None, SourceFormat::Avif),
    ] {
        let mut headers = vec![("Accept", accept)];
        if let Some(value) = cdn {
            headers.push(("x-rendition-format", value));
        }
        let r = get(addr, auto.as_bytes(), &headers).await;
        assert_eq!(r.status, 200, "{accept}: {}", r.error_kind());
        assert_eq!(r.header("vary"), Some(VARY), "{accept}");
        assert_eq!(sniff(&r.body), Ok(want), "{accept} {cdn:?}");
        assert_eq!(
            r.header("content-type"),
            Some(format!("image/{}", want.as_str()).as_str())
        );
        assert_eq!(dimensions(&r.body), (200, 150));
        // A conditional request with its ETag is a 304 that still varies.
        let etag = r.header("etag").unwrap().to_string();
        let mut conditional = headers.clone();
        conditional.push(("If-None-Match", &etag));
        let r = get(addr, auto.as_bytes(), &conditional).await;
        assert_eq!((r.status, r.header("vary")), (304, Some(VARY)));
    }
    // Three formats, each rendered and stored once; the URL's own name is never stored.
    let rel = "cat.jpg";
    assert_eq!(
        stored(bucket, rel),
        files(
            "pic",
            &[
                (Format::Avif, "avif"),
                (Format::Jpeg, "jpg"),
                (Format::Webp, "webp")
            ]
        )
    );

    // A per-format URL is that format whatever the client says, without Vary.
    let r = get(addr, urls[2].as_bytes(), &[("Accept", CHROME)]).await;
    assert_eq!((r.status, r.header("vary")), (200, None));
    assert_eq!(sniff(&r.body), Ok(SourceFormat::Webp));

    // A preset that says fm=auto, and a signed spec that does.
    let any = url_of(cwd, bucket, "originals/cat.jpg", &["--preset", "any"], &env);
    let any_auto = preset_file_in(&s, "any", Format::Auto);
    assert!(any.ends_with(&format!("/{any_auto}")), "{any}");
    let r = get(addr, any.as_bytes(), &[("Accept", SAFARI_14)]).await;
    assert_eq!(sniff(&r.body), Ok(SourceFormat::Webp));
    assert_eq!(dimensions(&r.body), (120, 90));
    let spec = url_of(
        cwd,
        bucket,
        "originals/cat.jpg",
        &["--spec", "w=100,fm=auto"],
        &env,
    );
    assert!(spec.contains("/w=100,fm=auto.auto?sig="), "{spec}");
    for (accept, want) in [(CHROME, SourceFormat::Avif), (CURL, SourceFormat::Jpeg)] {
        let r = get(addr, spec.as_bytes(), &[("Accept", accept)]).await;
        assert_eq!(r.status, 200, "{}", r.error_kind());
        assert_eq!(sniff(&r.body), Ok(want));
        assert_eq!(r.header("vary"), Some(VARY));
    }
    // Another extension than the preset's formats is a 404.
    let wrong = urls[1].replace(".avif", ".gif");
    let r = get(addr, wrong.as_bytes(), &[]).await;
    assert_eq!(
        (r.status, r.error_kind().as_str()),
        (404, "wrong_extension")
    );
    app.terminate();
}

#[tokio::test]
async fn a_source_with_alpha_falls_back_to_png_and_keeps_it() {
    let env = env_keys();
    let server = start_with_config(Some(CONFIG), &env).await;
    let (cwd, bucket, addr) = (server.tmp.path(), &server.bucket, &server.addr);
    let mut img = RgbaImage::from_pixel(300, 200, Rgba([20, 120, 220, 255]));
    for (x, _, p) in img.enumerate_pixels_mut() {
        if x < 150 {
            *p = Rgba([0, 0, 0, 0]);
        }
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(bucket.join("originals/logo.png"), png).unwrap();
    let any = url_of(
        cwd,
        bucket,
        "originals/logo.png",
        &["--preset", "any"],
        &env,
    );
    for (accept, want) in [
        (CURL, SourceFormat::Png),
        (SAFARI_14, SourceFormat::Webp),
        (CHROME, SourceFormat::Avif),
    ] {
        let r = get(addr, any.as_bytes(), &[("Accept", accept)]).await;
        assert_eq!(r.status, 200, "{}", r.error_kind());
        assert_eq!(sniff(&r.body), Ok(want), "{accept}");
        let header = rendition_image::vips::Image::open(&r.body)
            .unwrap()
            .header();
        assert!(header.has_alpha, "{accept}: alpha kept");
    }
    assert_eq!(
        stored(bucket, "logo.png"),
        files(
            "any",
            &[
                (Format::Avif, "avif"),
                (Format::Auto, "png"),
                (Format::Webp, "webp")
            ]
        )
    );
}

#[tokio::test]
async fn an_eager_preset_in_three_formats_is_made_from_one_job_and_listed_per_format() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(bucket.join("originals")).unwrap();
    write_config(tmp.path(), CONFIG);
    std::fs::write(
        bucket.join("originals/cat.jpg"),
        encode_jpeg(&quadrants(800, 600), 90),
    )
    .unwrap();
    let out = run_local_once(tmp.path(), &bucket).await;
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    // One job, one render (the helper's one decode), every variant of every format.
    let rendered: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| field(v, "message") == Some("rendered"))
        .collect();
    assert_eq!(rendered.len(), 1, "{logs}");
    let files = stored(&bucket, "cat.jpg");
    let manifest_path = std::fs::read_dir(bucket.join("derived/cat.jpg"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("manifest.json");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(manifest_path).unwrap()).unwrap();
    assert_eq!(manifest.version, MANIFEST_VERSION);
    let placeholder = manifest.placeholder.as_ref().expect("a placeholder");
    assert!(placeholder.lqip.starts_with("data:image/webp;base64,"));
    assert_eq!(placeholder.blurhash.len(), 28);
    let pic: Vec<(&str, &str, u32, u32)> = manifest
        .variants
        .iter()
        .filter(|v| v.name == "pic")
        .map(|v| (v.content_type.as_str(), v.spec.as_str(), v.width, v.height))
        .collect();
    assert_eq!(
        pic,
        [
            ("image/avif", "w=200,h=150,fit=cover,fm=avif,q=60", 200, 150),
            ("image/webp", "w=200,h=150,fit=cover,fm=webp,q=60", 200, 150),
            ("image/jpeg", "w=200,h=150,fit=cover,fm=jpeg,q=60", 200, 150),
        ]
    );
    for v in manifest.variants.iter().filter(|v| v.name == "pic") {
        // Each format's key carries the hash of that format's spec.
        assert_eq!(v.spec_hash, rendition_pipeline::naming::spec_hash(&v.spec));
        let ext = v.key.rsplit('.').next().unwrap();
        assert!(
            v.key.ends_with(&format!("/pic.{}.{ext}", v.spec_hash)),
            "{}",
            v.key
        );
        let bytes = std::fs::read(bucket.join(&v.key)).unwrap();
        assert_eq!(dimensions(&bytes), (200, 150), "{}", v.key);
        assert!(files.contains(&v.key.rsplit('/').next().unwrap().to_string()));
    }
    // The default presets are still there, once each.
    let names: Vec<&str> = manifest.variants.iter().map(|v| v.name.as_str()).collect();
    for name in ["lg", "md", "sm", "thumb", "xl"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
    }
    // A second run finds every format listed: nothing to do.
    let again = run_local_once(tmp.path(), &bucket).await;
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(again.contains("already done 1"), "{again}");
}

// ---- placeholders ---------------------------------------------------------------------------

/// libvips' own mean of each band of an image file (`vips avg` of each extracted band).
fn vips_band_means(path: &std::path::Path) -> [f64; 3] {
    let dir = tempfile::tempdir().unwrap();
    [0, 1, 2].map(|band| {
        let out = dir.path().join(format!("b{band}.v"));
        let ok = std::process::Command::new("vips")
            .arg("extract_band")
            .arg(path)
            .arg(&out)
            .arg(band.to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let avg = std::process::Command::new("vips")
            .arg("avg")
            .arg(&out)
            .output()
            .unwrap();
        String::from_utf8_lossy(&avg.stdout).trim().parse().unwrap()
    })
}

fn render_placeholder(bytes: &[u8]) -> rendition_image::placeholder::Placeholder {
    use rendition_image::render::{render, VariantRequest};
    use rendition_pipeline::config::{Limits, RenderSettings};
    let request = VariantRequest {
        name: "v".into(),
        spec: "w=100,fm=webp".parse().unwrap(),
    };
    render(
        bytes,
        &[request],
        &Limits::default(),
        &RenderSettings::default(),
    )
    .unwrap()
    .placeholder
    .expect("a placeholder")
}

fn hex_rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.strip_prefix('#').unwrap(), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

#[test]
fn placeholders_describe_the_source_they_were_computed_from() {
    use rendition_image::placeholder::{delta_e, mean_rgb, LQIP_MAX_BYTES};
    let dir = tempfile::tempdir().unwrap();
    // Flat colours: the dominant colour is libvips' own per-band mean, exactly.
    for colour in [[37, 99, 250], [200, 40, 40], [240, 240, 240], [3, 3, 3]] {
        let path = dir.path().join("flat.png");
        std::fs::write(
            &path,
            encode_png(&image::RgbImage::from_pixel(300, 200, image::Rgb(colour))),
        )
        .unwrap();
        let p = render_placeholder(&std::fs::read(&path).unwrap());
        let means = vips_band_means(&path).map(|m| m.round() as u8);
        assert_eq!(hex_rgb(&p.dominant), means, "{colour:?}");
    }
    // 70 % one colour, 30 % another: the dominant is the first, not the mean.
    let mut two = image::RgbImage::from_pixel(300, 200, image::Rgb([200, 30, 30]));
    for (x, _, px) in two.enumerate_pixels_mut() {
        if x >= 210 {
            *px = image::Rgb([20, 20, 220]);
        }
    }
    let two_png = encode_png(&two);
    let p = render_placeholder(&two_png);
    let d = hex_rgb(&p.dominant);
    assert!(close(d, [200, 30, 30], 3), "{d:?}");

    // BlurHash: decoded back, its mean colour is the source's within ΔE 3 (CIE76, means
    // in linear light); on generated images and real photos.
    let mut sources: Vec<Vec<u8>> = vec![two_png, encode_jpeg(&quadrants(640, 480), 90)];
    sources.extend(
        photos(".jpg", 1000)
            .into_iter()
            .take(2)
            .map(|(path, _, _)| std::fs::read(path).unwrap()),
    );
    for bytes in &sources {
        let p = render_placeholder(bytes);
        let source = rendition_image::vips::Image::open(bytes).unwrap();
        let (w, h) = (source.width(), source.height());
        let (sw, sh) = rendition_image::placeholder::fit_within(w, h, 64);
        let decoded = decode(bytes);
        let small =
            image::imageops::resize(&decoded, sw, sh, image::imageops::FilterType::Triangle);
        let rgba: Vec<u8> = small
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let back = blurhash::decode(&p.blurhash, sw, sh, 1.0).unwrap();
        let de = delta_e(mean_rgb(&back), mean_rgb(&rgba));
        assert!(de <= 3.0, "ΔE {de:.2} ({})", p.blurhash);

        // LQIP: a WebP data URI within 1 KiB that decodes, in the source's proportions.
        assert!(p.lqip.len() <= LQIP_MAX_BYTES, "{}", p.lqip.len());
        let b64 = p.lqip.strip_prefix("data:image/webp;base64,").unwrap();
        use base64::Engine as _;
        let webp = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let lqip = image::load_from_memory_with_format(&webp, image::ImageFormat::WebP).unwrap();
        let (lw, lh) = (lqip.width() as f64, lqip.height() as f64);
        assert!(lw.max(lh) <= 16.0);
        let ratio = f64::from(w) / f64::from(h);
        assert!(
            (lw / lh - ratio).abs() / ratio < 0.35,
            "{lw}×{lh} vs {w}×{h}"
        );
    }
}

#[tokio::test]
async fn a_named_format_and_a_negotiated_one_sharing_a_render_vary_each_as_asked() {
    // `pic.webp` and, for a client that takes WebP but no AVIF, `pic.auto` resolve to the
    // same stored key: a big source makes the second request join the first's render.
    let env = env_keys();
    let server = start_with_config(Some(CONFIG), &env).await;
    let (cwd, bucket, addr) = (server.tmp.path(), &server.bucket, server.addr.clone());
    let (photo, _, _) = photos(".jpg", 4000).into_iter().next().unwrap();
    std::fs::copy(&photo, bucket.join("originals/big.jpg")).unwrap();
    let printed = url_of(cwd, bucket, "originals/big.jpg", &["--preset", "pic"], &env);
    let urls: Vec<String> = printed.lines().map(str::to_string).collect();
    let (auto, webp) = (urls[0].clone(), urls[2].clone());
    let pic_webp = preset_file_in(&settings_of(CONFIG), "pic", Format::Webp);
    assert!(webp.ends_with(&format!("/{pic_webp}")), "{webp}");
    let (a, b) = (addr.clone(), addr.clone());
    let named = tokio::spawn(async move { get(&a, webp.as_bytes(), &[("Accept", CHROME)]).await });
    let negotiated =
        tokio::spawn(async move { get(&b, auto.as_bytes(), &[("Accept", SAFARI_14)]).await });
    let (named, negotiated) = (named.await.unwrap(), negotiated.await.unwrap());
    assert_eq!((named.status, negotiated.status), (200, 200));
    assert_eq!(named.body, negotiated.body, "one render, one object");
    assert_eq!(named.header("vary"), None, "a named format does not vary");
    assert_eq!(
        negotiated.header("vary"),
        Some(VARY),
        "a negotiated one does"
    );
    server.app.terminate();
}
