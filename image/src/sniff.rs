//! Decides what a source is from its first bytes, never from its name, and refuses
//! anything outside the allow-list before libvips sees it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Source formats Rendition will decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    Heif,
    Avif,
    Tiff,
}

impl SourceFormat {
    /// The source format an output format names (`None` for `original` and `auto`).
    pub fn from_format(format: crate::spec::Format) -> Option<SourceFormat> {
        use crate::spec::Format;
        match format {
            Format::Jpeg => Some(SourceFormat::Jpeg),
            Format::Png => Some(SourceFormat::Png),
            Format::Webp => Some(SourceFormat::Webp),
            Format::Gif => Some(SourceFormat::Gif),
            Format::Avif => Some(SourceFormat::Avif),
            Format::Original | Format::Auto => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::Webp => "webp",
            SourceFormat::Gif => "gif",
            SourceFormat::Heif => "heif",
            SourceFormat::Avif => "avif",
            SourceFormat::Tiff => "tiff",
        }
    }
}

/// What the first bytes were, when they are not an allowed image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SniffError {
    #[error("empty file (zero bytes)")]
    Empty,
    /// What it looks like instead (a name, e.g. "SVG").
    #[error("not a supported image ({0}); allowed: JPEG, PNG, WebP, GIF, AVIF/HEIF, TIFF")]
    Unsupported(Cow<'static, str>),
}

impl SniffError {
    /// Refused as `what` (e.g. "SVG").
    pub const fn unsupported(what: &'static str) -> SniffError {
        SniffError::Unsupported(Cow::Borrowed(what))
    }
}

/// Identifies the format from magic bytes.
pub fn sniff(bytes: &[u8]) -> Result<SourceFormat, SniffError> {
    if bytes.is_empty() {
        return Err(SniffError::Empty);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(SourceFormat::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(SourceFormat::Png);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Ok(SourceFormat::Gif);
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok(SourceFormat::Webp);
    }
    // Classic TIFF, then BigTIFF (64-bit offsets, for files over 4 GiB and what some
    // scanners and GIS tools write anyway); libtiff reads both.
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return Ok(SourceFormat::Tiff);
    }
    if bytes.starts_with(b"II+\0") || bytes.starts_with(b"MM\0+") {
        return Ok(SourceFormat::Tiff);
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let brand = &bytes[8..12];
        return match brand {
            b"avif" | b"avis" => Ok(SourceFormat::Avif),
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                Ok(SourceFormat::Heif)
            }
            _ => Err(SniffError::unsupported(
                "ISO media that is not HEIF or AVIF",
            )),
        };
    }
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with("<svg") || (trimmed.starts_with("<?xml") && text.contains("<svg")) {
        return Err(SniffError::unsupported("SVG"));
    }
    if bytes.starts_with(b"%PDF") {
        return Err(SniffError::unsupported("PDF"));
    }
    if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        return Err(SniffError::unsupported("HTML"));
    }
    if bytes.starts_with(b"BM") {
        return Err(SniffError::unsupported("BMP"));
    }
    if bytes.starts_with(&[0xFF, 0x0A]) || bytes.starts_with(b"\0\0\0\x0cJXL ") {
        return Err(SniffError::unsupported("JPEG XL"));
    }
    if std::str::from_utf8(head).is_ok() {
        return Err(SniffError::unsupported("text"));
    }
    Err(SniffError::unsupported("unknown binary data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_magic() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Ok(SourceFormat::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Ok(SourceFormat::Png));
        assert_eq!(sniff(b"GIF89a...."), Ok(SourceFormat::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Ok(SourceFormat::Webp));
        assert_eq!(sniff(b"\0\0\0\x1cftypavif\0\0\0\0"), Ok(SourceFormat::Avif));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Ok(SourceFormat::Heif));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Ok(SourceFormat::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Ok(SourceFormat::Tiff));
        // BigTIFF, both byte orders.
        assert_eq!(sniff(b"II+\0\x08\0\0\0"), Ok(SourceFormat::Tiff));
        assert_eq!(sniff(b"MM\0+\0\x08\0\0"), Ok(SourceFormat::Tiff));
    }

    #[test]
    fn refused() {
        assert_eq!(sniff(b""), Err(SniffError::Empty));
        assert_eq!(
            sniff(b"<svg xmlns='x'/>"),
            Err(SniffError::unsupported("SVG"))
        );
        assert_eq!(
            sniff(b"<?xml version='1.0'?><svg/>"),
            Err(SniffError::unsupported("SVG"))
        );
        assert_eq!(sniff(b"%PDF-1.7"), Err(SniffError::unsupported("PDF")));
        assert_eq!(
            sniff(b"<!DOCTYPE html><p>hi"),
            Err(SniffError::unsupported("HTML"))
        );
        assert_eq!(
            sniff(b"hello, I am a text file"),
            Err(SniffError::unsupported("text"))
        );
        assert_eq!(
            sniff(&[0x00, 0x9F, 0x92, 0x96]),
            Err(SniffError::unsupported("unknown binary data"))
        );
        assert!(sniff(b"\0\0\0\x18ftypmp42\0\0\0\0").is_err());
    }
}
