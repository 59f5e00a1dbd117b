//! The spec hash: the version of a preset's spec in its derivative names.

use sha2::{Digest, Sha256};

/// Hex digits of a preset's spec hash in its derivative names.
pub const SPEC_HASH_LEN: usize = 8;

/// The version of a preset's spec in its derivative names: the first [`SPEC_HASH_LEN`] lowercase hex
/// digits of SHA-256 over the canonical spec text (`VariantSpec`'s `Display`, e.g.
/// `w=160,h=160,fit=cover,fm=webp,q=75`). Simple on purpose: the URL clients compute it.
pub fn spec_hash(canonical: &str) -> String {
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = hex::encode(&digest[..SPEC_HASH_LEN / 2]);
    hex.truncate(SPEC_HASH_LEN);
    hex
}

/// Whether `text` is spelled as [`spec_hash`] spells hashes.
pub fn is_spec_hash(text: &str) -> bool {
    text.len() == SPEC_HASH_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
