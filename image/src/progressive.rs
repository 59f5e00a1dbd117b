//! DC-only decoding of progressive JPEGs: decode less, not better.
//!
//! Every libvips binding spends the same time in libjpeg's entropy decoding, so the way to
//! be faster than them on a thumbnail is to entropy-decode less. A progressive JPEG sends
//! each block's DC coefficient (the block's mean) in its first scans and the 63 AC
//! coefficients in later ones; libjpeg's 1/8 scaled decode uses only the DC coefficient of
//! each block, yet it reads every AC scan first. [`dc_only`] rebuilds the stream with the
//! DC scans alone (markers and tables untouched), so libjpeg reads a tenth of the data.
//! One exception: libjpeg scales a subsampled chroma component up by its IDCT instead of
//! upsampling it (4:2:0 chroma gets a 2×2 IDCT at 1/8, which reads AC coefficients 1, 2
//! and 4), so such a component keeps its AC scans; chroma is the small part of the data
//! (measured: 13–23% of the file kept for 4:2:0 photos, 8–19% for 4:4:4).
//!
//! **Why synthetic AC scans are appended.** A stream that merely drops the AC scans does
//! not decode to the same pixels: libjpeg-turbo (2.1, Debian 12) applies block smoothing
//! to a progressive image whose AC coefficients never arrived, and since 2.1 that smoothing
//! changes the DC value too ("change_dc"), so the 1/8 decode differs (measured on the
//! fetched photos: max 32–63 levels, mean 1.5–3). [`dc_only`] therefore ends the stream
//! with one AC scan per component that says "every AC coefficient is zero" in a few bytes
//! (end-of-band runs of up to 32,767 blocks per symbol, with a Huffman table of its own).
//! libjpeg then knows every coefficient, does no smoothing, and the 1/8 decode is
//! identical, bit for bit, to the 1/8 decode of the whole file (tested on real photos in
//! `tests/integration/progressive.rs`).
//!
//! Only what is certain is rebuilt: an 8-bit Huffman progressive frame (SOF2), one frame,
//! the height in the SOF (no DNL), complete up to EOI, markers where they belong. Anything
//! else gives `None` and the source is decoded as it is. The output is never larger than
//! the input plus a few dozen bytes per component.

/// Largest end-of-band run one symbol codes: EOB14 with 14 extra bits.
const MAX_EOB_RUN: u64 = (1 << 15) - 1;
/// The AC Huffman table slot the synthetic scans use (0–3). Tables are redefined in
/// stream order, and every scan that used this slot before comes before the new DHT.
const AC_TABLE: u8 = 3;

/// The frame of a progressive JPEG as [`dc_only`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    width: u64,
    height: u64,
    /// (component id, horizontal sampling, vertical sampling).
    components: Vec<(u8, u8, u8)>,
}

impl Frame {
    /// The IDCT size libjpeg(-turbo) gives component `c` in a 1/8 decode: 1 (the DC
    /// coefficient alone), except that a subsampled component is scaled up by its IDCT
    /// rather than by upsampling where the ratios allow (`jpeg_calc_output_dimensions`:
    /// 2 for the chroma of 4:2:0), and then reads its first AC coefficients too.
    fn idct_size(&self, c: usize) -> u8 {
        let h_max = self.components.iter().map(|c| c.1).max().unwrap_or(1);
        let v_max = self.components.iter().map(|c| c.2).max().unwrap_or(1);
        let (_, h, v) = self.components[c];
        let mut size = 1u8;
        while size < 8 && h_max % (h * size * 2) == 0 && v_max % (v * size * 2) == 0 {
            size *= 2;
        }
        size
    }

    /// Index of the component with id `id`.
    fn component(&self, id: u8) -> Option<usize> {
        self.components.iter().position(|c| c.0 == id)
    }

    /// Blocks of component `c` in a non-interleaved scan: its own samples, not the MCU
    /// padding (ITU T.81 A.1.1).
    fn blocks(&self, c: usize) -> u64 {
        let h_max = self.components.iter().map(|c| c.1).max().unwrap_or(1) as u64;
        let v_max = self.components.iter().map(|c| c.2).max().unwrap_or(1) as u64;
        let (_, h, v) = self.components[c];
        let cw = (self.width * h as u64).div_ceil(h_max);
        let ch = (self.height * v as u64).div_ceil(v_max);
        cw.div_ceil(8) * ch.div_ceil(8)
    }
}

/// True when `jpeg` is a progressive (SOF2) JPEG: the only kind [`dc_only`] rebuilds.
pub fn is_progressive(jpeg: &[u8]) -> bool {
    let mut progressive = false;
    let walked = walk(jpeg, |segment| {
        if let Segment::Marker { code, .. } = segment {
            if code == 0xC2 {
                progressive = true;
            }
            // The first frame header decides; scans come after it.
            if is_sof(code) {
                return Step::Stop;
            }
        }
        Step::Go
    });
    walked.is_some() && progressive
}

/// The stream with only its DC scans, plus one all-zero AC scan per component (see the
/// module doc), or `None` when `jpeg` is not something this rebuild is certain about.
pub fn dc_only(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(jpeg.len() / 4);
    let mut frame: Option<Frame> = None;
    let mut dc_scans = 0u32;
    // Per component and AC coefficient (1–63), the lowest successive-approximation bit
    // position the file's scans reach: 0 means the coefficient is complete.
    let mut lowest_bit: Vec<[u8; 64]> = Vec::new();
    let mut failed = false;
    let mut ended = false;
    walk(jpeg, |segment| {
        match segment {
            Segment::Soi => out.extend_from_slice(&[0xFF, 0xD8]),
            Segment::Marker { code, bytes } => {
                if is_sof(code) {
                    if code != 0xC2 || frame.is_some() {
                        failed = true;
                        return Step::Stop;
                    }
                    match parse_sof(bytes) {
                        Some(f) => {
                            lowest_bit = vec![[u8::MAX; 64]; f.components.len()];
                            frame = Some(f);
                        }
                        None => {
                            failed = true;
                            return Step::Stop;
                        }
                    }
                }
                // DNL: the height comes after the scans; not for this rebuild.
                if code == 0xDC {
                    failed = true;
                    return Step::Stop;
                }
                out.extend_from_slice(bytes);
            }
            Segment::Scan { header, data } => {
                let (Some(f), Some((spectral_start, ids))) = (&frame, scan_header(header)) else {
                    failed = true;
                    return Step::Stop;
                };
                if let ([id], Some((end, al))) = (ids.as_slice(), scan_band(header)) {
                    if let Some(c) = f.component(*id) {
                        let start = usize::from(spectral_start.max(1));
                        for bit in lowest_bit[c]
                            .iter_mut()
                            .take(usize::from(end.min(63)) + 1)
                            .skip(start)
                        {
                            *bit = (*bit).min(al);
                        }
                    }
                }
                // DC scans, and the AC scans of a component the 1/8 decode reads AC
                // coefficients of (one component per AC scan, T.81 G.1.1.1.1).
                let keep = spectral_start == 0
                    || match ids.as_slice() {
                        [id] => f.component(*id).is_some_and(|c| f.idct_size(c) > 1),
                        _ => false,
                    };
                if spectral_start == 0 {
                    dc_scans += 1;
                }
                if keep {
                    out.extend_from_slice(header);
                    out.extend_from_slice(data);
                }
            }
            Segment::Eoi => {
                ended = true;
                return Step::Stop;
            }
        }
        Step::Go
    })?;
    let frame = frame?;
    if failed || !ended || dc_scans == 0 {
        return None;
    }
    // The zero AC scans tell libjpeg every coefficient of a 1×1 component is known. That
    // is only true to the file when its own scans complete them; otherwise libjpeg would
    // smooth the whole file's decode and not the rebuilt one's.
    let complete = (0..frame.components.len())
        .filter(|&c| frame.idct_size(c) == 1)
        .all(|c| lowest_bit[c][1..].iter().all(|&bit| bit == 0));
    if !complete {
        return None;
    }
    append_zero_ac_scans(&mut out, &frame);
    out.extend_from_slice(&[0xFF, 0xD9]);
    Some(out)
}

/// A DHT holding the 15 end-of-band symbols (EOB0–EOB14), each with a 4-bit code (code n
/// for EOBn; the all-ones code stays unused, as T.81 requires), then `DRI 0` (the
/// synthetic scans have no restart markers), then per component an AC scan (Ss 1, Se 63,
/// Ah 0, Al 0) made of end-of-band runs covering all its blocks.
fn append_zero_ac_scans(out: &mut Vec<u8>, frame: &Frame) {
    let mut counts = [0u8; 16];
    counts[3] = 15;
    out.extend_from_slice(&[0xFF, 0xC4, 0x00, 2 + 1 + 16 + 15, 0x10 | AC_TABLE]);
    out.extend_from_slice(&counts);
    out.extend((0u8..15).map(|n| n << 4));
    out.extend_from_slice(&[0xFF, 0xDD, 0x00, 0x04, 0x00, 0x00]);
    for (c, &(id, _, _)) in frame.components.iter().enumerate() {
        // Its own AC scans were kept.
        if frame.idct_size(c) > 1 {
            continue;
        }
        out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, id, AC_TABLE, 1, 63, 0x00]);
        let mut bits = BitWriter::default();
        let mut left = frame.blocks(c);
        while left > 0 {
            let run = left.min(MAX_EOB_RUN);
            let n = 63 - run.leading_zeros();
            bits.put(n as u64, 4);
            bits.put(run - (1 << n), n);
            left -= run;
        }
        out.extend_from_slice(&bits.finish());
    }
}

/// Entropy-coded bits, most significant first, with 0xFF stuffed by 0x00 and the last
/// byte padded with ones (T.81 F.1.2.3).
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u8,
    used: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, count: u32) {
        for i in (0..count).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1) as u8;
            self.used += 1;
            if self.used == 8 {
                self.bytes.push(self.acc);
                if self.acc == 0xFF {
                    self.bytes.push(0x00);
                }
                self.acc = 0;
                self.used = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.used != 0 {
            self.put(1, 1);
        }
        self.bytes
    }
}

fn is_sof(code: u8) -> bool {
    matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC)
}

/// SOF2 payload: 8-bit precision, a height in the header, 1–4 components with sampling
/// factors 1–4.
fn parse_sof(segment: &[u8]) -> Option<Frame> {
    let p = segment.get(4..)?;
    let (&precision, rest) = p.split_first()?;
    let height = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as u64;
    let width = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]) as u64;
    let count = *rest.get(4)? as usize;
    if precision != 8 || height == 0 || width == 0 || !(1..=4).contains(&count) {
        return None;
    }
    let mut components = Vec::with_capacity(count);
    for i in 0..count {
        let c = rest.get(5 + 3 * i..8 + 3 * i)?;
        let (h, v) = (c[1] >> 4, c[1] & 0x0F);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return None;
        }
        if components.iter().any(|&(id, _, _)| id == c[0]) {
            return None;
        }
        components.push((c[0], h, v));
    }
    Some(Frame {
        width,
        height,
        components,
    })
}

/// Se and Al of an SOS header (`… Ss Se Ah/Al`).
fn scan_band(header: &[u8]) -> Option<(u8, u8)> {
    let count = *header.get(4)? as usize;
    let se = *header.get(6 + 2 * count)?;
    let al = *header.get(7 + 2 * count)? & 0x0F;
    Some((se, al))
}

/// Ss and the component ids of an SOS header (`FF DA len Ns {Cs Td/Ta}×Ns Ss Se Ah/Al`).
fn scan_header(header: &[u8]) -> Option<(u8, Vec<u8>)> {
    let count = *header.get(4)? as usize;
    let ids = (0..count)
        .map(|k| header.get(5 + 2 * k).copied())
        .collect::<Option<Vec<u8>>>()?;
    Some((*header.get(5 + 2 * count)?, ids))
}

enum Segment<'a> {
    Soi,
    /// A marker segment with its length, `FF code len …`, bytes included.
    Marker {
        code: u8,
        bytes: &'a [u8],
    },
    /// An SOS header and the entropy-coded data after it (restart markers included).
    Scan {
        header: &'a [u8],
        data: &'a [u8],
    },
    Eoi,
}

enum Step {
    Go,
    Stop,
}

/// Walks a JPEG's segments strictly: SOI first, every marker right where the previous
/// segment ends (no stray or fill bytes, which a decoder would tolerate but a rebuild
/// should not guess about). `None` on anything else; `Some(())` when the walk reached EOI,
/// the end of the data, or was stopped. Linear in the input: each byte is looked at once.
fn walk<'a>(jpeg: &'a [u8], mut visit: impl FnMut(Segment<'a>) -> Step) -> Option<()> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    if let Step::Stop = visit(Segment::Soi) {
        return Some(());
    }
    let mut pos = 2;
    while pos < jpeg.len() {
        if jpeg[pos] != 0xFF {
            return None;
        }
        let code = *jpeg.get(pos + 1)?;
        if code == 0xD9 {
            visit(Segment::Eoi);
            return Some(());
        }
        // Markers without a length have no place between segments here.
        if matches!(code, 0x00 | 0x01 | 0xD0..=0xD8 | 0xFF) {
            return None;
        }
        let len = u16::from_be_bytes([*jpeg.get(pos + 2)?, *jpeg.get(pos + 3)?]) as usize;
        if len < 2 {
            return None;
        }
        let end = pos.checked_add(2 + len)?;
        let bytes = jpeg.get(pos..end)?;
        let step = if code == 0xDA {
            let next = crate::container::skip_entropy_data(jpeg, end)?;
            let step = visit(Segment::Scan {
                header: bytes,
                data: &jpeg[end..next],
            });
            pos = next;
            step
        } else {
            pos = end;
            visit(Segment::Marker { code, bytes })
        };
        if let Step::Stop = step {
            return Some(());
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, code];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    /// SOF payload: 8 bits, 16×16, three components (Y 2×2, Cb 1×1, Cr 1×1).
    fn sof(code: u8) -> Vec<u8> {
        segment(
            code,
            &[8, 0, 16, 0, 16, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1],
        )
    }

    fn sos(ids: &[u8], ss: u8, se: u8, data: &[u8]) -> Vec<u8> {
        sos_al(ids, ss, se, 0x00, data)
    }

    fn sos_al(ids: &[u8], ss: u8, se: u8, ah_al: u8, data: &[u8]) -> Vec<u8> {
        let mut p = vec![ids.len() as u8];
        for &id in ids {
            p.extend_from_slice(&[id, 0x00]);
        }
        p.extend_from_slice(&[ss, se, ah_al]);
        let mut s = segment(0xDA, &p);
        s.extend_from_slice(data);
        s
    }

    fn jpeg(parts: &[Vec<u8>], eoi: bool) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        for p in parts {
            j.extend_from_slice(p);
        }
        if eoi {
            j.extend_from_slice(&[0xFF, 0xD9]);
        }
        j
    }

    fn progressive() -> Vec<u8> {
        jpeg(
            &[
                segment(0xDB, &[0; 65]),
                sof(0xC2),
                segment(0xC4, &[0x00; 17]),
                sos(&[1, 2, 3], 0, 0, &[0x12, 0xFF, 0x00, 0x34]),
                sos(&[1], 1, 5, &[0xAA; 40]),
                sos(&[1], 6, 63, &[0xAC; 20]),
                segment(0xC4, &[0x11; 17]),
                sos(&[2], 1, 63, &[0xBB; 30]),
                sos(&[1, 2, 3], 0, 0, &[0x56, 0xFF, 0xD0, 0x78]),
            ],
            true,
        )
    }

    #[test]
    fn keeps_dc_scans_and_every_table_and_drops_ac_scans() {
        let source = progressive();
        let dc = dc_only(&source).expect("rebuilt");
        // Two DC scans, the chroma AC scan (4:2:0: read by the 2×2 IDCT), one zero AC
        // scan for luma.
        assert_eq!(crate::container::jpeg_scans(&dc), Some(2 + 1 + 1));
        // The DC scans' data, restart marker and stuffing included, are kept verbatim.
        let find = |needle: &[u8]| dc.windows(needle.len()).any(|w| w == needle);
        assert!(find(&[0x12, 0xFF, 0x00, 0x34]));
        assert!(find(&[0x56, 0xFF, 0xD0, 0x78]));
        assert!(!find(&[0xAA; 8]) && !find(&[0xAC; 8]), "luma AC scans go");
        assert!(find(&[0xBB; 30]), "4:2:0 chroma AC scans stay");
        // Tables between AC scans stay: a later DC scan may need them.
        assert!(find(&segment(0xC4, &[0x11; 17])));
        assert!(dc.ends_with(&[0xFF, 0xD9]));
        assert!(dc.len() < source.len() + 100);
    }

    #[test]
    fn the_zero_scans_cover_each_components_blocks_in_end_of_band_runs() {
        // 16×16 with Y at 2×2 and chroma at 1×1: Y has 4 blocks, Cb and Cr 1 each.
        let f = parse_sof(&sof(0xC2)).unwrap();
        assert_eq!((f.blocks(0), f.blocks(1), f.blocks(2)), (4, 1, 1));
        let mut out = Vec::new();
        append_zero_ac_scans(&mut out, &f);
        // Y: EOB2 (code 2 = 0010) + extra bits 00, padded with ones → 0010_0011.
        let y = [0xFF, 0xDA, 0, 8, 1, 1, AC_TABLE, 1, 63, 0, 0b0010_0011];
        assert!(out.windows(y.len()).any(|w| w == y));
        // A component of 100,000 blocks takes four symbols: 3 × 32,767 + 1,699.
        let big = Frame {
            width: 8 * 1000,
            height: 8 * 100,
            components: vec![(1, 1, 1)],
        };
        assert_eq!(big.blocks(0), 100_000);
        let mut out = Vec::new();
        append_zero_ac_scans(&mut out, &big);
        let scan_at = out.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let data = &out[scan_at + 10..];
        // 3 × (4 + 14) bits + (4 + 10) bits = 68 bits → 9 bytes before stuffing.
        let stuffed = data.windows(2).filter(|w| *w == [0xFF, 0x00]).count();
        assert_eq!(data.len() - stuffed, 9);
    }

    #[test]
    fn only_files_whose_own_scans_complete_every_luma_coefficient_are_rebuilt() {
        // libjpeg smooths a file whose AC coefficients stay incomplete; the rebuilt stream
        // (zero scans: complete) would not be, so such files are decoded as they are.
        let with = |luma: Vec<Vec<u8>>| {
            let mut parts = vec![sof(0xC2), sos(&[1, 2, 3], 0, 0, &[0x12])];
            parts.extend(luma);
            jpeg(&parts, true)
        };
        assert!(dc_only(&with(vec![sos(&[1], 1, 63, &[1])])).is_some());
        assert!(dc_only(&with(vec![])).is_none(), "no luma AC scan");
        assert!(
            dc_only(&with(vec![sos(&[1], 1, 5, &[1])])).is_none(),
            "1–5 only"
        );
        let approximate = with(vec![sos_al(&[1], 1, 63, 0x01, &[1])]);
        assert!(dc_only(&approximate).is_none(), "ends at Al 1");
        let refined = with(vec![
            sos_al(&[1], 1, 63, 0x02, &[1]),
            sos_al(&[1], 1, 63, 0x21, &[1]),
            sos_al(&[1], 1, 63, 0x10, &[1]),
        ]);
        assert!(dc_only(&refined).is_some(), "refined down to Al 0");
        // Duplicate component ids: which one a scan means is ambiguous.
        let twins = jpeg(
            &[
                segment(0xC2, &[8, 0, 16, 0, 16, 2, 1, 0x11, 0, 1, 0x11, 0]),
                sos(&[1], 0, 0, &[1]),
                sos(&[1], 1, 63, &[1]),
            ],
            true,
        );
        assert!(dc_only(&twins).is_none());
    }

    #[test]
    fn idct_sizes_at_one_eighth_follow_libjpeg() {
        let frame = |sampling: &[u8]| Frame {
            width: 64,
            height: 64,
            components: sampling
                .iter()
                .enumerate()
                .map(|(i, s)| (i as u8 + 1, s >> 4, s & 0x0F))
                .collect(),
        };
        let sizes = |f: &Frame| {
            (0..f.components.len())
                .map(|c| f.idct_size(c))
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(&frame(&[0x11, 0x11, 0x11])), [1, 1, 1], "4:4:4");
        assert_eq!(sizes(&frame(&[0x22, 0x11, 0x11])), [1, 2, 2], "4:2:0");
        assert_eq!(sizes(&frame(&[0x21, 0x11, 0x11])), [1, 1, 1], "4:2:2");
        assert_eq!(sizes(&frame(&[0x41, 0x11, 0x11])), [1, 1, 1], "4:1:1");
        assert_eq!(sizes(&frame(&[0x44, 0x11, 0x11])), [1, 4, 4]);
        assert_eq!(sizes(&frame(&[0x11])), [1], "grey");
    }

    #[test]
    fn stuffs_ff_bytes_in_the_synthetic_scans() {
        let mut w = BitWriter::default();
        w.put(0xFF, 8);
        w.put(0, 1);
        assert_eq!(w.finish(), vec![0xFF, 0x00, 0x7F]);
    }

    #[test]
    fn only_complete_huffman_progressive_frames_are_rebuilt() {
        let base = progressive();
        assert!(is_progressive(&base));
        // Baseline, arithmetic progressive, two frames, no EOI, DNL, stray bytes, no DC scan.
        let baseline = jpeg(&[sof(0xC0), sos(&[1, 2, 3], 0, 63, &[1, 2])], true);
        assert!(!is_progressive(&baseline));
        assert_eq!(dc_only(&baseline), None);
        let arithmetic = jpeg(&[sof(0xCA), sos(&[1, 2, 3], 0, 0, &[1])], true);
        assert_eq!(dc_only(&arithmetic), None);
        let two = jpeg(&[sof(0xC2), sof(0xC2), sos(&[1, 2, 3], 0, 0, &[1])], true);
        assert_eq!(dc_only(&two), None);
        let truncated = &base[..base.len() - 2];
        assert_eq!(dc_only(truncated), None);
        let dnl = jpeg(
            &[
                sof(0xC2),
                sos(&[1, 2, 3], 0, 0, &[1]),
                segment(0xDC, &[0, 16]),
            ],
            true,
        );
        assert_eq!(dc_only(&dnl), None);
        let mut stray = base.clone();
        stray.insert(2, 0x00);
        assert_eq!(dc_only(&stray), None);
        let no_dc = jpeg(&[sof(0xC2), sos(&[1], 1, 63, &[1])], true);
        assert_eq!(dc_only(&no_dc), None);
        let twelve_bit = jpeg(
            &[
                segment(0xC2, &[12, 0, 16, 0, 16, 1, 1, 0x11, 0]),
                sos(&[1], 0, 0, &[1]),
            ],
            true,
        );
        assert_eq!(dc_only(&twelve_bit), None);
        assert_eq!(dc_only(b"not a jpeg"), None);
    }

    #[test]
    fn hostile_lengths_never_panic() {
        let base = progressive();
        for cut in 0..base.len() {
            let _ = dc_only(&base[..cut]);
            let mut bad = base.clone();
            bad[cut] ^= 0xFF;
            let _ = dc_only(&bad);
            let _ = is_progressive(&bad);
        }
    }
}
