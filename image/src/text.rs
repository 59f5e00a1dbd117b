//! Text helpers shared by every edge.

use std::borrow::Cow;

/// `s` in at most `max_bytes` bytes, cut on a character boundary and ended with `…` when
/// cut: for messages put on a queue, in a header or in a log field, where a byte index
/// inside a multi-byte character would panic (`String::truncate` does).
pub fn truncate(s: &str, max_bytes: usize) -> Cow<'_, str> {
    if s.len() <= max_bytes {
        return Cow::Borrowed(s);
    }
    let mut end = max_bytes.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdefgh", 6), "abc…");
        // "é" is two bytes: a cut through it falls back to before it.
        assert_eq!(truncate("aéé", 4), "a…");
        for s in ["ü".repeat(600), "€".repeat(400), "😀".repeat(300)] {
            let cut = truncate(&s, 1024);
            assert!(cut.len() <= 1024, "{}", cut.len());
            assert!(cut.ends_with('…'));
        }
        assert_eq!(truncate("", 0), "");
    }
}
