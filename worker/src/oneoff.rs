//! `rendition render IN (--preset NAME | --spec S) -o OUT`: one variant of one file.

use std::path::Path;

use rendition_core::config::Settings;
use rendition_core::render::{self, RenderError, RenderOutput, VariantRequest};
use rendition_core::spec::{Format, SpecError, VariantSpec};

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
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// What to render.
pub enum Which<'a> {
    Preset(&'a str),
    Spec(&'a str),
}

/// Renders `input` to `output`. With no `fm` in the spec, the output file's extension
/// picks the format (as vipsthumbnail does); otherwise the two must agree.
pub fn render_file(
    settings: &Settings,
    input: &Path,
    which: Which<'_>,
    output: &Path,
) -> Result<RenderOutput, OneOffError> {
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
        (Format::Original, Some(from_name)) => spec.format = from_name,
        (Format::Original, None) => {}
        (f, Some(from_name)) if f != from_name => {
            return Err(OneOffError::FormatMismatch {
                spec: f.as_str(),
                ext,
            });
        }
        _ => {}
    }
    let bytes = std::fs::read(input).map_err(|source| OneOffError::Read {
        path: input.display().to_string(),
        source,
    })?;
    let out = render::render(
        &bytes,
        &[VariantRequest { name, spec }],
        &settings.limits,
        &settings.render,
    )?;
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
    std::fs::write(&tmp, &out.variants[0].bytes).map_err(write_err)?;
    std::fs::rename(&tmp, output).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })?;
    Ok(out)
}
