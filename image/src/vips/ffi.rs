//! The few libvips 8.14 C entry points Rendition calls, declared by hand.
//!
//! Every function here exists in libvips 8.14 (Debian 12's `libvips-dev`), so a missing
//! symbol is a link error at build time, not a crash at run time. Variadic calls take
//! `name, value, …, NULL` option lists; values must have the C type libvips expects
//! (`c_int` for ints, enums and gbooleans, `c_double` for doubles, pointers as is).

#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_double, c_int, c_void};

#[repr(C)]
pub struct VipsImage {
    _private: [u8; 0],
}

#[repr(C)]
pub struct VipsArrayDouble {
    _private: [u8; 0],
}

pub type GType = usize;

pub const VIPS_ACCESS_SEQUENTIAL: c_int = 1;
pub const VIPS_SIZE_FORCE: c_int = 3;
pub const VIPS_EXTEND_BACKGROUND: c_int = 5;
pub const VIPS_INTERPRETATION_CMYK: c_int = 15;
pub const VIPS_FOREIGN_SUBSAMPLE_OFF: c_int = 2;
pub const VIPS_FOREIGN_HEIF_COMPRESSION_AV1: c_int = 4;
pub const VIPS_FORMAT_UCHAR: c_int = 0;
pub const VIPS_INTERPRETATION_B_W: c_int = 1;
pub const VIPS_INTERPRETATION_SRGB: c_int = 22;
pub const VIPS_INTERESTING_ENTROPY: c_int = 2;
pub const VIPS_INTERESTING_ATTENTION: c_int = 3;

/// GLib's log callback: `(domain, level, message, user_data)`.
pub type GLogFunc = Option<unsafe extern "C" fn(*const c_char, c_int, *const c_char, *mut c_void)>;
/// `G_LOG_LEVEL_WARNING` and above (error, critical, warning).
pub const G_LOG_LEVEL_WARNING_OR_WORSE: c_int = (1 << 2) | (1 << 3) | (1 << 4);

extern "C" {
    pub fn vips_init(argv0: *const c_char) -> c_int;
    pub fn vips_version(flag: c_int) -> c_int;
    pub fn vips_block_untrusted_set(state: c_int);
    pub fn vips_cache_set_max(max: c_int);
    pub fn vips_concurrency_set(concurrency: c_int);
    pub fn vips_leak_set(leak: c_int);

    pub fn vips_error_buffer_copy() -> *mut c_char;
    pub fn vips_error_clear();

    pub fn g_log_set_default_handler(log_func: GLogFunc, user_data: *mut c_void) -> GLogFunc;

    pub fn g_object_unref(object: *mut c_void);
    pub fn g_free(mem: *mut c_void);
    pub fn vips_area_unref(area: *mut c_void);
    pub fn vips_array_double_new(array: *const c_double, n: c_int) -> *mut VipsArrayDouble;

    pub fn vips_image_new_from_buffer(
        buf: *const c_void,
        len: usize,
        option_string: *const c_char,
        ...
    ) -> *mut VipsImage;
    pub fn vips_image_write_to_memory(image: *mut VipsImage, size: *mut usize) -> *mut c_void;
    pub fn vips_image_get_width(image: *const VipsImage) -> c_int;
    pub fn vips_image_get_height(image: *const VipsImage) -> c_int;
    pub fn vips_image_get_bands(image: *const VipsImage) -> c_int;
    pub fn vips_image_get_interpretation(image: *const VipsImage) -> c_int;
    pub fn vips_image_get_typeof(image: *const VipsImage, name: *const c_char) -> GType;
    pub fn vips_image_get_int(
        image: *const VipsImage,
        name: *const c_char,
        out: *mut c_int,
    ) -> c_int;
    pub fn vips_image_hasalpha(image: *mut VipsImage) -> c_int;
    pub fn vips_image_get_format(image: *const VipsImage) -> c_int;
    pub fn vips_image_get_page_height(image: *mut VipsImage) -> c_int;
    pub fn vips_image_set_int(image: *mut VipsImage, name: *const c_char, i: c_int);
    pub fn vips_image_remove(image: *mut VipsImage, name: *const c_char) -> c_int;

    pub fn vips_thumbnail_buffer(
        buf: *mut c_void,
        len: usize,
        out: *mut *mut VipsImage,
        width: c_int,
        ...
    ) -> c_int;
    pub fn vips_thumbnail_image(
        input: *mut VipsImage,
        out: *mut *mut VipsImage,
        width: c_int,
        ...
    ) -> c_int;
    pub fn vips_image_copy_memory(input: *mut VipsImage) -> *mut VipsImage;
    pub fn vips_extract_area(
        input: *mut VipsImage,
        out: *mut *mut VipsImage,
        left: c_int,
        top: c_int,
        width: c_int,
        height: c_int,
        ...
    ) -> c_int;
    pub fn vips_embed(
        input: *mut VipsImage,
        out: *mut *mut VipsImage,
        x: c_int,
        y: c_int,
        width: c_int,
        height: c_int,
        ...
    ) -> c_int;
    pub fn vips_flatten(input: *mut VipsImage, out: *mut *mut VipsImage, ...) -> c_int;
    pub fn vips_addalpha(input: *mut VipsImage, out: *mut *mut VipsImage, ...) -> c_int;
    pub fn vips_copy(input: *mut VipsImage, out: *mut *mut VipsImage, ...) -> c_int;
    pub fn vips_colourspace(
        input: *mut VipsImage,
        out: *mut *mut VipsImage,
        space: c_int,
        ...
    ) -> c_int;
    pub fn vips_smartcrop(
        input: *mut VipsImage,
        out: *mut *mut VipsImage,
        width: c_int,
        height: c_int,
        ...
    ) -> c_int;
    pub fn vips_arrayjoin(
        input: *mut *mut VipsImage,
        out: *mut *mut VipsImage,
        n: c_int,
        ...
    ) -> c_int;

    pub fn vips_jpegsave_buffer(
        input: *mut VipsImage,
        buf: *mut *mut c_void,
        len: *mut usize,
        ...
    ) -> c_int;
    pub fn vips_pngsave_buffer(
        input: *mut VipsImage,
        buf: *mut *mut c_void,
        len: *mut usize,
        ...
    ) -> c_int;
    pub fn vips_webpsave_buffer(
        input: *mut VipsImage,
        buf: *mut *mut c_void,
        len: *mut usize,
        ...
    ) -> c_int;
    pub fn vips_heifsave_buffer(
        input: *mut VipsImage,
        buf: *mut *mut c_void,
        len: *mut usize,
        ...
    ) -> c_int;
    pub fn vips_gifsave_buffer(
        input: *mut VipsImage,
        buf: *mut *mut c_void,
        len: *mut usize,
        ...
    ) -> c_int;
}

// Images made from pixels Rust produces row by row ([`super::rows`]): a generated,
// sequential image, like libvips' own loaders make.

#[repr(C)]
pub struct VipsRegion {
    _private: [u8; 0],
}

/// `VipsRect`: the area of an image a region holds.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipsRect {
    pub left: c_int,
    pub top: c_int,
    pub width: c_int,
    pub height: c_int,
}

/// GLib's `GValue`: a type and two words of data.
#[repr(C)]
pub struct GValue {
    pub g_type: GType,
    pub data: [u64; 2],
}

/// GLib's `GTypeQuery`.
#[repr(C)]
pub struct GTypeQuery {
    pub g_type: GType,
    pub type_name: *const c_char,
    pub class_size: u32,
    pub instance_size: u32,
}

pub type VipsGenerateFn = unsafe extern "C" fn(
    *mut VipsRegion,
    *mut c_void,
    *mut c_void,
    *mut c_void,
    *mut c_int,
) -> c_int;
pub type GDestroyNotify = unsafe extern "C" fn(*mut c_void);

pub const VIPS_DEMAND_STYLE_THINSTRIP: c_int = 1;
pub const VIPS_CODING_NONE: c_int = 0;

extern "C" {
    pub fn vips_image_new() -> *mut VipsImage;
    pub fn vips_image_new_from_memory(
        data: *const c_void,
        size: usize,
        width: c_int,
        height: c_int,
        bands: c_int,
        format: c_int,
    ) -> *mut VipsImage;
    pub fn vips_image_init_fields(
        image: *mut VipsImage,
        xsize: c_int,
        ysize: c_int,
        bands: c_int,
        format: c_int,
        coding: c_int,
        interpretation: c_int,
        xres: c_double,
        yres: c_double,
    );
    pub fn vips_image_pipelinev(image: *mut VipsImage, hint: c_int, ...) -> c_int;
    pub fn vips_image_generate(
        image: *mut VipsImage,
        start_fn: Option<
            unsafe extern "C" fn(*mut VipsImage, *mut c_void, *mut c_void) -> *mut c_void,
        >,
        generate_fn: Option<VipsGenerateFn>,
        stop_fn: Option<unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void) -> c_int>,
        a: *mut c_void,
        b: *mut c_void,
    ) -> c_int;
    pub fn vips_sequential(input: *mut VipsImage, out: *mut *mut VipsImage, ...) -> c_int;
    pub fn vips_image_get_xres(image: *const VipsImage) -> c_double;
    pub fn vips_image_get_yres(image: *const VipsImage) -> c_double;
    pub fn vips_image_get_fields(image: *mut VipsImage) -> *mut *mut c_char;
    pub fn vips_image_get(image: *const VipsImage, name: *const c_char, out: *mut GValue) -> c_int;
    pub fn vips_image_set(image: *mut VipsImage, name: *const c_char, value: *mut GValue);
    pub fn vips_region_new(image: *mut VipsImage) -> *mut VipsRegion;
    pub fn vips_region_image(region: *mut VipsRegion, r: *const VipsRect) -> c_int;
    pub fn vips_region_copy(
        region: *mut VipsRegion,
        dest: *mut VipsRegion,
        r: *const VipsRect,
        x: c_int,
        y: c_int,
    );
    pub fn vips_region_width(region: *mut VipsRegion) -> c_int;
    pub fn vips_region_height(region: *mut VipsRegion) -> c_int;
    pub fn vips_object_get_type() -> GType;
    pub fn vips_error(domain: *const c_char, fmt: *const c_char, ...);

    pub fn g_type_query(g_type: GType, query: *mut GTypeQuery);
    pub fn g_value_unset(value: *mut GValue);
    pub fn g_strfreev(list: *mut *mut c_char);
    pub fn g_object_set_data_full(
        object: *mut c_void,
        key: *const c_char,
        data: *mut c_void,
        destroy: Option<GDestroyNotify>,
    );
}
