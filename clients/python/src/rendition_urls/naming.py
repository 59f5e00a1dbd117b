"""Names of derivatives, as ``pipeline/src/naming.rs`` makes them::

    {derived_prefix}{source_rel}/{source_guid}/{variant}.{ext}

where a preset's ``variant`` is ``{name}.{spec hash}``.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from .errors import RenditionError

#: Namespace of Rendition's UUIDv5 source identities (never changes).
NAMESPACE = uuid.UUID("6f1c2b1e-4d7a-4c39-9a52-0e8b7d3f51a4")
#: Longest key S3 accepts, in UTF-8 bytes.
MAX_KEY_BYTES = 1024

# Exactly the hyphenated form: uuid.UUID() would also take braces, "urn:uuid:", no
# hyphens or hyphens anywhere, which Rendition does not read as a GUID name.
_HYPHENATED = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LOWER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def guid_in_name(key: str) -> str | None:
    """The GUID a key's file name carries (``…/{uuid}`` or ``…/{uuid}.{ext}``), lowercase."""
    stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem.lower() if _HYPHENATED.fullmatch(stem) else None


def source_guid(bucket: str, key: str, version: str) -> str:
    """The GUID a source version's derivatives are filed under: the one its file name
    carries, else the UUIDv5 of ``bucket``, ``key`` and ``version`` (the S3 version id,
    else the ETag with its quotes, as S3 returns it)."""
    named = guid_in_name(key)
    if named is not None:
        return named
    return str(uuid.uuid5(NAMESPACE, f"{bucket}\n{key}\n{version}"))


def normalise_guid(guid: str | uuid.UUID) -> str:
    """A GUID given by the caller, as names spell it (hyphenated, lowercase)."""
    if isinstance(guid, uuid.UUID):
        return str(guid)
    if not _HYPHENATED.fullmatch(guid):
        raise ValueError(f"{guid!r} is not a hyphenated GUID")
    return guid.lower()


def is_guid(text: str) -> bool:
    """Whether ``text`` is a GUID as names spell it (hyphenated, lowercase)."""
    return _LOWER.fullmatch(text) is not None


def source_rel(source_prefix: str, source_key: str) -> str:
    """``source_key`` without the source prefix."""
    rel = source_key[len(source_prefix):] if source_key.startswith(source_prefix) else None
    if not rel or rel.endswith("/"):
        raise RenditionError("invalid_key", f"key {source_key!r} is not under the source prefix {source_prefix!r}")
    return rel


def is_preset_name(name: str) -> bool:
    """1–64 of ``a-z 0-9 - _``, starting with a letter or digit: never confused with a spec."""
    return re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name) is not None


#: Hex digits of a preset's spec hash in its names.
SPEC_HASH_LEN = 8


def spec_hash(canonical: str) -> str:
    """The version of a preset's spec in its names: the first 8 lowercase hex digits of
    SHA-256 over the canonical spec text (``w=160,h=160,fit=cover,fm=webp,q=75``)."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:SPEC_HASH_LEN]


def is_spec_hash(text: str) -> bool:
    """Whether ``text`` is spelled as :func:`spec_hash` spells hashes."""
    return re.fullmatch(r"[0-9a-f]{8}", text) is not None
