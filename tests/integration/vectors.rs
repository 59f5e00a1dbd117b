//! Conformance vectors for the URL client libraries (`clients/python`,
//! `clients/typescript`): fixed inputs and what the Rust code makes of them, checked in as
//! `clients/vectors.json` and run by both client test suites. This test rebuilds the file
//! in memory and fails when the checked-in copy differs, so a change to URLs, naming or
//! specs cannot leave the clients behind; `RENDITION_WRITE_VECTORS=1` rewrites it.
//!
//! Every expected value comes from the real code: the `cli` vectors from `rendition url`'s
//! own function (`urlcmd::derivative_urls`) over a folder store, the `urls` and `srcsets`
//! vectors from the naming and `UrlGenerator` calls it makes (with an explicit GUID or one
//! format of several, which the command line cannot be asked for), the rest from
//! `VariantSpec`, `naming::source_guid`, `url::sign`, `url::encode_key` and
//! `UrlGenerator::{for_key, host_for}`.

use rendition_cli::compose::FOLDER_BUCKET;
use rendition_cli::oneoff::Which;
use rendition_cli::urlcmd::{self, UrlCmdError};
use rendition_image::render::output_format;
use rendition_image::sniff::sniff;
use rendition_image::spec::{Format, SpecError, VariantSpec};
use rendition_pipeline::config::Settings;
use rendition_pipeline::naming::{self, SourceId, SourceNames, Variant};
use rendition_pipeline::negotiate::AUTO_ORDER;
use rendition_pipeline::store::{BlobStore, FsStore};
use rendition_pipeline::url::{self, UrlGenerator};
use serde_json::{json, Map, Value};
use uuid::Uuid;

const FILE: &str = "clients/vectors.json";
const WRITE_ENV: &str = "RENDITION_WRITE_VECTORS";
const REGENERATE: &str =
    "RENDITION_WRITE_VECTORS=1 cargo test -p rendition-cli --test integration -- vectors";

const KEY_A: &str = "rendition-vectors-key-a-0123456789abcdef";
const KEY_B: &str = "rendition-vectors-key-b-previous-0123456789";
const NOW: u64 = 1_767_225_000;
const GUID: &str = "984c96da-5462-511e-9377-0079ce0a525e";
const NAMED_GUID: &str = "0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81";
const BUCKET: &str = "photos";
const VERSION: &str = "\"9b2cf535f27731c974343645a3985328\"";

/// Sources (without the source prefix): spaces, non-ASCII, `+`, `%`, the characters URLs
/// keep (`, = : ~`) and the ones they encode, and files named by their GUID.
const SOURCES: &[&str] = &[
    "cat.jpg",
    "2026/cat photo.jpg",
    "ünï cödé/日本 語.png",
    "a+b%c#d?e&f.jpg",
    "x,y=z:w ~(1)!$'*;@[].jpg",
    "0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81.jpg",
    "scans/0B1E6C7A-52F4-4A3E-9F0D-2D9A5B6C7E81.tiff",
];

/// Configurations, shaped as `rendition.toml` (as JSON): what a client is built from.
fn configs() -> Vec<(&'static str, Value)> {
    vec![
        // Relative URLs, no signing key (specs refused), the built-in presets.
        ("defaults", json!({})),
        // https: the first host only; spec URLs expire after an hour.
        (
            "cdn",
            json!({"urls": {
                "hosts": ["img1.example.com", "img2.example.com", "img3.example.com"],
                "signing_keys": [KEY_A],
                "default_ttl_secs": 3600
            }}),
        ),
        // https sharded on request over 7 hosts (256 mod 7 = 4: a byte-order or shift
        // mistake moves URLs; mod 4, as http-custom has, only byte order); two keys (the
        // first signs); no expiry.
        (
            "cdn-sharded-rotated",
            json!({"urls": {
                "hosts": (1..=7).map(|i| format!("img{i}.example.com")).collect::<Vec<_>>(),
                "shard_https": true,
                "signing_keys": [KEY_B, KEY_A]
            }}),
        ),
        // http (always sharded), other prefixes, presets in several formats, fm=auto,
        // fm=original and dpr.
        (
            "http-custom",
            json!({
                "storage": {"source_prefix": "uploads/", "derived_prefix": "public/r/"},
                "urls": {
                    "scheme": "http",
                    "hosts": ["a.img.test", "b.img.test", "c.img.test", "d.img.test"],
                    "signing_keys": [KEY_A],
                    "default_ttl_secs": 600
                },
                "presets": {
                    "w320": {"spec": "w=320,q=60", "formats": ["avif", "webp", "jpeg"], "eager": true},
                    "w640": {"spec": "w=640,q=60", "formats": ["avif", "webp", "jpeg"], "eager": true},
                    "w1280": {"spec": "q=60,w=1280", "formats": ["avif", "webp", "jpeg"], "eager": true},
                    "retina": {"spec": "fm=webp,dpr=2,w=400"},
                    "any": {"spec": "w=120,fm=auto"},
                    "same": {"spec": "w=800"},
                    "card": {"spec": "w=1200,h=630,fit=cover,fm=jpeg,pj=true"}
                }
            }),
        ),
        // Presets only, a host with a port.
        (
            "presets-only",
            json!({"urls": {
                "scheme": "http",
                "hosts": ["localhost:8080"],
                "presets_only": true,
                "signing_keys": [KEY_A]
            }}),
        ),
    ]
}

fn settings_of(config: &Value) -> Settings {
    let settings: Settings = serde_json::from_value(config.clone()).expect("config deserializes");
    settings.validate().expect("config is valid");
    settings
}

/// How a vector names its source's GUID.
enum Guid {
    Explicit(&'static str),
    /// `(bucket, version)`: the source's UUIDv5, or the GUID its file name carries.
    Of(&'static str, &'static str),
}

impl Guid {
    fn json(&self, out: &mut Map<String, Value>) {
        match self {
            Guid::Explicit(g) => {
                out.insert("guid".into(), json!(g));
            }
            Guid::Of(bucket, version) => {
                out.insert("bucket".into(), json!(bucket));
                out.insert("version".into(), json!(version));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Var<'a> {
    Preset(&'a str),
    Spec(&'a str),
}

impl Var<'_> {
    fn json(self, out: &mut Map<String, Value>) {
        match self {
            Var::Preset(p) => out.insert("preset".into(), json!(p)),
            Var::Spec(s) => out.insert("spec".into(), json!(s)),
        };
    }
}

/// The URL of one variant of `source` in one format (its default when `None`): the calls
/// `urlcmd::derivative_urls` makes, with the formats the on-demand path serves for it
/// (`OnDemand::target`), so a client refuses an extension the server would answer 404.
fn make_url(
    s: &Settings,
    source: &str,
    guid: &Guid,
    var: Var<'_>,
    format: Option<Format>,
    now: u64,
) -> Result<String, String> {
    let rel = naming::source_rel(&s.storage.source_prefix, source).map_err(|e| e.kind())?;
    let (variant, offered, negotiates, default) = match var {
        Var::Preset(name) => {
            let preset = s.presets.get(name).ok_or("unknown_preset")?;
            // `rendition url`'s first: `.auto` for a preset in several formats.
            let default = if preset.formats.is_empty() {
                preset.spec.format
            } else {
                Format::Auto
            };
            (
                // Named by its spec hash in the format chosen, below.
                Variant::Preset {
                    name: name.to_string(),
                    hash: None,
                },
                preset.formats(),
                preset.negotiates(),
                default,
            )
        }
        Var::Spec(text) => {
            let spec: VariantSpec = text.parse().map_err(|_| "bad_key")?;
            let (format, auto) = (spec.format, spec.format == Format::Auto);
            let offered = if auto {
                AUTO_ORDER.to_vec()
            } else {
                vec![format]
            };
            (Variant::Spec(spec), offered, auto, format)
        }
    };
    let format = format.unwrap_or(default);
    let variant = match var {
        Var::Preset(name) => crate::harness::preset_in(s, name, format),
        Var::Spec(_) => variant,
    };
    let ext = format
        .extension()
        .expect("fm=original vectors name the source's format");
    let served = (negotiates && format == Format::Auto)
        || offered.iter().any(|f| f.extension() == Some(ext))
        || (offered == [Format::Original] && format != Format::Auto);
    if !served {
        return Err("wrong_extension".into());
    }
    let key = match guid {
        Guid::Explicit(g) => {
            let guid = Uuid::parse_str(g).unwrap();
            naming::derivative_key(&s.storage.derived_prefix, rel, guid, &variant, ext)
        }
        Guid::Of(bucket, version) => SourceNames::of(&s.storage, bucket, source, version)
            .and_then(|names| names.derivative_key(&variant, ext)),
    }
    .map_err(|e| e.kind())?;
    UrlGenerator::new(s)
        .for_key(&key, now)
        .map_err(|e| e.kind().into())
}

/// `URL {w}w, …` over presets, narrowest first, one candidate per width (the first by
/// preset name, as `rendition html` keeps one); `w` is the preset's width × its dpr.
/// Without names: the eager presets with a width and no height, `rendition html`'s ladder.
fn make_srcset(
    s: &Settings,
    source: &str,
    guid: &Guid,
    presets: Option<&[&str]>,
    format: Option<Format>,
) -> String {
    let names: Vec<&str> = match presets {
        Some(names) => names.to_vec(),
        None => s
            .eager_presets()
            .filter(|(_, p)| p.spec.width.is_some() && p.spec.height.is_none())
            .map(|(name, _)| name)
            .collect(),
    };
    let mut items: Vec<(u32, &str)> = names
        .iter()
        .map(|&name| {
            let spec = &s.presets[name].spec;
            let width = spec
                .dpr
                .apply(spec.width.expect("srcset presets have a width"));
            (width, name)
        })
        .collect();
    items.sort();
    items.dedup_by_key(|(w, _)| *w);
    let parts: Vec<String> = items
        .iter()
        .map(|&(w, name)| {
            let url = make_url(s, source, guid, Var::Preset(name), format, NOW).unwrap();
            format!("{url} {w}w")
        })
        .collect();
    parts.join(", ")
}

/// A variant and the format asked for (`None`: its default).
type VarFormat<'a> = (Var<'a>, Option<&'a str>);

/// `(config, source, guid, presets (None: the default ladder), format)`.
type SrcsetCase<'a> = (
    &'a str,
    &'a str,
    Guid,
    Option<&'a [&'a str]>,
    Option<&'a str>,
);

fn format_named(name: &str) -> Format {
    *Format::ALL
        .iter()
        .find(|f| f.as_str() == name)
        .expect("a format name")
}

fn url_vectors(configs: &[(&'static str, Value)]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push =
        |config: &str, source: String, guid: Guid, var: Var, format: Option<&str>, now: u64| {
            let s = settings_of(&configs.iter().find(|(n, _)| *n == config).unwrap().1);
            let result = make_url(&s, &source, &guid, var, format.map(format_named), now);
            let mut v = Map::new();
            v.insert("config".into(), json!(config));
            v.insert("source".into(), json!(source));
            guid.json(&mut v);
            var.json(&mut v);
            if let Some(f) = format {
                v.insert("format".into(), json!(f));
            }
            v.insert("now".into(), json!(now));
            match result {
                Ok(url) => v.insert("url".into(), json!(url)),
                Err(kind) => v.insert("error".into(), json!(kind)),
            };
            out.push(Value::Object(v));
        };

    // Every source under every configuration, the GUID given or derived by turns.
    let per_config: &[(&str, &[VarFormat])] = &[
        (
            "defaults",
            &[
                (Var::Preset("thumb"), None),
                (Var::Preset("og"), None),
                (Var::Spec("fm=webp,w=320"), None),
            ],
        ),
        (
            "cdn",
            &[
                (Var::Preset("sm"), None),
                (Var::Spec("fm=webp,w=320"), None),
                (
                    Var::Spec("fit=cover,w=300,h=300,fm=avif,fy=0.500,fx=0.25"),
                    None,
                ),
            ],
        ),
        (
            "cdn-sharded-rotated",
            &[
                (Var::Preset("xl"), None),
                (Var::Preset("thumb"), None),
                (Var::Spec("w=640,dpr=1.5,fm=jpeg,pj=true"), None),
            ],
        ),
        (
            "http-custom",
            &[
                (Var::Preset("w640"), None),
                (Var::Preset("w640"), Some("avif")),
                (Var::Preset("w640"), Some("jpeg")),
                (Var::Preset("any"), None),
                (Var::Preset("same"), Some("png")),
                (Var::Preset("card"), None),
                (Var::Spec("w=320,fm=auto"), None),
                (Var::Spec("w=320"), Some("gif")),
            ],
        ),
        (
            "presets-only",
            &[
                (Var::Preset("md"), None),
                (Var::Spec("w=320,fm=webp"), None),
            ],
        ),
    ];
    let mut turn = 0;
    for (config, cases) in per_config {
        let prefix = match *config {
            "http-custom" => "uploads/",
            _ => "originals/",
        };
        for source in SOURCES {
            for &(var, format) in *cases {
                let guid = match turn % 2 {
                    0 => Guid::Explicit(GUID),
                    _ => Guid::Of(BUCKET, VERSION),
                };
                turn += 1;
                push(config, format!("{prefix}{source}"), guid, var, format, NOW);
            }
        }
    }

    // The expiry follows `now`.
    for now in [0, NOW + 1] {
        let (source, spec) = ("originals/cat.jpg".into(), Var::Spec("w=320,fm=jpeg"));
        push("cdn", source, Guid::Explicit(GUID), spec, None, now);
    }

    // S3's 1024-byte limit counts UTF-8 bytes: 1024 is allowed, 1025 is not.
    let at_limit = format!("originals/{}.jpg", "é".repeat(482));
    let over_limit = format!("originals/x{}.jpg", "é".repeat(482));
    let targeted: &[(&str, &str, Var, Option<&str>)] = &[
        // Formats a variant is not made in (the server answers 404 `wrong_extension`).
        (
            "defaults",
            "originals/cat.jpg",
            Var::Preset("thumb"),
            Some("jpeg"),
        ),
        (
            "defaults",
            "originals/cat.jpg",
            Var::Preset("thumb"),
            Some("auto"),
        ),
        (
            "cdn",
            "originals/cat.jpg",
            Var::Spec("w=320,fm=webp"),
            Some("avif"),
        ),
        (
            "http-custom",
            "uploads/cat.jpg",
            Var::Preset("w640"),
            Some("png"),
        ),
        (
            "http-custom",
            "uploads/cat.jpg",
            Var::Preset("any"),
            Some("jpeg"),
        ),
        (
            "http-custom",
            "uploads/cat.jpg",
            Var::Preset("any"),
            Some("webp"),
        ),
        (
            "http-custom",
            "uploads/cat.jpg",
            Var::Preset("same"),
            Some("auto"),
        ),
        (
            "http-custom",
            "uploads/cat.jpg",
            Var::Preset("card"),
            Some("jpeg"),
        ),
        // Refusals, in the order `rendition url` meets them.
        ("defaults", "elsewhere/cat.jpg", Var::Preset("thumb"), None),
        ("defaults", "originals/", Var::Preset("thumb"), None),
        ("defaults", "originals/dir/", Var::Preset("thumb"), None),
        (
            "http-custom",
            "originals/cat.jpg",
            Var::Preset("w640"),
            None,
        ),
        ("defaults", "originals/cat.jpg", Var::Preset("huge"), None),
        ("defaults", "originals/cat.jpg", Var::Preset("Thumb"), None),
        ("cdn", "originals/cat.jpg", Var::Spec("w=0"), None),
        ("cdn", "originals/cat.jpg", Var::Spec("fm=original"), None),
        (
            "defaults",
            "originals/cat.jpg",
            Var::Spec("w=320,fm=jpeg"),
            None,
        ),
        (
            "presets-only",
            "originals/cat.jpg",
            Var::Spec("w=320,fm=jpeg"),
            None,
        ),
        ("cdn", "originals/../cat.jpg", Var::Preset("thumb"), None),
        ("cdn", "originals/a/./cat.jpg", Var::Preset("thumb"), None),
        ("cdn", "originals/a\u{7}b.jpg", Var::Preset("thumb"), None),
        (
            "cdn",
            "originals/a\u{85}b.jpg",
            Var::Spec("w=320,fm=png"),
            None,
        ),
        (
            "presets-only",
            "originals/../x.jpg",
            Var::Spec("w=320,fm=png"),
            None,
        ),
        ("cdn", &at_limit, Var::Preset("thumb"), None),
        ("cdn", &over_limit, Var::Preset("thumb"), None),
    ];
    for &(config, source, var, format) in targeted {
        push(
            config,
            source.into(),
            Guid::Explicit(GUID),
            var,
            format,
            NOW,
        );
    }
    out
}

fn srcset_vectors(configs: &[(&'static str, Value)]) -> Vec<Value> {
    let ladder: &[&str] = &["xl", "lg", "md", "sm"];
    let cases: &[SrcsetCase] = &[
        (
            "defaults",
            "originals/cat.jpg",
            Guid::Explicit(GUID),
            Some(ladder),
            None,
        ),
        (
            "cdn",
            "originals/2026/cat photo.jpg",
            Guid::Of(BUCKET, VERSION),
            None,
            None,
        ),
        (
            "cdn-sharded-rotated",
            "originals/ünï cödé/日本 語.png",
            Guid::Explicit(GUID),
            Some(&["sm", "thumb", "xl", "md"]),
            None,
        ),
        (
            "http-custom",
            "uploads/x,y=z:w ~(1)!$'*;@[].jpg",
            Guid::Of(BUCKET, VERSION),
            Some(&["w1280", "w320", "retina", "w640"]),
            None,
        ),
        (
            "http-custom",
            "uploads/a+b%c#d?e&f.jpg",
            Guid::Explicit(GUID),
            None,
            Some("avif"),
        ),
        (
            "http-custom",
            "uploads/0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81.jpg",
            Guid::Of(BUCKET, VERSION),
            Some(&["w640", "w320", "w1280"]),
            Some("jpeg"),
        ),
        // `same` (w=800) and `retina` (w=400 × dpr 2) are both 800 wide: one is kept.
        (
            "http-custom",
            "uploads/cat.jpg",
            Guid::Explicit(GUID),
            Some(&["same", "w640", "retina"]),
            Some("webp"),
        ),
    ];
    cases
        .iter()
        .map(|(config, source, guid, presets, format)| {
            let s = settings_of(&configs.iter().find(|(n, _)| n == config).unwrap().1);
            let srcset = make_srcset(&s, source, guid, *presets, format.map(format_named));
            let mut v = Map::new();
            v.insert("config".into(), json!(config));
            v.insert("source".into(), json!(source));
            guid.json(&mut v);
            v.insert("presets".into(), json!(presets));
            if let Some(f) = format {
                v.insert("format".into(), json!(f));
            }
            v.insert("now".into(), json!(NOW));
            v.insert("srcset".into(), json!(srcset));
            Value::Object(v)
        })
        .collect()
}

/// The kind `rendition url` reports for a refusal.
fn cmd_kind(e: &UrlCmdError) -> &'static str {
    match e {
        UrlCmdError::Name(e) => e.kind(),
        UrlCmdError::Url(e) => e.kind(),
        UrlCmdError::UnknownPreset(_) => "unknown_preset",
        UrlCmdError::Spec(_) => "bad_key",
        other => panic!("unexpected refusal from rendition url: {other}"),
    }
}

/// `rendition url` itself over a folder: every URL it prints, in order.
async fn cli_vectors(configs: &[(&'static str, Value)]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let jpeg: &[u8] = b"\xFF\xD8\xFF\xE0 rendition vectors (magic bytes only)";
    let tiff: &[u8] = b"II*\0 rendition vectors (magic bytes only)";
    let files: &[(&str, &[u8])] = &[
        ("originals/cat.jpg", jpeg),
        ("originals/2026/cat photo.jpg", jpeg),
        ("originals/ünï cödé/日本 語.png", tiff),
        ("originals/0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81.jpg", jpeg),
        ("uploads/a+b%c#d?e&f.jpg", jpeg),
        ("uploads/scan.tiff", tiff),
    ];
    for (key, bytes) in files {
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let store = FsStore::new(dir.path()).unwrap();
    let cases: &[(&str, &str, Var)] = &[
        ("defaults", "originals/cat.jpg", Var::Preset("thumb")),
        (
            "defaults",
            "originals/2026/cat photo.jpg",
            Var::Preset("og"),
        ),
        ("defaults", "originals/cat.jpg", Var::Spec("w=320,fm=webp")),
        (
            "cdn",
            "originals/2026/cat photo.jpg",
            Var::Spec("fm=webp,w=320"),
        ),
        ("cdn", "originals/ünï cödé/日本 語.png", Var::Spec("w=320")),
        (
            "cdn-sharded-rotated",
            "originals/0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81.jpg",
            Var::Preset("md"),
        ),
        (
            "cdn-sharded-rotated",
            "originals/ünï cödé/日本 語.png",
            Var::Spec("h=200,fm=avif"),
        ),
        (
            "http-custom",
            "uploads/a+b%c#d?e&f.jpg",
            Var::Preset("w640"),
        ),
        ("http-custom", "uploads/a+b%c#d?e&f.jpg", Var::Preset("any")),
        ("http-custom", "uploads/scan.tiff", Var::Preset("same")),
        (
            "http-custom",
            "uploads/scan.tiff",
            Var::Spec("fm=auto,w=500"),
        ),
        ("http-custom", "uploads/scan.tiff", Var::Preset("nope")),
        ("presets-only", "originals/cat.jpg", Var::Preset("lg")),
        (
            "presets-only",
            "originals/cat.jpg",
            Var::Spec("w=320,fm=webp"),
        ),
    ];
    let mut out = Vec::new();
    for (config, source, var) in cases {
        let s = settings_of(&configs.iter().find(|(n, _)| n == config).unwrap().1);
        let which = match var {
            Var::Preset(p) => Which::Preset(p),
            Var::Spec(t) => Which::Spec(t),
        };
        let result = urlcmd::derivative_urls(&s, &store, FOLDER_BUCKET, source, which, NOW).await;
        let head = store.head(source).await.unwrap().expect("source written");
        let mut v = Map::new();
        v.insert("config".into(), json!(config));
        v.insert("source".into(), json!(source));
        v.insert("bucket".into(), json!(FOLDER_BUCKET));
        v.insert("version".into(), json!(head.version()));
        var.json(&mut v);
        // fm=original: the format the renderer makes of this source, which a client cannot
        // sniff and is told.
        let original = match var {
            Var::Preset(p) => s
                .presets
                .get(*p)
                .filter(|p| p.formats.is_empty())
                .map(|p| p.spec.format),
            Var::Spec(t) => t.parse::<VariantSpec>().ok().map(|s| s.format),
        } == Some(Format::Original);
        if original {
            let bytes = std::fs::read(dir.path().join(source)).unwrap();
            let made = output_format(Format::Original, sniff(&bytes).unwrap(), false);
            v.insert("format".into(), json!(made.as_str()));
        }
        v.insert("now".into(), json!(NOW));
        match result {
            Ok(urls) => v.insert("urls".into(), json!(urls)),
            Err(e) => v.insert("error".into(), json!(cmd_kind(&e))),
        };
        out.push(Value::Object(v));
    }
    out
}

/// A spec error as `(reason, detail)`.
fn spec_error(e: &SpecError) -> (&'static str, Option<String>) {
    match e {
        SpecError::Empty => ("empty", None),
        SpecError::NotAPair(p) => ("not_a_pair", Some(p.clone())),
        SpecError::UnknownKey(k) => ("unknown_key", Some(k.clone())),
        SpecError::DuplicateKey(k) => ("duplicate_key", Some(k.clone())),
        SpecError::InvalidValue { key, .. } => ("invalid_value", Some(key.to_string())),
        SpecError::Requires { key, .. } => ("requires", Some(key.to_string())),
        SpecError::Conflict { key, .. } => ("conflict", Some(key.to_string())),
        SpecError::NotCanonical { .. } => ("not_canonical", None),
    }
}

fn spec_vectors() -> Vec<Value> {
    const SPECS: &[&str] = &[
        // Canonical already, or reordered and defaults dropped.
        "w=320",
        "h=60",
        "fm=avif",
        "q=80",
        "fit=cover",
        "w=16383",
        "fm=webp,w=320",
        "w=320,h=320,fit=cover,fm=webp,q=75",
        "fm=webp,fit=inside,g=centre,w=100,enlarge=false",
        "lossless=true,dpr=2,fm=webp,w=100,h=50,fy=0.500,fx=0.25,fit=cover,q=90",
        "palette=true,fm=png,w=10,dpr=1.5",
        "pj=true,fm=jpeg,w=10,g=attention,h=10,fit=cover",
        "w=10,dpr=1,pj=false,palette=false,lossless=false",
        "w=9,h=9,fit=cover,fx=0.250,fy=1.0",
        "w=9,h=9,fit=cover,fx=0.000,fy=0.5",
        "w=9,h=9,fit=cover,fx=0.005,fy=0.999",
        "w=9,h=9,fit=cover,fx=1,fy=0",
        "w=9,dpr=2.0",
        "w=9,dpr=1.0",
        "w=9,dpr=4",
        "bg=ff8800,w=320,h=320,fit=contain",
        "w=4000,enlarge=true",
        "g=northwest,w=10",
        "fm=auto,w=120",
        "w=320,fm=original",
        "w=1,h=1,fit=outside,g=entropy,fit=cover",
        "h=5,g=entropy,fit=cover",
        // Refused: the first problem met, as Rust meets it.
        "",
        "fm=original",
        "enlarge=false",
        "w=0",
        "w=16384",
        "w=+5",
        "w=050",
        "w= 320",
        "w=320 ",
        "w=1_0",
        "w=３２０",
        "w=²",
        "w=4294967296",
        "w=1=2",
        "h=abc",
        "q=101",
        "q=0",
        "q=256",
        "fit=squash",
        "fit=Cover",
        "fm=bmp",
        "fm=jpg",
        "bg=FFFFFF",
        "bg=fff",
        "bg=ff880g",
        "enlarge=1",
        "w=10,w=20",
        "width=10",
        "W=10",
        "=5",
        "w=10,",
        ",w=10",
        "w=10,,h=5",
        "w",
        "w=10,h=10,fit=cover,fx=1.5,fy=0",
        "w=10,h=10,fit=cover,fx=0,fy=-0.5",
        "w=10,h=10,fit=cover,fx=0.1234,fy=0",
        "w=10,h=10,fit=cover,fx=.5,fy=0",
        "w=10,h=10,fit=cover,fx=0.,fy=0",
        "w=10,h=10,fit=cover,fx=1.001,fy=0",
        "w=10,h=10,fit=cover,fx=٠.5,fy=0",
        "w=10,h=10,fit=cover,fx=0.5",
        "fx=0.5",
        "w=10,h=10,fit=cover,fy=0.5",
        "w=10,h=10,fx=0.5,fy=0.5",
        "w=10,h=10,fit=contain,fx=0.5,fy=0.5",
        "w=10,h=10,fit=cover,g=north,fx=0.5,fy=0.5",
        "w=10,h=10,fit=cover,g=attention,fx=0.5,fy=0.5",
        "w=10,h=10,g=attention",
        "w=10,h=10,fit=contain,g=entropy",
        "w=10,h=10,fit=cover,g=smart",
        "w=10,dpr=0.5",
        "w=10,dpr=5",
        "w=10,dpr=4.1",
        "w=10,dpr=1.25",
        "w=10,dpr=2x",
        "w=10,dpr=",
        "w=10,dpr=２",
        "fm=webp,dpr=2",
        "w=10,fm=jpeg,pj=yes",
        "w=10,fm=webp,pj=true",
        "w=10,pj=true",
        "w=10,fm=png,palette=1",
        "w=10,fm=jpeg,palette=true",
        "w=10,fm=avif,lossless=true",
        "w=10,fm=webp,lossless=on",
        "w=10,fm=webp,lossless=true,lossless=false",
        "w=10,anim=true",
        "w=0,width=5",
        "width=5,w=0",
        "pj=true,w=0",
    ];
    SPECS
        .iter()
        .map(|text| {
            let mut v = Map::new();
            v.insert("input".into(), json!(text));
            match text.parse::<VariantSpec>() {
                Ok(spec) => {
                    let canonical = spec.to_string();
                    assert!(VariantSpec::parse_canonical(&canonical).is_ok());
                    v.insert("canonical".into(), json!(canonical));
                }
                Err(e) => {
                    let (reason, detail) = spec_error(&e);
                    v.insert("error".into(), json!(reason));
                    v.insert("detail".into(), json!(detail));
                }
            }
            Value::Object(v)
        })
        .collect()
}

fn guid_vectors() -> Vec<Value> {
    // Another version, key or bucket is another GUID.
    let mut cases: Vec<(&str, String, &str)> = vec![
        (BUCKET, "originals/cat.jpg".into(), VERSION),
        (BUCKET, "originals/cat.jpg".into(), "\"different-etag\""),
        (BUCKET, "originals/dog.jpg".into(), VERSION),
        ("other-bucket", "originals/cat.jpg".into(), VERSION),
        (
            "local",
            "originals/ünï cödé/日本 語.png".into(),
            "3HL4kqtJ+rmSpXd3dIbrHY+MTRCxf3vj",
        ),
        (BUCKET, "originals/a+b%c#d?e&f.jpg".into(), "null"),
    ];
    // A file named by a GUID (any case, any extension) keeps it; nothing else does.
    let g = NAMED_GUID;
    let names = [
        format!("2026/{g}.jpg"),
        format!("{}.tiff", g.to_uppercase()),
        g.to_string(),
        format!("{g}.tar.gz"),
        format!("{g}/cat.jpg"),
        // Too long, no hyphens, hyphens misplaced, braced, not hex, not ASCII (36 bytes).
        format!("x{g}.jpg"),
        format!("{}.jpg", g.replace('-', "")),
        "0b1e6c7a52f4-4a3e-9f0d-2d9a-5b6c7e81.jpg".into(),
        format!("{{{g}}}.jpg"),
        format!("{}g.jpg", &g[..35]),
        format!("{}é8.jpg", &g[..33]),
    ];
    cases.extend(names.map(|n| (BUCKET, format!("originals/{n}"), VERSION)));
    cases
        .into_iter()
        .map(|(bucket, key, version)| {
            let guid = naming::source_guid(&SourceId {
                bucket: bucket.to_string(),
                key: key.clone(),
                version: version.to_string(),
            });
            json!({"bucket": bucket, "key": key, "version": version, "guid": guid.to_string()})
        })
        .collect()
}

fn signature_vectors() -> Vec<Value> {
    let path = format!("/derived/2026/cat photo.jpg/{GUID}/w=320,fm=webp.webp");
    let unicode =
        format!("/derived/été/ünï cödé.png/{NAMED_GUID}/w=640,h=480,fit=cover,fm=avif.avif");
    let cases: Vec<(&str, String, Option<u64>)> = vec![
        (KEY_A, path.clone(), Some(1_767_225_600)),
        (KEY_A, path.clone(), None),
        (KEY_B, path, Some(0)),
        (KEY_A, unicode.clone(), Some(4_102_444_800)),
        ("ключ-подписи-не-ascii-0123456789abcdef", unicode, None),
    ];
    cases
        .into_iter()
        .map(|(key, path, exp)| {
            let sig = url::sign(key.as_bytes(), &path, exp);
            json!({"key": key, "path": path, "exp": exp, "sig": sig})
        })
        .collect()
}

fn encoding_vectors() -> Vec<Value> {
    let ascii: String = (0x20u8..0x7f).map(char::from).collect();
    let keys = [
        "derived/cat.jpg".to_string(),
        "derived/2026/cat photo.jpg/x/w=320,fm=webp.webp".to_string(),
        "ünï cödé/日本 語/😀.png".to_string(),
        ascii,
        "tab\there\u{85}\u{7f}".to_string(),
    ];
    keys.iter()
        .map(|k| json!({"key": k, "encoded": url::encode_key(k)}))
        .collect()
}

fn host_vectors(configs: &[(&'static str, Value)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (config, value) in configs {
        let generator = UrlGenerator::new(&settings_of(value));
        for source in [
            "a.jpg",
            "b.jpg",
            "2026/cat photo.jpg",
            "ünï cödé.png",
            "c.jpg",
            "d.jpg",
        ] {
            let path = format!("/derived/{source}/{GUID}/thumb.webp");
            let host = generator.host_for(&path);
            out.push(json!({"config": config, "path": path, "host": host}));
        }
    }
    out
}

/// Derivative keys as a manifest lists them: `UrlGenerator::for_key` alone.
fn key_vectors(configs: &[(&'static str, Value)]) -> Vec<Value> {
    let cases: Vec<(&str, String)> = vec![
        // A versioned preset key, and one written before presets were versioned.
        ("cdn", format!("derived/cat.jpg/{GUID}/thumb.a3134a7c.webp")),
        ("cdn", format!("derived/cat.jpg/{GUID}/thumb.webp")),
        (
            "cdn",
            format!("derived/2026/cat photo.jpg/{GUID}/w=320,fm=webp.webp"),
        ),
        (
            "cdn-sharded-rotated",
            format!(
                "derived/ünï cödé/日本 語.png/{GUID}/w=320,h=320,fit=cover,fx=0.25,fy=0.5.webp"
            ),
        ),
        ("defaults", format!("derived/cat.jpg/{GUID}/og.jpg")),
        // for_key does not check the extension against the variant's formats.
        ("defaults", format!("derived/cat.jpg/{GUID}/thumb.png")),
        ("http-custom", format!("public/r/cat.jpg/{GUID}/w640.auto")),
        (
            "http-custom",
            format!("public/r/a+b%c#d?e&f.jpg/{GUID}/w640.avif"),
        ),
        // Refused.
        ("cdn", format!("derived/cat.jpg/{GUID}/fm=webp,w=320.webp")),
        (
            "cdn",
            format!("derived/cat.jpg/{}/thumb.webp", GUID.to_uppercase()),
        ),
        ("cdn", format!("derived/cat.jpg/{GUID}/thumb")),
        ("cdn", format!("derived/cat.jpg/{GUID}/thumb.")),
        ("cdn", format!("derived/cat.jpg/{GUID}/Thumb!.webp")),
        ("cdn", format!("derived/cat.jpg/{GUID}/thumb.A3134A7C.webp")),
        ("cdn", format!("derived/cat.jpg/{GUID}/thumb.a3134a7.webp")),
        (
            "cdn",
            format!("derived/cat.jpg/{GUID}/thumb.a3134a7c.x.webp"),
        ),
        ("cdn", format!("derived/cat.jpg/{GUID}/huge.a3134a7c.webp")),
        ("cdn", format!("derived/{GUID}/thumb.webp")),
        ("cdn", "derived/cat.jpg/not-a-guid/thumb.webp".into()),
        ("cdn", format!("derived/cat.jpg/{GUID}/huge.webp")),
        ("cdn", format!("derived/../cat.jpg/{GUID}/thumb.webp")),
        ("cdn", format!("derived/c\u{0}t.jpg/{GUID}/thumb.webp")),
        ("cdn", format!("other/cat.jpg/{GUID}/thumb.webp")),
        ("http-custom", format!("derived/cat.jpg/{GUID}/w640.auto")),
        ("defaults", format!("derived/cat.jpg/{GUID}/w=320.jpg")),
        ("presets-only", format!("derived/cat.jpg/{GUID}/w=320.jpg")),
    ];
    cases
        .into_iter()
        .map(|(config, key)| {
            let s = settings_of(&configs.iter().find(|(n, _)| *n == config).unwrap().1);
            let mut v = Map::new();
            v.insert("config".into(), json!(config));
            v.insert("key".into(), json!(key));
            v.insert("now".into(), json!(NOW));
            match UrlGenerator::new(&s).for_key(&key, NOW) {
                Ok(url) => v.insert("url".into(), json!(url)),
                Err(e) => v.insert("error".into(), json!(e.kind())),
            };
            Value::Object(v)
        })
        .collect()
}

/// Objects with their keys in sorted order, whatever `serde_json`'s map preserves.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

async fn generate() -> String {
    let configs = configs();
    let doc = json!({
        "about": format!(
            "Conformance vectors for the Rendition URL clients (clients/python, clients/typescript). \
             Generated by tests/integration/vectors.rs from the Rust code; do not edit. Regenerate: {REGENERATE}"
        ),
        "configs": Value::Object(configs.iter().map(|(n, c)| (n.to_string(), c.clone())).collect()),
        "specs": spec_vectors(),
        "guids": guid_vectors(),
        "signatures": signature_vectors(),
        "encodings": encoding_vectors(),
        "hosts": host_vectors(&configs),
        "keys": key_vectors(&configs),
        "urls": url_vectors(&configs),
        "srcsets": srcset_vectors(&configs),
        "cli": cli_vectors(&configs).await,
    });
    let mut text = serde_json::to_string_pretty(&sorted(doc)).unwrap();
    text.push('\n');
    text
}

#[tokio::test]
async fn vectors_are_current() {
    let fresh = generate().await;
    let path = crate::harness::repo_root().join(FILE);
    if std::env::var_os(WRITE_ENV).is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != fresh {
        let line = first_difference(&current, &fresh);
        panic!(
            "{FILE} is stale (first difference at line {line}): the URL clients would be \
             checked against old answers. Regenerate it with\n  {REGENERATE}\nthen run \
             scripts/test-clients.sh and update clients/python and clients/typescript until \
             they pass."
        );
    }
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()))
        + 1
}

#[test]
fn vectors_cover_each_outcome() {
    // The file is only as good as what it exercises: every refusal kind a client can meet
    // appears, and the URLs include signed, expiring, sharded, relative and port forms.
    let text = std::fs::read_to_string(crate::harness::repo_root().join(FILE))
        .unwrap_or_else(|_| panic!("{FILE} is missing: {REGENERATE}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let urls = doc["urls"].as_array().unwrap();
    let errors: std::collections::BTreeSet<&str> =
        urls.iter().filter_map(|v| v["error"].as_str()).collect();
    for kind in [
        "invalid_key",
        "unknown_preset",
        "bad_key",
        "specs_disabled",
        "bad_path",
        "wrong_extension",
    ] {
        assert!(errors.contains(kind), "no url vector is refused as {kind}");
    }
    let made: Vec<&str> = urls.iter().filter_map(|v| v["url"].as_str()).collect();
    for needle in [
        "?exp=",
        "?sig=",
        "http://",
        "https://img2.",
        "localhost:8080/",
        "%20",
        "%25",
    ] {
        assert!(
            made.iter().any(|u| u.contains(needle)),
            "no url has {needle}"
        );
    }
    assert!(
        made.iter().any(|u| u.starts_with("/derived/")),
        "no relative url"
    );
}
