//! Encoding an [`Image`] ([`SaveFormat`]) with its metadata stripped, and the WebP
//! metadata chunks libvips 8.14 writes anyway taken out again.

use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

use super::errors::{last_error, VipsError};
use super::ffi;
use super::image::{cstr, Image};

impl<'a> Image<'a> {
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
