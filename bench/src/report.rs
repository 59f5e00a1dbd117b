//! The report: one row per measured case; the class table (Rendition with the sandbox on
//! against sharp and vipsthumbnail, per class, set and concurrency, with the targets
//! checked); the sandbox on/off, eager split and AVIF tables when those cases ran; and the
//! Markdown tables (so they can be pasted into docs/performance.md).

use std::fmt::Write;

use serde::Serialize;

use crate::cases::{CaseOutput, Class, Set};

/// Rendition / sharp img/s on one variant (`w=300,fm=jpeg,q=80`), by class.
pub fn target_one(class: Class) -> f64 {
    match class {
        Class::Progressive => 1.5,
        Class::Png => 1.2,
        Class::Baseline | Class::Heic => 1.0,
    }
}
/// Rendition / sharp img/s on the eager set (10 outputs against sharp's 10 pipelines).
pub const TARGET_EAGER: f64 = 3.0;
/// Rendition / sharp peak RSS on one variant.
pub const TARGET_RSS: f64 = 0.5;
/// Sandbox on / off, img/s: the sandbox may cost at most 5 % of the throughput.
pub const TARGET_SANDBOX: f64 = 0.95;

pub const GLIBC_DEFAULT: &str = "glibc default";

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub tool: &'static str,
    pub class: Class,
    /// The malloc the tool ran with (Rendition: jemalloc or glibc with MALLOC_ARENA_MAX=2;
    /// sharp and vipsthumbnail: glibc's default).
    pub env: String,
    /// Rendition only: rendered in sandboxed helpers (true) or in process (false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
    pub set: &'static str,
    pub set_label: &'static str,
    pub concurrency: usize,
    pub images: usize,
    pub outputs_per_image: usize,
    pub times_s: Vec<f64>,
    pub median_s: f64,
    pub images_per_s: f64,
    pub outputs_per_s: f64,
    /// The peak RSS compared: `wait4`'s `ru_maxrss` (vipsthumbnail at c=2: the sum over its
    /// processes); for Rendition the larger of that and the sampled peak of the case
    /// process plus its helpers ([`Row::tree_rss_mib`]).
    pub peak_rss_mib: f64,
    /// `ru_maxrss` from `wait4`: the larger of the process' peak and its reaped children's
    /// (with the sandbox on, the render helpers'), not their sum.
    pub wait4_maxrss_mib: f64,
    /// Rendition: the peak of the case process' RSS plus its helpers' anonymous RSS,
    /// sampled every 10 ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_rss_mib: Option<f64>,
    /// Rendition: whether jemalloc was loaded in the case process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jemalloc: Option<bool>,
    /// CPU time (user + system) per image over the whole process and its reaped children
    /// (warm-up and timed passes, start-up included): less sensitive than img/s to other
    /// load on the machine.
    pub cpu_ms_per_image: f64,
    /// Rendition: the case process' own VmHWM (without its helpers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmhwm_mib: Option<f64>,
    /// Rendition with the sandbox on: the largest peak RSS of its helpers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helpers_peak_rss_mib: Option<f64>,
    pub out_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A ratio held against its target.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub value: f64,
    /// e.g. "≥ 1.5"
    pub target: String,
    pub met: bool,
}

impl Check {
    fn at_least(value: f64, target: f64) -> Check {
        Check {
            value,
            target: format!("≥ {target}"),
            met: value >= target,
        }
    }
    fn at_most(value: f64, target: f64) -> Check {
        Check {
            value,
            target: format!("≤ {target}"),
            met: value <= target,
        }
    }
}

/// A tool Rendition is compared with, on the same files, set and concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Versus {
    pub images_per_s: f64,
    pub cpu_ms_per_image: f64,
    pub peak_rss_mib: f64,
    /// Rendition / this tool, img/s.
    pub speed: f64,
    /// Rendition / this tool, images per CPU-second (steadier than img/s under load).
    pub per_cpu: f64,
    /// Rendition / this tool, peak RSS.
    pub rss: f64,
}

impl Versus {
    fn of(ours: &Row, theirs: &Row) -> Versus {
        Versus {
            images_per_s: theirs.images_per_s,
            cpu_ms_per_image: theirs.cpu_ms_per_image,
            peak_rss_mib: theirs.peak_rss_mib,
            speed: ours.images_per_s / theirs.images_per_s,
            per_cpu: theirs.cpu_ms_per_image / ours.cpu_ms_per_image,
            rss: ours.peak_rss_mib / theirs.peak_rss_mib,
        }
    }
}

/// One line of the class table: Rendition (the first allocator asked for, render sandbox
/// on) on one class, set and concurrency, against sharp and vipsthumbnail measured right
/// after it on the same files.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRow {
    pub class: Class,
    pub set: &'static str,
    pub set_label: &'static str,
    pub concurrency: usize,
    pub rendition_env: String,
    pub images: usize,
    pub images_per_s: f64,
    pub cpu_ms_per_image: f64,
    pub peak_rss_mib: f64,
    pub sharp: Option<Versus>,
    /// Why there is no sharp figure (it cannot decode the class, or did not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharp_na: Option<String>,
    pub vipsthumbnail: Option<Versus>,
    /// Rendition / sharp img/s against this row's target, when it has one.
    pub speed_target: Option<Check>,
    /// Rendition / sharp peak RSS against ≤ 0.5 (one-variant rows).
    pub rss_target: Option<Check>,
}

/// Rendition with the render sandbox on against off, same set, concurrency and malloc
/// setting, run back to back.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxRatio {
    pub set: &'static str,
    pub set_label: &'static str,
    pub concurrency: usize,
    pub rendition_env: String,
    pub off_images_per_s: f64,
    pub on_images_per_s: f64,
    /// on / off, img/s.
    pub value: f64,
    pub target: f64,
    /// `value >= target`.
    pub pass: bool,
    pub off_peak_rss_mib: f64,
    /// The larger of the case process' and its helpers' peaks.
    pub on_peak_rss_mib: f64,
    pub on_parent_peak_rss_mib: Option<f64>,
    pub on_helpers_peak_rss_mib: Option<f64>,
    pub off_cpu_ms_per_image: f64,
    /// Case process and helpers.
    pub on_cpu_ms_per_image: f64,
    /// on / off, CPU per image: what the sandbox costs in CPU, steadier than img/s on a
    /// loaded machine (above 1: it costs).
    pub cpu_on_off: f64,
}

/// Shares of the eager 10-file set's CPU time (Rendition, sandbox on, concurrency 1), from
/// the differences between the 10-file set and the 5-file WebP-only and JPEG-only sets.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    pub webp_encode: f64,
    pub jpeg_encode: f64,
    pub decode_resize_rest: f64,
}

/// What AVIF adds to an eager job: the eager presets as configured (WebP) against the
/// same presets with AVIF added, Rendition with the sandbox on, run back to back; and sharp on the
/// same two sets when it ran.
#[derive(Debug, Clone, Serialize)]
pub struct AvifCost {
    pub concurrency: usize,
    pub rendition_env: String,
    /// Median pass time / images: wall-clock seconds per source.
    pub webp_s_per_image: f64,
    pub avif_webp_s_per_image: f64,
    /// AVIF+WebP / WebP, time per source (AVIF's added cost: 1.0 = none).
    pub time_ratio: f64,
    pub webp_cpu_ms_per_image: f64,
    pub avif_webp_cpu_ms_per_image: f64,
    /// AVIF+WebP / WebP, CPU per source: steadier than wall time under load.
    pub cpu_ratio: f64,
    pub webp_peak_rss_mib: f64,
    pub avif_webp_peak_rss_mib: f64,
    /// Encoded bytes per source: the five WebPs, and the five AVIFs (AVIF+WebP minus WebP).
    pub webp_bytes_per_image: f64,
    pub avif_bytes_per_image: f64,
    pub sharp_webp_s_per_image: Option<f64>,
    pub sharp_avif_webp_s_per_image: Option<f64>,
    /// sharp's AVIF+WebP / WebP, time per source.
    pub sharp_time_ratio: Option<f64>,
    pub sharp_avif_webp_cpu_ms_per_image: Option<f64>,
    pub sharp_avif_webp_peak_rss_mib: Option<f64>,
    /// AVIF+WebP set, img/s: Rendition / sharp (one pipeline per output).
    pub avif_webp_rendition_over_sharp: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub class: Class,
    pub files: Vec<String>,
    pub bytes: u64,
    pub megapixels: f64,
    /// Why sharp has no rows for this class (it cannot decode it), when it runs at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharp_na: Option<String>,
    pub rows: Vec<Row>,
    /// Rendition (sandbox on) against sharp and vipsthumbnail, with the targets.
    pub table: Vec<ClassRow>,
    pub sandbox: Vec<SandboxRatio>,
    pub eager10_split: Option<Split>,
    /// The eager presets with AVIF added against without, per concurrency.
    pub avif_cost: Vec<AvifCost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub loadavg_before: String,
    pub loadavg_after: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tools {
    pub rendition_libvips: String,
    pub vipsthumbnail: Option<String>,
    pub node: Option<String>,
    pub sharp: Option<String>,
    pub sharp_libvips: Option<String>,
    /// The libjemalloc.so.2 preloaded into Rendition's cases.
    pub jemalloc: Option<String>,
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dir: String,
    pub iterations: usize,
    /// `--per-class N`: at most N files of each class (None: all).
    pub per_class: Option<usize>,
    /// The sets `--only` selected (empty: the default ones).
    pub only: Vec<&'static str>,
    /// The allocator of the class table's Rendition rows (jemalloc, as the images ship).
    pub rendition_env: String,
    /// Checked targets of the class table (speed and peak RSS against sharp) that were met,
    /// of all checked.
    pub targets_met: usize,
    pub targets_checked: usize,
    /// Sandbox on / off img/s target.
    pub sandbox_target: f64,
    /// Sandbox comparisons that met it, of all of them.
    pub sandbox_passed: usize,
    pub sandbox_compared: usize,
    pub machine: Machine,
    pub tools: Tools,
    pub groups: Vec<Group>,
    pub wall_s: f64,
}

pub fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    match t.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => t[n / 2],
        n => (t[n / 2 - 1] + t[n / 2]) / 2.0,
    }
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// What a measured case is, besides its output.
pub struct Measured<'a> {
    pub tool: &'static str,
    pub class: Class,
    pub env: &'a str,
    pub sandbox: Option<bool>,
    pub set: Set,
    pub concurrency: usize,
    pub maxrss_kb: u64,
    pub cpu_s: f64,
    pub note: Option<String>,
}

pub fn row(m: Measured<'_>, out: &CaseOutput) -> Row {
    let median_s = median(&out.times_s);
    let images_processed = (out.times_s.len() + 1) * out.images;
    let tree_rss_mib = out.tree_rss_kb.map(mib);
    Row {
        tool: m.tool,
        class: m.class,
        env: m.env.to_string(),
        sandbox: m.sandbox,
        set: m.set.as_str(),
        set_label: m.set.label(),
        concurrency: m.concurrency,
        images: out.images,
        outputs_per_image: out.outputs_per_image,
        times_s: out.times_s.clone(),
        median_s,
        images_per_s: out.images as f64 / median_s,
        outputs_per_s: (out.images * out.outputs_per_image) as f64 / median_s,
        peak_rss_mib: mib(m.maxrss_kb).max(tree_rss_mib.unwrap_or(0.0)),
        wait4_maxrss_mib: mib(m.maxrss_kb),
        tree_rss_mib,
        jemalloc: out.jemalloc,
        cpu_ms_per_image: m.cpu_s * 1e3 / images_processed.max(1) as f64,
        vmhwm_mib: out.vmhwm_kb.map(mib),
        helpers_peak_rss_mib: out.helpers_maxrss_kb.map(mib),
        out_bytes: out.out_bytes,
        note: m.note,
    }
}

/// A row: `sandbox` None matches any (sharp, vipsthumbnail have none).
fn find<'r>(
    rows: &'r [Row],
    tool: &str,
    env: Option<&str>,
    sandbox: Option<bool>,
    set: Set,
    concurrency: usize,
) -> Option<&'r Row> {
    rows.iter().find(|r| {
        r.tool == tool
            && env.is_none_or(|e| r.env == e)
            && sandbox.is_none_or(|s| r.sandbox == Some(s))
            && r.set == set.as_str()
            && r.concurrency == concurrency
    })
}

/// The malloc settings Rendition ran with, in order of appearance.
fn rendition_envs(rows: &[Row], sandbox: bool) -> Vec<&str> {
    let mut envs: Vec<&str> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.tool == "rendition" && r.sandbox == Some(sandbox))
    {
        if !envs.contains(&r.env.as_str()) {
            envs.push(&r.env);
        }
    }
    envs
}

/// The class table of one class: every set and concurrency Rendition ran with the sandbox
/// on and allocator `env`, against sharp and vipsthumbnail on the same set and concurrency.
pub fn class_table(rows: &[Row], env: &str, sharp_na: Option<&str>) -> Vec<ClassRow> {
    let mut out = Vec::new();
    for ours in rows
        .iter()
        .filter(|r| r.tool == "rendition" && r.env == env && r.sandbox == Some(true))
    {
        let Ok(set) = Set::parse(ours.set) else {
            continue;
        };
        let theirs = |tool| find(rows, tool, None, None, set, ours.concurrency);
        let sharp = theirs("sharp").map(|t| Versus::of(ours, t));
        let speed_target = match set {
            Set::One => Some(target_one(ours.class)),
            Set::Eager10 => Some(TARGET_EAGER),
            _ => None,
        };
        out.push(ClassRow {
            class: ours.class,
            set: ours.set,
            set_label: ours.set_label,
            concurrency: ours.concurrency,
            rendition_env: env.to_string(),
            images: ours.images,
            images_per_s: ours.images_per_s,
            cpu_ms_per_image: ours.cpu_ms_per_image,
            peak_rss_mib: ours.peak_rss_mib,
            sharp_na: match (&sharp, sharp_na) {
                (None, Some(why)) if set.sharp_compared() => Some(why.to_string()),
                _ => None,
            },
            vipsthumbnail: theirs("vipsthumbnail").map(|t| Versus::of(ours, t)),
            speed_target: sharp
                .as_ref()
                .zip(speed_target)
                .map(|(v, t)| Check::at_least(v.speed, t)),
            rss_target: sharp
                .as_ref()
                .filter(|_| set == Set::One)
                .map(|v| Check::at_most(v.rss, TARGET_RSS)),
            sharp,
        });
    }
    out.sort_by_key(|r| (set_order(r.set), r.concurrency));
    out
}

/// The order sets are listed in.
fn set_order(set: &str) -> usize {
    Set::ALL
        .iter()
        .position(|s| s.as_str() == set)
        .unwrap_or(usize::MAX)
}

/// Sandbox on / off for every set and concurrency measured both ways.
pub fn sandbox_ratios(rows: &[Row]) -> Vec<SandboxRatio> {
    let mut out = Vec::new();
    for env in rendition_envs(rows, true) {
        for set in Set::ALL {
            for concurrency in [1, 2] {
                let get = |on| find(rows, "rendition", Some(env), Some(on), set, concurrency);
                let (Some(off), Some(on)) = (get(false), get(true)) else {
                    continue;
                };
                let value = on.images_per_s / off.images_per_s;
                out.push(SandboxRatio {
                    set: set.as_str(),
                    set_label: set.label(),
                    concurrency,
                    rendition_env: env.to_string(),
                    off_images_per_s: off.images_per_s,
                    on_images_per_s: on.images_per_s,
                    value,
                    target: TARGET_SANDBOX,
                    pass: value >= TARGET_SANDBOX,
                    off_peak_rss_mib: off.peak_rss_mib,
                    on_peak_rss_mib: on.peak_rss_mib,
                    on_parent_peak_rss_mib: on.vmhwm_mib,
                    on_helpers_peak_rss_mib: on.helpers_peak_rss_mib,
                    off_cpu_ms_per_image: off.cpu_ms_per_image,
                    on_cpu_ms_per_image: on.cpu_ms_per_image,
                    cpu_on_off: on.cpu_ms_per_image / off.cpu_ms_per_image,
                });
            }
        }
    }
    out
}

pub fn split(rows: &[Row], env: &str) -> Option<Split> {
    let t =
        |set| find(rows, "rendition", Some(env), Some(true), set, 1).map(|r| r.cpu_ms_per_image);
    let (all, webp_only, jpeg_only) = (t(Set::Eager10)?, t(Set::Eager5)?, t(Set::Eager5Jpeg)?);
    let webp = ((all - jpeg_only) / all).clamp(0.0, 1.0);
    let jpeg = ((all - webp_only) / all).clamp(0.0, 1.0);
    Some(Split {
        webp_encode: webp,
        jpeg_encode: jpeg,
        decode_resize_rest: (1.0 - webp - jpeg).max(0.0),
    })
}

/// AVIF's added cost per concurrency: Rendition's `presets-avif` against `presets` (sandbox
/// on, allocator `env`), with sharp's figures for the same sets when it ran.
pub fn avif_cost(rows: &[Row], env: &str) -> Vec<AvifCost> {
    let mut concurrencies: Vec<usize> = rows
        .iter()
        .filter(|r| r.set == Set::PresetsAvif.as_str())
        .map(|r| r.concurrency)
        .collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    let mut out = Vec::new();
    for concurrency in concurrencies {
        let ours = |set| find(rows, "rendition", Some(env), Some(true), set, concurrency);
        let theirs = |set| find(rows, "sharp", None, None, set, concurrency);
        let (Some(a), Some(b)) = (ours(Set::Presets), ours(Set::PresetsAvif)) else {
            continue;
        };
        let per_image = |r: &Row| r.median_s / r.images.max(1) as f64;
        let bytes = |r: &Row| r.out_bytes as f64 / r.images.max(1) as f64;
        let (sa, sb) = (theirs(Set::Presets), theirs(Set::PresetsAvif));
        out.push(AvifCost {
            concurrency,
            rendition_env: env.to_string(),
            webp_s_per_image: per_image(a),
            avif_webp_s_per_image: per_image(b),
            time_ratio: b.median_s / a.median_s,
            webp_cpu_ms_per_image: a.cpu_ms_per_image,
            avif_webp_cpu_ms_per_image: b.cpu_ms_per_image,
            cpu_ratio: b.cpu_ms_per_image / a.cpu_ms_per_image,
            webp_peak_rss_mib: a.peak_rss_mib,
            avif_webp_peak_rss_mib: b.peak_rss_mib,
            webp_bytes_per_image: bytes(a),
            avif_bytes_per_image: (bytes(b) - bytes(a)).max(0.0),
            sharp_webp_s_per_image: sa.map(per_image),
            sharp_avif_webp_s_per_image: sb.map(per_image),
            sharp_time_ratio: sa.zip(sb).map(|(sa, sb)| sb.median_s / sa.median_s),
            sharp_avif_webp_cpu_ms_per_image: sb.map(|r| r.cpu_ms_per_image),
            sharp_avif_webp_peak_rss_mib: sb.map(|r| r.peak_rss_mib),
            avif_webp_rendition_over_sharp: sb.map(|sb| b.images_per_s / sb.images_per_s),
        });
    }
    out
}

fn on_off(sandbox: Option<bool>) -> &'static str {
    match sandbox {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    }
}

/// One line on stderr per finished case.
pub fn progress(r: &Row) {
    eprintln!(
        "bench: {:<11} {:<12} c={} {:<13} sandbox {:<3} {:<24} {:>7.2} img/s  median {:>6.2} s  peak RSS {:>5.0} MiB  CPU {:>5.0} ms/img",
        r.class.as_str(),
        r.set,
        r.concurrency,
        r.tool,
        on_off(r.sandbox),
        r.env,
        r.images_per_s,
        r.median_s,
        r.peak_rss_mib,
        r.cpu_ms_per_image
    );
}

fn ratio(v: f64) -> String {
    format!("{v:.2}×")
}

fn check(c: Option<&Check>) -> String {
    match c {
        Some(c) if c.met => format!("{} yes", c.target),
        Some(c) => format!("{} **no**", c.target),
        None => "-".to_string(),
    }
}

/// The class table: one line per class, set and concurrency.
fn render_class_table(s: &mut String, report: &Report) {
    let _ = writeln!(
        s,
        "\n## Rendition ({}, render sandbox on) against sharp and vipsthumbnail, same run\n",
        report.rendition_env
    );
    let _ = writeln!(
        s,
        "| class | outputs/image | c | img/s | CPU ms/img | peak RSS MiB | sharp img/s | × sharp img/s | target | × sharp per CPU-s | × sharp peak RSS | ≤ {TARGET_RSS} | vipsthumbnail img/s | × vipsthumbnail img/s |"
    );
    let _ = writeln!(
        s,
        "|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|---|--:|--:|"
    );
    let mut notes: Vec<String> = Vec::new();
    for g in &report.groups {
        for r in &g.table {
            let (sharp_ips, speed, per_cpu, rss) = match (&r.sharp, &r.sharp_na) {
                (Some(v), _) => (
                    format!("{:.2}", v.images_per_s),
                    ratio(v.speed),
                    ratio(v.per_cpu),
                    ratio(v.rss),
                ),
                (None, Some(why)) => {
                    if !notes.contains(why) {
                        notes.push(why.clone());
                    }
                    let n = notes.iter().position(|w| w == why).unwrap_or(0) + 1;
                    let na = format!("n/a ({n})");
                    (na.clone(), na.clone(), na.clone(), na)
                }
                (None, None) => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
            let (vt_ips, vt) = match &r.vipsthumbnail {
                Some(v) => (format!("{:.2}", v.images_per_s), ratio(v.speed)),
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.class.label(),
                r.set_label,
                r.concurrency,
                r.images_per_s,
                r.cpu_ms_per_image,
                r.peak_rss_mib,
                sharp_ips,
                speed,
                check(r.speed_target.as_ref()),
                per_cpu,
                rss,
                check(r.rss_target.as_ref()),
                vt_ips,
                vt
            );
        }
    }
    for (i, why) in notes.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n({}) {why}: no sharp figures for that class; compared with vipsthumbnail only.",
            i + 1
        );
    }
    let _ = writeln!(
        s,
        "\nTargets (Rendition / sharp): one variant img/s ≥ {} on progressive JPEG, ≥ {} on PNG, ≥ {} on baseline JPEG and HEIC; eager set (10 outputs) ≥ {TARGET_EAGER}× sharp's 10 pipelines; one-variant peak RSS ≤ {TARGET_RSS}× sharp's. {} of {} checked targets met.",
        target_one(Class::Progressive),
        target_one(Class::Png),
        target_one(Class::Baseline),
        report.targets_met,
        report.targets_checked
    );
    let _ = writeln!(
        s,
        "Peak RSS: Rendition's is the larger of wait4's ru_maxrss and the sampled peak of the case process' RSS plus its helpers' anonymous RSS; \
         sharp's is node's ru_maxrss, vipsthumbnail's the sum over its processes. CPU ms/img: user + system of the whole process tree over \
         the warm-up and timed passes, per image: steadier than img/s when other work shares the cores."
    );
}

/// The human-readable report (Markdown tables).
pub fn render_table(report: &Report) -> String {
    let mut s = String::new();
    let m = &report.machine;
    let t = &report.tools;
    let _ = writeln!(
        s,
        "\nrendition-bench — {} ({} timed pass{} per case, median; 1 warm-up{})",
        report.dir,
        report.iterations,
        if report.iterations == 1 { "" } else { "es" },
        report
            .per_class
            .map_or(String::new(), |n| format!("; at most {n} files per class"))
    );
    let _ = writeln!(
        s,
        "machine: {} CPUs, {}, {} MiB RAM; load average before {} / after {}",
        m.nproc, m.cpu_model, m.mem_total_mib, m.loadavg_before, m.loadavg_after
    );
    let _ = writeln!(
        s,
        "rendition: libvips {} ({}); sharp: {} (libvips {}); vipsthumbnail: {}",
        t.rendition_libvips,
        report.rendition_env,
        t.sharp.as_deref().unwrap_or("-"),
        t.sharp_libvips.as_deref().unwrap_or("-"),
        t.vipsthumbnail.as_deref().unwrap_or("-")
    );
    for skip in &t.skipped {
        let _ = writeln!(s, "skipped: {skip}");
    }
    for g in &report.groups {
        let _ = writeln!(
            s,
            "{}: {} files, {:.1} MB, {:.0} MP ({})",
            g.class.label(),
            g.files.len(),
            g.bytes as f64 / 1e6,
            g.megapixels,
            g.files.join(", ")
        );
    }
    render_class_table(&mut s, report);

    let _ = writeln!(s, "\n## Every case\n");
    let _ = writeln!(
        s,
        "| class | tool | sandbox | malloc | outputs/image | c | img/s | outputs/s | median s | peak RSS MiB | CPU ms/img | out KB/pass | note |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
    for g in &report.groups {
        let mut rows: Vec<&Row> = g.rows.iter().collect();
        rows.sort_by_key(|r| (set_order(r.set), r.concurrency));
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.0} | {:.0} | {:.0} | {} |",
                r.class.label(),
                r.tool,
                on_off(r.sandbox),
                r.env,
                r.set_label,
                r.concurrency,
                r.images_per_s,
                r.outputs_per_s,
                r.median_s,
                r.peak_rss_mib,
                r.cpu_ms_per_image,
                r.out_bytes as f64 / 1e3,
                r.note.as_deref().unwrap_or("")
            );
        }
    }

    let sandbox: Vec<(Class, &SandboxRatio)> = report
        .groups
        .iter()
        .flat_map(|g| g.sandbox.iter().map(move |r| (g.class, r)))
        .collect();
    if !sandbox.is_empty() {
        let _ = writeln!(
            s,
            "\n## Render sandbox on / off\n\nRendition, run back to back with the same malloc (target: on ≥ {TARGET_SANDBOX} × off img/s). \
             Peak RSS with the sandbox on includes the helpers (parent's VmHWM / helpers' largest ru_maxrss in brackets); \
             its CPU includes the helpers' (CPU on/off: steadier than img/s under load).\n"
        );
        let _ = writeln!(
            s,
            "| class | outputs/image | c | malloc | off img/s | on img/s | on/off | ≥ {TARGET_SANDBOX} | off peak RSS MiB | on peak RSS MiB (parent / helpers) | off CPU ms/img | on CPU ms/img | CPU on/off |"
        );
        let _ = writeln!(s, "|---|---|--:|---|--:|--:|--:|---|--:|--:|--:|--:|--:|");
        for (class, r) in sandbox {
            let part = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.3} | {} | {:.0} | {:.0} ({} / {}) | {:.0} | {:.0} | {:.3} |",
                class.label(),
                r.set_label,
                r.concurrency,
                r.rendition_env,
                r.off_images_per_s,
                r.on_images_per_s,
                r.value,
                if r.pass { "PASS" } else { "**MISS**" },
                r.off_peak_rss_mib,
                r.on_peak_rss_mib,
                part(r.on_parent_peak_rss_mib),
                part(r.on_helpers_peak_rss_mib),
                r.off_cpu_ms_per_image,
                r.on_cpu_ms_per_image,
                r.cpu_on_off
            );
        }
        let _ = writeln!(
            s,
            "\nrender sandbox: {} of {} cases within {:.0} % of sandbox off (img/s)",
            report.sandbox_passed,
            report.sandbox_compared,
            (1.0 - TARGET_SANDBOX) * 100.0
        );
    }
    for g in &report.groups {
        if let Some(sp) = &g.eager10_split {
            let _ = writeln!(
                s,
                "\n{}: Rendition's eager 10-file set at c=1, where the CPU time goes (differences between the 10-, 5-WebP- and 5-JPEG-file sets): WebP encode {:.0} %, JPEG encode {:.0} %, decode + resize + rest {:.0} %",
                g.class.label(),
                sp.webp_encode * 100.0,
                sp.jpeg_encode * 100.0,
                sp.decode_resize_rest * 100.0
            );
        }
    }
    let avif: Vec<(Class, &AvifCost)> = report
        .groups
        .iter()
        .flat_map(|g| g.avif_cost.iter().map(move |c| (g.class, c)))
        .collect();
    if !avif.is_empty() {
        let _ = writeln!(
            s,
            "\n## AVIF's cost in an eager job\n\nThe eager presets (xl 2048, lg 1024, md 640, sm 320, thumb 160×160 cover; q75) \
             as configured (5 WebP) and with formats [\"avif\", \"webp\"] (5 AVIF + 5 WebP from the same decode), \
             Rendition back to back; sharp one pipeline per output. Time = median pass / sources.\n"
        );
        let _ = writeln!(
            s,
            "| class | c | malloc | WebP s/src | AVIF+WebP s/src | AVIF+WebP / WebP | CPU ms/src WebP → AVIF+WebP | CPU ratio | peak RSS MiB WebP → AVIF+WebP | KB/src WebP, AVIF | sharp WebP s/src | sharp AVIF+WebP s/src | sharp ratio | AVIF+WebP img/s rendition / sharp |"
        );
        let _ = writeln!(
            s,
            "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        );
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.2}{unit}"));
        for (class, c) in avif {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2}× | {:.0} → {:.0} | {:.2}× | {:.0} → {:.0} | {:.0}, {:.0} | {} | {} | {} | {} |",
                class.label(),
                c.concurrency,
                c.rendition_env,
                c.webp_s_per_image,
                c.avif_webp_s_per_image,
                c.time_ratio,
                c.webp_cpu_ms_per_image,
                c.avif_webp_cpu_ms_per_image,
                c.cpu_ratio,
                c.webp_peak_rss_mib,
                c.avif_webp_peak_rss_mib,
                c.webp_bytes_per_image / 1e3,
                c.avif_bytes_per_image / 1e3,
                opt(c.sharp_webp_s_per_image, ""),
                opt(c.sharp_avif_webp_s_per_image, ""),
                opt(c.sharp_time_ratio, "×"),
                opt(c.avif_webp_rendition_over_sharp, "×"),
            );
        }
    }
    let _ = writeln!(s, "\nwall time {:.0} s", report.wall_s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(images: usize, secs: f64, vmhwm_kb: Option<u64>, helpers: Option<u64>) -> CaseOutput {
        CaseOutput {
            images,
            outputs_per_image: 1,
            warmup_s: secs,
            times_s: vec![secs],
            out_bytes: 1000,
            vmhwm_kb,
            helpers_maxrss_kb: helpers,
            tree_rss_kb: None,
            jemalloc: None,
            sharp: None,
            libvips: None,
        }
    }

    /// A row of `tool` on `class`: 10 images in `secs`, `rss_mib` peak, 2 s of CPU.
    fn measured(tool: &'static str, class: Class, set: Set, secs: f64, rss_mib: u64) -> Row {
        let rendition = tool == "rendition";
        row(
            Measured {
                tool,
                class,
                env: if rendition { "jemalloc" } else { GLIBC_DEFAULT },
                sandbox: rendition.then_some(true),
                set,
                concurrency: 1,
                maxrss_kb: rss_mib * 1024,
                cpu_s: 2.0,
                note: None,
            },
            &out(10, secs, None, None),
        )
    }

    fn rendition(sandbox: bool, secs: f64, helpers: Option<u64>) -> Row {
        row(
            Measured {
                tool: "rendition",
                class: Class::Progressive,
                env: "jemalloc",
                sandbox: Some(sandbox),
                set: Set::One,
                concurrency: 1,
                maxrss_kb: 200 * 1024,
                cpu_s: 2.0,
                note: None,
            },
            &out(10, secs, Some(100 * 1024), helpers),
        )
    }

    fn report(groups: Vec<Group>) -> Report {
        Report {
            dir: "d".into(),
            iterations: 1,
            per_class: Some(2),
            only: vec![],
            rendition_env: "jemalloc".into(),
            targets_met: 0,
            targets_checked: 0,
            sandbox_target: TARGET_SANDBOX,
            sandbox_passed: 0,
            sandbox_compared: 1,
            machine: Machine {
                nproc: 2,
                cpu_model: "x".into(),
                mem_total_mib: 1,
                loadavg_before: String::new(),
                loadavg_after: String::new(),
            },
            tools: Tools {
                rendition_libvips: "8.14.1".into(),
                vipsthumbnail: None,
                node: None,
                sharp: None,
                sharp_libvips: None,
                jemalloc: None,
                skipped: vec![],
            },
            groups,
            wall_s: 1.0,
        }
    }

    fn group(class: Class, rows: Vec<Row>, sharp_na: Option<&str>) -> Group {
        Group {
            class,
            files: vec![],
            bytes: 0,
            megapixels: 0.0,
            sharp_na: sharp_na.map(str::to_string),
            table: class_table(&rows, "jemalloc", sharp_na),
            sandbox: sandbox_ratios(&rows),
            rows,
            eager10_split: None,
            avif_cost: vec![],
        }
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn sandbox_ratio_is_on_over_off_against_the_target() {
        let rows = vec![
            rendition(false, 1.0, None),
            rendition(true, 1.04, Some(200 * 1024)),
        ];
        let r = sandbox_ratios(&rows);
        assert_eq!(r.len(), 1);
        assert!((r[0].value - 1.0 / 1.04).abs() < 1e-9);
        assert!(r[0].pass);
        assert_eq!(r[0].on_helpers_peak_rss_mib, Some(200.0));
        assert_eq!(r[0].on_parent_peak_rss_mib, Some(100.0));

        let rows = vec![rendition(false, 1.0, None), rendition(true, 1.1, Some(1))];
        assert!(!sandbox_ratios(&rows)[0].pass);
        let table = render_table(&report(vec![group(Class::Progressive, rows, None)]));
        assert!(table.contains("| 0.909 | **MISS** |"), "{table}");
    }

    /// The targets depend on the class and set; RSS is checked on one variant only.
    #[test]
    fn the_class_table_holds_each_row_against_its_target() {
        // Rendition 1.6× sharp on progressive one-variant (target 1.5), 0.4× its RSS.
        let rows = vec![
            measured("rendition", Class::Progressive, Set::One, 1.0, 100),
            measured("sharp", Class::Progressive, Set::One, 1.6, 250),
            measured("vipsthumbnail", Class::Progressive, Set::One, 2.0, 90),
            measured("rendition", Class::Progressive, Set::Eager10, 1.0, 300),
            measured("sharp", Class::Progressive, Set::Eager10, 2.9, 300),
            measured("rendition", Class::Progressive, Set::Eager15, 1.0, 300),
            measured("sharp", Class::Progressive, Set::Eager15, 2.0, 300),
        ];
        let t = class_table(&rows, "jemalloc", None);
        assert_eq!(
            t.iter().map(|r| r.set).collect::<Vec<_>>(),
            ["one", "eager10", "eager15"]
        );
        let one = &t[0];
        let speed = one.speed_target.as_ref().unwrap();
        assert!((speed.value - 1.6).abs() < 1e-9 && speed.met && speed.target == "≥ 1.5");
        let rss = one.rss_target.as_ref().unwrap();
        assert!((rss.value - 0.4).abs() < 1e-9 && rss.met);
        assert!((one.vipsthumbnail.as_ref().unwrap().speed - 2.0).abs() < 1e-9);
        let eager = t[1].speed_target.as_ref().unwrap();
        assert!(!eager.met && eager.target == "≥ 3", "{eager:?}");
        assert!(t[1].rss_target.is_none());
        assert!(t[2].speed_target.is_none() && t[2].sharp.is_some());

        // The same speed on PNG meets its 1.2 target; on baseline 0.9 misses 1.0.
        let png = [
            measured("rendition", Class::Png, Set::One, 1.0, 100),
            measured("sharp", Class::Png, Set::One, 1.3, 100),
        ];
        let png = class_table(&png, "jemalloc", None);
        assert!(png[0].speed_target.as_ref().unwrap().met);
        assert!(!png[0].rss_target.as_ref().unwrap().met);
        let baseline = [
            measured("rendition", Class::Baseline, Set::One, 1.0, 100),
            measured("sharp", Class::Baseline, Set::One, 0.9, 300),
        ];
        let baseline = class_table(&baseline, "jemalloc", None);
        assert!(!baseline[0].speed_target.as_ref().unwrap().met);

        // Only the sandbox-on rows of the allocator asked for are the table's.
        let mut off = measured("rendition", Class::Png, Set::One, 0.1, 10);
        off.sandbox = Some(false);
        let mut glibc = measured("rendition", Class::Png, Set::One, 0.1, 10);
        glibc.env = "glibc MALLOC_ARENA_MAX=2".into();
        assert!(class_table(&[off, glibc], "jemalloc", None).is_empty());
    }

    #[test]
    fn a_class_sharp_cannot_decode_is_compared_with_vipsthumbnail_only() {
        let why = "sharp 0.35.5 cannot decode heic-01.heic: no HEVC";
        let rows = vec![
            measured("rendition", Class::Heic, Set::One, 1.0, 100),
            measured("vipsthumbnail", Class::Heic, Set::One, 1.5, 100),
            measured("rendition", Class::Heic, Set::Eager10, 5.0, 100),
        ];
        let mut g = group(Class::Heic, rows, Some(why));
        assert!(g.table.iter().all(|r| r.sharp.is_none()
            && r.speed_target.is_none()
            && r.rss_target.is_none()
            && r.sharp_na.as_deref() == Some(why)));
        assert!((g.table[0].vipsthumbnail.as_ref().unwrap().speed - 1.5).abs() < 1e-9);
        g.rows.clear();
        let text = render_table(&report(vec![g]));
        assert!(text.contains("| n/a (1) |"), "{text}");
        assert!(text.contains(&format!("(1) {why}")), "{text}");
    }

    #[test]
    fn rendition_s_peak_is_the_larger_of_wait4_and_the_sampled_tree() {
        let mut o = out(10, 1.0, None, None);
        o.tree_rss_kb = Some(300 * 1024);
        let m = |maxrss_kb| Measured {
            tool: "rendition",
            class: Class::Png,
            env: "jemalloc",
            sandbox: Some(true),
            set: Set::One,
            concurrency: 2,
            maxrss_kb,
            cpu_s: 1.0,
            note: None,
        };
        let r = row(m(200 * 1024), &o);
        assert_eq!((r.peak_rss_mib, r.wait4_maxrss_mib), (300.0, 200.0));
        let r = row(m(400 * 1024), &o);
        assert_eq!(r.peak_rss_mib, 400.0);
    }

    #[test]
    fn avif_cost_is_the_avif_set_over_the_webp_set() {
        let mut rows = Vec::new();
        for (tool, set, secs, bytes) in [
            ("rendition", Set::Presets, 5.0, 1000),
            ("rendition", Set::PresetsAvif, 15.0, 1600),
            ("sharp", Set::Presets, 10.0, 1000),
            ("sharp", Set::PresetsAvif, 40.0, 1700),
        ] {
            let mut o = out(10, secs, None, None);
            o.out_bytes = bytes;
            rows.push(row(
                Measured {
                    tool,
                    class: Class::Progressive,
                    env: if tool == "sharp" {
                        GLIBC_DEFAULT
                    } else {
                        "jemalloc"
                    },
                    sandbox: (tool == "rendition").then_some(true),
                    set,
                    concurrency: 1,
                    maxrss_kb: 100 * 1024,
                    cpu_s: secs * 2.0,
                    note: None,
                },
                &o,
            ));
        }
        let c = avif_cost(&rows, "jemalloc");
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert!((c.webp_s_per_image - 0.5).abs() < 1e-9);
        assert!((c.avif_webp_s_per_image - 1.5).abs() < 1e-9);
        assert!((c.time_ratio - 3.0).abs() < 1e-9);
        assert!((c.cpu_ratio - 3.0).abs() < 1e-9);
        assert!((c.avif_bytes_per_image - 60.0).abs() < 1e-9);
        assert_eq!(c.sharp_time_ratio, Some(4.0));
        assert!((c.avif_webp_rendition_over_sharp.unwrap() - 40.0 / 15.0).abs() < 1e-9);
        assert!(avif_cost(&rows[1..], "jemalloc").is_empty());
    }
}
