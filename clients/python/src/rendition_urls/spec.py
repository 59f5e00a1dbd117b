"""Variant specs: parsing (any key order) and the one canonical text, as Rendition's
``image/src/spec/`` does it — the same rules, checked in the same order, so a spec is
refused here exactly when the server would refuse it.

The canonical form prints keys in the order of :data:`KEYS` and leaves out defaults:
``fm=webp,fit=inside,w=320`` becomes ``w=320,fm=webp``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import SpecError

#: Every key, in canonical order.
KEYS = ("w", "h", "fit", "g", "fm", "q", "bg", "enlarge", "fx", "fy", "dpr", "pj", "palette", "lossless")
FITS = ("cover", "contain", "fill", "inside", "outside")
GRAVITIES = (
    "centre", "north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest",
    "attention", "entropy",
)
#: ``fm`` values. ``original`` keeps the source's format; ``auto`` is negotiated per request.
FORMATS = ("jpeg", "png", "webp", "avif", "gif", "original", "auto")
MAX_DIMENSION = 16383

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Spec:
    """One derivative's recipe. Build it with :meth:`parse`; ``str(spec)`` is canonical."""

    width: int | None = None
    height: int | None = None
    fit: str = "inside"
    gravity: str = "centre"
    format: str = "original"
    quality: int | None = None
    #: ``rrggbb``, lowercase.
    background: str | None = None
    enlarge: bool = False
    #: Focal point ``(x, y)`` in thousandths (``fx=0.25`` is 250).
    focus: tuple[int, int] | None = None
    #: Device pixel ratio in tenths (``dpr=1.5`` is 15).
    dpr_tenths: int = 10
    progressive: bool = False
    palette: bool = False
    lossless: bool = False

    @classmethod
    def parse(cls, text: str) -> Spec:
        """Parses a spec in any key order; raises :class:`SpecError` as Rendition would."""
        return _parse(text)

    def scaled(self, length: int) -> int:
        """``length`` CSS pixels in output pixels (× dpr, rounded half up, at least 1)."""
        return max(1, (length * self.dpr_tenths + 5) // 10)

    def __str__(self) -> str:
        parts: list[str] = []
        if self.width is not None:
            parts.append(f"w={self.width}")
        if self.height is not None:
            parts.append(f"h={self.height}")
        if self.fit != "inside":
            parts.append(f"fit={self.fit}")
        if self.gravity != "centre":
            parts.append(f"g={self.gravity}")
        if self.format != "original":
            parts.append(f"fm={self.format}")
        if self.quality is not None:
            parts.append(f"q={self.quality}")
        if self.background is not None:
            parts.append(f"bg={self.background}")
        if self.enlarge:
            parts.append("enlarge=true")
        if self.focus is not None:
            parts.append(f"fx={_fmt_fraction(self.focus[0])}")
            parts.append(f"fy={_fmt_fraction(self.focus[1])}")
        if self.dpr_tenths != 10:
            whole, tenth = divmod(self.dpr_tenths, 10)
            parts.append(f"dpr={whole}" if tenth == 0 else f"dpr={whole}.{tenth}")
        if self.progressive:
            parts.append("pj=true")
        if self.palette:
            parts.append("palette=true")
        if self.lossless:
            parts.append("lossless=true")
        return ",".join(parts)


def canonical_spec(text: str) -> str:
    """The canonical text of a spec given in any order: what URLs and names carry."""
    return str(_parse(text))


def parse_canonical(text: str) -> Spec:
    """Parses a spec that must already be canonical (as in a derivative key)."""
    spec = _parse(text)
    if str(spec) != text:
        raise SpecError("not_canonical", None, f"spec {text!r} is not canonical; use {str(spec)!r}")
    return spec


def _invalid(key: str, value: str, expected: str) -> SpecError:
    return SpecError("invalid_value", key, f"invalid value {value!r} for {key!r}: {expected}")


def _number(key: str, value: str, low: int, high: int) -> int:
    # ASCII digits only, no sign, no leading zero: int() alone would take "+5", " 5",
    # "1_0" and other scripts' digits.
    if value.startswith("0") or not value or not set(value) <= _DIGITS:
        raise _invalid(key, value, f"a whole number from {low} to {high} without sign or leading zeros")
    n = int(value)
    if not low <= n <= high:
        raise _invalid(key, value, f"a whole number from {low} to {high} without sign or leading zeros")
    return n


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _invalid(key, value, "one of " + ", ".join(allowed))
    return value


def _bool(key: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise _invalid(key, value, "true or false")
    return value == "true"


def _fraction(key: str, value: str) -> int:
    """``0``–``1`` with up to three decimals, in thousandths."""
    whole, dot, frac = value.partition(".")
    if dot and not 1 <= len(frac) <= 3:
        raise _invalid(key, value, "a number from 0 to 1 with at most 3 decimals, e.g. 0.25")
    if not set(frac) <= _DIGITS or whole not in ("0", "1"):
        raise _invalid(key, value, "a number from 0 to 1 with at most 3 decimals, e.g. 0.25")
    total = int(whole) * 1000 + int(frac.ljust(3, "0"))
    if total > 1000:
        raise _invalid(key, value, "a number from 0 to 1 with at most 3 decimals, e.g. 0.25")
    return total


def _fmt_fraction(thousandths: int) -> str:
    whole, frac = divmod(thousandths, 1000)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:03d}".rstrip("0")


def _dpr(value: str) -> int:
    if len(value) == 1 and value in _DIGITS:
        tenths = int(value) * 10
    elif len(value) == 3 and value[0] in _DIGITS and value[1] == "." and value[2] in _DIGITS:
        tenths = int(value[0]) * 10 + int(value[2])
    else:
        tenths = 0
    if not 10 <= tenths <= 40:
        raise _invalid("dpr", value, "a number from 1 to 4 with at most one decimal, e.g. 2 or 1.5")
    return tenths


def _parse(text: str) -> Spec:
    spec = Spec()
    seen: list[str] = []
    fx: int | None = None
    fy: int | None = None
    for pair in text.split(","):
        key, eq, value = pair.partition("=")
        if not eq:
            raise SpecError("not_a_pair", pair, f"{pair!r} is not a key=value pair")
        if key in seen:
            raise SpecError("duplicate_key", key, f"key {key!r} is given twice")
        if key == "w":
            spec = replace(spec, width=_number("w", value, 1, MAX_DIMENSION))
        elif key == "h":
            spec = replace(spec, height=_number("h", value, 1, MAX_DIMENSION))
        elif key == "fit":
            spec = replace(spec, fit=_choice("fit", value, FITS))
        elif key == "g":
            spec = replace(spec, gravity=_choice("g", value, GRAVITIES))
        elif key == "fm":
            spec = replace(spec, format=_choice("fm", value, FORMATS))
        elif key == "q":
            spec = replace(spec, quality=_number("q", value, 1, 100))
        elif key == "bg":
            if len(value) != 6 or not set(value) <= _HEX:
                raise _invalid("bg", value, "six lowercase hex digits, e.g. ff8800")
            spec = replace(spec, background=value)
        elif key == "enlarge":
            spec = replace(spec, enlarge=_bool("enlarge", value))
        elif key == "fx":
            fx = _fraction("fx", value)
        elif key == "fy":
            fy = _fraction("fy", value)
        elif key == "dpr":
            spec = replace(spec, dpr_tenths=_dpr(value))
        elif key == "pj":
            spec = replace(spec, progressive=_bool("pj", value))
        elif key == "palette":
            spec = replace(spec, palette=_bool("palette", value))
        elif key == "lossless":
            spec = replace(spec, lossless=_bool("lossless", value))
        else:
            raise SpecError("unknown_key", key, f"unknown key {key!r} (known: {', '.join(KEYS)})")
        seen.append(key)
    if fx is not None and fy is not None:
        spec = replace(spec, focus=(fx, fy))
    _check_combinations(spec, fx, fy)
    if spec == Spec():
        raise SpecError("empty", None, "empty spec: give at least one of w, h or fm")
    return spec


def _check_combinations(spec: Spec, fx: int | None, fy: int | None) -> None:
    if fx is not None and fy is None:
        raise SpecError("requires", "fx", "'fx' requires fy")
    if fy is not None and fx is None:
        raise SpecError("requires", "fy", "'fy' requires fx")
    if spec.focus is not None:
        if spec.fit != "cover":
            raise SpecError("requires", "fx", "'fx' requires fit=cover")
        if spec.gravity != "centre":
            raise SpecError("conflict", "fx", "'fx' cannot be combined with g (a focal point replaces the gravity)")
    if spec.gravity in ("attention", "entropy") and spec.fit != "cover":
        raise SpecError("requires", "g", "'g' requires fit=cover for g=attention and g=entropy")
    if spec.dpr_tenths != 10 and spec.width is None and spec.height is None:
        raise SpecError("requires", "dpr", "'dpr' requires w or h")
    for flag, key, fmt in ((spec.progressive, "pj", "jpeg"), (spec.palette, "palette", "png"), (spec.lossless, "lossless", "webp")):
        if flag and spec.format != fmt:
            raise SpecError("requires", key, f"{key!r} requires fm={fmt}")
