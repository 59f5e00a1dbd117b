"""Errors, each with the stable ``kind`` Rendition itself gives the same refusal."""

from __future__ import annotations


class RenditionError(ValueError):
    """A URL that Rendition would refuse to make (``rendition url``) or serve.

    ``kind`` is one of Rendition's error kinds: ``invalid_key`` (not a source, or a key
    over 1,024 bytes), ``bad_path`` (control characters, ``.``/``..`` segments),
    ``bad_key`` (not a derivative key, or a bad spec), ``unknown_preset``,
    ``specs_disabled`` (``presets_only``, or no signing key) and ``wrong_extension`` (a
    format the variant is not made in).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{message} ({kind})")
        self.kind = kind


class SpecError(RenditionError):
    """A spec Rendition refuses. ``reason`` is ``empty``, ``not_a_pair``, ``unknown_key``,
    ``duplicate_key``, ``invalid_value``, ``requires``, ``conflict`` or ``not_canonical``;
    ``detail`` the key (or the pair) it is about."""

    def __init__(self, reason: str, detail: str | None, message: str) -> None:
        super().__init__("bad_key", message)
        self.reason = reason
        self.detail = detail
