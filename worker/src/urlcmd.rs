//! `rendition url SOURCE (--preset NAME | --spec S)`: the URL of a derivative (for a
//! preset in several formats, its `.auto` URL and one per format), built by the same
//! generator the rest of the system uses (signing, sharding). A preset's URLs name its
//! current spec (`thumb.3fa9c2e1.webp`; `.auto`: the hash of its negotiated text).

use rendition_image::render::output_format;
use rendition_image::sniff::{sniff, SniffError};
use rendition_image::spec::{Format, SpecError, VariantSpec};
use rendition_pipeline::config::Settings;
use rendition_pipeline::naming::{self, NameError, SourceNames, Variant};
use rendition_pipeline::store::{BlobStore, StoreError};
use rendition_pipeline::url::{UrlError, UrlGenerator};

use crate::oneoff::Which;

#[derive(Debug, thiserror::Error)]
pub enum UrlCmdError {
    #[error("no source at {0:?}")]
    NoSource(String),
    #[error("no preset named {0:?}")]
    UnknownPreset(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the source is not an image this system renders: {0}")]
    Sniff(#[from] SniffError),
    #[error(transparent)]
    Url(#[from] UrlError),
}

/// The URLs of `which` for the current version of `source` in `store` (bucket `bucket`):
/// one, or for a preset in several formats its negotiated `.auto` URL first and then one
/// per format it is made in.
pub async fn derivative_urls(
    settings: &Settings,
    store: &dyn BlobStore,
    bucket: &str,
    source: &str,
    which: Which<'_>,
    now_unix: u64,
) -> Result<Vec<String>, UrlCmdError> {
    // A key that is not a source is refused before anything is read.
    naming::source_rel(&settings.storage.source_prefix, source)?;
    let meta = store
        .head(source)
        .await?
        .ok_or_else(|| UrlCmdError::NoSource(source.to_string()))?;
    let names = SourceNames::of(&settings.storage, bucket, source, meta.version())?;
    // The variant in each format: a preset's name carries that format's spec hash.
    let (variant_in, formats): (Box<dyn Fn(Format) -> Variant>, Vec<Format>) = match which {
        Which::Preset(name) => {
            let preset = settings
                .presets
                .get(name)
                .ok_or_else(|| UrlCmdError::UnknownPreset(name.to_string()))?;
            let mut formats = vec![preset.spec.format];
            if !preset.formats.is_empty() {
                formats = std::iter::once(Format::Auto)
                    .chain(preset.formats.iter().copied())
                    .collect();
            }
            let preset = preset.clone();
            let name = name.to_string();
            let variant_in = move |format: Format| {
                let hash = if format == Format::Auto && preset.negotiates() {
                    preset.negotiated_hash()
                } else {
                    preset.hash_in(format)
                };
                Variant::preset(&name, hash)
            };
            (
                Box::new(variant_in) as Box<dyn Fn(Format) -> Variant>,
                formats,
            )
        }
        Which::Spec(text) => {
            let spec: VariantSpec = text.parse()?;
            let format = spec.format;
            let variant = Variant::Spec(spec);
            (
                Box::new(move |_| variant.clone()) as Box<dyn Fn(Format) -> Variant>,
                vec![format],
            )
        }
    };
    let generator = UrlGenerator::new(settings);
    let mut urls = Vec::with_capacity(formats.len());
    for format in formats {
        let ext = match format.extension() {
            Some(ext) => ext,
            None => {
                // fm=original: the source's own format decides, as the renderer will.
                let head = store.get(source, settings.limits.max_input_bytes).await?;
                let resolved: Format = output_format(Format::Original, sniff(&head.body)?, false);
                resolved.extension().expect("resolved format")
            }
        };
        let key = names.derivative_key(&variant_in(format), ext)?;
        urls.push(generator.for_key(&key, now_unix)?);
    }
    Ok(urls)
}
