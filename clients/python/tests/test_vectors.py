"""Every vector of ../vectors.json (generated from the Rust code by
tests/integration/vectors.rs): the same inputs must give the same URL, byte for byte, or
the same refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rendition_urls import RenditionError, SpecError, UrlGenerator, canonical_spec, encode_key, sign, source_guid

VECTORS: dict[str, Any] = json.loads((Path(__file__).parents[2] / "vectors.json").read_text("utf-8"))


def generator(config: str) -> UrlGenerator:
    return UrlGenerator.from_config(VECTORS["configs"][config])


def ids(key: str) -> list[str]:
    return [f"{i}" for i, _ in enumerate(VECTORS[key])]


def source_args(v: dict[str, Any]) -> dict[str, Any]:
    """The GUID inputs of a vector: a GUID, or the bucket and version it derives from."""
    if "guid" in v:
        return {"guid": v["guid"]}
    return {"bucket": v["bucket"], "version": v["version"]}


@pytest.mark.parametrize("v", VECTORS["specs"], ids=ids("specs"))
def test_spec(v: dict[str, Any]) -> None:
    if "canonical" in v:
        assert canonical_spec(v["input"]) == v["canonical"]
    else:
        with pytest.raises(SpecError) as e:
            canonical_spec(v["input"])
        assert (e.value.reason, e.value.detail) == (v["error"], v["detail"])


@pytest.mark.parametrize("v", VECTORS["guids"], ids=ids("guids"))
def test_guid(v: dict[str, Any]) -> None:
    assert source_guid(v["bucket"], v["key"], v["version"]) == v["guid"]


@pytest.mark.parametrize("v", VECTORS["signatures"], ids=ids("signatures"))
def test_signature(v: dict[str, Any]) -> None:
    assert sign(v["key"], v["path"], v["exp"]) == v["sig"]


@pytest.mark.parametrize("v", VECTORS["encodings"], ids=ids("encodings"))
def test_encoding(v: dict[str, Any]) -> None:
    assert encode_key(v["key"]) == v["encoded"]


@pytest.mark.parametrize("v", VECTORS["hosts"], ids=ids("hosts"))
def test_host(v: dict[str, Any]) -> None:
    assert generator(v["config"]).host_for(v["path"]) == v["host"]


@pytest.mark.parametrize("v", VECTORS["keys"], ids=ids("keys"))
def test_key(v: dict[str, Any]) -> None:
    g = generator(v["config"])
    if "url" in v:
        assert g.for_key(v["key"], now=v["now"]) == v["url"]
    else:
        with pytest.raises(RenditionError) as e:
            g.for_key(v["key"], now=v["now"])
        assert e.value.kind == v["error"]


@pytest.mark.parametrize("v", VECTORS["urls"], ids=ids("urls"))
def test_url(v: dict[str, Any]) -> None:
    g = generator(v["config"])
    args = {**source_args(v), "preset": v.get("preset"), "spec": v.get("spec"), "format": v.get("format"), "now": v["now"]}
    if "url" in v:
        assert g.url(v["source"], **args) == v["url"]
    else:
        with pytest.raises(RenditionError) as e:
            g.url(v["source"], **args)
        assert e.value.kind == v["error"]


@pytest.mark.parametrize("v", VECTORS["cli"], ids=ids("cli"))
def test_rendition_url_output(v: dict[str, Any]) -> None:
    g = generator(v["config"])
    args = {**source_args(v), "preset": v.get("preset"), "spec": v.get("spec"), "format": v.get("format"), "now": v["now"]}
    if "urls" in v:
        assert g.urls(v["source"], **args) == v["urls"]
    else:
        with pytest.raises(RenditionError) as e:
            g.urls(v["source"], **args)
        assert e.value.kind == v["error"]


@pytest.mark.parametrize("v", VECTORS["srcsets"], ids=ids("srcsets"))
def test_srcset(v: dict[str, Any]) -> None:
    g = generator(v["config"])
    assert g.srcset(v["source"], v["presets"], format=v.get("format"), **source_args(v)) == v["srcset"]
