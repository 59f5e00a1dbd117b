"""The chaos run's storage verification (rendition_ops.verify) against a real S3 API (moto
over HTTP): derivatives are found through the manifests, a removed one and a changed one are
both reported, and comparing none fails."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from rendition_ops import verify

# What the chaos run configures (rendition_ops.chaos.PRESETS, eager ones).
PRESETS = {
    "card": ("w=480,h=270,fit=cover,fm=jpeg,q=80", "jpg", "image/jpeg"),
    "sm": ("w=320,fm=webp,q=75", "webp", "image/webp"),
    "thumb": ("w=160,h=160,fit=cover,fm=webp,q=75", "webp", "image/webp"),
}
EAGER = set(PRESETS)


def spec_hash(spec: str) -> str:
    """pipeline/src/naming.rs's spec_hash: the first 8 hex digits of SHA-256 of the canonical spec."""
    return hashlib.sha256(spec.encode()).hexdigest()[:8]


def manifest(source_key: str, guid: str, rendered: dict[str, bytes], bucket: str = "b") -> dict:
    """A manifest as the product writes it (schemas/manifest.schema.json), for `rendered`
    {preset: bytes}: keys `derived/{rel}/{guid}/{preset}.{spec hash}.{ext}`."""
    rel = source_key.removeprefix("originals/")
    variants = []
    for name in sorted(rendered):
        spec, ext, ctype = PRESETS[name]
        variants.append({
            "name": name, "spec": spec, "spec_hash": spec_hash(spec),
            "key": f"derived/{rel}/{guid}/{name}.{spec_hash(spec)}.{ext}",
            "width": 10, "height": 10, "bytes": len(rendered[name]), "content_type": ctype,
        })
    return {
        "version": 3,
        "source": {"bucket": bucket, "key": source_key, "version": "v1", "guid": guid, "bytes": 1,
                   "width": 10, "height": 10, "format": "jpeg"},
        "variants": variants,
    }


def store(s3, bucket: str, clean: Path, source_key: str, guid: str | None = None) -> dict:
    """One source rendered as the queue worker stores it (bucket) and as a clean
    `rendition run --local` files it (folder `clean`, under another GUID: a folder bucket's
    source version is not S3's). Returns the bucket's manifest."""
    rendered = {name: hashlib.sha256(f"{source_key} {name}".encode()).digest() * 40 for name in PRESETS}
    bucket_manifest = manifest(source_key, guid or str(uuid.uuid4()), rendered, bucket)
    clean_manifest = manifest(source_key, guid or str(uuid.uuid4()), rendered, "clean")
    for v in bucket_manifest["variants"]:
        s3.put_object(Bucket=bucket, Key=v["key"], Body=rendered[v["name"]])
    mkey = bucket_manifest["variants"][0]["key"].rpartition("/")[0] + "/manifest.json"
    s3.put_object(Bucket=bucket, Key=mkey, Body=json.dumps(bucket_manifest).encode())
    for v in clean_manifest["variants"]:
        (clean / v["key"]).parent.mkdir(parents=True, exist_ok=True)
        (clean / v["key"]).write_bytes(rendered[v["name"]])
    (clean / clean_manifest["variants"][0]["key"]).with_name("manifest.json").write_text(json.dumps(clean_manifest))
    return bucket_manifest


SOURCES = ["originals/a/photo 1.jpg", "originals/ünïcødé/été 2.png", "originals/b/3.webp"]


@pytest.fixture
def healthy(s3, bucket, tmp_path):
    """Three good sources (one named by its GUID) and one corrupt upload that left nothing."""
    guid = str(uuid.uuid4())
    sources = [*SOURCES, f"originals/c/{guid}.jpg"]
    manifests = {k: store(s3, bucket, tmp_path, k, guid if k.endswith(f"{guid}.jpg") else None) for k in sources}
    uploads = [verify.Upload(k, True, guid if k.endswith(f"{guid}.jpg") else None) for k in sources]
    uploads.append(verify.Upload("originals/c/corrupt.jpg", good=False))
    return uploads, manifests, tmp_path


def run(s3, bucket, uploads, clean):
    storage = verify.verify_bucket(s3, bucket, uploads, EAGER)
    comparison = verify.compare_with_clean(s3, bucket, storage.derivatives, clean)
    return storage, comparison, verify.storage_checks(storage, comparison)


def failed(checks: dict[str, bool]) -> set[str]:
    return {name for name, held in checks.items() if not held}


def test_a_healthy_bucket_passes_with_versioned_names(s3, bucket, healthy):
    uploads, _, clean = healthy
    storage, comparison, checks = run(s3, bucket, uploads, clean)
    assert failed(checks) == set(), storage.problems + comparison.unmatched + comparison.mismatches
    assert storage.manifests == 4
    assert comparison.compared == 4 * len(PRESETS) == len(storage.derivatives)
    # The names compared are the product's, `{preset}.{spec hash}.{ext}`, never `{preset}.{ext}`.
    assert {d.key.rpartition("/")[2] for d in storage.derivatives} == {
        f"{n}.{spec_hash(spec)}.{ext}" for n, (spec, ext, _) in PRESETS.items()}


def test_a_removed_and_a_changed_derivative_are_both_reported(s3, bucket, healthy):
    uploads, manifests, clean = healthy
    removed = manifests[SOURCES[0]]["variants"][1]["key"]
    changed = manifests[SOURCES[1]]["variants"][2]["key"]
    s3.delete_object(Bucket=bucket, Key=removed)
    body = s3.get_object(Bucket=bucket, Key=changed)["Body"].read()
    s3.put_object(Bucket=bucket, Key=changed, Body=bytes(b ^ 0xFF for b in body))  # same size, other bytes

    storage, comparison, checks = run(s3, bucket, uploads, clean)
    assert failed(checks) == {"no missing derivatives", "no byte mismatch"}
    assert storage.missing_derivatives == 1
    assert any(removed in p and "not stored" in p for p in storage.problems)
    assert len(comparison.mismatches) == 1 and changed in comparison.mismatches[0]
    assert comparison.compared == 4 * len(PRESETS) - 1


def test_a_derivative_of_another_size_than_listed_is_reported(s3, bucket, healthy):
    uploads, manifests, clean = healthy
    changed = manifests[SOURCES[2]]["variants"][0]["key"]
    s3.put_object(Bucket=bucket, Key=changed, Body=b"short")
    storage, _, checks = run(s3, bucket, uploads, clean)
    assert failed(checks) == {"manifests match"}
    assert storage.size_mismatches == 1 and any(changed in p for p in storage.problems)


def test_comparing_nothing_fails(s3, bucket, tmp_path):
    # Nothing stored for a good upload: no manifest, and nothing to compare.
    _, comparison, checks = run(s3, bucket, [verify.Upload(SOURCES[0])], tmp_path)
    assert comparison.compared == 0
    assert {"no missing manifests", "every derivative compared"} <= failed(checks)
    # Even with nothing expected, a run that compared nothing does not pass.
    assert "every derivative compared" in failed(verify.storage_checks(verify.StorageReport(), verify.Comparison()))


def test_a_missing_clean_run_counterpart_fails_the_comparison(s3, bucket, healthy):
    uploads, _, clean = healthy
    next((clean / "derived" / "b").rglob("manifest.json")).unlink()
    _, comparison, checks = run(s3, bucket, uploads, clean)
    assert failed(checks) == {"every derivative compared"}
    assert len(comparison.unmatched) == len(PRESETS)


def test_a_hand_named_leftover_and_a_missing_manifest_are_reported(s3, bucket, healthy):
    uploads, manifests, clean = healthy
    # A file named as before presets were versioned, which no manifest lists.
    folder = manifests[SOURCES[0]]["variants"][0]["key"].rpartition("/")[0]
    s3.put_object(Bucket=bucket, Key=f"{folder}/thumb.webp", Body=b"old")
    mkey = manifests[SOURCES[2]]["variants"][0]["key"].rpartition("/")[0] + "/manifest.json"
    s3.delete_object(Bucket=bucket, Key=mkey)
    storage, _, checks = run(s3, bucket, uploads, clean)
    assert failed(checks) == {"no missing manifests", "nothing stored outside a manifest"}
    assert storage.missing_manifests == 1
    # Without its manifest a source's derivatives are listed by nothing, as is the leftover.
    assert storage.unlisted_objects == 1 + len(PRESETS)
    assert any(f"{folder}/thumb.webp: stored but listed by no manifest" == p for p in storage.problems)


def test_wrong_manifests_are_reported(s3, bucket, healthy):
    uploads, manifests, clean = healthy
    # A second version of one source, a manifest for the corrupt upload, one missing a preset.
    m = store(s3, bucket, clean / "other", SOURCES[0])
    corrupt = store(s3, bucket, clean / "other", "originals/c/corrupt.jpg")
    short = dict(manifests[SOURCES[1]])
    short["variants"] = short["variants"][:2]
    mkey = short["variants"][0]["key"].rpartition("/")[0] + "/manifest.json"
    s3.put_object(Bucket=bucket, Key=mkey, Body=json.dumps(short).encode())
    storage, _, checks = run(s3, bucket, uploads, clean)
    assert storage.extra_versions == 1 and any(m["source"]["guid"] in p for p in storage.problems)
    assert storage.corrupt_with_output == 1
    assert storage.bad_manifests == 1 and storage.unlisted_objects == 1  # the preset left out
    assert corrupt["source"]["key"] == "originals/c/corrupt.jpg"
    assert {"manifests match", "no derivatives for corrupt uploads", "nothing stored outside a manifest"} <= failed(checks)


def test_a_guid_named_source_must_keep_its_guid(s3, bucket, tmp_path):
    guid = str(uuid.uuid4())
    store(s3, bucket, tmp_path, f"originals/{guid}.jpg")  # filed under another GUID
    storage, _, checks = run(s3, bucket, [verify.Upload(f"originals/{guid}.jpg", True, guid)], tmp_path)
    assert "manifests match" in failed(checks)
    assert any(f"expected {guid}" in p for p in storage.problems)


def test_a_preset_in_several_formats_is_one_entry_per_format(s3, bucket, tmp_path):
    m = store(s3, bucket, tmp_path, SOURCES[0])
    webp = m["variants"][1]
    avif = dict(webp, key=webp["key"].replace(".webp", ".avif"), content_type="image/avif", bytes=3)
    s3.put_object(Bucket=bucket, Key=avif["key"], Body=b"abc")
    m["variants"].insert(2, avif)
    mkey = webp["key"].rpartition("/")[0] + "/manifest.json"
    s3.put_object(Bucket=bucket, Key=mkey, Body=json.dumps(m).encode())
    storage = verify.verify_bucket(s3, bucket, [verify.Upload(SOURCES[0])], EAGER)
    assert storage.problems == [] and len(storage.derivatives) == len(PRESETS) + 1
    # The same preset and format twice is not.
    m["variants"].insert(2, avif)
    s3.put_object(Bucket=bucket, Key=mkey, Body=json.dumps(m).encode())
    assert verify.verify_bucket(s3, bucket, [verify.Upload(SOURCES[0])], EAGER).bad_manifests == 1


def test_eager_presets_are_read_from_the_configuration(tmp_path):
    (tmp_path / "r.toml").write_text('[render]\nconcurrency = 2\n\n[presets.a]\nspec = "w=1"\neager = true\n\n'
                                     '[presets.b]\nspec = "w=2"\n\n[presets.c]\nspec = "w=3"\neager = false\n')
    assert verify.eager_presets(tmp_path / "r.toml") == {"a"}


def test_merged_reports_sum_counts_and_name_problems():
    a = verify.StorageReport(missing_derivatives=1, problems=["x"], derivatives=[verify.Derivative("s", "k", "n", "c", 1)])
    b = verify.StorageReport(missing_derivatives=2, objects=3)
    m = verify.merge_storage({"sqs": a, "rabbitmq": b})
    assert (m.missing_derivatives, m.objects, len(m.derivatives), m.problems) == (3, 3, 1, ["sqs: x"])
    c = verify.merge_comparisons({"sqs": verify.Comparison(2, ["d"]), "rabbitmq": verify.Comparison(3, [], ["u"])})
    assert (c.compared, c.mismatches, c.unmatched) == (5, ["sqs: d"], ["rabbitmq: u"])


# ------------------------------------------------------------------ with the real product


CONFIG = "".join(f'[presets.{n}]\nspec = "{spec}"\neager = true\n\n' for n, (spec, _, _) in PRESETS.items())


def test_the_products_own_output_verifies_and_a_removed_and_a_changed_derivative_are_reported(
        s3, bucket, tmp_path, rendition_bin):
    """`rendition run --local --once` renders two generated images; its folder, uploaded as
    it is, is the bucket, and a second run the clean one. Whatever the product names its
    derivatives, the verification finds them through its manifests."""
    from PIL import Image

    def render(root: Path) -> None:
        for i, key in enumerate(["originals/x/one.jpg", "originals/y/two.png"]):
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (640 + 32 * i, 480), (40 * i, 120, 200)).save(root / key)
        (root.parent / f"{root.name}.toml").write_text(CONFIG)
        subprocess.run([str(rendition_bin), "--config", str(root.parent / f"{root.name}.toml"), "run", "--local",
                        str(root), "--once"], check=True, capture_output=True, timeout=120)

    served, clean = tmp_path / "served", tmp_path / "clean"
    render(served)
    render(clean)
    stored = sorted(p for p in (served / "derived").rglob("*") if p.is_file())
    for p in stored:
        s3.put_object(Bucket=bucket, Key=p.relative_to(served).as_posix(), Body=p.read_bytes())
    uploads = [verify.Upload("originals/x/one.jpg"), verify.Upload("originals/y/two.png")]

    storage, comparison, checks = run(s3, bucket, uploads, clean)
    assert failed(checks) == set(), storage.problems + comparison.unmatched + comparison.mismatches
    assert comparison.compared == 2 * len(PRESETS)
    assert len(stored) == 2 * (len(PRESETS) + 1)  # every stored file is a derivative or a manifest

    removed, changed = storage.derivatives[0].key, storage.derivatives[-1].key
    s3.delete_object(Bucket=bucket, Key=removed)
    body = s3.get_object(Bucket=bucket, Key=changed)["Body"].read()
    s3.put_object(Bucket=bucket, Key=changed, Body=body[:-1] + bytes([body[-1] ^ 1]))
    storage, comparison, checks = run(s3, bucket, uploads, clean)
    assert failed(checks) == {"no missing derivatives", "no byte mismatch"}
    assert any(removed in p for p in storage.problems)
    assert [changed in m for m in comparison.mismatches] == [True]
