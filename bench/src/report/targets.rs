//! The class table: Rendition (sandbox on) against sharp and vipsthumbnail on the same
//! class, set and concurrency, each ratio held against its target.

use serde::Serialize;

use super::row::{find, set_order, Row};
use crate::cases::{Class, Set};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::row::tests::measured;

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
}
