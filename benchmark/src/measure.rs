//! Child processes measured with `wait4` (peak RSS and CPU time, theirs and their reaped
//! children's), and readings from `/proc`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

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

pub fn spawn(cmd: &mut Command, what: &str) -> anyhow::Result<Running> {
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

pub fn reap(running: Running) -> anyhow::Result<Reaped> {
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
    Ok(Reaped {
        stdout,
        maxrss_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
    })
}

pub fn run_measured(cmd: &mut Command, what: &str) -> anyhow::Result<Reaped> {
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
