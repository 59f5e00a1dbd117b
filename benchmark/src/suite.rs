//! Every case, in order: per photo kind (JPEG, then PNG), per concurrency (1, 2) and set,
//! Rendition with the sandbox off, then on (right after the off case it is compared with,
//! so both see about the same load), then sharp and vipsthumbnail.
//!
//! Rendition runs with the `MALLOC_ARENA_MAX` it was started with (scripts/bench.sh sets
//! 2) and, unless `--no-arena-compare`, once more with the other setting (unset ↔ 2). The
//! sandbox pair always runs with MALLOC_ARENA_MAX=2 on both sides, as the pool sets it for
//! its helpers whatever the case process has: like for like, the on case follows the off
//! case with 2 (run once more when neither setting above is 2). sharp and vipsthumbnail
//! always run with glibc's default arenas.
//!
//! After those, per kind and concurrency, the eager presets as configured (WebP) and with
//! AVIF added (`presets`, `presets-avif`): Rendition back to back (sandbox off, the
//! `MALLOC_ARENA_MAX` it was started with), then sharp on each; their ratio is what AVIF
//! adds to an eager job.
//!
//! `--only SET,…`, `--kind` and `--concurrency` select a subset of the cases.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use rendition_core::vips;

use crate::cases::{self, Case, CaseOutput, Kind, Set};
use crate::external::External;
use crate::measure;
use crate::report::{self, Group, Machine, Measured, Report, Row, Tools};

/// MALLOC_ARENA_MAX of the sandbox pair: what the pool gives its helpers.
const SANDBOX_ARENA: &str = "2";

#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub iterations: usize,
    pub json: Option<PathBuf>,
    /// Where `npm install sharp` was run; default `${RENDITION_CACHE:-~/.cache/rendition}/sharp`.
    pub sharp_dir: Option<PathBuf>,
    pub no_sharp: bool,
    pub no_vipsthumbnail: bool,
    pub no_arena_compare: bool,
    /// Run only these sets (empty: all).
    pub only: Vec<Set>,
    /// Only these photo kinds (empty: JPEG and PNG).
    pub kinds: Vec<Kind>,
    /// Only these concurrencies (empty: 1 and 2).
    pub concurrency: Vec<usize>,
}

impl Options {
    fn wants(&self, set: Set) -> bool {
        self.only.is_empty() || self.only.contains(&set)
    }
}

/// Starts Rendition cases: this binary with `--child`.
struct Rendition<'a> {
    opts: &'a Options,
    exe: PathBuf,
}

impl Rendition<'_> {
    fn run(&self, case: Case, arena: Option<&str>) -> anyhow::Result<Row> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(&self.opts.dir)
            .arg("--iterations")
            .arg(self.opts.iterations.to_string())
            .arg("--child")
            .arg(case.to_arg());
        match arena {
            Some(v) => cmd.env("MALLOC_ARENA_MAX", v),
            None => cmd.env_remove("MALLOC_ARENA_MAX"),
        };
        let reaped = measure::run_measured(&mut cmd, "rendition-bench case")?;
        let out: CaseOutput =
            serde_json::from_str(reaped.stdout.trim()).context("rendition case output")?;
        let note = if case.sandbox {
            Some(format!(
                "{} helper{}; RSS = max(parent, helpers); CPU incl. helpers",
                case.concurrency,
                if case.concurrency == 1 { "" } else { "s" }
            ))
        } else if case.set == Set::PresetsAvif {
            let settings = case.set.preset_settings().unwrap_or_default();
            Some(format!(
                "one decode; AVIF effort {}",
                settings.render.avif_effort
            ))
        } else {
            None
        };
        Ok(report::row(
            Measured {
                tool: "rendition",
                env: &report::arena_label(arena),
                sandbox: Some(case.sandbox),
                set: case.set,
                concurrency: case.concurrency,
                maxrss_kb: reaped.maxrss_kb,
                cpu_s: reaped.cpu_s,
                note,
            },
            &out,
        ))
    }
}

/// Runs every case and prints the table; writes the JSON report with `--json`.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let load_before = measure::loadavg();
    vips::init(1).context("starting libvips")?;
    let external = External::detect(opts)?;
    let rendition = Rendition {
        opts,
        exe: std::env::current_exe().context("locating this binary")?,
    };
    let primary = std::env::var("MALLOC_ARENA_MAX").ok();
    let alternate: Option<Option<&str>> = if opts.no_arena_compare {
        None
    } else if primary.is_some() {
        Some(None)
    } else {
        Some(Some("2"))
    };
    let primary_env = report::arena_label(primary.as_deref());
    // The sandbox-off settings, the one the sandbox pair uses last.
    let mut off_arenas: Vec<Option<&str>> = vec![primary.as_deref()];
    off_arenas.extend(alternate);
    if !off_arenas.contains(&Some(SANDBOX_ARENA)) {
        off_arenas.push(Some(SANDBOX_ARENA));
    }
    off_arenas.sort_by_key(|a| *a == Some(SANDBOX_ARENA));

    let mut groups = Vec::new();
    let mut sharp_libvips = None;
    for kind in [Kind::Jpeg, Kind::Png] {
        if !opts.kinds.is_empty() && !opts.kinds.contains(&kind) {
            continue;
        }
        let files = cases::list(&opts.dir, kind)?;
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
        let mut rows = Vec::new();
        let mut push = |r: Row| {
            report::progress(kind, &r);
            rows.push(r);
        };
        let concurrencies = if opts.concurrency.is_empty() {
            vec![1, 2]
        } else {
            opts.concurrency.clone()
        };
        for &concurrency in &concurrencies {
            for set in [Set::One, Set::Eager5, Set::Eager10] {
                if !opts.wants(set) {
                    continue;
                }
                let case = |sandbox| Case {
                    kind,
                    set,
                    concurrency,
                    sandbox,
                };
                for arena in &off_arenas {
                    push(rendition.run(case(false), *arena)?);
                }
                push(rendition.run(case(true), Some(SANDBOX_ARENA))?);
                if set != Set::Eager5 {
                    if let Some((r, out)) =
                        external.sharp(&files, set, concurrency, opts.iterations)?
                    {
                        sharp_libvips = out.libvips.clone();
                        push(r);
                    }
                }
                if set == Set::One {
                    if let Some(r) =
                        external.vipsthumbnail(&files, &pixels, concurrency, opts.iterations)?
                    {
                        push(r);
                    }
                }
            }
        }
        // AVIF's cost: the eager presets as configured, then with AVIF added, back to back
        // (sandbox off, the primary malloc setting), then sharp on each.
        for &concurrency in &concurrencies {
            let sets: Vec<Set> = [Set::Presets, Set::PresetsAvif]
                .into_iter()
                .filter(|&s| opts.wants(s))
                .collect();
            for &set in &sets {
                let case = Case {
                    kind,
                    set,
                    concurrency,
                    sandbox: false,
                };
                push(rendition.run(case, primary.as_deref())?);
            }
            for &set in &sets {
                if let Some((r, out)) = external.sharp(&files, set, concurrency, opts.iterations)? {
                    sharp_libvips = out.libvips.clone();
                    push(r);
                }
            }
        }
        if opts.wants(Set::Eager5Jpeg) && concurrencies.contains(&1) {
            let split_case = Case {
                kind,
                set: Set::Eager5Jpeg,
                concurrency: 1,
                sandbox: false,
            };
            push(rendition.run(split_case, primary.as_deref())?);
        }
        groups.push(Group {
            kind,
            files: files
                .iter()
                .map(|f| f.file_name().unwrap_or_default().to_string_lossy().into())
                .collect(),
            bytes,
            megapixels: pixels.iter().sum::<u64>() as f64 / 1e6,
            ratios: report::ratios(&rows),
            sandbox: report::sandbox_ratios(&rows),
            eager10_split: report::split(&rows, &primary_env),
            avif_cost: report::avif_cost(&rows, &primary_env),
            rows,
        });
    }
    if groups.is_empty() {
        bail!(
            "no .jpg, .jpeg or .png files{} in {}",
            if opts.kinds.is_empty() {
                ""
            } else {
                " of the kinds asked for"
            },
            opts.dir.display()
        );
    }

    let sandbox: Vec<_> = groups.iter().flat_map(|g| &g.sandbox).collect();
    let (major, minor, micro) = vips::version();
    let report = Report {
        dir: opts.dir.display().to_string(),
        iterations: opts.iterations,
        only: opts.only.iter().map(|s| s.as_str()).collect(),
        rendition_env: primary_env,
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
            skipped: external.skipped.clone(),
        },
        groups,
        wall_s: started.elapsed().as_secs_f64(),
    };
    print!("{}", report::render_table(&report));
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON report: {}", path.display());
    }
    Ok(report)
}
