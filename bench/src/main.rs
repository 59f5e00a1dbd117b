//! `rendition-bench DIR`: images/s, CPU ms/img and peak RSS of Rendition against sharp
//! and vipsthumbnail on the same photos, per class of source (progressive JPEG, baseline
//! JPEG, PNG, HEIC), with the ratios and the targets they are held against, all measured in
//! one run. Not part of the shipped `rendition` binary (`publish = false`);
//! `scripts/bench.sh` builds and runs it on the classes `scripts/make-bench-classes.sh`
//! makes.
//!
//! Every measured case runs in a child process of its own, so its peak RSS and CPU time
//! are its own: Rendition re-runs this binary (`DIR --child rendition:CLASS:SET:C:SANDBOX
//! --file F…`) with the render sandbox on and jemalloc preloaded (as the images ship it),
//! sharp runs `bench/sharp-bench.mjs` (embedded in this binary) under `node`, and
//! vipsthumbnail is one process over all the images (two at concurrency 2, each on half of
//! them). The parent reaps each child with `wait4` and takes `ru_maxrss` and the CPU time
//! from it: the same measure for all three tools. With the sandbox on, the Rendition case
//! process starts its render helpers (this binary again, with
//! [`rendition_image::sandbox::HELPER_ARG`]) and reaps them before it exits, so `wait4`
//! reports CPU time that includes theirs, and the larger of its own peak and its helpers'
//! (not their sum): the case process therefore also samples its own RSS plus its helpers'
//! every 10 ms, and the report takes the larger of the two figures.
//!
//! Each case reads its files into memory first (vipsthumbnail cannot: it reads them from
//! the page cache), does one untimed warm-up pass over them, then `--iterations` timed
//! passes; the median pass is reported.
//!
//! # Layout
//! - `main.rs`: the command line; the render-helper dispatch; parse, then run.
//! - [`cases`]: the source classes (told apart by content), the variant sets (including
//!   the eager set with AVIF and the eager presets with and without it), and one
//!   Rendition case in this process (`--child`), sandbox off (`Renderer::in_process`) or
//!   on (a helper pool).
//! - [`measure`]: child processes measured with `wait4`; the allocator they run with;
//!   `/proc` readings and the process-tree RSS sampler.
//! - [`external`]: the sharp (node) and vipsthumbnail cases; whether sharp decodes a class.
//! - [`options`]: what the command line asked to measure (read by [`suite`] and by
//!   [`external`]'s detection).
//! - [`suite`]: which cases run, in which order, with which allocator.
//! - [`report`]: the report, in five files:
//!   - [`report::row`]: one row per measured case, and how rows are found and ordered;
//!   - `report::targets`: the class table and the targets its ratios are held against;
//!   - `report::comparisons`: sandbox on / off, the eager set's CPU split, AVIF's cost;
//!   - `report::summary`: the whole report (per class, machine, tools), as `--json`
//!     writes it;
//!   - `report::tables`: the progress lines and the Markdown tables.
//! - [`error`]: [`error::BenchError`], every module's error but `main`'s (which reports it
//!   through `anyhow`).

mod cases;
mod error;
mod external;
mod measure;
mod options;
mod report;
mod suite;

use std::path::PathBuf;

use clap::Parser;
use rendition_image::sandbox;

#[derive(Debug, Parser)]
#[command(
    name = "rendition-bench",
    version,
    // A later option wins (scripts/bench.sh passes its defaults first).
    args_override_self = true,
    about = "Measure images/s, CPU and peak RSS of Rendition against sharp and vipsthumbnail, per class of source, on a folder of photos",
    after_help = "Example:\n  dir=$(scripts/make-bench-classes.sh | tail -n1)\n  rendition-bench \"$dir\" --json target/bench.json\n\nThe files of DIR (.jpg, .jpeg, .png, .heic, .heif) are sorted into classes by content:\nprogressive JPEG (SOF2), baseline JPEG, PNG, HEIC. Per class: one variant (w=300 JPEG q80)\nand the eager set (2048/1024/640/320/160 px as JPEG + WebP), and on progressive JPEGs the\neager set with AVIF too (+5 AVIF), at concurrency 1 and 2, each case in its own process\n(peak RSS via wait4). Rendition runs with the render sandbox on and jemalloc preloaded\n(Debian's libjemalloc2, the images' MALLOC_CONF); the table gives img/s, CPU ms/img and\npeak RSS with the ratios against sharp and vipsthumbnail from the same run, and whether\nthe targets are met. sharp runs when node and\n${RENDITION_CACHE:-~/.cache/rendition}/sharp/node_modules/sharp exist (scripts/bench.sh\ninstalls it; its prebuilt libvips cannot decode HEIC: n/a there); vipsthumbnail when on PATH.\n\nA subset, e.g. one timed pass, two files per class, PNG and HEIC only:\n  rendition-bench \"$dir\" --iterations 1 --per-class 2 --class png,heic\nAVIF's cost in an eager job (the eager presets with and without AVIF):\n  rendition-bench \"$dir\" --only presets,presets-avif --class progressive --concurrency 1"
)]
struct Args {
    /// Folder with the photos to measure (.jpg, .jpeg, .png, .heic, .heif).
    dir: PathBuf,
    /// Timed passes over the files per case (the median is reported), after one warm-up.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// Also write the full report as JSON.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Where sharp is installed with npm (default ${RENDITION_CACHE:-~/.cache/rendition}/sharp).
    #[arg(long, value_name = "DIR")]
    sharp_dir: Option<PathBuf>,
    /// Skip sharp.
    #[arg(long)]
    no_sharp: bool,
    /// Skip vipsthumbnail.
    #[arg(long)]
    no_vipsthumbnail: bool,
    /// Rendition's malloc: jemalloc (preloaded, as the images ship it) or glibc
    /// (MALLOC_ARENA_MAX=2). Comma-separated or repeated to compare; the first one is the
    /// class table's.
    #[arg(long, value_name = "ALLOC", value_delimiter = ',', default_value = "jemalloc", value_parser = measure::Allocator::parse)]
    allocator: Vec<measure::Allocator>,
    /// Also run every Rendition case with the render sandbox off, right before it runs
    /// with it on (target: on ≥ 0.95 × off img/s).
    #[arg(long)]
    sandbox_compare: bool,
    /// Run only these sets on every class (comma-separated or repeated): one, eager5,
    /// eager10, eager15, eager5-jpeg, presets, presets-avif. Default: one and eager10, and
    /// eager15 on progressive JPEGs. AVIF's added cost: `--only presets,presets-avif`.
    #[arg(long, value_name = "SET", value_delimiter = ',', value_parser = cases::Set::parse)]
    only: Vec<cases::Set>,
    /// Only these classes (comma-separated or repeated): progressive, baseline, png, heic.
    #[arg(long, value_name = "CLASS", value_delimiter = ',', value_parser = cases::Class::parse)]
    class: Vec<cases::Class>,
    /// Only JPEGs (progressive and baseline) or PNGs; the same as --class.
    #[arg(long, value_name = "KIND", value_parser = ["jpeg", "png"])]
    kind: Vec<String>,
    /// At most N files per class (the first by name).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    per_class: Option<u32>,
    /// Only this concurrency (repeatable; default 1 and 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: Vec<u16>,
    /// Internal: run one Rendition case in this process (rendition:CLASS:SET:C:SANDBOX).
    #[arg(long, hide = true, value_name = "CASE")]
    child: Option<String>,
    /// Internal: the files of a `--child` case.
    #[arg(long, hide = true, value_name = "FILE")]
    file: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    // A render helper of the sandbox (a "sandbox on" case starts them): this binary again.
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(sandbox::HELPER_ARG) {
        let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
        std::process::exit(sandbox::helper::main(threads));
    }
    let args = Args::parse();
    let iterations = args.iterations as usize;
    if let Some(case) = args.child {
        cases::child(&args.file, iterations, &case)?;
        return Ok(());
    }
    let mut classes = args.class;
    for kind in &args.kind {
        classes.extend(cases::Class::of_kind(kind)?);
    }
    suite::run(&options::Options {
        dir: args.dir,
        iterations,
        json: args.json,
        sharp_dir: args.sharp_dir,
        no_sharp: args.no_sharp,
        no_vipsthumbnail: args.no_vipsthumbnail,
        allocators: args.allocator,
        sandbox_compare: args.sandbox_compare,
        only: args.only,
        classes,
        per_class: args.per_class.map(|n| n as usize),
        concurrency: args.concurrency.into_iter().map(usize::from).collect(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scripts/bench.sh passes `--sharp-dir` and `--json` before the caller's options: a
    /// later one wins, and repeated list options still add up.
    #[test]
    fn later_options_win_and_lists_add_up() {
        let args = Args::try_parse_from([
            "rendition-bench",
            "dir",
            "--iterations",
            "2",
            "--iterations",
            "5",
            "--concurrency",
            "1",
            "--concurrency",
            "2",
            "--class",
            "png,heic",
            "--kind",
            "jpeg",
        ])
        .expect("parses");
        assert_eq!(args.iterations, 5);
        assert_eq!(args.concurrency, [1, 2]);
        assert_eq!(args.class, [cases::Class::Png, cases::Class::Heic]);
        assert_eq!(args.kind, ["jpeg"]);
        assert_eq!(args.allocator, [measure::Allocator::Jemalloc]);
        let glibc = Args::try_parse_from(["b", "d", "--allocator", "glibc,jemalloc"]).unwrap();
        assert_eq!(
            glibc.allocator,
            [measure::Allocator::Glibc, measure::Allocator::Jemalloc]
        );
        assert!(Args::try_parse_from(["b", "d", "--class", "gif"]).is_err());
    }
}
