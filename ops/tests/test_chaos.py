"""The chaos run's own decisions that need no services: its --short preset, the dead-letter
classification, and the sources it generates."""

from __future__ import annotations

from rendition_ops import chaos
from rendition_ops import common as oc


def test_short_sets_a_small_run_and_explicit_options_win():
    a = chaos.parse_args(["--short", "--bin", "/x/rendition"])
    assert (a.uploads, a.kill_every, a.outage_secs, a.corrupt_every, a.sqs_visibility, a.deadline_min) == (
        100, 50, 5.0, 25, 10, 10.0)
    assert a.bin == "/x/rendition"
    assert chaos.parse_args(["--short", "--uploads", "60"]).uploads == 60
    full = chaos.parse_args([])
    assert (full.uploads, full.kill_every, full.outage_secs) == (1000, 100, 10.0)


def test_the_dlq_must_hold_the_corrupt_uploads_and_nothing_else():
    corrupt = {"sqs": {"originals/sqs/a.jpg", "originals/sqs/b.jpg"}, "rabbitmq": {"originals/rmq/c.jpg"}}
    dlq = {
        "sqs": [{"keys": ["originals/sqs/a.jpg"], "kind": "corrupt_image"},
                {"keys": ["originals/sqs/good.jpg"], "kind": "storage"},
                {"keys": [], "kind": "redrive"}],
        "rabbitmq": [{"keys": ["originals/rmq/c.jpg"], "kind": "unsupported_format"}],
    }
    n_corrupt, other, missing, kinds = chaos.classify_dlq(dlq, corrupt)
    assert n_corrupt == 2
    assert [p for p, _ in other] == ["sqs", "sqs"]
    assert missing == 1  # originals/sqs/b.jpg was never dead-lettered
    assert kinds == {"corrupt_image": 1, "storage": 1, "redrive": 1, "unsupported_format": 1}


def test_generated_sources_are_deterministic_and_a_corrupt_share_of_them():
    a = chaos.generate(10, 7, 5)
    b = chaos.generate(10, 7, 5)
    for path in chaos.PATHS:
        assert [(s.key, s.data) for s in a[path]] == [(s.key, s.data) for s in b[path]]
        assert sum(s.corrupt for s in a[path]) == 2
        assert all(s.key.startswith("originals/") for s in a[path])
        assert len({s.key for s in a[path]}) == 10
    # Keys named by a GUID carry it (the product files their derivatives under it).
    guided = [s for s in a["sqs"] if s.guid]
    assert guided and all(s.guid in s.key for s in guided)
    kinds = {s.kind for p in chaos.PATHS for s in a[p] if s.corrupt}
    assert kinds <= set(oc.CORRUPT_KINDS)
