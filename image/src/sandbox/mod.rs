//! The render sandbox: every decode → resize → encode runs in a helper process, not in
//! the address space of the worker, the server or the Lambda handler.
//!
//! A [`Pool`] keeps `render.pool_size` helpers running (the same binary, started with
//! [`HELPER_ARG`]). Each has hard budgets: memory (`RLIMIT_AS`), CPU per render
//! (`RLIMIT_CPU`, set by the parent before each job) and a wall-clock deadline after which
//! the parent kills it; it runs with `no_new_privs` and a seccomp filter ([`policy`]). A
//! helper that crashes or exceeds a budget costs one job — a typed, permanent
//! [`RenderError`] (`decoder_crashed`, `over_memory_budget`, `over_time_budget`) — and is
//! replaced. Helpers are recycled after `render.recycle_after_jobs` renders or when their
//! resident memory is above `render.recycle_above_rss_mb` after one.
//!
//! Whatever a helper writes to stderr (libvips warnings, a crash message) is logged
//! through `tracing` with the helper's pid and the key of the job it is rendering.

pub mod helper;
pub mod policy;
pub mod wire;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::render::{RenderError, RenderOutput, Rendered, VariantRequest};
use crate::settings::{Limits, RenderSettings};
use crate::text::truncate;
use wire::{Job, Reply};

/// The first argument that makes a Rendition binary run as a render helper.
pub const HELPER_ARG: &str = "__render-helper";

/// How long a new helper may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of a helper's stderr kept to explain how it died.
const STDERR_TAIL_LINES: usize = 16;

/// Longest stderr line logged (a hostile file can make a decoder print a lot).
const MAX_LOG_LINE: usize = 2048;

/// How a pool starts its helpers and what each may use.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The program to run (normally this very binary) and the arguments that make it a
    /// helper.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub size: usize,
    pub memory_mb: u64,
    pub cpu_secs: u64,
    pub deadline: Duration,
    pub recycle_after_jobs: u32,
    pub recycle_above_rss_mb: u64,
}

impl PoolConfig {
    /// This binary as the helper, sized and budgeted by `render`.
    pub fn from_settings(render: &RenderSettings) -> Result<PoolConfig, RenderError> {
        let program = std::env::current_exe()
            .map_err(|e| RenderError::Unavailable(format!("cannot find this program: {e}")))?;
        let r = render;
        Ok(PoolConfig {
            program,
            args: vec![HELPER_ARG.into(), r.vips_threads.to_string().into()],
            size: r.pool_size().max(1),
            memory_mb: r.max_memory_mb,
            cpu_secs: r.max_cpu_secs,
            deadline: Duration::from_secs(r.deadline_secs),
            recycle_after_jobs: r.recycle_after_jobs,
            recycle_above_rss_mb: r.recycle_above_rss_mb,
        })
    }
}

/// What a helper's stderr reader shares with the pool.
#[derive(Default)]
struct HelperLog {
    /// Said READY: lines before are the warm-up's (logged at debug only).
    ready: bool,
    /// The key of the job being rendered, for log lines.
    job: Option<String>,
    tail: VecDeque<String>,
}

struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    jobs: u32,
    log: Arc<Mutex<HelperLog>>,
}

/// A pool of render helpers; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: PoolConfig,
    idle: Mutex<Vec<Helper>>,
    slots: Arc<Semaphore>,
}

impl Pool {
    /// Starts `config.size` helpers and waits until each is ready: a helper that cannot
    /// start (missing program, a kernel without seccomp) fails here, not on the first job.
    pub async fn start(config: PoolConfig) -> Result<Pool, RenderError> {
        let mut idle = Vec::with_capacity(config.size);
        for _ in 0..config.size {
            idle.push(spawn(&config).await?);
        }
        info!(
            helpers = config.size,
            memory_mb = config.memory_mb,
            cpu_secs = config.cpu_secs,
            deadline_secs = config.deadline.as_secs(),
            "render sandbox ready"
        );
        Ok(Pool {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.size)),
                idle: Mutex::new(idle),
                config,
            }),
        })
    }

    /// Stops the idle helpers and waits for them, so they are gone — and reaped — when
    /// this returns (an idle helper holds nothing worth a graceful exit). Helpers busy with
    /// a job are killed when their job's future is dropped.
    pub async fn shutdown(&self) {
        self.inner.slots.close();
        let idle: Vec<Helper> = std::mem::take(&mut *self.inner.idle.lock().expect("pool lock"));
        for mut helper in idle {
            let _ = helper.child.start_kill();
            let _ = helper.child.wait().await;
        }
    }

    /// Renders `variants` of `source` in a helper. `key` names the job in logs.
    pub async fn render(
        &self,
        key: &str,
        source: &[u8],
        variants: Vec<VariantRequest>,
        limits: &Limits,
        settings: &RenderSettings,
    ) -> Result<RenderOutput, RenderError> {
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| RenderError::Unavailable("render pool closed".into()))?;
        let taken = self.inner.idle.lock().expect("pool lock").pop();
        let mut helper = match taken {
            Some(h) => h,
            None => spawn(&self.inner.config).await?,
        };
        let config = &self.inner.config;
        let job = Job {
            variants,
            limits: limits.clone(),
            settings: settings.clone(),
        };
        let used = policy::cpu_used_secs(helper.pid).unwrap_or(0);
        if let Err(e) = policy::set_cpu_budget(helper.pid, used, config.cpu_secs) {
            let pid = helper.pid;
            drop(helper); // killed on drop; a fresh one takes its place
            self.replace();
            return Err(RenderError::Unavailable(format!(
                "cannot set the CPU budget of render helper {pid}: {e}"
            )));
        }
        helper.log.lock().expect("helper log").job = Some(key.to_string());
        info!(helper = helper.pid, key, "rendering in sandbox");
        let max_out = limits.max_decoded_bytes.max(256 * 1024 * 1024);
        let exchanged = tokio::time::timeout(
            config.deadline,
            exchange(&mut helper, &job, source, max_out, config.memory_mb),
        )
        .await;
        match exchanged {
            Ok(Ok(result)) => {
                helper.jobs += 1;
                helper.log.lock().expect("helper log").job = None;
                self.release(helper);
                result
            }
            Ok(Err(io)) => {
                let err = self.failed(helper, io).await;
                warn!(key, error = %err, "render helper failed");
                Err(err)
            }
            Err(_elapsed) => {
                let err = RenderError::OverTimeBudget {
                    reason: format!(
                        "took longer than the deadline of {} s",
                        config.deadline.as_secs()
                    ),
                };
                let _ = helper.child.start_kill();
                let _ = helper.child.wait().await;
                warn!(key, helper = helper.pid, error = %err, "render helper killed");
                self.replace();
                Err(err)
            }
        }
    }

    /// Back to the pool, or retired when it has done enough or grown too large.
    fn release(&self, helper: Helper) {
        let config = &self.inner.config;
        let rss = policy::rss_bytes(helper.pid).unwrap_or(0);
        let too_big = rss > config.recycle_above_rss_mb * 1024 * 1024;
        if helper.jobs >= config.recycle_after_jobs || too_big {
            debug!(
                helper = helper.pid,
                jobs = helper.jobs,
                rss_mb = rss / (1024 * 1024),
                "recycling render helper"
            );
            drop(helper); // killed on drop
            self.replace();
        } else {
            self.inner.idle.lock().expect("pool lock").push(helper);
        }
    }

    /// A helper that broke mid-job: why, from how it ended and what it said last.
    async fn failed(&self, mut helper: Helper, io: std::io::Error) -> RenderError {
        // It is dead or dying; give it a moment to exit, then make sure.
        let status = match tokio::time::timeout(Duration::from_secs(2), helper.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = helper.child.start_kill();
                helper.child.wait().await.ok()
            }
        };
        let tail = last_words(&helper.log);
        let err = classify(status, &tail, &self.inner.config, &io.to_string());
        self.replace();
        err
    }

    /// Starts a helper in the background to take a retired one's place.
    fn replace(&self) {
        if self.inner.slots.is_closed() {
            return;
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            match spawn(&inner.config).await {
                Ok(helper) => inner.idle.lock().expect("pool lock").push(helper),
                Err(e) => {
                    warn!(error = %e, "could not start a render helper; will retry on demand")
                }
            }
        });
    }
}

/// The last lines a helper wrote on stderr.
fn last_words(log: &Mutex<HelperLog>) -> Vec<String> {
    log.lock()
        .expect("helper log")
        .tail
        .iter()
        .cloned()
        .collect()
}

/// Sends one job and reads its answer.
async fn exchange(
    helper: &mut Helper,
    job: &Job,
    source: &[u8],
    max_out: u64,
    memory_mb: u64,
) -> std::io::Result<Result<RenderOutput, RenderError>> {
    let json = serde_json::to_vec(job).map_err(std::io::Error::other)?;
    wire::nonblocking::write_frame(&mut helper.stdin, &json).await?;
    wire::nonblocking::write_frame(&mut helper.stdin, source).await?;
    helper.stdin.flush().await?;
    let reply = wire::nonblocking::read_frame(&mut helper.stdout, wire::MAX_JSON_FRAME).await?;
    let reply: Reply = serde_json::from_slice(&reply).map_err(std::io::Error::other)?;
    match reply {
        Reply::Failed(e) => Ok(Err(memory_error(e, memory_mb))),
        Reply::Rendered {
            source,
            placeholder,
            phases,
            variants,
            skipped,
        } => {
            let mut out = Vec::with_capacity(variants.len());
            let mut total = 0u64;
            for v in variants {
                total = total.saturating_add(v.len);
                if total > max_out {
                    return Err(std::io::Error::other("render helper sent too much"));
                }
                let bytes = wire::nonblocking::read_frame(&mut helper.stdout, v.len).await?;
                out.push(Rendered {
                    name: v.name,
                    spec: v.spec,
                    format: v.format,
                    size: v.size,
                    frames: v.frames,
                    bytes,
                });
            }
            Ok(Ok(RenderOutput {
                source,
                placeholder,
                phases,
                variants: out,
                skipped,
            }))
        }
    }
}

/// Messages that mean an allocation failed: libvips' tracked allocator, libjpeg, glib's
/// `g_malloc`, Rust's allocator.
const OUT_OF_MEMORY: [&str; 5] = [
    "out of memory",
    "insufficient memory",
    "failed to allocate",
    "memory allocation of",
    "cannot allocate memory",
];

fn says_out_of_memory(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    OUT_OF_MEMORY.iter().any(|m| text.contains(m))
}

/// A decode or encode error that is really the memory budget at work.
fn memory_error(err: RenderError, limit_mb: u64) -> RenderError {
    match &err {
        RenderError::Decode(v) | RenderError::Header(v) | RenderError::Encode { source: v, .. }
            if says_out_of_memory(&v.message) =>
        {
            RenderError::OverMemoryBudget {
                limit_mb,
                reason: v.message.clone(),
            }
        }
        _ => err,
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV (segmentation fault)",
        libc::SIGBUS => "SIGBUS (bus error)",
        libc::SIGABRT => "SIGABRT (aborted)",
        libc::SIGILL => "SIGILL (illegal instruction)",
        libc::SIGFPE => "SIGFPE (arithmetic fault)",
        libc::SIGKILL => "SIGKILL",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGSYS => "SIGSYS (forbidden system call)",
        _ => "a signal",
    }
}

/// Why a helper died: over its CPU budget (SIGXCPU, or SIGKILL at the hard limit), out
/// of memory (an allocator's last words on stderr), or a crash.
fn classify(
    status: Option<ExitStatus>,
    tail: &[String],
    config: &PoolConfig,
    io: &str,
) -> RenderError {
    let last_words = tail.join("\n");
    let signal = status.and_then(|s| s.signal());
    if signal == Some(libc::SIGXCPU) {
        return RenderError::OverTimeBudget {
            reason: format!("used more than {} s of CPU", config.cpu_secs),
        };
    }
    if says_out_of_memory(&last_words) {
        return RenderError::OverMemoryBudget {
            limit_mb: config.memory_mb,
            reason: truncate(&last_words, 512).into_owned(),
        };
    }
    let how = match (signal, status.and_then(|s| s.code())) {
        (Some(sig), _) => format!(
            "render helper killed by {} (signal {sig})",
            signal_name(sig)
        ),
        (None, Some(code)) => format!("render helper exited with status {code}"),
        (None, None) => format!("lost the render helper: {io}"),
    };
    let reason = if last_words.is_empty() {
        how
    } else {
        format!("{how}; it said: {}", truncate(&last_words, 512))
    };
    RenderError::DecoderCrashed { reason }
}

/// Starts one helper and waits for [`wire::READY`].
async fn spawn(config: &PoolConfig) -> Result<Helper, RenderError> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        RenderError::Unavailable(format!(
            "render helper {}: {what}: {e}",
            config.program.display()
        ))
    };
    let memory = config.memory_mb.saturating_mul(1024 * 1024);
    let mut cmd = Command::new(&config.program);
    cmd.args(&config.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // glibc makes an arena per thread, each reserving 64 MiB of address space: a few
        // threads would use up the RLIMIT_AS budget without touching memory.
        .env("MALLOC_ARENA_MAX", "2")
        .kill_on_drop(true);
    // SAFETY: the closure makes only async-signal-safe calls (setrlimit, prctl).
    unsafe {
        cmd.as_std_mut()
            .pre_exec(move || policy::limit_child(memory));
    }
    let mut child = cmd.spawn().map_err(|e| unavailable("cannot start", &e))?;
    let pid = child.id().unwrap_or(0);
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Arc::new(Mutex::new(HelperLog::default()));
    tokio::spawn(forward_stderr(pid, stderr, Arc::clone(&log)));
    let mut stdout = BufReader::new(stdout);
    let mut ready = [0u8; 8];
    match tokio::time::timeout(START_TIMEOUT, stdout.read_exact(&mut ready)).await {
        Ok(Ok(_)) if &ready == wire::READY => {}
        Ok(Ok(_)) => return Err(unavailable("did not start", &"unexpected greeting")),
        Ok(Err(e)) => {
            let status = child.wait().await.ok();
            let said = last_words(&log);
            return Err(unavailable(
                "did not start",
                &format!("{e} ({status:?}): {}", said.join("; ")),
            ));
        }
        Err(_) => return Err(unavailable("did not start", &"timed out")),
    }
    log.lock().expect("helper log").ready = true;
    debug!(helper = pid, "render helper started");
    Ok(Helper {
        child,
        stdin,
        stdout,
        pid,
        jobs: 0,
        log,
    })
}

/// Logs a helper's stderr line by line (libvips warnings, crash messages) with its pid
/// and current job, and keeps the last lines to explain a death.
async fn forward_stderr(pid: u32, stderr: tokio::process::ChildStderr, log: Arc<Mutex<HelperLog>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // At most MAX_LOG_LINE bytes per read; a longer line arrives in pieces.
        match (&mut reader)
            .take(MAX_LOG_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text.is_empty() {
            continue;
        }
        let (ready, job) = {
            let mut log = log.lock().expect("helper log");
            if log.tail.len() == STDERR_TAIL_LINES {
                log.tail.pop_front();
            }
            log.tail.push_back(text.clone());
            (log.ready, log.job.clone())
        };
        if ready {
            warn!(helper = pid, key = job.as_deref().unwrap_or(""), message = %text, "render helper said");
        } else {
            debug!(helper = pid, message = %text, "render helper (starting) said");
        }
    }
}
