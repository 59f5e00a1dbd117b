"""What the vectors cannot say: argument errors, defaults, configuration from TOML."""

from __future__ import annotations

import time
import tomllib
import uuid

import pytest

from rendition_urls import RenditionError, Spec, UrlGenerator, default_presets, source_guid, spec_hash

GUID = "984c96da-5462-511e-9377-0079ce0a525e"
KEY = "a-signing-key-of-at-least-32-bytes-0123"

TOML = """
[storage]
source_prefix = "uploads/"

[urls]
hosts = ["img1.example.com", "img2.example.com"]
signing_keys = ["a-signing-key-of-at-least-32-bytes-0123"]
default_ttl_secs = 600

[presets.w640]
spec = "w=640,q=60"
formats = ["avif", "webp", "jpeg"]
eager = true

[presets.same]
spec = "w=800"

[presets.square]
spec = "w=200,h=200,fit=cover,fm=webp"

[render]
avif_effort = 4
"""


def test_from_toml_ignores_other_sections_and_reads_presets() -> None:
    g = UrlGenerator.from_config(tomllib.loads(TOML))
    assert set(g.presets) == {"w640", "same", "square"}
    # Each URL names its version: the spec hash of the negotiated text, or of each format's spec.
    auto = spec_hash("w=640,fm=auto,q=60;formats=avif,webp,jpeg")
    assert g.url("uploads/cat.jpg", preset="w640", guid=GUID) == (
        f"https://img1.example.com/derived/cat.jpg/{GUID}/w640.{auto}.auto"
    )
    assert g.urls("uploads/cat.jpg", preset="w640", guid=GUID)[1:] == [
        f"https://img1.example.com/derived/cat.jpg/{GUID}/w640.{spec_hash(f'w=640,fm={fm},q=60')}.{ext}"
        for fm, ext in (("avif", "avif"), ("webp", "webp"), ("jpeg", "jpg"))
    ]


def test_unknown_url_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="shard"):
        UrlGenerator.from_config({"urls": {"shard": True}})


def test_settings_are_checked_like_rendition_checks_them() -> None:
    for bad in (
        {"signing_keys": ["x" * 31]},
        {"scheme": "ftp"},
        {"hosts": ["cdn.example.com/x"]},
        {"hosts": [""]},
        {"default_ttl_secs": 0},
        {"presets": {"Big": "w=10"}},
        {"presets": {"p": {"spec": "w=10,fm=webp", "formats": ["avif"]}}},
        {"presets": {"p": {"spec": "w=10", "formats": ["avif", "avif"]}}},
        {"source_prefix": "/abs/"},
    ):
        with pytest.raises(ValueError):
            UrlGenerator(**bad)
    UrlGenerator(signing_keys=["x" * 32], hosts=["localhost:8080"])


def test_no_presets_means_the_built_in_ones() -> None:
    assert UrlGenerator().presets == default_presets()
    assert UrlGenerator(presets={}).presets == default_presets()


def test_the_guid_comes_from_one_place() -> None:
    g = UrlGenerator()
    with pytest.raises(TypeError):
        g.url("originals/cat.jpg", preset="thumb")
    with pytest.raises(TypeError):
        g.url("originals/cat.jpg", preset="thumb", bucket="photos")
    with pytest.raises(TypeError):
        g.url("originals/cat.jpg", preset="thumb", guid=GUID, bucket="photos", version="v1")
    with pytest.raises(ValueError):
        g.url("originals/cat.jpg", preset="thumb", guid="{" + GUID + "}")
    # A GUID file name needs nothing else; an explicit GUID in any case or as a UUID.
    named = "0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81"
    assert f"/{named}/thumb.a3134a7c.webp" in g.url(f"originals/{named}.jpg", preset="thumb")
    want = g.url("originals/cat.jpg", preset="thumb", guid=GUID)
    assert g.url("originals/cat.jpg", preset="thumb", guid=GUID.upper()) == want
    assert g.url("originals/cat.jpg", preset="thumb", guid=uuid.UUID(GUID)) == want
    assert g.url("originals/cat.jpg", preset="thumb", bucket="photos", version="v1") == g.url(
        "originals/cat.jpg", preset="thumb", guid=source_guid("photos", "originals/cat.jpg", "v1")
    )


def test_exactly_one_variant() -> None:
    g = UrlGenerator(signing_keys=[KEY])
    with pytest.raises(TypeError):
        g.url("originals/cat.jpg", guid=GUID)
    with pytest.raises(TypeError):
        g.url("originals/cat.jpg", preset="thumb", spec="w=10,fm=webp", guid=GUID)


def test_fm_original_needs_the_format_it_renders_to() -> None:
    g = UrlGenerator(signing_keys=[KEY], presets={"same": "w=800"})
    for call in (
        lambda: g.url("originals/cat.jpg", preset="same", guid=GUID),
        lambda: g.urls("originals/cat.jpg", spec="w=10", guid=GUID),
    ):
        with pytest.raises(TypeError, match="format="):
            call()
    # fm=original: one spec (and hash) whatever format the source renders to.
    assert g.url("originals/scan.tiff", preset="same", guid=GUID, format="png").endswith(f"/same.{spec_hash('w=800')}.png")
    with pytest.raises(TypeError):
        g.urls("originals/cat.jpg", spec="w=10,fm=webp", guid=GUID, format="webp")
    with pytest.raises(ValueError, match="unknown format"):
        g.url("originals/cat.jpg", preset="same", guid=GUID, format="jpg")


def test_expiry_defaults_to_the_clock() -> None:
    g = UrlGenerator(signing_keys=[KEY], default_ttl_secs=60)
    before = int(time.time())
    url = g.url("originals/cat.jpg", spec="w=10,fm=webp", guid=GUID)
    exp = int(url.split("?exp=")[1].split("&")[0])
    assert before + 60 <= exp <= int(time.time()) + 60


def test_srcset_needs_widths() -> None:
    g = UrlGenerator(presets={"tall": "h=400,fm=webp", "w1": "w=100,fm=webp"})
    with pytest.raises(ValueError, match="no width"):
        g.srcset("originals/cat.jpg", ["w1", "tall"], guid=GUID)
    with pytest.raises(RenditionError) as e:
        g.srcset("originals/cat.jpg", ["w1", "huge"], guid=GUID)
    assert e.value.kind == "unknown_preset"
    assert g.srcset("originals/cat.jpg", [], guid=GUID) == ""


def test_keys_stay_out_of_repr() -> None:
    assert KEY not in repr(UrlGenerator(signing_keys=[KEY]))


def test_spec_values() -> None:
    spec = Spec.parse("fy=0.5,fx=0.25,fit=cover,w=300,h=200,dpr=1.5")
    assert (spec.width, spec.focus, spec.dpr_tenths, spec.scaled(333)) == (300, (250, 500), 15, 500)
    assert str(spec) == "w=300,h=200,fit=cover,fx=0.25,fy=0.5,dpr=1.5"


def test_an_edited_preset_gets_new_urls() -> None:
    # The spec hash: the first 8 hex digits of SHA-256 of the canonical spec, as the server names keys.
    before = UrlGenerator(presets={"thumb": "w=160,h=160,fit=cover,fm=webp,q=75"})
    after = UrlGenerator(presets={"thumb": "fm=webp,w=200,h=200,fit=cover,q=75"})
    old = before.url("originals/cat.jpg", preset="thumb", guid=GUID)
    new = after.url("originals/cat.jpg", preset="thumb", guid=GUID)
    assert old.endswith("/thumb.a3134a7c.webp")
    assert new != old and new.endswith(".webp")
    # Old and legacy keys stay valid keys: a URL of a stored object keeps working.
    for key in (old.lstrip("/"), f"derived/cat.jpg/{GUID}/thumb.webp"):
        assert after.for_key(key) == "/" + key
    with pytest.raises(RenditionError) as e:
        after.for_key(f"derived/cat.jpg/{GUID}/thumb.A3134A7C.webp")
    assert e.value.kind == "bad_key"
