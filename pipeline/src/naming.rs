//! Immutable, GUID-based names for derivatives.
//!
//! ```text
//! {derived_prefix}{source_rel}/{source_guid}/{variant}.{ext}
//! {derived_prefix}{source_rel}/{source_guid}/manifest.json
//! ```
//! - `source_rel` is the source key without the source prefix (`originals/a/b.jpg` →
//!   `a/b.jpg`). Keeping it in the name lets the on-demand path find the source from the
//!   URL alone (no lookup that could race the eager worker) and lets a deleted source's
//!   derivatives be removed by prefix.
//! - `source_guid` is the source's own GUID when its file name is one (the recommended
//!   upload convention, `originals/{uuid}.jpg`), otherwise a UUIDv5 of (bucket, key,
//!   version id or ETag). A replaced source therefore gets new derivative names, and a URL
//!   always returns the same bytes. Processing the same upload twice writes the same keys.
//! - `variant` is a versioned preset name, `{preset}.{spec hash}` (`thumb.3fa9c2e1`), or
//!   a canonical spec (`w=320,fm=webp`); the two never collide because preset names cannot
//!   contain `=` (nor `.`). The spec hash is [`spec_hash`] of the preset's canonical spec
//!   in the key's format, so an edited preset gets new names and a URL never returns other
//!   bytes than it did. Keys written before presets were versioned (`thumb.webp`, no hash)
//!   still parse: they are served as stored, and redirect to the current name once gone.

use crate::config::StorageSettings;
use uuid::Uuid;

use crate::config::is_preset_name;
use rendition_image::spec::{SpecError, VariantSpec};

/// Namespace of Rendition's UUIDv5 source identities. Never change it: every derived
/// name of every deployment depends on it.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b1e_4d7a_4c39_9a52_0e8b_7d3f_51a4);

/// Longest key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

const MANIFEST: &str = "manifest.json";

pub use rendition_image::spec::{is_spec_hash, spec_hash, SPEC_HASH_LEN};

/// A derivative is either a named preset or an explicit (signed) spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// A preset, with the [`spec_hash`] of the spec it was (or is to be) made from; `None`
    /// only in keys written before presets were versioned.
    Preset {
        name: String,
        hash: Option<String>,
    },
    Spec(VariantSpec),
}

impl Variant {
    /// A preset made from the spec whose hash is `hash`.
    pub fn preset(name: &str, hash: impl Into<String>) -> Variant {
        Variant::Preset {
            name: name.to_string(),
            hash: Some(hash.into()),
        }
    }

    /// The path segment naming this variant.
    pub fn segment(&self) -> String {
        match self {
            Variant::Preset {
                name,
                hash: Some(hash),
            } => format!("{name}.{hash}"),
            Variant::Preset { name, hash: None } => name.clone(),
            Variant::Spec(spec) => spec.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("key {key:?} is not under the source prefix {prefix:?}")]
    NotASource { key: String, prefix: String },
    #[error("key {key:?} is not under the derived prefix {prefix:?}")]
    NotDerived { key: String, prefix: String },
    #[error("malformed derivative key {key:?}: {reason}")]
    Malformed { key: String, reason: &'static str },
    #[error("invalid variant in {key:?}: {source}")]
    Spec { key: String, source: SpecError },
    #[error("key is {len} bytes; at most {MAX_KEY_BYTES} are allowed")]
    TooLong { len: usize },
}

impl NameError {
    /// `invalid_key`: no derivative or manifest can be named for (or read from) this key.
    pub fn kind(&self) -> &'static str {
        "invalid_key"
    }

    /// Never: the same key gives the same answer.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// 400: the key is bad.
    pub fn status(&self) -> u16 {
        400
    }
}

/// Identity of one version of a source object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceId {
    pub bucket: String,
    pub key: String,
    /// Version id where the bucket is versioned, else the ETag, else a content hash.
    pub version: String,
}

/// The GUID a source's derivatives are filed under.
pub fn source_guid(id: &SourceId) -> Uuid {
    if let Some(guid) = guid_in_name(&id.key) {
        return guid;
    }
    let name = format!("{}\n{}\n{}", id.bucket, id.key, id.version);
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The GUID a key's file name carries (`…/{uuid}` or `…/{uuid}.{ext}`), if any.
pub fn guid_in_name(key: &str) -> Option<Uuid> {
    let file = key.rsplit('/').next()?;
    let stem = file.split_once('.').map_or(file, |(stem, _)| stem);
    if stem.len() != 36 {
        return None;
    }
    Uuid::try_parse(stem).ok()
}

/// `source_key` without `source_prefix`.
pub fn source_rel<'k>(source_prefix: &str, source_key: &'k str) -> Result<&'k str, NameError> {
    match source_key.strip_prefix(source_prefix) {
        Some(rel) if !rel.is_empty() && !rel.ends_with('/') => Ok(rel),
        _ => Err(NameError::NotASource {
            key: source_key.to_string(),
            prefix: source_prefix.to_string(),
        }),
    }
}

fn checked(key: String) -> Result<String, NameError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(NameError::TooLong { len: key.len() });
    }
    Ok(key)
}

/// The folder holding every derivative of every version of a source.
pub fn source_folder(derived_prefix: &str, source_rel: &str) -> String {
    format!("{derived_prefix}{source_rel}/")
}

/// Key of one derivative.
pub fn derivative_key(
    derived_prefix: &str,
    source_rel: &str,
    guid: Uuid,
    variant: &Variant,
    ext: &str,
) -> Result<String, NameError> {
    checked(format!(
        "{derived_prefix}{source_rel}/{guid}/{}.{ext}",
        variant.segment()
    ))
}

/// Key of a source version's manifest, written after all its eager derivatives.
pub fn manifest_key(
    derived_prefix: &str,
    source_rel: &str,
    guid: Uuid,
) -> Result<String, NameError> {
    checked(format!("{derived_prefix}{source_rel}/{guid}/{MANIFEST}"))
}

/// The names of one version of a source: its GUID, and every key derived from it. The one
/// place keys are assembled; nothing else formats them by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNames {
    derived_prefix: String,
    source_key: String,
    rel: String,
    guid: Uuid,
}

impl SourceNames {
    /// The names of `version` of the source at `key` in `bucket`.
    pub fn of(
        storage: &StorageSettings,
        bucket: &str,
        key: &str,
        version: &str,
    ) -> Result<SourceNames, NameError> {
        let rel = source_rel(&storage.source_prefix, key)?.to_string();
        let guid = source_guid(&SourceId {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version: version.to_string(),
        });
        Ok(SourceNames {
            derived_prefix: storage.derived_prefix.clone(),
            source_key: key.to_string(),
            rel,
            guid,
        })
    }

    /// The names a derivative key was made from (the on-demand path: the URL names the
    /// source and the GUID it expects).
    pub fn of_derived(storage: &StorageSettings, derived: &DerivedKey) -> SourceNames {
        SourceNames {
            derived_prefix: storage.derived_prefix.clone(),
            source_key: format!("{}{}", storage.source_prefix, derived.source_rel),
            rel: derived.source_rel.clone(),
            guid: derived.guid,
        }
    }

    /// The source's own key (`{source_prefix}{rel}`).
    pub fn source_key(&self) -> &str {
        &self.source_key
    }

    /// The source key without the source prefix.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    pub fn guid(&self) -> Uuid {
        self.guid
    }

    /// The folder holding every derivative of every version of this source.
    pub fn folder(&self) -> String {
        source_folder(&self.derived_prefix, &self.rel)
    }

    /// This version's manifest.
    pub fn manifest_key(&self) -> Result<String, NameError> {
        manifest_key(&self.derived_prefix, &self.rel, self.guid)
    }

    /// One derivative of this version.
    pub fn derivative_key(&self, variant: &Variant, ext: &str) -> Result<String, NameError> {
        derivative_key(&self.derived_prefix, &self.rel, self.guid, variant, ext)
    }
}

/// A derivative key taken apart: everything the on-demand path needs to render it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedKey {
    pub source_rel: String,
    pub guid: Uuid,
    pub variant: Variant,
    pub ext: String,
}

/// Parses `{derived_prefix}{source_rel}/{guid}/{variant}.{ext}`. Specs must be canonical;
/// a preset is `{name}.{hash}` or (written before presets were versioned) `{name}`.
pub fn parse_derivative_key(derived_prefix: &str, key: &str) -> Result<DerivedKey, NameError> {
    let malformed = |reason| NameError::Malformed {
        key: key.to_string(),
        reason,
    };
    let rest = key
        .strip_prefix(derived_prefix)
        .ok_or_else(|| NameError::NotDerived {
            key: key.to_string(),
            prefix: derived_prefix.to_string(),
        })?;
    let (head, file) = rest
        .rsplit_once('/')
        .ok_or_else(|| malformed("no variant segment"))?;
    let (source_rel, guid) = head
        .rsplit_once('/')
        .ok_or_else(|| malformed("no source segment"))?;
    if source_rel.is_empty() {
        return Err(malformed("empty source"));
    }
    let guid = Uuid::try_parse(guid)
        .ok()
        .filter(|g| g.hyphenated().to_string() == guid)
        .ok_or_else(|| malformed("the segment before the variant is not a lowercase GUID"))?;
    let (name, ext) = file
        .rsplit_once('.')
        .ok_or_else(|| malformed("no extension"))?;
    if ext.is_empty() {
        return Err(malformed("no extension"));
    }
    let variant = if name.contains('=') {
        Variant::Spec(
            VariantSpec::parse_canonical(name).map_err(|source| NameError::Spec {
                key: key.to_string(),
                source,
            })?,
        )
    } else if let Some((preset, hash)) = name.split_once('.') {
        if !is_preset_name(preset) || !is_spec_hash(hash) {
            return Err(malformed(
                "variant is neither a versioned preset name nor a spec",
            ));
        }
        Variant::preset(preset, hash)
    } else if is_preset_name(name) {
        Variant::Preset {
            name: name.to_string(),
            hash: None,
        }
    } else {
        return Err(malformed("variant is neither a preset name nor a spec"));
    };
    Ok(DerivedKey {
        source_rel: source_rel.to_string(),
        guid,
        variant,
        ext: ext.to_string(),
    })
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
rendition_image::classified!(NameError);

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: &str, version: &str) -> SourceId {
        SourceId {
            bucket: "photos".into(),
            key: key.into(),
            version: version.into(),
        }
    }

    #[test]
    fn same_input_same_guid_replaced_source_new_guid() {
        let a = source_guid(&id("originals/cat.jpg", "etag-1"));
        assert_eq!(a, source_guid(&id("originals/cat.jpg", "etag-1")));
        assert_ne!(a, source_guid(&id("originals/cat.jpg", "etag-2")));
        assert_ne!(a, source_guid(&id("originals/dog.jpg", "etag-1")));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn fixed_vector_never_changes() {
        // Changing the namespace or the input layout would rename every derivative.
        let g = source_guid(&id(
            "originals/cat.jpg",
            "\"9b2cf535f27731c974343645a3985328\"",
        ));
        // Cross-checked with Python: uuid.uuid5(NAMESPACE, "photos\noriginals/cat.jpg\n<etag>").
        assert_eq!(g.to_string(), "984c96da-5462-511e-9377-0079ce0a525e");
    }

    #[test]
    fn guid_named_sources_keep_their_guid() {
        let guid = "0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81";
        let g = source_guid(&id(&format!("originals/2026/{guid}.jpg"), "anything"));
        assert_eq!(g.to_string(), guid);
        assert_eq!(
            guid_in_name(&format!("x/{guid}")).unwrap().to_string(),
            guid
        );
        assert_eq!(guid_in_name("x/not-a-guid.jpg"), None);
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(
            Variant::preset("thumb", "3fa9c2e1").segment(),
            "thumb.3fa9c2e1"
        );
        let guid = Uuid::new_v5(&NAMESPACE, b"x");
        let spec: VariantSpec = "w=320,h=320,fit=cover,fm=webp,q=75".parse().unwrap();
        let legacy = Variant::Preset {
            name: "thumb".into(),
            hash: None,
        };
        for variant in [
            Variant::preset("thumb", "3fa9c2e1"),
            legacy,
            Variant::Spec(spec),
        ] {
            let key = derivative_key("derived/", "a b/c.jpg", guid, &variant, "webp").unwrap();
            let parsed = parse_derivative_key("derived/", &key).unwrap();
            assert_eq!(parsed.source_rel, "a b/c.jpg");
            assert_eq!(parsed.guid, guid);
            assert_eq!(parsed.variant, variant);
            assert_eq!(parsed.ext, "webp");
        }
        assert_eq!(
            manifest_key("derived/", "c.jpg", guid).unwrap(),
            format!("derived/c.jpg/{guid}/manifest.json")
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        let guid = Uuid::new_v5(&NAMESPACE, b"x");
        for key in [
            "other/c.jpg/x/thumb.webp".to_string(),
            format!("derived/{guid}/thumb.webp"),
            "derived/c.jpg/not-a-guid/thumb.webp".to_string(),
            format!(
                "derived/c.jpg/{}/thumb.webp",
                guid.to_string().to_uppercase()
            ),
            format!("derived/c.jpg/{guid}/thumb"),
            format!("derived/c.jpg/{guid}/fm=webp,w=3.webp"),
            format!("derived/c.jpg/{guid}/Thumb!.webp"),
            format!("derived/c.jpg/{guid}/thumb.3FA9C2E1.webp"),
            format!("derived/c.jpg/{guid}/thumb.3fa9c2e.webp"),
            format!("derived/c.jpg/{guid}/thumb.3fa9c2e1.x.webp"),
            format!("derived/c.jpg/{guid}/.3fa9c2e1.webp"),
        ] {
            assert!(parse_derivative_key("derived/", &key).is_err(), "{key}");
        }
        assert!(derivative_key(
            "d/",
            &"x".repeat(1100),
            guid,
            &Variant::preset("a", "00000000"),
            "jpg"
        )
        .is_err());
    }

    #[test]
    fn spec_hash_fixed_vector() {
        // Cross-checked with Python: hashlib.sha256(b"w=160,h=160,fit=cover,fm=webp,q=75").hexdigest()[:8]
        let h = spec_hash("w=160,h=160,fit=cover,fm=webp,q=75");
        assert_eq!(h.len(), SPEC_HASH_LEN);
        assert!(is_spec_hash(&h));
        assert_eq!(h, "a3134a7c");
        assert_ne!(h, spec_hash("w=200,h=200,fit=cover,fm=webp,q=75"));
    }

    #[test]
    fn source_rel_requires_prefix() {
        assert_eq!(
            source_rel("originals/", "originals/a/b.jpg").unwrap(),
            "a/b.jpg"
        );
        assert!(source_rel("originals/", "derived/a.jpg").is_err());
        assert!(source_rel("originals/", "originals/").is_err());
        assert!(source_rel("originals/", "originals/dir/").is_err());
    }

    #[test]
    fn decimal_values_survive_a_derivative_key() {
        let spec =
            VariantSpec::parse_canonical("w=320,h=320,fit=cover,fm=webp,fx=0.25,fy=1,dpr=1.5")
                .unwrap();
        let variant = Variant::Spec(spec);
        let key =
            derivative_key("derived/", "a/b.jpg", uuid::Uuid::nil(), &variant, "webp").unwrap();
        let parsed = parse_derivative_key("derived/", &key).unwrap();
        assert_eq!(parsed.variant, variant);
        assert_eq!(parsed.ext, "webp");
    }
}
