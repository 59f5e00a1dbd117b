//! The report as text: one progress line per finished case on stderr, and the Markdown
//! tables (so they can be pasted into docs/performance.md).

use std::fmt::Write;

use super::comparisons::{AvifCost, SandboxRatio, TARGET_SANDBOX};
use super::row::{set_order, Row};
use super::summary::Report;
use super::targets::{target_one, Check, TARGET_EAGER, TARGET_RSS};
use crate::cases::Class;

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
    use crate::cases::Set;
    use crate::report::comparisons::sandbox_ratios;
    use crate::report::row::tests::{measured, rendition};
    use crate::report::summary::{Group, Machine, Tools};
    use crate::report::targets::class_table;

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
}
