"""rendition_ops.common: the pieces the fault runs rely on — the TCP proxy that makes the S3
outage and the broker cut, metrics parsing, S3 / MinIO event shapes."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from rendition_ops import common as oc


@pytest.fixture
def echo():
    """An echo server on a free loopback port."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ls.settimeout(0.2)
    stop = threading.Event()

    def serve(conn):
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept():
        while not stop.is_set():
            try:
                conn, _ = ls.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield ls.getsockname()
    stop.set()
    t.join(5)
    ls.close()


def roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_the_proxy_forwards_cuts_and_goes_down_and_up_on_the_same_port(echo):
    proxy = oc.TcpProxy(echo, "test")
    try:
        port = proxy.port
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert roundtrip(c, b"hello") == b"hello"
        assert proxy.cut() == 1  # the broker cut: open connections dropped
        c.settimeout(5)
        try:
            assert c.recv(10) == b""
        except ConnectionResetError:
            pass
        c.close()
        proxy.down()  # the S3 outage: connections refused
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        proxy.up()
        assert proxy.port == port
        deadline = time.monotonic() + 5
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert roundtrip(c, b"again") == b"again"
        c.close()
    finally:
        proxy.close()


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
