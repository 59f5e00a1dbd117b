"""rendition_ops.common: the pieces the fault runs rely on: metrics parsing, S3 / MinIO event
shapes."""

from __future__ import annotations

from rendition_ops import common as oc


def test_metrics_are_parsed_and_completed_jobs_counted():
    text = """# HELP rendition_jobs_total Jobs by outcome.
# TYPE rendition_jobs_total counter
rendition_jobs_total{outcome="rendered"} 12
rendition_jobs_total{outcome="already_done"} 3
rendition_jobs_total{outcome="retry"} 2
rendition_in_flight 1
rendition_job_seconds_sum 4.5e0
"""
    m = oc.parse_metrics(text)
    assert m["rendition_in_flight"] == 1.0
    assert m["rendition_job_seconds_sum"] == 4.5
    assert oc.jobs_completed(m) == 15.0


def test_minio_events_carry_the_key_form_encoded_and_decode_back():
    key = "originals/rmq/ünïcødé/été 9+1.jpg"
    body = oc.minio_event("bucket", key, 10, "etag")
    assert oc.event_keys(body) == [key]
    assert oc.event_keys(b'{"Event": "s3:TestEvent"}') == []
    assert oc.event_keys(b"not json") == []


def test_median():
    assert oc.median([3, 1, 2]) == 2
    assert oc.median([4, 1, 2, 3]) == 2.5
    assert oc.median([]) != oc.median([])  # NaN
