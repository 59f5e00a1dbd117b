//! Derivative URLs: path decoding, derivative-key parsing and signature verification
//! (`url::verify`), and the generator (`url::UrlGenerator`).
//!
//! Input: one flag byte, then a request target `path[?query]` as UTF-8. Flag bit 0
//! turns on `default_ttl_secs` (so generated URLs carry `exp`); the other bits seed
//! the byte mutations of step 3.
//!
//! Properties, beyond "never panics":
//! 1. A request that verifies names a key the generator accepts, whose generated URL
//!    verifies to the same derivative; for an explicit spec, its `sig` is exactly the
//!    generator's signature of (decoded path, `exp`) — the one signing key, canonical
//!    base64url — so a verified URL is one the generator would produce (up to the
//!    spelling of the path's %-escapes, which do not change the decoded key).
//! 2. Every URL the generator makes for the decoded path verifies, to the same key.
//! 3. A generated spec URL with one byte changed does not verify, unless the change
//!    leaves the signed data as it was (the case of a %-escape's hex digit) or turns
//!    the path into an (unsigned) preset.
//! 4. Every refusal maps to a 4xx status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_pipeline::config::Settings;
use rendition_pipeline::naming::Variant;
use rendition_pipeline::url::{decode_path, sign, verify, UrlGenerator, Verified};

const KEY: &str = "rendition-fuzz-signing-key-0123456789abcdef";
const NOW: u64 = 1_767_225_000;
const TTL: u64 = 3_600;

fn settings(ttl: bool) -> Settings {
    let mut s = Settings::default();
    s.urls.signing_keys = vec![KEY.to_string()];
    s.urls.default_ttl_secs = ttl.then_some(TTL);
    s.validate().expect("fuzz settings are valid");
    s
}

/// `(sig, exp)` of a query string, as `verify` reads it (each at most once).
fn params(query: Option<&str>) -> (Option<&str>, Option<&str>) {
    let (mut sig, mut exp) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("sig", v) => sig = Some(v),
            ("exp", v) => exp = Some(v),
            _ => {}
        }
    }
    (sig, exp)
}

fn split(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

fn verify_target(s: &Settings, target: &str, now: u64) -> Result<Verified, u16> {
    let (path, query) = split(target);
    verify(s, path, query, now).map_err(|e| {
        let status = e.status();
        assert!(matches!(status, 400 | 403 | 404), "{e:?} → {status}");
        let _ = e.to_string();
        status
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(rest) else {
        return;
    };
    let s = settings(flags & 1 == 1);
    let g = UrlGenerator::new(&s);
    let (path, query) = split(target);

    // 1. Whatever verifies is what the generator would make.
    if let Ok(v) = verify_target(&s, target, NOW) {
        assert_eq!(decode_path(path).as_ref(), Ok(&v.key));
        let url = g
            .for_key(&v.key, NOW)
            .unwrap_or_else(|e| panic!("{target:?} verifies but the generator refuses: {e}"));
        let again = verify_target(&s, &url, NOW).expect("generated URL verifies");
        assert_eq!(again, v);
        if let Variant::Spec(_) = v.parsed.variant {
            let (sig, exp) = params(query);
            let exp_value = exp.map(|e| e.parse::<u64>().expect("verified exp is a number"));
            assert_eq!(exp_value.map(|e| e.to_string()).as_deref(), exp);
            let expected = sign(KEY.as_bytes(), &format!("/{}", v.key), exp_value);
            assert_eq!(
                sig,
                Some(expected.as_str()),
                "{target:?}: not the generator's signature"
            );
        }
    }

    // 2. Whatever the generator makes verifies.
    let Ok(key) = decode_path(path) else {
        return;
    };
    let Ok(url) = g.for_key(&key, NOW) else {
        return;
    };
    let v = verify_target(&s, &url, NOW)
        .unwrap_or_else(|status| panic!("generated {url:?} does not verify: {status}"));
    assert_eq!(v.key, key);
    if !matches!(v.parsed.variant, Variant::Spec(_)) {
        return;
    }
    assert!(url.contains("sig="), "spec URLs are signed: {url}");
    // Valid until exp inclusive, refused after.
    if s.urls.default_ttl_secs.is_some() {
        assert_eq!(verify_target(&s, &url, NOW + TTL), Ok(v.clone()));
        assert_eq!(verify_target(&s, &url, NOW + TTL + 1), Err(403));
    }

    // 3. One byte changed breaks it. Generated URLs are ASCII, so any printable ASCII
    // replacement keeps them UTF-8.
    let (_, original_query) = split(&url);
    let mut seed = u64::from(flags >> 1) ^ (rest.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..8 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let pos = (seed >> 33) as usize % url.len();
        let mut byte = 0x21 + ((seed >> 17) % 94) as u8;
        if byte == url.as_bytes()[pos] {
            byte = if byte == 0x7e { 0x21 } else { byte + 1 };
        }
        let mut mutated = url.clone().into_bytes();
        mutated[pos] = byte;
        let mutated = String::from_utf8(mutated).expect("ASCII");
        if let Ok(m) = verify_target(&s, &mutated, NOW) {
            if matches!(m.parsed.variant, Variant::Preset { .. }) {
                continue;
            }
            let (_, mutated_query) = split(&mutated);
            assert!(
                m.key == key && mutated_query == original_query,
                "{url:?} with byte {pos} set to {:?} still verifies: {mutated:?}",
                byte as char
            );
        }
    }
});
