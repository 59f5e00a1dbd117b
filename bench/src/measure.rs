//! Child processes measured with `wait4` (peak RSS and CPU time, theirs and their reaped
//! children's), the malloc they run with, and readings from `/proc` (including a sampler
//! of a process tree's RSS).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::BenchError;

/// The production images' jemalloc settings (`infra/aws/Dockerfile`, `ENV MALLOC_CONF`;
/// a test checks they agree): 2 arenas that return dirty pages within a second.
pub const JEMALLOC_CONF: &str =
    "narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

/// The malloc a Rendition case runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Allocator {
    /// Debian's libjemalloc2 preloaded with [`JEMALLOC_CONF`], as the images ship it
    /// (with MALLOC_ARENA_MAX=2 too, their fallback).
    Jemalloc,
    /// glibc's malloc with MALLOC_ARENA_MAX=2 (what the sandbox pool gives its helpers).
    Glibc,
}

impl Allocator {
    pub fn parse(s: &str) -> Result<Allocator, BenchError> {
        match s {
            "jemalloc" => Ok(Allocator::Jemalloc),
            "glibc" => Ok(Allocator::Glibc),
            _ => Err(BenchError::UnknownAllocator(s.to_string())),
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Allocator::Jemalloc => "jemalloc",
            Allocator::Glibc => "glibc MALLOC_ARENA_MAX=2",
        }
    }
    /// Sets this allocator in `cmd`'s environment (`jemalloc`: the preloaded library).
    pub fn apply(self, cmd: &mut Command, jemalloc: Option<&PathBuf>) -> Result<(), BenchError> {
        cmd.env("MALLOC_ARENA_MAX", "2");
        match self {
            Allocator::Jemalloc => {
                let lib = jemalloc.ok_or(BenchError::NoJemalloc)?;
                cmd.env("LD_PRELOAD", lib).env("MALLOC_CONF", JEMALLOC_CONF);
            }
            Allocator::Glibc => {
                cmd.env_remove("LD_PRELOAD").env_remove("MALLOC_CONF");
            }
        }
        Ok(())
    }
}

/// Debian's libjemalloc2 (`/usr/lib/<triplet>/libjemalloc.so.2`), if installed.
pub fn find_jemalloc() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("libjemalloc.so.2"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Whether jemalloc is mapped into this process (its LD_PRELOAD took effect).
pub fn jemalloc_mapped() -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|m| m.contains("libjemalloc"))
}

/// Sets glibc's default malloc for a tool that is not Rendition (sharp, vipsthumbnail).
pub fn glibc_default(cmd: &mut Command) {
    cmd.env_remove("MALLOC_ARENA_MAX")
        .env_remove("LD_PRELOAD")
        .env_remove("MALLOC_CONF");
}

/// A finished child: its stdout, and what `wait4` said about it.
pub struct Reaped {
    pub stdout: String,
    /// `ru_maxrss` (KiB): the larger of the child's peak and its reaped children's.
    pub maxrss_kb: u64,
    /// User + system CPU time of the process and its reaped children.
    pub cpu_s: f64,
}

pub struct Running {
    pid: libc::pid_t,
    what: String,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

pub fn spawn(cmd: &mut Command, what: &str) -> Result<Running, BenchError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BenchError::Start {
            what: what.to_string(),
            source,
        })?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let pid = libc::pid_t::try_from(child.id()).map_err(BenchError::Pid)?;
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

pub fn reap(running: Running) -> Result<Reaped, BenchError> {
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
            return Err(BenchError::Wait {
                what: running.what,
                source: err,
            });
        }
    }
    let stdout = running.stdout.join().unwrap_or_default();
    let stderr = running.stderr.join().unwrap_or_default();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        return Err(BenchError::Failed {
            what: running.what,
            status,
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(Reaped {
        stdout,
        maxrss_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
    })
}

pub fn run_measured(cmd: &mut Command, what: &str) -> Result<Reaped, BenchError> {
    reap(spawn(cmd, what)?)
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Reaps every child of this process that has ended or ends within a few seconds (render
/// helpers that were killed but not yet waited for), so that their usage counts in
/// [`children_maxrss_kb`] and in our parent's `wait4`.
pub fn reap_all_children() {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid on any child of ours, without blocking.
        let rc = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match rc {
            pid if pid > 0 => continue,
            0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            // ECHILD (none left), a child that will not end, or another error.
            _ => return,
        }
    }
}

/// The largest peak RSS of this process' reaped children, in KiB.
pub fn children_maxrss_kb() -> u64 {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall with a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0;
    }
    u64::try_from(usage.ru_maxrss).unwrap_or(0)
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub fn vm_hwm_kb() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM:")
}

pub fn proc_field(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// How often [`TreeRss`] samples.
pub const TREE_SAMPLE_MS: u64 = 10;

/// A thread sampling, every [`TREE_SAMPLE_MS`] ms, this process' RSS plus the anonymous RSS
/// of its child processes (the render helpers), and keeping the largest sum. The helpers
/// are this binary and link the same libraries, so their file-backed pages are counted
/// once, in this process' RSS. `wait4` reports only the largest single process' peak; this
/// is what the tree holds at once (a sample can miss a peak between two samples, which is
/// why the report never goes below `wait4`'s figure).
pub struct TreeRss {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl TreeRss {
    pub fn start() -> TreeRss {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(tree_rss_kb());
                std::thread::sleep(Duration::from_millis(TREE_SAMPLE_MS));
            }
            peak.max(tree_rss_kb())
        });
        TreeRss { stop, thread }
    }
    /// The largest sum seen, in KiB.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// (resident, resident file-backed and shared) of a process, in KiB, from `statm`.
fn statm_kb(pid: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let mut fields = text.split_whitespace().skip(1);
    let resident: u64 = fields.next()?.parse().ok()?;
    let shared: u64 = fields.next()?.parse().ok()?;
    Some((resident * page_kb(), shared * page_kb()))
}

fn page_kb() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).unwrap_or(4096) / 1024
}

/// This process' RSS plus its children's anonymous RSS, in KiB.
fn tree_rss_kb() -> u64 {
    let own = statm_kb("self").map_or(0, |(rss, _)| rss);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return own;
    };
    let mut children = Vec::new();
    for task in tasks.filter_map(|t| t.ok()) {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(list.split_whitespace().map(str::to_string));
        }
    }
    children.sort();
    children.dedup();
    own + children
        .iter()
        .filter_map(|pid| statm_kb(pid))
        .map(|(rss, shared)| rss.saturating_sub(shared))
        .sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench preloads jemalloc with the settings the images ship.
    #[test]
    fn jemalloc_conf_is_the_images() {
        let dockerfile =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/aws/Dockerfile");
        let text = std::fs::read_to_string(dockerfile).expect("infra/aws/Dockerfile");
        assert!(
            text.contains(&format!("MALLOC_CONF={JEMALLOC_CONF} ")),
            "infra/aws/Dockerfile's MALLOC_CONF is not {JEMALLOC_CONF}"
        );
    }

    /// The sampler sees this process' own memory grow.
    #[test]
    fn the_tree_sampler_sees_an_allocation() {
        let sampler = TreeRss::start();
        let before = tree_rss_kb();
        let block = vec![1u8; 64 << 20];
        std::thread::sleep(Duration::from_millis(5 * TREE_SAMPLE_MS));
        let peak = sampler.stop();
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        assert!(
            peak >= before + (60 << 10),
            "peak {peak} KiB, before {before} KiB"
        );
    }
}
