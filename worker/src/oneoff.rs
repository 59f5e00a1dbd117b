//! `rendition render IN (--preset NAME | --spec S) -o OUT`: one variant of one file.

use std::io::Read;
use std::path::Path;

use rendition_image::render::{RenderError, Rendered, VariantRequest};
use rendition_image::renderer::Renderer;
use rendition_image::spec::{Format, SpecError, VariantSpec};
use rendition_pipeline::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum OneOffError {
    #[error("no preset named {0:?} (configured: {1})")]
    UnknownPreset(String, String),
    #[error("invalid spec: {0}")]
    Spec(#[from] SpecError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the spec asks for {spec} but the output file name ends in .{ext}")]
    FormatMismatch { spec: &'static str, ext: String },
    /// `main` prints it with its stable kind, e.g. `… (too_many_scans)`
    /// ([`crate::report`]).
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// What to render.
pub enum Which<'a> {
    Preset(&'a str),
    Spec(&'a str),
}

/// Reads `input`, refusing it from its size alone when that is over `max_bytes`, and
/// never reading more than `max_bytes` + 1 bytes (a file may grow while it is read, and
/// a pipe or device has no size). Opened without blocking: a FIFO with no writer is read
/// as empty rather than waited on.
fn read_capped(input: &Path, max_bytes: u64) -> Result<Vec<u8>, OneOffError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| OneOffError::Read {
        path: input.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(input)
        .map_err(read_err)?;
    let md = file.metadata().map_err(read_err)?;
    if md.is_file() && md.len() > max_bytes {
        return Err(RenderError::InputTooLarge {
            bytes: md.len(),
            limit: max_bytes,
        }
        .into());
    }
    let mut bytes = Vec::with_capacity(md.len().min(max_bytes) as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > max_bytes {
        return Err(RenderError::InputTooLarge {
            bytes: bytes.len() as u64,
            limit: max_bytes,
        }
        .into());
    }
    Ok(bytes)
}

/// Renders `input` to `output` with `renderer`. With no `fm` in the spec, the output
/// file's extension picks the format (as vipsthumbnail does); otherwise the two must
/// agree.
pub async fn render_file(
    settings: &Settings,
    renderer: &Renderer,
    input: &Path,
    which: Which<'_>,
    output: &Path,
) -> Result<Rendered, OneOffError> {
    let (name, mut spec) = match which {
        Which::Preset(name) => {
            let preset = settings.presets.get(name).ok_or_else(|| {
                OneOffError::UnknownPreset(
                    name.to_string(),
                    settings
                        .presets
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })?;
            (name.to_string(), preset.spec.clone())
        }
        Which::Spec(text) => {
            let spec: VariantSpec = text.parse()?;
            (spec.to_string(), spec)
        }
    };
    let ext = output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_string();
    match (spec.format, Format::from_extension(&ext)) {
        (Format::Original | Format::Auto, Some(from_name)) => spec.format = from_name,
        (Format::Original | Format::Auto, None) => {}
        (f, Some(from_name)) if f != from_name => {
            return Err(OneOffError::FormatMismatch {
                spec: f.as_str(),
                ext,
            });
        }
        _ => {}
    }
    let bytes = read_capped(input, settings.limits.max_input_bytes)?;
    let key = input.display().to_string();
    let out = renderer
        .render(&key, bytes.into(), vec![VariantRequest { name, spec }])
        .await?
        .into_only()?;
    let write_err = |source| OneOffError::Write {
        path: output.display().to_string(),
        source,
    };
    // Write next to the target, then rename: never a half-written OUT.
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".rendition-tmp-{}", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, &out.bytes).map_err(write_err)?;
    std::fs::rename(&tmp, output).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })?;
    Ok(out)
}
