//! What is measured (photo kinds, variant sets) and one Rendition case, run in this
//! process by `--child rendition:KIND:SET:C:SANDBOX`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use rendition_core::config::Settings;
use rendition_core::render::VariantRequest;
use rendition_core::renderer::Renderer;
use rendition_core::spec::{Format, VariantSpec};
use serde::{Deserialize, Serialize};

use crate::measure;

/// The eager widths (the default `xl`…`thumb` presets).
const WIDTHS: [u32; 5] = [2048, 1024, 640, 320, 160];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Jpeg,
    Png,
}

impl Kind {
    fn of(path: &Path) -> Option<Kind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jpg" | "jpeg" => Some(Kind::Jpeg),
            "png" => Some(Kind::Png),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpeg",
            Kind::Png => "png",
        }
    }
    pub fn parse(s: &str) -> anyhow::Result<Kind> {
        match s {
            "jpeg" => Ok(Kind::Jpeg),
            "png" => Ok(Kind::Png),
            _ => bail!("unknown kind {s:?}"),
        }
    }
}

/// The variant sets:
/// - `one`: `w=300,fm=jpeg,q=80`: Rendition, sharp, vipsthumbnail;
/// - `eager5`: widths 2048/1024/640/320/160 as WebP q75, from one decode (Rendition);
/// - `eager10`: those widths as JPEG q80 and WebP q75: Rendition from one decode, sharp as
///   10 independent pipelines per image (decode, resize, encode each), as an on-demand
///   service would render them;
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
    Presets,
    PresetsAvif,
}

impl Set {
    pub const ALL: [Set; 6] = [
        Set::One,
        Set::Eager5,
        Set::Eager5Jpeg,
        Set::Eager10,
        Set::Presets,
        Set::PresetsAvif,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Set::One => "one",
            Set::Eager5 => "eager5",
            Set::Eager5Jpeg => "eager5-jpeg",
            Set::Eager10 => "eager10",
            Set::Presets => "presets",
            Set::PresetsAvif => "presets-avif",
        }
    }
    pub fn parse(s: &str) -> anyhow::Result<Set> {
        Set::ALL
            .into_iter()
            .find(|set| set.as_str() == s)
            .with_context(|| {
                let names: Vec<&str> = Set::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown set {s:?} (known: {})", names.join(", "))
            })
    }
    pub fn label(self) -> &'static str {
        match self {
            Set::One => "1 × w300 JPEG",
            Set::Eager5 => "5 × WebP",
            Set::Eager5Jpeg => "5 × JPEG",
            Set::Eager10 => "10 (5 JPEG+5 WebP)",
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
    pub fn requests(self) -> anyhow::Result<Vec<VariantRequest>> {
        if let Some(settings) = self.preset_settings() {
            settings
                .validate()
                .context("the bench's preset configuration")?;
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
        let specs: Vec<String> = match self {
            Set::One => vec![jpeg(300)],
            Set::Eager5 => WIDTHS.iter().map(|&w| webp(w)).collect(),
            Set::Eager5Jpeg => WIDTHS.iter().map(|&w| jpeg(w)).collect(),
            Set::Eager10 => WIDTHS.iter().flat_map(|&w| [jpeg(w), webp(w)]).collect(),
            Set::Presets | Set::PresetsAvif => unreachable!("built from the presets above"),
        };
        specs
            .into_iter()
            .map(|text| {
                let spec: VariantSpec = text
                    .parse()
                    .with_context(|| format!("bench spec {text:?}"))?;
                Ok(VariantRequest { name: text, spec })
            })
            .collect()
    }
    /// Whether sharp is given this set's variants as JSON ([`Set::sharp_variants`]) rather
    /// than by the set's name in `bench/sharp-bench.mjs`.
    pub fn sharp_from_json(self) -> bool {
        matches!(self, Set::Presets | Set::PresetsAvif)
    }
    /// The outputs of this set as sharp pipelines, for `sharp-bench.mjs`: the same
    /// requests Rendition renders, with Rendition's encoder settings (quality from the spec
    /// or the format's default, AVIF effort `render.avif_effort`).
    pub fn sharp_variants(self) -> anyhow::Result<serde_json::Value> {
        let effort = self
            .preset_settings()
            .unwrap_or_default()
            .render
            .avif_effort;
        let variants = self
            .requests()?
            .iter()
            .map(|r| sharp_variant(&r.spec, effort))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(serde_json::Value::Array(variants))
    }
}

/// One output as a sharp pipeline: `resize({width, height, fit, position,
/// withoutEnlargement})` then the encoder. Only what sharp-bench.mjs does the same way as
/// Rendition: w, h, fit, g=centre, fm (jpeg, webp, avif), q, enlarge.
fn sharp_variant(spec: &VariantSpec, avif_effort: u8) -> anyhow::Result<serde_json::Value> {
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
        bail!("sharp-bench.mjs cannot render {spec} like Rendition does");
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
    pub kind: Kind,
    pub set: Set,
    pub concurrency: usize,
    /// Renders in a helper pool of `concurrency` helpers (on) or in this process (off).
    pub sandbox: bool,
}

impl Case {
    /// `rendition:KIND:SET:CONCURRENCY:on|off`, the `--child` argument.
    pub fn to_arg(self) -> String {
        format!(
            "rendition:{}:{}:{}:{}",
            self.kind.as_str(),
            self.set.as_str(),
            self.concurrency,
            if self.sandbox { "on" } else { "off" }
        )
    }
    fn parse(arg: &str) -> anyhow::Result<Case> {
        let parts: Vec<&str> = arg.split(':').collect();
        let [tool, kind, set, concurrency, sandbox] = parts[..] else {
            bail!("--child wants rendition:KIND:SET:CONCURRENCY:on|off, got {arg:?}");
        };
        if tool != "rendition" {
            bail!("--child runs only rendition cases, got {tool:?}");
        }
        let sandbox = match sandbox {
            "on" => true,
            "off" => false,
            _ => bail!("sandbox must be on or off, got {sandbox:?}"),
        };
        Ok(Case {
            kind: Kind::parse(kind)?,
            set: Set::parse(set)?,
            concurrency: concurrency.parse::<usize>().context("concurrency")?.max(1),
            sandbox,
        })
    }
}

/// The files of one kind in `dir`, sorted by name.
pub fn list(dir: &Path, kind: Kind) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && Kind::of(p) == Some(kind))
        .collect();
    files.sort();
    Ok(files)
}

pub fn read_all(files: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("reading {}", f.display())))
        .collect()
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
    /// sharp only.
    #[serde(default)]
    pub sharp: Option<String>,
    #[serde(default)]
    pub libvips: Option<String>,
}

/// `--child rendition:KIND:SET:CONCURRENCY:on|off`: runs one Rendition case and prints its
/// [`CaseOutput`] as JSON.
///
/// Sandbox off renders through `Renderer::in_process` (the blocking pool of this process'
/// runtime); on, through a `Renderer` whose pool has `concurrency` helpers, started before
/// the warm-up (as a worker starts it before its first job). Either way `concurrency`
/// tasks take the next image from a shared index and render every variant of it from one
/// decode. The helpers are stopped and reaped before the output is printed, so that this
/// process' `wait4` figures include theirs.
pub fn child(dir: &Path, iterations: usize, arg: &str) -> anyhow::Result<()> {
    let case = Case::parse(arg)?;
    // A helper that fails says so through tracing; stdout is the JSON answer only.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .try_init();
    let sources: Arc<Vec<Bytes>> = Arc::new(
        read_all(&list(dir, case.kind)?)?
            .into_iter()
            .map(Bytes::from)
            .collect(),
    );
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
            Renderer::from_settings(&settings)
                .await
                .context("starting the render sandbox")?
        } else {
            Renderer::in_process(&settings)
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
            anyhow::Ok((warmup_s, times_s, out_bytes))
        }
        .await;
        renderer.shutdown().await;
        passes
    });
    // Dropping the runtime drops whatever still holds a helper (one started to replace a
    // recycled one): killed on drop, then reaped here with any the runtime did not reap.
    drop(runtime);
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
) -> anyhow::Result<(f64, u64)> {
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
                    return anyhow::Ok(());
                };
                let key = format!("bench/{i}");
                let out = renderer
                    .render(&key, source.clone(), requests.to_vec())
                    .await
                    .with_context(|| format!("rendering image {i}"))?;
                let n: usize = out.variants.iter().map(|v| v.bytes.len()).sum();
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("bench task panicked")??;
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
                kind: Kind::Png,
                set: Set::Eager10,
                concurrency: 2,
                sandbox,
            };
            assert_eq!(Case::parse(&case.to_arg()).unwrap(), case);
        }
        assert!(Case::parse("rendition:jpeg:one:1").is_err());
        assert!(Case::parse("sharp:jpeg:one:1:off").is_err());
        assert!(Case::parse("rendition:jpeg:one:1:maybe").is_err());
    }
}
