"""What a fault run's storage must hold, found the way the product names it: from each
source's manifest, never from a hand-built file name.

A derivative's key is `{derived}{rel}/{guid}/{preset}.{spec hash}.{ext}` (pipeline/src/naming.rs),
and the only place a client learns it is the source's `manifest.json`, which lists every
variant's `key` and `bytes` and is written after them. So:

- `verify_bucket` lists the derived prefix once, reads every manifest, and checks per source:
  a good upload has exactly one manifest, naming exactly the eager presets, each of them
  stored with the listed size (and the GUID its file name carries, if any); a corrupt upload
  has nothing; no stored object is outside every manifest.
- `compare_with_clean` compares the bytes of every derivative those manifests list with the
  same source's variant in a clean `rendition run --local` folder, found through *its*
  manifest (matched by preset name and content type; their keys' file names must agree).
- `storage_checks` turns both into named pass/fail checks; comparing nothing fails.

Only the standard library at module level: the tests feed it a moto bucket through boto3.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Upload:
    """One source the run uploaded: its key, whether it is a good image (else it must be
    refused and leave nothing), and the GUID its file name carries, if any."""

    key: str
    good: bool = True
    guid: str | None = None


@dataclass(frozen=True)
class Derivative:
    """One stored derivative as a manifest lists it."""

    source: str  # the source key
    key: str  # the derivative key, from the manifest
    name: str  # the preset name
    content_type: str
    bytes: int


@dataclass
class StorageReport:
    manifests: int = 0
    missing_manifests: int = 0
    extra_versions: int = 0  # good sources with more than one manifest (GUID folder)
    bad_manifests: int = 0  # wrong source, GUID, preset set, or a variant outside its folder
    missing_derivatives: int = 0  # listed by a manifest, not stored
    size_mismatches: int = 0  # stored with another size than listed
    corrupt_with_output: int = 0  # corrupt uploads with a manifest
    unexpected_manifests: int = 0  # manifests of sources the run did not upload
    unlisted_objects: int = 0  # stored under the derived prefix, listed by no manifest
    objects: int = 0
    derivatives: list[Derivative] = field(default_factory=list)  # listed and stored
    problems: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    compared: int = 0
    mismatches: list[str] = field(default_factory=list)  # bytes differ
    unmatched: list[str] = field(default_factory=list)  # no clean-run counterpart


def list_objects(s3, bucket: str, prefix: str) -> dict[str, int]:
    """{key: size} of every object under prefix."""
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def is_manifest(key: str) -> bool:
    return key.rpartition("/")[2] == MANIFEST


def read_s3_manifests(s3, bucket: str, keys: list[str], threads: int = 8) -> dict[str, dict | str]:
    """{manifest key: the parsed manifest, or the reason it could not be read}."""

    def one(key: str) -> dict | str:
        try:
            doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as e:  # noqa: BLE001 - any failure is reported as that manifest's problem
            return f"unreadable: {e!r}"
        return doc if isinstance(doc, dict) else "not a JSON object"

    with cf.ThreadPoolExecutor(threads) as pool:
        return dict(zip(keys, pool.map(one, keys), strict=True))


def _variants(manifest: dict) -> list[dict]:
    variants = manifest.get("variants")
    return variants if isinstance(variants, list) else []


def verify_bucket(s3, bucket: str, uploads: list[Upload], eager: set[str], derived_prefix: str = "derived/") -> StorageReport:
    """Checks what `uploads` left under `derived_prefix` in `bucket` (see the module doc)."""
    r = StorageReport()
    objects = list_objects(s3, bucket, derived_prefix)
    r.objects = len(objects)
    manifests = read_s3_manifests(s3, bucket, sorted(k for k in objects if is_manifest(k)))
    r.manifests = len(manifests)
    by_source: dict[str, list[tuple[str, dict]]] = {}
    listed: set[str] = set(manifests)
    for mkey, doc in manifests.items():
        if isinstance(doc, str):
            r.bad_manifests += 1
            r.problems.append(f"{mkey}: {doc}")
            continue
        source = (doc.get("source") or {}).get("key")
        by_source.setdefault(source, []).append((mkey, doc))
        listed.update(v.get("key") for v in _variants(doc))
    known = {u.key: u for u in uploads}
    for source in sorted(set(by_source) - set(known), key=str):
        r.unexpected_manifests += len(by_source[source])
        r.problems.append(f"manifest(s) {[k for k, _ in by_source[source]]} for {source!r}, which was not uploaded")
    for u in uploads:
        found = by_source.get(u.key, [])
        if not u.good:
            if found:
                r.corrupt_with_output += 1
                r.problems.append(f"{u.key}: a corrupt upload has manifest(s) {[k for k, _ in found]}")
            continue
        if not found:
            r.missing_manifests += 1
            r.problems.append(f"{u.key}: no manifest")
            continue
        if len(found) > 1:
            r.extra_versions += len(found) - 1
            r.problems.append(f"{u.key}: {len(found)} manifests {[k for k, _ in found]}")
        for mkey, doc in found:
            _check_manifest(r, objects, u, mkey, doc, eager)
    for key in sorted(set(objects) - listed):
        r.unlisted_objects += 1
        r.problems.append(f"{key}: stored but listed by no manifest")
    return r


def _check_manifest(r: StorageReport, objects: dict[str, int], u: Upload, mkey: str, doc: dict, eager: set[str]) -> None:
    folder = mkey[: -len(MANIFEST)]
    variants = _variants(doc)
    names = {str(v.get("name")) for v in variants}
    made = [(v.get("name"), v.get("content_type")) for v in variants]
    wrong = []
    if u.guid and (doc.get("source") or {}).get("guid") != u.guid:
        wrong.append(f"GUID {(doc.get('source') or {}).get('guid')}, expected {u.guid}")
    # A preset made in several formats has one entry per format (schemas/manifest.schema.json).
    if names != eager or len(set(made)) != len(made):
        wrong.append(f"variants {sorted(map(str, made))}, expected each eager preset {sorted(eager)} once per format")
    if doc.get("skipped"):
        wrong.append(f"skipped {doc['skipped']}")
    for v in variants:
        key = v.get("key")
        if not isinstance(key, str) or not key.startswith(folder) or "/" in key[len(folder):]:
            wrong.append(f"variant key {key!r} is not beside its manifest")
            continue
        if key not in objects:
            r.missing_derivatives += 1
            r.problems.append(f"{u.key}: {key} listed by {mkey} but not stored")
            continue
        if objects[key] != v.get("bytes"):
            r.size_mismatches += 1
            r.problems.append(f"{u.key}: {key} is {objects[key]} bytes, its manifest says {v.get('bytes')}")
            continue
        r.derivatives.append(Derivative(u.key, key, str(v.get("name")), str(v.get("content_type")), objects[key]))
    if wrong:
        r.bad_manifests += 1
        r.problems.append(f"{u.key}: {mkey}: {'; '.join(wrong)}")


def eager_presets(config: Path) -> set[str]:
    """The names of the eager presets of a Rendition configuration file (`[presets.NAME]` with
    `eager = true`; environment overrides are not read)."""
    import tomllib

    presets = tomllib.loads(config.read_text()).get("presets", {})
    return {name for name, p in presets.items() if p.get("eager", False)}


def read_local_manifests(root: Path, derived_prefix: str = "derived/") -> dict[str, list[tuple[Path, dict]]]:
    """{source key: [(manifest path, manifest)]} of a folder bucket (`rendition run --local`)."""
    out: dict[str, list[tuple[Path, dict]]] = {}
    base = root / derived_prefix
    if not base.is_dir():
        return out
    for path in sorted(base.rglob(MANIFEST)):
        doc = json.loads(path.read_bytes())
        out.setdefault((doc.get("source") or {}).get("key"), []).append((path, doc))
    return out


def compare_with_clean(s3, bucket: str, derivatives: list[Derivative], clean: Path, derived_prefix: str = "derived/",
                       threads: int = 8) -> Comparison:
    """Compares each stored derivative's bytes with the same source's same variant in the
    clean folder bucket `clean`, both found through their manifests."""
    local = read_local_manifests(clean, derived_prefix)
    c = Comparison()
    todo: list[tuple[Derivative, Path]] = []
    for d in derivatives:
        found = local.get(d.source, [])
        if len(found) != 1:
            c.unmatched.append(f"{d.key}: {len(found)} clean-run manifests for {d.source}")
            continue
        mpath, doc = found[0]
        twins = [v for v in _variants(doc) if v.get("name") == d.name and v.get("content_type") == d.content_type]
        if len(twins) != 1:
            c.unmatched.append(f"{d.key}: {len(twins)} clean-run variants {d.name} ({d.content_type}) in {mpath}")
            continue
        twin_key = str(twins[0].get("key"))
        if twin_key.rpartition("/")[2] != d.key.rpartition("/")[2]:
            c.unmatched.append(f"{d.key}: the clean run named it {twin_key} (another spec?)")
            continue
        todo.append((d, clean / twin_key))

    def one(item: tuple[Derivative, Path]) -> str | None:
        d, path = item
        try:
            mine = path.read_bytes()
        except OSError as e:
            return f"{d.key}: clean-run file {path}: {e}"
        body = s3.get_object(Bucket=bucket, Key=d.key)["Body"].read()
        if hashlib.sha256(body).digest() != hashlib.sha256(mine).digest():
            return f"{d.key}: {len(body)} bytes differ from the clean run's {path} ({len(mine)} bytes)"
        return None

    with cf.ThreadPoolExecutor(threads) as pool:
        for result in pool.map(one, todo):
            c.compared += 1
            if result:
                c.mismatches.append(result)
    return c


def merge_storage(reports: dict[str, StorageReport]) -> StorageReport:
    """Several buckets' reports as one: counts summed, lists joined (problems named by bucket)."""
    out = StorageReport()
    for name, r in reports.items():
        for f in fields(StorageReport):
            if f.name == "problems":
                out.problems += [f"{name}: {x}" for x in r.problems]
            else:
                setattr(out, f.name, getattr(out, f.name) + getattr(r, f.name))
    return out


def merge_comparisons(comparisons: dict[str, Comparison]) -> Comparison:
    out = Comparison()
    for name, c in comparisons.items():
        out.compared += c.compared
        out.mismatches += [f"{name}: {x}" for x in c.mismatches]
        out.unmatched += [f"{name}: {x}" for x in c.unmatched]
    return out


def storage_checks(storage: StorageReport, comparison: Comparison) -> dict[str, bool]:
    """The storage invariants of a fault run, by name: each True when it holds."""
    return {
        "no missing manifests": storage.missing_manifests == 0,
        "manifests match": storage.bad_manifests == 0 and storage.extra_versions == 0
        and storage.size_mismatches == 0 and storage.unexpected_manifests == 0,
        "no missing derivatives": storage.missing_derivatives == 0,
        "no derivatives for corrupt uploads": storage.corrupt_with_output == 0,
        "nothing stored outside a manifest": storage.unlisted_objects == 0,
        # Comparing nothing proves nothing: at least one, and every listed derivative.
        "every derivative compared": comparison.compared > 0 and not comparison.unmatched
        and comparison.compared == len(storage.derivatives),
        "no byte mismatch": not comparison.mismatches,
    }
