//! What a render helper and its parent say to each other over the helper's stdin and
//! stdout: length-prefixed frames (8 bytes little-endian length, then the bytes).
//!
//! Parent → helper, per render: a [`Job`] as JSON, then the source bytes.
//! Helper → parent: a [`Reply`] as JSON, then, on success, one frame per variant's bytes.
//! Before the first job the helper writes [`READY`] once it is initialised and confined.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::geometry::Size;
use crate::placeholder::Placeholder;
use crate::render::{Phase, RenderError, Skipped, SourceInfo, VariantRequest};
use crate::settings::{Limits, RenderSettings};
use crate::spec::{Format, VariantSpec};

/// Written by a helper once libvips is warm and the seccomp filter is in place.
pub const READY: &[u8; 8] = b"RNDREADY";

/// Largest JSON frame either side accepts (a job or a reply is a few KiB).
pub const MAX_JSON_FRAME: u64 = 4 * 1024 * 1024;

/// One render.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub variants: Vec<VariantRequest>,
    pub limits: Limits,
    pub settings: RenderSettings,
}

/// One rendered variant; its bytes follow in their own frame.
#[derive(Debug, Serialize, Deserialize)]
pub struct VariantMeta {
    pub name: String,
    pub spec: VariantSpec,
    pub format: Format,
    pub size: Size,
    pub frames: u32,
    pub len: u64,
}

/// The answer to a [`Job`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Rendered {
        source: SourceInfo,
        placeholder: Option<Placeholder>,
        phases: Vec<Phase>,
        variants: Vec<VariantMeta>,
        skipped: Vec<Skipped>,
    },
    Failed(RenderError),
}

/// A frame's length from its prefix, refused past `max` before anything is allocated.
fn frame_len(prefix: [u8; 8], max: u64) -> io::Result<u64> {
    let len = u64::from_le_bytes(prefix);
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes, over {max}"),
        ));
    }
    Ok(len)
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(&(bytes.len() as u64).to_le_bytes())?;
    w.write_all(bytes)
}

/// Reads one frame of at most `max` bytes; `Ok(None)` at a clean end of input.
pub fn read_frame(r: &mut impl Read, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 8];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = frame_len(len, max)?;
    let mut buf = Vec::with_capacity(len as usize);
    r.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(buf))
}

/// The async twins of [`write_frame`] and [`read_frame`], for the parent.
pub mod nonblocking {
    use std::io;

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    pub async fn write_frame(w: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
        w.write_all(&(bytes.len() as u64).to_le_bytes()).await?;
        w.write_all(bytes).await
    }

    /// Reads one frame of at most `max` bytes; end of input is an error here (the
    /// parent always expects an answer).
    pub async fn read_frame(r: &mut (impl AsyncRead + Unpin), max: u64) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 8];
        r.read_exact(&mut len).await?;
        let len = super::frame_len(len, max)?;
        let mut buf = Vec::with_capacity(len as usize);
        r.take(len).read_to_end(&mut buf).await?;
        if buf.len() as u64 != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_oversized() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        write_frame(&mut buf, b"").unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read_frame(&mut r, 5).unwrap().unwrap(), b"hello");
        assert_eq!(read_frame(&mut r, 5).unwrap().unwrap(), b"");
        assert!(read_frame(&mut r, 5).unwrap().is_none());
        let mut r = buf.as_slice();
        assert!(read_frame(&mut r, 4).is_err());
        // A frame cut short is an error, not a short frame.
        let mut r = &buf[..10];
        assert!(read_frame(&mut r, 5).is_err());
    }

    #[test]
    fn errors_cross_the_wire_typed() {
        let err = RenderError::TooManyScans {
            scans: 3000,
            limit: 100,
        };
        let json = serde_json::to_vec(&Reply::Failed(err.clone())).unwrap();
        match serde_json::from_slice::<Reply>(&json).unwrap() {
            Reply::Failed(back) => {
                assert_eq!(back, err);
                assert_eq!(back.kind(), "too_many_scans");
            }
            other => panic!("{other:?}"),
        }
    }
}
