//! Rendition against itself: the render sandbox on against off, where the eager set's
//! CPU time goes, and what adding AVIF to the eager presets costs.

use serde::Serialize;

use super::row::{find, rendition_envs, Row};
use crate::cases::Set;

/// Sandbox on / off, img/s: the sandbox may cost at most 5 % of the throughput.
pub const TARGET_SANDBOX: f64 = 0.95;

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

/// The eager set's CPU split ([`Split`]) of Rendition with allocator `env`, when the
/// `eager10`, `eager5` and `eager5-jpeg` sets ran at concurrency 1.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::Class;
    use crate::report::row::tests::out;
    use crate::report::row::{row, Measured, GLIBC_DEFAULT};

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
