//! One row per measured case: what a case measured (tool, class, set, concurrency, malloc,
//! its peak RSS and CPU time) with the figures derived from its output, and how rows are
//! looked up and ordered for the tables.

use serde::Serialize;

use crate::cases::{CaseOutput, Class, Set};

pub const GLIBC_DEFAULT: &str = "glibc default";

/// One measured case: one tool on one class, set and concurrency.
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
pub(super) fn find<'r>(
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
pub(super) fn rendition_envs(rows: &[Row], sandbox: bool) -> Vec<&str> {
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

/// The order sets are listed in.
pub(super) fn set_order(set: &str) -> usize {
    Set::ALL
        .iter()
        .position(|s| s.as_str() == set)
        .unwrap_or(usize::MAX)
}

/// The row tests, and the rows and case outputs the report's other tests are built from.
#[cfg(test)]
pub(in crate::report) mod tests {
    use super::*;

    pub(in crate::report) fn out(
        images: usize,
        secs: f64,
        vmhwm_kb: Option<u64>,
        helpers: Option<u64>,
    ) -> CaseOutput {
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
    pub(in crate::report) fn measured(
        tool: &'static str,
        class: Class,
        set: Set,
        secs: f64,
        rss_mib: u64,
    ) -> Row {
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

    pub(in crate::report) fn rendition(sandbox: bool, secs: f64, helpers: Option<u64>) -> Row {
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

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
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
}
