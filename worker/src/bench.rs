//! `rendition bench DIR`: images/s and peak RSS of Rendition against sharp and
//! vipsthumbnail on the same photos, and the ratios, all measured in one run.
//!
//! Every measured case runs in a child process of its own, so its peak RSS is its own:
//! Rendition re-runs this binary (`bench DIR --child rendition:KIND:SET:C`, which reads
//! `VmHWM` from `/proc/self/status` at the end), sharp runs `bench/sharp-bench.mjs`
//! (embedded in this binary) under `node`, and vipsthumbnail is one process over all the
//! images (two processes, each on half of them, at concurrency 2). The parent reaps each
//! child with `wait4` and takes `ru_maxrss` from it: the same measure for all three tools.
//!
//! Each case reads its files into memory first (vipsthumbnail cannot: it reads them from
//! the page cache), does one untimed warm-up pass over the folder, then `--iterations`
//! timed passes; the median pass is reported. Rendition and sharp encode to memory;
//! vipsthumbnail has to write files, so it writes to a tmpfs (`/dev/shm`).
//!
//! Cases, for the JPEGs and separately the PNGs of the folder, at concurrency 1 and 2
//! (2 = two images, or two sharp pipelines, at once; libvips single-threaded in each):
//! - `one`: `w=300,fm=jpeg,q=80`: Rendition, sharp, vipsthumbnail;
//! - `eager5`: widths 2048/1024/640/320/160 as WebP q75, from one decode (Rendition);
//! - `eager10`: those widths as JPEG q80 and WebP q75: Rendition from one decode, sharp as
//!   10 independent pipelines per image (decode, resize, encode each), as an on-demand
//!   service would render them;
//! - `eager5-jpeg` (Rendition, concurrency 1): the five widths as JPEG only, which with
//!   `eager5` and `eager10` splits the eager set's time into decode/resize, JPEG encoding
//!   and WebP encoding.
//!
//! Rendition runs with the `MALLOC_ARENA_MAX` it was started with (scripts/bench.sh sets
//! 2) and, unless `--no-arena-compare`, once more with the other setting (unset ↔ 2);
//! sharp and vipsthumbnail always run with glibc's default arenas.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use rendition_core::config::{Limits, RenderSettings};
use rendition_core::render::{self, VariantRequest};
use rendition_core::spec::VariantSpec;
use rendition_core::vips;
use serde::{Deserialize, Serialize};

/// The sharp side of the comparison, written to a temporary file when sharp runs.
const SHARP_SCRIPT: &str = include_str!("../../bench/sharp-bench.mjs");

/// The eager widths (the default `xl`…`thumb` presets).
const WIDTHS: [u32; 5] = [2048, 1024, 640, 320, 160];

/// Targets the ratios are held against (Rendition / sharp).
const TARGET_ONE: f64 = 1.2;
const TARGET_EAGER: f64 = 2.5;
const TARGET_RSS: f64 = 0.5;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Jpeg,
    Png,
}

impl Kind {
    fn of(path: &Path) -> Option<Kind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jpg" | "jpeg" => Some(Kind::Jpeg),
            "png" => Some(Kind::Png),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpeg",
            Kind::Png => "png",
        }
    }
    fn parse(s: &str) -> anyhow::Result<Kind> {
        match s {
            "jpeg" => Ok(Kind::Jpeg),
            "png" => Ok(Kind::Png),
            _ => bail!("unknown kind {s:?}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    One,
    Eager5,
    Eager5Jpeg,
    Eager10,
}

impl Set {
    fn as_str(self) -> &'static str {
        match self {
            Set::One => "one",
            Set::Eager5 => "eager5",
            Set::Eager5Jpeg => "eager5-jpeg",
            Set::Eager10 => "eager10",
        }
    }
    fn parse(s: &str) -> anyhow::Result<Set> {
        [Set::One, Set::Eager5, Set::Eager5Jpeg, Set::Eager10]
            .into_iter()
            .find(|set| set.as_str() == s)
            .with_context(|| format!("unknown set {s:?}"))
    }
    fn label(self) -> &'static str {
        match self {
            Set::One => "1 × w300 JPEG",
            Set::Eager5 => "5 × WebP",
            Set::Eager5Jpeg => "5 × JPEG",
            Set::Eager10 => "10 (5 JPEG+5 WebP)",
        }
    }
    /// The variant specs, in Rendition's spec syntax.
    pub fn specs(self) -> Vec<String> {
        let jpeg = |w: u32| format!("w={w},fm=jpeg,q=80");
        let webp = |w: u32| format!("w={w},fm=webp,q=75");
        match self {
            Set::One => vec![jpeg(300)],
            Set::Eager5 => WIDTHS.iter().map(|&w| webp(w)).collect(),
            Set::Eager5Jpeg => WIDTHS.iter().map(|&w| jpeg(w)).collect(),
            Set::Eager10 => WIDTHS.iter().flat_map(|&w| [jpeg(w), webp(w)]).collect(),
        }
    }
    pub fn requests(self) -> anyhow::Result<Vec<VariantRequest>> {
        self.specs()
            .into_iter()
            .map(|text| {
                let spec: VariantSpec = text
                    .parse()
                    .with_context(|| format!("bench spec {text:?}"))?;
                Ok(VariantRequest { name: text, spec })
            })
            .collect()
    }
}

/// The files of one kind in `dir`, sorted by name.
fn list(dir: &Path, kind: Kind) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && Kind::of(p) == Some(kind))
        .collect();
    files.sort();
    Ok(files)
}

fn read_all(files: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("reading {}", f.display())))
        .collect()
}

/// What one measured case (a child process) reports on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaseOutput {
    images: usize,
    outputs_per_image: usize,
    warmup_s: f64,
    times_s: Vec<f64>,
    /// Encoded bytes of one pass (a sanity check that the tools did comparable work).
    out_bytes: u64,
    /// Rendition only: VmHWM of the child, read by itself.
    #[serde(default)]
    vmhwm_kb: Option<u64>,
    /// sharp only.
    #[serde(default)]
    sharp: Option<String>,
    #[serde(default)]
    libvips: Option<String>,
}

// ---------------------------------------------------------------------------------------
// The child: one Rendition case in this process.

/// `--child rendition:KIND:SET:CONCURRENCY`: runs one Rendition case and prints its
/// [`CaseOutput`] as JSON.
pub fn child(dir: &Path, iterations: usize, case: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = case.split(':').collect();
    let [tool, kind, set, concurrency] = parts[..] else {
        bail!("--child wants rendition:KIND:SET:CONCURRENCY, got {case:?}");
    };
    if tool != "rendition" {
        bail!("--child runs only rendition cases, got {tool:?}");
    }
    let kind = Kind::parse(kind)?;
    let set = Set::parse(set)?;
    let concurrency: usize = concurrency.parse().context("concurrency")?;
    let sources = read_all(&list(dir, kind)?)?;
    let requests = set.requests()?;
    let limits = Limits::default();
    let settings = RenderSettings {
        vips_threads: 1,
        ..RenderSettings::default()
    };
    let (warmup_s, _) = rendition_pass(&sources, &requests, &limits, &settings, concurrency)?;
    let mut times_s = Vec::with_capacity(iterations);
    let mut out_bytes = 0;
    for _ in 0..iterations {
        let (secs, bytes) = rendition_pass(&sources, &requests, &limits, &settings, concurrency)?;
        times_s.push(secs);
        out_bytes = bytes;
    }
    let out = CaseOutput {
        images: sources.len(),
        outputs_per_image: requests.len(),
        warmup_s,
        times_s,
        out_bytes,
        vmhwm_kb: vm_hwm_kb(),
        sharp: None,
        libvips: None,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// One pass over all sources: `concurrency` threads take the next image from a shared
/// index and render every variant of it from one decode. Returns (seconds, bytes out).
pub fn rendition_pass(
    sources: &[Vec<u8>],
    requests: &[VariantRequest],
    limits: &Limits,
    settings: &RenderSettings,
    concurrency: usize,
) -> anyhow::Result<(f64, u64)> {
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<(), render::RenderError> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(source) = sources.get(i) else {
                            return Ok(());
                        };
                        let out = render::render(source, requests, limits, settings)?;
                        let n: usize = out.variants.iter().map(|v| v.bytes.len()).sum();
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("bench thread panicked"))
    })?;
    Ok((start.elapsed().as_secs_f64(), bytes.into_inner()))
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
fn vm_hwm_kb() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM:")
}

fn proc_field(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Child processes, measured with wait4.

/// A finished child: its stdout, and `ru_maxrss` (KiB) from `wait4`.
struct Reaped {
    stdout: String,
    maxrss_kb: u64,
    /// User + system CPU time of the process.
    cpu_s: f64,
}

struct Running {
    pid: libc::pid_t,
    what: String,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

fn spawn(cmd: &mut Command, what: &str) -> anyhow::Result<Running> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let pid = libc::pid_t::try_from(child.id()).context("pid")?;
    // The child is reaped by `wait4` below, not by `Child::wait`; dropping `Child` neither
    // waits nor kills.
    drop(child);
    Ok(Running {
        pid,
        what: what.to_string(),
        stdout,
        stderr,
    })
}

fn reap(running: Running) -> anyhow::Result<Reaped> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: plain syscall on our own child's pid with valid out-pointers.
        let rc = unsafe { libc::wait4(running.pid, &mut status, 0, &mut usage) };
        if rc == running.pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).with_context(|| format!("waiting for {}", running.what));
        }
    }
    let stdout = running.stdout.join().unwrap_or_default();
    let stderr = running.stderr.join().unwrap_or_default();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        bail!(
            "{} failed (wait status {status}): {}",
            running.what,
            stderr.trim()
        );
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Reaped {
        stdout,
        maxrss_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        cpu_s: secs(usage.ru_utime) + secs(usage.ru_stime),
    })
}

fn run_measured(cmd: &mut Command, what: &str) -> anyhow::Result<Reaped> {
    reap(spawn(cmd, what)?)
}

// ---------------------------------------------------------------------------------------
// The report.

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub tool: &'static str,
    /// The malloc setting the tool ran with.
    pub env: String,
    pub set: &'static str,
    pub set_label: &'static str,
    pub concurrency: usize,
    pub images: usize,
    pub outputs_per_image: usize,
    pub times_s: Vec<f64>,
    pub median_s: f64,
    pub images_per_s: f64,
    pub outputs_per_s: f64,
    pub peak_rss_mib: f64,
    /// CPU time (user + system) per image over the whole process (warm-up and timed
    /// passes, start-up included): less sensitive than img/s to other load on the machine.
    pub cpu_ms_per_image: f64,
    /// Rendition: the child's own VmHWM, as a cross-check of `peak_rss_mib`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmhwm_mib: Option<f64>,
    pub out_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub what: String,
    pub concurrency: usize,
    pub rendition_env: String,
    pub value: f64,
    /// e.g. "≥ 1.2"
    pub target: Option<String>,
    pub met: Option<bool>,
}

/// Shares of the eager 10-file set's CPU time (Rendition, concurrency 1), from the
/// differences between the 10-file set and the 5-file WebP-only and JPEG-only sets.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    pub webp_encode: f64,
    pub jpeg_encode: f64,
    pub decode_resize_rest: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub kind: Kind,
    pub files: Vec<String>,
    pub bytes: u64,
    pub megapixels: f64,
    pub rows: Vec<Row>,
    pub ratios: Vec<Ratio>,
    pub eager10_split: Option<Split>,
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
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dir: String,
    pub iterations: usize,
    pub rendition_env: String,
    pub machine: Machine,
    pub tools: Tools,
    pub groups: Vec<Group>,
    pub wall_s: f64,
}

fn median(times: &[f64]) -> f64 {
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

#[allow(clippy::too_many_arguments)]
fn row(
    tool: &'static str,
    env: &str,
    set: Set,
    concurrency: usize,
    out: &CaseOutput,
    maxrss_kb: u64,
    cpu_s: f64,
    note: Option<String>,
) -> Row {
    let m = median(&out.times_s);
    let images_processed = (out.times_s.len() + 1) * out.images;
    Row {
        tool,
        env: env.to_string(),
        set: set.as_str(),
        set_label: set.label(),
        concurrency,
        images: out.images,
        outputs_per_image: out.outputs_per_image,
        times_s: out.times_s.clone(),
        median_s: m,
        images_per_s: out.images as f64 / m,
        outputs_per_s: (out.images * out.outputs_per_image) as f64 / m,
        peak_rss_mib: mib(maxrss_kb),
        cpu_ms_per_image: cpu_s * 1e3 / images_processed.max(1) as f64,
        vmhwm_mib: out.vmhwm_kb.map(mib),
        out_bytes: out.out_bytes,
        note,
    }
}

fn arena_label(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("MALLOC_ARENA_MAX={v}"),
        None => "glibc default".to_string(),
    }
}

const GLIBC_DEFAULT: &str = "glibc default";

struct Runner<'a> {
    opts: &'a Options,
    exe: PathBuf,
    sharp: Option<(PathBuf, PathBuf)>, // (sharp dir, script path)
    vipsthumbnail: bool,
    shm: PathBuf,
}

impl Runner<'_> {
    fn rendition(
        &self,
        kind: Kind,
        set: Set,
        concurrency: usize,
        arena: Option<&str>,
    ) -> anyhow::Result<Row> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("bench")
            .arg(&self.opts.dir)
            .arg("--iterations")
            .arg(self.opts.iterations.to_string())
            .arg("--child")
            .arg(format!(
                "rendition:{}:{}:{concurrency}",
                kind.as_str(),
                set.as_str()
            ));
        match arena {
            Some(v) => cmd.env("MALLOC_ARENA_MAX", v),
            None => cmd.env_remove("MALLOC_ARENA_MAX"),
        };
        let reaped = run_measured(&mut cmd, "rendition bench child")?;
        let out: CaseOutput =
            serde_json::from_str(reaped.stdout.trim()).context("rendition child output")?;
        Ok(row(
            "rendition",
            &arena_label(arena),
            set,
            concurrency,
            &out,
            reaped.maxrss_kb,
            reaped.cpu_s,
            None,
        ))
    }

    fn sharp(
        &self,
        files: &[PathBuf],
        set: Set,
        concurrency: usize,
    ) -> anyhow::Result<Option<(Row, CaseOutput)>> {
        let Some((dir, script)) = &self.sharp else {
            return Ok(None);
        };
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .arg(dir)
            .arg(set.as_str())
            .arg(concurrency.to_string())
            .arg(self.opts.iterations.to_string())
            .args(files)
            .env_remove("MALLOC_ARENA_MAX");
        let reaped = run_measured(&mut cmd, "node sharp-bench.mjs")?;
        let out: CaseOutput =
            serde_json::from_str(reaped.stdout.trim()).context("sharp-bench.mjs output")?;
        let note = (set == Set::Eager10).then(|| "10 independent pipelines/image".to_string());
        Ok(Some((
            row(
                "sharp",
                GLIBC_DEFAULT,
                set,
                concurrency,
                &out,
                reaped.maxrss_kb,
                reaped.cpu_s,
                note,
            ),
            out,
        )))
    }

    /// vipsthumbnail over all files: one process at concurrency 1, two processes (each
    /// single-threaded, each on half of the pixels) at concurrency 2. Timed as a whole,
    /// process start-up included; peak RSS is the sum of the processes' peaks.
    fn vipsthumbnail(
        &self,
        files: &[PathBuf],
        pixels: &[u64],
        concurrency: usize,
    ) -> anyhow::Result<Option<Row>> {
        if !self.vipsthumbnail {
            return Ok(None);
        }
        // Longest first onto the least loaded process.
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(pixels[i]));
        let mut bins: Vec<(u64, Vec<&PathBuf>)> = vec![(0, Vec::new()); concurrency.max(1)];
        for i in order {
            let bin = bins.iter_mut().min_by_key(|b| b.0).expect("one bin");
            bin.0 += pixels[i];
            bin.1.push(&files[i]);
        }
        let pattern = format!("{}/%s.jpg[Q=80,strip,optimize_coding]", self.shm.display());
        let pass = || -> anyhow::Result<(f64, u64, u64, f64)> {
            let start = Instant::now();
            let running: Vec<Running> = bins
                .iter()
                .filter(|b| !b.1.is_empty())
                .map(|b| {
                    let mut cmd = Command::new("vipsthumbnail");
                    cmd.args(["-s", "300x", "-o", &pattern])
                        .args(&b.1)
                        .env("VIPS_CONCURRENCY", "1")
                        .env_remove("MALLOC_ARENA_MAX");
                    spawn(&mut cmd, "vipsthumbnail")
                })
                .collect::<anyhow::Result<_>>()?;
            let (mut rss, mut cpu) = (0, 0.0);
            for r in running {
                let reaped = reap(r)?;
                rss += reaped.maxrss_kb;
                cpu += reaped.cpu_s;
            }
            let secs = start.elapsed().as_secs_f64();
            let mut bytes = 0;
            for entry in std::fs::read_dir(&self.shm)? {
                let entry = entry?;
                bytes += entry.metadata()?.len();
                std::fs::remove_file(entry.path())?;
            }
            Ok((secs, rss, bytes, cpu))
        };
        let (warmup_s, mut maxrss, _, mut cpu_s) = pass()?;
        let mut times_s = Vec::new();
        let mut out_bytes = 0;
        for _ in 0..self.opts.iterations {
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
            sharp: None,
            libvips: None,
        };
        let note = if concurrency > 1 {
            format!("{concurrency} processes; whole-process time; files to tmpfs")
        } else {
            "whole-process time; files to tmpfs".to_string()
        };
        Ok(Some(row(
            "vipsthumbnail",
            GLIBC_DEFAULT,
            Set::One,
            concurrency,
            &out,
            maxrss,
            cpu_s,
            Some(note),
        )))
    }
}

fn progress(kind: Kind, r: &Row) {
    eprintln!(
        "bench: {:<4} {:<11} c={} {:<13} {:<20} {:>7.2} img/s  median {:>6.2} s  peak RSS {:>5.0} MiB  CPU {:>5.0} ms/img",
        kind.as_str(),
        r.set,
        r.concurrency,
        r.tool,
        r.env,
        r.images_per_s,
        r.median_s,
        r.peak_rss_mib,
        r.cpu_ms_per_image
    );
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine(before: String) -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        mem_total_mib: proc_field("/proc/meminfo", "MemTotal:").unwrap_or(0) / 1024,
        loadavg_before: before,
        loadavg_after: loadavg(),
    }
}

fn default_sharp_dir() -> PathBuf {
    match std::env::var_os("RENDITION_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c).join("sharp"),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/rendition/sharp"),
    }
}

/// Runs every case and prints the table; writes the JSON report with `--json`.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let load_before = loadavg();
    vips::init(1).context("starting libvips")?;
    let mut skipped = Vec::new();

    let node = if opts.no_sharp {
        skipped.push("sharp: --no-sharp".to_string());
        None
    } else {
        let v = command_output("node", &["--version"]);
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
    let script =
        std::env::temp_dir().join(format!("rendition-sharp-bench-{}.mjs", std::process::id()));
    let sharp = if sharp_version.is_some() {
        std::fs::write(&script, SHARP_SCRIPT)
            .with_context(|| format!("writing {}", script.display()))?;
        Some((sharp_dir.clone(), script.clone()))
    } else {
        None
    };
    let vipsthumbnail_version = if opts.no_vipsthumbnail {
        skipped.push("vipsthumbnail: --no-vipsthumbnail".to_string());
        None
    } else {
        let v = command_output("vipsthumbnail", &["--vips-version"]);
        if v.is_none() {
            skipped.push("vipsthumbnail: not found (apt-get install libvips-tools)".to_string());
        }
        v
    };
    let shm_root = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let shm = shm_root.join(format!("rendition-bench-{}", std::process::id()));
    std::fs::create_dir_all(&shm).with_context(|| format!("creating {}", shm.display()))?;

    let runner = Runner {
        opts,
        exe: std::env::current_exe().context("locating this binary")?,
        sharp,
        vipsthumbnail: vipsthumbnail_version.is_some(),
        shm: shm.clone(),
    };
    let primary = std::env::var("MALLOC_ARENA_MAX").ok();
    let alternate: Option<Option<&str>> = if opts.no_arena_compare {
        None
    } else if primary.is_some() {
        Some(None)
    } else {
        Some(Some("2"))
    };
    let primary_env = arena_label(primary.as_deref());

    let result = (|| -> anyhow::Result<(Vec<Group>, Option<String>)> {
        let mut groups = Vec::new();
        let mut sharp_libvips = None;
        for kind in [Kind::Jpeg, Kind::Png] {
            let files = list(&opts.dir, kind)?;
            if files.is_empty() {
                continue;
            }
            let sources = read_all(&files)?;
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
            let push = |r: Row, rows: &mut Vec<Row>| {
                progress(kind, &r);
                rows.push(r);
            };
            for concurrency in [1, 2] {
                for set in [Set::One, Set::Eager5, Set::Eager10] {
                    push(
                        runner.rendition(kind, set, concurrency, primary.as_deref())?,
                        &mut rows,
                    );
                    if let Some(alt) = alternate {
                        push(runner.rendition(kind, set, concurrency, alt)?, &mut rows);
                    }
                    if set != Set::Eager5 {
                        if let Some((r, out)) = runner.sharp(&files, set, concurrency)? {
                            sharp_libvips = out.libvips.clone();
                            push(r, &mut rows);
                        }
                    }
                    if set == Set::One {
                        if let Some(r) = runner.vipsthumbnail(&files, &pixels, concurrency)? {
                            push(r, &mut rows);
                        }
                    }
                }
            }
            push(
                runner.rendition(kind, Set::Eager5Jpeg, 1, primary.as_deref())?,
                &mut rows,
            );
            let ratios = ratios(&rows);
            let eager10_split = split(&rows, &primary_env);
            groups.push(Group {
                kind,
                files: files
                    .iter()
                    .map(|f| f.file_name().unwrap_or_default().to_string_lossy().into())
                    .collect(),
                bytes,
                megapixels: pixels.iter().sum::<u64>() as f64 / 1e6,
                rows,
                ratios,
                eager10_split,
            });
        }
        Ok((groups, sharp_libvips))
    })();
    let _ = std::fs::remove_dir_all(&shm);
    if runner.sharp.is_some() {
        let _ = std::fs::remove_file(&script);
    }
    let (groups, sharp_libvips) = result?;
    if groups.is_empty() {
        bail!("no .jpg, .jpeg or .png files in {}", opts.dir.display());
    }

    let (major, minor, micro) = vips::version();
    let report = Report {
        dir: opts.dir.display().to_string(),
        iterations: opts.iterations,
        rendition_env: primary_env,
        machine: machine(load_before),
        tools: Tools {
            rendition_libvips: format!("{major}.{minor}.{micro}"),
            vipsthumbnail: vipsthumbnail_version,
            node,
            sharp: sharp_version,
            sharp_libvips,
            skipped,
        },
        groups,
        wall_s: started.elapsed().as_secs_f64(),
    };
    print!("{}", render_table(&report));
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON report: {}", path.display());
    }
    Ok(report)
}

fn find<'r>(
    rows: &'r [Row],
    tool: &str,
    env: Option<&str>,
    set: Set,
    concurrency: usize,
) -> Option<&'r Row> {
    rows.iter().find(|r| {
        r.tool == tool
            && env.is_none_or(|e| r.env == e)
            && r.set == set.as_str()
            && r.concurrency == concurrency
    })
}

fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let mut envs: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.tool == "rendition") {
        if !envs.contains(&r.env.as_str()) {
            envs.push(&r.env);
        }
    }
    let mut out = Vec::new();
    for env in envs {
        for concurrency in [1, 2] {
            let ours = |set| find(rows, "rendition", Some(env), set, concurrency);
            let theirs = |tool, set| find(rows, tool, None, set, concurrency);
            let mut add = |what: &str, value: Option<f64>, target: Option<(bool, f64)>| {
                let Some(value) = value else { return };
                let (target, met) = match target {
                    Some((true, t)) => (Some(format!("≥ {t}")), Some(value >= t)),
                    Some((false, t)) => (Some(format!("≤ {t}")), Some(value <= t)),
                    None => (None, None),
                };
                out.push(Ratio {
                    what: what.to_string(),
                    concurrency,
                    rendition_env: env.to_string(),
                    value,
                    target,
                    met,
                });
            };
            let ips = |a: Option<&Row>, b: Option<&Row>| Some(a?.images_per_s / b?.images_per_s);
            let rss = |a: Option<&Row>, b: Option<&Row>| Some(a?.peak_rss_mib / b?.peak_rss_mib);
            let cpu =
                |a: Option<&Row>, b: Option<&Row>| Some(b?.cpu_ms_per_image / a?.cpu_ms_per_image);
            add(
                "1 variant img/s, rendition / sharp",
                ips(ours(Set::One), theirs("sharp", Set::One)),
                Some((true, TARGET_ONE)),
            );
            add(
                "1 variant img/s, rendition / vipsthumbnail",
                ips(ours(Set::One), theirs("vipsthumbnail", Set::One)),
                None,
            );
            add(
                "eager 10 img/s, rendition / sharp (10 pipelines)",
                ips(ours(Set::Eager10), theirs("sharp", Set::Eager10)),
                Some((true, TARGET_EAGER)),
            );
            add(
                "1 variant img per CPU-second, rendition / sharp",
                cpu(ours(Set::One), theirs("sharp", Set::One)),
                None,
            );
            add(
                "eager 10 img per CPU-second, rendition / sharp",
                cpu(ours(Set::Eager10), theirs("sharp", Set::Eager10)),
                None,
            );
            add(
                "1 variant peak RSS, rendition / sharp",
                rss(ours(Set::One), theirs("sharp", Set::One)),
                Some((false, TARGET_RSS)),
            );
            add(
                "eager 10 peak RSS, rendition / sharp",
                rss(ours(Set::Eager10), theirs("sharp", Set::Eager10)),
                Some((false, TARGET_RSS)),
            );
        }
    }
    out
}

fn split(rows: &[Row], env: &str) -> Option<Split> {
    let t = |set| find(rows, "rendition", Some(env), set, 1).map(|r| r.cpu_ms_per_image);
    let (all, webp_only, jpeg_only) = (t(Set::Eager10)?, t(Set::Eager5)?, t(Set::Eager5Jpeg)?);
    let webp = ((all - jpeg_only) / all).clamp(0.0, 1.0);
    let jpeg = ((all - webp_only) / all).clamp(0.0, 1.0);
    Some(Split {
        webp_encode: webp,
        jpeg_encode: jpeg,
        decode_resize_rest: (1.0 - webp - jpeg).max(0.0),
    })
}

/// The human-readable report (Markdown tables, so it can be pasted into the README).
pub fn render_table(report: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let m = &report.machine;
    let t = &report.tools;
    let _ = writeln!(
        s,
        "\nrendition bench — {} ({} timed passes per case, median; 1 warm-up)",
        report.dir, report.iterations
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
            "\n### {} — {} files, {:.1} MB, {:.0} MP\n",
            g.kind.as_str().to_uppercase(),
            g.files.len(),
            g.bytes as f64 / 1e6,
            g.megapixels
        );
        let _ = writeln!(
            s,
            "| tool | malloc | outputs/image | c | img/s | outputs/s | median s | peak RSS MiB | CPU ms/img | out KB/pass | note |"
        );
        let _ = writeln!(s, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
        let mut rows: Vec<&Row> = g.rows.iter().collect();
        let order = |set: &str| match set {
            "one" => 0,
            "eager5" => 1,
            "eager5-jpeg" => 2,
            _ => 3,
        };
        rows.sort_by_key(|r| (order(r.set), r.concurrency));
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.0} | {:.0} | {:.0} | {} |",
                r.tool,
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
        if !g.ratios.is_empty() {
            let _ = writeln!(
                s,
                "\n| ratio | rendition malloc | c | value | target | met |"
            );
            let _ = writeln!(s, "|---|---|--:|--:|---|---|");
            for r in &g.ratios {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2}× | {} | {} |",
                    r.what,
                    r.rendition_env,
                    r.concurrency,
                    r.value,
                    r.target.as_deref().unwrap_or("-"),
                    match r.met {
                        Some(true) => "yes",
                        Some(false) => "**no**",
                        None => "-",
                    }
                );
            }
        }
        if let Some(sp) = &g.eager10_split {
            let _ = writeln!(
                s,
                "\nRendition eager 10-file set, c=1, where the CPU time goes (differences between the 10-, 5-WebP- and 5-JPEG-file sets): WebP encode {:.0} %, JPEG encode {:.0} %, decode + resize + rest {:.0} %",
                sp.webp_encode * 100.0,
                sp.jpeg_encode * 100.0,
                sp.decode_resize_rest * 100.0
            );
        }
    }
    let _ = writeln!(s, "\nwall time {:.0} s", report.wall_s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bench_spec_parses() {
        for set in [Set::One, Set::Eager5, Set::Eager5Jpeg, Set::Eager10] {
            let reqs = set.requests().expect("valid specs");
            assert_eq!(reqs.len(), set.specs().len());
        }
        assert_eq!(Set::Eager10.specs().len(), 10);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn sets_round_trip_their_names() {
        for set in [Set::One, Set::Eager5, Set::Eager5Jpeg, Set::Eager10] {
            assert_eq!(Set::parse(set.as_str()).unwrap(), set);
        }
    }
}
