//! Format negotiation for `fm=auto`: what a client accepts, from its `Accept` field lines
//! (RFC 9110 §12.5.1) or from the CDN's normalised header, and which format it gets.
//!
//! - AVIF when `image/avif` is listed with q > 0, else WebP when `image/webp` is, else the
//!   legacy format: JPEG, or PNG for a source with alpha.
//! - The most specific range decides a type's q (`image/avif;q=0` refuses AVIF even after
//!   `image/*`), but wildcards alone never choose AVIF or WebP: curl's `*/*` and an absent
//!   `Accept` get JPEG, as imgproxy and Thumbor answer (a client that names no modern
//!   format may not decode one).
//! - Only the first [`MAX_ACCEPT`] bytes of all `Accept` lines are read; a member cut at
//!   that bound is dropped.
//! - [`FORMAT_HEADER`], when present with `avif`, `webp` or `jpeg`, is the answer: the
//!   CloudFront Function `infra/aws/cloudfront/accept-format.js` sets it from `Accept`
//!   with the same rule, and the cache keys on it.

use rendition_image::spec::Format;

/// The header the CDN sets to the negotiated format (`avif`, `webp` or `jpeg`).
pub const FORMAT_HEADER: &str = "x-rendition-format";

/// Bytes of `Accept` read at most.
pub const MAX_ACCEPT: usize = 2048;

/// What a client takes, as far as `fm=auto` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepts {
    pub avif: bool,
    pub webp: bool,
}

impl Accepts {
    /// From the CDN's header when it holds a known value, else from the `Accept` lines.
    pub fn from_request(accept: &[&str], format_header: Option<&str>) -> Accepts {
        match format_header
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("avif") => Accepts {
                avif: true,
                webp: true,
            },
            Some("webp") => Accepts {
                avif: false,
                webp: true,
            },
            Some("jpeg") => Accepts::default(),
            _ => Accepts::from_accept(accept),
        }
    }

    /// From the `Accept` field lines (joined as one list, as RFC 9110 §5.3 allows).
    pub fn from_accept(lines: &[&str]) -> Accepts {
        let mut joined = String::new();
        for line in lines {
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(line);
        }
        let cut = joined.len() > MAX_ACCEPT;
        let mut end = MAX_ACCEPT.min(joined.len());
        while !joined.is_char_boundary(end) {
            end -= 1;
        }
        let mut members = split_members(&joined[..end]);
        if cut {
            members.pop();
        }
        let ranges: Vec<Range> = members.into_iter().filter_map(Range::parse).collect();
        Accepts {
            avif: explicitly_accepted(&ranges, "avif"),
            webp: explicitly_accepted(&ranges, "webp"),
        }
    }

    /// The format an `fm=auto` variant takes: the first of `offered` (in the server's
    /// order of preference) the client takes; [`Format::Auto`] stands for the legacy
    /// format (JPEG, or PNG for a source with alpha), which every client takes. When the
    /// client takes none of them (a preset made in AVIF and WebP only), the last offered:
    /// never a format the preset is not made in.
    pub fn choose(self, offered: &[Format]) -> Format {
        for &format in offered {
            match format {
                Format::Avif if self.avif => return Format::Avif,
                Format::Webp if self.webp => return Format::Webp,
                Format::Avif | Format::Webp => {}
                other => return other,
            }
        }
        offered.last().copied().unwrap_or(Format::Auto)
    }

    /// The value of [`FORMAT_HEADER`] for this client.
    pub fn as_header(self) -> &'static str {
        if self.avif {
            "avif"
        } else if self.webp {
            "webp"
        } else {
            "jpeg"
        }
    }
}

/// The server's order for a plain `fm=auto`.
pub const AUTO_ORDER: [Format; 3] = [Format::Avif, Format::Webp, Format::Auto];

/// One media range with its weight, in thousandths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: u16,
}

impl<'a> Range<'a> {
    /// `type/subtype *( OWS ";" OWS parameter )`; `None` when malformed, or its q is.
    fn parse(member: &'a str) -> Option<Range<'a>> {
        // A quoted parameter value may hold separators: such a member is not ours to
        // read (the CloudFront Function drops it too).
        if member.contains('"') {
            return None;
        }
        let mut parts = member.split(';');
        let range = parts.next()?.trim();
        let (kind, subtype) = range.split_once('/')?;
        if kind.is_empty() || subtype.is_empty() || (kind == "*" && subtype != "*") {
            return None;
        }
        let mut q = 1000;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            // The first `q` counts, as the CloudFront Function reads it.
            if name.trim().eq_ignore_ascii_case("q") {
                q = qvalue(value.trim())?;
                break;
            }
        }
        Some(Range { kind, subtype, q })
    }

    fn specificity(&self, subtype: &str) -> Option<u8> {
        let kind_is_image = self.kind.eq_ignore_ascii_case("image");
        if kind_is_image && self.subtype.eq_ignore_ascii_case(subtype) {
            Some(2)
        } else if kind_is_image && self.subtype == "*" {
            Some(1)
        } else if self.kind == "*" {
            Some(0)
        } else {
            None
        }
    }
}

/// The comma-separated members of a field, commas inside quoted strings left alone.
fn split_members(field: &str) -> Vec<&str> {
    let mut members = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in field.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                members.push(&field[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(&field[start..]);
    members
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Whether `image/{subtype}` is named with q > 0 and its most specific range allows it.
fn explicitly_accepted(ranges: &[Range], subtype: &str) -> bool {
    let named = ranges
        .iter()
        .any(|r| r.specificity(subtype) == Some(2) && r.q > 0);
    // Among equally specific ranges, a q=0 one refuses (the client said "not this").
    let best = ranges.iter().filter_map(|r| r.specificity(subtype)).max();
    let refused = ranges
        .iter()
        .any(|r| r.specificity(subtype) == best && best.is_some() && r.q == 0);
    named && !refused
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    const FIREFOX: &str = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5";
    const SAFARI_17: &str = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5";
    const SAFARI_14: &str =
        "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
    const CURL: &str = "*/*";

    fn chosen(accept: &[&str]) -> Format {
        Accepts::from_accept(accept).choose(&AUTO_ORDER)
    }

    #[test]
    fn real_browsers_get_what_they_decode() {
        assert_eq!(chosen(&[CHROME]), Format::Avif);
        assert_eq!(chosen(&[FIREFOX]), Format::Avif);
        assert_eq!(chosen(&[SAFARI_17]), Format::Avif);
        assert_eq!(chosen(&[SAFARI_14]), Format::Webp);
        assert_eq!(chosen(&[CURL]), Format::Auto, "curl gets the legacy format");
        assert_eq!(chosen(&[]), Format::Auto, "no Accept: legacy");
    }

    #[test]
    fn q_values_wildcards_and_case() {
        assert_eq!(chosen(&["image/avif;q=0, image/webp"]), Format::Webp);
        assert_eq!(chosen(&["image/*, image/avif;q=0"]), Format::Auto);
        assert_eq!(chosen(&["image/*"]), Format::Auto, "wildcards alone");
        assert_eq!(chosen(&["IMAGE/AVIF ; Q=0.5"]), Format::Avif);
        assert_eq!(chosen(&["image/avif;q=0.000"]), Format::Auto);
        assert_eq!(
            chosen(&["image/avif;q=2"]),
            Format::Auto,
            "a bad q drops the member"
        );
        assert_eq!(chosen(&["image/avif;q=0.0001"]), Format::Auto);
        assert_eq!(chosen(&["text/html", "image/webp;q=0.1"]), Format::Webp);
        assert_eq!(chosen(&["image/webp, image/webp;q=0"]), Format::Auto);
        assert_eq!(chosen(&["image/png"]), Format::Auto, "none of ours: legacy");
        assert_eq!(
            chosen(&["image/avif;q=0;q=1"]),
            Format::Auto,
            "the first q counts"
        );
        assert_eq!(
            chosen(&["x/y;p=\",image/avif,\""]),
            Format::Auto,
            "quoted: dropped"
        );
    }

    #[test]
    fn a_huge_accept_is_read_up_to_its_bound() {
        let mut long = "x/y,".repeat(100_000);
        long.push_str("image/avif");
        assert_eq!(chosen(&[&long]), Format::Auto);
        // A member cut at the bound does not count.
        let mut cut = "x/y,".repeat((MAX_ACCEPT - 8) / 4);
        cut.push_str("image/avifxyz");
        assert!(cut.len() > MAX_ACCEPT);
        assert_eq!(chosen(&[&cut]), Format::Auto);
        // Multi-byte text at the bound does not panic.
        let wide = "é".repeat(MAX_ACCEPT);
        assert_eq!(chosen(&[&wide]), Format::Auto);
    }

    #[test]
    fn the_cdn_header_wins_when_it_is_one_of_ours() {
        let accepts = Accepts::from_request(&[CURL], Some("avif"));
        assert_eq!(accepts.choose(&AUTO_ORDER), Format::Avif);
        let accepts = Accepts::from_request(&[CHROME], Some("JPEG"));
        assert_eq!(accepts.choose(&AUTO_ORDER), Format::Auto);
        let accepts = Accepts::from_request(&[SAFARI_14], Some("gif"));
        assert_eq!(
            accepts.choose(&AUTO_ORDER),
            Format::Webp,
            "unknown: Accept decides"
        );
        for header in ["avif", "webp", "jpeg"] {
            assert_eq!(Accepts::from_request(&[], Some(header)).as_header(), header);
        }
    }

    #[test]
    fn a_preset_s_own_formats_bound_the_choice() {
        let chrome = Accepts::from_accept(&[CHROME]);
        assert_eq!(chrome.choose(&[Format::Webp, Format::Jpeg]), Format::Webp);
        assert_eq!(chrome.choose(&[Format::Jpeg]), Format::Jpeg);
        let old = Accepts::from_accept(&[CURL]);
        assert_eq!(
            old.choose(&[Format::Avif, Format::Webp, Format::Jpeg]),
            Format::Jpeg
        );
        assert_eq!(old.choose(&[Format::Avif, Format::Webp]), Format::Webp);
        assert_eq!(old.choose(&[]), Format::Auto);
    }
}
