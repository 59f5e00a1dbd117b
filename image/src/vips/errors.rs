//! [`VipsError`], libvips' own error text for a failed call, and how it is read.

use std::borrow::Cow;
use std::ffi::CStr;

use super::ffi;

/// A libvips call failed; `message` is libvips' own error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("libvips {op}: {message}")]
pub struct VipsError {
    pub op: Cow<'static, str>,
    pub message: String,
}

impl VipsError {
    pub fn new(op: &'static str, message: impl Into<String>) -> VipsError {
        VipsError {
            op: Cow::Borrowed(op),
            message: message.into(),
        }
    }

    /// No colour transform could be made from the source's embedded ICC profile: lcms
    /// could not link it (its errors reach libvips' buffer as `VipsIcc: …`, e.g. a profile
    /// whose header is sound and whose curves are garbage) or libvips' ICC operations
    /// found no usable profile. The pixels may be fine; their profile is not. (A profile
    /// libvips cannot parse at all is dropped by libvips itself with a warning.)
    pub fn is_broken_profile(&self) -> bool {
        ["VipsIcc", "icc_import", "icc_export", "icc_transform"]
            .iter()
            .any(|name| self.message.contains(name))
    }

    /// The loader decoded an image of another size than it announced. libvips 8.14's
    /// HEIF loader says so ("bad image dimensions on decode") when shrink-on-load picked
    /// the file's embedded thumbnail and that thumbnail's declared size (`ispe`) is not
    /// the size it decodes to; the primary image is not involved.
    pub fn is_bad_dimensions(&self) -> bool {
        self.message.contains("bad image dimensions")
    }
}

/// libvips' error text, then cleared: libvips keeps one buffer per process and appends
/// to it, so without clearing a failure would carry the messages of earlier ones. In a
/// render helper (one render at a time) the text is this job's alone; in-process renders
/// running at once may still see each other's lines.
pub(super) fn last_error(op: &'static str) -> VipsError {
    // SAFETY: vips_error_buffer_copy returns a g_malloc'd NUL-terminated copy (or NULL);
    // vips_error_clear empties the buffer.
    let message = unsafe {
        let raw = ffi::vips_error_buffer_copy();
        ffi::vips_error_clear();
        if raw.is_null() {
            String::new()
        } else {
            let text = CStr::from_ptr(raw).to_string_lossy().trim().to_string();
            ffi::g_free(raw.cast());
            text
        }
    };
    VipsError {
        op: Cow::Borrowed(op),
        message: if message.is_empty() {
            "unknown error".into()
        } else {
            message
        },
    }
}
