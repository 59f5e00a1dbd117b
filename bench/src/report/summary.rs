//! The whole report: per class its files, rows and tables; the machine, the tools and
//! the targets met. Serialized as the `--json` report.

use serde::Serialize;

use super::comparisons::{AvifCost, SandboxRatio, Split};
use super::row::Row;
use super::targets::ClassRow;
use crate::cases::Class;

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
