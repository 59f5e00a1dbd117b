//! The libvips operations a render applies to an [`Image`]: thumbnail (shrink-on-load,
//! orientation, sRGB), resize, crop and smart crop, colourspace, joining frames into a
//! strip, embed, flatten, alpha.

use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

use super::errors::VipsError;
use super::ffi;
use super::image::{cstr, wrap, Image, SEQ_LOAD};

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

impl<'a> Image<'a> {
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

    /// Resamples an already decoded, oriented sRGB image to exactly `width`×`height`.
    pub fn resize_to(&self, width: u32, height: u32) -> Result<Image<'a>, VipsError> {
        self.thumbnail_image(width, height, false, false)
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
}

/// How [`Image::smartcrop`] measures interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interesting {
    Attention,
    Entropy,
}
