//! `rendition-bench DIR`: images/s, CPU ms/img and peak RSS of Rendition against sharp
//! and vipsthumbnail on the same photos, and of Rendition's render sandbox on against
//! off, with the ratios, all measured in one run. Not part of the shipped `rendition`
//! binary (`publish = false`); `scripts/bench.sh` builds and runs it.
//!
//! Every measured case runs in a child process of its own, so its peak RSS and CPU time
//! are its own: Rendition re-runs this binary (`DIR --child rendition:KIND:SET:C:SANDBOX`),
//! sharp runs `bench/sharp-bench.mjs` (embedded in this binary) under `node`, and
//! vipsthumbnail is one process over all the images (two at concurrency 2, each on half of
//! them). The parent reaps each child with `wait4` and takes `ru_maxrss` and the CPU time
//! from it: the same measure for all three tools. With the sandbox on, the Rendition case
//! process starts its render helpers (this binary again, with
//! [`rendition_core::sandbox::HELPER_ARG`]) and reaps them before it exits, so `wait4`
//! reports the larger of its own peak and its helpers' (not their sum), and CPU time
//! that includes theirs. The sandbox on/off pair runs with MALLOC_ARENA_MAX=2 on both
//! sides (the pool sets it for its helpers).
//!
//! Each case reads its files into memory first (vipsthumbnail cannot: it reads them from
//! the page cache), does one untimed warm-up pass over the folder, then `--iterations`
//! timed passes; the median pass is reported.
//!
//! # Layout
//! - `main.rs`: the command line; the render-helper dispatch; parse, then run.
//! - [`cases`]: the photo kinds and variant sets (including the eager presets with and
//!   without AVIF), and one Rendition case in this process
//!   (`--child`), sandbox off (`Renderer::in_process`) or on (a helper pool).
//! - [`measure`]: child processes measured with `wait4`; `/proc` readings.
//! - [`external`]: the sharp (node) and vipsthumbnail cases.
//! - [`suite`]: which cases run, in which order, with which malloc setting.
//! - [`report`]: rows, ratios (Rendition / sharp, sandbox on / off) and the Markdown table.

mod cases;
mod external;
mod measure;
mod report;
mod suite;

use std::path::PathBuf;

use clap::Parser;
use rendition_core::sandbox;

#[derive(Debug, Parser)]
#[command(
    name = "rendition-bench",
    version,
    about = "Measure images/s and peak RSS of Rendition against sharp and vipsthumbnail, and with the render sandbox on and off, on a folder of photos",
    after_help = "Example:\n  dir=$(scripts/fetch-photos.sh | tail -n1)\n  MALLOC_ARENA_MAX=2 rendition-bench \"$dir\" --json target/bench.json\n\nJPEGs and PNGs are measured separately: one variant (w=300 JPEG q80), the eager set\n(2048/1024/640/320/160 px as WebP, and as JPEG + WebP) at concurrency 1 and 2, each case\nin its own process (peak RSS via wait4). Rendition runs with the render sandbox off and\non (helper pool of the case's concurrency); target: on ≥ 0.95 × off img/s. Then the\neager presets as configured (5 WebP) and with AVIF added (5 AVIF + 5 WebP): what AVIF\ncosts an eager job. sharp runs when node and\n${RENDITION_CACHE:-~/.cache/rendition}/sharp/node_modules/sharp exist (scripts/bench.sh\ninstalls it); vipsthumbnail when on PATH.\n\nA subset, e.g. AVIF's cost on the JPEGs at concurrency 1, one timed pass:\n  rendition-bench \"$dir\" --only presets,presets-avif --kind jpeg --concurrency 1 --iterations 1"
)]
struct Args {
    /// Folder with the .jpg/.jpeg and .png files to measure.
    dir: PathBuf,
    /// Timed passes over the folder per case (the median is reported), after one warm-up.
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
    /// Run Rendition only with the MALLOC_ARENA_MAX it was started with (by default it
    /// also runs with the other setting: unset ↔ 2); the sandbox on/off pair always runs
    /// with 2.
    #[arg(long)]
    no_arena_compare: bool,
    /// Run only these sets (comma-separated or repeated): one, eager5, eager10,
    /// eager5-jpeg, presets, presets-avif. AVIF's added cost: `--only presets,presets-avif`.
    #[arg(long, value_name = "SET", value_delimiter = ',', value_parser = cases::Set::parse)]
    only: Vec<cases::Set>,
    /// Only this photo kind: jpeg or png (repeatable; default both).
    #[arg(long, value_name = "KIND", value_parser = cases::Kind::parse)]
    kind: Vec<cases::Kind>,
    /// Only this concurrency (repeatable; default 1 and 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: Vec<u16>,
    /// Internal: run one Rendition case in this process (rendition:KIND:SET:C:SANDBOX).
    #[arg(long, hide = true, value_name = "CASE")]
    child: Option<String>,
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
        return cases::child(&args.dir, iterations, &case);
    }
    suite::run(&suite::Options {
        dir: args.dir,
        iterations,
        json: args.json,
        sharp_dir: args.sharp_dir,
        no_sharp: args.no_sharp,
        no_vipsthumbnail: args.no_vipsthumbnail,
        no_arena_compare: args.no_arena_compare,
        only: args.only,
        kinds: args.kind,
        concurrency: args.concurrency.into_iter().map(usize::from).collect(),
    })?;
    Ok(())
}
