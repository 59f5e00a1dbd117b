//! [`Image`], an owned reference to a libvips image, and [`Header`]: opening a buffer,
//! reading what the header says, materializing, and the metadata edits (`page-height`,
//! the ICC profile) the other files build on.

use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::ptr;

use super::errors::{last_error, VipsError};
use super::ffi;

/// An owned reference to a libvips image that may borrow a source buffer for `'a`.
pub struct Image<'a> {
    pub(super) raw: *mut ffi::VipsImage,
    pub(super) _buf: PhantomData<&'a [u8]>,
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

pub(super) fn wrap<'a>(op: &'static str, call: Box<OutFn<'_>>) -> Result<Image<'a>, VipsError> {
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

pub(super) fn cstr(s: &str) -> CString {
    CString::new(s).expect("option strings have no NUL")
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

pub(super) const SEQ_LOAD: &str = "fail_on=error";

impl<'a> Image<'a> {
    /// Opens `buf` lazily (header only) with the loader libvips picks; untrusted loaders
    /// are blocked by [`init`](super::init). Truncated or corrupt pixel data fails later,
    /// when read.
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

    /// A new image of the same pixels whose metadata only we hold.
    pub(super) fn copy(&self) -> Result<Image<'a>, VipsError> {
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
}
