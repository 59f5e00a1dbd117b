//! `rendition html SOURCE`: ready-made markup for the current version of a source — one
//! `<picture>` a page can paste in.
//!
//! - **The ladder**: the variants its manifest lists of the eager presets that set a width
//!   and no height (the responsive sizes; a fixed crop such as `thumb` has another shape),
//!   or of the presets named with `--preset`. One candidate per width: a source narrower
//!   than two presets makes both at its own width, and a repeated `w` descriptor is
//!   invalid HTML (browsers keep only the first). Widths are the manifest's, i.e. what
//!   was really made, not the presets' nominal ones.
//! - **One `srcset` per format**, AVIF first, then WebP, then the rest: every format but
//!   the last is a `<source type=…>` (a browser takes the first whose type it decodes);
//!   the last — normally JPEG or PNG — is the `<img>`'s own `srcset`, with `src` its
//!   widest candidate for browsers without `srcset`. When a preset is made in WebP only
//!   (the default presets) the `<img>` falls back to WebP, and [`Markup::notes`] says so.
//! - `width`/`height` are the widest candidate's, from the manifest, so the page reserves
//!   the right box (aspect ratio) before any byte arrives; `loading="lazy"`,
//!   `decoding="async"`; the manifest's placeholder (dominant colour, LQIP) is the
//!   `<img>`'s background until the image paints over it.
//! - Every attribute value is HTML-escaped; the placeholder's colour and data URI are
//!   used only when they have the shape the writer promises ([`css_colour`],
//!   [`lqip_uri`]), since the manifest is read back from storage.

use std::fmt::Write as _;

use rendition_image::placeholder::Placeholder;
use rendition_pipeline::config::Settings;
use rendition_pipeline::job::Engine;
use rendition_pipeline::manifest::{Manifest, ManifestVariant};
use rendition_pipeline::url::{UrlError, UrlGenerator};

use crate::markup::{css_colour, escape, lqip_uri};
use crate::sheet::{self, SheetError};

/// Why no markup could be made.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// No source, no manifest yet, a key that is not a source, storage.
    #[error(transparent)]
    Manifest(#[from] SheetError),
    #[error("no preset named {0:?}")]
    UnknownPreset(String),
    #[error(
        "{key:?}'s manifest lists no variant of preset {preset:?} (a preset that is not \
         eager is made on demand only; `rendition backfill --preset {preset}` adds it)"
    )]
    NotMade { key: String, preset: String },
    #[error(
        "{0:?}'s manifest lists no eager preset with a width and no height (a responsive \
         ladder); name the presets with --preset"
    )]
    NoLadder(String),
    #[error(
        "presets {a:?} ({aw}×{ah}) and {b:?} ({bw}×{bh}) have different shapes: one \
         <picture> needs one aspect ratio"
    )]
    MixedShapes {
        a: String,
        aw: u32,
        ah: u32,
        b: String,
        bw: u32,
        bh: u32,
    },
    #[error(transparent)]
    Url(#[from] UrlError),
}

impl HtmlError {
    /// A short stable name ([`rendition_image::kinds::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            HtmlError::Manifest(e) => e.kind(),
            HtmlError::UnknownPreset(_) => "unknown_preset",
            HtmlError::NotMade { .. } => "preset_not_made",
            HtmlError::NoLadder(_) => "no_ladder",
            HtmlError::MixedShapes { .. } => "mixed_shapes",
            HtmlError::Url(e) => e.kind(),
        }
    }

    /// Whether asking again later may succeed (storage outages only).
    pub fn is_retryable(&self) -> bool {
        match self {
            HtmlError::Manifest(e) => e.is_retryable(),
            HtmlError::Url(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The HTTP status this would be on a front door: 404 for what is not there, 400 for
    /// a request that cannot be answered as asked.
    pub fn status(&self) -> u16 {
        match self {
            HtmlError::Manifest(e) => e.status(),
            HtmlError::UnknownPreset(_) | HtmlError::NotMade { .. } => 404,
            HtmlError::NoLadder(_) | HtmlError::MixedShapes { .. } => 400,
            HtmlError::Url(e) => e.status(),
        }
    }
}

/// What the markup is made of, besides the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Only these presets; empty: every eager preset with a width and no height.
    pub presets: Vec<String>,
    /// The `sizes` attribute, e.g. `(min-width: 60rem) 50vw, 100vw`.
    pub sizes: String,
    /// The `alt` text (empty: a decorative image).
    pub alt: String,
}

/// Built markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markup {
    /// The `<picture>` element, ending in a newline.
    pub html: String,
    /// Things a person should know about it (e.g. the fallback is not JPEG/PNG).
    pub notes: Vec<String>,
}

/// One candidate of a `srcset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// The candidates of one format, narrowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srcset {
    /// MIME type, from the manifest.
    pub content_type: String,
    pub candidates: Vec<Candidate>,
}

/// The markup for the current version of `source`, its URLs made by the one generator
/// (`now_unix` only matters to signed URLs; presets are not signed).
pub async fn build(
    engine: &Engine,
    source: &str,
    options: &Options,
    now_unix: u64,
) -> Result<Markup, HtmlError> {
    let (_, manifest) = sheet::current_manifest(engine, source).await?;
    let settings = engine.settings();
    let ladder = ladder(settings, &manifest, &options.presets)?;
    let generator = UrlGenerator::new(settings);
    let mut srcsets = Vec::new();
    for group in by_format(&ladder) {
        let mut candidates = Vec::with_capacity(group.len());
        for v in &group {
            candidates.push(Candidate {
                url: generator.for_key(&v.key, now_unix)?,
                width: v.width,
                height: v.height,
            });
        }
        srcsets.push(Srcset {
            content_type: group[0].content_type.clone(),
            candidates,
        });
    }
    Ok(picture(&srcsets, manifest.placeholder.as_ref(), options))
}

/// The manifest entries the picture is made of: of the named presets, or else of every
/// eager preset that sets a width and no height; all of one aspect ratio.
pub fn ladder<'m>(
    settings: &Settings,
    manifest: &'m Manifest,
    presets: &[String],
) -> Result<Vec<&'m ManifestVariant>, HtmlError> {
    let source = &manifest.source.key;
    let chosen: Vec<&'m ManifestVariant> = if presets.is_empty() {
        let responsive = |name: &str| {
            settings
                .presets
                .get(name)
                .is_some_and(|p| p.eager && p.spec.width.is_some() && p.spec.height.is_none())
        };
        manifest
            .variants
            .iter()
            .filter(|v| responsive(&v.name) && has_size(v))
            .collect()
    } else {
        for name in presets {
            if !settings.presets.contains_key(name) {
                return Err(HtmlError::UnknownPreset(name.clone()));
            }
            if !manifest.variants.iter().any(|v| &v.name == name) {
                return Err(HtmlError::NotMade {
                    key: source.clone(),
                    preset: name.clone(),
                });
            }
        }
        manifest
            .variants
            .iter()
            .filter(|v| presets.contains(&v.name) && has_size(v))
            .collect()
    };
    let widest = chosen
        .iter()
        .copied()
        .max_by_key(|v| v.width)
        .ok_or_else(|| HtmlError::NoLadder(source.clone()))?;
    for v in &chosen {
        if !same_shape(v, widest) {
            return Err(HtmlError::MixedShapes {
                a: widest.name.clone(),
                aw: widest.width,
                ah: widest.height,
                b: v.name.clone(),
                bw: v.width,
                bh: v.height,
            });
        }
    }
    Ok(chosen)
}

/// A `0w` candidate is invalid; a manifest is read back from storage.
fn has_size(v: &ManifestVariant) -> bool {
    v.width > 0 && v.height > 0
}

/// Whether `v` is `widest` scaled down: its height within a pixel of `widest`'s aspect
/// ratio (a resize rounds each side to whole pixels).
fn same_shape(v: &ManifestVariant, widest: &ManifestVariant) -> bool {
    let (w, h) = (u64::from(v.width), u64::from(v.height));
    let (ww, wh) = (u64::from(widest.width), u64::from(widest.height));
    (h * ww).abs_diff(w * wh) <= ww.max(1)
}

/// Where a format goes: AVIF first, then WebP, then the rest (the `<img>` fallback).
fn rank(content_type: &str) -> u8 {
    match content_type {
        "image/avif" => 0,
        "image/webp" => 1,
        _ => 2,
    }
}

/// The ladder grouped by format in `rank` order, each group narrowest first with one
/// entry per width (the first in manifest order).
pub fn by_format<'m>(ladder: &[&'m ManifestVariant]) -> Vec<Vec<&'m ManifestVariant>> {
    let mut sorted = ladder.to_vec();
    // Stable: equal widths keep manifest (preset-name) order.
    sorted.sort_by(|a, b| {
        (rank(&a.content_type), &a.content_type, a.width).cmp(&(
            rank(&b.content_type),
            &b.content_type,
            b.width,
        ))
    });
    let mut groups: Vec<Vec<&'m ManifestVariant>> = Vec::new();
    for v in sorted {
        match groups.last_mut() {
            Some(g) if g[0].content_type == v.content_type => {
                if g.last().is_some_and(|last| last.width != v.width) {
                    g.push(v);
                }
            }
            _ => groups.push(vec![v]),
        }
    }
    groups
}

/// The `<img>`'s inline style: the dominant colour and the LQIP behind it, until the
/// image paints over them; `None` when there is nothing usable.
pub fn placeholder_style(p: &Placeholder) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(colour) = css_colour(&p.dominant) {
        parts.push(format!("background-color:{colour}"));
    }
    if let Some(uri) = lqip_uri(&p.lqip) {
        parts.push(format!("background-image:url(\"{uri}\")"));
        parts.push("background-size:cover".to_string());
    }
    (!parts.is_empty()).then(|| parts.join(";"))
}

/// `URL 320w, URL 640w, …`.
fn srcset_value(set: &Srcset) -> String {
    let mut out = String::new();
    for (i, c) in set.candidates.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{} {}w", c.url, c.width);
    }
    out
}

/// A short name of a MIME type for people: `image/webp` → `WebP`.
fn format_name(content_type: &str) -> String {
    match content_type {
        "image/avif" => "AVIF".into(),
        "image/webp" => "WebP".into(),
        other => other.strip_prefix("image/").unwrap_or(other).to_uppercase(),
    }
}

/// The `<picture>` of `srcsets` (in [`by_format`] order; the last is the `<img>`'s).
pub fn picture(srcsets: &[Srcset], placeholder: Option<&Placeholder>, options: &Options) -> Markup {
    let mut notes = Vec::new();
    let mut out = String::from("<picture>\n");
    let sizes = escape(&options.sizes);
    let Some((img, sources)) = srcsets.split_last() else {
        // `ladder` refuses an empty ladder; nothing to show.
        out.push_str("</picture>\n");
        return Markup { html: out, notes };
    };
    for set in sources {
        let _ = writeln!(
            out,
            "  <source type=\"{}\" srcset=\"{}\" sizes=\"{sizes}\">",
            escape(&set.content_type),
            escape(&srcset_value(set)),
        );
    }
    if rank(&img.content_type) < 2 {
        notes.push(format!(
            "the <img> falls back to {}: no JPEG or PNG variant in the ladder (add \"jpeg\" \
             to the presets' formats for browsers that decode neither AVIF nor WebP)",
            format_name(&img.content_type)
        ));
    }
    let widest = img
        .candidates
        .iter()
        .max_by_key(|c| c.width)
        .expect("a srcset has a candidate");
    let _ = write!(
        out,
        "  <img src=\"{}\" srcset=\"{}\" sizes=\"{sizes}\" width=\"{}\" height=\"{}\" alt=\"{}\" \
         loading=\"lazy\" decoding=\"async\"",
        escape(&widest.url),
        escape(&srcset_value(img)),
        widest.width,
        widest.height,
        escape(&options.alt),
    );
    match placeholder.and_then(placeholder_style) {
        Some(style) => {
            let _ = write!(out, " style=\"{}\"", escape(&style));
        }
        None => notes.push("the manifest has no placeholder: no background".into()),
    }
    out.push_str(">\n</picture>\n");
    Markup { html: out, notes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendition_image::placeholder::LQIP_MAX_BYTES;
    use rendition_pipeline::config::Preset;

    #[test]
    fn every_error_has_a_listed_kind() {
        let errors = [
            HtmlError::UnknownPreset("x".into()),
            HtmlError::NotMade {
                key: "k".into(),
                preset: "p".into(),
            },
            HtmlError::NoLadder("k".into()),
            HtmlError::MixedShapes {
                a: "a".into(),
                aw: 1,
                ah: 1,
                b: "b".into(),
                bw: 2,
                bh: 1,
            },
        ];
        for e in &errors {
            assert!(
                rendition_image::kinds::KINDS
                    .iter()
                    .any(|(k, _)| *k == e.kind()),
                "{}",
                e.kind()
            );
            assert!(!e.is_retryable());
            assert!((400..500).contains(&e.status()));
        }
    }
    use rendition_image::sniff::SourceFormat;
    use rendition_pipeline::manifest::{ManifestSource, MANIFEST_VERSION};

    fn variant(name: &str, ext: &str, width: u32, height: u32) -> ManifestVariant {
        let content_type = match ext {
            "jpg" => "image/jpeg".to_string(),
            other => format!("image/{other}"),
        };
        ManifestVariant {
            name: name.into(),
            spec: format!("w={width}"),
            spec_hash: rendition_pipeline::naming::spec_hash(&format!("w={width}")),
            key: format!(
                "derived/a <b> & \"c\".jpg/00000000-0000-0000-0000-000000000000/{name}.{}.{ext}",
                rendition_pipeline::naming::spec_hash(&format!("w={width}"))
            ),
            width,
            height,
            bytes: 1000,
            content_type,
        }
    }

    fn manifest(variants: Vec<ManifestVariant>) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            source: ManifestSource {
                bucket: "b".into(),
                key: "originals/a <b> & \"c\".jpg".into(),
                guid: uuid::Uuid::nil(),
                version: "v1".into(),
                width: 3000,
                height: 2000,
                format: SourceFormat::Jpeg,
                bytes: 1,
            },
            placeholder: Some(Placeholder {
                blurhash: "LEHV6nWB2yk8pyo0adR*.7kCMdnj".into(),
                dominant: "#1a2b3c".into(),
                lqip: "data:image/webp;base64,UklGRg==".into(),
            }),
            variants,
            skipped: vec![],
        }
    }

    fn settings(presets: &[(&str, &str, bool)]) -> Settings {
        let mut s = Settings::default();
        s.presets.clear();
        for (name, spec, eager) in presets {
            s.presets.insert(
                name.to_string(),
                Preset {
                    spec: spec.parse().unwrap(),
                    eager: *eager,
                    formats: vec![],
                },
            );
        }
        s
    }

    /// `{preset}.{ext}` of each variant (its key without the spec hash, which
    /// [`variant`] sets).
    fn names(vs: &[&ManifestVariant]) -> Vec<String> {
        vs.iter()
            .map(|v| {
                let file = v.key.rsplit('/').next().unwrap();
                let (name, ext) = file.rsplit_once('.').unwrap();
                let (preset, hash) = name.rsplit_once('.').unwrap();
                assert_eq!(hash, v.spec_hash);
                format!("{preset}.{ext}")
            })
            .collect()
    }

    #[test]
    fn the_ladder_is_the_eager_width_only_presets_one_per_width_per_format() {
        let s = settings(&[
            ("a", "w=320", true),
            ("b", "w=640", true),
            ("c", "w=1280", true),
            ("d", "w=5000", true),
            ("lazy", "w=800", false),
            ("thumb", "w=160,h=160,fit=cover", true),
        ]);
        let m = manifest(vec![
            variant("a", "avif", 320, 213),
            variant("a", "webp", 320, 213),
            variant("a", "jpg", 320, 213),
            variant("b", "avif", 640, 427),
            variant("b", "webp", 640, 427),
            variant("b", "jpg", 640, 427),
            // Source narrower than the preset: made at the source's width.
            variant("c", "webp", 3000, 2000),
            variant("d", "webp", 3000, 2000),
            variant("lazy", "webp", 800, 533),
            variant("thumb", "webp", 160, 160),
        ]);
        let all = ladder(&s, &m, &[]).unwrap();
        assert_eq!(
            names(&all),
            ["a.avif", "a.webp", "a.jpg", "b.avif", "b.webp", "b.jpg", "c.webp", "d.webp"]
        );
        let groups: Vec<Vec<String>> = by_format(&all).iter().map(|g| names(g)).collect();
        assert_eq!(
            groups,
            [
                vec!["a.avif", "b.avif"],
                vec!["a.webp", "b.webp", "c.webp"],
                vec!["a.jpg", "b.jpg"],
            ]
        );

        // Named presets: any shape of one aspect ratio, but configured and made.
        let thumb = ladder_names(&s, &m, &["thumb"]);
        assert_eq!(thumb.unwrap(), ["thumb.webp"]);
        assert_eq!(
            ladder_names(&s, &m, &["lazy", "b"]).unwrap(),
            ["b.avif", "b.webp", "b.jpg", "lazy.webp"]
        );
        assert!(matches!(
            ladder(&s, &m, &["nope".into()]),
            Err(HtmlError::UnknownPreset(n)) if n == "nope"
        ));
        let unmade = manifest(vec![variant("a", "webp", 320, 213)]);
        assert!(matches!(
            ladder(&s, &unmade, &["b".into()]),
            Err(HtmlError::NotMade { preset, .. }) if preset == "b"
        ));
        assert!(matches!(
            ladder(&s, &m, &["thumb".into(), "b".into()]),
            Err(HtmlError::MixedShapes { .. })
        ));
        let none = manifest(vec![variant("thumb", "webp", 160, 160)]);
        assert!(matches!(
            ladder(&s, &none, &[]),
            Err(HtmlError::NoLadder(_))
        ));
    }

    fn ladder_names(
        s: &Settings,
        m: &Manifest,
        presets: &[&str],
    ) -> Result<Vec<String>, HtmlError> {
        let presets: Vec<String> = presets.iter().map(|p| p.to_string()).collect();
        ladder(s, m, &presets).map(|l| names(&l))
    }

    fn set(content_type: &str, widths: &[u32]) -> Srcset {
        Srcset {
            content_type: content_type.into(),
            candidates: widths
                .iter()
                .map(|&w| Candidate {
                    url: format!("https://cdn/derived/a%20%3Cb%3E%20%26%20%22c%22.jpg/g/w{w}.x"),
                    width: w,
                    height: w * 2 / 3,
                })
                .collect(),
        }
    }

    #[test]
    fn the_picture_has_a_source_per_format_and_the_img_the_fallback() {
        let m = manifest(vec![]);
        let options = Options {
            presets: vec![],
            sizes: "(min-width: 800px) 50vw, 100vw".into(),
            alt: "a \"cat\" <b>".into(),
        };
        let sets = [
            set("image/avif", &[320, 640]),
            set("image/webp", &[320, 640, 1280]),
            set("image/jpeg", &[320, 1280]),
        ];
        let out = picture(&sets, m.placeholder.as_ref(), &options);
        let url = |w: u32| format!("https://cdn/derived/a%20%3Cb%3E%20%26%20%22c%22.jpg/g/w{w}.x");
        let sizes = "(min-width: 800px) 50vw, 100vw";
        assert_eq!(
            out.html,
            format!(
                "<picture>\n  \
                 <source type=\"image/avif\" srcset=\"{} 320w, {} 640w\" sizes=\"{sizes}\">\n  \
                 <source type=\"image/webp\" srcset=\"{} 320w, {} 640w, {} 1280w\" sizes=\"{sizes}\">\n  \
                 <img src=\"{}\" srcset=\"{} 320w, {} 1280w\" sizes=\"{sizes}\" width=\"1280\" \
                 height=\"853\" alt=\"a &quot;cat&quot; &lt;b&gt;\" loading=\"lazy\" decoding=\"async\" \
                 style=\"background-color:#1a2b3c;background-image:url(&quot;data:image/webp;base64,UklGRg==&quot;);background-size:cover\">\n\
                 </picture>\n",
                url(320), url(640), url(320), url(640), url(1280), url(1280), url(320), url(1280)
            )
        );
        assert!(out.notes.is_empty(), "{:?}", out.notes);

        // WebP only (the default presets): the <img> is WebP, and the notes say so.
        let webp = picture(&sets[1..2], None, &options);
        assert_eq!(webp.html.matches("<source").count(), 0);
        assert!(webp.html.contains(&format!("<img src=\"{}\"", url(1280))));
        assert!(!webp.html.contains("style="));
        assert!(
            webp.notes[0].contains("falls back to WebP"),
            "{:?}",
            webp.notes
        );
    }

    #[test]
    fn placeholders_of_another_shape_are_not_put_into_css() {
        let p = |dominant: &str, lqip: &str| Placeholder {
            blurhash: String::new(),
            dominant: dominant.into(),
            lqip: lqip.into(),
        };
        assert_eq!(
            placeholder_style(&p("#A0b1C2", "data:image/webp;base64,AB+/=")).unwrap(),
            "background-color:#A0b1C2;background-image:url(\"data:image/webp;base64,AB+/=\");background-size:cover"
        );
        for bad in ["red", "#12345", "#1234567", "#12345g", "#123;x:y", ""] {
            assert_eq!(css_colour(bad), None, "{bad}");
        }
        for bad in [
            "data:image/webp;base64,AB\");background:url(//evil/x",
            "data:image/png;base64,AAAA",
            "data:image/webp;base64,",
            "https://evil/x.webp",
        ] {
            assert_eq!(lqip_uri(bad), None, "{bad}");
        }
        let long = format!("data:image/webp;base64,{}", "A".repeat(LQIP_MAX_BYTES));
        assert_eq!(lqip_uri(&long), None);
        assert_eq!(placeholder_style(&p("x", "y")), None);
        assert_eq!(
            placeholder_style(&p("#000000", "y")).unwrap(),
            "background-color:#000000"
        );
    }
}
