"""Shared by the operations tools (chaos, soak, e2e_bench, lambda_bench): the pinned venv, a
private moto server, a controllable TCP proxy, worker processes, synthetic images, S3 event
shapes.

Everything here runs on loopback only. Only the standard library is imported at module
level, so `ensure_venv()` can create the venv and re-run the calling module inside it
before boto3 / pika / Pillow are imported.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

OPS = Path(__file__).resolve().parent.parent  # ops/
REPO = OPS.parent
CACHE = Path(os.environ.get("RENDITION_CACHE") or Path.home() / ".cache" / "rendition")
VENV = CACHE / "ops-venv"
# The pinned run-time packages (boto3, pika, Pillow); the AWS SDK pins match
# infra/local/services.sh's moto constraints (the same botocore as moto).
REQUIREMENTS = OPS / "requirements.txt"
MOTO_SERVER = CACHE / "moto-venv" / "bin" / "moto_server"

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def log(prefix: str, msg: str) -> None:
    print(f"[{prefix} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ venv


def venv_stamp(requirements: Path) -> str:
    """What a venv made from `requirements` records: the Python and the file's content."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    return f"v2 {sys.version_info.major}.{sys.version_info.minor} {digest}"


def ensure_venv() -> None:
    """Re-runs the calling module (`python -m rendition_ops.X`) with the pinned venv's
    Python, creating the venv first (or again, when ops/requirements.txt or the Python
    changed). A no-op inside that venv."""
    marker = "RENDITION_OPS_VENV"
    if os.environ.get(marker) == str(VENV):
        return
    py = VENV / "bin" / "python"
    stamp_file = VENV / ".rendition-stamp"
    stamp = venv_stamp(REQUIREMENTS)
    if not (py.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp):
        print(f"[ops] creating {VENV} (pinned by {REQUIREMENTS})", file=sys.stderr, flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, stdout=sys.stderr)
        subprocess.run(
            [str(py), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
             "--progress-bar", "off", "-q", "-r", str(REQUIREMENTS)],
            check=True, stdout=sys.stderr, stdin=subprocess.DEVNULL,
        )
        stamp_file.write_text(stamp + "\n")
    main = sys.modules["__main__"]
    module = getattr(getattr(main, "__spec__", None), "name", None)
    if not module:
        raise SystemExit("run the operations tools as modules: python3 -m rendition_ops.<tool> (scripts/*.sh do)")
    path = os.pathsep.join(p for p in (str(OPS), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, **{marker: str(VENV), "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"})
    os.execve(str(py), [str(py), "-m", module, *sys.argv[1:]], env)


# ------------------------------------------------------------------ small helpers


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def median(values: list[float]) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    mid = len(v) // 2
    return float(v[mid]) if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def find_binary(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "rendition"
        if p.exists():
            return p
    raise SystemExit("no target/{release,debug}/rendition: build it first (cargo build -p rendition-cli --bin rendition)")


def pin_binary(binary: Path, rundir: Path) -> Path:
    """A link (or copy) of the binary in the run folder, so a rebuild of target/ during the
    run cannot swap the program under restarted workers."""
    pinned = rundir / "rendition"
    if not pinned.exists():
        try:
            os.link(binary, pinned)
        except OSError:
            shutil.copy2(binary, pinned)
    return pinned


# ------------------------------------------------------------------ moto


class Moto:
    """A moto server (S3 + SQS) of our own on a free loopback port, by default from the venv
    that infra/local/services.sh maintains. Its state lives in memory and dies with it."""

    def __init__(self, logfile: Path, server: Path = MOTO_SERVER):
        if not server.exists():
            raise SystemExit(f"{server} missing: run infra/local/services.sh up first")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = open(logfile, "ab")
        self.proc = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"moto exited with {self.proc.returncode} (see {logfile})")
            try:
                if http_get(self.endpoint + "/moto-api/", 1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"moto did not answer within 30 s (see {logfile})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def rabbit_worker_env(bucket: str, s3_endpoint: str, names: dict, concurrency: int) -> dict:
    """The RENDITION__* a `worker --queue rabbitmq` needs against moto's S3 and the loopback
    broker: its bucket, the queue and exchanges in `names`, an ops endpoint on a free port."""
    return {
        "RENDITION__RENDER__CONCURRENCY": str(concurrency),
        "RENDITION__WORKER__HTTP_ADDR": "127.0.0.1:0",
        "RENDITION__S3__BUCKET": bucket,
        "RENDITION__S3__ENDPOINT": s3_endpoint,
        "RENDITION__S3__FORCE_PATH_STYLE": "true",
        "RENDITION__S3__REGION": "us-east-1",
        "RENDITION__RABBITMQ__QUEUE": names["queue"],
        "RENDITION__RABBITMQ__UPLOADS_EXCHANGE": names["uploads"],
        "RENDITION__RABBITMQ__EVENTS_EXCHANGE": names["events"],
    }


def boto_clients(endpoint: str):
    import boto3
    from botocore.config import Config

    cfg = Config(
        region_name="us-east-1",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=16,
    )
    kw = {"endpoint_url": endpoint, "aws_access_key_id": "test", "aws_secret_access_key": "test", "config": cfg}
    return boto3.client("s3", **kw), boto3.client("sqs", **kw)


def list_keys(s3, bucket: str, prefix: str) -> list[dict]:
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(page.get("Contents", []))
    return out


def delete_bucket(s3, bucket: str) -> None:
    keys = [o["Key"] for o in list_keys(s3, bucket, "")]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
    s3.delete_bucket(Bucket=bucket)


# ------------------------------------------------------------------ TCP proxy


class TcpProxy:
    """Forwards 127.0.0.1:port to a target. `cut()` drops every open connection (both
    sides see the socket close); `down()` also closes the listening socket, so new
    connections are refused as by a stopped server, until `up()` listens again on the same
    port. The target itself is never touched."""

    def __init__(self, target: tuple[str, int], name: str):
        self.target = target
        self.name = name
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._closed = False
        self.accepted = 0
        self.cuts = 0
        self.port = 0
        self.up()
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{name}", daemon=True)
        self._thread.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(128)
        self.port = ls.getsockname()[1]
        with self._lock:
            self._listener = ls

    def down(self) -> None:
        with self._lock:
            ls, self._listener = self._listener, None
        if ls is not None:
            # Stop listening now: the accept loop's select() holds the socket open until it
            # returns, and until then the kernel would still complete new handshakes (then
            # reset them) instead of refusing them as a stopped server does.
            try:
                ls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            ls.close()
        self.cut()

    def cut(self) -> int:
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for pair in pairs:
            self._close_pair(pair)
        self.cuts += 1
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self.down()

    def _accept_loop(self) -> None:
        while not self._closed:
            with self._lock:
                ls = self._listener
            if ls is None:
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select([ls], [], [], 0.2)
                if not ready:
                    continue
                client, _ = ls.accept()
            except (OSError, ValueError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                if self._listener is None:  # went down meanwhile
                    client.close()
                    upstream.close()
                    continue
                self._pairs.add(pair)
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._pairs.discard(pair)
        self._close_pair(pair)

    @staticmethod
    def _close_pair(pair) -> None:
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


# ------------------------------------------------------------------ worker processes


class Worker:
    """One `rendition worker` process slot: started, SIGKILLed, restarted; each
    incarnation logs (JSON lines) to its own file."""

    def __init__(self, name: str, binary: Path, args: list[str], env: dict, logdir: Path):
        self.name, self.binary, self.args, self.env, self.logdir = name, binary, args, env, logdir
        self.incarnation = 0
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self._ops: str | None = None

    def start(self) -> None:
        self.incarnation += 1
        path = self.logdir / f"{self.name}.{self.incarnation}.log"
        self.logs.append(path)
        with open(path, "wb") as f:
            self.proc = subprocess.Popen(
                [str(self.binary), *self.args], env=self.env, cwd=self.logdir,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f,
                start_new_session=True,
            )
        self._ops = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM and wait; the exit code (None if it had to be SIGKILLed)."""
        if not self.alive():
            return self.proc.returncode
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None

    def current_log(self) -> list[dict]:
        return read_log(self.logs[-1]) if self.logs else []

    def ops_addr(self) -> str | None:
        if self._ops is None:
            for e in self.current_log():
                if e.get("message", "").startswith("operations endpoint"):
                    self._ops = e.get("addr")
        return self._ops

    def metrics(self) -> dict[str, float]:
        addr = self.ops_addr()
        if not addr or not self.alive():
            return {}
        try:
            status, text = http_get(f"http://{addr}/metrics", 2)
        except OSError:
            return {}
        return parse_metrics(text) if status == 200 else {}

    def wait_log(self, pred, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.current_log():
                if pred(e):
                    return e
            if not self.alive():
                return None
            time.sleep(0.2)
        return None


def read_log(path: Path) -> list[dict]:
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    if line.strip():
                        out.append({"message": line.decode("utf-8", "replace").strip(), "level": "RAW"})
    except FileNotFoundError:
        pass
    return out


_METRIC = re.compile(r'^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+([-+0-9.eE]+|NaN|\+Inf)$')


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        m = _METRIC.match(line.strip())
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def jobs_completed(metrics: dict[str, float]) -> float:
    return sum(metrics.get(f'rendition_jobs_total{{outcome="{o}"}}', 0.0) for o in ("rendered", "already_done"))


def proc_sample(pid: int) -> dict | None:
    """VmRSS / VmHWM (KiB), threads, open fds of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    s = {"fds": fds}
    for line in status.splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            s[k] = int(v.split()[0])
        elif k == "Threads":
            s["threads"] = int(v)
    return s


# ------------------------------------------------------------------ events and images


def minio_event(bucket: str, key: str, size: int, etag: str) -> bytes:
    """A MinIO bucket notification as its AMQP target publishes it (form-encoded key)."""
    encoded = urllib.parse.quote_plus(key)
    return json.dumps({
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{encoded}",
        "Records": [{
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "awsRegion": "",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "minioadmin"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "Config",
                "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                "object": {"key": encoded, "size": size, "eTag": etag,
                           "contentType": "application/octet-stream",
                           "sequencer": f"{time.time_ns():X}"},
            },
        }],
    }).encode()


def event_keys(body: bytes | str) -> list[str]:
    """Decoded object keys of an S3 / MinIO event body (none for a test event)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    keys = []
    for r in doc.get("Records") or []:
        k = ((r.get("s3") or {}).get("object") or {}).get("key")
        if k is not None:
            keys.append(urllib.parse.unquote_plus(k))
    return keys


def make_image(seed: int, fmt: str, width: int, height: int, quality: int = 85,
               progressive: bool = False) -> bytes:
    """A synthetic photo-like image: colour gradient, random shapes, some noise, its seed
    as text. Deterministic for a seed; different seeds give different bytes."""
    from PIL import Image, ImageDraw, ImageOps

    rnd = random.Random(seed)
    col = lambda: tuple(rnd.randrange(256) for _ in range(3))  # noqa: E731
    grad = Image.linear_gradient("L").rotate(rnd.randrange(360), expand=False).resize((width, height))
    img = ImageOps.colorize(grad, col(), col())
    draw = ImageDraw.Draw(img)
    for _ in range(rnd.randint(6, 18)):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        x1, y1 = x0 + rnd.randrange(20, width // 2), y0 + rnd.randrange(20, height // 2)
        shape = rnd.choice(("ellipse", "rectangle", "line"))
        if shape == "line":
            draw.line((x0, y0, x1, y1), fill=col(), width=rnd.randint(1, 12))
        else:
            getattr(draw, shape)((x0, y0, x1, y1), fill=col(), outline=col())
    draw.text((8, 8), f"#{seed}", fill=(255, 255, 255))
    if fmt != "png":  # sensor-like noise; PNG stays clean (noise makes it huge and slow)
        tile = _noise_tile()
        x, y = rnd.randrange(tile.width - width + 1), rnd.randrange(tile.height - height + 1)
        img = Image.blend(img, tile.crop((x, y, x + width, y + height)), rnd.uniform(0.05, 0.15))
    out = io.BytesIO()
    if fmt == "jpeg":
        img.save(out, "JPEG", quality=quality, progressive=progressive, optimize=progressive)
    elif fmt == "png":
        img.save(out, "PNG", compress_level=6)
    elif fmt == "webp":
        img.save(out, "WEBP", quality=quality)
    else:
        raise ValueError(fmt)
    return out.getvalue()


_NOISE = None


def _noise_tile():
    """One noise tile per process (generating noise is the slow part), cropped per image."""
    global _NOISE
    if _NOISE is None:
        from PIL import Image

        _NOISE = Image.effect_noise((2600, 2000), 24).convert("RGB")
    return _NOISE


def make_corrupt(seed: int, kind: str) -> bytes:
    """Uploads no decoder accepts (each checked to be refused as a permanent failure)."""
    rnd = random.Random(seed)
    if kind == "garbage":
        return bytes(rnd.randrange(256) for _ in range(rnd.randint(2000, 20000)))
    if kind == "jpeg-garbage":
        return b"\xff\xd8\xff\xe0" + bytes(rnd.randrange(256) for _ in range(rnd.randint(2000, 20000)))
    if kind == "truncated-jpeg":
        return make_image(seed, "jpeg", 640, 480)[:300]
    if kind == "empty":
        return b""
    raise ValueError(kind)


CORRUPT_KINDS = ("garbage", "jpeg-garbage", "truncated-jpeg", "empty")


def rabbitmqctl_queues(prefix: str) -> dict[str, tuple[int, int]] | None:
    """{queue: (ready, unacked)} of queues whose name starts with prefix, from rabbitmqctl
    (None when rabbitmqctl is not usable here)."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    if not os.path.exists(ctl):
        return None
    try:
        out = subprocess.run(
            [ctl, "-q", "list_queues", "name", "messages_ready", "messages_unacknowledged",
             "--formatter", "json"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        rows = json.loads(out.stdout)
    except ValueError:
        return None
    return {r["name"]: (int(r["messages_ready"]), int(r["messages_unacknowledged"]))
            for r in rows if r["name"].startswith(prefix)}
