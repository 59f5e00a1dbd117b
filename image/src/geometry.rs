//! Pure geometry: from a source size and a spec's box, the size to scale to, the crop
//! window and the canvas. No libvips here, so every fit is unit-tested on its own.
//!
//! Semantics follow sharp's `resize({ fit })`:
//! - `cover`: scale so the image covers the box, then crop the overflow by gravity;
//! - `contain`: scale so the image fits the box, then centre it (by gravity) on a box-sized canvas;
//! - `fill`: stretch to the box;
//! - `inside`: scale so the image fits the box (output ≤ box);
//! - `outside`: scale so the image covers the box (output ≥ box).
//!
//! With only a width or only a height the other side follows the aspect ratio, whatever
//! the fit. Unless `enlarge` is set, a scale factor never exceeds 1 (sharp's
//! `withoutEnlargement`): `cover` then crops to what the unscaled image can give, and
//! `contain` still answers with the full box.
//!
//! The cover window is placed by a compass gravity, or centred on a focal point as
//! nearly as the scaled frame allows. Smart gravities (`attention`, `entropy`) get a
//! centred window here; the render step replaces its position with libvips' smart crop,
//! keeping its size. A spec's `dpr` multiplies the box before any of this
//! ([`Request::from_spec`]).

use crate::spec::{Fit, FocalPoint, Gravity, VariantSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn new(width: u32, height: u32) -> Size {
        Size { width, height }
    }
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
    /// Whether `self` is at least as large as `other` on both axes.
    pub fn covers(self, other: Size) -> bool {
        self.width >= other.width && self.height >= other.height
    }
}

/// A rectangle inside an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// What to do with a source of a given size to produce one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The whole frame after scaling (non-uniform only for `fill`).
    pub scaled: Size,
    /// Window of `scaled` to keep (`cover`).
    pub crop: Option<Rect>,
    /// Canvas to place the scaled image on, and where it goes (`contain`).
    pub embed: Option<Rect>,
    /// Final output size.
    pub output: Size,
    uniform: bool,
}

impl Plan {
    /// Whether the scaled frame keeps the source's aspect ratio (so it can feed a cascade).
    pub fn is_uniform(&self) -> bool {
        self.uniform
    }
}

/// The box requested by a spec, in output (device) pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub gravity: Gravity,
    pub enlarge: bool,
    /// Centre of the cover window, as nearly as the frame allows (overrides `gravity`).
    pub focus: Option<FocalPoint>,
}

impl Request {
    /// The spec's box multiplied by its `dpr`.
    pub fn from_spec(spec: &VariantSpec) -> Request {
        Request {
            width: spec.width.map(|w| spec.dpr.apply(w)),
            height: spec.height.map(|h| spec.dpr.apply(h)),
            fit: spec.fit,
            gravity: spec.gravity,
            enlarge: spec.enlarge,
            focus: spec.focus,
        }
    }
}

fn scaled_len(len: u32, scale: f64) -> u32 {
    ((f64::from(len) * scale).round() as u32).max(1)
}

/// Scale `source` uniformly by `scale`, pinning the axis that decided the scale to its
/// exact target so rounding never yields 319 for a requested 320.
fn scale_uniform(source: Size, scale: f64, pin: Option<(Axis, u32)>) -> Size {
    let mut size = Size::new(
        scaled_len(source.width, scale),
        scaled_len(source.height, scale),
    );
    match pin {
        Some((Axis::X, len)) => size.width = len,
        Some((Axis::Y, len)) => size.height = len,
        None => {}
    }
    size
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    X,
    Y,
}

/// Offset of a `inner`-long span inside an `outer`-long one for a gravity along one axis.
fn offset(outer: u32, inner: u32, start: bool, end: bool) -> u32 {
    let slack = outer.saturating_sub(inner);
    if start {
        0
    } else if end {
        slack
    } else {
        slack / 2
    }
}

/// Place an `inner` rectangle inside `outer` according to `gravity`.
pub fn place(outer: Size, inner: Size, gravity: Gravity) -> Rect {
    use Gravity::*;
    let west = matches!(gravity, West | NorthWest | SouthWest);
    let east = matches!(gravity, East | NorthEast | SouthEast);
    let north = matches!(gravity, North | NorthEast | NorthWest);
    let south = matches!(gravity, South | SouthEast | SouthWest);
    Rect {
        left: offset(outer.width, inner.width, west, east),
        top: offset(outer.height, inner.height, north, south),
        width: inner.width.min(outer.width),
        height: inner.height.min(outer.height),
    }
}

/// Start of an `inner`-long window inside an `outer`-long span whose centre is as near
/// `thousandths`/1000 of `outer` as the span allows.
fn focal_offset(outer: u32, inner: u32, thousandths: u16) -> u32 {
    let slack = outer.saturating_sub(inner);
    // Twice the ideal start, in thousandths, to stay in integers: 2·f·outer − 1000·inner.
    let twice = 2 * i64::from(thousandths) * i64::from(outer) - 1000 * i64::from(inner);
    // Round half up: floor((twice + 1000) / 2000).
    let start = (twice + 1000).div_euclid(2000);
    start.clamp(0, i64::from(slack)) as u32
}

/// Place an `inner` window inside `outer` centred as near the focal point as possible.
pub fn place_focus(outer: Size, inner: Size, focus: FocalPoint) -> Rect {
    Rect {
        left: focal_offset(outer.width, inner.width, focus.x),
        top: focal_offset(outer.height, inner.height, focus.y),
        width: inner.width.min(outer.width),
        height: inner.height.min(outer.height),
    }
}

/// Computes the plan for one variant. `source` is the size after EXIF orientation.
pub fn plan(source: Size, req: &Request) -> Plan {
    let clamp = |s: f64| if req.enlarge { s } else { s.min(1.0) };
    let sx = |w: u32| f64::from(w) / f64::from(source.width);
    let sy = |h: u32| f64::from(h) / f64::from(source.height);
    let pin = |axis: Axis, len: u32, raw: f64| {
        // Only pin when the scale was not clamped: a clamped scale is 1.0 and exact.
        if clamp(raw) == raw {
            Some((axis, len))
        } else {
            None
        }
    };

    let frame = |scaled: Size| Plan {
        scaled,
        crop: None,
        embed: None,
        output: scaled,
        uniform: true,
    };

    match (req.width, req.height) {
        (None, None) => frame(source),
        (Some(w), None) => {
            let raw = sx(w);
            frame(scale_uniform(source, clamp(raw), pin(Axis::X, w, raw)))
        }
        (None, Some(h)) => {
            let raw = sy(h);
            frame(scale_uniform(source, clamp(raw), pin(Axis::Y, h, raw)))
        }
        (Some(w), Some(h)) => {
            let (rx, ry) = (sx(w), sy(h));
            let boxed = Size::new(w, h);
            match req.fit {
                Fit::Fill => {
                    let scaled = Size::new(
                        if clamp(rx) == rx { w } else { source.width },
                        if clamp(ry) == ry { h } else { source.height },
                    );
                    Plan {
                        scaled,
                        crop: None,
                        embed: None,
                        output: scaled,
                        uniform: scaled.width == source.width && scaled.height == source.height,
                    }
                }
                Fit::Inside | Fit::Contain => {
                    let (raw, axis, len) = if rx <= ry {
                        (rx, Axis::X, w)
                    } else {
                        (ry, Axis::Y, h)
                    };
                    let scaled = scale_uniform(source, clamp(raw), pin(axis, len, raw));
                    if req.fit == Fit::Inside {
                        frame(scaled)
                    } else {
                        let at = place(boxed, scaled, req.gravity);
                        Plan {
                            scaled,
                            crop: None,
                            embed: Some(Rect {
                                left: at.left,
                                top: at.top,
                                width: w,
                                height: h,
                            }),
                            output: boxed,
                            uniform: true,
                        }
                    }
                }
                Fit::Cover | Fit::Outside => {
                    let (raw, axis, len) = if rx >= ry {
                        (rx, Axis::X, w)
                    } else {
                        (ry, Axis::Y, h)
                    };
                    let scaled = scale_uniform(source, clamp(raw), pin(axis, len, raw));
                    if req.fit == Fit::Outside {
                        frame(scaled)
                    } else {
                        let window = Size::new(w.min(scaled.width), h.min(scaled.height));
                        let crop = match req.focus {
                            Some(focus) => place_focus(scaled, window, focus),
                            None => place(scaled, window, req.gravity),
                        };
                        Plan {
                            scaled,
                            crop: (window != scaled).then_some(crop),
                            embed: None,
                            output: window,
                            uniform: true,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(w: Option<u32>, h: Option<u32>, fit: Fit) -> Request {
        Request {
            width: w,
            height: h,
            fit,
            gravity: Gravity::Centre,
            enlarge: false,
            focus: None,
        }
    }

    const LANDSCAPE: Size = Size::new(4000, 3000);

    #[test]
    fn width_only_keeps_aspect_for_every_fit() {
        for fit in Fit::ALL {
            let p = plan(LANDSCAPE, &req(Some(320), None, fit));
            assert_eq!(p.output, Size::new(320, 240), "{fit:?}");
            assert_eq!(p.crop, None);
            assert_eq!(p.embed, None);
        }
        let p = plan(LANDSCAPE, &req(None, Some(100), Fit::Cover));
        assert_eq!(p.output, Size::new(133, 100));
    }

    #[test]
    fn pinned_axis_is_exact_despite_rounding() {
        // 3001 * (320/4001) = 240.02 and 4001 * (320/4001) must be exactly 320.
        let p = plan(Size::new(4001, 3001), &req(Some(320), None, Fit::Inside));
        assert_eq!(p.output.width, 320);
        let p = plan(Size::new(1000, 3), &req(Some(10), None, Fit::Inside));
        assert_eq!(p.output, Size::new(10, 1), "never a zero-pixel side");
    }

    #[test]
    fn cover_fills_box_and_crops_by_gravity() {
        let p = plan(LANDSCAPE, &req(Some(300), Some(300), Fit::Cover));
        assert_eq!(p.scaled, Size::new(400, 300));
        assert_eq!(p.output, Size::new(300, 300));
        assert_eq!(
            p.crop,
            Some(Rect {
                left: 50,
                top: 0,
                width: 300,
                height: 300
            })
        );
        let mut r = req(Some(300), Some(300), Fit::Cover);
        r.gravity = Gravity::East;
        assert_eq!(plan(LANDSCAPE, &r).crop.unwrap().left, 100);
        r.gravity = Gravity::West;
        assert_eq!(plan(LANDSCAPE, &r).crop.unwrap().left, 0);
        // Portrait source, north keeps the top.
        let mut r = req(Some(300), Some(300), Fit::Cover);
        r.gravity = Gravity::North;
        let p = plan(Size::new(3000, 4000), &r);
        assert_eq!(p.scaled, Size::new(300, 400));
        assert_eq!(p.crop.unwrap().top, 0);
        r.gravity = Gravity::SouthWest;
        let c = plan(Size::new(3000, 4000), &r).crop.unwrap();
        assert_eq!((c.left, c.top), (0, 100));
    }

    #[test]
    fn contain_letterboxes_to_exact_box() {
        let p = plan(LANDSCAPE, &req(Some(300), Some(300), Fit::Contain));
        assert_eq!(p.scaled, Size::new(300, 225));
        assert_eq!(p.output, Size::new(300, 300));
        assert_eq!(
            p.embed,
            Some(Rect {
                left: 0,
                top: 37,
                width: 300,
                height: 300
            })
        );
        let mut r = req(Some(300), Some(300), Fit::Contain);
        r.gravity = Gravity::South;
        assert_eq!(plan(LANDSCAPE, &r).embed.unwrap().top, 75);
    }

    #[test]
    fn fill_stretches_inside_and_outside_bound() {
        let p = plan(LANDSCAPE, &req(Some(300), Some(300), Fit::Fill));
        assert_eq!(p.output, Size::new(300, 300));
        assert!(!p.is_uniform());
        let p = plan(LANDSCAPE, &req(Some(300), Some(300), Fit::Inside));
        assert_eq!(p.output, Size::new(300, 225));
        let p = plan(LANDSCAPE, &req(Some(300), Some(300), Fit::Outside));
        assert_eq!(p.output, Size::new(400, 300));
    }

    #[test]
    fn no_enlargement_unless_asked() {
        let small = Size::new(200, 100);
        assert_eq!(
            plan(small, &req(Some(400), None, Fit::Inside)).output,
            small
        );
        assert_eq!(
            plan(small, &req(Some(400), Some(400), Fit::Outside)).output,
            small
        );
        assert_eq!(
            plan(small, &req(Some(400), Some(400), Fit::Fill)).output,
            small
        );
        let cover = plan(small, &req(Some(150), Some(150), Fit::Cover));
        assert_eq!(cover.scaled, small);
        assert_eq!(cover.output, Size::new(150, 100));
        let contain = plan(small, &req(Some(400), Some(400), Fit::Contain));
        assert_eq!(contain.scaled, small);
        assert_eq!(contain.output, Size::new(400, 400));
        let mut r = req(Some(400), None, Fit::Inside);
        r.enlarge = true;
        assert_eq!(plan(small, &r).output, Size::new(400, 200));
    }

    #[test]
    fn no_box_keeps_source() {
        assert_eq!(
            plan(LANDSCAPE, &req(None, None, Fit::Cover)).output,
            LANDSCAPE
        );
    }

    #[test]
    fn extreme_aspect_ratios_stay_positive() {
        let strip = Size::new(10_000, 10);
        for fit in Fit::ALL {
            let p = plan(strip, &req(Some(100), Some(100), fit));
            assert!(p.output.width >= 1 && p.output.height >= 1, "{fit:?} {p:?}");
            assert!(p.scaled.width >= 1 && p.scaled.height >= 1, "{fit:?} {p:?}");
            if let Some(c) = p.crop {
                assert!(c.left + c.width <= p.scaled.width && c.top + c.height <= p.scaled.height);
            }
        }
    }

    fn focus(x: u16, y: u16) -> Option<FocalPoint> {
        Some(FocalPoint { x, y })
    }

    #[test]
    fn focal_point_centres_the_window_as_far_as_the_frame_allows() {
        // 4000×3000 covering 300×300 scales to 400×300: 100 px of horizontal slack.
        let mut r = req(Some(300), Some(300), Fit::Cover);
        r.focus = focus(500, 500);
        assert_eq!(
            plan(LANDSCAPE, &r).crop.unwrap().left,
            50,
            "centre = centre"
        );
        r.focus = focus(625, 500); // x = 250 in the frame: window 100..400
        assert_eq!(plan(LANDSCAPE, &r).crop.unwrap().left, 100);
        r.focus = focus(550, 500); // x = 220: window 70..370
        assert_eq!(plan(LANDSCAPE, &r).crop.unwrap().left, 70);
        r.focus = focus(0, 0);
        let c = plan(LANDSCAPE, &r).crop.unwrap();
        assert_eq!((c.left, c.top), (0, 0), "clamped to the frame");
        r.focus = focus(1000, 1000);
        let c = plan(LANDSCAPE, &r).crop.unwrap();
        assert_eq!((c.left, c.top), (100, 0), "clamped; no vertical slack");
        assert_eq!((c.width, c.height), (300, 300));
        // Portrait: the vertical axis moves.
        let p = plan(Size::new(3000, 4000), &r);
        assert_eq!(p.crop.unwrap().top, 100);
        r.focus = focus(500, 300); // y = 120 of 400: window -30..270 → 0
        assert_eq!(plan(Size::new(3000, 4000), &r).crop.unwrap().top, 0);
        r.focus = focus(500, 600); // y = 240: window 90..390
        assert_eq!(plan(Size::new(3000, 4000), &r).crop.unwrap().top, 90);
    }

    #[test]
    fn focal_offset_rounds_half_up_and_stays_inside() {
        assert_eq!(focal_offset(401, 300, 500), 51, "200.5 − 150 = 50.5 → 51");
        assert_eq!(focal_offset(300, 300, 1000), 0, "no slack");
        assert_eq!(
            focal_offset(100, 300, 500),
            0,
            "window larger than the span"
        );
        for f in (0..=1000).step_by(7) {
            let start = focal_offset(1234, 567, f);
            assert!(start + 567 <= 1234, "{f}");
        }
    }

    #[test]
    fn focal_point_is_only_for_cover() {
        for fit in [Fit::Contain, Fit::Inside, Fit::Outside, Fit::Fill] {
            let mut r = req(Some(300), Some(300), fit);
            let plain = plan(LANDSCAPE, &r);
            r.focus = focus(0, 0);
            assert_eq!(plan(LANDSCAPE, &r), plain, "{fit:?}");
        }
    }

    #[test]
    fn smart_gravity_gets_a_centred_window_of_the_cover_size() {
        let mut r = req(Some(300), Some(300), Fit::Cover);
        let centre = plan(LANDSCAPE, &r);
        for g in [Gravity::Attention, Gravity::Entropy] {
            r.gravity = g;
            assert_eq!(plan(LANDSCAPE, &r), centre, "{g:?}");
        }
    }

    #[test]
    fn dpr_multiplies_the_box() {
        let spec: VariantSpec = "w=160,h=90,fit=cover,dpr=2".parse().unwrap();
        let r = Request::from_spec(&spec);
        assert_eq!((r.width, r.height), (Some(320), Some(180)));
        assert_eq!(plan(LANDSCAPE, &r).output, Size::new(320, 180));
        let spec: VariantSpec = "w=333,dpr=1.5".parse().unwrap();
        let r = Request::from_spec(&spec);
        assert_eq!((r.width, r.height), (Some(500), None));
        assert_eq!(plan(LANDSCAPE, &r).output, Size::new(500, 375));
        // Still no enlargement: a 2× box on a small source gives the source.
        let spec: VariantSpec = "w=300,dpr=2".parse().unwrap();
        let small = Size::new(400, 300);
        assert_eq!(plan(small, &Request::from_spec(&spec)).output, small);
        let spec: VariantSpec = "w=300,h=300,fit=cover,fx=0.9,fy=0.1".parse().unwrap();
        assert_eq!(Request::from_spec(&spec).focus, focus(900, 100));
    }
}
