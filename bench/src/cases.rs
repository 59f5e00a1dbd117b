//! What is measured (source classes, variant sets) and one Rendition case, run in this
//! process by `--child rendition:CLASS:SET:C:SANDBOX --file F…`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rendition_image::render::VariantRequest;
use rendition_image::renderer::Renderer;
use rendition_image::sniff::{self, SourceFormat};
use rendition_image::spec::{Format, VariantSpec};
use rendition_pipeline::config::Settings;
use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::measure;

/// The eager widths (the default `xl`…`thumb` presets).
const WIDTHS: [u32; 5] = [2048, 1024, 640, 320, 160];

/// The classes of sources the bench measures separately, told apart by content, not by
/// name: a JPEG by its frame marker (progressive: SOF2 and the other progressive SOFs; its
/// decode cost differs from a baseline JPEG's), PNG, and HEIC (HEVC in HEIF, as phones
/// write it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Progressive,
    Baseline,
    Png,
    Heic,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Progressive, Class::Baseline, Class::Png, Class::Heic];

    /// The class of a source's bytes; `None` for anything else (GIF, WebP, AVIF, TIFF).
    pub fn of(bytes: &[u8]) -> Option<Class> {
        match sniff::sniff(bytes).ok()? {
            SourceFormat::Jpeg => Some(if jpeg_is_progressive(bytes)? {
                Class::Progressive
            } else {
                Class::Baseline
            }),
            SourceFormat::Png => Some(Class::Png),
            SourceFormat::Heif => Some(Class::Heic),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Progressive => "progressive",
            Class::Baseline => "baseline",
            Class::Png => "png",
            Class::Heic => "heic",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Class::Progressive => "progressive JPEG",
            Class::Baseline => "baseline JPEG",
            Class::Png => "PNG",
            Class::Heic => "HEIC",
        }
    }
    pub fn parse(s: &str) -> Result<Class, BenchError> {
        Class::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| BenchError::UnknownClass(s.to_string()))
    }
    /// `--kind jpeg|png` (the classes before there were four): the classes it stands for.
    pub fn of_kind(kind: &str) -> Result<Vec<Class>, BenchError> {
        match kind {
            "jpeg" => Ok(vec![Class::Progressive, Class::Baseline]),
            "png" => Ok(vec![Class::Png]),
            _ => Err(BenchError::UnknownKind(kind.to_string())),
        }
    }
    /// Whether a file name may hold a source of some class (the content decides which).
    fn candidate(path: &Path) -> bool {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        matches!(
            ext.as_deref(),
            Some("jpg" | "jpeg" | "png" | "heic" | "heif")
        )
    }
}

/// Whether a JPEG is progressive: its first frame marker (SOFn, read through the header
/// segments) is one of the progressive ones (SOF2, SOF6, SOF10, SOF14). `None` when no
/// frame marker comes before the first scan or the data ends.
pub fn jpeg_is_progressive(bytes: &[u8]) -> Option<bool> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    loop {
        if *bytes.get(i)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        match marker {
            // Fill bytes before a marker.
            0xFF => i += 1,
            0xC2 | 0xC6 | 0xCA | 0xCE => return Some(true),
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => return Some(false),
            // Start of scan before any frame, or end of image.
            0xDA | 0xD9 => return None,
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                let len = u16::from_be_bytes([*bytes.get(i + 2)?, *bytes.get(i + 3)?]);
                i += 2 + usize::from(len);
            }
        }
    }
}

/// The variant sets:
/// - `one`: `w=300,fm=jpeg,q=80`: Rendition, sharp, vipsthumbnail;
/// - `eager5`: widths 2048/1024/640/320/160 as WebP q75, from one decode (Rendition);
/// - `eager10`: those widths as JPEG q80 and WebP q75: Rendition from one decode, sharp as
///   10 independent pipelines per image (decode, resize, encode each), as an on-demand
///   service would render them;
/// - `eager15`: the eager set with AVIF: `eager10` and the five widths as AVIF (q50, the
///   format's default quality; effort `render.avif_effort`), 15 outputs from one decode
///   against sharp's 15 pipelines;
/// - `eager5-jpeg` (Rendition, concurrency 1): the five widths as JPEG only, which with
///   `eager5` and `eager10` splits the eager set's time into decode/resize, JPEG encoding
///   and WebP encoding;
/// - `presets`: the built-in eager presets as configured (`xl` 2048, `lg` 1024, `md` 640,
///   `sm` 320 wide, `thumb` 160×160 cover; WebP q75, as in rendition.toml), the requests an
///   eager job makes (one per preset and format);
/// - `presets-avif`: the same presets with `formats = ["avif", "webp"]`: each spec also
///   as AVIF (same `q`, effort `render.avif_effort`), 10 outputs from one decode. Against
///   `presets`: what adding AVIF costs. sharp renders both as one pipeline per output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    One,
    Eager5,
    Eager5Jpeg,
    Eager10,
    Eager15,
    Presets,
    PresetsAvif,
}

impl Set {
    pub const ALL: [Set; 7] = [
        Set::One,
        Set::Eager5,
        Set::Eager5Jpeg,
        Set::Eager10,
        Set::Eager15,
        Set::Presets,
        Set::PresetsAvif,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Set::One => "one",
            Set::Eager5 => "eager5",
            Set::Eager5Jpeg => "eager5-jpeg",
            Set::Eager10 => "eager10",
            Set::Eager15 => "eager15",
            Set::Presets => "presets",
            Set::PresetsAvif => "presets-avif",
        }
    }
    pub fn parse(s: &str) -> Result<Set, BenchError> {
        Set::ALL
            .into_iter()
            .find(|set| set.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Set::ALL.iter().map(|s| s.as_str()).collect();
                BenchError::UnknownSet {
                    name: s.to_string(),
                    known: names.join(", "),
                }
            })
    }
    pub fn label(self) -> &'static str {
        match self {
            Set::One => "1 × w300 JPEG",
            Set::Eager5 => "5 × WebP",
            Set::Eager5Jpeg => "5 × JPEG",
            Set::Eager10 => "10 (5 JPEG+5 WebP)",
            Set::Eager15 => "15 (5 JPEG+5 WebP+5 AVIF)",
            Set::Presets => "eager presets: 5 WebP",
            Set::PresetsAvif => "eager presets: 5 AVIF+5 WebP",
        }
    }
    /// The configuration whose eager presets the `presets` sets render: the built-in
    /// presets (rendition.toml's), as configured or with AVIF added to each.
    pub fn preset_settings(self) -> Option<Settings> {
        let avif = match self {
            Set::Presets => false,
            Set::PresetsAvif => true,
            _ => return None,
        };
        let mut settings = Settings::default();
        if avif {
            for preset in settings.presets.values_mut().filter(|p| p.eager) {
                // As it would be written in rendition.toml: no `fm` in the spec, the
                // formats in order of preference.
                preset.formats = vec![Format::Avif, preset.spec.format];
                preset.spec.format = Format::Original;
            }
        }
        Some(settings)
    }
    /// The requests one source gets: the variant specs (in Rendition's spec syntax), or
    /// for the `presets` sets what an eager job asks for (core's `job::requests_of`: one
    /// request per eager preset and format, named after the preset).
    pub fn requests(self) -> Result<Vec<VariantRequest>, BenchError> {
        if let Some(settings) = self.preset_settings() {
            settings.validate().map_err(BenchError::PresetConfig)?;
            return Ok(settings
                .eager_presets()
                .flat_map(|(name, preset)| {
                    preset.formats().into_iter().map(|format| VariantRequest {
                        name: name.to_string(),
                        spec: preset.spec_in(format),
                    })
                })
                .collect());
        }
        let jpeg = |w: u32| format!("w={w},fm=jpeg,q=80");
        let webp = |w: u32| format!("w={w},fm=webp,q=75");
        let avif = |w: u32| format!("w={w},fm=avif,q=50");
        let specs: Vec<String> = match self {
            Set::One => vec![jpeg(300)],
            Set::Eager5 => WIDTHS.iter().map(|&w| webp(w)).collect(),
            Set::Eager5Jpeg => WIDTHS.iter().map(|&w| jpeg(w)).collect(),
            Set::Eager10 => WIDTHS.iter().flat_map(|&w| [jpeg(w), webp(w)]).collect(),
            Set::Eager15 => WIDTHS
                .iter()
                .flat_map(|&w| [jpeg(w), webp(w), avif(w)])
                .collect(),
            Set::Presets | Set::PresetsAvif => unreachable!("built from the presets above"),
        };
        specs
            .into_iter()
            .map(|text| {
                let spec: VariantSpec = match text.parse() {
                    Ok(spec) => spec,
                    Err(source) => return Err(BenchError::Spec { text, source }),
                };
                Ok(VariantRequest { name: text, spec })
            })
            .collect()
    }
    /// Whether sharp is given this set's variants as JSON ([`Set::sharp_variants`]) rather
    /// than by the set's name in `bench/sharp-bench.mjs`.
    pub fn sharp_from_json(self) -> bool {
        matches!(self, Set::Eager15 | Set::Presets | Set::PresetsAvif)
    }
    /// Whether sharp renders this set too. `eager5` and `eager5-jpeg` only split
    /// Rendition's eager time into its parts.
    pub fn sharp_compared(self) -> bool {
        !matches!(self, Set::Eager5 | Set::Eager5Jpeg)
    }
    /// The outputs of this set as sharp pipelines, for `sharp-bench.mjs`: the same
    /// requests Rendition renders, with Rendition's encoder settings (quality from the spec
    /// or the format's default, AVIF effort `render.avif_effort`).
    pub fn sharp_variants(self) -> Result<serde_json::Value, BenchError> {
        let effort = self
            .preset_settings()
            .unwrap_or_default()
            .render
            .avif_effort;
        let variants = self
            .requests()?
            .iter()
            .map(|r| sharp_variant(&r.spec, effort))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(serde_json::Value::Array(variants))
    }
}

/// One output as a sharp pipeline: `resize({width, height, fit, position,
/// withoutEnlargement})` then the encoder. Only what sharp-bench.mjs does the same way as
/// Rendition: w, h, fit, g=centre, fm (jpeg, webp, avif), q, enlarge.
fn sharp_variant(spec: &VariantSpec, avif_effort: u8) -> Result<serde_json::Value, BenchError> {
    let plain = VariantSpec {
        width: spec.width,
        height: spec.height,
        fit: spec.fit,
        format: spec.format,
        quality: spec.quality,
        enlarge: spec.enlarge,
        ..VariantSpec::default()
    };
    if *spec != plain || !matches!(spec.format, Format::Jpeg | Format::Webp | Format::Avif) {
        return Err(BenchError::SharpCannotRender {
            spec: spec.to_string(),
        });
    }
    Ok(serde_json::json!({
        "width": spec.width,
        "height": spec.height,
        "fit": spec.fit.as_str(),
        "withoutEnlargement": !spec.enlarge,
        "format": spec.format.as_str(),
        "quality": spec.quality.unwrap_or(spec.format.default_quality()),
        "effort": (spec.format == Format::Avif).then_some(avif_effort),
    }))
}

/// One Rendition case: what `--child` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub class: Class,
    pub set: Set,
    pub concurrency: usize,
    /// Renders in a helper pool of `concurrency` helpers (on) or in this process (off).
    pub sandbox: bool,
}

impl Case {
    /// `rendition:CLASS:SET:CONCURRENCY:on|off`, the `--child` argument (the files go
    /// with `--file`).
    pub fn to_arg(self) -> String {
        format!(
            "rendition:{}:{}:{}:{}",
            self.class.as_str(),
            self.set.as_str(),
            self.concurrency,
            if self.sandbox { "on" } else { "off" }
        )
    }
    fn parse(arg: &str) -> Result<Case, BenchError> {
        let parts: Vec<&str> = arg.split(':').collect();
        let [tool, class, set, concurrency, sandbox] = parts[..] else {
            return Err(BenchError::ChildArgument(arg.to_string()));
        };
        if tool != "rendition" {
            return Err(BenchError::ChildTool(tool.to_string()));
        }
        let sandbox = match sandbox {
            "on" => true,
            "off" => false,
            _ => return Err(BenchError::ChildSandbox(sandbox.to_string())),
        };
        Ok(Case {
            class: Class::parse(class)?,
            set: Set::parse(set)?,
            concurrency: concurrency
                .parse::<usize>()
                .map_err(BenchError::ChildConcurrency)?
                .max(1),
            sandbox,
        })
    }
}

/// The sources in `dir` by class, each class' files sorted by name: every `.jpg`, `.jpeg`,
/// `.png`, `.heic` and `.heif` file, put in its class by its content.
pub fn classify(dir: &Path) -> Result<Vec<(Class, Vec<PathBuf>)>, BenchError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| BenchError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && Class::candidate(p))
        .collect();
    paths.sort();
    let mut by_class: Vec<(Class, Vec<PathBuf>)> =
        Class::ALL.iter().map(|&c| (c, Vec::new())).collect();
    for path in paths {
        let bytes = read(&path)?;
        if let Some(class) = Class::of(&bytes) {
            let slot = by_class.iter_mut().find(|(c, _)| *c == class);
            slot.expect("every class has a slot").1.push(path);
        }
    }
    Ok(by_class)
}

pub fn read_all(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, BenchError> {
    files.iter().map(|f| read(f)).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, BenchError> {
    std::fs::read(path).map_err(|source| BenchError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// What one measured case (a child process) reports on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseOutput {
    pub images: usize,
    pub outputs_per_image: usize,
    pub warmup_s: f64,
    pub times_s: Vec<f64>,
    /// Encoded bytes of one pass (a sanity check that the tools did comparable work).
    pub out_bytes: u64,
    /// Rendition only: VmHWM of the case process, read by itself.
    #[serde(default)]
    pub vmhwm_kb: Option<u64>,
    /// Rendition with the sandbox on: the largest peak RSS of its reaped render helpers
    /// (`getrusage(RUSAGE_CHILDREN)`).
    #[serde(default)]
    pub helpers_maxrss_kb: Option<u64>,
    /// Rendition: the peak, over samples every [`measure::TREE_SAMPLE_MS`] ms, of the case
    /// process' RSS plus its helpers' anonymous RSS (what the process tree holds at once;
    /// the helpers' file-backed pages are the same binary and libraries as the case
    /// process').
    #[serde(default)]
    pub tree_rss_kb: Option<u64>,
    /// Rendition: whether jemalloc was mapped into the case process (LD_PRELOAD took).
    #[serde(default)]
    pub jemalloc: Option<bool>,
    /// sharp only.
    #[serde(default)]
    pub sharp: Option<String>,
    #[serde(default)]
    pub libvips: Option<String>,
}

/// `--child rendition:CLASS:SET:CONCURRENCY:on|off --file F…`: runs one Rendition case on
/// the files and prints its [`CaseOutput`] as JSON.
///
/// Sandbox off renders through `Renderer::in_process` (the blocking pool of this process'
/// runtime); on, through a `Renderer` whose pool has `concurrency` helpers, started before
/// the warm-up (as a worker starts it before its first job). Either way `concurrency`
/// tasks take the next image from a shared index and render every variant of it from one
/// decode. The helpers are stopped and reaped before the output is printed, so that this
/// process' `wait4` figures include theirs. A sampler thread follows the RSS of this
/// process and its helpers throughout.
pub fn child(files: &[PathBuf], iterations: usize, arg: &str) -> Result<(), BenchError> {
    let case = Case::parse(arg)?;
    if files.is_empty() {
        return Err(BenchError::ChildFiles);
    }
    // A helper that fails says so through tracing; stdout is the JSON answer only.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .try_init();
    let sampler = measure::TreeRss::start();
    let sources: Arc<Vec<Bytes>> =
        Arc::new(read_all(files)?.into_iter().map(Bytes::from).collect());
    let requests = Arc::new(case.set.requests()?);
    let mut settings = case.set.preset_settings().unwrap_or_default();
    settings.render.vips_threads = 1;
    settings.render.sandbox = case.sandbox;
    settings.render.concurrency = case.concurrency;
    settings.render.pool_size = case.concurrency;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let measured = runtime.block_on(async {
        let renderer = if case.sandbox {
            Renderer::from_settings(&settings.limits, &settings.render)
                .await
                .map_err(BenchError::Sandbox)?
        } else {
            Renderer::in_process(&settings.limits, &settings.render)
        };
        let passes = async {
            let (warmup_s, _) = pass(&renderer, &sources, &requests, case.concurrency).await?;
            let mut times_s = Vec::with_capacity(iterations);
            let mut out_bytes = 0;
            for _ in 0..iterations {
                let (secs, bytes) = pass(&renderer, &sources, &requests, case.concurrency).await?;
                times_s.push(secs);
                out_bytes = bytes;
            }
            Ok::<_, BenchError>((warmup_s, times_s, out_bytes))
        }
        .await;
        renderer.shutdown().await;
        passes
    });
    // Dropping the runtime drops whatever still holds a helper (one started to replace a
    // recycled one): killed on drop, then reaped here with any the runtime did not reap.
    drop(runtime);
    let tree_rss_kb = sampler.stop();
    measure::reap_all_children();
    let (warmup_s, times_s, out_bytes) = measured?;
    let out = CaseOutput {
        images: sources.len(),
        outputs_per_image: requests.len(),
        warmup_s,
        times_s,
        out_bytes,
        vmhwm_kb: measure::vm_hwm_kb(),
        helpers_maxrss_kb: case.sandbox.then(measure::children_maxrss_kb),
        tree_rss_kb: Some(tree_rss_kb),
        jemalloc: Some(measure::jemalloc_mapped()),
        sharp: None,
        libvips: None,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// One pass over all sources. Returns (seconds, bytes out).
async fn pass(
    renderer: &Renderer,
    sources: &Arc<Vec<Bytes>>,
    requests: &Arc<Vec<VariantRequest>>,
    concurrency: usize,
) -> Result<(f64, u64), BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (renderer, sources, requests) = (renderer.clone(), sources.clone(), requests.clone());
        let (next, bytes) = (next.clone(), bytes.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(source) = sources.get(i) else {
                    return Ok::<_, BenchError>(());
                };
                let key = format!("bench/{i}");
                let out = renderer
                    .render(&key, source.clone(), requests.to_vec())
                    .await
                    .map_err(|source| BenchError::Render { image: i, source })?;
                let n: usize = out.variants.iter().map(|v| v.bytes.len()).sum();
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(BenchError::Task)??;
    }
    Ok((start.elapsed().as_secs_f64(), bytes.load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bench_spec_parses() {
        let len = |set: Set| set.requests().expect("valid specs").len();
        for (set, n) in [
            (Set::One, 1),
            (Set::Eager5, 5),
            (Set::Eager5Jpeg, 5),
            (Set::Eager10, 10),
            (Set::Eager15, 15),
            (Set::Presets, 5),
            (Set::PresetsAvif, 10),
        ] {
            assert_eq!(len(set), n, "{}", set.as_str());
        }
    }

    /// The `presets` sets are rendition.toml's eager presets (the built-in ones).
    #[test]
    fn the_preset_sets_are_rendition_toml_s_eager_presets() {
        let toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rendition.toml");
        let configured = Settings::load(Some(&toml), std::iter::empty()).expect("rendition.toml");
        let eager = |s: &Settings| -> Vec<(String, String)> {
            s.eager_presets()
                .map(|(n, p)| (n.to_string(), p.spec.to_string()))
                .collect()
        };
        let ours = Set::Presets.preset_settings().unwrap();
        assert_eq!(eager(&ours), eager(&configured));
        assert_eq!(configured.render.avif_effort, ours.render.avif_effort);

        let webp: Vec<String> = Set::Presets
            .requests()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.name, r.spec))
            .collect();
        assert_eq!(
            webp,
            [
                "lg w=1024,fm=webp,q=75",
                "md w=640,fm=webp,q=75",
                "sm w=320,fm=webp,q=75",
                "thumb w=160,h=160,fit=cover,fm=webp,q=75",
                "xl w=2048,fm=webp,q=75",
            ]
        );
        // Each preset in ["avif", "webp"]: the same spec in both, AVIF first.
        let both = Set::PresetsAvif.requests().unwrap();
        for (pair, one) in both.chunks(2).zip(Set::Presets.requests().unwrap()) {
            assert_eq!(pair[0].name, one.name);
            assert_eq!(pair[0].spec.format, Format::Avif);
            assert_eq!(pair[1].spec, one.spec);
            let as_avif = VariantSpec {
                format: Format::Avif,
                ..one.spec.clone()
            };
            assert_eq!(pair[0].spec, as_avif);
        }
    }

    #[test]
    fn sharp_gets_the_same_variants_and_encoder_settings() {
        let v = Set::PresetsAvif.sharp_variants().unwrap();
        let v = v.as_array().unwrap();
        assert_eq!(v.len(), 10);
        let thumb_avif = v
            .iter()
            .find(|x| x["height"] == 160 && x["format"] == "avif")
            .expect("thumb as AVIF");
        assert_eq!(thumb_avif["fit"], "cover");
        assert_eq!(thumb_avif["quality"], 75);
        assert_eq!(thumb_avif["effort"], 2);
        assert_eq!(thumb_avif["withoutEnlargement"], true);
        assert!(v
            .iter()
            .filter(|x| x["format"] == "webp")
            .all(|x| x["effort"].is_null() && x["quality"] == 75));
        assert!(sharp_variant(
            &"w=300,fx=0.5,fy=0.5,h=300,fit=cover,fm=webp"
                .parse()
                .unwrap(),
            2
        )
        .is_err());
        assert!(sharp_variant(&"w=300,fm=avif".parse().unwrap(), 4).unwrap()["quality"] == 50);
    }

    #[test]
    fn sets_round_trip_their_names() {
        for set in Set::ALL {
            assert_eq!(Set::parse(set.as_str()).unwrap(), set);
        }
    }

    #[test]
    fn cases_round_trip_their_argument() {
        for sandbox in [false, true] {
            let case = Case {
                class: Class::Heic,
                set: Set::Eager10,
                concurrency: 2,
                sandbox,
            };
            assert_eq!(Case::parse(&case.to_arg()).unwrap(), case);
        }
        assert!(Case::parse("rendition:png:one:1").is_err());
        assert!(Case::parse("sharp:png:one:1:off").is_err());
        assert!(Case::parse("rendition:png:one:1:maybe").is_err());
        assert!(Case::parse("rendition:jpeg:one:1:on").is_err());
    }

    /// SOI, an APP segment of `app_len` payload bytes, then a frame marker.
    fn jpeg_head(app_len: usize, sof: u8) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE1];
        b.extend_from_slice(&u16::try_from(app_len + 2).unwrap().to_be_bytes());
        b.extend(std::iter::repeat_n(0xFF, app_len)); // payload bytes that look like markers
        b.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x04, 0x00, 0x00]); // a DQT
        b.extend_from_slice(&[0xFF, 0xFF, 0xFF, sof, 0x00, 0x11]); // fill bytes, then SOFn
        b.extend_from_slice(&[0u8; 15]);
        b
    }

    #[test]
    fn the_frame_marker_tells_progressive_from_baseline() {
        for (sof, progressive) in [(0xC0, false), (0xC1, false), (0xC2, true), (0xCA, true)] {
            assert_eq!(
                jpeg_is_progressive(&jpeg_head(300, sof)),
                Some(progressive),
                "SOF {sof:#x}"
            );
        }
        // A DHT (0xC4) is not a frame; a scan before any frame, a cut file, not a JPEG.
        // (a DHT whose payload reads like an SOF2 marker, then an SOF0)
        let dht_then_sof0 = [0xFF, 0xD8, 0xFF, 0xC4, 0, 4, 0xFF, 0xC2, 0xFF, 0xC0, 0, 2];
        assert_eq!(jpeg_is_progressive(&dht_then_sof0), Some(false));
        assert_eq!(jpeg_is_progressive(&jpeg_head(10, 0xDA)), None);
        assert_eq!(jpeg_is_progressive(&jpeg_head(300, 0xC2)[..200]), None);
        assert_eq!(jpeg_is_progressive(b"\x89PNG\r\n\x1a\n"), None);
    }

    #[test]
    fn classes_come_from_the_content() {
        assert_eq!(Class::of(&jpeg_head(20, 0xC2)), Some(Class::Progressive));
        assert_eq!(Class::of(&jpeg_head(20, 0xC0)), Some(Class::Baseline));
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 8, 8, 2, 0, 0, 0]);
        assert_eq!(Class::of(&png), Some(Class::Png));
        assert_eq!(
            Class::of(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"),
            Some(Class::Heic)
        );
        assert_eq!(Class::of(b"GIF89a\x01\0\x01\0"), None);
        assert!(Class::candidate(Path::new("a/x.HEIC")));
        assert!(!Class::candidate(Path::new("a/classes.tsv")));
        for class in Class::ALL {
            assert_eq!(Class::parse(class.as_str()).unwrap(), class);
        }
        assert_eq!(
            Class::of_kind("jpeg").unwrap(),
            [Class::Progressive, Class::Baseline]
        );
    }
}
