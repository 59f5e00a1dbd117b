//! The render helper: the process side of the sandbox. Started by [`super::Pool`] as the
//! same binary with [`super::HELPER_ARG`]; it initialises libvips, warms every codec up
//! (so that nothing is loaded from disk later), confines itself ([`super::policy`]), says
//! [`wire::READY`], then renders one job at a time from stdin to stdout until stdin
//! closes.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::os::fd::FromRawFd;

use super::policy;
use super::wire::{self, Job, Reply, VariantMeta};
use crate::render;
use crate::vips::{self, Image, SaveFormat};

/// A 1×1 GIF: the seed of the warm-up images.
const SEED_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// Encodes a small image in every output format and decodes each result, so libvips'
/// loaders, savers and the libraries behind them (libheif, libwebp, libspng, cgif) are
/// loaded and initialised before the filter forbids opening files.
fn warm_up() -> Result<(), vips::VipsError> {
    let seed = Image::thumbnail_buffer(SEED_GIF, 16, 16, false, false)?.materialize()?;
    let rgb = seed.to_srgb8()?;
    let rgb = if rgb.has_alpha() {
        rgb.flatten(&[255.0, 255.0, 255.0])?
    } else {
        rgb
    };
    for format in [
        SaveFormat::Jpeg {
            quality: 80,
            progressive: true,
        },
        SaveFormat::Png {
            palette: false,
            quality: 100,
        },
        SaveFormat::Webp {
            quality: 80,
            lossless: false,
        },
        SaveFormat::Avif {
            quality: 50,
            effort: 0,
        },
        SaveFormat::Gif,
    ] {
        let bytes = rgb.save(format)?;
        Image::thumbnail_buffer(&bytes, 8, 8, true, false)?.materialize()?;
    }
    Ok(())
}

/// Every binary that renders calls this first with its arguments: when they say it was
/// started as a render helper ([`super::HELPER_ARG`], then the libvips thread count), it
/// runs as one and returns the exit code; otherwise `None` and the program goes on.
pub fn run_if_asked(mut args: impl Iterator<Item = String>) -> Option<i32> {
    if args.nth(1).as_deref() != Some(super::HELPER_ARG) {
        return None;
    }
    let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    Some(main(threads))
}

/// Runs the helper; the process' exit code. `vips_threads`: libvips threads per image.
pub fn main(vips_threads: u32) -> i32 {
    // Rust's runtime catches SIGSEGV and SIGBUS to report stack overflows; in a helper a
    // fault of any kind must end the process at once, whoever raised it.
    // SAFETY: restoring the default disposition of two signals.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
    // The protocol gets its own descriptor; fd 1 then points at stderr, so that nothing a
    // C library prints can corrupt a frame.
    // SAFETY: dup/dup2 on the standard descriptors this process was started with.
    let proto_fd = unsafe { libc::dup(1) };
    if proto_fd < 0 || unsafe { libc::dup2(2, 1) } < 0 {
        eprintln!("render helper: cannot set up its descriptors");
        return 2;
    }
    // SAFETY: fd 0 is our stdin and proto_fd was just duplicated; each is owned once.
    let (input, output) = unsafe { (File::from_raw_fd(0), File::from_raw_fd(proto_fd)) };
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut output = BufWriter::with_capacity(1 << 16, output);

    if let Err(e) = vips::init(vips_threads).and_then(|()| warm_up()) {
        eprintln!("render helper: libvips did not start: {e}");
        return 2;
    }
    if let Err(e) = policy::confine() {
        eprintln!("render helper: cannot confine itself: {e}");
        return 3;
    }
    if output
        .write_all(wire::READY)
        .and_then(|()| output.flush())
        .is_err()
    {
        return 0;
    }
    loop {
        match serve_one(&mut input, &mut output) {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(e) => {
                eprintln!("render helper: {e}");
                return 4;
            }
        }
    }
}

/// One job; `Ok(false)` when the parent closed stdin.
fn serve_one(input: &mut impl io::Read, output: &mut impl Write) -> io::Result<bool> {
    let Some(job) = wire::read_frame(input, wire::MAX_JSON_FRAME)? else {
        return Ok(false);
    };
    let job: Job = serde_json::from_slice(&job).map_err(io::Error::other)?;
    let source =
        wire::read_frame(input, job.limits.max_input_bytes)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    match render::render_owned(source, &job.variants, &job.limits, &job.settings) {
        Ok(out) => {
            let reply = Reply::Rendered {
                source: out.source,
                placeholder: out.placeholder.clone(),
                phases: out.phases.clone(),
                variants: out
                    .variants
                    .iter()
                    .map(|v| VariantMeta {
                        name: v.name.clone(),
                        spec: v.spec.clone(),
                        format: v.format,
                        size: v.size,
                        frames: v.frames,
                        len: v.bytes.len() as u64,
                    })
                    .collect(),
                skipped: out.skipped.clone(),
            };
            wire::write_frame(
                output,
                &serde_json::to_vec(&reply).map_err(io::Error::other)?,
            )?;
            for v in &out.variants {
                wire::write_frame(output, &v.bytes)?;
            }
        }
        Err(e) => {
            let reply = Reply::Failed(e);
            wire::write_frame(
                output,
                &serde_json::to_vec(&reply).map_err(io::Error::other)?,
            )?;
        }
    }
    output.flush()?;
    Ok(true)
}
