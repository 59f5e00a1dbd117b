"""Rendition derivative URLs, byte-identical to ``rendition url``: presets, signed specs
(HMAC-SHA256, expiry, key rotation), host sharding and ``srcset``. No dependencies.

>>> from rendition_urls import UrlGenerator
>>> urls = UrlGenerator(hosts=["img.example.com"])
>>> urls.url("originals/cat.jpg", preset="thumb", guid="984c96da-5462-511e-9377-0079ce0a525e")
'https://img.example.com/derived/cat.jpg/984c96da-5462-511e-9377-0079ce0a525e/thumb.a3134a7c.webp'
"""

from .errors import RenditionError, SpecError
from .naming import NAMESPACE, guid_in_name, source_guid, spec_hash
from .spec import Spec, canonical_spec
from .urls import Preset, UrlGenerator, default_presets, encode_key, sign

__all__ = [
    "NAMESPACE",
    "Preset",
    "RenditionError",
    "Spec",
    "SpecError",
    "UrlGenerator",
    "canonical_spec",
    "default_presets",
    "encode_key",
    "guid_in_name",
    "sign",
    "source_guid",
    "spec_hash",
]
__version__ = "0.1.0"
