//! A contact sheet: one HTML page showing a source and every variant its manifest lists,
//! each with its name, spec, dimensions, bytes and format — for a person to look at, and
//! for a headless browser to check.
//!
//! - `rendition sheet SOURCE` embeds every image as a `data:` URI ([`Images::Embedded`]):
//!   one self-contained file.
//! - `GET /sheet/{source key}` in `serve` links the variants by their derivative URLs
//!   ([`Images::Linked`], so they are served, or rendered on demand, like any request);
//!   `serve` does not expose sources, so the source is embedded there too.
//!
//! Every `<img>` carries `data-role` (`source` or `variant`), `data-name`,
//! `data-expected-width` and `data-expected-height` (from the manifest; for the source,
//! its oriented size). An inline script, once the window has loaded (every image loaded
//! or failed), writes `data-natural-width`, `data-natural-height` and
//! `data-loaded="true|false"` on each image and `data-checked="true"` on `<body>`, so the
//! output of `chromium --headless --dump-dom` tells whether every image decoded at the
//! size its manifest claims. The source's figure also shows the manifest's placeholder
//! (dominant colour, LQIP, BlurHash) as `rendition html`'s markup paints it. Everything
//! taken from storage is HTML-escaped.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rendition_image::placeholder::Placeholder;
use rendition_image::sniff::SourceFormat;
use rendition_pipeline::job::{Engine, JobError};
use rendition_pipeline::manifest::Manifest;
use rendition_pipeline::naming::NameError;
use rendition_pipeline::store::StoreError;

use crate::markup::{self, push_escaped};

/// Why no sheet could be made.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("no source at {0:?}")]
    NoSource(String),
    #[error(
        "{key:?} has no manifest yet (looked for {manifest_key:?}): its derivatives have not \
         been made, or are still being made (`rendition run --local DIR --once` makes them \
         for a folder bucket)"
    )]
    NoManifest { key: String, manifest_key: String },
    #[error("not a source: {0}")]
    NotASource(#[from] NameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Job(JobError),
}

impl SheetError {
    /// HTTP status for `serve`: 404 when the source or its manifest is missing, 400 for a
    /// key that cannot be a source, else its source's (503 when storage is down).
    pub fn status(&self) -> u16 {
        match self {
            SheetError::NoSource(_) | SheetError::NoManifest { .. } => 404,
            SheetError::NotASource(e) => e.status(),
            SheetError::Store(e) => e.status(),
            SheetError::Job(e) => e.status(),
        }
    }

    /// A short stable name (the `error` field of `serve`'s error bodies;
    /// [`rendition_image::kinds::KINDS`]). A missing source is `source_missing`, as on the
    /// on-demand path, not the eager job's `missing_source`.
    pub fn kind(&self) -> &'static str {
        match self {
            SheetError::NoSource(_) => "source_missing",
            SheetError::NoManifest { .. } => "manifest_missing",
            SheetError::NotASource(_) => "bad_key",
            SheetError::Store(e) => e.kind(),
            SheetError::Job(e) => e.kind(),
        }
    }

    /// Whether asking again later may succeed (storage outages).
    pub fn is_retryable(&self) -> bool {
        match self {
            SheetError::NoSource(_) | SheetError::NoManifest { .. } => false,
            SheetError::NotASource(e) => e.is_retryable(),
            SheetError::Store(e) => e.is_retryable(),
            SheetError::Job(e) => e.is_retryable(),
        }
    }
}

impl From<JobError> for SheetError {
    fn from(e: JobError) -> SheetError {
        match e {
            JobError::MissingSource { key } => SheetError::NoSource(key),
            JobError::Name(e) => SheetError::NotASource(e),
            JobError::Store(e) => SheetError::Store(e),
            other => SheetError::Job(other),
        }
    }
}

/// How the page refers to its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    /// Every image inline as a `data:` URI: the page is one self-contained file.
    Embedded,
    /// Variants by their URL path (`/` + derivative key) on the server that serves the
    /// page; the source inline.
    Linked,
}

/// A built sheet.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub html: String,
    pub manifest_key: String,
    pub manifest: Manifest,
    /// `<img>` elements on the page: the source and every variant.
    pub images: usize,
}

/// One figure of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub role: Role,
    pub name: String,
    /// Canonical spec (empty for the source).
    pub spec: String,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// MIME type, and the short format name when it says more (`jpeg` for a source).
    pub content_type: String,
    /// The `src` of its `<img>`; `None` when the image could not be read from storage.
    pub src: Option<String>,
    /// Shown under the image (e.g. why it is missing).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Variant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Variant => "variant",
        }
    }
}

/// MIME type of a source format.
pub fn source_content_type(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Jpeg => "image/jpeg",
        SourceFormat::Png => "image/png",
        SourceFormat::Webp => "image/webp",
        SourceFormat::Gif => "image/gif",
        SourceFormat::Heif => "image/heif",
        SourceFormat::Avif => "image/avif",
        SourceFormat::Tiff => "image/tiff",
    }
}

fn data_uri(content_type: &str, body: &[u8]) -> String {
    let mut out = String::with_capacity(content_type.len() + 13 + body.len().div_ceil(3) * 4);
    out.push_str("data:");
    out.push_str(content_type);
    out.push_str(";base64,");
    STANDARD.encode_string(body, &mut out);
    out
}

/// The key and contents of the manifest of the current version of `source`, found as a
/// job would find it; [`SheetError::NoManifest`] while its derivatives are not made.
pub async fn current_manifest(
    engine: &Engine,
    source: &str,
) -> Result<(String, Manifest), SheetError> {
    let pending = engine.pending(source, &[]).await?;
    match pending.stored {
        Some(manifest) => Ok((pending.manifest_key, manifest)),
        None => Err(SheetError::NoManifest {
            key: source.to_string(),
            manifest_key: pending.manifest_key,
        }),
    }
}

/// The contact sheet of the current version of `source`: finds its manifest as a job
/// would, reads the source (and, when embedding, every variant) from the engine's store.
pub async fn build(engine: &Engine, source: &str, images: Images) -> Result<Sheet, SheetError> {
    let (manifest_key, manifest) = current_manifest(engine, source).await?;
    let store = engine.store();
    let limit = engine.settings().limits.max_input_bytes;
    let src = match store.get(source, limit).await {
        Ok(obj) => obj,
        Err(StoreError::NotFound { .. }) => return Err(SheetError::NoSource(source.to_string())),
        Err(e) => return Err(e.into()),
    };
    let s = &manifest.source;
    let source_type = source_content_type(s.format);
    let mut items = Vec::with_capacity(1 + manifest.variants.len());
    let mut source_note = None;
    if src.meta.version() != s.version {
        source_note = Some("the source changed while this page was made".to_string());
    } else if matches!(s.format, SourceFormat::Heif | SourceFormat::Tiff) {
        source_note = Some(format!(
            "browsers do not display {}",
            s.format.as_str().to_uppercase()
        ));
    }
    items.push(Item {
        role: Role::Source,
        name: "source".into(),
        spec: String::new(),
        key: s.key.clone(),
        width: s.width,
        height: s.height,
        bytes: s.bytes,
        content_type: format!("{source_type} ({})", s.format.as_str()),
        src: Some(data_uri(source_type, &src.body)),
        note: source_note,
    });
    for v in &manifest.variants {
        let (src, note) = match images {
            Images::Linked => (
                Some(format!("/{}", rendition_pipeline::url::encode_key(&v.key))),
                None,
            ),
            Images::Embedded => match store.get(&v.key, u64::MAX).await {
                Ok(obj) => (Some(data_uri(&v.content_type, &obj.body)), None),
                Err(StoreError::NotFound { .. }) => (
                    None,
                    Some("listed in the manifest but not in storage".into()),
                ),
                Err(e) => return Err(e.into()),
            },
        };
        items.push(Item {
            role: Role::Variant,
            name: v.name.clone(),
            spec: v.spec.clone(),
            key: v.key.clone(),
            width: v.width,
            height: v.height,
            bytes: v.bytes,
            content_type: v.content_type.clone(),
            src,
            note,
        });
    }
    let html = page(&manifest, &manifest_key, &items);
    Ok(Sheet {
        html,
        manifest_key,
        images: items.len(),
        manifest,
    })
}

/// `1234567` → `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1536` → `1.5 KiB`; below 1 KiB, `N B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

const STYLE: &str = r#"
:root { color-scheme: light; font: 14px/1.4 system-ui, sans-serif; color: #222; background: #f4f4f2; }
body { margin: 0; padding: 1.5rem; }
header h1 { font-size: 1.25rem; margin: 0 0 .25rem; word-break: break-all; }
header p { margin: .15rem 0; color: #555; }
code { font: 12px ui-monospace, monospace; word-break: break-all; }
#status { font-weight: 600; color: #222; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(18rem, 1fr)); gap: 1rem; margin-top: 1rem; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px; overflow: hidden; display: flex; flex-direction: column; }
figure.source { grid-column: 1 / -1; }
figure.bad { border-color: #c33; box-shadow: 0 0 0 2px #c33; }
.frame { display: flex; align-items: center; justify-content: center; min-height: 8rem; padding: .5rem;
  background: repeating-conic-gradient(#ddd 0% 25%, #fff 0% 50%) 0 0 / 16px 16px; }
.frame img { max-width: 100%; max-height: 28rem; height: auto; display: block; }
figure.source .frame img { max-height: 60vh; }
figcaption { padding: .5rem .75rem .75rem; }
figcaption h2 { font-size: 1rem; margin: 0 0 .35rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .75rem; margin: 0; }
dt { color: #777; }
dd { margin: 0; }
.exact { color: #777; }
.note { color: #a33; margin: .35rem 0 0; }
.check { margin: .35rem 0 0; font-weight: 600; }
.placeholder .swatch, .placeholder .lqip { display: inline-block; vertical-align: middle; height: 4rem;
  margin-right: .5rem; border: 1px solid #ccc; border-radius: 3px; }
.placeholder .swatch { width: 4rem; }
.placeholder .lqip { background-size: cover; background-position: center; }
figure.ok .check { color: #2a7a2a; }
figure.bad .check { color: #c33; }
"#;

/// Runs once every image has loaded or failed (the window's load event): records what
/// the browser decoded, for people (the captions) and for `--dump-dom` (the attributes).
const SCRIPT: &str = r#"
(function () {
  "use strict";
  function settle() {
    var imgs = Array.prototype.slice.call(document.querySelectorAll("img[data-role]"));
    var good = 0;
    imgs.forEach(function (img) {
      var w = img.naturalWidth, h = img.naturalHeight;
      var loaded = img.complete && w > 0 && h > 0;
      var ew = img.getAttribute("data-expected-width"), eh = img.getAttribute("data-expected-height");
      var match = loaded && String(w) === ew && String(h) === eh;
      img.setAttribute("data-natural-width", String(w));
      img.setAttribute("data-natural-height", String(h));
      img.setAttribute("data-loaded", loaded ? "true" : "false");
      var fig = img.closest("figure");
      if (fig) {
        fig.classList.add(match ? "ok" : "bad");
        var check = fig.querySelector(".check");
        if (check) {
          check.textContent = !loaded ? "\u2717 did not load"
            : match ? "\u2713 loaded at " + w + "\u00d7" + h
            : "\u2717 loaded at " + w + "\u00d7" + h + ", the manifest says " + ew + "\u00d7" + eh;
        }
      }
      if (match) { good += 1; }
    });
    var status = document.getElementById("status");
    if (status) {
      status.textContent = good + " of " + imgs.length + " images loaded at their manifest size";
    }
    document.body.setAttribute("data-checked", "true");
  }
  if (document.readyState === "complete") { settle(); } else { window.addEventListener("load", settle); }
})();
"#;

/// The page for `manifest` (stored at `manifest_key`) showing `items`, the source first.
pub fn page(manifest: &Manifest, manifest_key: &str, items: &[Item]) -> String {
    let s = &manifest.source;
    let images_len: usize = items
        .iter()
        .map(|i| i.src.as_ref().map_or(0, String::len))
        .sum();
    let mut out = String::with_capacity(8 * 1024 + images_len + items.len() * 1024);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>Contact sheet: ");
    push_escaped(&mut out, &s.key);
    out.push_str("</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n");
    let _ = writeln!(out, "<body data-images=\"{}\">", items.len());
    out.push_str("<header>\n<h1>");
    push_escaped(&mut out, &s.key);
    out.push_str("</h1>\n<p>");
    let _ = write!(
        out,
        "{}×{} · {} · {} <span class=\"exact\">({} bytes)</span> · {} variant{}",
        s.width,
        s.height,
        s.format.as_str(),
        human_bytes(s.bytes),
        grouped(s.bytes),
        manifest.variants.len(),
        if manifest.variants.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    out.push_str("</p>\n<p>bucket <code>");
    push_escaped(&mut out, &s.bucket);
    out.push_str("</code> · guid <code>");
    push_escaped(&mut out, &s.guid.to_string());
    out.push_str("</code> · version <code>");
    push_escaped(&mut out, &s.version);
    out.push_str("</code></p>\n<p>manifest <code>");
    push_escaped(&mut out, manifest_key);
    out.push_str("</code></p>\n<p id=\"status\">checking images…</p>\n</header>\n");
    out.push_str("<main class=\"grid\">\n");
    for item in items {
        // The placeholder stands beside the source it was computed from.
        let placeholder = manifest
            .placeholder
            .as_ref()
            .filter(|_| item.role == Role::Source);
        figure(&mut out, item, placeholder);
    }
    out.push_str("</main>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

fn figure(out: &mut String, item: &Item, placeholder: Option<&Placeholder>) {
    let role = item.role.as_str();
    let _ = write!(
        out,
        "<figure class=\"item {role}\" data-role=\"{role}\">\n<div class=\"frame\"><img"
    );
    if let Some(src) = &item.src {
        out.push_str(" src=\"");
        push_escaped(out, src);
        out.push('"');
    }
    out.push_str(" alt=\"");
    match item.role {
        Role::Source => push_escaped(out, &format!("source {}", item.key)),
        Role::Variant => push_escaped(out, &format!("variant {}", item.name)),
    }
    let _ = write!(out, "\" data-role=\"{role}\" data-name=\"");
    push_escaped(out, &item.name);
    out.push_str("\" data-key=\"");
    push_escaped(out, &item.key);
    let _ = writeln!(
        out,
        "\" data-expected-width=\"{}\" data-expected-height=\"{}\" width=\"{}\" height=\"{}\"></div>",
        item.width, item.height, item.width, item.height
    );
    out.push_str("<figcaption>\n<h2>");
    push_escaped(out, &item.name);
    out.push_str("</h2>\n<dl>\n");
    if !item.spec.is_empty() {
        out.push_str("<dt>spec</dt><dd><code>");
        push_escaped(out, &item.spec);
        out.push_str("</code></dd>\n");
    }
    let _ = writeln!(
        out,
        "<dt>size</dt><dd>{}×{}</dd>\n<dt>bytes</dt><dd>{} <span class=\"exact\">({} bytes)</span></dd>",
        item.width,
        item.height,
        human_bytes(item.bytes),
        grouped(item.bytes)
    );
    out.push_str("<dt>format</dt><dd>");
    push_escaped(out, &item.content_type);
    out.push_str("</dd>\n<dt>key</dt><dd><code>");
    push_escaped(out, &item.key);
    out.push_str("</code></dd>\n");
    if let Some(p) = placeholder {
        placeholder_row(out, p, item.width, item.height);
    }
    out.push_str("</dl>\n");
    if let Some(note) = &item.note {
        out.push_str("<p class=\"note\">");
        push_escaped(out, note);
        out.push_str("</p>\n");
    }
    out.push_str("<p class=\"check\"></p>\n</figcaption>\n</figure>\n");
}

/// The manifest's placeholder as a page paints it: the dominant colour as a swatch, the
/// LQIP stretched to the source's aspect ratio (as a background, like `rendition html`'s
/// markup, so the page's image check counts only real images), and the BlurHash string.
/// A colour or data URI of another shape than the writer gives them is shown as text only.
fn placeholder_row(out: &mut String, p: &Placeholder, width: u32, height: u32) {
    out.push_str("<dt>placeholder</dt><dd class=\"placeholder\">");
    if let Some(colour) = markup::css_colour(&p.dominant) {
        let _ = write!(
            out,
            "<span class=\"swatch\" data-placeholder=\"dominant\" style=\"background-color:{colour}\" title=\"dominant colour\"></span>"
        );
    }
    if let Some(uri) = markup::lqip_uri(&p.lqip) {
        let _ = write!(
            out,
            "<span class=\"lqip\" data-placeholder=\"lqip\" style=\"aspect-ratio:{} / {};background-image:url(",
            width.max(1),
            height.max(1)
        );
        push_escaped(out, &format!("\"{uri}\""));
        out.push_str(")\" title=\"LQIP\"></span>");
    }
    out.push_str("<br><code>");
    push_escaped(out, &p.dominant);
    out.push_str("</code> · BlurHash <code data-placeholder=\"blurhash\">");
    push_escaped(out, &p.blurhash);
    out.push_str("</code></dd>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendition_pipeline::manifest::{ManifestSource, ManifestVariant};

    fn manifest() -> Manifest {
        Manifest {
            version: rendition_pipeline::manifest::MANIFEST_VERSION,
            placeholder: None,
            source: ManifestSource {
                bucket: "b<&>".into(),
                key: "originals/<script>alert(1)</script> & \"q\".jpg".into(),
                guid: uuid::Uuid::nil(),
                version: "v'1".into(),
                width: 4000,
                height: 3000,
                format: SourceFormat::Jpeg,
                bytes: 2_345_678,
            },
            variants: vec![ManifestVariant {
                name: "thumb".into(),
                spec: "w=160,h=160,fit=cover,fm=webp".into(),
                spec_hash: "0a1b2c3d".into(),
                key: "derived/x/thumb.0a1b2c3d.webp".into(),
                width: 160,
                height: 160,
                bytes: 999,
                content_type: "image/webp".into(),
            }],
            skipped: vec![],
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(2_345_678), "2,345,678");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2_345_678), "2.2 MiB");
        assert_eq!(human_bytes(50 * 1024 * 1024), "50 MiB");
    }

    #[test]
    fn page_escapes_what_comes_from_storage_and_carries_the_check_attributes() {
        let mut m = manifest();
        m.placeholder = Some(Placeholder {
            blurhash: "L<script>x".into(),
            dominant: "#a1b2c3".into(),
            lqip: "data:image/webp;base64,UklGRg==".into(),
        });
        let items = vec![
            Item {
                role: Role::Source,
                name: "source".into(),
                spec: String::new(),
                key: m.source.key.clone(),
                width: 4000,
                height: 3000,
                bytes: m.source.bytes,
                content_type: "image/jpeg (jpeg)".into(),
                src: Some(data_uri("image/jpeg", b"\xff\xd8\xff")),
                note: None,
            },
            Item {
                role: Role::Variant,
                name: "thumb".into(),
                spec: m.variants[0].spec.clone(),
                key: m.variants[0].key.clone(),
                width: 160,
                height: 160,
                bytes: 999,
                content_type: "image/webp".into(),
                src: None,
                note: Some("listed in the manifest but not in storage".into()),
            },
        ];
        let html = page(&m, "derived/<m>/manifest.json", &items);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;.jpg"));
        assert!(html.contains("derived/&lt;m&gt;/manifest.json"));
        assert!(html.contains("v&#39;1"));
        assert_eq!(html.matches("<img").count(), 2);
        assert!(html.contains("src=\"data:image/jpeg;base64,/9j/\""));
        assert!(html.contains(
            "data-role=\"variant\" data-name=\"thumb\" data-key=\"derived/x/thumb.0a1b2c3d.webp\" \
             data-expected-width=\"160\" data-expected-height=\"160\""
        ));
        assert!(html.contains("data-expected-width=\"4000\" data-expected-height=\"3000\""));
        assert!(html.contains("2.2 MiB <span class=\"exact\">(2,345,678 bytes)</span>"));
        assert!(html.contains("data-checked"));
        // The placeholder, once, beside the source (before the variant's figure).
        assert_eq!(html.matches("<dt>placeholder</dt>").count(), 1);
        let at = html.find("<dt>placeholder</dt>").unwrap();
        assert!(at < html.find("data-role=\"variant\"").unwrap());
        assert!(html.contains("style=\"background-color:#a1b2c3\""));
        assert!(html.contains(
            "style=\"aspect-ratio:4000 / 3000;background-image:url(&quot;data:image/webp;base64,UklGRg==&quot;)\""
        ));
        assert!(html.contains("<code data-placeholder=\"blurhash\">L&lt;script&gt;x</code>"));
        // A colour or URI of another shape is text, never CSS.
        m.placeholder = Some(Placeholder {
            blurhash: "h".into(),
            dominant: "red;x:y".into(),
            lqip: "data:image/webp;base64,A\");x".into(),
        });
        let other = page(&m, "k", &items);
        assert!(!other.contains("class=\"swatch\"") && !other.contains("class=\"lqip\""));
        assert!(other.contains("<code>red;x:y</code>"));
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only the page's own script"
        );
    }

    #[test]
    fn errors_are_classified() {
        let cases = [
            (
                JobError::MissingSource { key: "k".into() }.into(),
                "source_missing",
                404,
            ),
            (
                SheetError::NoManifest {
                    key: "k".into(),
                    manifest_key: "m".into(),
                },
                "manifest_missing",
                404,
            ),
            (
                JobError::Name(NameError::TooLong { len: 2000 }).into(),
                "bad_key",
                400,
            ),
            (
                JobError::Store(StoreError::Unavailable("down".into())).into(),
                "storage_unavailable",
                503,
            ),
            (JobError::Crashed("c".into()).into(), "crashed", 500),
        ];
        for (err, kind, status) in cases {
            assert_eq!((err.kind(), err.status()), (kind, status), "{err}");
            assert!(rendition_image::kinds::is_known(err.kind()), "{kind}");
            assert_eq!(err.is_retryable(), status == 503 || kind == "crashed");
        }
    }
}
