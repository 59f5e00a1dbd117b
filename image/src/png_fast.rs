//! A faster PNG decode for the PNGs that photos and screenshots are: 8-bit grey, grey +
//! alpha, RGB or RGBA, not interlaced, without `tRNS`. The `png` crate (fdeflate's
//! inflater, SIMD unfiltering) decodes the rows and hands them to libvips one strip at a
//! time ([`Image::from_rows`]), in place of libvips' loader (libpng + Debian's zlib 1.2.13,
//! whose inflate and scalar Paeth unfilter are most of a PNG thumbnail's CPU time). The
//! pipeline after it is libvips' own `thumbnail`, with the loader's header (ICC profile,
//! interpretation, resolution) copied over, so the pixels are the same, byte for byte.
//!
//! Measured on the 8 PNGs of `scripts/fetch-photos.sh` (5120×2880 and 3000×1993), one
//! libvips thread, CPU time of decode + `thumbnail` to 300 px wide, median of 5: 4–36%
//! less than libvips' loader (165 → 124 ms, 393 → 252 ms on the largest), 20% less than
//! libpng with zlib-rs in place of zlib; peak RSS 4–11 MB more (of 44–104 MB): rows are
//! streamed, the whole decode is never held (holding it cost 17–57 MB).
//!
//! Everything else — palette, 1/2/4/16-bit, Adam7, `tRNS`, APNG, `eXIf` — goes to libvips'
//! loader, and so does any PNG the fast path fails on (a corrupt or truncated one): the
//! decode is then done again by libvips, which decides what such a file gives.

use std::io::Cursor;

use crate::geometry::Size;
use crate::vips::{Header, Image, RowSource, RowsError, VipsError};

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// What the fast path decodes: size and samples per pixel, from `IHDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    /// 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    pub bands: u32,
}

/// Why a PNG goes to libvips' loader instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    /// Not a PNG, or its chunks could not be walked up to the first `IDAT`.
    NotPng,
    /// Not 8 bits per sample (libvips keeps 16-bit, expands 1/2/4-bit grey).
    BitDepth(u8),
    /// Palette (libvips expands it to RGB or RGBA).
    Palette,
    /// An unknown colour type.
    ColourType(u8),
    /// Adam7: libvips decodes those whole, not by rows.
    Interlaced,
    /// A `tRNS` chunk: libvips adds an alpha band from it.
    Transparency,
    /// An animated PNG (`acTL`).
    Animated,
    /// An `eXIf` chunk (orientation): left to the loader that reads it.
    Exif,
    /// A chunk whose CRC does not match, or no `IEND`: libvips' loader says what that
    /// is (a corrupt critical chunk is an error there; the `png` crate would find an
    /// `IDAT` CRC only after the last row, too late to fall back).
    Damaged,
}

/// Whether `source` may take the fast path, from its chunks up to the first `IDAT`.
pub fn eligible(source: &[u8]) -> Result<Layout, Ineligible> {
    let rest = source.strip_prefix(SIGNATURE).ok_or(Ineligible::NotPng)?;
    let mut chunks = Chunks(rest);
    let (kind, ihdr) = chunks.next().ok_or(Ineligible::NotPng)?;
    if kind != *b"IHDR" || ihdr.len() != 13 {
        return Err(Ineligible::NotPng);
    }
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (width, height) = (be32(&ihdr[0..4]), be32(&ihdr[4..8]));
    let (depth, colour, interlace) = (ihdr[8], ihdr[9], ihdr[12]);
    if width == 0 || height == 0 {
        return Err(Ineligible::NotPng);
    }
    let bands = match colour {
        0 => 1,
        2 => 3,
        3 => return Err(Ineligible::Palette),
        4 => 2,
        6 => 4,
        other => return Err(Ineligible::ColourType(other)),
    };
    if depth != 8 {
        return Err(Ineligible::BitDepth(depth));
    }
    if interlace != 0 {
        return Err(Ineligible::Interlaced);
    }
    loop {
        match chunks.next().ok_or(Ineligible::NotPng)? {
            (kind, _) if kind == *b"IDAT" => break,
            (kind, _) if kind == *b"tRNS" => return Err(Ineligible::Transparency),
            (kind, _) if kind == *b"acTL" => return Err(Ineligible::Animated),
            (kind, _) if kind == *b"eXIf" => return Err(Ineligible::Exif),
            (kind, _) if kind == *b"IEND" => return Err(Ineligible::NotPng),
            _ => {}
        }
    }
    if !intact(rest) {
        return Err(Ineligible::Damaged);
    }
    Ok(Layout {
        width,
        height,
        bands,
    })
}

/// Every chunk's CRC matches, up to and including `IEND`. CRC-32 runs at several GB/s, a
/// small part of a decode.
fn intact(mut rest: &[u8]) -> bool {
    loop {
        let Some(head) = rest.get(..8) else {
            return false;
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(end) = len.checked_add(12) else {
            return false;
        };
        let Some(chunk) = rest.get(..end) else {
            return false;
        };
        let stored = u32::from_be_bytes([
            chunk[end - 4],
            chunk[end - 3],
            chunk[end - 2],
            chunk[end - 1],
        ]);
        if crc32fast::hash(&chunk[4..end - 4]) != stored {
            return false;
        }
        if &chunk[4..8] == b"IEND" {
            return true;
        }
        rest = &rest[end..];
    }
}

/// PNG chunks as (type, data), CRC not checked (see [`intact`]).
struct Chunks<'a>(&'a [u8]);

impl<'a> Iterator for Chunks<'a> {
    type Item = ([u8; 4], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let head = self.0.get(..8)?;
        let len = u32::from_be_bytes(head[0..4].try_into().ok()?) as usize;
        let kind: [u8; 4] = head[4..8].try_into().ok()?;
        let data = self.0.get(8..8usize.checked_add(len)?)?;
        self.0 = self.0.get(8 + len + 4..)?;
        Some((kind, data))
    }
}

/// The rows of a PNG, as the `png` crate unfilters them.
struct PngRows<'a> {
    reader: png::Reader<Cursor<&'a [u8]>>,
}

/// Why the `png` crate gave no next row (as [`RowsError::Source`]: a failed fast decode,
/// which libvips' loader then decodes again).
#[derive(Debug, thiserror::Error)]
enum PngRowError {
    #[error("fewer rows than the header says")]
    FewerRows,
    #[error(transparent)]
    Decode(png::DecodingError),
}

impl RowSource for PngRows<'_> {
    fn next_row(&mut self, row: &mut [u8]) -> Result<(), RowsError> {
        let error = match self.reader.read_row(row) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => PngRowError::FewerRows,
            Err(e) => PngRowError::Decode(e),
        };
        Err(RowsError::Source(Box::new(error)))
    }
}

/// libvips' `thumbnail` of `source` to exactly `target` (sRGB when `to_srgb`), in memory,
/// with the rows decoded by the `png` crate: `None` when `source` is not eligible (see
/// [`eligible`]) or anything on the way fails, and libvips' own loader is to decode it.
/// `header` is what `render::inspect` read; it must agree with `IHDR`. The render records
/// which ran on its `decode` phase (`decoder = "png_fast"`).
pub fn thumbnail(
    source: &[u8],
    header: &Header,
    target: Size,
    to_srgb: bool,
) -> Option<Image<'static>> {
    let layout = eligible(source).ok()?;
    let agrees = header.width == layout.width
        && header.height == layout.height
        && header.bands == layout.bands
        && header.sample_bytes == 1
        && header.pages == 1
        && !header.is_cmyk;
    if !agrees {
        return None;
    }
    match decode(source, layout, target, to_srgb) {
        Ok(image) => Some(image),
        Err(e) => {
            tracing::debug!(error = %e, "fast PNG decode failed: libvips' loader decodes it");
            None
        }
    }
}

fn decode(
    source: &[u8],
    layout: Layout,
    target: Size,
    to_srgb: bool,
) -> Result<Image<'static>, VipsError> {
    let png_error = |e: png::DecodingError| VipsError::new("png", e.to_string());
    // As libvips' loader: CRCs checked (an ancillary chunk with a bad one is skipped),
    // Adler-32 not. Text and the ICC profile are not needed: the header libvips read has
    // them.
    let mut options = png::DecodeOptions::default();
    options.set_ignore_adler32(true);
    options.set_ignore_text_chunk(true);
    options.set_ignore_iccp_chunk(true);
    let mut decoder = png::Decoder::new_with_options(Cursor::new(source), options);
    decoder.set_transformations(png::Transformations::IDENTITY);
    let reader = decoder.read_info().map_err(png_error)?;
    let info = reader.info();
    let same = info.width == layout.width
        && info.height == layout.height
        && info.bit_depth == png::BitDepth::Eight
        && info.color_type.samples() == layout.bands as usize
        && !info.interlaced;
    if !same {
        return Err(VipsError::new("png", "header differs from IHDR"));
    }
    // The loader's image of the same bytes, header only: its metadata goes on ours.
    let like = Image::open(source)?;
    let rows = Image::from_rows(&like, Box::new(PngRows { reader }))?;
    rows.thumbnail(target.width, target.height, to_srgb)?
        .materialize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32fast::hash(&out[4..]);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn png(depth: u8, colour: u8, interlace: u8, extra: &[&[u8; 4]]) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&640u32.to_be_bytes());
        ihdr.extend_from_slice(&480u32.to_be_bytes());
        ihdr.extend_from_slice(&[depth, colour, 0, 0, interlace]);
        let mut out = SIGNATURE.to_vec();
        out.extend(chunk(b"IHDR", &ihdr));
        for kind in extra {
            out.extend(chunk(kind, b"x"));
        }
        out.extend(chunk(b"IDAT", b"zz"));
        out.extend(chunk(b"IEND", b""));
        out
    }

    #[test]
    fn eight_bit_grey_and_colour_with_or_without_alpha_are_eligible() {
        for (colour, bands) in [(0, 1), (4, 2), (2, 3), (6, 4)] {
            let layout = eligible(&png(8, colour, 0, &[b"iCCP", b"gAMA", b"pHYs"]));
            assert_eq!(
                layout,
                Ok(Layout {
                    width: 640,
                    height: 480,
                    bands
                })
            );
        }
    }

    #[test]
    fn what_libvips_transforms_goes_to_libvips() {
        assert_eq!(eligible(&png(16, 2, 0, &[])), Err(Ineligible::BitDepth(16)));
        assert_eq!(eligible(&png(4, 0, 0, &[])), Err(Ineligible::BitDepth(4)));
        assert_eq!(
            eligible(&png(8, 3, 0, &[b"PLTE"])),
            Err(Ineligible::Palette)
        );
        assert_eq!(eligible(&png(8, 2, 1, &[])), Err(Ineligible::Interlaced));
        assert_eq!(
            eligible(&png(8, 2, 0, &[b"tRNS"])),
            Err(Ineligible::Transparency)
        );
        assert_eq!(
            eligible(&png(8, 6, 0, &[b"acTL"])),
            Err(Ineligible::Animated)
        );
        assert_eq!(eligible(&png(8, 6, 0, &[b"eXIf"])), Err(Ineligible::Exif));
        assert_eq!(eligible(&png(8, 5, 0, &[])), Err(Ineligible::ColourType(5)));
    }

    #[test]
    fn a_bad_crc_anywhere_or_no_iend_goes_to_libvips() {
        let good = png(8, 2, 0, &[b"pHYs"]);
        assert!(eligible(&good).is_ok());
        // The last byte of each chunk's CRC: IHDR, pHYs, IDAT, IEND.
        let mut ends = Vec::new();
        let mut at = 8;
        while at < good.len() {
            let len = u32::from_be_bytes(good[at..at + 4].try_into().unwrap()) as usize;
            at += 12 + len;
            ends.push(at - 1);
        }
        for (i, end) in ends.into_iter().enumerate() {
            let mut bad = good.clone();
            bad[end] ^= 1;
            assert_eq!(eligible(&bad), Err(Ineligible::Damaged), "chunk {i}");
        }
        assert_eq!(eligible(&good[..good.len() - 12]), Err(Ineligible::Damaged));
    }

    #[test]
    fn chunks_after_the_first_idat_do_not_matter() {
        let mut bytes = png(8, 2, 0, &[]);
        let iend = bytes.len() - 12;
        bytes.splice(iend..iend, chunk(b"tRNS", b"x"));
        assert!(eligible(&bytes).is_ok());
    }

    #[test]
    fn anything_that_is_not_a_walkable_png_is_not_eligible() {
        let good = png(8, 2, 0, &[]);
        assert_eq!(eligible(b"GIF89a"), Err(Ineligible::NotPng));
        // Cut inside IHDR, or before any IDAT.
        assert_eq!(eligible(&good[..20]), Err(Ineligible::NotPng));
        assert_eq!(eligible(&good[..33]), Err(Ineligible::NotPng));
        let mut no_idat = SIGNATURE.to_vec();
        no_idat.extend_from_slice(&good[8..33]);
        no_idat.extend(chunk(b"IEND", b""));
        assert_eq!(eligible(&no_idat), Err(Ineligible::NotPng));
        let mut empty = good.clone();
        empty[16..20].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(eligible(&empty), Err(Ineligible::NotPng));
    }
}
