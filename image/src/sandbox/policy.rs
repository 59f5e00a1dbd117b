//! What a render helper may do once it is confined, and the resource limits it starts
//! with.
//!
//! ## How the syscall policy was derived
//! A render reads bytes that are already in memory, runs libvips' decoders and encoders
//! on a few threads, and writes bytes to a pipe. Everything it needs from the kernel is
//! memory (`mmap`, `brk`, `madvise`), threads (`clone` with `CLONE_THREAD`, `futex`),
//! `read`/`write` on the descriptors it already has, clocks and signals. Everything an
//! exploited decoder would want next is something else: a file (credentials in
//! `/proc/self/environ`, `~/.aws`), a socket, a new process, another process' memory, or
//! a raised limit. The filter is a deny-list of those, so that libvips' own needs — which
//! vary with codec and version — never trip it; every module and plugin is loaded before
//! the filter is applied ([`super::helper`] warms each codec up first).
//!
//! Denied with `EPERM` (a libvips call that tries gets an error, the job fails typed):
//! - files: `open`, `openat`, `openat2`, `creat`, `open_by_handle_at`, `name_to_handle_at`,
//!   and every call that changes the file tree (`link*`, `symlink*`, `unlink*`, `rename*`,
//!   `mkdir*`, `rmdir`, `mknod*`, `chmod`/`fchmodat`, `chown`/`fchownat`, `truncate`);
//! - network: `socket`, `socketpair`, `connect`, `bind`, `listen`, `accept`, `accept4`;
//! - processes: `fork`, `vfork`, `execve`, `execveat`, `clone` without `CLONE_THREAD`,
//!   `kill` (other processes), `ptrace`, `process_vm_readv`/`writev`, `pidfd_open`,
//!   `pidfd_getfd`, `pidfd_send_signal`;
//! - privileges and the kernel: `setrlimit`, `prlimit64` that sets a limit (reading one
//!   is allowed), `mount`, `umount2`, `chroot`, `pivot_root`, `unshare`, `setns`, `bpf`,
//!   `perf_event_open`, `userfaultfd`, `keyctl`, `add_key`, `request_key`, `io_uring_*`,
//!   module loading, `reboot`, `swapon`/`swapoff`, `sethostname`, `setdomainname`.
//!
//! `clone3` answers `ENOSYS`: its flags live in memory a filter cannot read, and glibc
//! then creates threads with `clone`, whose flags the filter checks.
//!
//! Before the filter: `no_new_privs` (required for an unprivileged filter, and no setuid
//! binary could raise privileges anyway). At spawn (before `exec`): `RLIMIT_AS` (memory
//! budget), `RLIMIT_CORE` = 0 (no multi-GB core files of a crashed decoder) and
//! `PR_SET_PDEATHSIG` = `SIGKILL` (a helper never outlives its parent). The CPU budget
//! (`RLIMIT_CPU`, its soft limit) is moved by the parent before each job with `prlimit`,
//! which the helper itself can no longer do.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

/// Syscalls a confined helper may not make at all.
fn denied() -> Vec<i64> {
    use libc::*;
    let mut calls = vec![
        SYS_openat,
        SYS_openat2,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_linkat,
        SYS_symlinkat,
        SYS_unlinkat,
        SYS_renameat,
        SYS_renameat2,
        SYS_mkdirat,
        SYS_mknodat,
        SYS_fchmodat,
        SYS_fchownat,
        SYS_truncate,
        SYS_socket,
        SYS_socketpair,
        SYS_connect,
        SYS_bind,
        SYS_listen,
        SYS_accept,
        SYS_accept4,
        SYS_execve,
        SYS_execveat,
        SYS_kill,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_pidfd_open,
        SYS_pidfd_getfd,
        SYS_pidfd_send_signal,
        SYS_setrlimit,
        SYS_mount,
        SYS_umount2,
        SYS_chroot,
        SYS_pivot_root,
        SYS_unshare,
        SYS_setns,
        SYS_bpf,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_reboot,
        SYS_swapon,
        SYS_swapoff,
        SYS_sethostname,
        SYS_setdomainname,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        SYS_open,
        SYS_creat,
        SYS_link,
        SYS_symlink,
        SYS_unlink,
        SYS_rename,
        SYS_mkdir,
        SYS_rmdir,
        SYS_mknod,
        SYS_chmod,
        SYS_chown,
        SYS_lchown,
        SYS_fork,
        SYS_vfork,
    ]);
    calls
}

fn arch() -> io::Result<TargetArch> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|e| io::Error::other(format!("seccomp: unsupported architecture: {e:?}")))
}

fn seccomp_err(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("seccomp: {e:?}"))
}

/// The deny-list filter (match → `EPERM`, everything else allowed).
fn deny_filter() -> io::Result<seccompiler::BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied()
        .into_iter()
        .map(|call| (call, Vec::new()))
        .collect();
    // clone without CLONE_THREAD makes a process; with it, a thread (allowed).
    let not_a_thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .map_err(seccomp_err)?;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![not_a_thread]).map_err(seccomp_err)?],
    );
    // prlimit64(pid, resource, new_limit, old_limit): reading (new_limit = NULL) is fine.
    let sets_a_limit = SeccompCondition::new(2, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0)
        .map_err(seccomp_err)?;
    rules.insert(
        libc::SYS_prlimit64,
        vec![SeccompRule::new(vec![sets_a_limit]).map_err(seccomp_err)?],
    );
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(seccomp_err)?
    .try_into()
    .map_err(seccomp_err)
}

/// `clone3` → `ENOSYS`, so glibc falls back to `clone`.
fn clone3_filter() -> io::Result<seccompiler::BpfProgram> {
    SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(seccomp_err)?
    .try_into()
    .map_err(seccomp_err)
}

/// Confines the calling process, every thread of it (libvips' pool already exists):
/// `no_new_privs`, then the filters above.
pub fn confine() -> io::Result<()> {
    // SAFETY: plain prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let deny = deny_filter()?;
    let clone3 = clone3_filter()?;
    seccompiler::apply_filter_all_threads(&deny).map_err(seccomp_err)?;
    seccompiler::apply_filter_all_threads(&clone3).map_err(seccomp_err)?;
    Ok(())
}

/// Limits for a helper between `fork` and `exec` (async-signal-safe: plain syscalls).
pub fn limit_child(memory_bytes: u64) -> io::Result<()> {
    let set = |resource, value: u64| {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, memory_bytes)?;
    set(libc::RLIMIT_CORE, 0)?;
    // SAFETY: plain prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives `pid` `budget_secs` more seconds of CPU from now: its soft limit (SIGXCPU, whose
/// default action ends the process) moves to `used + budget`. Only the soft limit moves:
/// raising a hard limit again for the next job would need `CAP_SYS_RESOURCE`. A helper
/// that ignored SIGXCPU would still meet the wall-clock deadline.
pub fn set_cpu_budget(pid: u32, used_secs: u64, budget_secs: u64) -> io::Result<()> {
    let pid = pid as libc::pid_t;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit on a child we spawned, reading its limit into a valid struct.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_CPU, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let lim = libc::rlimit {
        rlim_cur: used_secs.saturating_add(budget_secs).min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit on a child we spawned, with a valid struct and no old-limit output.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_CPU, &lim, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CPU seconds `pid` has used so far (user + system, rounded up), from `/proc`.
pub fn cpu_used_secs(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unexpected /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ") ".
    let ticks = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("unexpected /proc/PID/stat"))
    };
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf is always safe to call.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    Ok(total.div_ceil(hz))
}

/// Resident memory of `pid` in bytes, from `/proc` (`VmRSS`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}
