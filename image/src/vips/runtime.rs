//! libvips for the whole process: started once, its log lines and warnings routed to
//! `tracing` with the key of the job a thread renders, its version.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use super::errors::{last_error, VipsError};
use super::ffi;

static INIT: OnceLock<Result<(), VipsError>> = OnceLock::new();

/// Starts libvips once per process: untrusted loaders (SVG, PDF, ImageMagick, …) blocked,
/// the operation cache off (a worker never sees the same pixels twice), and `threads`
/// worker threads per image (Rendition parallelises across images instead).
pub fn init(threads: u32) -> Result<(), VipsError> {
    INIT.get_or_init(|| {
        let name = CString::new("rendition").expect("static name");
        // SAFETY: plain C calls with valid arguments; vips_init is idempotent.
        unsafe {
            if ffi::vips_init(name.as_ptr()) != 0 {
                return Err(last_error("init"));
            }
            ffi::vips_block_untrusted_set(1);
            ffi::vips_cache_set_max(0);
            ffi::vips_concurrency_set(threads.max(1) as c_int);
        }
        Ok(())
    })
    .clone()
}

thread_local! {
    /// The job this thread renders, named in libvips' log lines.
    static JOB: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `key` named in the libvips log lines this thread emits (see
/// [`log_to_tracing`]).
pub fn with_job<T>(key: &str, f: impl FnOnce() -> T) -> T {
    JOB.with(|job| *job.borrow_mut() = Some(key.to_string()));
    let out = f();
    JOB.with(|job| *job.borrow_mut() = None);
    out
}

unsafe extern "C" fn log_line(
    domain: *const c_char,
    level: c_int,
    message: *const c_char,
    _user: *mut c_void,
) {
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: GLib passes NUL-terminated strings valid for this call.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let (domain, message) = (text(domain), text(message));
    let key = JOB.with(|job| job.borrow().clone()).unwrap_or_default();
    if level & ffi::G_LOG_LEVEL_WARNING_OR_WORSE != 0 {
        tracing::warn!(domain, key, message, "libvips");
    } else {
        tracing::debug!(domain, key, message, "libvips");
    }
}

/// Warns about the job this thread renders (`message`, a stable text, and the libvips
/// error that led to it), on the way libvips' own warnings go: through `tracing` with the
/// job's key (see [`with_job`]) when a subscriber is installed, else as one line on
/// stderr, which is how a render helper (no subscriber of its own) reaches its parent,
/// who logs the line with the key of the job.
pub fn warn(message: &'static str, cause: &VipsError) {
    if tracing::dispatcher::has_been_set() {
        let key = JOB.with(|job| job.borrow().clone()).unwrap_or_default();
        tracing::warn!(key, error = %cause, "{message}");
    } else {
        let cause = cause.to_string().replace('\n', "; ");
        eprintln!("rendition: {message} ({cause})");
    }
}

/// Sends GLib's (and so libvips') log lines through `tracing`, with the key of the job
/// when the line comes from a thread inside [`with_job`], instead of raw lines on stderr.
/// For in-process rendering; a render helper keeps stderr, which its parent logs.
pub fn log_to_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: installs a handler that only reads its arguments during the call.
    ONCE.call_once(|| unsafe {
        ffi::g_log_set_default_handler(Some(log_line), ptr::null_mut());
    });
}

/// libvips' version as `(major, minor, micro)`.
pub fn version() -> (i32, i32, i32) {
    // SAFETY: plain getters.
    unsafe {
        (
            ffi::vips_version(0),
            ffi::vips_version(1),
            ffi::vips_version(2),
        )
    }
}
