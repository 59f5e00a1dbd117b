"""Fixtures: a moto S3 server over HTTP on a free loopback port (the test venv's moto_server,
started as the tools start theirs: rendition_ops.common.Moto), a fresh bucket per test, and
the `rendition` binary when scripts/test-ops.sh is given one (--bin, RENDITION_BIN)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from rendition_ops import common as oc


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = Path(sys.prefix) / "bin" / "moto_server"
    m = oc.Moto(tmp_path_factory.mktemp("moto") / "moto.log", server=server)
    yield m
    m.stop()


@pytest.fixture(scope="session")
def s3(moto):
    return oc.boto_clients(moto.endpoint)[0]


@pytest.fixture
def bucket(s3):
    name = f"ops-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    oc.delete_bucket(s3, name)


@pytest.fixture(scope="session")
def rendition_bin() -> Path:
    path = os.environ.get("RENDITION_BIN")
    if not path:
        pytest.skip("no rendition binary given (scripts/test-ops.sh --bin PATH, or RENDITION_BIN)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"RENDITION_BIN={path} is not an executable")
    return Path(path)
