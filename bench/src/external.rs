//! The other tools: sharp (`bench/sharp-bench.mjs` under node, outputs to memory) and
//! vipsthumbnail (files written to a tmpfs, `/dev/shm`). Both run with glibc's default
//! malloc arenas.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::cases::{CaseOutput, Class, Set};
use crate::error::BenchError;
use crate::measure::{self, Running};
use crate::options::Options;
use crate::report::{self, Measured, Row, GLIBC_DEFAULT};

/// The sharp side of the comparison, written to a temporary file when sharp runs.
const SHARP_SCRIPT: &str = include_str!("../sharp-bench.mjs");

/// sharp, ready to run: where it is installed, and the script (removed on drop).
pub struct Sharp {
    dir: PathBuf,
    script: PathBuf,
}

impl Drop for Sharp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}

/// A scratch folder on a tmpfs for vipsthumbnail's outputs (removed on drop).
pub struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which of the other tools can run, and their versions.
pub struct External {
    pub node: Option<String>,
    pub sharp_version: Option<String>,
    pub sharp: Option<Sharp>,
    pub vipsthumbnail_version: Option<String>,
    pub shm: Scratch,
    /// Why a tool does not run.
    pub skipped: Vec<String>,
}

fn default_sharp_dir() -> PathBuf {
    match std::env::var_os("RENDITION_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c).join("sharp"),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/rendition/sharp"),
    }
}

impl External {
    pub fn detect(opts: &Options) -> Result<External, BenchError> {
        let mut skipped = Vec::new();
        let node = if opts.no_sharp {
            skipped.push("sharp: --no-sharp".to_string());
            None
        } else {
            let v = measure::command_output("node", &["--version"]);
            if v.is_none() {
                skipped.push("sharp: node not found".to_string());
            }
            v
        };
        let sharp_dir = opts.sharp_dir.clone().unwrap_or_else(default_sharp_dir);
        let sharp_pkg = sharp_dir.join("node_modules/sharp/package.json");
        let sharp_version = node.as_ref().and_then(|_| {
            let text = std::fs::read_to_string(&sharp_pkg).ok();
            if text.is_none() {
                skipped.push(format!(
                    "sharp: not installed in {} (scripts/bench.sh installs it)",
                    sharp_dir.display()
                ));
            }
            let pkg: serde_json::Value = serde_json::from_str(&text?).ok()?;
            pkg["version"].as_str().map(str::to_string)
        });
        let sharp = match sharp_version {
            Some(_) => {
                let script = std::env::temp_dir()
                    .join(format!("rendition-sharp-bench-{}.mjs", std::process::id()));
                if let Err(source) = std::fs::write(&script, SHARP_SCRIPT) {
                    return Err(BenchError::Write {
                        path: script,
                        source,
                    });
                }
                Some(Sharp {
                    dir: sharp_dir,
                    script,
                })
            }
            None => None,
        };
        let vipsthumbnail_version = if opts.no_vipsthumbnail {
            skipped.push("vipsthumbnail: --no-vipsthumbnail".to_string());
            None
        } else {
            let v = measure::command_output("vipsthumbnail", &["--vips-version"]);
            if v.is_none() {
                skipped
                    .push("vipsthumbnail: not found (apt-get install libvips-tools)".to_string());
            }
            v
        };
        let shm_root = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let shm = shm_root.join(format!("rendition-bench-{}", std::process::id()));
        if let Err(source) = std::fs::create_dir_all(&shm) {
            return Err(BenchError::Create { path: shm, source });
        }
        Ok(External {
            node,
            sharp_version,
            sharp,
            vipsthumbnail_version,
            shm: Scratch(shm),
            skipped,
        })
    }

    /// Whether sharp decodes `files`: `Ok(None)` when it does (or does not run at all),
    /// `Ok(Some(why))` when it fails on one of them (sharp's prebuilt libvips has no HEVC
    /// decoder: no HEIC).
    pub fn sharp_cannot_decode(&self, files: &[PathBuf]) -> Result<Option<String>, BenchError> {
        let Some(sharp) = &self.sharp else {
            return Ok(None);
        };
        let mut cmd = Command::new("node");
        cmd.arg(&sharp.script)
            .arg(&sharp.dir)
            .args(["probe", "-", "1", "0"])
            .args(files);
        measure::glibc_default(&mut cmd);
        let reaped = measure::run_measured(&mut cmd, "node sharp probe")?;
        let probe: serde_json::Value =
            serde_json::from_str(reaped.stdout.trim()).map_err(BenchError::SharpProbe)?;
        if probe["ok"] == true {
            return Ok(None);
        }
        let file = probe["file"].as_str().unwrap_or("?");
        let name = Path::new(file).file_name().unwrap_or_default();
        Ok(Some(format!(
            "sharp {} cannot decode {}: {}",
            self.sharp_version.as_deref().unwrap_or(""),
            name.to_string_lossy(),
            probe["error"].as_str().unwrap_or("unknown error")
        )))
    }

    /// sharp on `files`: every variant of `set` as its own pipeline.
    pub fn sharp(
        &self,
        class: Class,
        files: &[PathBuf],
        set: Set,
        concurrency: usize,
        iterations: usize,
    ) -> Result<Option<(Row, CaseOutput)>, BenchError> {
        let Some(sharp) = &self.sharp else {
            return Ok(None);
        };
        let mut cmd = Command::new("node");
        // The variants as JSON, or `-` for the sets the script names itself.
        let variants = if set.sharp_from_json() {
            set.sharp_variants()?.to_string()
        } else {
            "-".to_string()
        };
        cmd.arg(&sharp.script)
            .arg(&sharp.dir)
            .arg(set.as_str())
            .arg(variants)
            .arg(concurrency.to_string())
            .arg(iterations.to_string())
            .args(files);
        measure::glibc_default(&mut cmd);
        let reaped = measure::run_measured(&mut cmd, "node sharp")?;
        let out: CaseOutput =
            serde_json::from_str(reaped.stdout.trim()).map_err(BenchError::SharpOutput)?;
        let note = match set {
            Set::Eager10 => Some("10 independent pipelines/image".to_string()),
            Set::Eager15 => Some(format!(
                "15 independent pipelines/image; AVIF effort {}, 4:2:0",
                set.preset_settings().unwrap_or_default().render.avif_effort
            )),
            Set::Presets => Some("5 independent pipelines/image".to_string()),
            Set::PresetsAvif => Some(format!(
                "10 independent pipelines/image; AVIF effort {}, 4:2:0",
                set.preset_settings().unwrap_or_default().render.avif_effort
            )),
            _ => None,
        };
        let row = report::row(
            Measured {
                tool: "sharp",
                class,
                env: GLIBC_DEFAULT,
                sandbox: None,
                set,
                concurrency,
                maxrss_kb: reaped.maxrss_kb,
                cpu_s: reaped.cpu_s,
                note,
            },
            &out,
        );
        Ok(Some((row, out)))
    }

    /// vipsthumbnail over all files: one process at concurrency 1, two processes (each
    /// single-threaded, each on half of the pixels) at concurrency 2. Timed as a whole,
    /// process start-up included; peak RSS is the sum of the processes' peaks.
    pub fn vipsthumbnail(
        &self,
        class: Class,
        files: &[PathBuf],
        pixels: &[u64],
        concurrency: usize,
        iterations: usize,
    ) -> Result<Option<Row>, BenchError> {
        if self.vipsthumbnail_version.is_none() {
            return Ok(None);
        }
        let shm = &self.shm.0;
        // Longest first onto the least loaded process.
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(pixels[i]));
        let mut bins: Vec<(u64, Vec<&PathBuf>)> = vec![(0, Vec::new()); concurrency.max(1)];
        for i in order {
            let bin = bins.iter_mut().min_by_key(|b| b.0).expect("one bin");
            bin.0 += pixels[i];
            bin.1.push(&files[i]);
        }
        let pattern = format!("{}/%s.jpg[Q=80,strip,optimize_coding]", shm.display());
        let pass = || -> Result<(f64, u64, u64, f64), BenchError> {
            let start = Instant::now();
            let running: Vec<Running> = bins
                .iter()
                .filter(|b| !b.1.is_empty())
                .map(|b| {
                    let mut cmd = Command::new("vipsthumbnail");
                    cmd.args(["-s", "300x", "-o", &pattern])
                        .args(&b.1)
                        .env("VIPS_CONCURRENCY", "1");
                    measure::glibc_default(&mut cmd);
                    measure::spawn(&mut cmd, "vipsthumbnail")
                })
                .collect::<Result<_, _>>()?;
            let (mut rss, mut cpu) = (0, 0.0);
            for r in running {
                let reaped = measure::reap(r)?;
                rss += reaped.maxrss_kb;
                cpu += reaped.cpu_s;
            }
            let secs = start.elapsed().as_secs_f64();
            let mut bytes = 0;
            for entry in std::fs::read_dir(shm)? {
                let entry = entry?;
                bytes += entry.metadata()?.len();
                std::fs::remove_file(entry.path())?;
            }
            Ok((secs, rss, bytes, cpu))
        };
        let (warmup_s, mut maxrss, _, mut cpu_s) = pass()?;
        let mut times_s = Vec::new();
        let mut out_bytes = 0;
        for _ in 0..iterations {
            let (secs, rss, bytes, cpu) = pass()?;
            times_s.push(secs);
            maxrss = maxrss.max(rss);
            cpu_s += cpu;
            out_bytes = bytes;
        }
        let out = CaseOutput {
            images: files.len(),
            outputs_per_image: 1,
            warmup_s,
            times_s,
            out_bytes,
            vmhwm_kb: None,
            helpers_maxrss_kb: None,
            tree_rss_kb: None,
            jemalloc: None,
            sharp: None,
            libvips: None,
        };
        let note = if concurrency > 1 {
            format!("{concurrency} processes; whole-process time; files to tmpfs")
        } else {
            "whole-process time; files to tmpfs".to_string()
        };
        Ok(Some(report::row(
            Measured {
                tool: "vipsthumbnail",
                class,
                env: GLIBC_DEFAULT,
                sandbox: None,
                set: Set::One,
                concurrency,
                maxrss_kb: maxrss,
                cpu_s,
                note: Some(note),
            },
            &out,
        )))
    }
}
