//! A small, safe layer over the libvips calls in [`ffi`].
//!
//! Why our own FFI and not a bindings crate: Debian 12 ships libvips 8.14. The `libvips`
//! crate 2.x passes options that only 8.18 knows to every `*_with_opts` call, so they fail
//! at run time on 8.14; `rs-vips` 0.7 works but segfaults when asked for an operation 8.14
//! lacks. Declaring the dozen functions we use makes a missing one a link error, needs no
//! bindgen or libclang at build time, and lets us pass exactly the options 8.14 documents.
//!
//! Images borrow the buffer they were loaded from (libvips decodes lazily), which the
//! lifetime on [`Image`] enforces; [`Image::materialize`] decodes into memory and ends the
//! borrow.

pub mod ffi;
pub mod rows;

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

pub use rows::RowSource;

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
fn last_error(op: &'static str) -> VipsError {
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

/// An owned reference to a libvips image that may borrow a source buffer for `'a`.
pub struct Image<'a> {
    raw: *mut ffi::VipsImage,
    _buf: PhantomData<&'a [u8]>,
}

// SAFETY: VipsImage is a reference-counted GObject; libvips allows using an image from
// any thread as long as each reference is used by one thread at a time, which `&mut`/move
// semantics on `Image` guarantee.
unsafe impl Send for Image<'_> {}

impl Drop for Image<'_> {
    fn drop(&mut self) {
        // SAFETY: we own one reference.
        unsafe { ffi::g_object_unref(self.raw.cast()) }
    }
}

type OutFn<'a> = dyn FnOnce(*mut *mut ffi::VipsImage) -> c_int + 'a;

fn wrap<'a>(op: &'static str, call: Box<OutFn<'_>>) -> Result<Image<'a>, VipsError> {
    let mut out: *mut ffi::VipsImage = ptr::null_mut();
    let rc = call(&mut out);
    if rc != 0 || out.is_null() {
        if !out.is_null() {
            // SAFETY: a failed call may still have set out; drop that reference.
            unsafe { ffi::g_object_unref(out.cast()) };
        }
        return Err(last_error(op));
    }
    Ok(Image {
        raw: out,
        _buf: PhantomData,
    })
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("option strings have no NUL")
}

/// A background colour as a libvips array (freed on drop).
struct DoubleArray(*mut ffi::VipsArrayDouble);

impl DoubleArray {
    fn new(values: &[f64]) -> DoubleArray {
        // SAFETY: libvips copies the values.
        DoubleArray(unsafe { ffi::vips_array_double_new(values.as_ptr(), values.len() as c_int) })
    }
}

impl Drop for DoubleArray {
    fn drop(&mut self) {
        // SAFETY: we own the one reference vips_array_double_new returned.
        unsafe { ffi::vips_area_unref(self.0.cast()) }
    }
}

/// What a source's header says, read without decoding pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub bands: u32,
    /// Bytes per sample of one band (1 for 8-bit, 2 for 16-bit, 4 for float, …).
    pub sample_bytes: u32,
    /// Frames (pages) as the loader counted them: the raw `n-pages` field, since
    /// `vips_image_get_n_pages` answers 1 for 10,000 pages or more.
    pub pages: u32,
    /// EXIF orientation 1–8 (1 when absent or out of range).
    pub orientation: u8,
    pub has_icc: bool,
    pub is_cmyk: bool,
    pub has_alpha: bool,
}

const SEQ_LOAD: &str = "fail_on=error";

impl<'a> Image<'a> {
    /// Opens `buf` lazily (header only) with the loader libvips picks; untrusted loaders
    /// are blocked by [`init`]. Truncated or corrupt pixel data fails later, when read.
    pub fn open(buf: &'a [u8]) -> Result<Image<'a>, VipsError> {
        Image::open_pages(buf, false)
    }

    /// [`Image::open`], and with `all_pages` (GIF and WebP only: other loaders refuse `n`)
    /// every frame in one tall strip whose `page-height` says where frames start. Nothing
    /// is shrunk on load: the pixels are the source's own, decoded as they are read.
    pub fn open_pages(buf: &'a [u8], all_pages: bool) -> Result<Image<'a>, VipsError> {
        let options = if all_pages {
            format!("{SEQ_LOAD},n=-1")
        } else {
            SEQ_LOAD.to_string()
        };
        Image::open_with(buf, &options)
    }

    /// A JPEG opened lazily at 1/`shrink` of its size (1, 2, 4 or 8): libjpeg's scaled
    /// IDCT, which at 8 uses only each block's DC coefficient.
    pub fn open_shrunk(buf: &'a [u8], shrink: u32) -> Result<Image<'a>, VipsError> {
        Image::open_with(buf, &format!("{SEQ_LOAD},shrink={shrink}"))
    }

    fn open_with(buf: &'a [u8], options: &str) -> Result<Image<'a>, VipsError> {
        let options = cstr(options);
        let access = cstr("access");
        wrap(
            "load",
            Box::new(|out| {
                // SAFETY: buf outlives the image ('a); option list is NULL-terminated.
                let img = unsafe {
                    ffi::vips_image_new_from_buffer(
                        buf.as_ptr().cast(),
                        buf.len(),
                        options.as_ptr(),
                        access.as_ptr(),
                        ffi::VIPS_ACCESS_SEQUENTIAL,
                        ptr::null::<c_char>(),
                    )
                };
                // SAFETY: out is a valid pointer to write to.
                unsafe { *out = img };
                if img.is_null() {
                    -1
                } else {
                    0
                }
            }),
        )
    }

    pub fn width(&self) -> u32 {
        // SAFETY: valid image.
        unsafe { ffi::vips_image_get_width(self.raw) as u32 }
    }
    pub fn height(&self) -> u32 {
        // SAFETY: valid image.
        unsafe { ffi::vips_image_get_height(self.raw) as u32 }
    }
    pub fn bands(&self) -> u32 {
        // SAFETY: valid image.
        unsafe { ffi::vips_image_get_bands(self.raw) as u32 }
    }
    pub fn has_alpha(&self) -> bool {
        // SAFETY: valid image.
        unsafe { ffi::vips_image_hasalpha(self.raw) != 0 }
    }
    /// Height of one page (frame) of a multi-page strip; the whole height otherwise.
    pub fn page_height(&self) -> u32 {
        // SAFETY: valid image; libvips checks that the height is a multiple of it.
        unsafe { ffi::vips_image_get_page_height(self.raw) as u32 }
    }
    /// Pages (frames) stacked in this image: more than one for an animation strip.
    pub fn pages_loaded(&self) -> u32 {
        (self.height() / self.page_height().max(1)).max(1)
    }
    /// Bytes per sample of one band, from the band format.
    pub fn sample_bytes(&self) -> u32 {
        // SAFETY: valid image.
        match unsafe { ffi::vips_image_get_format(self.raw) } {
            0 | 1 => 1, // uchar, char
            2 | 3 => 2, // ushort, short
            4..=6 => 4, // uint, int, float
            7 | 8 => 8, // complex, double
            _ => 16,    // dpcomplex
        }
    }

    /// Whether each sample is an 8-bit unsigned value.
    pub fn is_uchar(&self) -> bool {
        // SAFETY: valid image.
        unsafe { ffi::vips_image_get_format(self.raw) == ffi::VIPS_FORMAT_UCHAR }
    }
    fn has_field(&self, name: &str) -> bool {
        let name = cstr(name);
        // SAFETY: valid image and NUL-terminated name.
        unsafe { ffi::vips_image_get_typeof(self.raw, name.as_ptr()) != 0 }
    }
    fn int_field(&self, name: &str) -> Option<i32> {
        if !self.has_field(name) {
            return None;
        }
        let name = cstr(name);
        let mut value: c_int = 0;
        // SAFETY: valid image, name and out pointer.
        let rc = unsafe { ffi::vips_image_get_int(self.raw, name.as_ptr(), &mut value) };
        (rc == 0).then_some(value)
    }

    pub fn header(&self) -> Header {
        let orientation = match self.int_field("orientation") {
            Some(o @ 1..=8) => o as u8,
            _ => 1,
        };
        Header {
            width: self.width(),
            height: self.height(),
            bands: self.bands(),
            sample_bytes: self.sample_bytes(),
            pages: match self.int_field("n-pages") {
                Some(n) if n > 1 => n as u32,
                Some(_) | None => 1,
            },
            orientation,
            has_icc: self.has_field("icc-profile-data"),
            // SAFETY: valid image.
            is_cmyk: unsafe { ffi::vips_image_get_interpretation(self.raw) }
                == ffi::VIPS_INTERPRETATION_CMYK,
            has_alpha: self.has_alpha(),
        }
    }

    /// Decodes with shrink-on-load straight to `width`×`height` (aspect ignored, so the
    /// caller's geometry decides), auto-rotated by EXIF orientation, converted to sRGB when
    /// `to_srgb` (embedded ICC profile or CMYK), alpha premultiplied while resampling.
    ///
    /// With `all_pages` (GIF and WebP only: other loaders refuse `n`) every frame is
    /// loaded into one tall strip; `width`×`height` is then the size of each frame and the
    /// result's `page-height` metadata says where frames start.
    pub fn thumbnail_buffer(
        buf: &'a [u8],
        width: u32,
        height: u32,
        to_srgb: bool,
        all_pages: bool,
    ) -> Result<Image<'a>, VipsError> {
        let k_height = cstr("height");
        let k_size = cstr("size");
        let k_opts = cstr("option_string");
        let v_opts = if all_pages {
            cstr(&format!("{SEQ_LOAD},n=-1"))
        } else {
            cstr(SEQ_LOAD)
        };
        let k_export = cstr("export_profile");
        let v_srgb = cstr("srgb");
        wrap(
            "thumbnail",
            Box::new(|out| {
                // SAFETY: libvips reads buf lazily; the returned image borrows it for 'a.
                // The option list is NULL-terminated and typed per libvips' docs.
                unsafe {
                    if to_srgb {
                        ffi::vips_thumbnail_buffer(
                            buf.as_ptr() as *mut c_void,
                            buf.len(),
                            out,
                            width as c_int,
                            k_height.as_ptr(),
                            height as c_int,
                            k_size.as_ptr(),
                            ffi::VIPS_SIZE_FORCE,
                            k_opts.as_ptr(),
                            v_opts.as_ptr(),
                            k_export.as_ptr(),
                            v_srgb.as_ptr(),
                            ptr::null::<c_char>(),
                        )
                    } else {
                        ffi::vips_thumbnail_buffer(
                            buf.as_ptr() as *mut c_void,
                            buf.len(),
                            out,
                            width as c_int,
                            k_height.as_ptr(),
                            height as c_int,
                            k_size.as_ptr(),
                            ffi::VIPS_SIZE_FORCE,
                            k_opts.as_ptr(),
                            v_opts.as_ptr(),
                            ptr::null::<c_char>(),
                        )
                    }
                }
            }),
        )
    }

    /// What [`Image::thumbnail_buffer`] makes, from an image already opened (see
    /// [`Image::open_pages`]) and so without shrink-on-load: resampled to exactly
    /// `width`×`height` per frame, auto-rotated by EXIF orientation, converted to sRGB
    /// with the embedded profile when `to_srgb` (libvips' generic CMYK profile for a CMYK
    /// image without one), alpha premultiplied while resampling.
    pub fn thumbnail(
        &self,
        width: u32,
        height: u32,
        to_srgb: bool,
    ) -> Result<Image<'a>, VipsError> {
        self.thumbnail_image(width, height, to_srgb, true)
    }

    /// libvips' `thumbnail_image` to exactly `width`×`height`, exporting sRGB when
    /// `to_srgb`, auto-rotating by EXIF orientation when `rotate`.
    fn thumbnail_image(
        &self,
        width: u32,
        height: u32,
        to_srgb: bool,
        rotate: bool,
    ) -> Result<Image<'a>, VipsError> {
        let k_height = cstr("height");
        let k_size = cstr("size");
        let k_norot = cstr("no_rotate");
        let k_export = cstr("export_profile");
        let v_srgb = cstr("srgb");
        let no_rotate = c_int::from(!rotate);
        wrap(
            "thumbnail",
            Box::new(|out| {
                // SAFETY: valid image; NULL-terminated typed option list.
                unsafe {
                    if to_srgb {
                        ffi::vips_thumbnail_image(
                            self.raw,
                            out,
                            width as c_int,
                            k_height.as_ptr(),
                            height as c_int,
                            k_size.as_ptr(),
                            ffi::VIPS_SIZE_FORCE,
                            k_norot.as_ptr(),
                            no_rotate,
                            k_export.as_ptr(),
                            v_srgb.as_ptr(),
                            ptr::null::<c_char>(),
                        )
                    } else {
                        ffi::vips_thumbnail_image(
                            self.raw,
                            out,
                            width as c_int,
                            k_height.as_ptr(),
                            height as c_int,
                            k_size.as_ptr(),
                            ffi::VIPS_SIZE_FORCE,
                            k_norot.as_ptr(),
                            no_rotate,
                            ptr::null::<c_char>(),
                        )
                    }
                }
            }),
        )
    }

    /// A new reference to the same pixels without their embedded ICC profile, so that
    /// colour management takes them as sRGB (grey, or libvips' generic CMYK).
    pub fn without_profile(&self) -> Result<Image<'a>, VipsError> {
        let copy = self.copy()?;
        let name = cstr("icc-profile-data");
        // SAFETY: `copy` is a new image only we reference; removing an absent field is
        // a no-op.
        unsafe { ffi::vips_image_remove(copy.raw, name.as_ptr()) };
        Ok(copy)
    }

    /// Resamples an already decoded, oriented sRGB image to exactly `width`×`height`.
    pub fn resize_to(&self, width: u32, height: u32) -> Result<Image<'a>, VipsError> {
        self.thumbnail_image(width, height, false, false)
    }

    /// Runs the pipeline so far into memory; the result no longer borrows the source.
    pub fn materialize(&self) -> Result<Image<'static>, VipsError> {
        // SAFETY: valid image; returns a new reference or NULL.
        let raw = unsafe { ffi::vips_image_copy_memory(self.raw) };
        if raw.is_null() {
            return Err(last_error("decode"));
        }
        Ok(Image {
            raw,
            _buf: PhantomData,
        })
    }

    pub fn extract(
        &self,
        left: u32,
        top: u32,
        width: u32,
        height: u32,
    ) -> Result<Image<'a>, VipsError> {
        wrap(
            "crop",
            Box::new(|out| {
                // SAFETY: valid image; NULL-terminated option list.
                unsafe {
                    ffi::vips_extract_area(
                        self.raw,
                        out,
                        left as c_int,
                        top as c_int,
                        width as c_int,
                        height as c_int,
                        ptr::null::<c_char>(),
                    )
                }
            }),
        )
    }

    /// Converts to 8-bit sRGB (or 8-bit grey for one- and two-band images), e.g. a
    /// 16-bit PNG. Alpha is kept and scaled with the colour.
    pub fn to_srgb8(&self) -> Result<Image<'a>, VipsError> {
        let colour_bands = self.bands() - u32::from(self.has_alpha());
        let space = if colour_bands < 3 {
            ffi::VIPS_INTERPRETATION_B_W
        } else {
            ffi::VIPS_INTERPRETATION_SRGB
        };
        wrap(
            "colourspace",
            Box::new(|out| {
                // SAFETY: valid image; NULL-terminated option list.
                unsafe { ffi::vips_colourspace(self.raw, out, space, ptr::null::<c_char>()) }
            }),
        )
    }

    /// Crops to `width`×`height` at the window libvips' `interesting` measure picks
    /// (needs random access: call on a materialized image).
    pub fn smartcrop(
        &self,
        width: u32,
        height: u32,
        interesting: Interesting,
    ) -> Result<Image<'a>, VipsError> {
        let k_interesting = cstr("interesting");
        let value = match interesting {
            Interesting::Attention => ffi::VIPS_INTERESTING_ATTENTION,
            Interesting::Entropy => ffi::VIPS_INTERESTING_ENTROPY,
        };
        wrap(
            "smartcrop",
            Box::new(|out| {
                // SAFETY: valid image; NULL-terminated typed option list.
                unsafe {
                    ffi::vips_smartcrop(
                        self.raw,
                        out,
                        width as c_int,
                        height as c_int,
                        k_interesting.as_ptr(),
                        value,
                        ptr::null::<c_char>(),
                    )
                }
            }),
        )
    }

    /// Stacks `pages` (all the same size) top to bottom into one strip whose
    /// `page-height` is their height: an animation for the GIF and WebP savers. Metadata
    /// (frame delays, loop count) comes from the first page.
    pub fn join_pages(pages: &[Image<'a>]) -> Result<Image<'a>, VipsError> {
        let first = pages.first().expect("at least one page");
        let page_height = first.height();
        let mut raw: Vec<*mut ffi::VipsImage> = pages.iter().map(|p| p.raw).collect();
        let k_across = cstr("across");
        let joined = wrap(
            "arrayjoin",
            Box::new(|out| {
                // SAFETY: `raw` holds valid images kept alive by `pages`; arrayjoin takes
                // its own references. NULL-terminated typed option list.
                unsafe {
                    ffi::vips_arrayjoin(
                        raw.as_mut_ptr(),
                        out,
                        raw.len() as c_int,
                        k_across.as_ptr(),
                        1 as c_int,
                        ptr::null::<c_char>(),
                    )
                }
            }),
        )?;
        joined.with_page_height(page_height)
    }

    /// A new image of the same pixels whose metadata only we hold.
    fn copy(&self) -> Result<Image<'a>, VipsError> {
        wrap(
            "copy",
            Box::new(|out| {
                // SAFETY: valid image; NULL-terminated option list.
                unsafe { ffi::vips_copy(self.raw, out, ptr::null::<c_char>()) }
            }),
        )
    }

    /// A new reference to the same pixels with `page-height` set to `page_height`.
    pub fn with_page_height(&self, page_height: u32) -> Result<Image<'a>, VipsError> {
        let copy = self.copy()?;
        let name = cstr("page-height");
        // SAFETY: `copy` is a new image only we reference, so setting metadata on it
        // cannot affect any other image.
        unsafe { ffi::vips_image_set_int(copy.raw, name.as_ptr(), page_height as c_int) };
        Ok(copy)
    }

    /// A new reference to the same pixels without `page-height`: one frame, whatever
    /// size it is later resized or embedded to (a stale `page-height` that divides the
    /// new height would make libvips see several frames).
    pub fn single_page(&self) -> Result<Image<'a>, VipsError> {
        let copy = self.copy()?;
        let name = cstr("page-height");
        // SAFETY: `copy` is a new image only we reference; removing an absent field is
        // a no-op.
        unsafe { ffi::vips_image_remove(copy.raw, name.as_ptr()) };
        Ok(copy)
    }

    /// The same pixels without ICC profile, EXIF, XMP or IPTC blocks. libvips 8.14's
    /// WebP encoder ignores `strip`, so this is what keeps metadata out of every output.
    fn without_metadata(&self) -> Result<Image<'a>, VipsError> {
        let copy = self.copy()?;
        for field in ["icc-profile-data", "exif-data", "xmp-data", "iptc-data"] {
            let name = cstr(field);
            // SAFETY: `copy` is a new image only we reference; removing an absent field
            // is a no-op.
            unsafe { ffi::vips_image_remove(copy.raw, name.as_ptr()) };
        }
        Ok(copy)
    }

    /// Places the image at (`left`, `top`) on a `width`×`height` canvas of `background`
    /// (one value per band).
    pub fn embed(
        &self,
        left: u32,
        top: u32,
        width: u32,
        height: u32,
        background: &[f64],
    ) -> Result<Image<'a>, VipsError> {
        let k_extend = cstr("extend");
        let k_bg = cstr("background");
        let bg = DoubleArray::new(background);
        wrap(
            "embed",
            Box::new(|out| {
                // SAFETY: valid image and array; NULL-terminated option list.
                unsafe {
                    ffi::vips_embed(
                        self.raw,
                        out,
                        left as c_int,
                        top as c_int,
                        width as c_int,
                        height as c_int,
                        k_extend.as_ptr(),
                        ffi::VIPS_EXTEND_BACKGROUND,
                        k_bg.as_ptr(),
                        bg.0,
                        ptr::null::<c_char>(),
                    )
                }
            }),
        )
    }

    /// Composites the alpha channel onto `background` (RGB or grey, matching the bands).
    pub fn flatten(&self, background: &[f64]) -> Result<Image<'a>, VipsError> {
        let k_bg = cstr("background");
        let bg = DoubleArray::new(background);
        wrap(
            "flatten",
            Box::new(|out| {
                // SAFETY: valid image and array; NULL-terminated option list.
                unsafe {
                    ffi::vips_flatten(self.raw, out, k_bg.as_ptr(), bg.0, ptr::null::<c_char>())
                }
            }),
        )
    }

    /// The pixels of an 8-bit image, band-interleaved, row by row: width × height ×
    /// bands bytes. Runs the pipeline so far (call on a small image).
    pub fn pixels(&self) -> Result<Vec<u8>, VipsError> {
        if !self.is_uchar() {
            return Err(VipsError::new("pixels", "not an 8-bit image"));
        }
        let mut len: usize = 0;
        // SAFETY: valid image; returns a g_malloc'd buffer of `len` bytes or NULL.
        let buf = unsafe { ffi::vips_image_write_to_memory(self.raw, &mut len) };
        if buf.is_null() {
            return Err(last_error("pixels"));
        }
        // SAFETY: `buf` holds `len` bytes; copied, then freed once.
        let bytes = unsafe {
            let out = std::slice::from_raw_parts(buf as *const u8, len).to_vec();
            ffi::g_free(buf);
            out
        };
        Ok(bytes)
    }

    /// Adds an opaque alpha channel.
    pub fn add_alpha(&self) -> Result<Image<'a>, VipsError> {
        wrap(
            "addalpha",
            Box::new(|out| {
                // SAFETY: valid image; NULL-terminated option list.
                unsafe { ffi::vips_addalpha(self.raw, out, ptr::null::<c_char>()) }
            }),
        )
    }

    /// Encodes to `format` with metadata stripped.
    pub fn save(&self, format: SaveFormat) -> Result<Vec<u8>, VipsError> {
        let image = self.without_metadata()?;
        let k_q = cstr("Q");
        let k_strip = cstr("strip");
        let k_optimize = cstr("optimize_coding");
        let k_subsample = cstr("subsample_mode");
        let k_compression = cstr("compression");
        let k_effort = cstr("effort");
        let k_interlace = cstr("interlace");
        let k_palette = cstr("palette");
        let k_lossless = cstr("lossless");
        let mut buf: *mut c_void = ptr::null_mut();
        let mut len: usize = 0;
        let end = ptr::null::<c_char>();
        // SAFETY: valid image; each option list is NULL-terminated and typed per libvips.
        let rc = unsafe {
            match format {
                SaveFormat::Jpeg {
                    quality,
                    progressive,
                } => ffi::vips_jpegsave_buffer(
                    image.raw,
                    &mut buf,
                    &mut len,
                    k_q.as_ptr(),
                    quality as c_int,
                    k_strip.as_ptr(),
                    1 as c_int,
                    k_optimize.as_ptr(),
                    1 as c_int,
                    k_interlace.as_ptr(),
                    c_int::from(progressive),
                    // Full-resolution chroma at high quality, as a photographer expects.
                    k_subsample.as_ptr(),
                    if quality >= 90 {
                        ffi::VIPS_FOREIGN_SUBSAMPLE_OFF
                    } else {
                        0
                    },
                    end,
                ),
                SaveFormat::Png { palette, quality } => ffi::vips_pngsave_buffer(
                    image.raw,
                    &mut buf,
                    &mut len,
                    k_strip.as_ptr(),
                    1 as c_int,
                    k_compression.as_ptr(),
                    6 as c_int,
                    // Quantisation quality; used only with a palette.
                    k_q.as_ptr(),
                    quality as c_int,
                    k_palette.as_ptr(),
                    c_int::from(palette),
                    end,
                ),
                SaveFormat::Webp { quality, lossless } => ffi::vips_webpsave_buffer(
                    image.raw,
                    &mut buf,
                    &mut len,
                    k_q.as_ptr(),
                    quality as c_int,
                    k_lossless.as_ptr(),
                    c_int::from(lossless),
                    k_strip.as_ptr(),
                    1 as c_int,
                    end,
                ),
                SaveFormat::Avif { quality, effort } => ffi::vips_heifsave_buffer(
                    image.raw,
                    &mut buf,
                    &mut len,
                    k_q.as_ptr(),
                    quality as c_int,
                    k_compression.as_ptr(),
                    ffi::VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
                    k_effort.as_ptr(),
                    effort as c_int,
                    k_strip.as_ptr(),
                    1 as c_int,
                    end,
                ),
                SaveFormat::Gif => ffi::vips_gifsave_buffer(
                    image.raw,
                    &mut buf,
                    &mut len,
                    k_strip.as_ptr(),
                    1 as c_int,
                    end,
                ),
            }
        };
        if rc != 0 || buf.is_null() {
            return Err(last_error("encode"));
        }
        // SAFETY: libvips returned a g_malloc'd buffer of `len` bytes; copy then free it.
        let bytes = unsafe {
            let out = std::slice::from_raw_parts(buf as *const u8, len).to_vec();
            ffi::g_free(buf);
            out
        };
        Ok(match format {
            SaveFormat::Webp { .. } => strip_webp_metadata(bytes),
            _ => bytes,
        })
    }
}

/// Drops the ICCP, EXIF and XMP chunks of a WebP file and clears their VP8X flags; a
/// still image left with nothing the simple format cannot say loses its VP8X header.
/// libvips 8.14.1's `webpsave` ignores `strip` and always writes an EXIF block (built
/// from the image's resolution), so the encoder's output goes through this.
/// Anything that does not parse as a RIFF WebP is returned unchanged.
pub fn strip_webp_metadata(bytes: Vec<u8>) -> Vec<u8> {
    const ICC: u8 = 0x20;
    const ALPHA: u8 = 0x10;
    const EXIF: u8 = 0x08;
    const XMP: u8 = 0x04;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return bytes;
    }
    let mut chunks: Vec<([u8; 4], &[u8])> = Vec::new();
    let mut i = 12;
    while i < bytes.len() {
        let Some(header) = bytes.get(i..i + 8) else {
            return bytes.clone();
        };
        let kind: [u8; 4] = header[0..4].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let Some(data) = bytes.get(i + 8..i + 8 + len) else {
            return bytes.clone();
        };
        chunks.push((kind, data));
        i += 8 + len + (len & 1);
    }
    let is_metadata = |kind: &[u8; 4]| matches!(kind, b"ICCP" | b"EXIF" | b"XMP ");
    if !chunks.iter().any(|(kind, _)| is_metadata(kind)) {
        return bytes;
    }
    let mut kept: Vec<([u8; 4], Vec<u8>)> = chunks
        .iter()
        .filter(|(kind, _)| !is_metadata(kind))
        .map(|(kind, data)| (*kind, data.to_vec()))
        .collect();
    if let Some((b"VP8X", header)) = kept.first_mut().map(|(k, d)| (&*k, d)) {
        if let Some(flags) = header.first_mut() {
            *flags &= !(ICC | EXIF | XMP);
        }
    }
    if let [(vp8x, header), (image, _)] = kept.as_slice() {
        let flags = header.first().copied().unwrap_or(0);
        let simple = vp8x == b"VP8X"
            && ((image == b"VP8L" && flags & !ALPHA == 0) || (image == b"VP8 " && flags == 0));
        if simple {
            kept.remove(0);
        }
    }
    let body: usize = kept.iter().map(|(_, d)| 8 + d.len() + (d.len() & 1)).sum();
    let mut out = Vec::with_capacity(12 + body);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + body) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    for (kind, data) in &kept {
        out.extend_from_slice(kind);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() & 1 == 1 {
            out.push(0);
        }
    }
    out
}

/// Encoder settings for [`Image::save`]. Multi-page strips (`page-height` set) are
/// saved as animations by the GIF and WebP encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// `progressive`: interlaced JPEG. Chroma is not subsampled at quality ≥ 90.
    Jpeg {
        quality: u8,
        progressive: bool,
    },
    /// `palette`: quantised to an 8-bit palette at `quality` (ignored without palette).
    Png {
        palette: bool,
        quality: u8,
    },
    Webp {
        quality: u8,
        lossless: bool,
    },
    Avif {
        quality: u8,
        effort: u8,
    },
    Gif,
}

/// How [`Image::smartcrop`] measures interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interesting {
    Attention,
    Entropy,
}

#[cfg(test)]
mod tests {
    use super::strip_webp_metadata;

    fn riff(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        for (kind, data) in chunks {
            body.extend_from_slice(*kind);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn metadata_chunks_go_and_a_plain_still_becomes_simple() {
        let vp8x = [0x20 | 0x08, 0, 0, 0, 9, 0, 0, 9, 0, 0];
        let with = riff(&[
            (b"VP8X", &vp8x),
            (b"ICCP", b"profile"),
            (b"VP8L", b"pixels!"),
            (b"EXIF", b"exif"),
        ]);
        assert_eq!(strip_webp_metadata(with), riff(&[(b"VP8L", b"pixels!")]));
        let lossy = riff(&[(b"VP8X", &vp8x), (b"VP8 ", b"px"), (b"EXIF", b"e")]);
        assert_eq!(strip_webp_metadata(lossy), riff(&[(b"VP8 ", b"px")]));
    }

    #[test]
    fn alpha_and_animation_keep_their_header() {
        let vp8x = [0x10 | 0x08, 0, 0, 0, 9, 0, 0, 9, 0, 0];
        let alpha = riff(&[
            (b"VP8X", &vp8x),
            (b"ALPH", b"a"),
            (b"VP8 ", b"px"),
            (b"EXIF", b"e"),
        ]);
        let mut cleared = vp8x;
        cleared[0] = 0x10;
        assert_eq!(
            strip_webp_metadata(alpha),
            riff(&[(b"VP8X", &cleared), (b"ALPH", b"a"), (b"VP8 ", b"px")])
        );
        let anim_flags = [0x02 | 0x08, 0, 0, 0, 9, 0, 0, 9, 0, 0];
        let anim = riff(&[
            (b"VP8X", &anim_flags),
            (b"ANIM", b"loop00"),
            (b"ANMF", b"frame1"),
            (b"ANMF", b"frame2"),
            (b"EXIF", b"e"),
        ]);
        let mut cleared = anim_flags;
        cleared[0] = 0x02;
        assert_eq!(
            strip_webp_metadata(anim),
            riff(&[
                (b"VP8X", &cleared),
                (b"ANIM", b"loop00"),
                (b"ANMF", b"frame1"),
                (b"ANMF", b"frame2"),
            ])
        );
    }

    #[test]
    fn anything_else_is_untouched() {
        for bytes in [
            b"not a webp".to_vec(),
            riff(&[(b"VP8L", b"pixels")]),
            b"RIFF\x10\0\0\0WEBPVP8L\xff\0\0\0ab".to_vec(),
        ] {
            assert_eq!(strip_webp_metadata(bytes.clone()), bytes);
        }
    }
}
