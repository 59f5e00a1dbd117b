//! The report: one row per measured case, the ratios against the targets, and the
//! Markdown tables (so they can be pasted into the README).

use std::fmt::Write;

use serde::Serialize;

use crate::cases::{CaseOutput, Kind, Set};

/// Targets the ratios are held against (Rendition / sharp).
const TARGET_ONE: f64 = 1.2;
const TARGET_EAGER: f64 = 2.5;
const TARGET_RSS: f64 = 0.5;
/// Sandbox on / off, img/s: the sandbox may cost at most 5 % of the throughput.
pub const TARGET_SANDBOX: f64 = 0.95;

pub const GLIBC_DEFAULT: &str = "glibc default";

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub tool: &'static str,
    /// The malloc setting the tool ran with (with the sandbox on, MALLOC_ARENA_MAX=2: the
    /// pool sets it for its helpers).
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
    /// `ru_maxrss` from `wait4`: the larger of the process' peak and its reaped children's
    /// (with the sandbox on, the render helpers'), not their sum.
    pub peak_rss_mib: f64,
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

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub what: String,
    pub concurrency: usize,
    pub rendition_env: String,
    pub value: f64,
    /// e.g. "≥ 1.2"
    pub target: Option<String>,
    pub met: Option<bool>,
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

/// Shares of the eager 10-file set's CPU time (Rendition in process, concurrency 1), from
/// the differences between the 10-file set and the 5-file WebP-only and JPEG-only sets.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    pub webp_encode: f64,
    pub jpeg_encode: f64,
    pub decode_resize_rest: f64,
}

/// What AVIF adds to an eager job: the eager presets as configured (WebP) against the
/// same presets with AVIF added, Rendition in process, run back to back; and sharp on the
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
    pub kind: Kind,
    pub files: Vec<String>,
    pub bytes: u64,
    pub megapixels: f64,
    pub rows: Vec<Row>,
    /// Rendition (sandbox off) against sharp and vipsthumbnail.
    pub ratios: Vec<Ratio>,
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
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dir: String,
    pub iterations: usize,
    /// The sets `--only` selected (empty: all).
    pub only: Vec<&'static str>,
    pub rendition_env: String,
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

pub fn arena_label(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("MALLOC_ARENA_MAX={v}"),
        None => GLIBC_DEFAULT.to_string(),
    }
}

/// What a measured case is, besides its output.
pub struct Measured<'a> {
    pub tool: &'static str,
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
    Row {
        tool: m.tool,
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
        peak_rss_mib: mib(m.maxrss_kb),
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

/// Rendition (sandbox off, as sharp and vipsthumbnail render in process) against the
/// other tools.
pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for env in rendition_envs(rows, false) {
        for concurrency in [1, 2] {
            let ours = |set| find(rows, "rendition", Some(env), Some(false), set, concurrency);
            let theirs = |tool, set| find(rows, tool, None, None, set, concurrency);
            let mut add = |what: &str, value: Option<f64>, target: Option<(bool, f64)>| {
                let Some(value) = value else { return };
                let (target, met) = match target {
                    Some((true, t)) => (Some(format!("≥ {t}")), Some(value >= t)),
                    Some((false, t)) => (Some(format!("≤ {t}")), Some(value <= t)),
                    None => (None, None),
                };
                out.push(Ratio {
                    what: what.to_string(),
                    concurrency,
                    rendition_env: env.to_string(),
                    value,
                    target,
                    met,
                });
            };
            let ips = |a: Option<&Row>, b: Option<&Row>| Some(a?.images_per_s / b?.images_per_s);
            let rss = |a: Option<&Row>, b: Option<&Row>| Some(a?.peak_rss_mib / b?.peak_rss_mib);
            let cpu =
                |a: Option<&Row>, b: Option<&Row>| Some(b?.cpu_ms_per_image / a?.cpu_ms_per_image);
            add(
                "1 variant img/s, rendition / sharp",
                ips(ours(Set::One), theirs("sharp", Set::One)),
                Some((true, TARGET_ONE)),
            );
            add(
                "1 variant img/s, rendition / vipsthumbnail",
                ips(ours(Set::One), theirs("vipsthumbnail", Set::One)),
                None,
            );
            add(
                "eager 10 img/s, rendition / sharp (10 pipelines)",
                ips(ours(Set::Eager10), theirs("sharp", Set::Eager10)),
                Some((true, TARGET_EAGER)),
            );
            add(
                "1 variant img per CPU-second, rendition / sharp",
                cpu(ours(Set::One), theirs("sharp", Set::One)),
                None,
            );
            add(
                "eager 10 img per CPU-second, rendition / sharp",
                cpu(ours(Set::Eager10), theirs("sharp", Set::Eager10)),
                None,
            );
            add(
                "1 variant peak RSS, rendition / sharp",
                rss(ours(Set::One), theirs("sharp", Set::One)),
                Some((false, TARGET_RSS)),
            );
            add(
                "eager 10 peak RSS, rendition / sharp",
                rss(ours(Set::Eager10), theirs("sharp", Set::Eager10)),
                Some((false, TARGET_RSS)),
            );
            add(
                "eager presets AVIF+WebP img/s, rendition / sharp (10 pipelines)",
                ips(ours(Set::PresetsAvif), theirs("sharp", Set::PresetsAvif)),
                None,
            );
            add(
                "eager presets AVIF+WebP img per CPU-second, rendition / sharp",
                cpu(ours(Set::PresetsAvif), theirs("sharp", Set::PresetsAvif)),
                None,
            );
            add(
                "eager presets AVIF+WebP peak RSS, rendition / sharp",
                rss(ours(Set::PresetsAvif), theirs("sharp", Set::PresetsAvif)),
                None,
            );
        }
    }
    out
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
        |set| find(rows, "rendition", Some(env), Some(false), set, 1).map(|r| r.cpu_ms_per_image);
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
/// off, malloc setting `env`), with sharp's figures for the same sets when it ran.
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
        let ours = |set| find(rows, "rendition", Some(env), Some(false), set, concurrency);
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
pub fn progress(kind: Kind, r: &Row) {
    eprintln!(
        "bench: {:<4} {:<12} c={} {:<13} sandbox {:<3} {:<20} {:>7.2} img/s  median {:>6.2} s  peak RSS {:>5.0} MiB  CPU {:>5.0} ms/img",
        kind.as_str(),
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

/// The human-readable report (Markdown tables).
pub fn render_table(report: &Report) -> String {
    let mut s = String::new();
    let m = &report.machine;
    let t = &report.tools;
    let _ = writeln!(
        s,
        "\nrendition-bench — {} ({} timed passes per case, median; 1 warm-up)",
        report.dir, report.iterations
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
            "\n### {} — {} files, {:.1} MB, {:.0} MP\n",
            g.kind.as_str().to_uppercase(),
            g.files.len(),
            g.bytes as f64 / 1e6,
            g.megapixels
        );
        let _ = writeln!(
            s,
            "| tool | sandbox | malloc | outputs/image | c | img/s | outputs/s | median s | peak RSS MiB | CPU ms/img | out KB/pass | note |"
        );
        let _ = writeln!(s, "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
        let mut rows: Vec<&Row> = g.rows.iter().collect();
        let order = |set: &str| match set {
            "one" => 0,
            "eager5" => 1,
            "eager5-jpeg" => 2,
            "eager10" => 3,
            "presets" => 4,
            _ => 5,
        };
        rows.sort_by_key(|r| (order(r.set), r.concurrency));
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.0} | {:.0} | {:.0} | {} |",
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
        if !g.ratios.is_empty() {
            let _ = writeln!(
                s,
                "\nRendition (sandbox off) against the other tools:\n\n| ratio | rendition malloc | c | value | target | met |"
            );
            let _ = writeln!(s, "|---|---|--:|--:|---|---|");
            for r in &g.ratios {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2}× | {} | {} |",
                    r.what,
                    r.rendition_env,
                    r.concurrency,
                    r.value,
                    r.target.as_deref().unwrap_or("-"),
                    match r.met {
                        Some(true) => "yes",
                        Some(false) => "**no**",
                        None => "-",
                    }
                );
            }
        }
        if !g.sandbox.is_empty() {
            let _ = writeln!(
                s,
                "\nRender sandbox on / off (Rendition, run back to back; target: on ≥ {TARGET_SANDBOX} × off img/s). \
                 Peak RSS with the sandbox on is wait4's ru_maxrss: the max of the case process and its helpers \
                 (not their sum), shown as parent / helpers; its CPU includes the helpers' (CPU on/off: steadier than img/s under load). \
                 Both sides run with MALLOC_ARENA_MAX=2, which the pool sets for its helpers.\n"
            );
            let _ = writeln!(
                s,
                "| outputs/image | c | malloc | off img/s | on img/s | on/off | ≥ {TARGET_SANDBOX} | off peak RSS MiB | on peak RSS MiB (parent / helpers) | off CPU ms/img | on CPU ms/img | CPU on/off |"
            );
            let _ = writeln!(s, "|---|--:|---|--:|--:|--:|---|--:|--:|--:|--:|--:|");
            for r in &g.sandbox {
                let part = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2} | {:.2} | {:.3} | {} | {:.0} | {:.0} ({} / {}) | {:.0} | {:.0} | {:.3} |",
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
        }
        if let Some(sp) = &g.eager10_split {
            let _ = writeln!(
                s,
                "\nRendition eager 10-file set, c=1, sandbox off, where the CPU time goes (differences between the 10-, 5-WebP- and 5-JPEG-file sets): WebP encode {:.0} %, JPEG encode {:.0} %, decode + resize + rest {:.0} %",
                sp.webp_encode * 100.0,
                sp.jpeg_encode * 100.0,
                sp.decode_resize_rest * 100.0
            );
        }
        if !g.avif_cost.is_empty() {
            let _ = writeln!(
                s,
                "\nAVIF's cost in an eager job: the eager presets (xl 2048, lg 1024, md 640, sm 320, thumb 160×160 cover; q75) \
                 as configured (5 WebP) and with formats [\"avif\", \"webp\"] (5 AVIF + 5 WebP from the same decode), \
                 Rendition in process, back to back; sharp one pipeline per output. Time = median pass / sources.\n"
            );
            let _ = writeln!(
                s,
                "| c | malloc | WebP s/src | AVIF+WebP s/src | AVIF+WebP / WebP | CPU ms/src WebP → AVIF+WebP | CPU ratio | peak RSS MiB WebP → AVIF+WebP | KB/src WebP, AVIF | sharp WebP s/src | sharp AVIF+WebP s/src | sharp ratio | AVIF+WebP img/s rendition / sharp |"
            );
            let _ = writeln!(s, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            let opt =
                |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.2}{unit}"));
            for c in &g.avif_cost {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.2} | {:.2} | {:.2}× | {:.0} → {:.0} | {:.2}× | {:.0} → {:.0} | {:.0}, {:.0} | {} | {} | {} | {} |",
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
    }
    if report.sandbox_compared > 0 {
        let _ = writeln!(
            s,
            "\nrender sandbox: {} of {} cases within {:.0} % of sandbox off (img/s)",
            report.sandbox_passed,
            report.sandbox_compared,
            (1.0 - TARGET_SANDBOX) * 100.0
        );
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
            sharp: None,
            libvips: None,
        }
    }

    fn rendition(sandbox: bool, secs: f64, helpers: Option<u64>) -> Row {
        row(
            Measured {
                tool: "rendition",
                env: "MALLOC_ARENA_MAX=2",
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
        let table = render_table(&Report {
            dir: "d".into(),
            iterations: 1,
            only: vec![],
            rendition_env: "MALLOC_ARENA_MAX=2".into(),
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
                skipped: vec![],
            },
            groups: vec![Group {
                kind: Kind::Jpeg,
                files: vec![],
                bytes: 0,
                megapixels: 0.0,
                sandbox: sandbox_ratios(&rows),
                ratios: ratios(&rows),
                rows,
                eager10_split: None,
                avif_cost: vec![],
            }],
            wall_s: 1.0,
        });
        assert!(table.contains("| 0.909 | **MISS** |"), "{table}");
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
                    env: if tool == "sharp" {
                        GLIBC_DEFAULT
                    } else {
                        "MALLOC_ARENA_MAX=2"
                    },
                    sandbox: (tool == "rendition").then_some(false),
                    set,
                    concurrency: 1,
                    maxrss_kb: 100 * 1024,
                    cpu_s: secs * 2.0,
                    note: None,
                },
                &o,
            ));
        }
        let c = avif_cost(&rows, "MALLOC_ARENA_MAX=2");
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert!((c.webp_s_per_image - 0.5).abs() < 1e-9);
        assert!((c.avif_webp_s_per_image - 1.5).abs() < 1e-9);
        assert!((c.time_ratio - 3.0).abs() < 1e-9);
        assert!((c.cpu_ratio - 3.0).abs() < 1e-9);
        assert!((c.avif_bytes_per_image - 60.0).abs() < 1e-9);
        assert_eq!(c.sharp_time_ratio, Some(4.0));
        assert!((c.avif_webp_rendition_over_sharp.unwrap() - 40.0 / 15.0).abs() < 1e-9);
        assert!(ratios(&rows)
            .iter()
            .any(|r| r.what.starts_with("eager presets AVIF+WebP img/s")));
        assert!(avif_cost(&rows[1..], "MALLOC_ARENA_MAX=2").is_empty());
    }

    #[test]
    fn tool_ratios_use_the_in_process_rows() {
        let mut sharp = rendition(false, 2.0, None);
        sharp.tool = "sharp";
        sharp.sandbox = None;
        let rows = vec![
            rendition(true, 4.0, Some(1)),
            rendition(false, 1.0, None),
            sharp,
        ];
        let r = ratios(&rows);
        assert!((r[0].value - 2.0).abs() < 1e-9, "{r:?}");
    }
}
