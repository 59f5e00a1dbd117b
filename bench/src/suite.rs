//! Every case, in order: per class (progressive JPEG, baseline JPEG, PNG, HEIC), per
//! concurrency (1, 2) and set, Rendition with the render sandbox on under each allocator
//! asked for (jemalloc by default, as the images ship it; with `--sandbox-compare` each
//! right after the same case with the sandbox off, so both see about the same load), then
//! sharp and vipsthumbnail on the same files. sharp and vipsthumbnail always run with
//! glibc's default malloc.
//!
//! The sets by default: one variant and the eager set (10 outputs) on every class, and the
//! eager set with AVIF (15 outputs) on progressive JPEGs only, to keep the run short.
//! `--only SET,…` runs exactly those sets on every class; `--class`, `--per-class` and
//! `--concurrency` select a subset of the cases.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use rendition_image::vips;

use crate::cases::{self, Case, CaseOutput, Set};
use crate::error::BenchError;
use crate::external::External;
use crate::measure::{self, Allocator};
use crate::options::Options;
use crate::report::{self, Group, Machine, Measured, Report, Row, Tools};

/// Starts Rendition cases: this binary with `--child`.
struct Rendition<'a> {
    opts: &'a Options,
    exe: PathBuf,
    jemalloc: Option<PathBuf>,
}

impl Rendition<'_> {
    fn run(&self, case: Case, allocator: Allocator, files: &[PathBuf]) -> Result<Row, BenchError> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(&self.opts.dir)
            .arg("--iterations")
            .arg(self.opts.iterations.to_string())
            .arg("--child")
            .arg(case.to_arg());
        for file in files {
            cmd.arg("--file").arg(file);
        }
        allocator.apply(&mut cmd, self.jemalloc.as_ref())?;
        let reaped = measure::run_measured(&mut cmd, "rendition-bench case")?;
        let out: CaseOutput =
            serde_json::from_str(reaped.stdout.trim()).map_err(BenchError::CaseOutput)?;
        if allocator == Allocator::Jemalloc && out.jemalloc != Some(true) {
            return Err(BenchError::JemallocNotLoaded {
                case: case.to_arg(),
                preload: self.jemalloc.clone(),
            });
        }
        let mut notes = Vec::new();
        if case.sandbox {
            notes.push(format!(
                "{} helper{}; RSS incl. helpers",
                case.concurrency,
                if case.concurrency == 1 { "" } else { "s" }
            ));
        }
        if matches!(case.set, Set::PresetsAvif | Set::Eager15) {
            let settings = case.set.preset_settings().unwrap_or_default();
            notes.push(format!(
                "one decode; AVIF effort {}",
                settings.render.avif_effort
            ));
        }
        Ok(report::row(
            Measured {
                tool: "rendition",
                class: case.class,
                env: allocator.label(),
                sandbox: Some(case.sandbox),
                set: case.set,
                concurrency: case.concurrency,
                maxrss_kb: reaped.maxrss_kb,
                cpu_s: reaped.cpu_s,
                note: (!notes.is_empty()).then(|| notes.join("; ")),
            },
            &out,
        ))
    }
}

/// Runs every case and prints the table; writes the JSON report with `--json`.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let started = Instant::now();
    let load_before = measure::loadavg();
    vips::init(1).map_err(BenchError::Vips)?;
    let external = External::detect(opts)?;
    let rendition = Rendition {
        opts,
        exe: std::env::current_exe().map_err(BenchError::CurrentExe)?,
        jemalloc: measure::find_jemalloc(),
    };
    let primary = *opts.allocators.first().ok_or(BenchError::NoAllocator)?;
    let concurrencies = if opts.concurrency.is_empty() {
        vec![1, 2]
    } else {
        opts.concurrency.clone()
    };

    let mut groups = Vec::new();
    let mut sharp_libvips = None;
    for (class, mut files) in cases::classify(&opts.dir)? {
        if !opts.classes.is_empty() && !opts.classes.contains(&class) {
            continue;
        }
        if let Some(n) = opts.per_class {
            files.truncate(n);
        }
        if files.is_empty() {
            continue;
        }
        let sources = cases::read_all(&files)?;
        let pixels: Vec<u64> = sources
            .iter()
            .map(|s| {
                let h = vips::Image::open(s).map(|i| i.header());
                h.map(|h| u64::from(h.width) * u64::from(h.height))
                    .unwrap_or(0)
            })
            .collect();
        let bytes = sources.iter().map(|s| s.len() as u64).sum();
        drop(sources);
        let sharp_na = external.sharp_cannot_decode(&files)?;
        let mut rows = Vec::new();
        let mut push = |r: Row| {
            report::progress(&r);
            rows.push(r);
        };
        for &concurrency in &concurrencies {
            for set in opts.sets(class) {
                let case = |sandbox| Case {
                    class,
                    set,
                    concurrency,
                    sandbox,
                };
                for &allocator in &opts.allocators {
                    if opts.sandbox_compare {
                        push(rendition.run(case(false), allocator, &files)?);
                    }
                    push(rendition.run(case(true), allocator, &files)?);
                }
                if set.sharp_compared() && sharp_na.is_none() {
                    if let Some((r, out)) =
                        external.sharp(class, &files, set, concurrency, opts.iterations)?
                    {
                        sharp_libvips = out.libvips.clone();
                        push(r);
                    }
                }
                if set == Set::One {
                    if let Some(r) = external.vipsthumbnail(
                        class,
                        &files,
                        &pixels,
                        concurrency,
                        opts.iterations,
                    )? {
                        push(r);
                    }
                }
            }
        }
        groups.push(Group {
            class,
            files: files
                .iter()
                .map(|f| f.file_name().unwrap_or_default().to_string_lossy().into())
                .collect(),
            bytes,
            megapixels: pixels.iter().sum::<u64>() as f64 / 1e6,
            table: report::class_table(&rows, primary.label(), sharp_na.as_deref()),
            sharp_na,
            sandbox: report::sandbox_ratios(&rows),
            eager10_split: report::split(&rows, primary.label()),
            avif_cost: report::avif_cost(&rows, primary.label()),
            rows,
        });
    }
    if groups.is_empty() {
        return Err(BenchError::NoSources {
            of_classes: if opts.classes.is_empty() {
                ""
            } else {
                " of the classes asked for"
            },
            dir: opts.dir.clone(),
        });
    }

    let sandbox: Vec<_> = groups.iter().flat_map(|g| &g.sandbox).collect();
    let checks: Vec<bool> = groups
        .iter()
        .flat_map(|g| &g.table)
        .flat_map(|r| [&r.speed_target, &r.rss_target])
        .filter_map(|c| c.as_ref().map(|c| c.met))
        .collect();
    let (major, minor, micro) = vips::version();
    let report = Report {
        dir: opts.dir.display().to_string(),
        iterations: opts.iterations,
        per_class: opts.per_class,
        only: opts.only.iter().map(|s| s.as_str()).collect(),
        rendition_env: primary.label().to_string(),
        targets_met: checks.iter().filter(|&&met| met).count(),
        targets_checked: checks.len(),
        sandbox_target: report::TARGET_SANDBOX,
        sandbox_passed: sandbox.iter().filter(|r| r.pass).count(),
        sandbox_compared: sandbox.len(),
        machine: Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: measure::cpu_model(),
            mem_total_mib: measure::proc_field("/proc/meminfo", "MemTotal:").unwrap_or(0) / 1024,
            loadavg_before: load_before,
            loadavg_after: measure::loadavg(),
        },
        tools: Tools {
            rendition_libvips: format!("{major}.{minor}.{micro}"),
            vipsthumbnail: external.vipsthumbnail_version.clone(),
            node: external.node.clone(),
            sharp: external.sharp_version.clone(),
            sharp_libvips,
            jemalloc: rendition.jemalloc.as_ref().map(|p| p.display().to_string()),
            skipped: external.skipped.clone(),
        },
        groups,
        wall_s: started.elapsed().as_secs_f64(),
    };
    print!("{}", report::render_table(&report));
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n").map_err(|source| {
            BenchError::Write {
                path: path.clone(),
                source,
            }
        })?;
        println!("JSON report: {}", path.display());
    }
    Ok(report)
}
