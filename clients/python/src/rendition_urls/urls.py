"""Derivative URLs, byte for byte as Rendition's ``UrlGenerator`` (``pipeline/src/url.rs``)
makes them::

    {scheme}://{host}/{derived key}                                presets
    {scheme}://{host}/{derived key}?exp={unix seconds}&sig={mac}   explicit specs

A preset's file name carries the hash of its spec (``thumb.3fa9c2e1.webp``): the first 8
hex digits of SHA-256 over the canonical spec in that format (``.auto``: over
:meth:`Preset.negotiated_text`), so an edited preset gets new URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import RenditionError, SpecError
from .naming import (
    MAX_KEY_BYTES,
    guid_in_name,
    is_guid,
    is_preset_name,
    is_spec_hash,
    normalise_guid,
    source_guid,
    source_rel,
    spec_hash,
)
from .spec import Spec, parse_canonical

#: File extension of each URL format (``auto``: negotiated per request).
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif", "gif": "gif", "auto": "auto"}
#: What a plain ``fm=auto`` offers, in the server's order (``auto`` = JPEG or PNG).
AUTO_ORDER = ("avif", "webp", "auto")

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/,=:")
_URL_KEYS = frozenset({"hosts", "scheme", "shard_https", "presets_only", "signing_keys", "default_ttl_secs"})
_PRESET_KEYS = frozenset({"spec", "eager", "formats"})


def encode_key(key: str) -> str:
    """Percent-encodes a derivative key for a URL path: every UTF-8 byte outside
    ``A-Z a-z 0-9 - . _ ~ / , = :`` as ``%XX`` (uppercase hex)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in key.encode("utf-8"))


def sign(key: str | bytes, path: str, exp: int | None) -> str:
    """``base64url_nopad(HMAC-SHA256(key, "{path}\\n{exp or ''}"))`` of a decoded URL path
    (with its leading ``/``)."""
    secret = key.encode("utf-8") if isinstance(key, str) else key
    message = f"{path}\n{'' if exp is None else exp}".encode("utf-8")
    tag = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(tag).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Preset:
    """A named variant: its spec, and the formats it is made in (in preference order)."""

    spec: Spec
    formats: tuple[str, ...] = ()
    eager: bool = False

    @classmethod
    def of(cls, value: Preset | str | Mapping[str, Any]) -> Preset:
        """From a spec string, or a ``rendition.toml`` preset table."""
        if isinstance(value, Preset):
            return value
        if isinstance(value, str):
            return cls(Spec.parse(value))
        unknown = set(value) - _PRESET_KEYS
        if unknown:
            raise ValueError(f"unknown preset settings: {sorted(unknown)}")
        return cls(Spec.parse(value["spec"]), tuple(value.get("formats", ())), bool(value.get("eager", False)))

    def offered(self) -> tuple[str, ...]:
        """The formats this preset is served in (``auto`` in it: JPEG or PNG)."""
        if self.formats:
            return self.formats
        return AUTO_ORDER if self.spec.format == "auto" else (self.spec.format,)

    def negotiates(self) -> bool:
        """Whether its URLs may end in ``.auto``."""
        return bool(self.formats) or self.spec.format == "auto"

    def hash_in(self, fmt: str) -> str:
        """The spec hash its names carry in format ``fmt`` (``auto``: the legacy format)."""
        return spec_hash(str(replace(self.spec, format=fmt)))

    def negotiated_text(self) -> str:
        """What its ``.auto`` URL is versioned by: the spec with ``fm=auto``, then
        ``;formats=`` and its formats when it names some."""
        text = str(replace(self.spec, format="auto"))
        if self.formats:
            text += ";formats=" + ",".join(self.formats)
        return text

    def url_hash(self, fmt: str) -> str:
        """The spec hash in its URL for format ``fmt`` (``auto``: its negotiated URL)."""
        if fmt == "auto" and self.negotiates():
            return spec_hash(self.negotiated_text())
        if self.offered() == ("original",):
            return self.hash_in("original")
        return self.hash_in(fmt)


def default_presets() -> dict[str, Preset]:
    """Rendition's built-in presets (used when a configuration names none)."""
    eager = {"xl": "w=2048,fm=webp,q=75", "lg": "w=1024,fm=webp,q=75", "md": "w=640,fm=webp,q=75",
             "sm": "w=320,fm=webp,q=75", "thumb": "w=160,h=160,fit=cover,fm=webp,q=75"}
    presets = {name: Preset(Spec.parse(spec), eager=True) for name, spec in eager.items()}
    presets["og"] = Preset(Spec.parse("w=1200,h=630,fit=cover,fm=jpeg,q=82"))
    return presets


class UrlGenerator:
    """Builds derivative URLs from the settings that shape them (``[urls]``, the storage
    prefixes and ``[presets]`` of ``rendition.toml``). Signing keys belong on a server."""

    def __init__(
        self,
        *,
        hosts: Sequence[str] = (),
        scheme: str = "https",
        shard_https: bool = False,
        presets_only: bool = False,
        signing_keys: Sequence[str | bytes] = (),
        default_ttl_secs: int | None = None,
        source_prefix: str = "originals/",
        derived_prefix: str = "derived/",
        presets: Mapping[str, Preset | str | Mapping[str, Any]] | None = None,
    ) -> None:
        if scheme not in ("https", "http"):
            raise ValueError(f'urls.scheme must be "https" or "http", got {scheme!r}')
        for host in hosts:
            if not host or any(c in "/?#@\\" or c.isspace() or _is_control(c) for c in host):
                raise ValueError(f"urls.hosts entries must be host names (optionally with a port), got {host!r}")
        keys = [k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in signing_keys]
        if any(len(k) < 32 for k in keys):
            raise ValueError("urls.signing_keys must be at least 32 bytes each")
        if default_ttl_secs is not None and default_ttl_secs < 1:
            raise ValueError("urls.default_ttl_secs must be at least 1 (or unset)")
        for name, prefix in (("source_prefix", source_prefix), ("derived_prefix", derived_prefix)):
            if len(prefix) < 2 or not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix:
                raise ValueError(f"storage.{name} must be a relative folder ending in '/', got {prefix!r}")
        chosen = {name: Preset.of(p) for name, p in (presets or {}).items()} or default_presets()
        for name, preset in chosen.items():
            _check_preset(name, preset)
        self.hosts = tuple(hosts)
        self.scheme = scheme
        self.presets_only = presets_only
        self.default_ttl_secs = default_ttl_secs
        self.source_prefix = source_prefix
        self.derived_prefix = derived_prefix
        self.presets: Mapping[str, Preset] = chosen
        self._keys = keys
        self._shard = scheme != "https" or shard_https

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UrlGenerator:
        """From a parsed ``rendition.toml`` (``tomllib.load``): its ``[urls]``,
        ``[storage]`` prefixes and ``[presets]``. Environment overrides
        (``RENDITION__URLS__SIGNING_KEYS``) are not read: pass them in the mapping."""
        urls = dict(config.get("urls", {}))
        unknown = set(urls) - _URL_KEYS
        if unknown:
            raise ValueError(f"unknown [urls] settings: {sorted(unknown)}")
        storage = config.get("storage", {})
        return cls(
            **urls,
            source_prefix=storage.get("source_prefix", "originals/"),
            derived_prefix=storage.get("derived_prefix", "derived/"),
            presets=config.get("presets"),
        )

    def __repr__(self) -> str:  # the signing keys stay out of logs
        return f"UrlGenerator(hosts={self.hosts!r}, scheme={self.scheme!r}, signing_keys=[{len(self._keys)} redacted])"

    # ------------------------------------------------------------------ URLs

    def url(
        self,
        source_key: str,
        *,
        preset: str | None = None,
        spec: str | None = None,
        guid: str | uuid.UUID | None = None,
        bucket: str | None = None,
        version: str | None = None,
        format: str | None = None,
        now: int | None = None,
    ) -> str:
        """The URL of one variant (``preset`` or ``spec``, any key order) of a source.

        The source's GUID: ``guid``, else the one its file name carries, else derived from
        ``bucket`` and ``version`` (S3 version id, else ETag). ``format`` picks one format
        of several (default: ``auto`` when the variant negotiates, else its ``fm``); a
        variant with ``fm=original`` needs it (the format the source renders to: its own,
        TIFF → ``png``, HEIF → ``avif``). ``now`` (unix seconds) sets a signed URL's expiry.
        """
        rel = source_rel(self.source_prefix, source_key)
        resolved = self._guid(source_key, guid, bucket, version)
        segment, offered, negotiates, default = self._variant(preset, spec)
        ext = _extension(offered, negotiates, format or default)
        if preset is not None:
            segment = f"{preset}.{self.presets[preset].url_hash(format or default)}"
        key = f"{self.derived_prefix}{rel}/{resolved}/{segment}.{ext}"
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise RenditionError("invalid_key", f"key is {len(key.encode('utf-8'))} bytes; at most {MAX_KEY_BYTES} are allowed")
        return self.for_key(key, now)

    def urls(
        self,
        source_key: str,
        *,
        preset: str | None = None,
        spec: str | None = None,
        guid: str | uuid.UUID | None = None,
        bucket: str | None = None,
        version: str | None = None,
        format: str | None = None,
        now: int | None = None,
    ) -> list[str]:
        """What ``rendition url`` prints: one URL, or for a preset in several formats its
        ``.auto`` URL and then one per format. ``format`` only for ``fm=original``."""
        _, offered, negotiates, default = self._variant(preset, spec)
        if default == "original":
            if format is None:
                raise TypeError("this variant keeps the source's format: pass format= (the format it renders to)")
            formats = [format]
        elif format is not None:
            raise TypeError("format= is only for fm=original variants; use url(format=...) for one format")
        elif preset is not None and self.presets[preset].formats:
            formats = ["auto", *self.presets[preset].formats]
        else:
            formats = [default]
        return [
            self.url(source_key, preset=preset, spec=spec, guid=guid, bucket=bucket, version=version, format=f, now=now)
            for f in formats
        ]

    def srcset(
        self,
        source_key: str,
        presets: Iterable[str] | None = None,
        *,
        guid: str | uuid.UUID | None = None,
        bucket: str | None = None,
        version: str | None = None,
        format: str | None = None,
    ) -> str:
        """``"URL 320w, URL 640w, …"`` over presets, narrowest first, one candidate per
        width (the first by name); a candidate's width is its preset's ``w`` × ``dpr``.
        ``presets`` default: the eager presets with a width and no height, the ladder
        ``rendition html`` uses. ``format``: one format for all (e.g. one ``<source>``)."""
        if presets is None:
            names = [n for n, p in sorted(self.presets.items())
                     if p.eager and p.spec.width is not None and p.spec.height is None]
        else:
            names = list(presets)
        items: list[tuple[int, str]] = []
        for name in names:
            found = self.presets.get(name)
            if found is None:
                raise RenditionError("unknown_preset", f"unknown preset {name!r}")
            if found.spec.width is None:
                raise ValueError(f"preset {name!r} has no width: it cannot be a srcset candidate")
            items.append((found.spec.scaled(found.spec.width), name))
        parts: list[str] = []
        last: int | None = None
        for width, name in sorted(items):
            if width != last:
                url = self.url(source_key, preset=name, guid=guid, bucket=bucket, version=version, format=format)
                parts.append(f"{url} {width}w")
                last = width
        return ", ".join(parts)

    def for_key(self, derived_key: str, now: int | None = None) -> str:
        """The URL of a derivative key as a manifest lists it, as ``UrlGenerator::for_key``
        makes it: signed (``exp`` = now + ``default_ttl_secs`` when set) iff its variant is
        an explicit spec. The extension is not checked against the variant's formats."""
        _check_key(derived_key)
        is_spec = self._parse_derivative_key(derived_key)
        path = "/" + derived_key
        host = self.host_for(path)
        url = (f"{self.scheme}://{host}" if host is not None else "") + "/" + encode_key(derived_key)
        if is_spec:
            exp = None
            if self.default_ttl_secs is not None:
                exp = (int(time.time()) if now is None else now) + self.default_ttl_secs
            sig = sign(self._keys[0], path, exp)
            url += f"?sig={sig}" if exp is None else f"?exp={exp}&sig={sig}"
        return url

    def host_for(self, path: str) -> str | None:
        """The host serving a decoded URL path (``/`` + derived key); ``None`` when URLs are
        relative. Sharded by ``SHA-256(path)``'s first 8 bytes, big-endian, mod hosts."""
        if not self.hosts:
            return None
        if not self._shard:
            return self.hosts[0]
        head = hashlib.sha256(path.encode("utf-8")).digest()[:8]
        return self.hosts[int.from_bytes(head, "big") % len(self.hosts)]

    # ------------------------------------------------------------------ helpers

    def _guid(self, key: str, guid: str | uuid.UUID | None, bucket: str | None, version: str | None) -> str:
        if guid is not None:
            if bucket is not None or version is not None:
                raise TypeError("give guid= or bucket= and version=, not both")
            return normalise_guid(guid)
        if bucket is not None and version is not None:
            return source_guid(bucket, key, version)
        named = guid_in_name(key)
        if named is None or bucket is not None or version is not None:
            raise TypeError("give guid=, or bucket= and version= (the source's version id or ETag)")
        return named

    def _variant(self, preset: str | None, spec: str | None) -> tuple[str, tuple[str, ...], bool, str]:
        """``(segment, offered formats, negotiates, default format)``."""
        if (preset is None) == (spec is None):
            raise TypeError("give exactly one of preset= or spec=")
        if preset is not None:
            found = self.presets.get(preset)
            if found is None:
                raise RenditionError("unknown_preset", f"unknown preset {preset!r}")
            default = "auto" if found.formats else found.spec.format
            return preset, found.offered(), found.negotiates(), default
        assert spec is not None
        parsed = Spec.parse(spec)
        auto = parsed.format == "auto"
        offered = AUTO_ORDER if auto else (parsed.format,)
        return str(parsed), offered, auto, parsed.format

    def _parse_derivative_key(self, key: str) -> bool:
        """Checks ``{derived_prefix}{rel}/{guid}/{variant}.{ext}`` as the server does;
        whether its variant is a spec."""
        if not key.startswith(self.derived_prefix):
            raise RenditionError("bad_key", f"key {key!r} is not under the derived prefix {self.derived_prefix!r}")
        head, slash, file = key[len(self.derived_prefix):].rpartition("/")
        rel, slash2, guid = head.rpartition("/")
        if not slash or not slash2:
            raise RenditionError("bad_key", f"malformed derivative key {key!r}")
        if not rel:
            raise RenditionError("bad_key", f"malformed derivative key {key!r}: empty source")
        if not is_guid(guid):
            raise RenditionError("bad_key", f"malformed derivative key {key!r}: no lowercase GUID")
        name, dot, ext = file.rpartition(".")
        if not dot or not ext:
            raise RenditionError("bad_key", f"malformed derivative key {key!r}: no extension")
        if "=" in name:
            try:
                parse_canonical(name)
            except SpecError as e:
                raise RenditionError("bad_key", f"invalid variant in {key!r}: {e}") from e
            if self.presets_only or not self._keys:
                raise RenditionError("specs_disabled", "explicit specs are disabled (presets_only, or no signing key)")
            return True
        if "." in name:
            # ``{preset}.{spec hash}``; a bare name is a key written before presets were versioned.
            name, _, version = name.partition(".")
            if not is_preset_name(name) or not is_spec_hash(version):
                raise RenditionError("bad_key", f"malformed derivative key {key!r}: variant is neither a versioned preset name nor a spec")
        if not is_preset_name(name):
            raise RenditionError("bad_key", f"malformed derivative key {key!r}: variant is neither a preset name nor a spec")
        if name not in self.presets:
            raise RenditionError("unknown_preset", f"unknown preset {name!r}")
        return False


def _is_control(c: str) -> bool:
    """Unicode general category Cc, as Rust's ``char::is_control``."""
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def _check_key(key: str) -> None:
    if any(_is_control(c) for c in key):
        raise RenditionError("bad_path", "malformed URL path: control character")
    if any(seg in (".", "..") for seg in key.split("/")):
        raise RenditionError("bad_path", "malformed URL path: '.' or '..' segment")


def _extension(offered: tuple[str, ...], negotiates: bool, fmt: str) -> str:
    """The extension of ``fmt`` when the server serves the variant in it."""
    if fmt not in EXTENSIONS:
        if fmt == "original":
            raise TypeError("this variant keeps the source's format: pass format= (the format it renders to)")
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(EXTENSIONS)})")
    served = (
        (negotiates and fmt == "auto")
        or any(EXTENSIONS.get(f) == EXTENSIONS[fmt] for f in offered)
        or (offered == ("original",) and fmt != "auto")
    )
    if not served:
        made = "auto" if len(offered) > 1 else EXTENSIONS.get(offered[0], "the source's")
        raise RenditionError("wrong_extension", f"this variant is .{made}, not .{EXTENSIONS[fmt]}")
    return EXTENSIONS[fmt]


def _check_preset(name: str, preset: Preset) -> None:
    if not is_preset_name(name):
        raise ValueError(f"preset name {name!r} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit")
    if preset.formats:
        if preset.spec.format not in ("original", "auto"):
            raise ValueError(f"preset {name!r}: a preset with `formats` has no `fm` in its spec (or fm=auto)")
        for i, f in enumerate(preset.formats):
            if f not in ("jpeg", "png", "webp", "avif", "gif"):
                raise ValueError(f"preset {name!r}: formats[{i}] must be jpeg, png, webp, avif or gif")
            if f in preset.formats[:i]:
                raise ValueError(f"preset {name!r}: {f} is listed twice in formats")
