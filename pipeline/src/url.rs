//! Derivative URLs: one scheme for the CDN and the on-demand renderer, one generator,
//! HMAC signing of explicit specs, and host sharding.
//!
//! ```text
//! {scheme}://{host}/{derived key}                                  presets
//! {scheme}://{host}/{derived key}?exp={unix seconds}&sig={mac}     explicit specs (exp optional)
//! ```
//! The URL path is exactly `/` + the derivative key (percent-encoded), so a CDN whose
//! origin is the derived bucket serves hits straight from it, and on a miss (S3 answers
//! 403/404) fails over to the on-demand renderer, which renders from the URL alone. The
//! signature travels in the query string, which S3 ignores.
//!
//! - Encoding: every byte outside RFC 3986's unreserved set and `/ , = :` is `%XX`-encoded
//!   (UTF-8, uppercase hex), so specs (`w=320,fm=webp`) stay readable. Decoding refuses
//!   malformed escapes, invalid UTF-8, control characters (NUL included) and `.`/`..`
//!   segments (clients and CDNs would resolve those away).
//! - Signature: `base64url_nopad(HMAC-SHA256(key, "{decoded path}\n{exp or empty}"))`,
//!   where the decoded path includes the leading `/`. The first configured key signs,
//!   every configured key verifies (rotation), always in constant time. The order of the
//!   query parameters is not signed; duplicate or unknown parameters are refused.
//! - Presets need no signature, and whatever query they carry is ignored (it cannot
//!   change the response).
//! - Sharding: host = `hosts[u64_be(SHA-256(decoded path)[..8]) % hosts.len()]`, stable
//!   across deployments; with https and `shard_https = false`, always `hosts[0]`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::config::{Settings, UrlSettings};
use crate::naming::{self, DerivedKey, NameError, Variant};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of an HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;

/// Left as they are in paths: RFC 3986 unreserved (`A-Z a-z 0-9 - . _ ~`) and `/ , = :`.
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b',')
    .remove(b'=')
    .remove(b':');

/// Why a URL could not be generated or was refused; [`UrlError::status`] is its HTTP
/// status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("malformed URL path: {0}")]
    BadPath(&'static str),
    #[error("not a derivative: {0}")]
    BadKey(#[from] NameError),
    #[error("malformed query: {0}")]
    BadQuery(&'static str),
    #[error("refused query parameter {0:?}: only one `sig` and one `exp` are allowed")]
    ParameterSmuggling(String),
    #[error("unknown preset {0:?}")]
    UnknownPreset(String),
    #[error("explicit specs are disabled (presets_only, or no signing key configured)")]
    SpecsDisabled,
    #[error("missing signature")]
    MissingSignature,
    #[error("bad signature")]
    BadSignature,
    #[error("URL expired at {exp}")]
    Expired { exp: u64 },
}

impl UrlError {
    /// A short stable name ([`rendition_image::kinds::KINDS`]). A path that is not a derivative key
    /// is `bad_key`, whatever [`NameError`] says is wrong with it.
    pub fn kind(&self) -> &'static str {
        match self {
            UrlError::BadPath(_) => "bad_path",
            UrlError::BadKey(_) => "bad_key",
            UrlError::BadQuery(_) | UrlError::ParameterSmuggling(_) => "bad_query",
            UrlError::UnknownPreset(_) => "unknown_preset",
            UrlError::SpecsDisabled => "specs_disabled",
            UrlError::MissingSignature => "missing_signature",
            UrlError::BadSignature => "bad_signature",
            UrlError::Expired { .. } => "expired",
        }
    }

    /// Never: the same URL is refused the same way again.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// 400 for a malformed path, spec or query; 403 for a missing, bad or expired
    /// signature or disabled specs; 404 for an unknown preset.
    pub fn status(&self) -> u16 {
        match self {
            UrlError::BadKey(e) => e.status(),
            UrlError::BadPath(_) | UrlError::BadQuery(_) | UrlError::ParameterSmuggling(_) => 400,
            UrlError::SpecsDisabled
            | UrlError::MissingSignature
            | UrlError::BadSignature
            | UrlError::Expired { .. } => 403,
            UrlError::UnknownPreset(_) => 404,
        }
    }
}

/// Percent-encodes a derivative key for a URL path (no leading `/`).
pub fn encode_key(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, PATH_SET).to_string()
}

/// The derivative key named by a raw (still percent-encoded) request path.
pub fn decode_path(path: &str) -> Result<String, UrlError> {
    let rest = path
        .strip_prefix('/')
        .ok_or(UrlError::BadPath("does not start with '/'"))?;
    let bytes = rest.as_bytes();
    for (i, _) in rest.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3);
        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return Err(UrlError::BadPath("malformed %-escape"));
        }
    }
    let key = percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .map_err(|_| UrlError::BadPath("not UTF-8"))?
        .into_owned();
    check_key(&key)?;
    Ok(key)
}

/// Refuses keys no URL can carry faithfully.
fn check_key(key: &str) -> Result<(), UrlError> {
    if key.chars().any(char::is_control) {
        return Err(UrlError::BadPath("control character"));
    }
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(UrlError::BadPath("'.' or '..' segment"));
    }
    Ok(())
}

/// Parses `key` as a derivative and checks that a URL may name it.
fn check_derivative(
    settings: &Settings,
    key: &str,
    signing_keys: &[Vec<u8>],
) -> Result<DerivedKey, UrlError> {
    check_key(key)?;
    let parsed = naming::parse_derivative_key(&settings.storage.derived_prefix, key)?;
    match &parsed.variant {
        Variant::Preset { name, .. } if !settings.presets.contains_key(name) => {
            Err(UrlError::UnknownPreset(name.clone()))
        }
        Variant::Spec(_) if settings.urls.presets_only || signing_keys.is_empty() => {
            Err(UrlError::SpecsDisabled)
        }
        _ => Ok(parsed),
    }
}

fn message(path: &str, exp: Option<&str>) -> Vec<u8> {
    format!("{path}\n{}", exp.unwrap_or("")).into_bytes()
}

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac
}

/// The signature of a decoded URL path (with its leading `/`) and optional expiry.
pub fn sign(key: &[u8], path: &str, exp: Option<u64>) -> String {
    let exp = exp.map(|e| e.to_string());
    let tag = mac(key, &message(path, exp.as_deref()))
        .finalize()
        .into_bytes();
    URL_SAFE_NO_PAD.encode(tag)
}

fn key_bytes(urls: &UrlSettings) -> Vec<Vec<u8>> {
    urls.signing_keys
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect()
}

/// Builds derivative URLs. Cheap to share; build once per process.
pub struct UrlGenerator {
    settings: Settings,
    /// `{scheme}://{host}` per host.
    origins: Vec<String>,
    shard: bool,
    signing_keys: Vec<Vec<u8>>,
}

/// Redacts the signing keys.
impl std::fmt::Debug for UrlGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlGenerator")
            .field("origins", &self.origins)
            .field("shard", &self.shard)
            .field("urls", &self.settings.urls)
            .finish_non_exhaustive()
    }
}

impl UrlGenerator {
    pub fn new(settings: &Settings) -> UrlGenerator {
        let urls = &settings.urls;
        UrlGenerator {
            origins: urls
                .hosts
                .iter()
                .map(|h| format!("{}://{h}", urls.scheme))
                .collect(),
            shard: urls.scheme != "https" || urls.shard_https,
            signing_keys: key_bytes(urls),
            settings: settings.clone(),
        }
    }

    /// The URL of a derivative: signed (with `exp` = now + `default_ttl_secs` when set)
    /// iff its variant is an explicit spec. Refuses what [`verify`] would refuse.
    pub fn for_key(&self, derived_key: &str, now_unix: u64) -> Result<String, UrlError> {
        let parsed = check_derivative(&self.settings, derived_key, &self.signing_keys)?;
        let path = format!("/{derived_key}");
        let mut url = match self.host_index(&path) {
            Some(i) => self.origins[i].clone(),
            None => String::new(),
        };
        url.push('/');
        url.push_str(&encode_key(derived_key));
        if let Variant::Spec(_) = parsed.variant {
            let exp = self
                .settings
                .urls
                .default_ttl_secs
                .map(|ttl| now_unix.saturating_add(ttl));
            if let Some(exp) = exp {
                url.push_str(&format!("?exp={exp}&sig="));
            } else {
                url.push_str("?sig=");
            }
            url.push_str(&sign(&self.signing_keys[0], &path, exp));
        }
        Ok(url)
    }

    /// The host serving a decoded URL path (`/` + derived key); `None` when URLs are
    /// relative.
    pub fn host_for(&self, path: &str) -> Option<&str> {
        let i = self.host_index(path)?;
        Some(&self.settings.urls.hosts[i])
    }

    fn host_index(&self, path: &str) -> Option<usize> {
        let n = self.origins.len();
        match n {
            0 => None,
            _ if !self.shard => Some(0),
            _ => {
                let digest = Sha256::digest(path.as_bytes());
                let head: [u8; 8] = digest[..8].try_into().expect("SHA-256 has 32 bytes");
                Some((u64::from_be_bytes(head) % n as u64) as usize)
            }
        }
    }
}

/// A request that may be served: the derivative it names, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The derivative key.
    pub key: String,
    pub parsed: DerivedKey,
}

/// Checks a request: `path` is the raw (still percent-encoded) request path, `query` the
/// raw query string without `?`.
pub fn verify(
    settings: &Settings,
    path: &str,
    query: Option<&str>,
    now_unix: u64,
) -> Result<Verified, UrlError> {
    let key = decode_path(path)?;
    let signing_keys = key_bytes(&settings.urls);
    let parsed = check_derivative(settings, &key, &signing_keys)?;
    if let Variant::Spec(_) = parsed.variant {
        let (sig, exp) = signature_params(query.unwrap_or(""))?;
        let sig = sig.ok_or(UrlError::MissingSignature)?;
        let tag = URL_SAFE_NO_PAD
            .decode(sig)
            .ok()
            .filter(|t| t.len() == TAG_BYTES)
            .ok_or(UrlError::BadSignature)?;
        let expires = match exp {
            None => None,
            Some(text) => Some(parse_exp(text)?),
        };
        let message = message(&format!("/{key}"), exp);
        // Every key is tried, each comparison in constant time.
        let mut valid = false;
        for secret in &signing_keys {
            valid |= mac(secret, &message).verify_slice(&tag).is_ok();
        }
        if !valid {
            return Err(UrlError::BadSignature);
        }
        if let Some(exp) = expires.filter(|&exp| now_unix > exp) {
            return Err(UrlError::Expired { exp });
        }
    }
    Ok(Verified { key, parsed })
}

/// `(sig, exp)` from a query string holding nothing else, each at most once.
fn signature_params(query: &str) -> Result<(Option<&str>, Option<&str>), UrlError> {
    let (mut sig, mut exp) = (None, None);
    if query.is_empty() {
        return Ok((sig, exp));
    }
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "sig" => &mut sig,
            "exp" => &mut exp,
            _ => return Err(UrlError::ParameterSmuggling(name.to_string())),
        };
        if slot.replace(value).is_some() {
            return Err(UrlError::ParameterSmuggling(name.to_string()));
        }
    }
    Ok((sig, exp))
}

/// Canonical decimal only, so one expiry has one spelling.
fn parse_exp(text: &str) -> Result<u64, UrlError> {
    text.parse::<u64>()
        .ok()
        .filter(|e| e.to_string() == text)
        .ok_or(UrlError::BadQuery("exp is not a canonical decimal number"))
}

// The error taxonomy's trait, answered by this type's own `kind`, `is_retryable`, `status`.
rendition_image::classified!(UrlError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "rendition-test-key-0123456789abcdef";
    const OLD_KEY: &str = "rendition-old-key-0123456789abcdef-previous";
    const GUID: &str = "984c96da-5462-511e-9377-0079ce0a525e";
    const NOW: u64 = 1_767_225_000;

    fn settings(keys: &[&str], ttl: Option<u64>) -> Settings {
        let mut s = Settings::default();
        s.urls.signing_keys = keys.iter().map(|k| k.to_string()).collect();
        s.urls.default_ttl_secs = ttl;
        s.urls.hosts = vec!["img1.example.com".into(), "img2.example.com".into()];
        s.validate().expect("test settings are valid");
        s
    }

    fn spec_key(source: &str) -> String {
        format!("derived/{source}/{GUID}/w=320,fm=webp.webp")
    }

    /// `(path, query)` of a generated URL.
    fn split(url: &str) -> (&str, Option<&str>) {
        let rest = url
            .strip_prefix("https://")
            .map_or(url, |r| &r[r.find('/').unwrap()..]);
        match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        }
    }

    fn verify_url(s: &Settings, url: &str, now: u64) -> Result<Verified, UrlError> {
        let (path, query) = split(url);
        verify(s, path, query, now)
    }

    #[test]
    fn signature_fixed_vectors() {
        // Computed independently with Python's hmac/hashlib/base64:
        // base64.urlsafe_b64encode(hmac.new(K, f"{path}\n{exp}".encode(), sha256).digest()).rstrip(b"=")
        let path = format!("/derived/2026/cat photo.jpg/{GUID}/w=320,fm=webp.webp");
        assert_eq!(
            sign(KEY.as_bytes(), &path, Some(1_767_225_600)),
            "8fBkojttIi04KHRNtvcrnxwH0TPbbpR-XiTamRCv9ns"
        );
        assert_eq!(
            sign(KEY.as_bytes(), &path, None),
            "seYYEvYnCiP6sp_2v6yhNFh14kiiQUY7CRLUnMiK2jk"
        );
    }

    #[test]
    fn full_url_fixed_vector() {
        // Host, encoding and signature cross-checked with Python (urllib.parse.quote with
        // safe="/,=:~", hashlib.sha256 for the shard, hmac for the signature).
        let mut s = settings(&[KEY], Some(600));
        s.urls.hosts = vec![
            "img1.example.com".into(),
            "img2.example.com".into(),
            "img3.example.com".into(),
        ];
        s.urls.shard_https = true;
        let key = "derived/été/ünï cödé.png/0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81/w=640,h=480,fit=cover,fm=avif.avif";
        let url = UrlGenerator::new(&s).for_key(key, 1_767_225_000).unwrap();
        assert_eq!(
            url,
            "https://img2.example.com/derived/%C3%A9t%C3%A9/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9.png/\
             0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81/w=640,h=480,fit=cover,fm=avif.avif\
             ?exp=1767225600&sig=grqUDopy7Z57Y5n99-YcbmiEM9uaZwnT-SkjNAG6Vvc"
        );
        assert_eq!(verify_url(&s, &url, 1_767_225_600).unwrap().key, key);
    }

    #[test]
    fn sharding_fixed_vectors() {
        // Cross-checked with Python:
        // hosts[int.from_bytes(sha256(path).digest()[:8], "big") % 4]
        // (4 hosts, not 3: 256 ≡ 1 mod 3, so a modulus of 3 would not notice a byte-order
        // mistake; mod 4 the little-endian reading gives other hosts for a, c and d.)
        let mut s = settings(&[], None);
        s.urls.hosts = (1..=4).map(|i| format!("img{i}.example.com")).collect();
        s.urls.scheme = "http".into();
        let g = UrlGenerator::new(&s);
        for (source, variant, host) in [
            ("a.jpg", "thumb.webp", "img2.example.com"),
            ("b.jpg", "sm.webp", "img4.example.com"),
            ("2026/cat photo.jpg", "md.webp", "img3.example.com"),
            ("ünï cödé.png", "og.jpeg", "img1.example.com"),
            ("c.jpg", "lg.webp", "img3.example.com"),
            ("d.jpg", "xl.webp", "img4.example.com"),
        ] {
            let path = format!("/derived/{source}/{GUID}/{variant}");
            assert_eq!(g.host_for(&path), Some(host), "{path}");
            let url = g.for_key(&path[1..], NOW).unwrap();
            assert!(url.starts_with(&format!("http://{host}/")), "{url}");
        }
    }

    #[test]
    fn https_without_shard_https_uses_the_first_host() {
        let s = settings(&[KEY], None);
        assert!(!s.urls.shard_https);
        let g = UrlGenerator::new(&s);
        for source in ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"] {
            let key = format!("derived/{source}/{GUID}/thumb.webp");
            assert_eq!(g.host_for(&format!("/{key}")), Some("img1.example.com"));
            assert!(g
                .for_key(&key, NOW)
                .unwrap()
                .starts_with("https://img1.example.com/"));
        }
        let mut relative = s.clone();
        relative.urls.hosts.clear();
        let g = UrlGenerator::new(&relative);
        assert_eq!(g.host_for("/x"), None);
        let key = format!("derived/a.jpg/{GUID}/thumb.webp");
        assert_eq!(g.for_key(&key, NOW).unwrap(), format!("/{key}"));
    }

    #[test]
    fn presets_and_specs_round_trip_with_spaces_and_unicode() {
        let s = settings(&[KEY], Some(3600));
        let g = UrlGenerator::new(&s);
        for source in [
            "2026/cat photo.jpg",
            "ünï cödé/日本 語.png",
            "a+b%c#d?e&f.jpg",
        ] {
            let hash = s.presets["thumb"].hash_in(rendition_image::spec::Format::Webp);
            let preset = format!("derived/{source}/{GUID}/thumb.{hash}.webp");
            let url = g.for_key(&preset, NOW).unwrap();
            assert!(!url.contains('?'), "presets are not signed: {url}");
            assert!(!url.contains(' '), "{url}");
            let v = verify_url(&s, &url, NOW).unwrap();
            assert_eq!(v.key, preset);
            assert_eq!(v.parsed.source_rel, source);
            assert_eq!(v.parsed.variant, Variant::preset("thumb", hash));
            // A key written before presets were versioned still names the preset.
            let legacy = format!("derived/{source}/{GUID}/thumb.webp");
            let v = verify_url(&s, &g.for_key(&legacy, NOW).unwrap(), NOW).unwrap();
            assert_eq!(
                v.parsed.variant,
                Variant::Preset {
                    name: "thumb".into(),
                    hash: None
                }
            );

            let spec = spec_key(source);
            let url = g.for_key(&spec, NOW).unwrap();
            assert!(url.contains("/w=320,fm=webp.webp?exp="), "{url}");
            let v = verify_url(&s, &url, NOW + 3600).unwrap();
            assert_eq!(v.key, spec);
            assert_eq!(v.parsed.source_rel, source);
            assert!(matches!(v.parsed.variant, Variant::Spec(_)));
        }
    }

    #[test]
    fn signature_cases() {
        let s = settings(&[KEY], Some(60));
        let g = UrlGenerator::new(&s);
        let url = g.for_key(&spec_key("cat.jpg"), NOW).unwrap();
        let (path, query) = split(&url);
        let query = query.unwrap();
        let (exp, sig) = query.split_once('&').unwrap();
        let sig = sig.strip_prefix("sig=").unwrap();
        let check = |q: &str| verify(&s, path, Some(q), NOW);

        assert!(check(query).is_ok());
        // Forged: one character changed.
        let mut forged = sig.to_string();
        let other = if forged.starts_with('A') { "B" } else { "A" };
        forged.replace_range(0..1, other);
        assert_eq!(
            check(&format!("{exp}&sig={forged}")),
            Err(UrlError::BadSignature)
        );
        // A changed expiry invalidates the signature.
        assert_eq!(
            check(&format!("exp={}&sig={sig}", NOW + 61)),
            Err(UrlError::BadSignature)
        );
        // Truncated, padded, non-base64url.
        for bad in [
            &sig[..sig.len() - 1],
            &sig[..20],
            "",
            "!!!!",
            &format!("{sig}="),
        ] {
            let err = check(&format!("{exp}&sig={bad}")).unwrap_err();
            assert_eq!(err, UrlError::BadSignature, "{bad}");
            assert_eq!(err.status(), 403);
        }
        // Missing.
        assert_eq!(check(exp), Err(UrlError::MissingSignature));
        assert_eq!(verify(&s, path, None, NOW), Err(UrlError::MissingSignature));
        // Reordered: the query order is not signed.
        assert!(check(&format!("sig={sig}&{exp}")).is_ok());
        // Duplicated or unknown parameters.
        for smuggled in [
            format!("{exp}&sig={sig}&sig={sig}"),
            format!("{exp}&{exp}&sig={sig}"),
            format!("{exp}&sig={sig}&w=4000"),
            format!("{exp}&sig={sig}&"),
            format!("{exp}&SIG={sig}"),
        ] {
            let err = check(&smuggled).unwrap_err();
            assert!(
                matches!(err, UrlError::ParameterSmuggling(_)),
                "{smuggled}: {err}"
            );
            assert_eq!(err.status(), 400);
        }
        // Non-canonical expiry.
        assert!(matches!(
            check(&format!("exp=0{}&sig={sig}", NOW + 60)),
            Err(UrlError::BadQuery(_))
        ));
        // Expired: valid until exp inclusive.
        assert!(verify(&s, path, Some(query), NOW + 60).is_ok());
        let err = verify(&s, path, Some(query), NOW + 61).unwrap_err();
        assert_eq!(err, UrlError::Expired { exp: NOW + 60 });
        assert_eq!(err.status(), 403);
    }

    #[test]
    fn wrong_and_rotated_keys() {
        let old = settings(&[OLD_KEY], None);
        let url = UrlGenerator::new(&old)
            .for_key(&spec_key("cat.jpg"), NOW)
            .unwrap();
        assert!(verify_url(&old, &url, NOW).is_ok());
        // Wrong key.
        let other = settings(&[KEY], None);
        assert_eq!(verify_url(&other, &url, NOW), Err(UrlError::BadSignature));
        // Rotated: the new key signs, the old one (listed second) still verifies.
        let rotated = settings(&[KEY, OLD_KEY], None);
        assert!(verify_url(&rotated, &url, NOW).is_ok());
        let new_url = UrlGenerator::new(&rotated)
            .for_key(&spec_key("cat.jpg"), NOW)
            .unwrap();
        assert_ne!(new_url, url);
        assert!(verify_url(&other, &new_url, NOW).is_ok());
        // Old key removed.
        let err = verify_url(&other, &url, NOW).unwrap_err();
        assert_eq!(err.status(), 403);
    }

    #[test]
    fn presets_ignore_signatures_and_must_exist() {
        let s = settings(&[KEY], None);
        let path = format!("/derived/cat.jpg/{GUID}/thumb.webp");
        for query in [None, Some("sig=junk"), Some("sig=a&sig=b&utm_source=x")] {
            assert!(verify(&s, &path, query, NOW).is_ok(), "{query:?}");
        }
        let unknown = format!("/derived/cat.jpg/{GUID}/huge.webp");
        let err = verify(&s, &unknown, None, NOW).unwrap_err();
        assert_eq!(err, UrlError::UnknownPreset("huge".into()));
        assert_eq!(err.status(), 404);
        assert_eq!(
            UrlGenerator::new(&s).for_key(&unknown[1..], NOW),
            Err(UrlError::UnknownPreset("huge".into()))
        );
    }

    #[test]
    fn presets_only_or_no_key_refuses_specs() {
        let s = settings(&[KEY], None);
        let url = UrlGenerator::new(&s)
            .for_key(&spec_key("cat.jpg"), NOW)
            .unwrap();
        let mut only = s.clone();
        only.urls.presets_only = true;
        let err = verify_url(&only, &url, NOW).unwrap_err();
        assert_eq!(err, UrlError::SpecsDisabled);
        assert_eq!(err.status(), 403);
        assert_eq!(
            UrlGenerator::new(&only).for_key(&spec_key("cat.jpg"), NOW),
            Err(UrlError::SpecsDisabled)
        );
        let preset = format!("derived/cat.jpg/{GUID}/thumb.webp");
        assert!(UrlGenerator::new(&only).for_key(&preset, NOW).is_ok());
        let keyless = settings(&[], None);
        assert_eq!(
            verify_url(&keyless, &url, NOW),
            Err(UrlError::SpecsDisabled)
        );
    }

    #[test]
    fn malformed_paths_are_400() {
        let s = settings(&[KEY], None);
        let good = format!("/derived/cat.jpg/{GUID}/thumb.webp");
        assert!(verify(&s, &good, None, NOW).is_ok());
        for path in [
            format!("derived/cat.jpg/{GUID}/thumb.webp"),
            format!("/derived/%2E%2E/cat.jpg/{GUID}/thumb.webp"),
            format!("/derived/../cat.jpg/{GUID}/thumb.webp"),
            format!("/derived/./cat.jpg/{GUID}/thumb.webp"),
            format!("/derived/c%00t.jpg/{GUID}/thumb.webp"),
            format!("/derived/c%0At.jpg/{GUID}/thumb.webp"),
            format!("/derived/c%FFt.jpg/{GUID}/thumb.webp"),
            format!("/derived/c%zzt.jpg/{GUID}/thumb.webp"),
            format!("/derived/cat.jpg/{GUID}/thumb.webp%"),
            format!("/derived/cat.jpg/{GUID}/thumb.webp%4"),
            format!("/other/cat.jpg/{GUID}/thumb.webp"),
            format!("/derived/cat.jpg/{GUID}/fm=webp,w=320.webp"),
            "/".to_string(),
            String::new(),
        ] {
            let err = verify(&s, &path, None, NOW).unwrap_err();
            assert_eq!(err.status(), 400, "{path}: {err}");
        }
        // Keys a URL cannot carry are refused by the generator as well.
        let g = UrlGenerator::new(&s);
        assert!(g
            .for_key(&format!("derived/../{GUID}/thumb.webp"), NOW)
            .is_err());
        assert!(g
            .for_key(&format!("derived/a\0b/{GUID}/thumb.webp"), NOW)
            .is_err());
    }

    #[test]
    fn encoding_round_trips() {
        for key in [
            "derived/a b/ü/日本/x,y=z:w/~-._!$&'()*+;@%/?#[]\"<>\\^`{|}.jpg",
            "plain/key.jpg",
        ] {
            let encoded = encode_key(key);
            assert!(encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~/,=:%".contains(&b)));
            assert_eq!(decode_path(&format!("/{encoded}")).unwrap(), key);
        }
        assert_eq!(encode_key("w=320,fm=webp a"), "w=320,fm=webp%20a");
    }

    #[test]
    fn url_settings_are_validated() {
        let ok = settings(&[KEY], Some(60));
        let bad = |edit: &dyn Fn(&mut UrlSettings)| {
            let mut s = ok.clone();
            edit(&mut s.urls);
            s.validate().is_err()
        };
        assert!(bad(&|u| u.signing_keys.push("x".repeat(31))));
        assert!(!bad(&|u| u.signing_keys.push("x".repeat(32))));
        assert!(bad(&|u| u.scheme = "ftp".into()));
        assert!(bad(&|u| u.hosts.push(String::new())));
        assert!(bad(&|u| u.hosts.push("cdn.example.com/x".into())));
        assert!(bad(&|u| u.default_ttl_secs = Some(0)));
        assert!(!bad(&|u| u.hosts.push("localhost:8080".into())));
        let debug = format!("{:?}", ok.urls);
        assert!(!debug.contains(KEY), "{debug}");
    }

    fn any_path() -> impl Strategy<Value = String> {
        let variant = prop::sample::select(vec![
            "thumb.webp",
            "w=320,fm=webp.webp",
            "huge.webp",
            "w=320.jpg",
            "w=0.jpg",
            "",
        ]);
        prop_oneof![
            any::<String>(),
            "[/%0-9a-fA-F.a-z ]{0,40}",
            ("[a-z%0-9 ./ü]{0,20}", variant)
                .prop_map(|(src, v)| format!("/derived/{src}/{GUID}/{v}")),
        ]
    }

    fn any_query() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            any::<String>(),
            "((sig|exp|x)(=[A-Za-z0-9_=%-]{0,50})?&?){0,4}",
        ])
    }

    proptest! {
        #[test]
        fn verify_never_panics(path in any_path(), query in any_query(), now in any::<u64>()) {
            let s = settings(&[KEY, OLD_KEY], None);
            let _ = verify(&s, &path, query.as_deref(), now);
            let _ = UrlGenerator::new(&s).for_key(path.trim_start_matches('/'), now);
        }
    }
}
