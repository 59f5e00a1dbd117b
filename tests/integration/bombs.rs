//! Deterministic generators of hostile inputs: files that are small, or cheap to make,
//! but announce or demand far more work than their size suggests. Made at test time (no
//! binaries in git); each is checked here with the container walkers in
//! `rendition_image::container`, which is how Rendition sees them before decoding.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use image::{Rgb, RgbImage};
use rendition_image::container::{gif_frames, jpeg_scans, tiff_pages};
use rendition_image::vips::{self, Image, SaveFormat};

use crate::harness::encode_jpeg;

/// A progressive JPEG of `width`×`height` deterministic RGB noise (encoded by libvips, so
/// the scan script is libjpeg's), followed by `repeats` extra scans before EOI. It is
/// hostile because a progressive decoder makes one pass over every block of the image per
/// scan, so decode time grows with `repeats` while each extra scan adds 16 bytes or so:
/// for 2000×2000, 3,000 extra scans (+48 KB) make `vipsthumbnail` ~8× slower, 30,000
/// (+480 KB) ~90× (17 s).
///
/// The extra scans are not copies of the file's last scan: libjpeg's progression ends
/// with refinement scans (`Ah` = 1), a repeated refinement gets one "inconsistent
/// progression" warning per coefficient, and libvips aborts a JPEG at 100 warnings, so
/// such a file is rejected on its second extra scan, quickly. Instead each extra scan is
/// a legal first pass (`Ah` = `Al` = 0) over the luma AC band that says "end of band" for
/// every block with EOB runs, using a Huffman table added for the purpose: libjpeg
/// accepts any number of them without a warning, and they leave every coefficient as it
/// was, so the image decodes to the same pixels.
pub fn repeated_scans_jpeg(width: u32, height: u32, repeats: usize) -> Vec<u8> {
    vips::init(1).expect("libvips starts");
    let baseline = encode_jpeg(&noise(width, height), 90);
    let progressive = Image::open(&baseline)
        .and_then(|img| img.materialize())
        .and_then(|img| {
            img.save(SaveFormat::Jpeg {
                quality: 85,
                progressive: true,
            })
        })
        .expect("libvips re-encodes the noise as a progressive JPEG");
    let layout = jpeg_layout(&progressive);
    let table = eob_run_table();
    let scan = eob_run_scan(layout.luma_id, layout.luma_blocks);
    let mut out = Vec::with_capacity(progressive.len() + table.len() + repeats * scan.len());
    out.extend_from_slice(&progressive[..layout.eoi]);
    out.extend_from_slice(&table);
    for _ in 0..repeats {
        out.extend_from_slice(&scan);
    }
    out.extend_from_slice(&progressive[layout.eoi..]);
    out
}

/// Noise from a fixed-seed xorshift: the same image every run, incompressible enough to
/// give the encoder real work.
fn noise(width: u32, height: u32) -> RgbImage {
    let mut state = 0x9E37_79B9u32;
    RgbImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [r, g, b, _] = state.to_le_bytes();
        Rgb([r, g, b])
    })
}

/// Where a JPEG's EOI is, and its first (luma) component's id and block count.
struct JpegLayout {
    eoi: usize,
    luma_id: u8,
    luma_blocks: u32,
}

/// Walks libvips' own output (well-formed: no fill bytes, no stray data), so it panics
/// rather than coping with anything else.
fn jpeg_layout(jpeg: &[u8]) -> JpegLayout {
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let mut frame: Option<&[u8]> = None;
    let mut pos = 2;
    let eoi = loop {
        assert_eq!(jpeg[pos], 0xFF, "marker expected at {pos}");
        let code = jpeg[pos + 1];
        match code {
            0xD9 => break pos,
            // Scans added after a DRI would need RST markers every interval.
            0xDD => panic!("restart intervals are not supported"),
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        if code == 0xC2 {
            frame = Some(&jpeg[pos + 4..pos + 2 + len]);
        }
        assert!(
            !matches!(code, 0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF),
            "libvips wrote a non-progressive frame (SOF {code:#x})"
        );
        pos += 2 + len;
        if code == 0xDA {
            // Entropy data runs to the next 0xFF that is not a stuffed 0xFF00 or RSTn.
            pos = loop {
                let ff = pos
                    + jpeg[pos..]
                        .iter()
                        .position(|&b| b == 0xFF)
                        .expect("scan data ends at a marker");
                match jpeg[ff + 1] {
                    0x00 | 0xD0..=0xD7 => pos = ff + 2,
                    _ => break ff,
                }
            };
        }
    };
    // SOF: precision, height, width, component count, then (id, H<<4|V, table) each.
    let frame = frame.expect("a progressive frame header (SOF2)");
    let height = u32::from(u16::from_be_bytes([frame[1], frame[2]]));
    let width = u32::from(u16::from_be_bytes([frame[3], frame[4]]));
    let components = &frame[6..6 + 3 * usize::from(frame[5])];
    let sampling = |c: &[u8]| (u32::from(c[1] >> 4), u32::from(c[1] & 0x0F));
    let h_max = components.chunks(3).map(|c| sampling(c).0).max().unwrap();
    let v_max = components.chunks(3).map(|c| sampling(c).1).max().unwrap();
    let (h, v) = sampling(&components[0..3]);
    // A single-component scan covers the component's own blocks, not whole MCUs.
    let blocks_across = (width * h).div_ceil(h_max).div_ceil(8);
    let blocks_down = (height * v).div_ceil(v_max).div_ceil(8);
    JpegLayout {
        eoi,
        luma_id: components[0],
        luma_blocks: blocks_across * blocks_down,
    }
}

/// The AC Huffman table slot the added scans use; libvips' output uses slots 0 and 1.
const EOB_TABLE: u8 = 3;

/// A DHT segment defining AC table [`EOB_TABLE`] with the 15 end-of-band-run symbols
/// EOB0–EOB14 (0x00, 0x10, …, 0xE0), each with a 4-bit code equal to its run class
/// (0000–1110; the all-ones code is not allowed).
fn eob_run_table() -> Vec<u8> {
    let mut seg = vec![0xFF, 0xC4, 0, 2 + 1 + 16 + 15, 0x10 | EOB_TABLE];
    let mut counts = [0u8; 16];
    counts[3] = 15; // 15 codes of length 4
    seg.extend_from_slice(&counts);
    seg.extend((0..15u8).map(|class| class << 4));
    seg
}

/// An SOS segment for a first-pass AC scan (Ss = 1, Se = 63, Ah = Al = 0) of one
/// component, whose data is EOB runs covering exactly `blocks` blocks: EOBn means a run
/// of 2^n plus n extra bits, so a run of up to 32,767 blocks costs 18 bits. Exact, since a
/// scan that ends early or carries unread bytes makes libjpeg warn.
fn eob_run_scan(component: u8, blocks: u32) -> Vec<u8> {
    let mut bits = BitWriter::default();
    let mut left = blocks;
    while left > 0 {
        let run = left.min(0x7FFF);
        let class = run.ilog2();
        bits.put(class, 4);
        bits.put(run - (1 << class), class);
        left -= run;
    }
    let mut seg = vec![0xFF, 0xDA, 0, 8, 1, component, EOB_TABLE, 1, 63, 0];
    seg.extend(bits.finish());
    seg
}

/// Packs bits MSB first into entropy-coded bytes (0xFF stuffed as 0xFF00).
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc = (self.acc << bits) | u64::from(value);
        self.len += bits;
        while self.len >= 8 {
            self.len -= 8;
            let byte = (self.acc >> self.len) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0x00);
            }
        }
    }

    /// Pads the last byte with 1 bits, as JPEG requires.
    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            let pad = 8 - self.len;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

/// A little-endian TIFF of a few KB whose one directory declares `width`×`height` pixels
/// of `samples` 8-bit samples each (MinIsBlack, ExtraSamples = 0 "unspecified" for all but
/// the first, contiguous planes, Deflate, one strip). It is hostile because the header is
/// all a loader checks before allocating: 8000×9000×200 announces 14.4 GB of pixels.
/// The strip is a valid zlib stream of 4 KB of zeros, far short of what is declared, so
/// decoding fails late, after the memory was asked for.
pub fn deep_tiff(width: u32, height: u32, samples: u16) -> Vec<u8> {
    assert!(samples >= 1, "a pixel has at least one sample");
    let strip = zlib_stored(&[0u8; 4096]);
    let extra = samples - 1;
    let entries: u16 = if extra > 0 { 11 } else { 10 };
    // Header | directory | BitsPerSample values | ExtraSamples values | strip. Values of
    // more than 4 bytes live outside the directory; every offset here is even.
    let ifd_at = 8u32;
    let bits_at = ifd_at + 2 + 12 * u32::from(entries) + 4;
    let bits_len = if samples > 2 {
        2 * u32::from(samples)
    } else {
        0
    };
    let extra_at = bits_at + bits_len;
    let extra_len = if extra > 2 { 2 * u32::from(extra) } else { 0 };
    let strip_at = extra_at + extra_len;

    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    // Up to two SHORTs are stored in the entry itself, first one first: as a
    // little-endian u32, the first is the low half.
    let bits_value = match samples {
        1 => 8,
        2 => 8 | 8 << 16,
        _ => bits_at,
    };
    let extra_value = if extra > 2 { extra_at } else { 0 };
    let mut tags: Vec<(u16, u16, u32, u32)> = vec![
        (256, LONG, 1, width),                        // ImageWidth
        (257, LONG, 1, height),                       // ImageLength
        (258, SHORT, u32::from(samples), bits_value), // BitsPerSample
        (259, SHORT, 1, 8),                           // Compression: Deflate
        (262, SHORT, 1, 1),                           // Photometric: MinIsBlack
        (273, LONG, 1, strip_at),                     // StripOffsets
        (277, SHORT, 1, u32::from(samples)),          // SamplesPerPixel
        (278, LONG, 1, height),                       // RowsPerStrip
        (279, LONG, 1, strip.len() as u32),           // StripByteCounts
        (284, SHORT, 1, 1),                           // PlanarConfiguration: contiguous
    ];
    if extra > 0 {
        tags.push((338, SHORT, u32::from(extra), extra_value)); // ExtraSamples
    }
    assert_eq!(tags.len(), usize::from(entries));

    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&ifd_at.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    for (tag, kind, count, value) in tags {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // no next directory
    if samples > 2 {
        for _ in 0..samples {
            out.extend_from_slice(&8u16.to_le_bytes());
        }
    }
    if extra > 2 {
        out.extend(std::iter::repeat_n(0u8, 2 * usize::from(extra)));
    }
    assert_eq!(out.len(), strip_at as usize);
    out.extend(strip);
    out
}

/// `data` as a zlib stream of stored (uncompressed) deflate blocks: no compressor needed.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01]; // deflate, 32 KB window; (0x7801 % 31 == 0)
    let mut blocks = data.chunks(0xFFFF).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]); // one empty final block
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none())); // BFINAL, BTYPE = 00 (stored)
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes()); // Adler-32
    out
}

/// A 1×1 animated GIF89a with `frames` frames (NETSCAPE2.0 loop extension, a graphic
/// control extension per frame, a 2-colour global table, each frame a valid one-pixel
/// LZW image), 23 bytes a frame. It is hostile because a loader asked for all pages
/// decodes and composites every frame at the full canvas size, and because the page count
/// libvips reports is not the file's: libvips 8.14's GIF loader stops at 4,097 frames
/// (warning "Excessive number of frames") and says `n-pages` = 4097 for 10,000, so only
/// a count taken from the file itself sees them all.
pub fn many_frames_gif(frames: u32) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    // Logical screen 1×1; global colour table of 2 entries; background 0; no aspect.
    gif.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]);
    gif.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    // Application extension: loop forever.
    gif.extend_from_slice(&[0x21, 0xFF, 11]);
    gif.extend_from_slice(b"NETSCAPE2.0");
    gif.extend_from_slice(&[3, 1, 0, 0, 0]);
    for frame in 0..frames {
        // Graphic control: no disposal, 10 cs delay, no transparency.
        gif.extend_from_slice(&[0x21, 0xF9, 4, 0, 10, 0, 0, 0]);
        // Image descriptor: at (0, 0), 1×1, no local table.
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
        // LZW, minimum code size 2 (3-bit codes): clear (4), the pixel's index, end (5),
        // packed LSB first. Frames alternate black and white.
        let pixel = (frame % 2) as u8;
        gif.extend_from_slice(&[2, 2, 0x44 | (pixel << 3), 0x01, 0]);
    }
    gif.push(0x3B);
    gif
}

/// Writes `head`, then extends the file to `len` bytes with `File::set_len`, which leaves
/// a hole: e.g. a JPEG's magic bytes and 8 GB that take no disk. It is hostile because a
/// reader that trusts the file's size, or reads it whole into memory, commits to `len`
/// bytes; only a size limit checked before reading stops it. `len` below `head.len()`
/// truncates `head`.
pub fn sparse_file(path: &Path, len: u64, head: &[u8]) {
    let mut file = File::create(path).expect("create the sparse file");
    file.write_all(head).expect("write the head");
    file.set_len(len).expect("extend the sparse file");
}

#[test]
fn repeated_scans_jpeg_adds_scans_libvips_accepts() {
    let plain = repeated_scans_jpeg(64, 64, 0);
    let bomb = repeated_scans_jpeg(64, 64, 50);
    let (plain_scans, bomb_scans) = (jpeg_scans(&plain).unwrap(), jpeg_scans(&bomb).unwrap());
    assert!(plain_scans > 1, "progressive: {plain_scans} scans");
    assert_eq!(bomb_scans, plain_scans + 50);
    assert!(bomb.len() < plain.len() + 50 * 32, "{} bytes", bomb.len());
    // libvips aborts a JPEG at 100 decoder warnings: decoding all 50 extra scans to the
    // same pixels shows they are legal and change nothing.
    let pixels = |jpeg: &[u8]| {
        Image::open(jpeg)
            .and_then(|img| img.materialize())
            .and_then(|img| {
                img.save(SaveFormat::Png {
                    palette: false,
                    quality: 100,
                })
            })
            .expect("libvips decodes it")
    };
    assert!(
        pixels(&bomb) == pixels(&plain),
        "the extra scans changed pixels"
    );
}

#[test]
fn deep_tiff_declares_a_huge_image_in_a_few_kb() {
    let tiff = deep_tiff(8000, 9000, 200);
    assert!(tiff.len() < 16 << 10, "{} bytes", tiff.len());
    assert_eq!(tiff_pages(&tiff), Some(1));
    for samples in [1, 2, 3] {
        assert_eq!(tiff_pages(&deep_tiff(10, 10, samples)), Some(1));
    }
    vips::init(1).unwrap();
    let img = Image::open(&tiff).expect("libvips reads the header");
    assert_eq!((img.width(), img.height(), img.bands()), (8000, 9000, 200));
    let grey = deep_tiff(10, 10, 1);
    let img = Image::open(&grey).expect("libvips reads the header");
    assert_eq!((img.width(), img.height(), img.bands()), (10, 10, 1));
}

#[test]
fn many_frames_gif_has_every_frame() {
    let gif = many_frames_gif(10_000);
    assert_eq!(gif_frames(&gif), Some(10_000));
    assert!(gif.len() < 10_000 * 23 + 64, "{} bytes", gif.len());
    assert_eq!(gif_frames(&many_frames_gif(3)), Some(3));
}

#[test]
fn sparse_file_is_long_but_holds_only_its_head() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jpg");
    let len = 8u64 << 30;
    sparse_file(&path, len, &[0xFF, 0xD8, 0xFF, 0xE0]);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), len);
    // 512-byte blocks actually allocated: a hole takes none.
    assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
    let mut head = [0u8; 8];
    std::io::Read::read_exact(&mut File::open(&path).unwrap(), &mut head).unwrap();
    assert_eq!(head, [0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0]);
}
