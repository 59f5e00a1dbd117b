//! Images whose pixels Rust produces row by row, top to bottom: made the way libvips' own
//! loaders make theirs (a generated image behind `vips_sequential`), so that a pipeline
//! such as `thumbnail` pulls strips of rows as it needs them and the whole decoded image
//! is never held. [`crate::png_fast`] feeds one from the `png` crate.
//!
//! Decoding into one buffer and handing it over (`vips_image_new_from_memory`) was
//! measured first: as fast, but it holds the whole decode (59 MB for a 5120×2880 RGBA
//! PNG) where libvips' loader holds a few strips, and without the sequential marker
//! libvips' `shrinkv` works tile by tile and is 4–6× slower.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::{Mutex, OnceLock};

use super::errors::{last_error, VipsError};
use super::ffi;
use super::image::{cstr, wrap, Image};

/// Rows libvips asks for at a time: its loaders' "fat strip".
const STRIP_ROWS: c_int = 16;

/// Produces an image's rows in order, each `width × bands` bytes of 8-bit samples.
pub trait RowSource: Send {
    /// Fills `row` with the next row; [`RowsError::Source`] when the pixels cannot be had.
    fn next_row(&mut self, row: &mut [u8]) -> Result<(), RowsError>;
}

/// Why the rows of an image made by [`Image::from_rows`] could not be had. Its text goes
/// to libvips' error buffer (`rows: …`), so the libvips call that pulled the rows fails
/// with it as its [`VipsError`].
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// The [`RowSource`] could not give its next row: its own error, as it says it.
    #[error(transparent)]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// The [`RowSource`] panicked (caught: a panic must not unwind into libvips).
    #[error("row source panicked")]
    Panicked,
    /// The region libvips asked to fill could not be read.
    #[error("cannot read the region's area")]
    RegionArea,
    /// libvips asked for an area that is not whole rows of this image.
    #[error("unexpected area {0:?}")]
    UnexpectedArea(ffi::VipsRect),
    /// libvips asked for rows out of order; a sequential source only goes forward.
    #[error("out of order read at line {next}")]
    OutOfOrder {
        /// The next row the source would give.
        next: usize,
    },
    /// A strip of rows could not be wrapped as a libvips image.
    #[error("cannot wrap a strip")]
    WrapStrip,
    /// A strip of rows could not be read back through a libvips region.
    #[error("cannot read a strip")]
    ReadStrip,
}

/// What the generate callback works on, owned by the image (freed when libvips frees it).
struct Rows {
    source: Box<dyn RowSource>,
    image: *mut ffi::VipsImage,
    width: usize,
    height: usize,
    bands: usize,
    /// The next row `source` gives.
    next: usize,
    /// One strip of rows, reused.
    strip: Vec<u8>,
}

// SAFETY: `image` is only compared, never dereferenced; `source` is Send.
unsafe impl Send for Rows {}

/// Image metadata libvips keeps in the header itself, not as fields to copy.
const BUILT_IN: &[&str] = &[
    "width",
    "height",
    "bands",
    "format",
    "coding",
    "interpretation",
    "xoffset",
    "yoffset",
    "xres",
    "yres",
    "filename",
];

impl<'a> Image<'a> {
    /// An 8-bit image the size, band count, interpretation, resolution and metadata (ICC
    /// profile, EXIF orientation, …) of `like`, whose pixels come from `rows`, top to
    /// bottom, as a pipeline reads them. `like` is a loader's image of the same file
    /// (opened lazily: header only), so that what libvips does next — colour management,
    /// rotation, premultiplication — is decided exactly as for the loader's own pixels.
    pub fn from_rows(
        like: &Image<'_>,
        rows: Box<dyn RowSource + 'a>,
    ) -> Result<Image<'a>, VipsError> {
        if !like.is_uchar() {
            return Err(VipsError::new("rows", "not an 8-bit image"));
        }
        let (width, height, bands) = (like.width(), like.height(), like.bands());
        // SAFETY: the boxed source borrows data for 'a; only the image made here calls
        // it, and that image is returned as an `Image<'a>` that cannot outlive 'a (the
        // same contract as `vips_image_new_from_buffer`). Dropping the box later, when
        // libvips frees the image, does not touch what it borrowed.
        let source: Box<dyn RowSource> = unsafe { std::mem::transmute(rows) };
        // SAFETY: a new, empty image only we reference.
        let image = unsafe { ffi::vips_image_new() };
        if image.is_null() {
            return Err(last_error("rows"));
        }
        let state = Box::into_raw(Box::new(Mutex::new(Rows {
            source,
            image,
            width: width as usize,
            height: height as usize,
            bands: bands as usize,
            next: 0,
            strip: Vec::new(),
        })));
        let key = cstr("rendition-rows");
        let made = Image {
            raw: image,
            _buf: std::marker::PhantomData,
        };
        // SAFETY: `image` is new and only ours; `state` is handed to it (freed by
        // `drop_rows` when libvips finalizes the image); `like` is a valid image.
        unsafe {
            ffi::g_object_set_data_full(image.cast(), key.as_ptr(), state.cast(), Some(drop_rows));
            ffi::vips_image_init_fields(
                image,
                width as c_int,
                height as c_int,
                bands as c_int,
                ffi::VIPS_FORMAT_UCHAR,
                ffi::VIPS_CODING_NONE,
                ffi::vips_image_get_interpretation(like.raw),
                ffi::vips_image_get_xres(like.raw),
                ffi::vips_image_get_yres(like.raw),
            );
            copy_fields(like.raw, image);
            // A sequential source: libvips' shrinkv then keeps a line cache and works in
            // whole-width strips (see the module doc).
            ffi::vips_image_set_int(image, cstr("vips-sequential").as_ptr(), 1);
            if ffi::vips_image_pipelinev(
                image,
                ffi::VIPS_DEMAND_STYLE_THINSTRIP,
                ptr::null::<c_char>(),
            ) != 0
                || ffi::vips_image_generate(
                    image,
                    None,
                    Some(generate),
                    None,
                    state.cast(),
                    ptr::null_mut(),
                ) != 0
            {
                return Err(last_error("rows"));
            }
        }
        let k_tile = cstr("tile_height");
        wrap(
            "rows",
            Box::new(|out| {
                // SAFETY: valid image; NULL-terminated typed option list. The result holds
                // its own reference to `made`.
                unsafe {
                    ffi::vips_sequential(
                        made.raw,
                        out,
                        k_tile.as_ptr(),
                        STRIP_ROWS,
                        ptr::null::<c_char>(),
                    )
                }
            }),
        )
    }
}

/// Copies every metadata field of `from` that is not part of the header proper.
///
/// # Safety
/// Both must be valid images; `to` one only the caller references.
unsafe fn copy_fields(from: *mut ffi::VipsImage, to: *mut ffi::VipsImage) {
    // SAFETY: per the contract; the list is NULL-terminated and freed once.
    unsafe {
        let names = ffi::vips_image_get_fields(from);
        if names.is_null() {
            return;
        }
        let mut at = names;
        while !(*at).is_null() {
            let name = CStr::from_ptr(*at);
            if !BUILT_IN.iter().any(|b| name.to_bytes() == b.as_bytes()) {
                let mut value = ffi::GValue {
                    g_type: 0,
                    data: [0; 2],
                };
                if ffi::vips_image_get(from, *at, &mut value) == 0 {
                    ffi::vips_image_set(to, *at, &mut value);
                    ffi::g_value_unset(&mut value);
                }
            }
            at = at.add(1);
        }
        ffi::g_strfreev(names);
    }
}

unsafe extern "C" fn drop_rows(state: *mut c_void) {
    // SAFETY: `state` is the box `from_rows` leaked, given to GLib once.
    drop(unsafe { Box::from_raw(state.cast::<Mutex<Rows>>()) });
}

/// Where `VipsRegion::valid` lies: right after the `VipsObject` it derives from and its
/// `im` pointer. The size of `VipsObject` comes from GLib's type system, not from a copy
/// of libvips' headers; each use checks the answer against `vips_region_width`/`height`
/// and the region's image.
fn valid_offset() -> usize {
    static OFFSET: OnceLock<usize> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let mut query = ffi::GTypeQuery {
            g_type: 0,
            type_name: ptr::null(),
            class_size: 0,
            instance_size: 0,
        };
        // SAFETY: plain GLib calls; the query is written in place.
        unsafe { ffi::g_type_query(ffi::vips_object_get_type(), &mut query) };
        let align = std::mem::align_of::<*mut ffi::VipsImage>();
        (query.instance_size as usize).div_ceil(align) * align
    })
}

/// The image and the area a region covers.
///
/// # Safety
/// `region` must be a valid `VipsRegion`.
unsafe fn region_area(
    region: *mut ffi::VipsRegion,
) -> Option<(*mut ffi::VipsImage, ffi::VipsRect)> {
    let base = region.cast::<u8>();
    let at = valid_offset();
    // SAFETY: `im` and `valid` are the public fields that follow the VipsObject header
    // (region.h); checked below against libvips' own accessors.
    let (image, rect) = unsafe {
        (
            ptr::read_unaligned(base.add(at).cast::<*mut ffi::VipsImage>()),
            ptr::read_unaligned(
                base.add(at + std::mem::size_of::<*mut ffi::VipsImage>())
                    .cast::<ffi::VipsRect>(),
            ),
        )
    };
    // SAFETY: valid region.
    let (w, h) = unsafe {
        (
            ffi::vips_region_width(region),
            ffi::vips_region_height(region),
        )
    };
    (rect.width == w && rect.height == h).then_some((image, rect))
}

/// libvips' generate callback: fills `out` (whole rows, in order, as `vips_sequential`
/// asks) from the row source.
unsafe extern "C" fn generate(
    out: *mut ffi::VipsRegion,
    _seq: *mut c_void,
    state: *mut c_void,
    _b: *mut c_void,
    _stop: *mut c_int,
) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `state` is the Mutex<Rows> the image owns; `out` a region on it.
        let state = unsafe { &*state.cast::<Mutex<Rows>>() };
        let mut rows = state.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `out` is the region libvips asks us to fill.
        let Some((image, rect)) = (unsafe { region_area(out) }) else {
            return Err(RowsError::RegionArea);
        };
        // SAFETY: as above.
        unsafe { rows.fill(out, image, rect) }
    }));
    let error = match result {
        Ok(Ok(())) => return 0,
        Ok(Err(error)) => error,
        Err(_) => RowsError::Panicked,
    };
    let message = cstr(&error.to_string().replace('\0', " "));
    // SAFETY: NUL-terminated strings; "%s" takes one string argument.
    unsafe { ffi::vips_error(c"rows".as_ptr(), c"%s".as_ptr(), message.as_ptr()) };
    -1
}

impl Rows {
    /// Writes rows `rect.top …` of the image into `out`.
    ///
    /// # Safety
    /// `out` must be a valid region on `image`.
    unsafe fn fill(
        &mut self,
        out: *mut ffi::VipsRegion,
        image: *mut ffi::VipsImage,
        rect: ffi::VipsRect,
    ) -> Result<(), RowsError> {
        let (top, height) = (rect.top as usize, rect.height as usize);
        if image != self.image
            || rect.left != 0
            || rect.width as usize != self.width
            || top + height > self.height
        {
            return Err(RowsError::UnexpectedArea(rect));
        }
        if top != self.next {
            return Err(RowsError::OutOfOrder { next: self.next });
        }
        let row_bytes = self.width * self.bands;
        self.strip.resize(row_bytes * height, 0);
        for row in self.strip.chunks_exact_mut(row_bytes) {
            self.source.next_row(row)?;
            self.next += 1;
        }
        let whole = ffi::VipsRect {
            left: 0,
            top: 0,
            width: rect.width,
            height: rect.height,
        };
        // SAFETY: `strip` holds `height` rows of `width × bands` bytes and outlives the
        // image and region made over it here, both released before returning.
        unsafe {
            let strip = ffi::vips_image_new_from_memory(
                self.strip.as_ptr().cast(),
                self.strip.len(),
                rect.width,
                rect.height,
                self.bands as c_int,
                ffi::VIPS_FORMAT_UCHAR,
            );
            if strip.is_null() {
                return Err(RowsError::WrapStrip);
            }
            let region = ffi::vips_region_new(strip);
            let ok = !region.is_null() && ffi::vips_region_image(region, &whole) == 0;
            if ok {
                ffi::vips_region_copy(region, out, &whole, rect.left, rect.top);
            }
            if !region.is_null() {
                ffi::g_object_unref(region.cast());
            }
            ffi::g_object_unref(strip.cast());
            if !ok {
                return Err(RowsError::ReadStrip);
            }
        }
        Ok(())
    }
}
