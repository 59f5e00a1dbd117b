//! Counting the work a source asks for from its container markers, before any pixel is
//! decoded: scans of a JPEG, frames of a GIF or WebP, pages of a TIFF.
//!
//! Why not ask libvips: its header says too little and sometimes says it wrong. A
//! progressive JPEG's decode cost grows with its scan count (every scan revisits every
//! coefficient of the whole image), which no header field reports. Page counts are not
//! the file's either: `vips_image_get_n_pages` answers 1 once the `n-pages` field reaches
//! 10,000 (a 10,000-page TIFF reads as one page), and libvips 8.14's GIF loader stops at
//! 4,097 frames ("Excessive number of frames") and reports that many. So limits are
//! checked against what these walkers count, which is what the file says.
//!
//! Every walker is pure, allocates nothing, runs in time linear in the input (each loop
//! either advances through `bytes` or is capped) and never panics on hostile input: a
//! truncated file yields the count so far, and `None` means "not this format".

/// Number of SOS (start-of-scan) segments in a JPEG, i.e. how many passes a decoder makes
/// over the image: 1 for a baseline JPEG, about 10 for a typical progressive one, and as
/// many as an attacker likes otherwise, each costing a full pass over every coefficient.
///
/// Walks the markers from SOI: segments with a length are skipped by it; after an SOS
/// header the entropy-coded data is skipped up to the next marker (a 0xFF that is not a
/// stuffed 0xFF00, not RST0–RST7 and not a fill byte). Stops at EOI or the end of the
/// data. `None` when `bytes` does not start with SOI.
pub fn jpeg_scans(bytes: &[u8]) -> Option<u32> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut scans = 0u32;
    let mut pos = 2;
    loop {
        // Find the next marker's 0xFF. Between segments there should be none, but
        // decoders skip stray bytes (libjpeg warns "extraneous bytes"), so do the same.
        let Some(ff) = find_ff(bytes, pos) else {
            return Some(scans);
        };
        // Any number of 0xFF fill bytes may precede the marker code.
        let Some(code_at) = skip_fill(bytes, ff + 1) else {
            return Some(scans);
        };
        let code = bytes[code_at];
        pos = code_at + 1;
        match code {
            // EOI: decoders stop here, whatever follows.
            0xD9 => return Some(scans),
            // Markers without a length: SOI, RST0–RST7, TEM; 0x00 is a stray stuffed byte.
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = be_u16(bytes, pos) else {
            return Some(scans);
        };
        // The length counts itself; anything shorter is corrupt and decoders give up.
        if len < 2 {
            return Some(scans);
        }
        pos += usize::from(len);
        if code == 0xDA {
            scans = scans.saturating_add(1);
            match skip_entropy_data(bytes, pos) {
                Some(marker) => pos = marker,
                None => return Some(scans),
            }
        }
    }
}

/// Index of the first 0xFF at or after `from`.
fn find_ff(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    rest.iter().position(|&b| b == 0xFF).map(|i| from + i)
}

/// Index of the first byte at or after `from` that is not a 0xFF fill byte.
fn skip_fill(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    rest.iter().position(|&b| b != 0xFF).map(|i| from + i)
}

/// Skips entropy-coded data starting at `from`; returns the index of the 0xFF that starts
/// the next marker, or `None` at the end of the data. Each byte is looked at once.
pub(crate) fn skip_entropy_data(bytes: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    loop {
        let ff = find_ff(bytes, pos)?;
        let code_at = skip_fill(bytes, ff + 1)?;
        match bytes[code_at] {
            // A stuffed data byte 0xFF00, or a restart marker: still inside the scan.
            0x00 | 0xD0..=0xD7 => pos = code_at + 1,
            _ => return Some(ff),
        }
    }
}

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Number of images (frames) in a GIF87a/GIF89a, counted at each image descriptor (0x2C)
/// the block stream reaches, so a frame cut off by truncation still counts: a decoder
/// starts work on it. Extensions and image data are skipped by their sub-block lengths;
/// the walk stops at the trailer (0x3B), an unknown block or the end of the data.
/// `None` when `bytes` does not start with a GIF signature.
///
/// libvips 8.14 reports at most 4,097 frames for a GIF (and decodes no more), so a GIF
/// of 10,000 frames is one whose page count libvips understates; this counts them all.
pub fn gif_frames(bytes: &[u8]) -> Option<u32> {
    if !(bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) {
        return None;
    }
    let mut frames = 0u32;
    // Logical screen descriptor: width, height (2 bytes each), packed, background, aspect.
    let Some(&packed) = bytes.get(10) else {
        return Some(frames);
    };
    let mut pos = 13 + colour_table_len(packed);
    loop {
        let Some(&block) = bytes.get(pos) else {
            return Some(frames);
        };
        pos += 1;
        match block {
            // Extension: a label byte, then sub-blocks.
            0x21 => pos += 1,
            // Image descriptor: left, top, width, height (2 bytes each), packed; then an
            // optional local colour table and the LZW minimum code size, then sub-blocks.
            0x2C => {
                frames = frames.saturating_add(1);
                let Some(&packed) = bytes.get(pos + 8) else {
                    return Some(frames);
                };
                pos += 9 + colour_table_len(packed) + 1;
            }
            // Trailer, or something no decoder would get past.
            _ => return Some(frames),
        }
        match skip_sub_blocks(bytes, pos) {
            Some(next) => pos = next,
            None => return Some(frames),
        }
    }
}

/// Bytes of the colour table a GIF descriptor's packed field announces (0 when absent).
fn colour_table_len(packed: u8) -> usize {
    if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    }
}

/// Skips GIF data sub-blocks (length byte, then that many bytes) up to and including the
/// zero-length terminator; `None` when the data ends first.
fn skip_sub_blocks(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = usize::from(*bytes.get(pos)?);
        pos += 1;
        if len == 0 {
            return Some(pos);
        }
        pos += len;
    }
}

/// Number of frames in a RIFF WebP: the top-level `ANMF` chunks of an animation, or 1 for
/// a still image. `None` when `bytes` is not a RIFF `WEBP` file.
///
/// Chunks are walked by their sizes (padded to even lengths) within both the RIFF size
/// and the data, so a frame's own sub-chunks are never mistaken for frames.
pub fn webp_frames(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return None;
    }
    let riff_end = 8u64 + u64::from(le_u32(bytes, 4)?);
    let end = usize::try_from(riff_end).map_or(bytes.len(), |e| e.min(bytes.len()));
    let mut frames = 0u32;
    let mut pos = 12usize;
    while let Some(header_end) = pos.checked_add(8).filter(|&e| e <= end) {
        let header = &bytes[pos..header_end];
        if &header[0..4] == b"ANMF" {
            frames = frames.saturating_add(1);
        }
        let size = u64::from(le_u32(header, 4)?);
        // Every step advances by at least the 8-byte chunk header.
        let next = pos as u64 + 8 + size + (size & 1);
        match usize::try_from(next) {
            Ok(next) => pos = next,
            Err(_) => break,
        }
    }
    Some(frames.max(1))
}

/// The canvas size a RIFF WebP declares in its first chunk (`VP8X` canvas, or the frame
/// header of a simple lossy `VP8 ` or lossless `VP8L` image). libvips 8.14's WebP loader
/// allocates the whole canvas while reading the header, so the pixel limit has to be
/// checked before libvips sees the file. `None` when the first chunk says nothing usable.
pub fn webp_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return None;
    }
    let chunk = bytes.get(12..16)?;
    let data = bytes.get(20..)?;
    let u24 = |at: usize| -> Option<u32> {
        let b = data.get(at..at + 3)?;
        Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
    };
    match chunk {
        b"VP8X" => Some((u24(4)? + 1, u24(7)? + 1)),
        b"VP8 " => {
            // 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
            if data.get(3..6)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            let w = u16::from_le_bytes([*data.get(6)?, *data.get(7)?]) & 0x3fff;
            let h = u16::from_le_bytes([*data.get(8)?, *data.get(9)?]) & 0x3fff;
            Some((u32::from(w), u32::from(h)))
        }
        b"VP8L" => {
            // Signature 0x2f, then width - 1 and height - 1 in 14 bits each.
            if *data.first()? != 0x2f {
                return None;
            }
            let bits = le_u32(data, 1)?;
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        _ => None,
    }
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The most TIFF pages [`tiff_pages`] will count; a longer chain reports this many.
pub const TIFF_PAGE_CAP: u32 = 100_000;

/// Number of pages (IFDs) in a TIFF, classic (`II*\0`, `MM\0*`) or BigTIFF (`II+\0`,
/// `MM\0+`), little- or big-endian, following the next-IFD offsets from the header.
/// `None` when `bytes` is not a TIFF or its header is cut short.
///
/// A directory counts when its entries lie within the data (libtiff cannot read it
/// otherwise); a missing next-IFD offset after it ends the chain, as in libtiff.
///
/// Offsets may legally point backwards, so a chain is not required to increase; instead
/// a loop (an offset that repeats, which makes libtiff report "directory loop detected")
/// is found with Brent's cycle detection in O(1) memory, and the walk reports the number
/// of distinct directories before the repeat. The count never exceeds [`TIFF_PAGE_CAP`]
/// and the walk reads at most three times that many directories.
pub fn tiff_pages(bytes: &[u8]) -> Option<u32> {
    let (layout, first) = tiff_header(bytes)?;
    if first == 0 {
        return Some(0);
    }
    // Brent: the tortoise waits at x(2^k - 1) while the hare runs up to 2^k steps ahead;
    // they meet once the tortoise is inside the loop and the power covers its length.
    let mut tortoise = first;
    let mut hare = first;
    let mut hare_index = 0u32;
    let mut power = 1u32;
    let mut lambda = 0u32;
    loop {
        match ifd_link(bytes, layout, hare) {
            // hare_index directories before this one were complete.
            Link::Broken => return Some(hare_index.min(TIFF_PAGE_CAP)),
            Link::End => return Some((hare_index + 1).min(TIFF_PAGE_CAP)),
            Link::Next(next) => {
                hare = next;
                hare_index += 1;
                lambda += 1;
            }
        }
        if hare == tortoise {
            break;
        }
        // Brent meets within 3 × (distinct directories) steps; past that, there are more
        // than the cap.
        if hare_index >= 3 * TIFF_PAGE_CAP {
            return Some(TIFF_PAGE_CAP);
        }
        if lambda == power {
            tortoise = hare;
            power = power.saturating_mul(2);
            lambda = 0;
        }
    }
    // `lambda` is the loop's length; the loop starts at index mu, found by running two
    // walkers lambda apart from the start until they meet. Every directory on the way was
    // read above, so the links below are all `Next`; anything else just ends the count.
    let mut ahead = first;
    for _ in 0..lambda {
        match ifd_link(bytes, layout, ahead) {
            Link::Next(next) => ahead = next,
            _ => return Some(lambda.min(TIFF_PAGE_CAP)),
        }
    }
    let mut behind = first;
    let mut mu = 0u32;
    while behind != ahead {
        match (
            ifd_link(bytes, layout, behind),
            ifd_link(bytes, layout, ahead),
        ) {
            (Link::Next(b), Link::Next(a)) => {
                behind = b;
                ahead = a;
                mu += 1;
            }
            _ => break,
        }
        if mu >= TIFF_PAGE_CAP {
            break;
        }
    }
    Some(mu.saturating_add(lambda).min(TIFF_PAGE_CAP))
}

/// The layout a TIFF header announces and the offset of its first directory. A BigTIFF
/// header also carries the size of its offsets (8) and a reserved 0, which libtiff
/// checks before reading anything; so does this.
fn tiff_header(bytes: &[u8]) -> Option<(TiffLayout, u64)> {
    let (order, big) = match bytes.get(0..4)? {
        [b'I', b'I', 42, 0] => (ByteOrder::Little, false),
        [b'M', b'M', 0, 42] => (ByteOrder::Big, false),
        [b'I', b'I', 43, 0] => (ByteOrder::Little, true),
        [b'M', b'M', 0, 43] => (ByteOrder::Big, true),
        _ => return None,
    };
    let layout = TiffLayout { order, big };
    if !big {
        return Some((layout, u64::from(order.u32(bytes, 4)?)));
    }
    if order.u16(bytes, 4)? != 8 || order.u16(bytes, 6)? != 0 {
        return None;
    }
    Some((layout, order.u64(bytes, 8)?))
}

#[derive(Debug, Clone, Copy)]
enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn u16(self, bytes: &[u8], at: usize) -> Option<u16> {
        let b = bytes.get(at..at.checked_add(2)?)?;
        Some(match self {
            ByteOrder::Little => u16::from_le_bytes([b[0], b[1]]),
            ByteOrder::Big => u16::from_be_bytes([b[0], b[1]]),
        })
    }

    fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(match self {
            ByteOrder::Little => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            ByteOrder::Big => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        })
    }

    fn u64(self, bytes: &[u8], at: usize) -> Option<u64> {
        let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u64::from_le_bytes(b),
            ByteOrder::Big => u64::from_be_bytes(b),
        })
    }
}

/// How a TIFF's directories are laid out: its byte order, and whether it is a BigTIFF
/// (8-byte entry count, 20-byte entries, 8-byte offsets) rather than a classic TIFF
/// (2-byte count, 12-byte entries, 4-byte offsets).
#[derive(Debug, Clone, Copy)]
struct TiffLayout {
    order: ByteOrder,
    big: bool,
}

/// What follows one TIFF directory.
enum Link {
    /// The directory's entries run past the data: it is not a page.
    Broken,
    /// A complete directory, the last one.
    End,
    /// A complete directory followed by the one at this offset.
    Next(u64),
}

/// Reads the directory at `offset`: an entry count, the entries, then the offset of the
/// next directory (0 = none), each sized as `layout` says.
fn ifd_link(bytes: &[u8], layout: TiffLayout, offset: u64) -> Link {
    let Ok(offset) = usize::try_from(offset) else {
        return Link::Broken;
    };
    let (count_len, entry_len) = if layout.big { (8, 20) } else { (2, 12) };
    let entries = if layout.big {
        layout.order.u64(bytes, offset)
    } else {
        layout.order.u16(bytes, offset).map(u64::from)
    };
    let Some(entries) = entries else {
        return Link::Broken;
    };
    // `offset + count_len` is within the data (the count was read). A BigTIFF count is
    // 64 bits of anything: checked, so a huge one is just a directory that runs past the
    // data.
    let next_at = usize::try_from(entries)
        .ok()
        .and_then(|n| n.checked_mul(entry_len))
        .and_then(|n| n.checked_add(offset + count_len));
    let Some(next_at) = next_at.filter(|&at| at <= bytes.len()) else {
        return Link::Broken;
    };
    let next = if layout.big {
        layout.order.u64(bytes, next_at)
    } else {
        layout.order.u32(bytes, next_at).map(u64::from)
    };
    match next {
        Some(0) | None => Link::End,
        Some(next) => Link::Next(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- WebP canvas ----

    #[test]
    fn webp_dimensions_from_every_first_chunk() {
        // A real lossless (VP8L) file.
        let mut lossless = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::webp::WebPEncoder::new_lossless(&mut lossless),
            &[0u8; 7 * 5 * 3],
            7,
            5,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
        assert_eq!(webp_dimensions(&lossless), Some((7, 5)));
        // A VP8X header declaring a 16383×16383 canvas.
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0xfe, 0x3f, 0x00, 0xfe, 0x3f, 0x00]);
        assert_eq!(webp_dimensions(&vp8x), Some((16383, 16383)));
        // A lossy frame header: tag, start code, 14-bit sizes.
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \x10\0\0\0".to_vec();
        vp8.extend_from_slice(&[0, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
        assert_eq!(webp_dimensions(&vp8), Some((320, 240)));
        for bad in [&b"RIFF\0\0\0\0WEBP"[..], b"not a webp", &vp8[..24]] {
            assert_eq!(webp_dimensions(bad), None, "{bad:?}");
        }
    }

    // ---- JPEG ----

    /// A marker segment with a length: FF code, length (which counts itself), payload.
    fn segment(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, code];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    /// An SOS header for one component, then entropy data full of the byte patterns a
    /// walker must not mistake for markers: stuffed 0xFF00 and RST0–RST7.
    fn scan(entropy: &[u8]) -> Vec<u8> {
        let mut s = segment(0xDA, &[1, 1, 0x00, 0, 63, 0]);
        s.extend_from_slice(entropy);
        s
    }

    const TRICKY_ENTROPY: &[u8] = &[
        0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0x00, 0xFF, 0xD7, 0x78, 0xFF, 0xFF, 0x00,
        0x9A,
    ];

    fn jpeg_with_scans(n: usize) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        j.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        j.extend(segment(0xDB, &[0; 65]));
        // SOF2 (progressive): 8-bit, 8×8, one component; its length hides an 0xFFDA.
        j.extend(segment(0xC2, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
        j.extend(segment(0xFE, &[0xFF, 0xDA, 0xFF, 0xD9])); // a COM that looks like markers
        j.extend(segment(0xC4, &[0; 17]));
        for _ in 0..n {
            j.extend(scan(TRICKY_ENTROPY));
            // Fill bytes before the next marker (a DHT between scans, as real files have).
            j.extend_from_slice(&[0xFF, 0xFF]);
            j.extend(segment(0xC4, &[0; 17]));
        }
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    }

    #[test]
    fn jpeg_counts_scans_past_stuffing_restarts_and_fill() {
        assert_eq!(jpeg_scans(&jpeg_with_scans(0)), Some(0));
        assert_eq!(jpeg_scans(&jpeg_with_scans(1)), Some(1));
        assert_eq!(jpeg_scans(&jpeg_with_scans(7)), Some(7));
    }

    #[test]
    fn jpeg_scan_ending_in_fill_bytes_before_eoi() {
        let mut j = vec![0xFF, 0xD8];
        j.extend(scan(TRICKY_ENTROPY));
        j.extend(scan(&[0x01, 0xFF, 0xFF, 0xFF]));
        j.extend_from_slice(&[0xD9]); // FF FF FF D9: fill, then EOI
        j.extend(scan(&[])); // after EOI: not counted
        assert_eq!(jpeg_scans(&j), Some(2));
    }

    #[test]
    fn jpeg_truncated_returns_count_so_far() {
        let full = jpeg_with_scans(3);
        assert_eq!(jpeg_scans(&full[..full.len() - 2]), Some(3)); // no EOI
        for cut in 0..full.len() {
            let n = jpeg_scans(&full[..cut]);
            assert!(n.is_none() || n <= Some(3), "cut at {cut}: {n:?}");
        }
        assert_eq!(jpeg_scans(&full[..1]), None);
        assert_eq!(jpeg_scans(&[0xFF, 0xD8]), Some(0));
        // A length that runs past the end, and a corrupt length.
        assert_eq!(jpeg_scans(&[0xFF, 0xD8, 0xFF, 0xDA, 0x40, 0x00]), Some(1));
        assert_eq!(jpeg_scans(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x01]), Some(0));
    }

    #[test]
    fn jpeg_not_a_jpeg() {
        assert_eq!(jpeg_scans(b""), None);
        assert_eq!(jpeg_scans(b"\x89PNG\r\n\x1a\n"), None);
    }

    #[test]
    fn jpeg_walk_is_linear_on_long_runs() {
        // Megabytes of 0xFF, of stuffed bytes and of restart markers: one pass each.
        let mut j = vec![0xFF, 0xD8];
        j.extend(scan(&[]));
        j.extend(std::iter::repeat_n(0xFF, 4 << 20));
        assert_eq!(jpeg_scans(&j), Some(1));
        let mut j = vec![0xFF, 0xD8];
        j.extend(scan(&[]));
        for _ in 0..(1 << 20) {
            j.extend_from_slice(&[0xFF, 0x00, 0xFF, 0xD3]);
        }
        j.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(jpeg_scans(&j), Some(1));
    }

    // ---- GIF ----

    fn gif(frames: usize) -> Vec<u8> {
        let mut g = b"GIF89a".to_vec();
        g.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]); // 1×1, global table of 2 colours
        g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
        // NETSCAPE2.0 loop extension.
        g.extend_from_slice(&[0x21, 0xFF, 11]);
        g.extend_from_slice(b"NETSCAPE2.0");
        g.extend_from_slice(&[3, 1, 0, 0, 0]);
        for i in 0..frames {
            // Graphic control extension, and a comment whose data holds 0x2C and 0x3B.
            g.extend_from_slice(&[0x21, 0xF9, 4, 0, 10, 0, 0, 0]);
            g.extend_from_slice(&[0x21, 0xFE, 3, 0x2C, 0x3B, 0x21, 0]);
            // Image descriptor; the second frame carries a local colour table of 4.
            let packed = if i == 1 { 0x81 } else { 0 };
            g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, packed]);
            if i == 1 {
                g.extend_from_slice(&[0; 12]);
            }
            g.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // LZW: clear, 0, end
        }
        g.push(0x3B);
        g
    }

    #[test]
    fn gif_counts_frames_past_extensions_and_local_tables() {
        assert_eq!(gif_frames(&gif(0)), Some(0));
        assert_eq!(gif_frames(&gif(1)), Some(1));
        assert_eq!(gif_frames(&gif(3)), Some(3));
        let mut g87 = gif(3);
        g87[..6].copy_from_slice(b"GIF87a");
        assert_eq!(gif_frames(&g87), Some(3));
    }

    #[test]
    fn gif_truncated_and_trailer() {
        let full = gif(3);
        assert_eq!(gif_frames(&full[..full.len() - 1]), Some(3)); // no trailer
        for cut in 6..full.len() {
            let n = gif_frames(&full[..cut]);
            assert!(n.is_some() && n <= Some(3), "cut at {cut}: {n:?}");
        }
        assert_eq!(gif_frames(&full[..6]), Some(0));
        // Nothing after the trailer counts.
        let mut more = full.clone();
        more.extend_from_slice(&gif(2)[13 + 6..]);
        assert_eq!(gif_frames(&more), Some(3));
    }

    #[test]
    fn gif_not_a_gif() {
        assert_eq!(gif_frames(b"GIF8"), None);
        assert_eq!(gif_frames(b"GIF90a......"), None);
    }

    // ---- WebP ----

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = kind.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut w = b"RIFF".to_vec();
        w.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
        w.extend_from_slice(b"WEBP");
        w.extend(body);
        w
    }

    #[test]
    fn webp_still_is_one_frame() {
        assert_eq!(webp_frames(&riff(&[chunk(b"VP8L", &[0x2F; 9])])), Some(1));
        assert_eq!(webp_frames(&riff(&[])), Some(1));
    }

    #[test]
    fn webp_counts_top_level_anmf_only() {
        // Frame payloads are odd-sized (padding) and hold a nested "ANMF" lookalike.
        let mut frame = vec![0u8; 16];
        frame.extend(chunk(b"VP8L", b"ANMF\x00\x00\x00\x00x"));
        let w = riff(&[
            chunk(b"VP8X", &[0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            chunk(b"ANIM", &[0; 6]),
            chunk(b"ANMF", &frame),
            chunk(b"ANMF", &frame[..frame.len() - 1]),
        ]);
        assert_eq!(webp_frames(&w), Some(2));
        // Truncated inside the second frame: its header was seen, so it counts.
        assert_eq!(webp_frames(&w[..w.len() - 4]), Some(2));
        // Chunks past the RIFF size are not part of the file.
        let mut short = w.clone();
        let riff_size = (w.len() - 8 - (8 + frame.len() - 1 + 1)) as u32;
        short[4..8].copy_from_slice(&riff_size.to_le_bytes());
        assert_eq!(webp_frames(&short), Some(1));
        // A chunk size near u32::MAX ends the walk.
        let mut huge = riff(&[chunk(b"ANMF", &[])]);
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(webp_frames(&huge), Some(1));
    }

    #[test]
    fn webp_not_a_webp() {
        assert_eq!(webp_frames(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(webp_frames(b"RIFF"), None);
    }

    // ---- TIFF ----

    /// A TIFF of directories at the given offsets (each with one dummy entry), linked in
    /// the order given; `last_next` is the next-IFD offset of the last one.
    fn tiff(little: bool, offsets: &[u32], last_next: u32) -> Vec<u8> {
        let u16b = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let u32b = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let end = offsets.iter().max().map_or(8, |&o| o as usize + 18);
        let mut t = vec![0u8; end];
        t[0..2].copy_from_slice(if little { b"II" } else { b"MM" });
        t[2..4].copy_from_slice(&u16b(42));
        t[4..8].copy_from_slice(&u32b(offsets.first().copied().unwrap_or(0)));
        for (i, &o) in offsets.iter().enumerate() {
            let o = o as usize;
            let next = offsets.get(i + 1).copied().unwrap_or(last_next);
            t[o..o + 2].copy_from_slice(&u16b(1));
            t[o + 2..o + 4].copy_from_slice(&u16b(256)); // ImageWidth
            t[o + 14..o + 18].copy_from_slice(&u32b(next));
        }
        t
    }

    #[test]
    fn tiff_counts_directories_in_both_byte_orders() {
        for little in [true, false] {
            assert_eq!(tiff_pages(&tiff(little, &[8], 0)), Some(1));
            assert_eq!(tiff_pages(&tiff(little, &[8, 40], 0)), Some(2));
            // Backwards offsets are legal.
            assert_eq!(tiff_pages(&tiff(little, &[100, 40, 8], 0)), Some(3));
            assert_eq!(tiff_pages(&tiff(little, &[], 0)), Some(0));
        }
    }

    #[test]
    fn tiff_loops_count_distinct_directories() {
        // Second directory points back at the first.
        assert_eq!(tiff_pages(&tiff(true, &[8, 40], 8)), Some(2));
        // A directory pointing at itself.
        assert_eq!(tiff_pages(&tiff(false, &[8], 8)), Some(1));
        // A tail of 3, then a loop of 4.
        let offsets: Vec<u32> = (0..7).map(|i| 8 + 30 * i).collect();
        assert_eq!(tiff_pages(&tiff(true, &offsets, offsets[3])), Some(7));
        // Loops of every shape up to 40 directories.
        for len in 1..40u32 {
            let offsets: Vec<u32> = (0..len).map(|i| 8 + 30 * i).collect();
            for back in 0..len {
                let t = tiff(true, &offsets, offsets[back as usize]);
                assert_eq!(tiff_pages(&t), Some(len), "len {len}, back to {back}");
            }
        }
    }

    #[test]
    fn tiff_truncated_returns_count_so_far() {
        let t = tiff(true, &[8, 40], 0);
        assert_eq!(tiff_pages(&t[..40]), Some(1)); // second directory missing
        assert_eq!(tiff_pages(&t[..50]), Some(1)); // second directory's entry cut off
        assert_eq!(tiff_pages(&t[..54]), Some(2)); // only its next offset is missing
        assert_eq!(tiff_pages(&t[..9]), Some(0));
        // An offset beyond the data.
        assert_eq!(tiff_pages(&tiff(true, &[8], 1 << 30)), Some(1));
        assert_eq!(tiff_pages(&tiff(true, &[8], u32::MAX)), Some(1));
    }

    #[test]
    fn tiff_page_count_is_capped() {
        // Empty directories (count 0, next offset) 6 bytes apart, past the cap.
        let n = TIFF_PAGE_CAP as usize + 10;
        let mut t = b"II*\0\x08\0\0\0".to_vec();
        for i in 0..n {
            let next = if i + 1 == n {
                0
            } else {
                8 + 6 * (i as u32 + 1)
            };
            t.extend_from_slice(&0u16.to_le_bytes());
            t.extend_from_slice(&next.to_le_bytes());
        }
        assert_eq!(tiff_pages(&t), Some(TIFF_PAGE_CAP));
        // The same chain looping back to the first directory at its end.
        let len = t.len();
        t[len - 4..].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(tiff_pages(&t), Some(TIFF_PAGE_CAP));
    }

    #[test]
    fn tiff_not_a_tiff() {
        assert_eq!(tiff_pages(b"II*"), None);
        assert_eq!(tiff_pages(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(tiff_pages(b"II*\0\x08\0"), None); // no first offset
        assert_eq!(tiff_pages(b"II+\0\x08\0\0\0\x10\0\0"), None); // BigTIFF, cut short
    }

    // ---- BigTIFF ----

    /// A BigTIFF (8-byte offsets, 8-byte entry counts, 20-byte entries) of directories at
    /// the given offsets (each with one dummy entry), linked in the order given;
    /// `last_next` is the next-IFD offset of the last one.
    fn bigtiff(little: bool, offsets: &[u64], last_next: u64) -> Vec<u8> {
        let u16b = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let u64b = |v: u64| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        // Count (8), one entry (20), next offset (8).
        let end = offsets.iter().max().map_or(16, |&o| o as usize + 36);
        let mut t = vec![0u8; end];
        t[0..2].copy_from_slice(if little { b"II" } else { b"MM" });
        t[2..4].copy_from_slice(&u16b(43));
        t[4..6].copy_from_slice(&u16b(8));
        t[8..16].copy_from_slice(&u64b(offsets.first().copied().unwrap_or(0)));
        for (i, &o) in offsets.iter().enumerate() {
            let o = o as usize;
            let next = offsets.get(i + 1).copied().unwrap_or(last_next);
            t[o..o + 8].copy_from_slice(&u64b(1));
            t[o + 8..o + 10].copy_from_slice(&u16b(256)); // ImageWidth
            t[o + 28..o + 36].copy_from_slice(&u64b(next));
        }
        t
    }

    #[test]
    fn bigtiff_counts_directories_in_both_byte_orders() {
        for little in [true, false] {
            assert_eq!(tiff_pages(&bigtiff(little, &[16], 0)), Some(1));
            assert_eq!(tiff_pages(&bigtiff(little, &[16, 60], 0)), Some(2));
            assert_eq!(tiff_pages(&bigtiff(little, &[200, 60, 16], 0)), Some(3));
            assert_eq!(tiff_pages(&bigtiff(little, &[], 0)), Some(0));
            // Read with classic 12-byte entries this chain would end after one page.
            let offsets: Vec<u64> = (0..5).map(|i| 16 + 40 * i).collect();
            assert_eq!(tiff_pages(&bigtiff(little, &offsets, 0)), Some(5));
        }
    }

    #[test]
    fn bigtiff_loops_truncation_and_wild_values() {
        // Loops are found as in a classic TIFF.
        assert_eq!(tiff_pages(&bigtiff(true, &[16, 60], 16)), Some(2));
        let offsets: Vec<u64> = (0..7).map(|i| 16 + 40 * i).collect();
        assert_eq!(tiff_pages(&bigtiff(false, &offsets, offsets[3])), Some(7));
        // Cut inside the second directory, or only its next offset missing.
        let t = bigtiff(true, &[16, 60], 0);
        assert_eq!(tiff_pages(&t[..70]), Some(1));
        assert_eq!(tiff_pages(&t[..88]), Some(2));
        // Offsets past the data, past 4 GiB and at u64::MAX.
        for next in [1 << 20, 1 << 40, u64::MAX] {
            assert_eq!(tiff_pages(&bigtiff(true, &[16], next)), Some(1), "{next}");
        }
        // An entry count whose entries would overflow any address.
        for count in [u64::MAX, u64::MAX / 20 + 1, 1 << 40] {
            let mut t = bigtiff(true, &[16, 60], 0);
            t[60..68].copy_from_slice(&count.to_le_bytes());
            assert_eq!(tiff_pages(&t), Some(1), "{count}");
        }
        // A header whose offset size is not 8, or whose reserved field is not 0, is not
        // one libtiff reads.
        let mut t = bigtiff(true, &[16], 0);
        t[4] = 4;
        assert_eq!(tiff_pages(&t), None);
        let mut t = bigtiff(true, &[16], 0);
        t[6] = 1;
        assert_eq!(tiff_pages(&t), None);
    }

    #[test]
    fn bigtiff_page_count_is_capped() {
        // Empty directories (count 0, next offset) 16 bytes apart, past the cap.
        let n = TIFF_PAGE_CAP as usize + 10;
        let mut t = b"II+\0\x08\0\0\0".to_vec();
        t.extend_from_slice(&16u64.to_le_bytes());
        for i in 0..n {
            let next = if i + 1 == n {
                0
            } else {
                16 + 16 * (i as u64 + 1)
            };
            t.extend_from_slice(&0u64.to_le_bytes());
            t.extend_from_slice(&next.to_le_bytes());
        }
        assert_eq!(tiff_pages(&t), Some(TIFF_PAGE_CAP));
        let len = t.len();
        t[len - 8..].copy_from_slice(&16u64.to_le_bytes());
        assert_eq!(tiff_pages(&t), Some(TIFF_PAGE_CAP));
    }
}
