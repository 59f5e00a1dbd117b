//! Values that go into the HTML `rendition html` and the contact sheets write, made safe
//! once for both: text and attribute escaping, and the manifest's placeholder colour and
//! LQIP checked for the only shapes its writer gives them (so neither can end a CSS value
//! or an attribute early).

use rendition_image::placeholder::LQIP_MAX_BYTES;

/// Appends `s` with `& < > " '` escaped: safe in text and in quoted attribute values.
pub fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `s`, HTML-escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s);
    out
}

/// `s` when it is a `#rrggbb` colour, the only shape the manifest writer gives it.
pub fn css_colour(s: &str) -> Option<&str> {
    let hex = s.strip_prefix('#')?;
    (hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// `s` when it is a base64 WebP data URI of at most [`LQIP_MAX_BYTES`], the only shape the
/// manifest writer gives the LQIP (so it cannot end a CSS `url("…")` early).
pub fn lqip_uri(s: &str) -> Option<&str> {
    let body = s.strip_prefix("data:image/webp;base64,")?;
    let base64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    (s.len() <= LQIP_MAX_BYTES && !body.is_empty() && body.bytes().all(base64)).then_some(s)
}
