//! The report: one row per measured case; the class table (Rendition with the sandbox on
//! against sharp and vipsthumbnail, per class, set and concurrency, with the targets
//! checked); the sandbox on/off, eager split and AVIF tables when those cases ran; and the
//! Markdown tables (so they can be pasted into docs/performance.md).
//!
//! Its files (listed in the crate's `# Layout`) import one way: `row` ← `targets`,
//! `comparisons` ← `summary` ← `tables`; this file only declares and re-exports them.

mod comparisons;
mod row;
mod summary;
mod tables;
mod targets;

pub use comparisons::{avif_cost, sandbox_ratios, split, TARGET_SANDBOX};
pub use row::{row, Measured, Row, GLIBC_DEFAULT};
pub use summary::{Group, Machine, Report, Tools};
pub use tables::{progress, render_table};
pub use targets::class_table;
